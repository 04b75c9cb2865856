/*
 * test-radix.c: the radix prefix cache and the page allocator.
 *
 * Hand cases check splits, duplicates, locking and LRU order; a randomized
 * run then checks the two invariants everything else relies on: a matched
 * page really holds the tokens it was matched for, and no page is lost or
 * held twice (pool + tree + caller == total).
 */
#include "engine/pages.h"
#include "engine/radix.h"
#include "tests/tap.h"

#include <stdint.h>
#include <string.h>

#define PS 4
#define NPAGES 64

static struct eng_pages *pool;
static struct eng_radix *tree;

static void setup(void)
{
	struct eng_error err;

	eng_radix_free(tree);
	eng_pages_free(pool);
	eng_pages_create(NPAGES, &pool, &err);
	eng_radix_create(PS, pool, &tree, &err);
}

/* Allocates pages for a sequence of n tokens, inserts it, and releases the
 * pages the tree did not take (the already-present part and a partial tail). */
static size_t put(const int32_t *tok, size_t n)
{
	int32_t pages[64];
	size_t np = (n + PS - 1) / PS, present;

	eng_pages_alloc(pool, np, pages);
	present = eng_radix_insert(tree, tok, n, pages, NULL);
	eng_pages_release(pool, present / PS, pages);
	eng_pages_release(pool, np - n / PS, pages + n / PS);
	return present;
}

static void seq(int32_t *out, size_t n, int32_t base)
{
	for (size_t i = 0; i < n; i++)
		out[i] = base + (int32_t)i;
}

static void test_basic(void)
{
	int32_t a[22], b[22], pages[8], pages2[8];
	struct eng_radix_node *node;
	size_t m;

	setup();
	seq(a, 22, 100);
	m = eng_radix_match(tree, a, 22, pages, &node);
	tap_ok(m == 0, "empty tree matches nothing");
	tap_ok(put(a, 22) == 0, "first insert finds nothing present");
	tap_ok(eng_radix_cached_pages(tree) == 5, "a 22-token sequence caches 5 whole pages");
	tap_ok(eng_pages_available(pool) == NPAGES - 5, "the partial page went back to the pool");
	m = eng_radix_match(tree, a, 22, pages, &node);
	tap_ok(m == 20, "the same sequence matches 20 tokens");
	m = eng_radix_match(tree, a, 11, pages2, &node);
	tap_ok(m == 8 && memcmp(pages, pages2, 2 * sizeof(int32_t)) == 0,
	       "a prefix matches whole pages only, the same page ids");
	memcpy(b, a, sizeof(b));
	b[9] = -1; /* differs inside the third page */
	tap_ok(put(b, 22) == 8, "a sibling sharing two pages finds 8 tokens present");
	tap_ok(eng_radix_cached_pages(tree) == 8, "the sibling adds 3 pages");
	m = eng_radix_match(tree, b, 22, pages2, &node);
	tap_ok(m == 20 && memcmp(pages, pages2, 2 * sizeof(int32_t)) == 0 &&
	       pages2[2] != pages[2], "the sibling shares the first two pages only");
	tap_ok(put(a, 22) == 20, "re-inserting finds everything present");
	tap_ok(eng_pages_available(pool) + eng_radix_cached_pages(tree) == NPAGES,
	       "no page lost");
}

static void test_lock_and_lru(void)
{
	int32_t a[16], b[16], c[16], pages[8];
	struct eng_radix_node *na, *nb;

	setup();
	seq(a, 16, 0);
	seq(b, 16, 1000);
	seq(c, 16, 2000);
	put(a, 16);
	put(b, 16);
	put(c, 16);
	tap_ok(eng_radix_evictable_pages(tree) == 12, "12 evictable pages");
	eng_radix_match(tree, a, 16, pages, &na); /* a is now the most recent */
	eng_radix_lock(tree, na);
	tap_ok(eng_radix_evictable_pages(tree) == 8, "locking a pins its 4 pages");
	tap_ok(eng_radix_evict(tree, 1) == 4, "evicting one page takes a whole leaf");
	tap_ok(eng_radix_match(tree, b, 16, pages, &nb) == 0, "the least recently used (b) went first");
	tap_ok(eng_radix_match(tree, c, 16, pages, &nb) == 16, "c stays");
	tap_ok(eng_radix_evict(tree, 100) == 4, "only unlocked pages are evicted");
	tap_ok(eng_radix_match(tree, a, 16, pages, &nb) == 16, "the locked sequence survives");
	eng_radix_unlock(tree, na);
	tap_ok(eng_radix_evict(tree, 100) == 4 && eng_pages_available(pool) == NPAGES,
	       "after unlock everything can be evicted and all pages are back");
}

