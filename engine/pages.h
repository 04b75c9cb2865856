/*
 * pages.h: the page allocator of the paged KV cache.
 *
 * The KV cache is a pool of n_pages pages of page_size tokens each; what a
 * page holds (K and V of every layer) belongs to the backend.  This module
 * only hands out page ids in [0, n_pages) and takes them back: a LIFO free
 * list, so recently freed (cache-warm) pages are reused first.  Who holds a
 * page is tracked by its users: running requests and the radix tree.
 */
#ifndef TRAJBENCH_ENG_PAGES_H
#define TRAJBENCH_ENG_PAGES_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

struct eng_pages;

/* Creates a pool of n_pages free pages. */
int eng_pages_create(int32_t n_pages, struct eng_pages **out, struct eng_error *err);
void eng_pages_free(struct eng_pages *p);

/* Takes n pages into ids[0..n).  All or nothing: returns 0, or ENG_E_RANGE
 * (ids untouched) when fewer than n are free. */
int eng_pages_alloc(struct eng_pages *p, size_t n, int32_t *ids);

/* Gives n pages back.  Each id must have been allocated and not yet
 * released (checked with assert: a double release is a bug, not input). */
void eng_pages_release(struct eng_pages *p, size_t n, const int32_t *ids);

size_t eng_pages_available(const struct eng_pages *p);

#endif
