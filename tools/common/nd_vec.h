/*
 * nd_vec.h: the two growable arrays the tools build records and samples
 * in: bytes (nd_buf) and doubles (nd_dvec).
 *
 * An nd_buf remembers a failed allocation instead of reporting it at every
 * call: append freely, then check `failed` once before using the bytes.
 * Its data is always NUL-terminated once anything (even nothing, through
 * nd_buf_reset) was put in it, so text buffers can be used as C strings.
 */
#ifndef TRAJBENCH_ND_VEC_H
#define TRAJBENCH_ND_VEC_H

#include <stdbool.h>
#include <stddef.h>

struct nd_buf {
	char *data;         /* (cap) bytes; data[len] == '\0' */
	size_t len;
	size_t cap;
	bool failed;        /* an allocation failed; contents are unusable */
};

/* Empties b (keeping its memory) and clears failed. */
void nd_buf_reset(struct nd_buf *b);
void nd_buf_free(struct nd_buf *b);
void nd_buf_put(struct nd_buf *b, const char *s, size_t n);
void nd_buf_puts(struct nd_buf *b, const char *s);
void nd_buf_putc(struct nd_buf *b, char c);
void nd_buf_put_long(struct nd_buf *b, long v);
void nd_buf_printf(struct nd_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Cuts b to at most n bytes. */
void nd_buf_truncate(struct nd_buf *b, size_t n);

struct nd_dvec {
	double *v;          /* (n) */
	size_t n, cap;
};

/* Appends x; 0, or -1 when out of memory (d unchanged). */
int nd_dvec_push(struct nd_dvec *d, double x);
void nd_dvec_free(struct nd_dvec *d);

#endif
