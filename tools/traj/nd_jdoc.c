/*
 * nd_jdoc.c: splits a file into JSON documents (see nd_jdoc.h).
 *
 * JSONL is the fast path: each non-blank line is handed out as it comes
 * from the line reader, without copying.  Pretty-printed files are
 * accumulated line by line into a buffer while a small tracker follows
 * strings, escapes and bracket depth; when the depth returns to zero the
 * document is complete and is handed out, and the rest of its last line
 * starts the next one.  The tracker does not validate: the caller's parser
 * does, and reports errors with the line and column nd_jdoc_locate gives.
 *
 * It refuses to resynchronise inside broken pretty-printed input: text
 * between documents, or a raw newline inside a string, ends that file.
 */
#include "tools/traj/nd_jdoc.h"
#include "tools/common/nd.h"
#include "tools/traj/nd_scan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mode { MODE_DETECT, MODE_LINES, MODE_PRETTY, MODE_ABANDON, MODE_DONE };

struct nd_jdoc_reader {
	struct nd_reader *rd;
	enum mode mode;
	bool any_bytes;         /* the file was not empty */

	/* MODE_LINES: the first line, read while detecting, is still due */
	bool pending;
	char *pend_text;
	size_t pend_len;

	/* MODE_PRETTY: acc holds the text from the current document on */
	struct nd_buf acc;
	long acc_line, acc_col; /* position of acc.data[0] */
	size_t scan;            /* tracker position in acc */
	size_t emitted;         /* bytes of the last document handed out */
	bool started, in_str, esc, eof;
	int depth;
};

struct nd_jdoc_reader *nd_jdoc_open(const char *path)
{
	struct nd_jdoc_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->rd = nd_reader_open(path);
	if (!r->rd) {
		int saved = errno;

		free(r);
		errno = saved;
		return NULL;
	}
	return r;
}

void nd_jdoc_close(struct nd_jdoc_reader *r)
{
	if (!r)
		return;
	nd_reader_close(r->rd);
	nd_buf_free(&r->acc);
	free(r);
}

const char *nd_jdoc_name(const struct nd_jdoc_reader *r)
{
	return nd_reader_name(r->rd);
}

void nd_jdoc_locate(const struct nd_jdoc *doc, size_t off, long *line, long *col)
{
	const char *p = doc->text, *end = doc->text + (off < doc->len ? off : doc->len);
	const char *last = NULL;
	long n = 0;

	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		n++;
		last = p++;
	}
	*line = doc->line + n;
	*col = last ? (long)(end - last) : doc->col + (long)(end - doc->text);
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

/* Next non-blank line: 1, 0 at end, -2 on a read error. */
static int next_line(struct nd_jdoc_reader *r, char **text, size_t *len)
{
	int rc;

	while ((rc = nd_reader_next(r->rd, text, len)) == 1) {
		r->any_bytes = true;
		if (!blank(*text, *len))
			return 1;
	}
	return rc < 0 ? -2 : 0;
}

static bool first_line_is_pretty(const char *s, size_t n)
{
	struct nd_scan sc;

	nd_scan_init(&sc, s, n);
	if (nd_scan_peek(&sc) != ND_SCAN_OBJECT)
		return false;
	if (nd_scan_skip(&sc) == 0)
		return false;
	return sc.err == ND_SCAN_E_EOF;
}

/* ---------------------------------------------------------------- pretty */

/* Drops the first n bytes of acc, keeping acc_line/acc_col right. */
static void drop(struct nd_jdoc_reader *r, size_t n)
{
	struct nd_jdoc gone = { r->acc.data, n, r->acc_line, r->acc_col, false, true };

	if (n == 0)
		return;
	nd_jdoc_locate(&gone, n, &r->acc_line, &r->acc_col);
	memmove(r->acc.data, r->acc.data + n, r->acc.len - n);
	r->acc.len -= n;
	r->scan = r->scan > n ? r->scan - n : 0;
}

static int append_line(struct nd_jdoc_reader *r, const char *text, size_t len)
{
	nd_buf_put(&r->acc, text, len);
	if (!nd_reader_unterminated(r->rd))
		nd_buf_putc(&r->acc, '\n');
	if (r->acc.failed) {
		errno = ENOMEM;
		return -2;
	}
	return 0;
}

/* Runs the tracker over acc from r->scan.  Returns 1 when a document ends
 * at acc[*end - 1], 0 when more input is needed, -1 on text that cannot
 * start a document (msg filled). */
static int track(struct nd_jdoc_reader *r, size_t *end, char *msg, size_t msglen, long *line)
{
	for (size_t i = r->scan; i < r->acc.len; i++) {
		char c = r->acc.data[i];

		if (!r->started) {
			if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
				continue;
			drop(r, i);
			i = 0;
			if (c != '{' && c != '[') {
				*line = r->acc_line;
				snprintf(msg, msglen, "unexpected text at column %ld between "
					 "pretty-printed JSON documents; the rest of the file "
					 "is skipped", r->acc_col);
				return -1;
			}
			r->started = true;
			r->depth = 1;
			continue;
		}
		if (r->in_str) {
			if (r->esc)
				r->esc = false;
			else if (c == '\\')
				r->esc = true;
			else if (c == '"')
				r->in_str = false;
			else if (c == '\n')   /* invalid JSON: let the parser say so */
				return *end = i + 1, r->mode = MODE_ABANDON, 1;
		} else if (c == '"') {
			r->in_str = true;
		} else if (c == '{' || c == '[') {
			r->depth++;
		} else if ((c == '}' || c == ']') && --r->depth == 0) {
			r->scan = i + 1;
			*end = i + 1;
			return 1;
		}
	}
	r->scan = r->acc.len;
	return 0;
}

