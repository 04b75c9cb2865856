/*
 * nd_vec.c: growable byte and double arrays (see nd_vec.h).
 */
#include "tools/common/nd_vec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for more bytes and the terminating NUL. */
static bool reserve(struct nd_buf *b, size_t more)
{
	size_t cap;
	char *d;

	if (b->failed)
		return false;
	if (b->data && b->cap - b->len > more)
		return true;
	cap = b->cap ? b->cap : 4096;
	while (cap - b->len <= more)
		cap *= 2;
	d = realloc(b->data, cap);
	if (!d) {
		b->failed = true;
		return false;
	}
	b->data = d;
	b->cap = cap;
	return true;
}

void nd_buf_reset(struct nd_buf *b)
{
	b->len = 0;
	b->failed = false;
	if (reserve(b, 0))
		b->data[0] = '\0';
}

void nd_buf_free(struct nd_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void nd_buf_put(struct nd_buf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void nd_buf_puts(struct nd_buf *b, const char *s)
{
	nd_buf_put(b, s, strlen(s));
}

void nd_buf_putc(struct nd_buf *b, char c)
{
	nd_buf_put(b, &c, 1);
}

void nd_buf_put_long(struct nd_buf *b, long v)
{
	nd_buf_printf(b, "%ld", v);
}

void nd_buf_printf(struct nd_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void nd_buf_truncate(struct nd_buf *b, size_t n)
{
	if (b->len > n) {
		b->len = n;
		b->data[n] = '\0';
	}
}

int nd_dvec_push(struct nd_dvec *d, double x)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		double *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return -1;
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n++] = x;
	return 0;
}

void nd_dvec_free(struct nd_dvec *d)
{
	free(d->v);
	memset(d, 0, sizeof(*d));
}
