/*
 * bpe_train.c: byte-level BPE training (see bpe_train.h for the contract).
 *
 * Feeding NFC-normalizes the text, splits it with Qwen2's regex (PCRE2 with
 * UTF and UCP, the gaps between matches kept as pieces too, as HF's
 * "Isolated" split does) and counts each distinct piece ("word") in a hash
 * map keyed by its bytes.  Training turns every word into a sequence of
 * token ids (the 256 byte tokens in GPT-2 byte-level order), keeps a hash
 * map of adjacent-pair counts weighted by word frequency, and per merge:
 * picks the most frequent pair (ties: smaller left id, then smaller right
 * id), names the new token by concatenating the parts' bytes (reusing the
 * id when that string is already a token, as HF does), and rewrites only the
 * words that contain the pair, subtracting their old pairs and adding the
 * new ones.  Finding the best pair is a scan over the pair map: simple and
 * fast enough for vocabularies of a few thousand on a few MB of text.
 *
 * It refuses invalid UTF-8 rather than guessing, and does not implement
 * dropout, unknown tokens, or a continuing-subword prefix.
 */
#include "tools/modelgen/bpe_train.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

const char bpe_qwen2_split_regex[] =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
	"| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* ---------------------------------------------------------------- byte-level alphabet */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
 * other 68 bytes to U+0100 onwards in byte order. */
static unsigned byte_codepoint(unsigned char c)
{
	unsigned n = 0;

	if ((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || c >= 0xae)
		return c;
	for (unsigned b = 0; b < c; b++)
		if (!((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae))
			n++;
	return 256 + n;
}

int bpe_byte_char(unsigned char c, char out[4])
{
	unsigned cp = byte_codepoint(c);

	if (cp < 0x80) {
		out[0] = (char)cp;
		out[1] = '\0';
		return 1;
	}
	out[0] = (char)(0xc0 | (cp >> 6));
	out[1] = (char)(0x80 | (cp & 0x3f));
	out[2] = '\0';
	return 2;
}

/* Token id of each byte: the byte-level characters sorted by code point,
 * which is the order of the first 256 ids in GPT-2's and Qwen's vocab. */
static void byte_ids(int id_of_byte[256], unsigned char byte_of_id[256])
{
	int id = 0;

	for (unsigned cp = 0; cp < 512; cp++)
		for (unsigned b = 0; b < 256; b++)
			if (byte_codepoint((unsigned char)b) == cp) {
				id_of_byte[b] = id;
				byte_of_id[id++] = (unsigned char)b;
			}
}

/* ---------------------------------------------------------------- hash maps */

static uint64_t hash_bytes(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h;
}

/* Byte string -> integer, keys copied and owned. */
struct bslot {
	char *key; /* NULL: empty slot */
	size_t len;
	uint64_t hash;
	long long val;
};

struct bmap {
	struct bslot *slots;
	size_t cap, n; /* cap a power of two */
};

static struct bslot *bmap_find(struct bmap *m, const char *k, size_t len, uint64_t h)
{
	size_t i = h & (m->cap - 1);

	while (m->slots[i].key &&
	       !(m->slots[i].hash == h && m->slots[i].len == len &&
		 memcmp(m->slots[i].key, k, len) == 0))
		i = (i + 1) & (m->cap - 1);
	return &m->slots[i];
}

static int bmap_grow(struct bmap *m)
{
	struct bmap g = { calloc(m->cap ? m->cap * 2 : 1024, sizeof(struct bslot)), 0, 0 };

	if (!g.slots)
		return -1;
	g.cap = m->cap ? m->cap * 2 : 1024;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key)
			*bmap_find(&g, m->slots[i].key, m->slots[i].len, m->slots[i].hash) = m->slots[i];
	g.n = m->n;
	free(m->slots);
	*m = g;
	return 0;
}

/* The slot for key, inserted with val 0 when absent; NULL when out of memory. */
static struct bslot *bmap_get(struct bmap *m, const char *k, size_t len)
{
	uint64_t h = hash_bytes(k, len);
	struct bslot *s;

	if ((m->n + 1) * 2 > m->cap && bmap_grow(m) < 0)
		return NULL;
	s = bmap_find(m, k, len, h);
	if (!s->key) {
		if (!(s->key = malloc(len + 1)))
			return NULL;
		memcpy(s->key, k, len);
		s->key[len] = '\0';
		s->len = len;
		s->hash = h;
		s->val = 0;
		m->n++;
	}
	return s;
}

static void bmap_free(struct bmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	m->slots = NULL;
	m->cap = m->n = 0;
}

/* Pair (left id, right id) -> count.  Key 0 marks an empty slot, so ids are
 * stored plus one. */
struct pslot {
	uint64_t key;
	long long count;
};

struct pmap {
	struct pslot *slots;
	size_t cap, n;
};

static uint64_t pair_key(int a, int b)
{
	return ((uint64_t)(a + 1) << 32) | (uint64_t)(b + 1);
}

static struct pslot *pmap_find(struct pmap *m, uint64_t key)
{
	size_t i = (key * 0x9e3779b97f4a7c15ull) >> 20 & (m->cap - 1);

	while (m->slots[i].key && m->slots[i].key != key)
		i = (i + 1) & (m->cap - 1);
	return &m->slots[i];
}

static int pmap_add(struct pmap *m, uint64_t key, long long d)
{
	struct pslot *s;

	if ((m->n + 1) * 2 > m->cap) {
		struct pmap g = { calloc(m->cap ? m->cap * 2 : 4096, sizeof(struct pslot)), 0, 0 };

		if (!g.slots)
			return -1;
		g.cap = m->cap ? m->cap * 2 : 4096;
		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].key)
				*pmap_find(&g, m->slots[i].key) = m->slots[i];
		g.n = m->n;
		free(m->slots);
		*m = g;
	}
	s = pmap_find(m, key);
	if (!s->key) {
		s->key = key;
		m->n++;
	}
	s->count += d;
	return 0;
}

