/*
 * seen.c: a set of 64-bit page hashes (see seen.h): open addressing with
 * linear probing, at most half full, 0 marking an empty slot (a hash that
 * comes out 0 is stored as 1).
 */
#include "engine/seen.h"

#include <stdlib.h>
#include <string.h>

#include "engine/rng.h"

struct eng_seen {
	uint64_t *slots;  /* (cap) hashes, 0 = empty */
	size_t cap, n;
};

struct eng_seen *eng_seen_create(void)
{
	struct eng_seen *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->cap = 1024;
	s->slots = calloc(s->cap, sizeof(uint64_t));
	if (!s->slots) {
		free(s);
		return NULL;
	}
	return s;
}

void eng_seen_free(struct eng_seen *s)
{
	if (!s)
		return;
	free(s->slots);
	free(s);
}

uint64_t eng_seen_chain(uint64_t h, const int32_t *tokens, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (uint64_t)(uint32_t)tokens[i];
		h *= UINT64_C(0x100000001b3);
	}
	return eng_splitmix64(&h);
}

static uint64_t key_of(uint64_t h)
{
	return h ? h : 1;
}

static size_t probe(const struct eng_seen *s, uint64_t k)
{
	size_t i = (size_t)(k ^ (k >> 29)) & (s->cap - 1);

	while (s->slots[i] != 0 && s->slots[i] != k)
		i = (i + 1) & (s->cap - 1);
	return i;
}

bool eng_seen_has(const struct eng_seen *s, uint64_t h)
{
	uint64_t k = key_of(h);

	return s->slots[probe(s, k)] == k;
}

void eng_seen_clear(struct eng_seen *s)
{
	memset(s->slots, 0, s->cap * sizeof(uint64_t));
	s->n = 0;
}

/* Doubles the table; false when it cannot. */
static bool grow(struct eng_seen *s)
{
	struct eng_seen bigger = { calloc(2 * s->cap, sizeof(uint64_t)), 2 * s->cap, 0 };

	if (!bigger.slots)
		return false;
	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i])
			bigger.slots[probe(&bigger, s->slots[i])] = s->slots[i];
	free(s->slots);
	s->slots = bigger.slots;
	s->cap = bigger.cap;
	return true;
}

void eng_seen_add(struct eng_seen *s, uint64_t h)
{
	uint64_t k = key_of(h);
	size_t i = probe(s, k);

	if (s->slots[i] == k)
		return;
	if (2 * (s->n + 1) > s->cap) {
		if (s->n >= ENG_SEEN_MAX || !grow(s))
			eng_seen_clear(s);
		i = probe(s, k);
	}
	s->slots[i] = k;
	s->n++;
}