/* The file ended inside a document: say where and why. */
static int truncated(struct nd_jdoc_reader *r, char *msg, size_t msglen, long *line)
{
	struct nd_jdoc doc = { r->acc.data, r->acc.len, r->acc_line, r->acc_col, false, true };
	struct nd_scan sc;
	long l, c;

	nd_scan_init(&sc, doc.text, doc.len);
	nd_scan_skip(&sc);
	r->mode = MODE_DONE;
	if (sc.err == ND_SCAN_E_EOF || sc.err == ND_SCAN_OK) {
		*line = doc.line;
		snprintf(msg, msglen, "truncated document: the file ends before it does");
		return -1;
	}
	nd_jdoc_locate(&doc, sc.err_off, &l, &c);
	*line = l;
	snprintf(msg, msglen, "%s at column %ld: %s",
		 sc.err == ND_SCAN_E_UTF8 ? "invalid UTF-8" : "invalid JSON", c, sc.msg);
	return -1;
}

static int next_pretty(struct nd_jdoc_reader *r, struct nd_jdoc *doc,
		       char *msg, size_t msglen, long *line)
{
	size_t end;
	char *text;
	size_t len;
	int rc;

	drop(r, r->emitted);
	r->emitted = 0;
	for (;;) {
		rc = track(r, &end, msg, msglen, line);
		if (rc < 0) {
			r->mode = MODE_DONE;
			return -1;
		}
		if (rc == 1)
			break;
		rc = r->eof ? 0 : nd_reader_next(r->rd, &text, &len);
		if (rc < 0)
			return -2;
		if (rc == 0) {
			r->eof = true;
			if (!r->started || blank(r->acc.data, r->acc.len)) {
				r->mode = MODE_DONE;
				return 0;
			}
			return truncated(r, msg, msglen, line);
		}
		if (append_line(r, text, len) != 0)
			return -2;
	}
	*doc = (struct nd_jdoc){ r->acc.data, end, r->acc_line, r->acc_col, false, true };
	r->emitted = end;
	r->started = r->in_str = r->esc = false;
	r->depth = 0;
	return 1;
}

/* After a document whose end could not be found: the rest of the file is
 * not read as documents, and that is said once if there is any rest. */
static int abandon(struct nd_jdoc_reader *r, char *msg, size_t msglen, long *line)
{
	char *text;
	size_t len;
	int rc;

	drop(r, r->emitted);
	r->emitted = 0;
	r->mode = MODE_DONE;
	if (!blank(r->acc.data, r->acc.len)) {
		*line = r->acc_line;
	} else {
		rc = next_line(r, &text, &len);
		if (rc <= 0)
			return rc;
		*line = nd_reader_lineno(r->rd);
	}
	snprintf(msg, msglen, "the rest of the file is skipped: the document above "
		 "is broken, so the next one cannot be found");
	return -1;
}

/* ---------------------------------------------------------------- entry */

static int detect(struct nd_jdoc_reader *r, char *msg, size_t msglen, long *line)
{
	char *text;
	size_t len;
	int rc = next_line(r, &text, &len);

	if (rc <= 0) {
		r->mode = MODE_DONE;
		if (rc < 0)
			return -2;
		*line = 0;
		snprintf(msg, msglen, r->any_bytes ? "no JSON documents, only blank lines"
			 : "empty file");
		return -1;
	}
	if (!nd_reader_unterminated(r->rd) && first_line_is_pretty(text, len)) {
		r->mode = MODE_PRETTY;
		r->acc_line = nd_reader_lineno(r->rd);
		r->acc_col = 1;
		return append_line(r, text, len);
	}
	r->mode = MODE_LINES;
	r->pending = true;
	r->pend_text = text;
	r->pend_len = len;
	return 0;
}

int nd_jdoc_next(struct nd_jdoc_reader *r, struct nd_jdoc *doc,
		 char *msg, size_t msglen, long *line)
{
	char *text;
	size_t len;
	int rc;

	if (r->mode == MODE_DETECT && (rc = detect(r, msg, msglen, line)) != 0)
		return rc;
	if (r->mode == MODE_PRETTY)
		return next_pretty(r, doc, msg, msglen, line);
	if (r->mode == MODE_ABANDON)
		return abandon(r, msg, msglen, line);
	if (r->mode != MODE_LINES)
		return 0;
	if (r->pending) {
		r->pending = false;
		text = r->pend_text;
		len = r->pend_len;
	} else if ((rc = next_line(r, &text, &len)) <= 0) {
		r->mode = MODE_DONE;
		return rc;
	}
	*doc = (struct nd_jdoc){ text, len, nd_reader_lineno(r->rd), 1,
				 nd_reader_unterminated(r->rd), false };
	return 1;
}
