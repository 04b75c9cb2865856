/*
 * test-tokenizer.c: the tokenizer against reference ids.
 *
 * Vectors are lines {"text":..., "ids":[...]} made by an independent
 * implementation (tests/tokenizer/gen-vectors.mjs).  Each text must encode
 * to exactly those ids and decode back to the text (in NFC, since the
 * normalizer composes), both at once and through the streaming decoder.
 * The tiny in-tree tokenizers always run; the real Qwen tokenizer only when
 * the shared data directory is there.  Error paths (invalid UTF-8, ids out
 * of range, unreadable and malformed files) are checked on the tiny one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <utf8proc.h>

#include "engine/tokenizer.h"
#include "tests/tap.h"
#include "tests/test-ids.h"

static char *path_join(const char *a, const char *b)
{
	char *p = malloc(strlen(a) + strlen(b) + 2);

	sprintf(p, "%s/%s", a, b);
	return p;
}

static void show_diff(const struct eng_ids *got, json_t *want)
{
	size_t i = 0;

	while (i < got->n && i < json_array_size(want) &&
	       got->ids[i] == json_integer_value(json_array_get(want, i)))
		i++;
	tap_diag("first difference at %zu: got %ld, want %ld (got %zu ids, want %zu)", i,
		 i < got->n ? (long)got->ids[i] : -1L,
		 (long)(i < json_array_size(want) ? json_integer_value(json_array_get(want, i)) : -1),
		 got->n, json_array_size(want));
}

static char *nfc(const char *s, size_t len, size_t *out_len)
{
	utf8proc_uint8_t *dst = NULL;
	utf8proc_ssize_t n;

	if (len == 0) {
		*out_len = 0;
		return strdup("");
	}
	n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &dst,
			 UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	*out_len = n < 0 ? 0 : (size_t)n;
	return (char *)dst;
}

static int stream_equal(const struct eng_tokenizer *tok, const struct eng_ids *ids,
			const char *want, size_t want_len)
{
	struct eng_tok_stream s;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int ok = 1;

	eng_tok_stream_init(&s, tok, 0);
	for (size_t i = 0; i < ids->n && ok; i++) {
		size_t before = len;
		ok = eng_tok_stream_push(&s, ids->ids[i], &buf, &len, &cap, NULL) == 0;
		/* every chunk is whole characters */
		ok = ok && eng_utf8_check(buf + before, len - before) == len - before;
	}
	ok = ok && eng_tok_stream_flush(&s, &buf, &len, &cap, NULL) == 0;
	ok = ok && len == want_len && memcmp(buf ? buf : "", want, len) == 0;
	free(buf);
	return ok;
}

/* One vector: encode, compare, decode, compare.  Returns 1 if all agree. */
static int check_vector(struct eng_tokenizer *tok, json_t *rec, long line, int roundtrip)
{
	const char *text = json_string_value(json_object_get(rec, "text"));
	size_t len = json_string_length(json_object_get(rec, "text")), dlen, nlen;
	json_t *want = json_object_get(rec, "ids");
	struct eng_ids ids = { 0 };
	struct eng_error err;
	char *dec = NULL, *norm;
	int ok;

	ok = eng_tokenizer_encode(tok, text, len, &ids, 0, &err) == 0 && test_ids_equal(&ids, want);
	if (!ok)
		show_diff(&ids, want);
	norm = nfc(text, len, &nlen);
	ok = tap_ok(ok, "line %ld: %zu ids as the reference", line, json_array_size(want)) && ok;
	if (eng_tokenizer_decode(tok, ids.ids, ids.n, 0, &dec, &dlen, &err) != 0)
		dlen = (size_t)-1;
	if (roundtrip)
		ok &= tap_ok(dlen == nlen && memcmp(dec, norm, nlen) == 0 && stream_equal(tok, &ids, norm, nlen),
		     "line %ld: decodes back to the (NFC) text", line);
	free(dec);
	free(norm);
	eng_ids_free(&ids);
	return ok;
}

/* roundtrip: the tokenizer neither adds prefix spaces nor strips any, so
 * decoding gives the text back. */