/* ---------------------------------------------------------------- trainer */

struct bpe_trainer {
	struct bpe_train_params params;
	pcre2_code *re;
	pcre2_match_data *md;
	struct bmap words; /* piece bytes -> count */
};

struct bpe {
	int n_vocab;
	char **tokens;      /* (n_vocab) byte-level strings */
	int n_merges;
	int (*merges)[2];   /* (n_merges, 2) left id, right id */
};

struct bpe_train_params bpe_train_default_params(void)
{
	struct bpe_train_params p = { .vocab_size = 512, .min_frequency = 1 };

	return p;
}

int bpe_trainer_new(const struct bpe_train_params *params,
			struct bpe_trainer **out, struct eng_error *err)
{
	struct bpe_trainer *t;
	int ec;
	PCRE2_SIZE eo;

	*out = NULL;
	if (params->vocab_size < 256 || params->min_frequency < 1)
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "bpe vocabulary must be at least 256 and min frequency at least 1");
	if (!(t = calloc(1, sizeof(*t))))
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	t->params = *params;
	t->re = pcre2_compile((PCRE2_SPTR)bpe_qwen2_split_regex, PCRE2_ZERO_TERMINATED,
			      PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
	if (!t->re) {
		free(t);
		return eng_error_set(err, ENG_E_INVALID, NULL, 0, "split regex: pcre2 error %d", ec);
	}
	pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* optional speed-up */
	t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
	if (!t->md || bmap_grow(&t->words) < 0) {
		bpe_trainer_free(t);
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	}
	*out = t;
	return 0;
}

void bpe_trainer_free(struct bpe_trainer *t)
{
	if (!t)
		return;
	bmap_free(&t->words);
	pcre2_match_data_free(t->md);
	pcre2_code_free(t->re);
	free(t);
}

static int count_word(struct bpe_trainer *t, const char *s, size_t n)
{
	struct bslot *w;

	if (n == 0)
		return 0;
	if (!(w = bmap_get(&t->words, s, n)))
		return -1;
	w->val++;
	return 0;
}

/* Splits normalized text into pieces: every match, and every gap between
 * matches, counts as a word. */
