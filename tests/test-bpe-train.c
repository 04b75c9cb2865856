/*
 * test-bpe-train: the byte-level BPE trainer.
 *
 * Checks the byte-level alphabet, hand-computed merges (most frequent pair
 * first, ties to the smaller ids), determinism, the tokenizer.json shape,
 * and a round trip: a small encoder written here (pre-tokenize with the
 * same regex, apply the merges by rank, look the pieces up in the vocab)
 * must turn the training text into ids that decode back to the text, in
 * fewer tokens than bytes.
 */
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <jansson.h>

#include "tools/modelgen/bpe_train.h"
#include "tests/tap.h"

static const char text[] =
	"The parser reads the configuration file and returns the settings.\n"
	"def parse(path):\n    with open(path) as f:\n        return f.read()\n"
	"Exit code: 0\nExecution output of [execute_bash]:\n12 passed in 0.31s\n"
	"The parser returns the defaults when the file is empty; the tests pass.\n"
	"Caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e  \t tabs\r\n";

static struct bpe *train(const char *s, int vocab)
{
	struct bpe_train_params p = bpe_train_default_params();
	struct bpe_trainer *t;
	struct bpe *b = NULL;
	struct eng_error err;

	p.vocab_size = vocab;
	if (bpe_trainer_new(&p, &t, &err) < 0)
		return NULL;
	if (bpe_trainer_feed(t, s, strlen(s), "text", &err) == 0)
		bpe_trainer_train(t, &b, &err);
	bpe_trainer_free(t);
	return b;
}

static void test_alphabet(void)
{
	char c[4];

	bpe_byte_char(' ', c);
	tap_ok(!strcmp(c, "\xc4\xa0"), "space maps to U+0120");
	bpe_byte_char('!', c);
	tap_ok(!strcmp(c, "!"), "printable bytes map to themselves");
	bpe_byte_char(0, c);
	tap_ok(!strcmp(c, "\xc4\x80"), "byte 0 maps to U+0100");
	bpe_byte_char(0xad, c);
	tap_ok(!strcmp(c, "\xc5\x83"), "byte 0xad maps to U+0143");
}

static int merge_is(const struct bpe *b, int i, const char *l, const char *r)
{
	int a, c;

	bpe_merge(b, i, &a, &c);
	return !strcmp(bpe_token(b, a), l) && !strcmp(bpe_token(b, c), r);
}

static void test_hand_merges(void)
{
	struct bpe *b = train("abab", 258);

	tap_ok(b && bpe_n_merges(b) == 2 && merge_is(b, 0, "a", "b") &&
	       merge_is(b, 1, "ab", "ab"), "abab: a+b (2 times) then ab+ab");
	tap_ok(b && !strcmp(bpe_token(b, 256), "ab") && !strcmp(bpe_token(b, 257), "abab"),
	       "new tokens get ids 256, 257");
	bpe_free(b);
	/* all pairs occur once: (x,y)=(87,88) < (z,w)=(89,86) < (G,z)=(220,89) */
	b = train("xy zw", 259);
	tap_ok(b && bpe_n_merges(b) == 3 && merge_is(b, 0, "x", "y") &&
	       merge_is(b, 1, "z", "w") && merge_is(b, 2, "\xc4\xa0", "zw"),
	       "ties go to the smaller (left, right) ids");
	tap_ok(b && bpe_n_vocab(b) == 259, "training stops at the target size");
	bpe_free(b);
	b = train("ab", 300);
	tap_ok(b && bpe_n_vocab(b) == 257 && bpe_n_merges(b) == 1,
	       "training stops when no pair is left");
	bpe_free(b);
}

