/*
 * policy_random.c: a uniformly random healthy worker (SGLang's random),
 * from a seeded stream, so that a study's routing repeats run to run.
 */
#include "engine/route.h"
#include "engine/rng.h"

#include <stdlib.h>

static int random_create(const struct eng_route_params *p, void **state)
{
	uint64_t *x = malloc(sizeof(*x));

	if (!x)
		return ENG_E_NOMEM;
	*x = p->seed;
	*state = x;
	return 0;
}

static int random_pick(void *state, const struct eng_route_params *p,
		       const struct eng_route_req *rq, const struct eng_route_worker *w, int n)
{
	int healthy = eng_route_n_healthy(w, n);

	(void)p;
	(void)rq;
	if (healthy == 0)
		return -1;
	return eng_route_nth_healthy(w, n, (int)(eng_splitmix64(state) % (uint64_t)healthy));
}

const struct eng_route_policy_ops eng_policy_random = {
	"random", false, random_create, random_pick, free,
};
