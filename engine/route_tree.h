/*
 * route_tree.h: the router's approximate radix tree of one worker: the
 * prompts (token ids) routed to that worker, as a guess at what its prefix
 * cache holds, with least-recently-used eviction to a size in tokens.
 *
 * "Approximate" because the router does not see the worker's cache: a
 * prompt is inserted when it is routed, and the worker's own evictions are
 * not known; eviction here (eng_route_tree_evict, run every
 * --eviction-interval) only bounds the router's memory, as in SGLang.
 */
#ifndef TRAJBENCH_ENG_ROUTE_TREE_H
#define TRAJBENCH_ENG_ROUTE_TREE_H

#include <stdint.h>

struct eng_route_tree;

/* An empty tree, or NULL when out of memory. */
struct eng_route_tree *eng_route_tree_new(void);
void eng_route_tree_free(struct eng_route_tree *t);

/* How many of ids[0 .. n) the tree holds as a prefix. */
int32_t eng_route_tree_match(const struct eng_route_tree *t, const int32_t *ids, int32_t n);

/* Inserts ids[0 .. n); the nodes on its path become the most recently
 * used.  0, or ENG_E_NOMEM (the tree stays valid and holds a prefix). */
int eng_route_tree_insert(struct eng_route_tree *t, const int32_t *ids, int32_t n);

/* Tokens stored (the sum of the edge lengths). */
int64_t eng_route_tree_size(const struct eng_route_tree *t);

/* Nodes, the root included. */
int64_t eng_route_tree_nodes(const struct eng_route_tree *t);

/* Removes least recently used leaves until the tree holds at most
 * max_tokens; returns the tokens removed.  A leaf goes whole. */
int64_t eng_route_tree_evict(struct eng_route_tree *t, int64_t max_tokens);

/* Empties the tree (the worker's cache was flushed, or it went down). */
void eng_route_tree_clear(struct eng_route_tree *t);

#endif