static void test_deterministic(void)
{
	struct bpe *a = train(text, 400), *b = train(text, 400);
	int same = a && b && bpe_n_vocab(a) == bpe_n_vocab(b) &&
		   bpe_n_merges(a) == bpe_n_merges(b);

	for (int i = 0; same && i < bpe_n_vocab(a); i++)
		same = !strcmp(bpe_token(a, i), bpe_token(b, i));
	for (int i = 0; same && i < bpe_n_merges(a); i++) {
		int l1, r1, l2, r2;

		bpe_merge(a, i, &l1, &r1);
		bpe_merge(b, i, &l2, &r2);
		same = l1 == l2 && r1 == r2;
	}
	tap_ok(same, "training twice gives the same vocab and merges");
	tap_ok(a && bpe_n_vocab(a) > 300 && bpe_n_vocab(a) <= 400,
	       "vocab grows to %d (at most 400; the text runs out of pairs)", a ? bpe_n_vocab(a) : 0);
	tap_ok(a && !strcmp(bpe_token(a, 0), "!") && !strcmp(bpe_token(a, 220), "\xc4\xa0"),
	       "byte tokens in GPT-2 order ('!' = 0, 'G.' = 220)");
	bpe_free(a);
	bpe_free(b);
}

/* ---------------------------------------------------------------- round trip */

struct sym {
	char s[256];
};

static int merge_rank(const struct bpe *b, const char *l, const char *r)
{
	for (int i = 0; i < bpe_n_merges(b); i++)
		if (merge_is(b, i, l, r))
			return i;
	return -1;
}

static int token_id(const struct bpe *b, const char *s)
{
	for (int i = 0; i < bpe_n_vocab(b); i++)
		if (!strcmp(bpe_token(b, i), s))
			return i;
	return -1;
}

/* Encodes one pre-token by merge rank; appends ids, returns their number or -1. */
static int encode_piece(const struct bpe *b, const char *p, size_t n, int *ids)
{
	struct sym *sy = calloc(n ? n : 1, sizeof(*sy));
	int m = 0, k = 0;

	for (size_t i = 0; i < n; i++)
		bpe_byte_char((unsigned char)p[i], sy[m++].s);
	for (;;) {
		int best = -1, at = -1;

		for (int i = 0; i + 1 < m; i++) {
			int r = merge_rank(b, sy[i].s, sy[i + 1].s);

			if (r >= 0 && (best < 0 || r < best)) {
				best = r;
				at = i;
			}
		}
		if (at < 0)
			break;
		size_t la = strlen(sy[at].s), lb = strlen(sy[at + 1].s);

		if (la + lb >= sizeof(sy[at].s))
			break;
		memcpy(sy[at].s + la, sy[at + 1].s, lb + 1);
		memmove(&sy[at + 1], &sy[at + 2], (size_t)(m - at - 2) * sizeof(*sy));
		m--;
	}
	for (int i = 0; i < m; i++)
		if ((ids[k++] = token_id(b, sy[i].s)) < 0)
			k = -1000000;
	free(sy);
	return k < 0 ? -1 : k;
}

static int encode(const struct bpe *b, const char *s, int *ids)
{
	int ec, n = 0;
	PCRE2_SIZE eo, pos = 0, len = strlen(s), *ov;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)bpe_qwen2_split_regex, PCRE2_ZERO_TERMINATED,
				       PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);

	while (n >= 0 && pos < len && pcre2_match(re, (PCRE2_SPTR)s, len, pos, 0, md, NULL) > 0) {
		int k;

		ov = pcre2_get_ovector_pointer(md);
		k = encode_piece(b, s + pos, ov[1] - pos, ids + n); /* gap + match */
		n = k < 0 ? -1 : n + k;
		pos = ov[1];
	}
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	return n;
}

/* ids -> bytes through the byte-level alphabet. */
static size_t decode(const struct bpe *b, const int *ids, int n, char *out)
{
	size_t k = 0;

	for (int i = 0; i < n; i++)
		for (const char *p = bpe_token(b, ids[i]); *p;) {
			for (int c = 0; c < 256; c++) {
				char ch[4];
				int l = bpe_byte_char((unsigned char)c, ch);

				if (!strncmp(p, ch, (size_t)l)) {
					out[k++] = (char)c;
					p += l;
					break;
				}
			}
		}
	out[k] = '\0';
	return k;
}

static void test_round_trip(void)
{
	struct bpe *b = train(text, 450);
	int *ids = calloc(sizeof(text), sizeof(int));
	char *back = calloc(sizeof(text) + 1, 1);
	int n = b ? encode(b, text, ids) : -1;

	tap_ok(n > 0, "the training text encodes with the learned merges (%d tokens)", n);
	tap_ok(n > 0 && decode(b, ids, n, back) == strlen(text) && !strcmp(back, text),
	       "decoding gives the text back byte for byte");
	tap_ok(n > 0 && n * 10 < (int)strlen(text) * 6, "%d tokens for %zu bytes", n, strlen(text));
	free(ids);
	free(back);
	bpe_free(b);
}

