/*
 * policy_shortest_queue.c: the healthy worker with the fewest requests in
 * flight.
 *
 * Requests, not tokens, because a worker's batch admits requests and each
 * one holds a decode slot until it ends whatever its length; SGLang's load
 * is the same count.  Ties go to fewer tokens in flight (prompt plus tokens
 * to generate), then to the lower index, so the choice is deterministic.
 */
#include "engine/route.h"

#include <stddef.h>

static int sq_pick(void *state, const struct eng_route_params *p, const struct eng_route_req *rq,
		   const struct eng_route_worker *w, int n)
{
	(void)state;
	(void)p;
	(void)rq;
	return eng_route_least_loaded(w, n);
}

const struct eng_route_policy_ops eng_policy_shortest_queue = {
	"shortest_queue", false, NULL, sq_pick, NULL,
};