static int split_and_count(struct bpe_trainer *t, const char *s, size_t n)
{
	size_t pos = 0, gap = 0;

	while (pos < n) {
		int rc = pcre2_match(t->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, t->md, NULL);
		PCRE2_SIZE *ov;

		if (rc < 0)
			break;
		ov = pcre2_get_ovector_pointer(t->md);
		if (ov[1] == ov[0]) { /* cannot happen with this regex; never loop */
			pos = ov[0] + 1;
			while (pos < n && ((unsigned char)s[pos] & 0xc0) == 0x80)
				pos++;
			continue;
		}
		if (count_word(t, s + gap, ov[0] - gap) < 0 ||
		    count_word(t, s + ov[0], ov[1] - ov[0]) < 0)
			return -1;
		pos = gap = ov[1];
	}
	return count_word(t, s + gap, n - gap);
}

int bpe_trainer_feed(struct bpe_trainer *t, const char *text, size_t len,
			 const char *name, struct eng_error *err)
{
	utf8proc_uint8_t *nfc = NULL;
	utf8proc_ssize_t n;
	int rc;

	n = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &nfc,
			 UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	if (n < 0) {
		if (n == UTF8PROC_ERROR_NOMEM)
			return eng_error_set(err, ENG_E_NOMEM, name, 0, "out of memory");
		return eng_error_set(err, ENG_E_FORMAT, name, 0, "invalid utf-8");
	}
	rc = split_and_count(t, (const char *)nfc, (size_t)n);
	free(nfc);
	if (rc < 0)
		return eng_error_set(err, ENG_E_NOMEM, name, 0, "out of memory");
	return 0;
}

/* ---------------------------------------------------------------- training */

struct word {
	int *syms;       /* (n) token ids */
	int n;
	long long count;
};

struct train_state {
	struct word *words;
	size_t n_words;
	struct pmap pairs;
	struct bmap tok_ids; /* token bytes -> id */
	char **tok_bytes;    /* (n_tok) raw bytes of each token */
	size_t *tok_len;
	int n_tok, cap_tok;
	int (*merges)[2];
	int n_merges, cap_merges;
};

static int word_pairs(struct train_state *st, const struct word *w, long long sign)
{
	for (int i = 0; i + 1 < w->n; i++)
		if (pmap_add(&st->pairs, pair_key(w->syms[i], w->syms[i + 1]), sign * w->count) < 0)
			return -1;
	return 0;
}

/* The id of the token spelled by bytes, appended when new; -1 when out of
 * memory.  The map holds id + 1 so that 0 means "just inserted". */
static int add_token(struct train_state *st, const char *bytes, size_t len)
{
	struct bslot *s = bmap_get(&st->tok_ids, bytes, len);

	if (!s)
		return -1;
	if (s->val > 0)
		return (int)(s->val - 1);
	if (st->n_tok == st->cap_tok) {
		int cap = st->cap_tok ? st->cap_tok * 2 : 512;
		char **b = realloc(st->tok_bytes, cap * sizeof(*b));
		size_t *l;

		if (!b)
			return -1;
		st->tok_bytes = b;
		if (!(l = realloc(st->tok_len, cap * sizeof(*l))))
			return -1;
		st->tok_len = l;
		st->cap_tok = cap;
	}
	st->tok_bytes[st->n_tok] = s->key; /* owned by the map; stable across growth */
	st->tok_len[st->n_tok] = len;
	s->val = st->n_tok + 1;
	return st->n_tok++;
}

static void state_free(struct train_state *st)
{
	for (size_t i = 0; i < st->n_words; i++)
		free(st->words[i].syms);
	free(st->words);
	free(st->pairs.slots);
	bmap_free(&st->tok_ids);
	free(st->tok_bytes);
	free(st->tok_len);
	free(st->merges);
}

