/*
 * nd_strmap.c: separate chaining with FNV-1a hashes.  Small and boring on
 * purpose: the maps hold run names and conversation ids (thousands, not
 * millions), so a simple table that doubles is plenty.
 */
#include "tools/common/nd_strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct nd_strmap_entry {
	struct nd_strmap_entry *next;
	void *val;
	uint64_t hash;
	char key[];
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct nd_strmap_entry **find(const struct nd_strmap *m,
				     const char *key, uint64_t h)
{
	struct nd_strmap_entry **p;

	if (!m->n_buckets)
		return NULL;
	for (p = &m->buckets[h % m->n_buckets]; *p; p = &(*p)->next)
		if ((*p)->hash == h && strcmp((*p)->key, key) == 0)
			return p;
	return p;
}

void *nd_strmap_get(const struct nd_strmap *m, const char *key)
{
	struct nd_strmap_entry **p = find(m, key, fnv1a(key));

	return p && *p ? (*p)->val : NULL;
}

static int grow(struct nd_strmap *m)
{
	size_t n = m->n_buckets ? m->n_buckets * 2 : 16;
	struct nd_strmap_entry **b = calloc(n, sizeof(*b));

	if (!b)
		return -1;
	for (size_t i = 0; i < m->n_buckets; i++) {
		struct nd_strmap_entry *e = m->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash % n];
			b[e->hash % n] = e;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->n_buckets = n;
	return 0;
}

int nd_strmap_put(struct nd_strmap *m, const char *key, void *val)
{
	uint64_t h = fnv1a(key);
	struct nd_strmap_entry **p, *e;
	size_t len = strlen(key);

	p = find(m, key, h);
	if (p && *p) {
		(*p)->val = val;
		return 0;
	}
	if (m->n_entries >= m->n_buckets && grow(m) != 0)
		return -1;
	e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return -1;
	memcpy(e->key, key, len + 1);
	e->hash = h;
	e->val = val;
	e->next = m->buckets[h % m->n_buckets];
	m->buckets[h % m->n_buckets] = e;
	m->n_entries++;
	return 0;
}

void *nd_strmap_del(struct nd_strmap *m, const char *key)
{
	struct nd_strmap_entry **p = find(m, key, fnv1a(key)), *e;
	void *val;

	if (!p || !*p)
		return NULL;
	e = *p;
	val = e->val;
	*p = e->next;
	free(e);
	m->n_entries--;
	return val;
}

void nd_strmap_clear(struct nd_strmap *m)
{
	for (size_t i = 0; i < m->n_buckets; i++) {
		struct nd_strmap_entry *e = m->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(m->buckets);
	m->buckets = NULL;
	m->n_buckets = 0;
	m->n_entries = 0;
}
