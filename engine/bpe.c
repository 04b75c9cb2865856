/*
 * bpe.c: the byte-pair-encoding core of the tokenizer: the vocabulary map
 * (bytes -> id), the merge table ((left, right) -> rank, merged id), the
 * merge loop for one pre-token, and a cache of pre-token -> ids.
 *
 * The merge loop is the one of HF tokenizers: start from one symbol per
 * byte, repeatedly apply the lowest-ranked merge among adjacent pairs (ties
 * go to the leftmost pair), using a binary heap with lazy invalidation so
 * that a 10 kB whitespace run costs O(n log n), not O(n^2).  A byte with
 * no token of its own is dropped, as HF does for a BPE without unk_token.
 *
 * Most pre-tokens repeat (words, indentation), so finished pre-tokens go
 * into an open-addressing cache; when it fills up it is emptied wholesale
 * rather than tracking recency: simple, bounded, and good enough for text
 * whose vocabulary is stable.  It refuses dropout and unk_token handling
 * (rejected at load time).
 */
#include "engine/tokenizer_int.h"

#include <stdlib.h>
#include <string.h>

#define CACHE_MAX_KEY 256        /* longer pre-tokens are not cached */
#define CACHE_SLOTS (1u << 17)   /* power of two */
#define CACHE_MAX_USED (CACHE_SLOTS / 2)

uint64_t eng_hash_bytes(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull ^ len;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, s + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	for (; i < len; i++)
		h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ull;
	h ^= h >> 32;
	return h ? h : 1;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static size_t pow2_at_least(size_t n)
{
	size_t c = 16;

	while (c < n)
		c <<= 1;
	return c;
}

/* ---------------------------------------------------------------- vocab map */

int eng_strmap_init(struct eng_strmap *m, size_t n_expected)
{
	m->cap = pow2_at_least(n_expected * 2 + 1);
	m->slots = calloc(m->cap, sizeof(*m->slots));
	return m->slots ? 0 : ENG_E_NOMEM;
}

int eng_strmap_put(struct eng_strmap *m, const struct eng_tok_entry *tokens, int32_t id)
{
	const struct eng_tok_entry *e = &tokens[id];
	size_t i = eng_hash_bytes(e->bytes, e->len) & (m->cap - 1);

	for (;; i = (i + 1) & (m->cap - 1)) {
		uint32_t v = m->slots[i];

		if (v == 0) {
			m->slots[i] = (uint32_t)id + 1;
			return 0;
		}
		const struct eng_tok_entry *o = &tokens[v - 1];
		if (o->len == e->len && memcmp(o->bytes, e->bytes, e->len) == 0)
			return 0;
	}
}

int32_t eng_strmap_get(const struct eng_strmap *m, const struct eng_tok_entry *tokens,
		       const char *s, size_t len)
{
	size_t i = eng_hash_bytes(s, len) & (m->cap - 1);

	for (;; i = (i + 1) & (m->cap - 1)) {
		uint32_t v = m->slots[i];

		if (v == 0)
			return -1;
		const struct eng_tok_entry *o = &tokens[v - 1];
		if (o->len == len && memcmp(o->bytes, s, len) == 0)
			return (int32_t)(v - 1);
	}
}

void eng_strmap_free(struct eng_strmap *m)
{
	free(m->slots);
	m->slots = NULL;
	m->cap = 0;
}

/* ---------------------------------------------------------------- merges */

int eng_merges_init(struct eng_tokenizer *tok, size_t n)
{
	tok->merges_cap = pow2_at_least(n * 2 + 1);
	tok->merges = calloc(tok->merges_cap, sizeof(*tok->merges));
	return tok->merges ? 0 : ENG_E_NOMEM;
}

static uint64_t pair_key(int32_t left, int32_t right)
{
	return (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
}

/* A pair listed twice keeps its first (lowest) rank, as HF does. */
int eng_merges_put(struct eng_tokenizer *tok, int32_t left, int32_t right, int32_t rank,
		   int32_t merged)
{
	uint64_t key = pair_key(left, right);
	size_t mask = tok->merges_cap - 1;

	for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
		struct eng_merge_slot *s = &tok->merges[i];

		if (s->key == key)
			return 0;
		if (s->key == 0) {
			s->key = key;
			s->rank = rank;
			s->merged = merged;
			return 0;
		}
	}
}

static const struct eng_merge_slot *merge_get(const struct eng_tokenizer *tok, int32_t left,
					      int32_t right)
{
	uint64_t key = pair_key(left, right);
	size_t mask = tok->merges_cap - 1;

	if (!tok->merges)
		return NULL;
	for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
		const struct eng_merge_slot *s = &tok->merges[i];

		if (s->key == key)
			return s;
		if (s->key == 0)
			return NULL;
	}
}