/* Byte tokens first, then every counted word as byte-token ids. */
static int state_init(struct train_state *st, const struct bpe_trainer *t)
{
	int id_of_byte[256];
	unsigned char byte_of_id[256];

	byte_ids(id_of_byte, byte_of_id);
	for (int i = 0; i < 256; i++)
		if (add_token(st, (const char *)&byte_of_id[i], 1) != i)
			return -1;
	if (!(st->words = calloc(t->words.n ? t->words.n : 1, sizeof(*st->words))))
		return -1;
	for (size_t i = 0; i < t->words.cap; i++) {
		const struct bslot *s = &t->words.slots[i];
		struct word *w;

		if (!s->key)
			continue;
		w = &st->words[st->n_words++];
		w->n = (int)s->len;
		w->count = s->val;
		if (!(w->syms = malloc(s->len * sizeof(int))))
			return -1;
		for (size_t j = 0; j < s->len; j++)
			w->syms[j] = id_of_byte[(unsigned char)s->key[j]];
		if (word_pairs(st, w, 1) < 0)
			return -1;
	}
	return 0;
}

/* The most frequent pair with count >= min; ties go to the smaller key,
 * i.e. the smaller (left, right).  0 when none is left. */
static uint64_t best_pair(const struct pmap *m, long long min)
{
	uint64_t best = 0;
	long long bc = 0;

	for (size_t i = 0; i < m->cap; i++) {
		const struct pslot *s = &m->slots[i];

		if (!s->key || s->count < min)
			continue;
		if (s->count > bc || (s->count == bc && s->key < best)) {
			bc = s->count;
			best = s->key;
		}
	}
	return best;
}

/* Rewrites the words holding (a, b) with id c, keeping the pair counts. */
static int apply_merge(struct train_state *st, int a, int b, int c)
{
	for (size_t i = 0; i < st->n_words; i++) {
		struct word *w = &st->words[i];
		int j, k, hit = 0;

		for (j = 0; j + 1 < w->n && !hit; j++)
			hit = w->syms[j] == a && w->syms[j + 1] == b;
		if (!hit)
			continue;
		if (word_pairs(st, w, -1) < 0)
			return -1;
		for (j = 0, k = 0; j < w->n; k++) {
			if (j + 1 < w->n && w->syms[j] == a && w->syms[j + 1] == b) {
				w->syms[k] = c;
				j += 2;
			} else {
				w->syms[k] = w->syms[j++];
			}
		}
		w->n = k;
		if (word_pairs(st, w, 1) < 0)
			return -1;
	}
	return 0;
}

static int merge_once(struct train_state *st, uint64_t key)
{
	int a = (int)(key >> 32) - 1, b = (int)(key & 0xffffffffu) - 1, c;
	size_t la = st->tok_len[a], lb = st->tok_len[b];
	char *cat = malloc(la + lb);

	if (!cat)
		return -1;
	memcpy(cat, st->tok_bytes[a], la);
	memcpy(cat + la, st->tok_bytes[b], lb);
	c = add_token(st, cat, la + lb);
	free(cat);
	if (c < 0)
		return -1;
	if (st->n_merges == st->cap_merges) {
		int cap = st->cap_merges ? st->cap_merges * 2 : 256;
		int (*m)[2] = realloc(st->merges, cap * sizeof(*m));

		if (!m)
			return -1;
		st->merges = m;
		st->cap_merges = cap;
	}
	st->merges[st->n_merges][0] = a;
	st->merges[st->n_merges][1] = b;
	st->n_merges++;
	return apply_merge(st, a, b, c);
}

/* Moves the tokens (as byte-level strings) and merges into a struct bpe. */
static struct bpe *state_result(struct train_state *st)
{
	struct bpe *r = calloc(1, sizeof(*r));

	if (!r || !(r->tokens = calloc(st->n_tok, sizeof(char *)))) {
		free(r);
		return NULL;
	}
	r->n_vocab = st->n_tok;
	for (int i = 0; i < st->n_tok; i++) {
		char *s = malloc(st->tok_len[i] * 2 + 1), *p = s;

		if (!s) {
			bpe_free(r);
			return NULL;
		}
		for (size_t j = 0; j < st->tok_len[i]; j++)
			p += bpe_byte_char((unsigned char)st->tok_bytes[i][j], p);
		r->tokens[i] = s;
	}
	r->merges = st->merges;
	r->n_merges = st->n_merges;
	st->merges = NULL;
	return r;
}