/* ---------------------------------------------------------------- tokenizer.json */

static void test_json(void)
{
	struct bpe *b = train(text, 300);
	struct bpe_added added[2] = { { 300, "<|endoftext|>", 1 }, { 301, "<|im_end|>", 1 } };
	struct eng_error err;
	json_t *t = b ? bpe_tokenizer_json(b, added, 2, &err) : NULL;
	json_t *model = json_object_get(t, "model"), *merges = json_object_get(model, "merges");
	json_t *pre = json_object_get(t, "pre_tokenizer");
	json_t *split = json_array_get(json_object_get(pre, "pretokenizers"), 0);
	char *s = t ? json_dumps(t, JSON_COMPACT) : NULL;
	json_t *back = s ? json_loads(s, 0, NULL) : NULL;
	int pairs = json_is_array(merges) && json_array_size(merges) == (size_t)bpe_n_merges(b);

	for (size_t i = 0; pairs && i < json_array_size(merges); i++)
		pairs = json_array_size(json_array_get(merges, i)) == 2;
	tap_ok(back && json_equal(back, t), "tokenizer.json dumps and parses back");
	tap_ok(!strcmp(json_string_value(json_object_get(model, "type")) ?: "", "BPE") &&
	       json_object_size(json_object_get(model, "vocab")) == 300 &&
	       json_is_false(json_object_get(model, "byte_fallback")), "model: BPE, 300 tokens");
	tap_ok(pairs, "merges are [left, right] pairs");
	tap_ok(!strcmp(json_string_value(json_object_get(json_object_get(split, "pattern"), "Regex"))
		       ?: "", bpe_qwen2_split_regex), "pre_tokenizer splits on the Qwen2 regex");
	tap_ok(json_array_size(json_object_get(t, "added_tokens")) == 2 &&
	       json_integer_value(json_object_get(json_array_get(json_object_get(t, "added_tokens"),
								  1), "id")) == 301,
	       "added tokens carry their ids");
	free(s);
	json_decref(back);
	json_decref(t);
	bpe_free(b);
}

/* The fixed parts must match Qwen's own tokenizer.json exactly. */
static void test_against_qwen(void)
{
	const char *top = getenv("top_srcdir");
	char path[4096];
	json_t *q, *mine;
	struct bpe *b = train("abc", 257);
	struct eng_error err;
	const char *keys[] = { "normalizer", "pre_tokenizer", "decoder", "post_processor" };

	snprintf(path, sizeof(path), "%s/../shared/data/qwen2-tokenizer/tokenizer.json",
		 top ? top : "..");
	if (!(q = json_load_file(path, 0, NULL))) {
		tap_ok(1, "# SKIP no ../shared/data/qwen2-tokenizer");
		bpe_free(b);
		return;
	}
	mine = bpe_tokenizer_json(b, NULL, 0, &err);
	for (size_t i = 0; i < 4; i++)
		tap_ok(json_equal(json_object_get(q, keys[i]), json_object_get(mine, keys[i])),
		       "%s is the same as Qwen's", keys[i]);
	json_decref(q);
	json_decref(mine);
	bpe_free(b);
}

static void test_errors(void)
{
	struct bpe_train_params p = bpe_train_default_params();
	struct bpe_trainer *t;
	struct eng_error err;

	p.vocab_size = 100;
	tap_ok(bpe_trainer_new(&p, &t, &err) == ENG_E_INVALID, "vocab below 256 is refused");
	p.vocab_size = 300;
	bpe_trainer_new(&p, &t, &err);
	tap_ok(bpe_trainer_feed(t, "ok \xff\xfe", 5, "bad.txt", &err) == ENG_E_FORMAT &&
	       !strcmp(err.file, "bad.txt"), "invalid utf-8 is refused, naming the file");
	bpe_trainer_free(t);
}

int main(void)
{
	test_alphabet();
	test_hand_merges();
	test_deterministic();
	test_round_trip();
	test_json();
	test_against_qwen();
	test_errors();
	return tap_done();
}
