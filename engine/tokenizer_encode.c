/*
 * tokenizer_encode.c: the encode and decode pipelines of the tokenizer.
 *
 * Encode: check that the text is UTF-8, cut it at added tokens (leftmost
 * match, longest first, as HF's aho-corasick LeftmostLongest; lstrip and
 * rstrip eat the whitespace beside a token, single_word drops a match glued
 * to a word), and send the text between them through normalizer,
 * pre-tokenizer and BPE (pretok.c, bpe.c).  Added tokens are matched in
 * the raw text; the "normalized" flag is not honoured, which only matters
 * for added tokens that normalization would change (none of the models we
 * run has one).
 *
 * Decode: the bytes of each token, concatenated, as HF's ByteLevel decoder;
 * the streaming decoder holds back an incomplete UTF-8 character until the
 * next token completes it.
 */
#include "engine/tokenizer_int.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---------------------------------------------------------------- UTF-8 */

/* Looks at the character starting at s[i].  Returns 1 (valid, *n bytes),
 * 0 (a valid start cut short by the end of the buffer) or -1 (invalid; *n
 * is the maximal subpart to replace by one U+FFFD). */
static int utf8_at(const unsigned char *s, size_t len, size_t i, size_t *n)
{
	unsigned char b = s[i];
	size_t need, k;
	unsigned char lo = 0x80, hi = 0xBF;

	if (b < 0x80)
		return *n = 1, 1;
	if (b < 0xC2 || b > 0xF4)
		return *n = 1, -1;
	need = b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
	if (b == 0xE0) lo = 0xA0;
	if (b == 0xED) hi = 0x9F;
	if (b == 0xF0) lo = 0x90;
	if (b == 0xF4) hi = 0x8F;
	for (k = 1; k < need; k++) {
		if (i + k >= len)
			return *n = k, 0;
		if (s[i + k] < lo || s[i + k] > hi)
			return *n = k, -1;
		lo = 0x80;
		hi = 0xBF;
	}
	return *n = need, 1;
}

size_t eng_utf8_check(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, n;

	while (i < len) {
		if (i + 8 <= len) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if ((w & 0x8080808080808080ull) == 0) {
				i += 8;
				continue;
			}
		}
		if (utf8_at(s, len, i, &n) != 1)
			return i;
		i += n;
	}
	return len;
}

/* Appends the lossy decoding of s to buf: complete characters as they are,
 * U+FFFD for each invalid maximal subpart.  When hold is set an incomplete
 * character at the end is not written; its length goes to *held. */
static size_t lossy_copy(const unsigned char *s, size_t len, char *out, bool hold, size_t *held)
{
	size_t i = 0, o = 0, n;

	*held = 0;
	while (i < len) {
		int r = utf8_at(s, len, i, &n);

		if (r == 1) {
			memcpy(out + o, s + i, n);
			o += n;
		} else if (r == 0 && hold) {
			*held = len - i;
			break;
		} else {
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
		}
		i += n;
	}
	return o;
}

char *eng_utf8_sanitize(const char *s, size_t len, size_t *out_len)
{
	char *out = malloc(3 * len + 1); /* each byte at most one U+FFFD */
	size_t held;

	if (!out)
		return NULL;
	*out_len = lossy_copy((const unsigned char *)s, len, out, false, &held);
	out[*out_len] = '\0';
	return out;
}

/* ---------------------------------------------------------------- added tokens */

static bool is_space_at(const char *s, size_t len, size_t i, size_t *n)
{
	utf8proc_int32_t cp;
	utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
					      (utf8proc_ssize_t)(len - i), &cp);

	*n = k > 0 ? (size_t)k : 1;
	if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0x2028 || cp == 0x2029)
		return true;
	return cp > 0x7F && utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS;
}

