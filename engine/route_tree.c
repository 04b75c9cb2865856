/*
 * route_tree.c: a radix tree over token ids with LRU leaf eviction (see
 * route_tree.h).
 *
 * Each node holds the edge from its parent (a token array) and the tree's
 * clock at the last insert that passed through it; since an insert stamps
 * the whole path, a parent is never older than its children, and evicting
 * the oldest leaf first is LRU over prefixes.  Children are found by a
 * linear scan of their first tokens: agent prompts share one system
 * prompt, so most nodes have one or two children, and the node where
 * conversations part has one per conversation, a few hundred ints to scan.
 */
#include "engine/route_tree.h"
#include "engine/error.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct node {
	int32_t *key;            /* (n_key) the edge's tokens, from the parent */
	int32_t n_key;
	struct node *parent;
	struct node **kids;      /* (n_kids, cap_kids) */
	int32_t n_kids, cap_kids;
	uint64_t used;           /* clock of the last insert through it */
};

struct eng_route_tree {
	struct node root;        /* empty key */
	uint64_t clock;
	int64_t size, n_nodes;
};

struct eng_route_tree *eng_route_tree_new(void)
{
	struct eng_route_tree *t = calloc(1, sizeof(*t));

	if (t)
		t->n_nodes = 1;
	return t;
}

static void node_free_kids(struct node *n)
{
	for (int32_t i = 0; i < n->n_kids; i++) {
		node_free_kids(n->kids[i]);
		free(n->kids[i]->key);
		free(n->kids[i]);
	}
	free(n->kids);
	n->kids = NULL;
	n->n_kids = n->cap_kids = 0;
}

void eng_route_tree_clear(struct eng_route_tree *t)
{
	node_free_kids(&t->root);
	t->size = 0;
	t->n_nodes = 1;
}

void eng_route_tree_free(struct eng_route_tree *t)
{
	if (!t)
		return;
	eng_route_tree_clear(t);
	free(t);
}

int64_t eng_route_tree_size(const struct eng_route_tree *t)
{
	return t->size;
}

int64_t eng_route_tree_nodes(const struct eng_route_tree *t)
{
	return t->n_nodes;
}

static struct node *find_kid(const struct node *n, int32_t first)
{
	for (int32_t i = 0; i < n->n_kids; i++)
		if (n->kids[i]->key[0] == first)
			return n->kids[i];
	return NULL;
}

static int32_t common_len(const int32_t *a, int32_t na, const int32_t *b, int32_t nb)
{
	int32_t i = 0;

	while (i < na && i < nb && a[i] == b[i])
		i++;
	return i;
}

int32_t eng_route_tree_match(const struct eng_route_tree *t, const int32_t *ids, int32_t n)
{
	const struct node *cur = &t->root;
	int32_t i = 0;

	while (i < n) {
		const struct node *kid = find_kid(cur, ids[i]);
		int32_t l;

		if (!kid)
			break;
		l = common_len(kid->key, kid->n_key, ids + i, n - i);
		i += l;
		if (l < kid->n_key)
			break;
		cur = kid;
	}
	return i;
}

static int add_kid(struct node *parent, struct node *kid)
{
	if (parent->n_kids == parent->cap_kids) {
		int32_t cap = parent->cap_kids ? 2 * parent->cap_kids : 2;
		struct node **k = realloc(parent->kids, sizeof(*k) * (size_t)cap);

		if (!k)
			return ENG_E_NOMEM;
		parent->kids = k;
		parent->cap_kids = cap;
	}
	parent->kids[parent->n_kids++] = kid;
	kid->parent = parent;
	return 0;
}

static struct node *new_node(const int32_t *key, int32_t n, uint64_t used)
{
	struct node *x = calloc(1, sizeof(*x));

	if (!x || !(x->key = malloc(sizeof(int32_t) * (size_t)n))) {
		free(x);
		return NULL;
	}
	memcpy(x->key, key, sizeof(int32_t) * (size_t)n);
	x->n_key = n;
	x->used = used;
	return x;
}

