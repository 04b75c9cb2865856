/*
 * radix.h: the radix prefix cache over token ids.
 *
 * Maps token prefixes to the KV pages that hold them, so a request whose
 * prompt starts with tokens some earlier request already computed (the
 * system prompt; in agent replay, the whole previous turn) skips that
 * prefill.  Granularity is the page: only whole pages are cached, keys are
 * compared page by page, and a match always ends on a page boundary, so a
 * request's own pages never share a page with the tree (no copy on write).
 *
 * Ownership: pages in the tree belong to the tree.  A request that matched
 * a prefix locks the deepest matched node (eng_radix_lock) so that those
 * pages cannot be evicted while it runs, and unlocks it when done.  When a
 * turn finishes, its prompt and generated tokens are inserted; the tree
 * takes the pages of the part it did not have yet.  Unlocked leaves are
 * evicted least recently used first, their pages released to the pool.
 *
 * Holds: a conversation between two turns holds the node its last turn
 * ended at (eng_radix_hold, one hold per key), so that its next turn finds
 * its history.  A hold does not pin: held leaves stay evictable, but only
 * once no unheld leaf is left, and then least recently used first too:
 * when the pool cannot hold every conversation in flight, the scheduler
 * keeps running those whose histories are cached, so the one idle longest
 * is the one to give up.  A hold whose node is evicted moves to the
 * node's parent, so a key always names a live node until
 * eng_radix_release.
 */
#ifndef TRAJBENCH_ENG_RADIX_H
#define TRAJBENCH_ENG_RADIX_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/pages.h"

struct eng_radix;
struct eng_radix_node;

/* Creates an empty tree over the given pool; page_size tokens per page. */
int eng_radix_create(int page_size, struct eng_pages *pages, struct eng_radix **out,
		     struct eng_error *err);

/* Releases every page the tree holds back to the pool, then frees it. */
void eng_radix_free(struct eng_radix *t);

/* The longest cached prefix of tokens[0..n), in whole pages.  Writes its
 * page ids to pages_out (which must hold n / page_size ids) and returns
 * its length in tokens; *node receives the deepest matched node (the root
 * when nothing matched), to lock.  Marks the path as recently used. */
size_t eng_radix_match(struct eng_radix *t, const int32_t *tokens, size_t n,
		       int32_t *pages_out, struct eng_radix_node **node);

/* Pins node and its ancestors against eviction; unlock undoes one lock. */
void eng_radix_lock(struct eng_radix *t, struct eng_radix_node *node);
void eng_radix_unlock(struct eng_radix *t, struct eng_radix_node *node);

/* Inserts tokens[0..n) rounded down to whole pages, with pages[i] holding
 * tokens [i*page_size, (i+1)*page_size).  Returns how many leading tokens
 * the tree already held: the tree keeps its own pages for that part and
 * takes ownership of pages[] only beyond it.  Pages of that leading part
 * that the caller did not get from eng_radix_match are duplicates the
 * caller must release.  *node (when node is not NULL) receives the node
 * that ends at the inserted tokens' last whole page (the root when there
 * was none).  Returns (size_t)-1 when out of host memory (the tree is
 * unchanged and owns none of pages[]; *node is the root). */
size_t eng_radix_insert(struct eng_radix *t, const int32_t *tokens, size_t n,
			const int32_t *pages, struct eng_radix_node **node);

/* Makes key (any value but 0) hold node and its ancestors, in place of
 * what key held before.  Returns 0, or ENG_E_NOMEM (key then holds
 * nothing). */
int eng_radix_hold(struct eng_radix *t, uint64_t key, struct eng_radix_node *node);

/* Drops key's hold; a key that holds nothing is ignored. */
void eng_radix_release(struct eng_radix *t, uint64_t key);

/* Evicts unlocked leaves until at least n_pages pages went back to the
 * pool or nothing more is evictable: unheld leaves least recently used
 * first, then held ones likewise.  Returns the number of
 * pages released. */
size_t eng_radix_evict(struct eng_radix *t, size_t n_pages);

/* Evicts every unlocked leaf no key holds; returns the pages released. */
size_t eng_radix_flush(struct eng_radix *t);

/* Pages held by the tree; how many of them are evictable now; and how many
 * of those evictable pages some key holds (evicted last). */
size_t eng_radix_cached_pages(const struct eng_radix *t);
size_t eng_radix_evictable_pages(const struct eng_radix *t);
size_t eng_radix_held_pages(const struct eng_radix *t);

#endif
