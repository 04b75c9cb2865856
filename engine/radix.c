/*
 * radix.c: radix tree over token ids with page granularity (see radix.h).
 *
 * Each node holds a run of whole pages: their tokens and their page ids.
 * Children are told apart by their first page of tokens; a node's children
 * are a plain array scanned linearly, which is cheap at the fan-outs agent
 * replay produces (hundreds of conversations below a shared system prompt)
 * and keeps the structure simple.  Eviction collects the unlocked leaves
 * into a heap each time it runs: O(nodes) per call, paid only when the
 * pool is full.
 *
 * Holds are counted like locks, on the held node and every ancestor
 * (hold_ref), so a node's count says whether any hold passes through it;
 * the keys live in a small array scanned linearly (one entry per
 * conversation between turns).
 */
#include "engine/radix.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct eng_radix_node {
	struct eng_radix_node *parent;
	struct eng_radix_node **children; /* (n_children) */
	size_t n_children, cap_children;
	int32_t *tokens;  /* (n_pages * page_size) token ids */
	int32_t *pages;   /* (n_pages) page ids */
	size_t n_pages;
	int lock_ref;     /* running requests pinning this node */
	int hold_ref;     /* holds on this node or below it */
	uint64_t last_use;
};

struct hold {
	uint64_t key;
	struct eng_radix_node *node;
};

struct eng_radix {
	size_t page_size;
	struct eng_pages *pool;
	struct eng_radix_node root; /* empty key, never evicted */
	uint64_t clock;
	size_t cached_pages;
	size_t evictable_pages;  /* pages in nodes with lock_ref == 0 */
	size_t held_pages;       /* of those, pages in nodes with hold_ref > 0 */
	struct hold *holds;      /* (n_holds) */
	size_t n_holds, cap_holds;
};

int eng_radix_create(int page_size, struct eng_pages *pages, struct eng_radix **out,
		     struct eng_error *err)
{
	struct eng_radix *t;

	*out = NULL;
	if (page_size <= 0)
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "page size must be positive, got %d", page_size);
	t = calloc(1, sizeof(*t));
	if (!t)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "cannot allocate the radix tree");
	t->page_size = (size_t)page_size;
	t->pool = pages;
	t->root.lock_ref = 1; /* the root is never evictable */
	*out = t;
	return 0;
}

static void node_free_subtree(struct eng_radix *t, struct eng_radix_node *node)
{
	for (size_t i = 0; i < node->n_children; i++) {
		struct eng_radix_node *c = node->children[i];

		node_free_subtree(t, c);
		eng_pages_release(t->pool, c->n_pages, c->pages);
		free(c->tokens);
		free(c->pages);
		free(c);
	}
	free(node->children);
	node->children = NULL;
	node->n_children = 0;
}

void eng_radix_free(struct eng_radix *t)
{
	if (!t)
		return;
	node_free_subtree(t, &t->root);
	free(t->holds);
	free(t);
}

static struct eng_radix_node *find_child(struct eng_radix *t, struct eng_radix_node *node,
					 const int32_t *key)
{
	size_t bytes = t->page_size * sizeof(int32_t);

	for (size_t i = 0; i < node->n_children; i++)
		if (memcmp(node->children[i]->tokens, key, bytes) == 0)
			return node->children[i];
	return NULL;
}

/* Whole pages that node's key and key[0..max_pages pages) share. */
static size_t common_pages(struct eng_radix *t, const struct eng_radix_node *node,
			   const int32_t *key, size_t max_pages)
{
	size_t lim = node->n_pages < max_pages ? node->n_pages : max_pages;
	size_t bytes = t->page_size * sizeof(int32_t);
	size_t k = 0;

	while (k < lim && memcmp(node->tokens + k * t->page_size,
				 key + k * t->page_size, bytes) == 0)
		k++;
	return k;
}

static int add_child(struct eng_radix_node *parent, struct eng_radix_node *child)
{
	if (parent->n_children == parent->cap_children) {
		size_t cap = parent->cap_children ? 2 * parent->cap_children : 4;
		void *p = realloc(parent->children, cap * sizeof(*parent->children));

		if (!p)
			return -1;
		parent->children = p;
		parent->cap_children = cap;
	}
	parent->children[parent->n_children++] = child;
	child->parent = parent;
	return 0;
}

static void remove_child(struct eng_radix_node *parent, struct eng_radix_node *child)
{
	for (size_t i = 0; i < parent->n_children; i++) {
		if (parent->children[i] == child) {
			parent->children[i] = parent->children[--parent->n_children];
			return;
		}
	}
	assert(!"child not found under its parent");
}

static struct eng_radix_node *node_new(struct eng_radix *t, const int32_t *tokens,
				       const int32_t *pages, size_t n_pages)
{
	struct eng_radix_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->tokens = malloc(n_pages * t->page_size * sizeof(int32_t));
	n->pages = malloc(n_pages * sizeof(int32_t));
	if (!n->tokens || !n->pages) {
		free(n->tokens);
		free(n->pages);
		free(n);
		return NULL;
	}
	memcpy(n->tokens, tokens, n_pages * t->page_size * sizeof(int32_t));
	memcpy(n->pages, pages, n_pages * sizeof(int32_t));
	n->n_pages = n_pages;
	n->last_use = ++t->clock;
	return n;
}

