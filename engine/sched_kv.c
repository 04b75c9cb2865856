/*
 * sched_kv.c: the scheduler's KV memory (see sched.c for the invariants).
 *
 * What a request still needs (its reservation), what can be had (free
 * pages and the cache's unlocked ones, held histories apart), taking
 * pages, and the prefix cache as a request goes through it: matched at
 * admission, its prefill's pages inserted after each chunk, its whole
 * tokens inserted when it finishes.  The seen-page accounting that tells
 * what an unbounded cache would have kept lives here too, as it follows
 * the same pages.
 */
#include "engine/sched_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int32_t eng_sched_pages_for(const struct eng_sched *s, int32_t n_tokens)
{
	return (n_tokens + s->p.page_size - 1) / s->p.page_size;
}

/* The tokens whose KV a request must have before it can decode: the whole
 * prompt for a fresh request; all but the last token for a retracted one
 * that had started generating. */
int32_t eng_sched_prefill_target(const struct req *r)
{
	return r->n_gen == 0 ? r->prompt_len : r->n_tokens - 1;
}

/* Gives back the request's own pages and its lock on the tree. */
void eng_sched_release_memory(struct eng_sched *s, struct req *r)
{
	eng_pages_release(s->pool, (size_t)(r->n_pages - r->prefix_pages),
			  r->pages + r->prefix_pages);
	if (s->radix && r->node)
		eng_radix_unlock(s->radix, r->node);
	r->node = NULL;
	r->n_pages = 0;
	r->prefix_pages = 0;
	r->computed = 0;
	r->chain = ENG_SEEN_ROOT;
	r->chained_pages = 0;
}

/* Takes pages so that r covers its first n_tokens tokens, evicting cache
 * when needed (unheld before held, radix.h); never retracts.  All or
 * nothing. */
int eng_sched_take_pages(struct eng_sched *s, struct req *r, int32_t n_tokens)
{
	int32_t need = eng_sched_pages_for(s, n_tokens) - r->n_pages;
	size_t avail = eng_pages_available(s->pool);

	if (need <= 0)
		return 0;
	if ((size_t)need > avail && s->radix)
		eng_radix_evict(s->radix, (size_t)need - avail);
	if (eng_pages_alloc(s->pool, (size_t)need, r->pages + r->n_pages) != 0)
		return ENG_E_RANGE;
	r->n_pages += need;
	return 0;
}

/* Completes the chain hashes of r's pages whose KV is all there, marking
 * them seen. */
void eng_sched_chain_pages(struct eng_sched *s, struct req *r)
{
	int32_t ps = s->p.page_size;

	for (; (r->chained_pages + 1) * ps <= r->computed; r->chained_pages++) {
		r->chain = eng_seen_chain(r->chain, r->tokens + (size_t)r->chained_pages * ps,
					  (size_t)ps);
		eng_seen_add(s->seen, r->chain);
	}
}

/* Prompt tokens an unbounded cache would hold for a fresh request: its
 * leading whole pages ever computed, up to the last prompt token (whose
 * logits must be computed), as match_prefix limits a real match. */
int32_t eng_sched_unbounded_match(const struct eng_sched *s, const struct req *r)
{
	int32_t ps = s->p.page_size, n = 0;
	int32_t limit = r->score ? r->score_from - 1 : r->prompt_len - 1;
	uint64_t h = ENG_SEEN_ROOT;

	if (!s->radix)
		return 0;
	for (; (n + 1) * ps <= limit; n++) {
		h = eng_seen_chain(h, r->tokens + (size_t)n * ps, (size_t)ps);
		if (!eng_seen_has(s->seen, h))
			break;
	}
	return n * ps;
}

/* How far r's tokens are cached: at most up to the last prompt token for a
 * fresh request (its logits must be computed), the whole prefill target
 * for a retracted one. */
size_t eng_sched_match_prefix(struct eng_sched *s, struct req *r, struct eng_radix_node **node)
{
	int32_t limit = r->n_gen == 0 ? r->prompt_len - 1 : eng_sched_prefill_target(r);

	*node = NULL;
	if (r->score)
		limit = r->score_from - 1;
	if (!s->radix || limit < 0)
		return 0;
	return eng_radix_match(s->radix, r->tokens, (size_t)limit, r->pages, node);
}

/* After a prefill chunk, the request's whole computed pages go into the
 * tree (SGLang's cache of unfinished requests), so that requests starting
 * together share a prefix one of them computed first (the system prompt
 * of conversations started at once) and a retracted request keeps its
 * progress as cache.  Pages a twin request inserted meanwhile replace the
 * request's own copies, which go back to the pool.  Out of host memory
 * the pages simply stay the request's own. */
