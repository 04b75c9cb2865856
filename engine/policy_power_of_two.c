/*
 * policy_power_of_two.c: two distinct random healthy workers, the one with
 * fewer requests in flight (SGLang's power_of_two; ties go to the first
 * drawn, as there).  Nearly the balance of shortest_queue while looking at
 * two workers only: the classic "power of two choices".
 */
#include "engine/route.h"
#include "engine/rng.h"

#include <stdlib.h>

static int p2_create(const struct eng_route_params *p, void **state)
{
	uint64_t *x = malloc(sizeof(*x));

	if (!x)
		return ENG_E_NOMEM;
	*x = p->seed;
	*state = x;
	return 0;
}

static int p2_pick(void *state, const struct eng_route_params *p, const struct eng_route_req *rq,
		   const struct eng_route_worker *w, int n)
{
	int healthy = eng_route_n_healthy(w, n), a, b, k;

	(void)p;
	(void)rq;
	if (healthy <= 1)
		return healthy ? eng_route_nth_healthy(w, n, 0) : -1;
	k = (int)(eng_splitmix64(state) % (uint64_t)healthy);
	a = eng_route_nth_healthy(w, n, k);
	/* the second from the other healthy - 1, so that it differs */
	k = (k + 1 + (int)(eng_splitmix64(state) % (uint64_t)(healthy - 1))) % healthy;
	b = eng_route_nth_healthy(w, n, k);
	return w[b].queue_depth < w[a].queue_depth ? b : a;
}

const struct eng_route_policy_ops eng_policy_power_of_two = {
	"power_of_two", false, p2_create, p2_pick, free,
};
