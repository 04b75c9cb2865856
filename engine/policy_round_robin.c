/*
 * policy_round_robin.c: the healthy workers in turn (SGLang's round_robin).
 *
 * A counter advances once per request and indexes the list of healthy
 * workers, so a worker that goes down is skipped and one that comes back
 * takes its turn again; the cycle shifts when the list changes, as
 * SGLang's does.  Load and cache are ignored by design: this is the
 * baseline the cache-aware policy is measured against.
 */
#include "engine/route.h"

#include <stdlib.h>

static int rr_create(const struct eng_route_params *p, void **state)
{
	(void)p;
	*state = calloc(1, sizeof(uint64_t));
	return *state ? 0 : ENG_E_NOMEM;
}

static int rr_pick(void *state, const struct eng_route_params *p, const struct eng_route_req *rq,
		   const struct eng_route_worker *w, int n)
{
	uint64_t *count = state;
	int healthy = eng_route_n_healthy(w, n);

	(void)p;
	(void)rq;
	if (healthy == 0)
		return -1;
	return eng_route_nth_healthy(w, n, (int)((*count)++ % (uint64_t)healthy));
}

const struct eng_route_policy_ops eng_policy_round_robin = {
	"round_robin", false, rr_create, rr_pick, free,
};