void eng_sched_cache_prefill(struct eng_sched *s, struct req *r)
{
	int32_t full = r->computed / s->p.page_size, own = full - r->prefix_pages;
	struct eng_radix_node *node, *end;
	size_t m, present;

	if (!s->radix || !r->node || own <= 0)
		return;
	if (own > s->cap_spare) {
		int32_t *p = realloc(s->spare, sizeof(int32_t) * (size_t)own);

		if (!p)
			return;
		s->spare = p;
		s->cap_spare = own;
	}
	memcpy(s->spare, r->pages + r->prefix_pages, sizeof(int32_t) * (size_t)own);
	m = eng_radix_match(s->radix, r->tokens, (size_t)full * (size_t)s->p.page_size, r->pages,
			    &node);
	if (m < (size_t)r->prefix_pages * (size_t)s->p.page_size)
		return; /* a split out of memory: r->pages beyond m untouched */
	eng_pages_release(s->pool, m / (size_t)s->p.page_size - (size_t)r->prefix_pages, s->spare);
	present = eng_radix_insert(s->radix, r->tokens, (size_t)r->computed, r->pages, &end);
	if (present == (size_t)-1)
		end = node;
	eng_radix_lock(s->radix, end);
	eng_radix_unlock(s->radix, r->node);
	r->node = end;
	r->prefix_pages = present == (size_t)-1 ? (int32_t)(m / (size_t)s->p.page_size) : full;
}

/* A finished request leaves its tokens in the cache for the next turn. */
void eng_sched_retire(struct eng_sched *s, struct req *r)
{
	if (s->radix && r->node) {
		int32_t ps = s->p.page_size;
		struct eng_radix_node *end;
		size_t present = eng_radix_insert(s->radix, r->tokens, (size_t)r->computed, r->pages,
						  &end);
		int32_t taken_from = r->computed / ps; /* first page not taken by the tree */

		/* Out of host memory for the hold: the history is ordinary cache. */
		if (r->more_turns && present != (size_t)-1)
			eng_radix_hold(s->radix, r->conv, end);
		else if (r->conv)
			eng_radix_release(s->radix, r->conv);
		if (present == (size_t)-1) {
			present = (size_t)r->prefix_pages * (size_t)ps;
			taken_from = r->prefix_pages;
		}
		/* Own pages the tree already had (a twin request inserted them). */
		if ((int32_t)(present / (size_t)ps) > r->prefix_pages)
			eng_pages_release(s->pool, present / (size_t)ps - (size_t)r->prefix_pages,
					  r->pages + r->prefix_pages);
		eng_pages_release(s->pool, (size_t)(r->n_pages - taken_from), r->pages + taken_from);
		eng_radix_unlock(s->radix, r->node);
		r->node = NULL;
		r->n_pages = r->prefix_pages = 0;
	} else {
		eng_sched_release_memory(s, r);
	}
}

/* Decode tokens r will still produce, as far as can be told: exact when
 * its output length is fixed, else the new-token ratio's share. */
static int32_t decode_left(const struct eng_sched *s, const struct req *r)
{
	int32_t left = r->max_new - r->n_gen;

	if (r->score)
		return 0;
	if (!r->exact) {
		int32_t clip = left < CLIP_NEW_TOKENS ? left : CLIP_NEW_TOKENS;

		left = (int32_t)ceil(clip * s->new_token_ratio);
	}
	return left;
}

/* Pages r still needs to run to its end: the KV of its prompt and of every
 * generated token but the last (which is sampled, never stored), less the
 * pages it holds. */
int32_t eng_sched_pages_to_finish(const struct eng_sched *s, const struct req *r)
{
	int32_t kv_end = r->score ? r->prompt_len : r->n_tokens + decode_left(s, r) - 1;
	int32_t need = eng_sched_pages_for(s, kv_end < r->computed ? r->computed : kv_end) - r->n_pages;

	return need > 0 ? need : 0;
}

int64_t eng_sched_reserved_pages(const struct eng_sched *s)
{
	int64_t sum = 0;

	for (int32_t i = 0; i < s->n_running; i++)
		sum += eng_sched_pages_to_finish(s, s->running[i]);
	return sum;
}

/* Pages that can be had without retracting anyone: free ones and the
 * cache's unlocked ones, the held histories of conversations between
 * turns only when with_held. */
size_t eng_sched_room(const struct eng_sched *s, bool with_held)
{
	size_t n = eng_pages_available(s->pool);

	if (s->radix)
		n += eng_radix_evictable_pages(s->radix) -
		     (with_held ? 0 : eng_radix_held_pages(s->radix));
	return n;
}

/* After a retraction the estimate was too low: raise the ratio to what
 * the running requests show, as SGLang does. */
void eng_sched_raise_ratio(struct eng_sched *s)
{
	double done = 0, max_new = 0, ratio;

	for (int32_t i = 0; i < s->n_running; i++) {
		done += s->running[i]->n_gen;
		max_new += s->running[i]->max_new;
	}
	if (max_new <= 0)
		return;
	ratio = (done + (double)RETRACT_DECODE_STEPS * s->n_running) / max_new;
	if (ratio > 1)
		ratio = 1;
	if (ratio > s->new_token_ratio)
		s->new_token_ratio = ratio;
}

/* Locks r's cached prefix into its block table and says whether r can run
 * to its end next to the running requests' reservations.  Undo with
 * req_release_memory when r is not admitted. */
enum fit eng_sched_try_fit(struct eng_sched *s, struct req *r, int64_t reserved)
{
	size_t matched = eng_sched_match_prefix(s, r, &r->node);
	int64_t need;

	if (s->radix)
		eng_radix_lock(s->radix, r->node);
	r->prefix_pages = r->n_pages = (int32_t)(matched / (size_t)s->p.page_size);
	r->computed = (int32_t)matched;
	need = reserved + eng_sched_pages_to_finish(s, r);
	if (need <= (int64_t)eng_sched_room(s, false))
		return FIT;
	return need <= (int64_t)eng_sched_room(s, true) ? FIT_HELD : FIT_NONE;
}