static bool is_word_cp(utf8proc_int32_t cp)
{
	utf8proc_category_t c;

	if (cp < 0x80)
		return cp == '_' || (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
	c = utf8proc_category(cp);
	return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
	       (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

/* True when the character ending at s[end] (exclusive) is a word character. */
static bool word_before(const char *s, size_t end)
{
	size_t i = end;
	utf8proc_int32_t cp;

	if (end == 0)
		return false;
	do
		i--;
	while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80);
	utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(end - i), &cp);
	return is_word_cp(cp);
}

static bool word_after(const char *s, size_t len, size_t i)
{
	utf8proc_int32_t cp;

	if (i >= len)
		return false;
	utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
	return is_word_cp(cp);
}

/* The longest added token at s[i], or NULL. */
static const struct eng_added *added_at(const struct eng_tokenizer *tok, const char *s,
					size_t len, size_t i)
{
	for (size_t k = 0; k < tok->n_added; k++) {
		const struct eng_added *a = &tok->added[tok->added_by_len[k]];

		if (a->len <= len - i && (uint8_t)a->content[0] == (uint8_t)s[i] &&
		    memcmp(a->content, s + i, a->len) == 0)
			return a;
	}
	return NULL;
}

/* Encodes text with added tokens split out.  [seg, i) is pending plain text. */
static int encode_split(struct eng_tokenizer *tok, const char *s, size_t len, struct eng_ids *out)
{
	size_t seg = 0, i = 0, n;
	int rc;

	while (i < len) {
		const struct eng_added *a;
		size_t start = i, stop;

		if (!tok->added_first[(uint8_t)s[i]] || !(a = added_at(tok, s, len, i))) {
			i++;
			continue;
		}
		stop = i + a->len;
		if (a->single_word && (word_before(s, start) || word_after(s, len, stop))) {
			i = stop; /* a discarded match is not searched again */
			continue;
		}
		if (a->lstrip) {
			size_t j = seg;
			size_t last_non_space = seg;

			while (j < start) { /* whitespace run ending at start */
				if (is_space_at(s, len, j, &n)) {
					j += n;
				} else {
					j += n;
					last_non_space = j;
				}
			}
			start = last_non_space;
		}
		if (a->rstrip)
			while (stop < len && is_space_at(s, len, stop, &n))
				stop += n;
		if (start > seg && (rc = eng_pretok_encode(tok, s + seg, start - seg, out)))
			return rc;
		if ((rc = eng_ids_push(out, a->id)))
			return rc;
		seg = i = stop;
	}
	if (seg < len)
		return eng_pretok_encode(tok, s + seg, len - seg, out);
	return 0;
}

int eng_tokenizer_encode(struct eng_tokenizer *tok, const char *text, size_t len,
			 struct eng_ids *out, unsigned flags, struct eng_error *err)
{
	size_t before = out->n, bad = eng_utf8_check(text, len);
	int rc;

	if (bad < len)
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "text is not valid utf-8 at byte %zu", bad);
	if (len == 0)
		return 0;
	if ((flags & ENG_TOK_ENCODE_PLAIN) || tok->n_added == 0)
		rc = eng_pretok_encode(tok, text, len, out);
	else
		rc = encode_split(tok, text, len, out);
	if (rc) {
		out->n = before;
		if (rc == ENG_E_NOMEM)
			return eng_error_set(err, rc, NULL, 0, "out of memory");
		return eng_error_set(err, rc, NULL, 0, "text could not be pre-tokenized (%s)",
				     eng_status_str(rc));
	}
	return 0;
}

/* ---------------------------------------------------------------- decode */

static const char *id_bytes(const struct eng_tokenizer *tok, int32_t id, size_t pos,
			    unsigned flags, size_t *len, struct eng_error *err, int *rc)
{
	*rc = 0;
	*len = 0;
	if (id < 0 || id >= tok->n_tokens || !tok->tokens[id].bytes) {
		*rc = eng_error_set(err, ENG_E_RANGE, NULL, 0,
				    "token id %ld at position %zu is out of range (vocabulary of %ld)",
				    (long)id, pos, (long)tok->n_tokens);
		return NULL;
	}
	if ((flags & ENG_TOK_DECODE_SKIP_SPECIAL) && tok->tokens[id].special)
		return "";
	*len = tok->tokens[id].len;
	return tok->tokens[id].bytes;
}

int eng_tokenizer_decode(const struct eng_tokenizer *tok, const int32_t *ids, size_t n,
			 unsigned flags, char **text, size_t *len, struct eng_error *err)
{
	size_t total = 0, o = 0, bl;
	char *buf;
	int rc;

	*text = NULL;
	*len = 0;
	for (size_t i = 0; i < n; i++) {
		if (!id_bytes(tok, ids[i], i, flags, &bl, err, &rc))
			return rc;
		total += bl;
	}
	buf = malloc(total + 1);
	if (!buf)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *b = id_bytes(tok, ids[i], i, flags, &bl, err, &rc);
		memcpy(buf + o, b, bl);
		o += bl;
	}
	buf[o] = '\0';
	*text = buf;
	*len = o;
	return 0;
}

/* ---------------------------------------------------------------- streaming */

void eng_tok_stream_init(struct eng_tok_stream *s, const struct eng_tokenizer *tok, unsigned flags)
{
	memset(s, 0, sizeof(*s));
	s->tok = tok;
	s->flags = flags;
}

static int reserve(char **buf, size_t *cap, size_t need)
{
	if (need > *cap) {
		size_t nc = *cap ? *cap : 256;
		char *p;

		while (nc < need)
			nc *= 2;
		p = realloc(*buf, nc);
		if (!p)
			return ENG_E_NOMEM;
		*buf = p;
		*cap = nc;
	}
	return 0;
}

static int stream_emit(struct eng_tok_stream *s, const char *b, size_t bl, bool hold,
		       char **buf, size_t *len, size_t *cap, struct eng_error *err)
{
	unsigned char *tmp;
	size_t n = (size_t)s->n_pend + bl, held;

	tmp = malloc(n ? n : 1);
	if (!tmp || reserve(buf, cap, *len + 3 * n + 1)) {
		free(tmp);
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	}
	memcpy(tmp, s->pend, (size_t)s->n_pend);
	memcpy(tmp + s->n_pend, b, bl);
	*len += lossy_copy(tmp, n, *buf + *len, hold, &held);
	(*buf)[*len] = '\0';
	memcpy(s->pend, tmp + n - held, held); /* held < 4: an incomplete character */
	s->n_pend = (int)held;
	free(tmp);
	return 0;
}

int eng_tok_stream_push(struct eng_tok_stream *s, int32_t id, char **buf, size_t *len,
			size_t *cap, struct eng_error *err)
{
	size_t bl;
	int rc;
	const char *b = id_bytes(s->tok, id, 0, s->flags, &bl, err, &rc);

	if (!b)
		return rc;
	return stream_emit(s, b, bl, true, buf, len, cap, err);
}

int eng_tok_stream_flush(struct eng_tok_stream *s, char **buf, size_t *len, size_t *cap,
			 struct eng_error *err)
{
	return stream_emit(s, "", 0, false, buf, len, cap, err);
}