int bpe_trainer_train(struct bpe_trainer *t, struct bpe **out,
			  struct eng_error *err)
{
	struct train_state st = { 0 };
	int rc = 0;

	*out = NULL;
	if (state_init(&st, t) < 0)
		rc = -1;
	while (rc == 0 && st.n_tok < t->params.vocab_size) {
		uint64_t key = best_pair(&st.pairs, t->params.min_frequency);

		if (!key)
			break;
		rc = merge_once(&st, key);
	}
	if (rc == 0 && !(*out = state_result(&st)))
		rc = -1;
	state_free(&st);
	if (rc < 0)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	return 0;
}

int bpe_n_vocab(const struct bpe *b)
{
	return b->n_vocab;
}

int bpe_n_merges(const struct bpe *b)
{
	return b->n_merges;
}

const char *bpe_token(const struct bpe *b, int id)
{
	return id >= 0 && id < b->n_vocab ? b->tokens[id] : NULL;
}

void bpe_merge(const struct bpe *b, int i, int *left, int *right)
{
	*left = b->merges[i][0];
	*right = b->merges[i][1];
}

void bpe_free(struct bpe *b)
{
	if (!b)
		return;
	for (int i = 0; i < b->n_vocab; i++)
		free(b->tokens[i]);
	free(b->tokens);
	free(b->merges);
	free(b);
}

/* ---------------------------------------------------------------- tokenizer.json */

static json_t *byte_level(void)
{
	return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
			 "trim_offsets", 0, "use_regex", 0);
}

static json_t *bpe_model_json(const struct bpe *b)
{
	json_t *vocab = json_object(), *merges = json_array();

	for (int i = 0; vocab && i < b->n_vocab; i++)
		if (json_object_set_new(vocab, b->tokens[i], json_integer(i)) < 0)
			goto fail;
	for (int i = 0; merges && i < b->n_merges; i++)
		if (json_array_append_new(merges, json_pack("[s,s]", b->tokens[b->merges[i][0]],
							    b->tokens[b->merges[i][1]])) < 0)
			goto fail;
	if (!vocab || !merges)
		goto fail;
	return json_pack("{s:s, s:n, s:n, s:s, s:s, s:b, s:b, s:b, s:o, s:o}", "type", "BPE",
			 "dropout", "unk_token", "continuing_subword_prefix", "",
			 "end_of_word_suffix", "", "fuse_unk", 0, "byte_fallback", 0,
			 "ignore_merges", 0, "vocab", vocab, "merges", merges);
fail:
	json_decref(vocab);
	json_decref(merges);
	return NULL;
}

static json_t *added_json(const struct bpe_added *added, int n_added)
{
	json_t *a = json_array();

	for (int i = 0; a && i < n_added; i++)
		if (json_array_append_new(a, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}",
						       "id", added[i].id, "content", added[i].content,
						       "single_word", 0, "lstrip", 0, "rstrip", 0,
						       "normalized", 0, "special", added[i].special)) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

json_t *bpe_tokenizer_json(const struct bpe *b, const struct bpe_added *added,
			       int n_added, struct eng_error *err)
{
	json_t *split, *pre, *tok;

	split = json_pack("{s:s, s:{s:s}, s:s, s:b}", "type", "Split", "pattern", "Regex",
			  bpe_qwen2_split_regex, "behavior", "Isolated", "invert", 0);
	pre = json_pack("{s:s, s:[o,o]}", "type", "Sequence", "pretokenizers", split, byte_level());
	tok = json_pack("{s:s, s:n, s:n, s:o, s:{s:s}, s:o, s:o, s:o, s:o}", "version", "1.0",
			"truncation", "padding", "added_tokens", added_json(added, n_added),
			"normalizer", "type", "NFC", "pre_tokenizer", pre,
			"post_processor", byte_level(), "decoder", byte_level(),
			"model", bpe_model_json(b));
	if (!tok)
		eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory building tokenizer.json");
	return tok;
}
