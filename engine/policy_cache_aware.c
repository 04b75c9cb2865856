/*
 * policy_cache_aware.c: SGLang router's cache_aware policy over the
 * router's approximate per-worker radix trees (route_tree.h).
 *
 * Load first: with max and min the queue depths of the healthy workers,
 * load is imbalanced when max - min > balance_abs_threshold and max >
 * balance_rel_threshold * min; then the least loaded worker wins (ties:
 * fewer tokens in flight, then the lower index).  Otherwise the cache
 * decides: the worker whose tree holds the longest prefix of the prompt
 * wins when that prefix is more than cache_threshold of the prompt (ties:
 * the shorter queue, then the lower index); below it the worker with the
 * smallest tree wins (the most room for a new prefix; same ties).  The
 * router inserts the prompt into the winner's tree either way, as SGLang
 * does, so a conversation's later turns find their earlier ones there.
 *
 * What it refuses: SGLang matches text characters; we match token ids,
 * which the router has anyway (it renders the turns) and which are what
 * the workers' prefix caches hold, so a match counts exactly the tokens a
 * worker could reuse and never a text prefix that tokenizes differently.
 */
#include "engine/route.h"

#include <stddef.h>

/* The healthy worker with the greatest key (match, or -tree size), ties
 * to the shorter queue, then the lower index. */
static int best_by(const struct eng_route_worker *w, int n, bool by_match)
{
	int best = -1;

	for (int i = 0; i < n; i++) {
		int64_t ki, kb;

		if (!w[i].healthy)
			continue;
		if (best < 0) {
			best = i;
			continue;
		}
		ki = by_match ? w[i].match_tokens : -w[i].tree_tokens;
		kb = by_match ? w[best].match_tokens : -w[best].tree_tokens;
		if (ki > kb || (ki == kb && w[i].queue_depth < w[best].queue_depth))
			best = i;
	}
	return best;
}

static bool imbalanced(const struct eng_route_params *p, const struct eng_route_worker *w, int n)
{
	int32_t lo = 0, hi = 0;
	bool any = false;

	for (int i = 0; i < n; i++) {
		if (!w[i].healthy)
			continue;
		if (!any || w[i].queue_depth < lo)
			lo = w[i].queue_depth;
		if (!any || w[i].queue_depth > hi)
			hi = w[i].queue_depth;
		any = true;
	}
	return hi - lo > p->balance_abs_threshold && (double)hi > p->balance_rel_threshold * lo;
}

static int ca_pick(void *state, const struct eng_route_params *p, const struct eng_route_req *rq,
		   const struct eng_route_worker *w, int n)
{
	int best;

	(void)state;
	if (imbalanced(p, w, n))
		return eng_route_least_loaded(w, n);
	best = best_by(w, n, true);
	if (best >= 0 && rq->prompt_len > 0 &&
	    (double)w[best].match_tokens / rq->prompt_len > p->cache_threshold)
		return best;
	return best_by(w, n, false);
}

const struct eng_route_policy_ops eng_policy_cache_aware = {
	"cache_aware", true, NULL, ca_pick, NULL,
};
