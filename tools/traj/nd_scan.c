/*
 * nd_scan.c: the validating JSON scanner of nd_scan.h.
 *
 * Why not jansson: building a DOM of a 130 KB trajectory line, most of it
 * strings nobody reads, costs about 15 ns a byte; R2E-Gym files run to
 * gigabytes.  This scanner validates at memory speed instead: string bodies
 * (nearly all the bytes) are checked eight bytes at a time for the only
 * bytes that need attention ('"', '\\', controls, non-ASCII), and only the
 * strings a caller asks for are ever decoded.
 *
 * It accepts exactly RFC 8259 JSON in UTF-8: no comments, no trailing
 * commas, no NaN, no lone surrogates in \u escapes (they cannot become
 * UTF-8), no overlong or surrogate UTF-8 sequences.  It refuses to guess
 * and refuses to recover: the first error stops the scan.
 */
#include "tools/traj/nd_scan.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(struct nd_scan *s, enum nd_scan_err kind, const char *at,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(struct nd_scan *s, enum nd_scan_err kind, const char *at,
		const char *fmt, ...)
{
	va_list ap;

	if (s->err != ND_SCAN_OK)
		return -1;
	s->err = kind;
	s->err_off = (size_t)(at - s->buf);
	va_start(ap, fmt);
	vsnprintf(s->msg, sizeof(s->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static int fail_eof(struct nd_scan *s)
{
	return fail(s, ND_SCAN_E_EOF, s->end, "unexpected end of input");
}

/* "unexpected character 'x'" or, for bytes that do not print, the hex. */
static int fail_char(struct nd_scan *s, const char *at, const char *want)
{
	unsigned char c = (unsigned char)*at;

	if (c > 0x20 && c < 0x7f)
		return fail(s, ND_SCAN_E_SYNTAX, at, "unexpected '%c'%s%s", c,
			    want ? ", expected " : "", want ? want : "");
	return fail(s, ND_SCAN_E_SYNTAX, at, "unexpected byte 0x%02x%s%s", c,
		    want ? ", expected " : "", want ? want : "");
}

void nd_scan_init(struct nd_scan *s, const char *buf, size_t len)
{
	memset(s, 0, sizeof(*s));
	s->buf = buf;
	s->p = buf;
	s->end = buf + len;
}

size_t nd_scan_offset(const struct nd_scan *s)
{
	return (size_t)(s->p - s->buf);
}

static void skip_ws(struct nd_scan *s)
{
	const char *p = s->p;

	while (p < s->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	s->p = p;
}

enum nd_scan_type nd_scan_peek(struct nd_scan *s)
{
	skip_ws(s);
	if (s->p == s->end)
		return ND_SCAN_END;
	switch (*s->p) {
	case '{': return ND_SCAN_OBJECT;
	case '[': return ND_SCAN_ARRAY;
	case '"': return ND_SCAN_STRING;
	case 't': return ND_SCAN_TRUE;
	case 'f': return ND_SCAN_FALSE;
	case 'n': return ND_SCAN_NULL;
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			return ND_SCAN_NUMBER;
		return ND_SCAN_INVALID;
	}
}

/* ---------------------------------------------------------------- strings */

#define ONES  UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Bit 7 of each byte of the result is set where w's byte is '"', '\\',
 * below 0x20 or above 0x7f.  The lowest set bit is exact (borrows only
 * move upwards), which is all the caller uses. */
static inline uint64_t special_bytes(uint64_t w)
{
	uint64_t q = w ^ (ONES * '"');
	uint64_t b = w ^ (ONES * '\\');

	return ((q - ONES) & ~q) | ((b - ONES) & ~b) |
	       ((w - ONES * 0x20) & ~w) | w;
}

/* Advances p over bytes that need no attention. */
static inline const char *skip_plain(const char *p, const char *end)
{
	while (end - p >= 8) {
		uint64_t w, m;

		memcpy(&w, p, 8);
		m = special_bytes(w) & HIGHS;
		if (m) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			return p + (__builtin_ctzll(m) >> 3);
#else
			break;
#endif
		}
		p += 8;
	}
	while (p < end) {
		unsigned char c = (unsigned char)*p;

		if (c == '"' || c == '\\' || c < 0x20 || c > 0x7f)
			break;
		p++;
	}
	return p;
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Checks the four hex digits of a \u escape at p (p[0] == '\\'). */
static int check_hex4(struct nd_scan *s, const char *p, unsigned *out)
{
	for (int i = 2; i < 6; i++) {
		if (p + i >= s->end)
			return fail_eof(s);
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') ||
		      (p[i] >= 'A' && p[i] <= 'F')))
			return fail(s, ND_SCAN_E_SYNTAX, p, "invalid \\u escape in string");
	}
	return hex4(p + 2, out);
}

/* Validates the escape at p (p[0] == '\\'); returns its length or -1.
 * Input that ends inside an escape which could still be valid is
 * ND_SCAN_E_EOF; anything else is a syntax error. */
static int check_escape(struct nd_scan *s, const char *p)
{
	unsigned hi, lo;

	if (s->end - p < 2)
		return fail_eof(s);
	switch (p[1]) {
	case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
		return 2;
	case 'u':
		break;
	default:
		if ((unsigned char)p[1] >= 0x20 && (unsigned char)p[1] < 0x7f)
			return fail(s, ND_SCAN_E_SYNTAX, p, "invalid escape '\\%c' in string", p[1]);
		return fail(s, ND_SCAN_E_SYNTAX, p, "invalid escape in string");
	}
	if (check_hex4(s, p, &hi) != 0)
		return -1;
	if (hi >= 0xdc00 && hi <= 0xdfff)
		return fail(s, ND_SCAN_E_SYNTAX, p, "lone low surrogate \\u%04x in string", hi);
	if (hi < 0xd800 || hi > 0xdbff)
		return 6;
	if (p + 6 < s->end && p[6] != '\\')
		return fail(s, ND_SCAN_E_SYNTAX, p, "lone high surrogate \\u%04x in string", hi);
	if (p + 7 < s->end && p[7] != 'u')
		return fail(s, ND_SCAN_E_SYNTAX, p, "lone high surrogate \\u%04x in string", hi);
	if (p + 7 >= s->end)
		return fail_eof(s);
	if (check_hex4(s, p + 6, &lo) != 0)
		return -1;
	if (lo < 0xdc00 || lo > 0xdfff)
		return fail(s, ND_SCAN_E_SYNTAX, p, "lone high surrogate \\u%04x in string", hi);
	return 12;
}

/* Validates the UTF-8 sequence at p (p[0] >= 0x80); returns its length. */
static int check_utf8(struct nd_scan *s, const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	size_t left = (size_t)(s->end - p);
	int n;
	unsigned min, cp;

	if (u[0] >= 0xc2 && u[0] <= 0xdf) { n = 2; cp = u[0] & 0x1f; min = 0x80; }
	else if (u[0] >= 0xe0 && u[0] <= 0xef) { n = 3; cp = u[0] & 0x0f; min = 0x800; }
	else if (u[0] >= 0xf0 && u[0] <= 0xf4) { n = 4; cp = u[0] & 0x07; min = 0x10000; }
	else
		return fail(s, ND_SCAN_E_UTF8, p, "bad lead byte 0x%02x", u[0]);
	for (int i = 1; i < n; i++) {
		if ((size_t)i >= left)
			return fail(s, ND_SCAN_E_UTF8, p, "truncated sequence");
		if ((u[i] & 0xc0) != 0x80)
			return fail(s, ND_SCAN_E_UTF8, p, "bad continuation byte 0x%02x", u[i]);
		cp = (cp << 6) | (u[i] & 0x3f);
	}
	if (cp < min)
		return fail(s, ND_SCAN_E_UTF8, p, "overlong sequence");
	if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return fail(s, ND_SCAN_E_UTF8, p, "sequence encodes invalid code point U+%04X", cp);
	return n;
}

int nd_scan_string(struct nd_scan *s, struct nd_span *out)
{
	const char *p, *end = s->end;
	bool escaped = false;

	if (nd_scan_peek(s) != ND_SCAN_STRING) {
		if (s->p == end)
			return fail_eof(s);
		return fail_char(s, s->p, "a string");
	}
	p = s->p + 1;
	for (;;) {
		int n;
		unsigned char c;

		p = skip_plain(p, end);
		if (p == end)
			return fail_eof(s);
		c = (unsigned char)*p;
		if (c == '"')
			break;
		if (c == '\\') {
			escaped = true;
			n = check_escape(s, p);
		} else if (c < 0x20) {
			return fail(s, ND_SCAN_E_SYNTAX, p, "control character 0x%02x in string", c);
		} else {
			n = check_utf8(s, p);
		}
		if (n < 0)
			return -1;
		p += n;
	}
	out->s = s->p + 1;
	out->len = (size_t)(p - out->s);
	out->escaped = escaped;
	out->integer = false;
	s->p = p + 1;
	return 0;
}

/* ---------------------------------------------------------------- scalars */

static const char *digits(const char *p, const char *end)
{
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return p;
}

int nd_scan_number(struct nd_scan *s, struct nd_span *out)
{
	const char *start, *p, *end = s->end, *q;
	bool integer = true;

	if (nd_scan_peek(s) != ND_SCAN_NUMBER) {
		if (s->p == end)
			return fail_eof(s);
		return fail_char(s, s->p, "a number");
	}
	start = p = s->p;
	if (*p == '-')
		p++;
	if (p == end)
		return fail_eof(s);
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		p = digits(p, end);
	else
		return fail(s, ND_SCAN_E_SYNTAX, start, "invalid number");
	if (p < end && *p == '.') {
		integer = false;
		q = digits(p + 1, end);
		if (q == p + 1)
			return q == end ? fail_eof(s) : fail(s, ND_SCAN_E_SYNTAX, start, "invalid number");
		p = q;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		integer = false;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		q = digits(p, end);
		if (q == p)
			return q == end ? fail_eof(s) : fail(s, ND_SCAN_E_SYNTAX, start, "invalid number");
		p = q;
	}
	if (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' ||
			*p == '+' || *p == '-'))
		return fail(s, ND_SCAN_E_SYNTAX, start, "invalid number");
	out->s = start;
	out->len = (size_t)(p - start);
	out->escaped = false;
	out->integer = integer;
	s->p = p;
	return 0;
}

static int literal(struct nd_scan *s, const char *word, size_t n)
{
	size_t left = (size_t)(s->end - s->p);

	if (left < n) {
		if (memcmp(s->p, word, left) == 0)
			return fail_eof(s);
		return fail(s, ND_SCAN_E_SYNTAX, s->p, "invalid literal");
	}
	if (memcmp(s->p, word, n) != 0)
		return fail(s, ND_SCAN_E_SYNTAX, s->p, "invalid literal");
	s->p += n;
	return 0;
}

/* ---------------------------------------------------------------- containers */

int nd_scan_object_begin(struct nd_scan *s)
{
	if (nd_scan_peek(s) != ND_SCAN_OBJECT)
		return s->p == s->end ? fail_eof(s) : fail_char(s, s->p, "'{'");
	if (++s->depth > ND_SCAN_MAX_DEPTH)
		return fail(s, ND_SCAN_E_DEPTH, s->p, "nesting deeper than %d", ND_SCAN_MAX_DEPTH);
	s->p++;
	return 0;
}

int nd_scan_array_begin(struct nd_scan *s)
{
	if (nd_scan_peek(s) != ND_SCAN_ARRAY)
		return s->p == s->end ? fail_eof(s) : fail_char(s, s->p, "'['");
	if (++s->depth > ND_SCAN_MAX_DEPTH)
		return fail(s, ND_SCAN_E_DEPTH, s->p, "nesting deeper than %d", ND_SCAN_MAX_DEPTH);
	s->p++;
	return 0;
}

/* Consumes the ',' between members or the closing byte; 1 more, 0 closed. */
static int next_member(struct nd_scan *s, size_t *n, char close, const char *want)
{
	skip_ws(s);
	if (s->p == s->end)
		return fail_eof(s);
	if (*s->p == close && *n == 0) {
		s->p++;
		s->depth--;
		return 0;
	}
	if (*n > 0) {
		if (*s->p == close) {
			s->p++;
			s->depth--;
			return 0;
		}
		if (*s->p != ',')
			return fail_char(s, s->p, want);
		s->p++;
	}
	(*n)++;
	return 1;
}

int nd_scan_object_next(struct nd_scan *s, size_t *n, struct nd_span *key)
{
	int r = next_member(s, n, '}', "',' or '}'");

	if (r <= 0)
		return r;
	if (nd_scan_peek(s) != ND_SCAN_STRING)
		return s->p == s->end ? fail_eof(s) : fail_char(s, s->p, "a string key");
	if (nd_scan_string(s, key) != 0)
		return -1;
	skip_ws(s);
	if (s->p == s->end)
		return fail_eof(s);
	if (*s->p != ':')
		return fail_char(s, s->p, "':'");
	s->p++;
	return 1;
}

int nd_scan_array_next(struct nd_scan *s, size_t *n)
{
	return next_member(s, n, ']', "',' or ']'");
}

int nd_scan_skip(struct nd_scan *s)
{
	struct nd_span sp;
	size_t n = 0;
	int r;

	switch (nd_scan_peek(s)) {
	case ND_SCAN_END:
		return fail_eof(s);
	case ND_SCAN_STRING:
		return nd_scan_string(s, &sp);
	case ND_SCAN_NUMBER:
		return nd_scan_number(s, &sp);
	case ND_SCAN_TRUE:
		return literal(s, "true", 4);
	case ND_SCAN_FALSE:
		return literal(s, "false", 5);
	case ND_SCAN_NULL:
		return literal(s, "null", 4);
	case ND_SCAN_OBJECT:
		if (nd_scan_object_begin(s) != 0)
			return -1;
		while ((r = nd_scan_object_next(s, &n, &sp)) == 1)
			if (nd_scan_skip(s) != 0)
				return -1;
		return r;
	case ND_SCAN_ARRAY:
		if (nd_scan_array_begin(s) != 0)
			return -1;
		while ((r = nd_scan_array_next(s, &n)) == 1)
			if (nd_scan_skip(s) != 0)
				return -1;
		return r;
	default:
		return fail_char(s, s->p, "a value");
	}
}

int nd_scan_finish(struct nd_scan *s)
{
	skip_ws(s);
	if (s->p != s->end)
		return fail_char(s, s->p, "end of input after the value");
	return 0;
}

/* ---------------------------------------------------------------- decoding */

static size_t put_utf8(char *d, unsigned cp)
{
	if (cp < 0x80) {
		d[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		d[0] = (char)(0xc0 | (cp >> 6));
		d[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		d[0] = (char)(0xe0 | (cp >> 12));
		d[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		d[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	d[0] = (char)(0xf0 | (cp >> 18));
	d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	d[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	d[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decodes the escape at p (validated); code point in *cp, returns length. */
static size_t decode_escape(const char *p, unsigned *cp)
{
	unsigned hi, lo;

	switch (p[1]) {
	case 'b': *cp = '\b'; return 2;
	case 'f': *cp = '\f'; return 2;
	case 'n': *cp = '\n'; return 2;
	case 'r': *cp = '\r'; return 2;
	case 't': *cp = '\t'; return 2;
	case 'u':
		hex4(p + 2, &hi);
		if (hi < 0xd800 || hi > 0xdbff) {
			*cp = hi;
			return 6;
		}
		hex4(p + 8, &lo);
		*cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
		return 12;
	default:
		*cp = (unsigned char)p[1];
		return 2;
	}
}

size_t nd_scan_unescape(const struct nd_span *sp, char *dst)
{
	const char *p = sp->s, *end = sp->s + sp->len;
	char *d = dst;

	if (!sp->escaped) {
		memcpy(dst, sp->s, sp->len);
		return sp->len;
	}
	while (p < end) {
		const char *bs = memchr(p, '\\', (size_t)(end - p));
		unsigned cp;

		if (!bs)
			bs = end;
		memcpy(d, p, (size_t)(bs - p));
		d += bs - p;
		if (bs == end)
			break;
		p = bs + decode_escape(bs, &cp);
		d += put_utf8(d, cp);
	}
	return (size_t)(d - dst);
}

bool nd_scan_span_eq(const struct nd_span *sp, const char *lit)
{
	size_t n = strlen(lit);
	char tmp[64];

	if (!sp->escaped)
		return sp->len == n && memcmp(sp->s, lit, n) == 0;
	if (sp->len > sizeof(tmp))
		return false;   /* an escaped key this long cannot be one of ours */
	return nd_scan_unescape(sp, tmp) == n && memcmp(tmp, lit, n) == 0;
}

/* ---------------------------------------------------------------- output */

/* Appends code point cp in canonical JSON string form. */
static void put_canonical(struct nd_buf *b, unsigned cp)
{
	char tmp[8];

	switch (cp) {
	case '"':  nd_buf_put(b, "\\\"", 2); return;
	case '\\': nd_buf_put(b, "\\\\", 2); return;
	case '\b': nd_buf_put(b, "\\b", 2); return;
	case '\f': nd_buf_put(b, "\\f", 2); return;
	case '\n': nd_buf_put(b, "\\n", 2); return;
	case '\r': nd_buf_put(b, "\\r", 2); return;
	case '\t': nd_buf_put(b, "\\t", 2); return;
	default:
		if (cp < 0x20) {
			snprintf(tmp, sizeof(tmp), "\\u%04x", cp);
			nd_buf_put(b, tmp, 6);
			return;
		}
		nd_buf_put(b, tmp, put_utf8(tmp, cp));
	}
}

void nd_buf_put_jstring(struct nd_buf *b, const struct nd_span *sp)
{
	const char *p = sp->s, *end = sp->s + sp->len;

	nd_buf_putc(b, '"');
	while (p < end) {
		const char *bs = sp->escaped ? memchr(p, '\\', (size_t)(end - p)) : NULL;
		unsigned cp;

		if (!bs)
			bs = end;
		nd_buf_put(b, p, (size_t)(bs - p));
		if (bs == end)
			break;
		p = bs + decode_escape(bs, &cp);
		put_canonical(b, cp);
	}
	nd_buf_putc(b, '"');
}

void nd_buf_put_cstring(struct nd_buf *b, const char *s)
{
	struct nd_scan chk;     /* only for check_utf8 */
	size_t len = strlen(s);

	nd_scan_init(&chk, s, len);
	nd_buf_putc(b, '"');
	for (const char *p = s; *p; ) {
		unsigned char c = (unsigned char)*p;
		int n;

		if (c < 0x80) {
			if (c == '"' || c == '\\' || c < 0x20)
				put_canonical(b, c);
			else
				nd_buf_putc(b, (char)c);
			p++;
			continue;
		}
		chk.err = ND_SCAN_OK;
		n = check_utf8(&chk, p);
		if (n > 0) {
			nd_buf_put(b, p, (size_t)n);
			p += n;
		} else {
			nd_buf_put(b, "\xef\xbf\xbd", 3);   /* U+FFFD for a byte that is not UTF-8 */
			p++;
		}
	}
	nd_buf_putc(b, '"');
}