/* Splits node after k pages (0 < k < n_pages); returns the new upper part,
 * which takes node's place under its parent, or NULL on allocation failure
 * (tree unchanged). */
static struct eng_radix_node *split(struct eng_radix *t, struct eng_radix_node *node, size_t k)
{
	size_t rest = node->n_pages - k;
	struct eng_radix_node *mid = node_new(t, node->tokens, node->pages, k);
	int32_t *tokens = malloc(rest * t->page_size * sizeof(int32_t));
	int32_t *pages = malloc(rest * sizeof(int32_t));
	struct eng_radix_node *parent = node->parent;

	if (!mid || !tokens || !pages || add_child(mid, node) != 0) {
		if (mid) {
			free(mid->children);
			free(mid->tokens);
			free(mid->pages);
			free(mid);
		}
		free(tokens);
		free(pages);
		return NULL;
	}
	memcpy(tokens, node->tokens + k * t->page_size, rest * t->page_size * sizeof(int32_t));
	memcpy(pages, node->pages + k, rest * sizeof(int32_t));
	free(node->tokens);
	free(node->pages);
	node->tokens = tokens;
	node->pages = pages;
	node->n_pages = rest;
	mid->lock_ref = node->lock_ref;
	mid->hold_ref = node->hold_ref;
	mid->last_use = node->last_use;
	for (size_t i = 0; i < parent->n_children; i++)
		if (parent->children[i] == node)
			parent->children[i] = mid;
	mid->parent = parent;
	node->parent = mid;
	return mid;
}

size_t eng_radix_match(struct eng_radix *t, const int32_t *tokens, size_t n,
		       int32_t *pages_out, struct eng_radix_node **node_out)
{
	struct eng_radix_node *node = &t->root;
	size_t matched = 0;

	while (n - matched >= t->page_size) {
		struct eng_radix_node *child = find_child(t, node, tokens + matched);
		size_t k;

		if (!child)
			break;
		k = common_pages(t, child, tokens + matched, (n - matched) / t->page_size);
		if (k < child->n_pages) {
			struct eng_radix_node *mid = split(t, child, k);

			if (!mid)
				break; /* out of memory: a shorter match is still correct */
			child = mid;
		}
		child->last_use = ++t->clock;
		memcpy(pages_out + matched / t->page_size, child->pages, k * sizeof(int32_t));
		matched += k * t->page_size;
		node = child;
	}
	*node_out = node;
	return matched;
}

void eng_radix_lock(struct eng_radix *t, struct eng_radix_node *node)
{
	for (; node && node != &t->root; node = node->parent) {
		if (node->lock_ref++ == 0) {
			t->evictable_pages -= node->n_pages;
			if (node->hold_ref > 0)
				t->held_pages -= node->n_pages;
		}
	}
}

void eng_radix_unlock(struct eng_radix *t, struct eng_radix_node *node)
{
	for (; node && node != &t->root; node = node->parent) {
		assert(node->lock_ref > 0);
		if (--node->lock_ref == 0) {
			t->evictable_pages += node->n_pages;
			if (node->hold_ref > 0)
				t->held_pages += node->n_pages;
		}
	}
}

static void hold_path(struct eng_radix *t, struct eng_radix_node *node)
{
	for (; node != &t->root; node = node->parent)
		if (node->hold_ref++ == 0 && node->lock_ref == 0)
			t->held_pages += node->n_pages;
}

static void release_path(struct eng_radix *t, struct eng_radix_node *node)
{
	for (; node != &t->root; node = node->parent) {
		assert(node->hold_ref > 0);
		if (--node->hold_ref == 0 && node->lock_ref == 0)
			t->held_pages -= node->n_pages;
	}
}

static struct hold *find_hold(struct eng_radix *t, uint64_t key)
{
	for (size_t i = 0; i < t->n_holds; i++)
		if (t->holds[i].key == key)
			return &t->holds[i];
	return NULL;
}

void eng_radix_release(struct eng_radix *t, uint64_t key)
{
	struct hold *h = find_hold(t, key);

	if (!h)
		return;
	release_path(t, h->node);
	*h = t->holds[--t->n_holds];
}

int eng_radix_hold(struct eng_radix *t, uint64_t key, struct eng_radix_node *node)
{
	struct hold *h;

	eng_radix_release(t, key);
	if (t->n_holds == t->cap_holds) {
		size_t cap = t->cap_holds ? 2 * t->cap_holds : 16;
		void *p = realloc(t->holds, cap * sizeof(*t->holds));

		if (!p)
			return ENG_E_NOMEM;
		t->holds = p;
		t->cap_holds = cap;
	}
	h = &t->holds[t->n_holds++];
	h->key = key;
	h->node = node;
	hold_path(t, node);
	return 0;
}

