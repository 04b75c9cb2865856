/*
 * pretok.c: normalizer and pre-tokenizer of the tokenizer pipeline.
 *
 * Normalizers: the Unicode forms NFC/NFD/NFKC/NFKD through utf8proc, in
 * the order tokenizer.json lists them.  NFC, the one real models use, has a
 * fast path: text with no code point at or above U+0300 (no UTF-8 lead byte
 * >= 0xCC) is already in NFC, so ASCII and Latin-1 text is never copied.
 *
 * Pre-tokenizer: a list of stages, each splitting every piece of the stage
 * before it with a PCRE2 regex (Split with "Isolated" or "Removed"
 * behaviour, or ByteLevel with use_regex); ByteLevel's byte-to-character
 * mapping itself costs nothing here, because the vocabulary was mapped back
 * to raw bytes at load time and BPE runs on bytes.  Regexes are compiled
 * with PCRE2_UTF | PCRE2_UCP so that \s, \p{L} and \p{N} are Unicode-aware
 * as in HF's engine, and JIT-compiled when the platform allows.
 * Text reaching here has been checked to be valid UTF-8 (PCRE2_NO_UTF_CHECK).
 */
#include "engine/tokenizer_int.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 bytes get U+0100.. in byte order. */
static bool byte_is_self(unsigned b)
{
	return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
}

int eng_bytelevel_byte(uint32_t cp)
{
	static const uint8_t shifted[68] = {
		0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
		20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 127, 128, 129, 130,
		131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144, 145,
		146, 147, 148, 149, 150, 151, 152, 153, 154, 155, 156, 157, 158, 159, 160,
		173,
	};

	if (cp < 256)
		return byte_is_self(cp) ? (int)cp : -1;
	if (cp < 256 + 68)
		return shifted[cp - 256];
	return -1;
}

int eng_pretok_compile(struct eng_pretok_stage *st, const char *pattern, size_t len,
		       bool literal, struct eng_error *err)
{
	int errcode;
	PCRE2_SIZE erroff;
	uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);

	st->re = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &errcode, &erroff, NULL);
	if (!st->re) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(errcode, msg, sizeof(msg));
		return eng_error_set(err, ENG_E_UNSUPPORTED, NULL, 0,
				     "pre-tokenizer regex at offset %zu: %s", (size_t)erroff,
				     (char *)msg);
	}
	/* JIT is an optimisation; without it pcre2_match is used. */
	(void)pcre2_jit_compile(st->re, PCRE2_JIT_COMPLETE);
	st->md = pcre2_match_data_create_from_pattern(st->re, NULL);
	if (!st->md)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	return 0;
}

void eng_pretok_free(struct eng_tokenizer *tok)
{
	for (int i = 0; i < tok->n_stages; i++) {
		pcre2_match_data_free(tok->stages[i].md);
		pcre2_code_free(tok->stages[i].re);
	}
	tok->n_stages = 0;
	free(tok->scratch);
	tok->scratch = NULL;
}

/* ---------------------------------------------------------------- normalize */

static bool nfc_trivially(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((uint8_t)s[i] >= 0xCC)
			return false;
	return true;
}

int eng_normalize(struct eng_tokenizer *tok, const char *text, size_t len,
		  const char **out, size_t *out_len)
{
	*out = text;
	*out_len = len;
	for (int i = 0; i < tok->n_norms; i++) {
		utf8proc_option_t opt = UTF8PROC_STABLE;
		utf8proc_uint8_t *dst = NULL;
		utf8proc_ssize_t n;

		switch (tok->norms[i]) {
		case ENG_NORM_NFC:
			if (nfc_trivially(*out, *out_len))
				continue;
			opt |= UTF8PROC_COMPOSE;
			break;
		case ENG_NORM_NFD: opt |= UTF8PROC_DECOMPOSE; break;
		case ENG_NORM_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
		case ENG_NORM_NFKD: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
		}
		if (*out_len == 0)
			continue;
		n = utf8proc_map((const utf8proc_uint8_t *)*out, (utf8proc_ssize_t)*out_len, &dst,
				 opt);
		if (n < 0)
			return n == UTF8PROC_ERROR_NOMEM ? ENG_E_NOMEM : ENG_E_INVALID;
		free(tok->scratch); /* *out may point into it: only now is it unused */
		tok->scratch = (char *)dst;
		tok->scratch_cap = (size_t)n;
		*out = tok->scratch;
		*out_len = (size_t)n;
	}
	return 0;
}

/* ---------------------------------------------------------------- split */

static int run_stage(struct eng_tokenizer *tok, int si, const char *s, size_t len,
		     struct eng_ids *out);

static size_t utf8_next(const char *s, size_t len, size_t i)
{
	i++;
	while (i < len && ((uint8_t)s[i] & 0xC0) == 0x80)
		i++;
	return i;
}

static int split_regex(struct eng_tokenizer *tok, int si, const char *s, size_t len,
		       struct eng_ids *out)
{
	struct eng_pretok_stage *st = &tok->stages[si];
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(st->md);
	size_t emitted = 0, from = 0;
	int rc;

	while (from <= len) {
		int m = pcre2_match(st->re, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, st->md,
				    NULL);
		size_t ms, me;

		if (m == PCRE2_ERROR_NOMATCH)
			break; /* the rest is one gap */
		if (m < 0)
			return ENG_E_RANGE; /* a match limit: refuse rather than guess */
		ms = ov[0];
		me = ov[1];
		if (me == ms) { /* an empty match splits nothing; search on */
			if (ms >= len)
				break;
			from = utf8_next(s, len, ms);
			continue;
		}
		if (ms > emitted && (rc = run_stage(tok, si + 1, s + emitted, ms - emitted, out)))
			return rc;
		if (!st->removed && (rc = run_stage(tok, si + 1, s + ms, me - ms, out)))
			return rc;
		emitted = from = me;
	}
	if (emitted < len)
		return run_stage(tok, si + 1, s + emitted, len - emitted, out);
	return 0;
}

static int run_stage(struct eng_tokenizer *tok, int si, const char *s, size_t len,
		     struct eng_ids *out)
{
	const struct eng_pretok_stage *st;

	if (si == tok->n_stages)
		return eng_bpe_word(tok, s, len, out);
	st = &tok->stages[si];
	if (st->add_prefix_space && len > 0 && s[0] != ' ') {
		char *p = malloc(len + 1);
		int rc;

		if (!p)
			return ENG_E_NOMEM;
		p[0] = ' ';
		memcpy(p + 1, s, len);
		rc = st->re ? split_regex(tok, si, p, len + 1, out)
			    : run_stage(tok, si + 1, p, len + 1, out);
		free(p);
		return rc;
	}
	return st->re ? split_regex(tok, si, s, len, out) : run_stage(tok, si + 1, s, len, out);
}

int eng_pretok_encode(struct eng_tokenizer *tok, const char *text, size_t len,
		      struct eng_ids *out)
{
	const char *s;
	size_t n;
	int rc = eng_normalize(tok, text, len, &s, &n);

	if (rc)
		return rc;
	return run_stage(tok, 0, s, n, out);
}