static void run_vectors(const char *tok_path, const char *vec_path, int roundtrip)
{
	struct eng_tokenizer *tok = NULL;
	struct eng_error err;
	FILE *f = fopen(vec_path, "r");
	char *line = NULL, buf[1600];
	size_t cap = 0;
	long lineno = 0, n_ok = 0;

	if (!tap_ok(eng_tokenizer_load(tok_path, &tok, &err) == 0, "load %s", tok_path)) {
		tap_diag("%s", eng_error_format(&err, buf, sizeof(buf)));
		if (f)
			fclose(f);
		return;
	}
	if (!tap_ok(f != NULL, "open %s", vec_path)) {
		eng_tokenizer_free(tok);
		return;
	}
	while (getline(&line, &cap, f) > 0) {
		json_t *rec = json_loads(line, JSON_ALLOW_NUL, NULL);

		lineno++;
		if (!tap_ok(rec != NULL, "line %ld parses", lineno))
			continue;
		n_ok += check_vector(tok, rec, lineno, roundtrip);
		json_decref(rec);
	}
	tap_ok(lineno > 0 && n_ok == lineno, "%s: %ld of %ld vectors agree", vec_path, n_ok, lineno);
	free(line);
	fclose(f);
	eng_tokenizer_free(tok);
}

static void check_errors(const char *tiny_dir, const char *bad_dir)
{
	struct eng_tokenizer *tok = NULL;
	struct eng_error err;
	struct eng_ids ids = { 0 };
	int32_t bad_ids[] = { 1, 2, 99999999 };
	char *dec = NULL, *path;
	size_t len;

	tap_ok(eng_tokenizer_load("/nonexistent/tokenizer.json", &tok, &err) == ENG_E_IO && !tok,
	       "missing file: ENG_E_IO");
	path = path_join(bad_dir, "bad-merge.json");
	tap_ok(eng_tokenizer_load(path, &tok, &err) == ENG_E_FORMAT && strstr(err.msg, "merges[1]"),
	       "merge of unknown tokens: ENG_E_FORMAT naming the merge (%s)", err.msg);
	free(path);
	path = path_join(bad_dir, "wordpiece.json");
	tap_ok(eng_tokenizer_load(path, &tok, &err) == ENG_E_UNSUPPORTED, "WordPiece: ENG_E_UNSUPPORTED");
	free(path);
	path = path_join(bad_dir, "syntax.json");
	tap_ok(eng_tokenizer_load(path, &tok, &err) == ENG_E_FORMAT && err.line == 3,
	       "JSON syntax error: ENG_E_FORMAT at line 3 (line %ld)", err.line);
	free(path);
	path = path_join(bad_dir, "sparse-id.json");
	tap_ok(eng_tokenizer_load(path, &tok, &err) == ENG_E_FORMAT && !tok &&
	       strstr(err.msg, "222222221"),
	       "a far id in a small vocabulary: ENG_E_FORMAT, no table of its size (%s)", err.msg);
	free(path);
	if (!tap_ok(eng_tokenizer_load(tiny_dir, &tok, &err) == 0, "load tiny from its directory"))
		return;
	tap_ok(eng_tokenizer_encode(tok, "ab\xC3(", 4, &ids, 0, &err) == ENG_E_INVALID &&
	       ids.n == 0 && strstr(err.msg, "byte 2"), "invalid utf-8: ENG_E_INVALID at byte 2");
	tap_ok(eng_tokenizer_decode(tok, bad_ids, 3, 0, &dec, &len, &err) == ENG_E_RANGE &&
	       strstr(err.msg, "position 2"), "id out of range: ENG_E_RANGE at position 2");
	tap_ok(eng_tokenizer_token_id(tok, "<|im_end|>") >= 0 &&
	       eng_tokenizer_is_special(tok, eng_tokenizer_token_id(tok, "<|im_end|>")) &&
	       eng_tokenizer_token_id(tok, "no such token here") == -1, "token_id and is_special");
	eng_tokenizer_encode(tok, "a<|im_end|>b", 12, &ids, ENG_TOK_ENCODE_PLAIN, &err);
	tap_ok(ids.n > 3, "ENCODE_PLAIN does not match added tokens (%zu ids)", ids.n);
	eng_tokenizer_free(tok);
	eng_ids_free(&ids);
}