/* Randomized: sequences from a small alphabet so that prefixes collide. */
static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static void test_random(void)
{
	int32_t content[NPAGES][PS]; /* what each page id holds, as inserted */
	int32_t tok[40], pages[16], held[16];
	int ok_content = 1, ok_count = 1;

	setup();
	for (int it = 0; it < 3000; it++) {
		size_t n = 1 + rnd(40), np = (n + PS - 1) / PS;
		struct eng_radix_node *node;
		size_t m;

		for (size_t i = 0; i < n; i++)
			tok[i] = (int32_t)(i < 8 ? rnd(2) : rnd(3));
		m = eng_radix_match(tree, tok, n, pages, &node);
		for (size_t p = 0; p < m / PS; p++)
			if (memcmp(content[pages[p]], tok + p * PS, sizeof(content[0])) != 0)
				ok_content = 0;
		eng_radix_lock(tree, node);
		/* Own pages beyond the match, evicting when the pool is short. */
		if (eng_pages_available(pool) < np - m / PS)
			eng_radix_evict(tree, np - m / PS - eng_pages_available(pool));
		if (eng_pages_alloc(pool, np - m / PS, held) != 0) {
			eng_radix_unlock(tree, node);
			continue;
		}
		memcpy(pages + m / PS, held, (np - m / PS) * sizeof(int32_t));
		for (size_t p = m / PS; p < n / PS; p++)
			memcpy(content[pages[p]], tok + p * PS, sizeof(content[0]));
		size_t present = eng_radix_insert(tree, tok, n, pages, NULL);
		if (present > m)
			eng_pages_release(pool, (present - m) / PS, pages + m / PS);
		eng_pages_release(pool, np - n / PS, pages + n / PS);
		eng_radix_unlock(tree, node);
		if (eng_pages_available(pool) + eng_radix_cached_pages(tree) != NPAGES)
			ok_count = 0;
	}
	tap_ok(ok_content, "random: every matched page holds the matched tokens");
	tap_ok(ok_count, "random: pool + tree == total after every step");
	tap_ok(eng_radix_evictable_pages(tree) == eng_radix_cached_pages(tree),
	       "random: nothing left locked");
}

/* Holds: evicted after every unheld leaf, least recently used first among
 * themselves; an evicted hold moves to the parent; release undoes it. */
static void test_holds(void)
{
	int32_t sys[8], a[16], b[16], c[16], pages[8];
	struct eng_radix_node *na, *nb, *node;

	setup();
	seq(sys, 8, 0);
	memcpy(a, sys, sizeof(sys));
	memcpy(b, sys, sizeof(sys));
	memcpy(c, sys, sizeof(sys));
	seq(a + 8, 8, 100);
	seq(b + 8, 8, 200);
	seq(c + 8, 8, 300);
	put(a, 16);
	put(b, 16);
	put(c, 16);                /* sys (2 pages) with three 2-page leaves */
	eng_radix_match(tree, a, 16, pages, &na);
	eng_radix_match(tree, b, 16, pages, &nb);
	tap_ok(eng_radix_hold(tree, 1, na) == 0 && eng_radix_hold(tree, 2, nb) == 0,
	       "two conversations hold their ends");
	tap_ok(eng_radix_held_pages(tree) == 6, "held: both leaves and the shared prefix (6 pages)");
	eng_radix_match(tree, c, 16, pages, &node); /* c, unheld, is the most recent */
	tap_ok(eng_radix_evict(tree, 1) == 2 && eng_radix_match(tree, c, 16, pages, &node) == 8,
	       "the unheld leaf goes first, though it is the most recently used");
	tap_ok(eng_radix_evict(tree, 1) == 2 && eng_radix_match(tree, a, 16, pages, &node) == 8 &&
	       eng_radix_match(tree, b, 16, pages, &node) == 16,
	       "then the held leaf used least recently (a)");
	tap_ok(eng_radix_held_pages(tree) == 4, "a's hold moved to the shared prefix");
	eng_radix_release(tree, 2);
	tap_ok(eng_radix_held_pages(tree) == 2, "releasing b leaves a's hold on the prefix");
	eng_radix_release(tree, 1);
	eng_radix_release(tree, 7); /* unknown: ignored */
	tap_ok(eng_radix_held_pages(tree) == 0 && eng_radix_evict(tree, 100) == 4 &&
	       eng_pages_available(pool) == NPAGES, "released, everything is evictable again");
	put(a, 16);
	eng_radix_match(tree, a, 16, pages, &na);
	eng_radix_lock(tree, na);
	eng_radix_hold(tree, 3, na);
	tap_ok(eng_radix_held_pages(tree) == 0 && eng_radix_evictable_pages(tree) == 0,
	       "a locked node's pages count as neither held nor evictable");
	eng_radix_unlock(tree, na);
	tap_ok(eng_radix_held_pages(tree) == 4, "unlocked, they are held again");
	put(b, 16);
	tap_ok(eng_radix_flush(tree) == 2 && eng_radix_held_pages(tree) == 4 &&
	       eng_radix_cached_pages(tree) == 4, "a flush drops the unheld leaf only");
	eng_radix_release(tree, 3);
	tap_ok(eng_radix_flush(tree) == 4 && eng_pages_available(pool) == NPAGES,
	       "released, a flush drops the rest");
}

int main(void)
{
	test_basic();
	test_lock_and_lru();
	test_holds();
	test_random();
	eng_radix_free(tree);
	eng_pages_free(pool);
	return tap_done();
}
