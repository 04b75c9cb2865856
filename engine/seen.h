/*
 * seen.h: the set of KV pages a scheduler has ever computed, by content.
 *
 * A page is named by a chain hash of every token up to its end (the hash
 * of the page before it, mixed with its own tokens), so a hit means the
 * same tokens at the same positions, whatever page id held them.  The
 * scheduler uses it to count what an unbounded prefix cache would have
 * kept: a prompt's leading pages found here were computed before, so any
 * prefill of them is a recomputation (the cache had evicted them, or the
 * request was retracted).  A 64-bit hash collision would count a page as
 * seen; at the sizes of a run that is negligible, and it only moves a
 * statistic.
 *
 * Memory is 16 bytes per distinct page at most; past ENG_SEEN_MAX pages
 * the set starts over empty (the counts after that are lower bounds).
 */
#ifndef TRAJBENCH_ENG_SEEN_H
#define TRAJBENCH_ENG_SEEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Distinct pages remembered at most: 64M tokens of 16-token pages. */
#define ENG_SEEN_MAX ((size_t)1 << 22)

/* The chain hash of the empty prefix. */
#define ENG_SEEN_ROOT UINT64_C(0x6a09e667f3bcc909)

struct eng_seen;

/* NULL when out of memory. */
struct eng_seen *eng_seen_create(void);
void eng_seen_free(struct eng_seen *s);

/* The chain hash of a page of tokens[0..n) following a prefix hashed h. */
uint64_t eng_seen_chain(uint64_t h, const int32_t *tokens, size_t n);

bool eng_seen_has(const struct eng_seen *s, uint64_t h);

/* Adds h; when the set is full or cannot grow it starts over empty. */
void eng_seen_add(struct eng_seen *s, uint64_t h);

void eng_seen_clear(struct eng_seen *s);

#endif