/* ---------------------------------------------------------------- merge loop */

struct heap_item {
	int32_t rank;
	int32_t pos;
};

static bool item_less(struct heap_item a, struct heap_item b)
{
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(struct heap_item *h, size_t *n, struct heap_item it)
{
	size_t i = (*n)++;

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (!item_less(it, h[p]))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = it;
}

static struct heap_item heap_pop(struct heap_item *h, size_t *n)
{
	struct heap_item top = h[0], last = h[--(*n)];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= *n)
			break;
		if (c + 1 < *n && item_less(h[c + 1], h[c]))
			c++;
		if (!item_less(h[c], last))
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n > 0)
		h[i] = last;
	return top;
}

/* Working arrays of one merge loop: symbol ids with a doubly linked list
 * over positions (dead symbols have id -1), and the candidate heap. */
struct bpe_work {
	int32_t *id, *prev, *next;  /* (n_sym) */
	struct heap_item *heap;     /* (n_sym) at most one live push per merge + initial */
	size_t n_heap;
};

static void push_pair(const struct eng_tokenizer *tok, struct bpe_work *w, int32_t pos)
{
	int32_t nx = w->next[pos];
	const struct eng_merge_slot *m;

	if (nx < 0)
		return;
	m = merge_get(tok, w->id[pos], w->id[nx]);
	if (m)
		heap_push(w->heap, &w->n_heap, (struct heap_item){ m->rank, pos });
}

static void merge_loop(const struct eng_tokenizer *tok, struct bpe_work *w)
{
	while (w->n_heap > 0) {
		struct heap_item it = heap_pop(w->heap, &w->n_heap);
		int32_t pos = it.pos, nx;
		const struct eng_merge_slot *m;

		if (w->id[pos] < 0 || (nx = w->next[pos]) < 0)
			continue;
		m = merge_get(tok, w->id[pos], w->id[nx]);
		if (!m || m->rank != it.rank)
			continue; /* stale: one side changed since the push */
		w->id[pos] = m->merged;
		w->id[nx] = -1;
		w->next[pos] = w->next[nx];
		if (w->next[nx] >= 0)
			w->prev[w->next[nx]] = pos;
		if (w->prev[pos] >= 0)
			push_pair(tok, w, w->prev[pos]);
		push_pair(tok, w, pos);
	}
}

/* Runs BPE on s and appends the ids to out. */
static int bpe_run(const struct eng_tokenizer *tok, const char *s, size_t len,
		   struct eng_ids *out)
{
	enum { STACK_SYM = 128 };
	int32_t sid[STACK_SYM], sprev[STACK_SYM], snext[STACK_SYM];
	struct heap_item sheap[3 * STACK_SYM];
	struct bpe_work w = { sid, sprev, snext, sheap, 0 };
	int32_t n = 0, last = -1;
	int rc = 0;

