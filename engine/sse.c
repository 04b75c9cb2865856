/*
 * sse.c: the Server-Sent Events parser (see sse.h).
 *
 * A byte at a time through a small state machine: simple, and fast enough
 * for token streams (a few hundred bytes per token).  It keeps no more
 * than one line and one event, and refuses either beyond max_line bytes
 * rather than grow without bound on a server that never sends a newline.
 */
#include "engine/sse.h"

#include <stdlib.h>
#include <string.h>

#define SSE_DEFAULT_MAX ((size_t)16 << 20)

void eng_sse_init(struct eng_sse *p, size_t max_bytes, eng_sse_event_fn on_event, void *ctx)
{
	memset(p, 0, sizeof(*p));
	p->max_line = max_bytes ? max_bytes : SSE_DEFAULT_MAX;
	p->on_event = on_event;
	p->ctx = ctx;
}

void eng_sse_reset(struct eng_sse *p)
{
	p->line_len = 0;
	p->data_len = 0;
	p->event[0] = '\0';
	p->has_data = false;
	p->after_cr = false;
}

void eng_sse_free(struct eng_sse *p)
{
	free(p->line);
	free(p->data);
	p->line = p->data = NULL;
	p->line_cap = p->data_cap = 0;
}

/* Makes room for n more bytes and a NUL in a buffer. */
static int grow(char **buf, size_t *cap, size_t len, size_t n, size_t max)
{
	size_t need = len + n + 1, c;
	char *q;

	if (len + n > max)
		return -1;
	if (need <= *cap)
		return 0;
	c = *cap ? *cap : 256;
	while (c < need)
		c *= 2;
	q = realloc(*buf, c);
	if (!q)
		return -1;
	*buf = q;
	*cap = c;
	return 0;
}

static int dispatch(struct eng_sse *p)
{
	int rc = 0;

	if (p->has_data) {
		p->data[p->data_len] = '\0';
		rc = p->on_event(p->ctx, p->event, p->data, p->data_len);
	}
	p->data_len = 0;
	p->has_data = false;
	p->event[0] = '\0';
	return rc;
}

/* One complete line (without its end). */
static int take_line(struct eng_sse *p, const char *s, size_t n)
{
	const char *colon;
	size_t flen, vlen;
	const char *v;

	if (n == 0)
		return dispatch(p);
	if (s[0] == ':')
		return 0;
	colon = memchr(s, ':', n);
	flen = colon ? (size_t)(colon - s) : n;
	v = colon ? colon + 1 : s + n;
	vlen = (size_t)(s + n - v);
	if (vlen > 0 && v[0] == ' ') {
		v++;
		vlen--;
	}
	if (flen == 4 && memcmp(s, "data", 4) == 0) {
		if (grow(&p->data, &p->data_cap, p->data_len, vlen + 1, p->max_line) != 0)
			return -1;
		if (p->has_data)
			p->data[p->data_len++] = '\n';
		memcpy(p->data + p->data_len, v, vlen);
		p->data_len += vlen;
		p->has_data = true;
	} else if (flen == 5 && memcmp(s, "event", 5) == 0) {
		size_t k = vlen < sizeof(p->event) - 1 ? vlen : sizeof(p->event) - 1;

		memcpy(p->event, v, k);
		p->event[k] = '\0';
	}
	return 0;
}

int eng_sse_feed(struct eng_sse *p, const char *buf, size_t n)
{
	size_t i = 0;

	while (i < n) {
		const char *end;
		size_t k;
		int rc;

		if (p->after_cr && buf[i] == '\n') {
			p->after_cr = false;
			i++;
			continue;
		}
		p->after_cr = false;
		/* The rest of a line, up to its end or the chunk's. */
		for (end = buf + i; end < buf + n && *end != '\n' && *end != '\r'; end++)
			;
		k = (size_t)(end - (buf + i));
		if (end == buf + n) {
			if (grow(&p->line, &p->line_cap, p->line_len, k, p->max_line) != 0)
				return -1;
			memcpy(p->line + p->line_len, buf + i, k);
			p->line_len += k;
			return 0;
		}
		if (p->line_len > 0) {
			if (grow(&p->line, &p->line_cap, p->line_len, k, p->max_line) != 0)
				return -1;
			memcpy(p->line + p->line_len, buf + i, k);
			p->line_len += k;
			rc = take_line(p, p->line, p->line_len);
			p->line_len = 0;
		} else {
			rc = take_line(p, buf + i, k);
		}
		if (rc != 0)
			return rc;
		p->after_cr = *end == '\r';
		i += k + 1;
	}
	return 0;
}

int eng_sse_end(struct eng_sse *p)
{
	if (p->line_len > 0) {
		eng_sse_reset(p);
		return 1;
	}
	return dispatch(p);
}
