/*
 * nd_reader.c: line reader on getline(3).
 *
 * One buffer, reused and grown by getline, so memory is bounded by the
 * longest line and never by the file.  Line numbers are 1-based so that a
 * diagnostic can point an editor at the line.  A final line without '\n' is
 * returned like any other but flagged, so that callers can tell a truncated
 * file from a complete one.
 */
#include "tools/common/nd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nd_reader {
	FILE *fp;
	char *name;     /* path as given, or "<stdin>" */
	char *buf;      /* getline's buffer, grown as needed */
	size_t cap;
	long lineno;
	bool unterminated;
};

struct nd_reader *nd_reader_open(const char *path)
{
	struct nd_reader *r = calloc(1, sizeof(*r));
	bool is_stdin = !path || strcmp(path, "-") == 0;

	if (!r)
		return NULL;
	r->name = strdup(is_stdin ? "<stdin>" : path);
	if (!r->name) {
		free(r);
		return NULL;
	}
	r->fp = is_stdin ? stdin : fopen(path, "rb");
	if (!r->fp) {
		int saved = errno;

		free(r->name);
		free(r);
		errno = saved;
		return NULL;
	}
	return r;
}

int nd_reader_next(struct nd_reader *r, char **line, size_t *len)
{
	ssize_t n;

	errno = 0;
	n = getline(&r->buf, &r->cap, r->fp);
	if (n < 0)
		return ferror(r->fp) ? -1 : 0;
	r->lineno++;
	r->unterminated = r->buf[n - 1] != '\n';
	if (!r->unterminated)
		r->buf[--n] = '\0';
	*line = r->buf;
	*len = (size_t)n;
	return 1;
}

long nd_reader_lineno(const struct nd_reader *r)
{
	return r->lineno;
}

const char *nd_reader_name(const struct nd_reader *r)
{
	return r->name;
}

bool nd_reader_unterminated(const struct nd_reader *r)
{
	return r->unterminated;
}

void nd_reader_close(struct nd_reader *r)
{
	if (!r)
		return;
	if (r->fp && r->fp != stdin)
		fclose(r->fp);
	free(r->buf);
	free(r->name);
	free(r);
}

json_t *nd_parse_object(const char *line, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	/* U+0000 is valid in a JSON string, and text may hold it: every
	 * tool passes it on (callers use json_string_length). */
	json_t *obj = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);

	if (!obj) {
		snprintf(err, errlen, "invalid JSON at column %d: %s",
			 jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(obj)) {
		snprintf(err, errlen, "expected a JSON object, got %s",
			 json_is_array(obj) ? "an array" : "a scalar");
		json_decref(obj);
		return NULL;
	}
	return obj;
}