	if (len > STACK_SYM) {
		w.id = malloc(len * 3 * sizeof(int32_t));
		w.heap = malloc(len * 3 * sizeof(*w.heap));
		if (!w.id || !w.heap) {
			free(w.id);
			free(w.heap);
			return ENG_E_NOMEM;
		}
		w.prev = w.id + len;
		w.next = w.id + 2 * len;
	}
	for (size_t i = 0; i < len; i++) {
		int32_t id = tok->byte_id[(uint8_t)s[i]];

		if (id < 0)
			continue;
		w.id[n] = id;
		w.prev[n] = last;
		w.next[n] = -1;
		if (last >= 0)
			w.next[last] = n;
		last = n++;
	}
	for (int32_t i = 0; i + 1 < n; i++)
		push_pair(tok, &w, i);
	merge_loop(tok, &w);
	for (int32_t i = 0; i < n && rc == 0; i = w.next[i]) {
		rc = eng_ids_push(out, w.id[i]);
		if (w.next[i] < 0)
			break;
	}
	if (w.id != sid) {
		free(w.id);
		free(w.heap);
	}
	return rc;
}

/* ---------------------------------------------------------------- cache */

static int cache_reset(struct eng_bpe_cache *c)
{
	if (!c->slots) {
		c->slots = calloc(CACHE_SLOTS, sizeof(*c->slots));
		if (!c->slots)
			return ENG_E_NOMEM;
		c->cap = CACHE_SLOTS;
	} else {
		memset(c->slots, 0, c->cap * sizeof(*c->slots));
	}
	c->used = 0;
	c->arena_len = 0;
	c->pool_len = 0;
	return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t nc = *cap ? *cap : 4096;
	void *np;

	if (need <= *cap)
		return 0;
	while (nc < need)
		nc *= 2;
	np = realloc(*p, nc * elem);
	if (!np)
		return ENG_E_NOMEM;
	*p = np;
	*cap = nc;
	return 0;
}

static void cache_insert(struct eng_bpe_cache *c, struct eng_cache_slot *slot, uint64_t h,
			 const char *s, size_t len, const int32_t *ids, size_t n)
{
	/* A failed allocation only means the entry is not cached. */
	if (grow((void **)&c->arena, &c->arena_cap, c->arena_len + len, 1) ||
	    grow((void **)&c->pool, &c->pool_cap, c->pool_len + n, sizeof(int32_t)))
		return;
	memcpy(c->arena + c->arena_len, s, len);
	memcpy(c->pool + c->pool_len, ids, n * sizeof(int32_t));
	*slot = (struct eng_cache_slot){ h, (uint32_t)c->arena_len, (uint32_t)len,
					 (uint32_t)c->pool_len, (uint32_t)n };
	c->arena_len += len;
	c->pool_len += n;
	c->used++;
}

int eng_bpe_word(struct eng_tokenizer *tok, const char *s, size_t len, struct eng_ids *out)
{
	struct eng_bpe_cache *c = &tok->cache;
	struct eng_cache_slot *slot = NULL;
	uint64_t h = 0;
	size_t before = out->n;
	int rc;

	if (len == 0)
		return 0;
	if (tok->ignore_merges) {
		int32_t id = eng_strmap_get(&tok->vocab, tok->tokens, s, len);
		if (id >= 0)
			return eng_ids_push(out, id);
	}
	if (len <= CACHE_MAX_KEY) {
		if ((!c->slots || c->used >= CACHE_MAX_USED) && cache_reset(c))
			return bpe_run(tok, s, len, out);
		h = eng_hash_bytes(s, len);
		for (size_t i = h & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
			slot = &c->slots[i];
			if (slot->hash == 0)
				break;
			if (slot->hash == h && slot->key_len == len &&
			    memcmp(c->arena + slot->key_off, s, len) == 0)
				return eng_ids_append(out, c->pool + slot->ids_off, slot->n_ids);
		}
	}
	rc = bpe_run(tok, s, len, out);
	/* A word of no ids (bytes outside the vocabulary are dropped, as
	 * Hugging Face's BPE without an unk token drops them) is not cached:
	 * out->ids may still be NULL, and NULL + 0 is undefined. */
	if (rc == 0 && slot && out->n > before)
		cache_insert(c, slot, h, s, len, out->ids + before, out->n - before);
	return rc;
}

void eng_bpe_cache_free(struct eng_bpe_cache *c)
{
	free(c->slots);
	free(c->arena);
	free(c->pool);
	memset(c, 0, sizeof(*c));
}