/* Splits kid's edge after l tokens: a new node takes the first l and
 * becomes kid's parent.  Returns it, or NULL when out of memory. */
static struct node *split(struct eng_route_tree *t, struct node *kid, int32_t l)
{
	struct node *parent = kid->parent, *mid = new_node(kid->key, l, kid->used);

	if (!mid)
		return NULL;
	if (add_kid(mid, kid) != 0) {
		free(mid->key);
		free(mid);
		return NULL;
	}
	for (int32_t i = 0; i < parent->n_kids; i++)
		if (parent->kids[i] == kid)
			parent->kids[i] = mid;
	mid->parent = parent;
	memmove(kid->key, kid->key + l, sizeof(int32_t) * (size_t)(kid->n_key - l));
	kid->n_key -= l;
	t->n_nodes++;
	return mid;
}

int eng_route_tree_insert(struct eng_route_tree *t, const int32_t *ids, int32_t n)
{
	struct node *cur = &t->root;
	uint64_t now = ++t->clock;
	int32_t i = 0;

	cur->used = now;
	while (i < n) {
		struct node *kid = find_kid(cur, ids[i]);
		int32_t l;

		if (!kid) {
			kid = new_node(ids + i, n - i, now);
			if (!kid || add_kid(cur, kid) != 0) {
				if (kid)
					free(kid->key);
				free(kid);
				return ENG_E_NOMEM;
			}
			t->size += n - i;
			t->n_nodes++;
			return 0;
		}
		l = common_len(kid->key, kid->n_key, ids + i, n - i);
		if (l < kid->n_key && !(kid = split(t, kid, l)))
			return ENG_E_NOMEM;
		kid->used = now;
		i += l;
		cur = kid;
	}
	return 0;
}

/* A min-heap of leaves by last use. */
struct heap {
	struct node **v;
	size_t n, cap;
};

static bool heap_push(struct heap *h, struct node *x)
{
	size_t i;

	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 64;
		struct node **v = realloc(h->v, sizeof(*v) * cap);

		if (!v)
			return false;
		h->v = v;
		h->cap = cap;
	}
	for (i = h->n++; i > 0 && h->v[(i - 1) / 2]->used > x->used; i = (i - 1) / 2)
		h->v[i] = h->v[(i - 1) / 2];
	h->v[i] = x;
	return true;
}

static struct node *heap_pop(struct heap *h)
{
	struct node *top = h->v[0], *last = h->v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1]->used < h->v[c]->used)
			c++;
		if (h->v[c]->used >= last->used)
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n > 0)
		h->v[i] = last;
	return top;
}

static bool push_leaves(struct heap *h, struct node *n)
{
	if (n->n_kids == 0)
		return heap_push(h, n);
	for (int32_t i = 0; i < n->n_kids; i++)
		if (!push_leaves(h, n->kids[i]))
			return false;
	return true;
}

static void unlink_kid(struct node *parent, struct node *kid)
{
	for (int32_t i = 0; i < parent->n_kids; i++) {
		if (parent->kids[i] == kid) {
			parent->kids[i] = parent->kids[--parent->n_kids];
			return;
		}
	}
}

int64_t eng_route_tree_evict(struct eng_route_tree *t, int64_t max_tokens)
{
	struct heap h = { 0 };
	int64_t before = t->size;

	if (t->size <= max_tokens)
		return 0;
	if (t->root.n_kids > 0 && !push_leaves(&h, &t->root)) {
		free(h.v);
		return 0; /* out of memory: nothing evicted this time */
	}
	while (t->size > max_tokens && h.n > 0) {
		struct node *leaf = heap_pop(&h), *parent = leaf->parent;

		unlink_kid(parent, leaf);
		t->size -= leaf->n_key;
		t->n_nodes--;
		free(leaf->key);
		free(leaf->kids);
		free(leaf);
		if (parent != &t->root && parent->n_kids == 0 && !heap_push(&h, parent))
			break;
	}
	free(h.v);
	return before - t->size;
}
