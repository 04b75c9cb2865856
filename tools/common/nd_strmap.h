/*
 * nd_strmap.h: a string-keyed hash map for the tools (run names,
 * conversation ids).  Keys are copied; values are caller-owned pointers.
 * Lookups are O(1) on average; the table doubles when it holds as many
 * entries as buckets.  No iteration order is promised: callers that need
 * one keep their own list beside the map.
 */
#ifndef TRAJBENCH_ND_STRMAP_H
#define TRAJBENCH_ND_STRMAP_H

#include <stddef.h>

struct nd_strmap_entry;

struct nd_strmap {
	struct nd_strmap_entry **buckets;
	size_t n_buckets;
	size_t n_entries;
};

/* An empty map; needs no allocation until the first put. */
#define ND_STRMAP_INIT {NULL, 0, 0}

/* The value stored under key, or NULL. */
void *nd_strmap_get(const struct nd_strmap *m, const char *key);

/* Stores val under key (replacing any value there).  Returns 0, or -1
 * when out of memory (the map is unchanged). */
int nd_strmap_put(struct nd_strmap *m, const char *key, void *val);

/* Removes key; its value is returned (NULL when absent), not freed. */
void *nd_strmap_del(struct nd_strmap *m, const char *key);

/* Frees the map's own memory (not the values) and empties it. */
void nd_strmap_clear(struct nd_strmap *m);

#endif
