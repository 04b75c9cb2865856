/*
 * pages.c: LIFO free list of page ids (see pages.h).  A bitmap of taken
 * pages backs the assert that catches double releases in tests.
 */
#include "engine/pages.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>

struct eng_pages {
	int32_t n_pages;
	int32_t n_free;
	int32_t *free_ids; /* (n_pages) stack of free ids, top at n_free - 1 */
	bool *taken;       /* (n_pages) */
};

int eng_pages_create(int32_t n_pages, struct eng_pages **out, struct eng_error *err)
{
	struct eng_pages *p;

	*out = NULL;
	if (n_pages <= 0)
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "the KV pool needs at least one page, got %d", n_pages);
	p = calloc(1, sizeof(*p));
	if (p) {
		p->free_ids = malloc(sizeof(int32_t) * (size_t)n_pages);
		p->taken = calloc((size_t)n_pages, sizeof(bool));
	}
	if (!p || !p->free_ids || !p->taken) {
		eng_pages_free(p);
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0,
				     "cannot allocate a pool of %d pages", n_pages);
	}
	p->n_pages = n_pages;
	/* Lowest ids on top, so a fresh pool hands out 0, 1, 2, ... */
	for (int32_t i = 0; i < n_pages; i++)
		p->free_ids[i] = n_pages - 1 - i;
	p->n_free = n_pages;
	*out = p;
	return 0;
}

void eng_pages_free(struct eng_pages *p)
{
	if (!p)
		return;
	free(p->free_ids);
	free(p->taken);
	free(p);
}

int eng_pages_alloc(struct eng_pages *p, size_t n, int32_t *ids)
{
	if (n > (size_t)p->n_free)
		return ENG_E_RANGE;
	for (size_t i = 0; i < n; i++) {
		int32_t id = p->free_ids[--p->n_free];

		p->taken[id] = true;
		ids[i] = id;
	}
	return 0;
}

void eng_pages_release(struct eng_pages *p, size_t n, const int32_t *ids)
{
	for (size_t i = 0; i < n; i++) {
		int32_t id = ids[i];

		assert(id >= 0 && id < p->n_pages && p->taken[id]);
		p->taken[id] = false;
		p->free_ids[p->n_free++] = id;
	}
}

size_t eng_pages_available(const struct eng_pages *p)
{
	return (size_t)p->n_free;
}