/* The streaming decoder on bytes split inside characters. */
static void check_stream_split(const char *tiny_dir)
{
	struct eng_tokenizer *tok = NULL;
	struct eng_tok_stream s;
	const char *text = "\xF0\x9F\x98\x80 \xE4\xBD\xA0";  /* U+1F600, space, U+4F60 */
	int32_t ids[16];
	size_t n = strlen(text), len = 0, cap = 0, lens[16];
	char *buf = NULL;

	if (eng_tokenizer_load(tiny_dir, &tok, NULL) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		char b[2] = { text[i], '\0' };
		ids[i] = eng_tokenizer_token_id(tok, b); /* the single-byte tokens */
	}
	eng_tok_stream_init(&s, tok, 0);
	for (size_t i = 0; i < n; i++) {
		eng_tok_stream_push(&s, ids[i], &buf, &len, &cap, NULL);
		lens[i] = len;
	}
	tap_ok(lens[0] == 0 && lens[2] == 0 && lens[3] == 4 && lens[4] == 5 && lens[6] == 5 &&
	       lens[7] == 8 && memcmp(buf, text, n) == 0,
	       "stream holds back partial characters byte by byte");
	/* a lone lead byte at the end becomes U+FFFD on flush */
	eng_tok_stream_push(&s, ids[0], &buf, &len, &cap, NULL);
	eng_tok_stream_flush(&s, &buf, &len, &cap, NULL);
	tap_ok(len == n + 3 && memcmp(buf + n, "\xEF\xBF\xBD", 3) == 0, "flush: incomplete -> U+FFFD");
	free(buf);
	eng_tokenizer_free(tok);
}

/* The tiny tokenizer with its NFC normalizer wrapped in a Sequence gives
 * the same ids: written to a temporary file and run on the tiny vectors. */
static void check_sequence_normalizer(const char *tiny_dir, const char *tvec)
{
	char *src = path_join(tiny_dir, "tokenizer.json");
	char tmp[] = "/tmp/test-tokenizer-XXXXXX";
	json_t *root = json_load_file(src, 0, NULL);
	int fd = mkstemp(tmp);

	if (!tap_ok(root && fd >= 0, "copy %s with a Sequence normalizer", src)) {
		free(src);
		return;
	}
	json_object_set_new(root, "normalizer",
			    json_pack("{s:s,s:[{s:s}]}", "type", "Sequence", "normalizers", "type", "NFC"));
	json_dumpfd(root, fd, 0);
	close(fd);
	run_vectors(tmp, tvec, 1);
	unlink(tmp);
	json_decref(root);
	free(src);
}

int main(void)
{
	const char *top = getenv("top_srcdir");
	char *data, *shared, *qwen, *vec, *tiny, *tvec, *flags, *fvec;
	FILE *probe;

	if (!top)
		top = ".";
	data = path_join(top, "tests/data/tokenizer");
	tiny = path_join(top, "samples/tokenizer");
	tvec = path_join(data, "tiny-vectors.jsonl");
	flags = path_join(data, "flags/tokenizer.json");
	fvec = path_join(data, "flags-vectors.jsonl");
	run_vectors(tiny, tvec, 1);
	run_vectors(flags, fvec, 0);
	check_sequence_normalizer(tiny, tvec);
	check_errors(tiny, data);
	check_stream_split(tiny);

	shared = path_join(top, "../shared/data/qwen2-tokenizer");
	qwen = path_join(shared, "tokenizer.json");
	vec = path_join(data, "qwen2-vectors.jsonl");
	if ((probe = fopen(qwen, "r"))) {
		fclose(probe);
		run_vectors(qwen, vec, 1);
	} else {
		tap_diag("skipping the Qwen2 vectors: %s is absent", qwen);
	}
	free(data); free(tiny); free(tvec); free(flags); free(fvec);
	free(shared); free(qwen); free(vec);
	return tap_done();
}
