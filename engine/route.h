/*
 * route.h: routing policies, which pick the worker a request goes to.
 *
 * A policy is a decision over a snapshot: the request (its prompt token
 * ids) and one struct eng_route_worker per worker, filled by the router
 * (router.c) from what it knows (health, requests and tokens in flight,
 * and, for policies that ask for it, how much of the prompt the worker's
 * approximate radix tree holds, route_tree.h).  A policy does no I/O and
 * keeps no worker state of its own beyond a counter or a random stream,
 * so each one is a short file, and a test drives it with scripted
 * snapshots.
 *
 * The names, parameters and defaults are SGLang router's (sgl-router):
 *   cache_aware     the best tree match when load is balanced and the
 *                   match ratio is above cache_threshold, else the worker
 *                   with the smallest tree; the shortest queue when load
 *                   is imbalanced
 *   round_robin     the healthy workers in turn
 *   random          uniform over the healthy workers (seeded)
 *   shortest_queue  fewest requests in flight
 *   power_of_two    two random healthy workers, the less loaded
 *
 * Adding a policy: write engine/policy_NAME.c defining a const struct
 * eng_route_policy_ops eng_policy_NAME, declare it below, add it to the
 * table in route_policy.c and the file to engine/router.mk; the router and
 * --policy find it by name.
 */
#ifndef TRAJBENCH_ENG_ROUTE_H
#define TRAJBENCH_ENG_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/engine.h"

/* The request being routed. */
struct eng_route_req {
	const int32_t *prompt;     /* (prompt_len) token ids */
	int32_t prompt_len;
	int32_t max_new_tokens;
};

/* What the router knows of one worker when a request is routed.  A
 * worker's load is its queue depth: requests the router sent it that have
 * not finished (SGLang's worker load). */
struct eng_route_worker {
	bool healthy;              /* only healthy workers may be picked */
	int32_t queue_depth;       /* requests in flight there */
	int64_t inflight_tokens;   /* their prompt tokens plus tokens to generate */
	int32_t match_tokens;      /* needs_tree: prompt tokens the worker's tree
				    * holds as a prefix; else 0 */
	int64_t tree_tokens;       /* needs_tree: tokens in the worker's tree */
};

/* The policies' parameters are struct eng_route_params (engine.h). */

struct eng_route_policy_ops {
	const char *name;
	/* The router keeps a tree per worker and fills match_tokens and
	 * tree_tokens only for policies that set this. */
	bool needs_tree;
	/* A policy's own state (a counter, a random stream), or NULL for
	 * none; 0 or ENG_E_NOMEM. */
	int (*create)(const struct eng_route_params *p, void **state);
	/* The index of a healthy worker among w[0 .. n), or -1 when none is
	 * healthy.  May advance the policy's state. */
	int (*pick)(void *state, const struct eng_route_params *p, const struct eng_route_req *rq,
		    const struct eng_route_worker *w, int n);
	void (*destroy)(void *state);
};

extern const struct eng_route_policy_ops eng_policy_cache_aware;
extern const struct eng_route_policy_ops eng_policy_round_robin;
extern const struct eng_route_policy_ops eng_policy_random;
extern const struct eng_route_policy_ops eng_policy_shortest_queue;
extern const struct eng_route_policy_ops eng_policy_power_of_two;

/* The policy of that name, or NULL. */
const struct eng_route_policy_ops *eng_route_policy_find(const char *name);

/* A policy bound to its parameters and state. */
struct eng_route_policy {
	const struct eng_route_policy_ops *ops;
	struct eng_route_params p;
	void *state;
};

/* ENG_E_INVALID naming the policies for an unknown name, or bad
 * parameters; ENG_E_NOMEM. */
int eng_route_policy_init(struct eng_route_policy *pol, const char *name,
			  const struct eng_route_params *p, struct eng_error *err);
void eng_route_policy_fini(struct eng_route_policy *pol);

static inline int eng_route_policy_pick(struct eng_route_policy *pol,
					const struct eng_route_req *rq,
					const struct eng_route_worker *w, int n)
{
	return pol->ops->pick(pol->state, &pol->p, rq, w, n);
}

/* Helpers the policies share. */

/* The healthy worker with the fewest requests in flight; ties go to fewer
 * tokens in flight, then to the lower index.  -1 when none is healthy. */
int eng_route_least_loaded(const struct eng_route_worker *w, int n);

/* The number of healthy workers. */
int eng_route_n_healthy(const struct eng_route_worker *w, int n);

/* The index of the k-th healthy worker (k from 0), or -1. */
int eng_route_nth_healthy(const struct eng_route_worker *w, int n, int k);

#endif
