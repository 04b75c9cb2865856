/*
 * nd_scan.h: a single-pass validating JSON scanner over a byte buffer.
 *
 * It is a pull parser for callers that want a few fields out of a large
 * document and must still reject any document that is not valid JSON in
 * valid UTF-8.  Values the caller does not want are skipped with full
 * validation (syntax, UTF-8, escapes, surrogates) but never decoded or
 * copied; values it wants come back as spans into the buffer, decoded only
 * when asked.  Nothing is allocated; the buffer must outlive the spans.
 *
 * Errors: every function returns -1 on error and leaves the kind, the byte
 * offset and a lowercase message in the scanner; ND_SCAN_E_EOF means the
 * input ended inside a value (a truncated document).
 */
#ifndef TRAJBENCH_ND_SCAN_H
#define TRAJBENCH_ND_SCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "tools/common/nd_vec.h"

/* Nesting limit; deeper documents are refused rather than risk the stack. */
#define ND_SCAN_MAX_DEPTH 512

enum nd_scan_type {
	ND_SCAN_END = 0,    /* no more input (after whitespace) */
	ND_SCAN_OBJECT,
	ND_SCAN_ARRAY,
	ND_SCAN_STRING,
	ND_SCAN_NUMBER,
	ND_SCAN_TRUE,
	ND_SCAN_FALSE,
	ND_SCAN_NULL,
	ND_SCAN_INVALID,    /* a byte that cannot start a value */
};

enum nd_scan_err {
	ND_SCAN_OK = 0,
	ND_SCAN_E_SYNTAX,   /* not JSON */
	ND_SCAN_E_EOF,      /* input ended inside a value */
	ND_SCAN_E_UTF8,     /* invalid UTF-8 inside a string */
	ND_SCAN_E_DEPTH,    /* nested deeper than ND_SCAN_MAX_DEPTH */
};

struct nd_scan {
	const char *buf;    /* start of the document */
	const char *p;      /* cursor */
	const char *end;    /* one past the last byte */
	int depth;
	enum nd_scan_err err;
	size_t err_off;     /* byte offset of the error from buf */
	char msg[96];       /* lowercase, no trailing period */
};

/* A string's raw contents (between the quotes, escapes undecoded) or a
 * number's text.  `escaped` says the string holds at least one backslash;
 * `integer` says the number has no fraction and no exponent. */
struct nd_span {
	const char *s;
	size_t len;
	bool escaped;
	bool integer;
};

void nd_scan_init(struct nd_scan *s, const char *buf, size_t len);

/* Skips whitespace and tells what the next value is, without consuming. */
enum nd_scan_type nd_scan_peek(struct nd_scan *s);

/* Validates and skips the next value, whatever it is.  0 or -1. */
int nd_scan_skip(struct nd_scan *s);

/* Reads the next value, which must be a string / a number.  0 or -1. */
int nd_scan_string(struct nd_scan *s, struct nd_span *out);
int nd_scan_number(struct nd_scan *s, struct nd_span *out);

/* Objects: nd_scan_object_begin consumes '{'; each nd_scan_object_next
 * returns 1 with the member's key in *key and the cursor on its value
 * (which the caller must consume), 0 when the object closed, -1 on error.
 * *n counts the members seen (start it at 0).  Arrays work the same way,
 * nd_scan_array_next returning 1 with the cursor on the next element. */
int nd_scan_object_begin(struct nd_scan *s);
int nd_scan_object_next(struct nd_scan *s, size_t *n, struct nd_span *key);
int nd_scan_array_begin(struct nd_scan *s);
int nd_scan_array_next(struct nd_scan *s, size_t *n);

/* After the top-level value: only whitespace may follow.  0 or -1. */
int nd_scan_finish(struct nd_scan *s);

/* Byte offset of the cursor from the start of the document. */
size_t nd_scan_offset(const struct nd_scan *s);

/* Decodes a validated string span into dst (which needs sp->len bytes;
 * decoding never grows a string).  Returns the decoded length. */
size_t nd_scan_unescape(const struct nd_span *sp, char *dst);

/* True when the span's decoded text equals the NUL-terminated lit. */
bool nd_scan_span_eq(const struct nd_span *sp, const char *lit);

/* ---------------------------------------------------------------- output */


/* Appends a validated string span as a JSON string in canonical form: raw
 * UTF-8, with only '"', '\\' and control characters escaped.  A span with
 * no escapes is copied as is. */
void nd_buf_put_jstring(struct nd_buf *b, const struct nd_span *sp);

/* Appends a NUL-terminated C string (a file name, say) as a JSON string;
 * bytes that are not UTF-8 become U+FFFD, so the output stays UTF-8. */
void nd_buf_put_cstring(struct nd_buf *b, const char *s);

#endif