size_t eng_radix_insert(struct eng_radix *t, const int32_t *tokens, size_t n,
			const int32_t *pages, struct eng_radix_node **node_out)
{
	struct eng_radix_node *node = &t->root;
	size_t ps = t->page_size, full = n / ps * ps, pos = 0;

	if (node_out)
		*node_out = &t->root;
	while (pos < full) {
		struct eng_radix_node *child = find_child(t, node, tokens + pos);
		size_t k;

		if (!child) {
			size_t np = (full - pos) / ps;
			struct eng_radix_node *leaf = node_new(t, tokens + pos, pages + pos / ps, np);

			if (!leaf || add_child(node, leaf) != 0) {
				if (leaf) {
					free(leaf->tokens);
					free(leaf->pages);
					free(leaf);
				}
				return (size_t)-1;
			}
			t->cached_pages += np;
			t->evictable_pages += np;
			if (node_out)
				*node_out = leaf;
			return pos;
		}
		k = common_pages(t, child, tokens + pos, (full - pos) / ps);
		if (k < child->n_pages) {
			struct eng_radix_node *mid = split(t, child, k);

			if (!mid)
				return (size_t)-1;
			child = mid;
		}
		child->last_use = ++t->clock;
		pos += k * ps;
		node = child;
	}
	if (node_out)
		*node_out = node;
	return pos;
}

/* Whether a goes before b in eviction order: unheld leaves before held
 * ones, least recently used first within each. */
static bool evict_before(const struct eng_radix_node *a, const struct eng_radix_node *b)
{
	if ((a->hold_ref > 0) != (b->hold_ref > 0))
		return a->hold_ref == 0;
	return a->last_use < b->last_use;
}

/* A binary heap of nodes, the first to evict on top. */
struct heap {
	struct eng_radix_node **v;
	size_t n, cap;
};

static int heap_push(struct heap *h, struct eng_radix_node *x)
{
	size_t i;

	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 64;
		void *p = realloc(h->v, cap * sizeof(*h->v));

		if (!p)
			return -1;
		h->v = p;
		h->cap = cap;
	}
	for (i = h->n++; i > 0 && evict_before(x, h->v[(i - 1) / 2]); i = (i - 1) / 2)
		h->v[i] = h->v[(i - 1) / 2];
	h->v[i] = x;
	return 0;
}

static struct eng_radix_node *heap_pop(struct heap *h)
{
	struct eng_radix_node *top = h->v[0], *last = h->v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && evict_before(h->v[c + 1], h->v[c]))
			c++;
		if (!evict_before(h->v[c], last))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

static int collect_leaves(struct eng_radix_node *node, struct heap *h)
{
	for (size_t i = 0; i < node->n_children; i++) {
		struct eng_radix_node *c = node->children[i];

		if (c->n_children == 0) {
			if (c->lock_ref == 0 && heap_push(h, c) != 0)
				return -1;
		} else if (collect_leaves(c, h) != 0) {
			return -1;
		}
	}
	return 0;
}

/* The holds on a leaf about to be evicted move to its parent, which the
 * hold counts already include. */
static void move_holds(struct eng_radix *t, struct eng_radix_node *leaf)
{
	t->held_pages -= leaf->n_pages;
	for (size_t i = 0; i < t->n_holds; i++)
		if (t->holds[i].node == leaf)
			t->holds[i].node = leaf->parent;
}

/* Evicts up to n_pages in eviction order; held leaves only when
 * with_held (they come after every unheld one). */
static size_t evict(struct eng_radix *t, size_t n_pages, bool with_held)
{
	struct heap h = {0};
	size_t released = 0;

	if (collect_leaves(&t->root, &h) != 0) {
		free(h.v);
		return 0;
	}
	while (released < n_pages && h.n > 0) {
		struct eng_radix_node *leaf = heap_pop(&h);
		struct eng_radix_node *parent = leaf->parent;

		if (leaf->hold_ref > 0 && !with_held)
			break;

		eng_pages_release(t->pool, leaf->n_pages, leaf->pages);
		released += leaf->n_pages;
		t->cached_pages -= leaf->n_pages;
		t->evictable_pages -= leaf->n_pages;
		if (leaf->hold_ref > 0)
			move_holds(t, leaf);
		remove_child(parent, leaf);
		free(leaf->children);
		free(leaf->tokens);
		free(leaf->pages);
		free(leaf);
		if (parent != &t->root && parent->n_children == 0 && parent->lock_ref == 0 &&
		    heap_push(&h, parent) != 0)
			break;
	}
	free(h.v);
	return released;
}

size_t eng_radix_evict(struct eng_radix *t, size_t n_pages)
{
	return evict(t, n_pages, true);
}

size_t eng_radix_flush(struct eng_radix *t)
{
	return evict(t, (size_t)-1, false);
}

size_t eng_radix_cached_pages(const struct eng_radix *t)
{
	return t->cached_pages;
}

size_t eng_radix_evictable_pages(const struct eng_radix *t)
{
	return t->evictable_pages;
}

size_t eng_radix_held_pages(const struct eng_radix *t)
{
	return t->held_pages;
}
