/*
 * route_policy.c: the table of routing policies, their parameters, and the
 * helpers they share (see route.h).
 */
#include "engine/route.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct eng_route_policy_ops *const policies[] = {
	&eng_policy_cache_aware, &eng_policy_round_robin, &eng_policy_random,
	&eng_policy_shortest_queue, &eng_policy_power_of_two,
};

#define N_POLICIES (sizeof(policies) / sizeof(policies[0]))

/* SGLang router's defaults (sglang_router's RouterArgs). */
void eng_route_default_params(struct eng_route_params *p)
{
	memset(p, 0, sizeof(*p));
	p->cache_threshold = 0.5;
	p->balance_abs_threshold = 32;
	p->balance_rel_threshold = 1.0001;
	p->eviction_interval_s = 60;
	p->max_tree_size = (int64_t)1 << 24;
}

const struct eng_route_policy_ops *eng_route_policy_find(const char *name)
{
	for (size_t i = 0; name && i < N_POLICIES; i++)
		if (!strcmp(policies[i]->name, name))
			return policies[i];
	return NULL;
}

const char *eng_router_policy_names(void)
{
	static char names[256];

	if (!names[0]) {
		for (size_t i = 0; i < N_POLICIES; i++) {
			if (i)
				strcat(names, " ");
			strcat(names, policies[i]->name);
		}
	}
	return names;
}

int eng_route_policy_init(struct eng_route_policy *pol, const char *name,
			  const struct eng_route_params *p, struct eng_error *err)
{
	memset(pol, 0, sizeof(*pol));
	pol->ops = eng_route_policy_find(name);
	if (!pol->ops)
		return eng_error_set(err, ENG_E_INVALID, NULL, 0, "unknown policy '%s' (%s)",
				     name ? name : "", eng_router_policy_names());
	if (!(p->cache_threshold >= 0 && p->cache_threshold <= 1) ||
	    p->balance_abs_threshold < 0 || !(p->balance_rel_threshold >= 1) ||
	    !(p->eviction_interval_s > 0) || p->max_tree_size < 0)
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "cache threshold must be in [0, 1], balance thresholds and "
				     "tree size at least 0 (relative at least 1), the eviction "
				     "interval positive");
	pol->p = *p;
	if (pol->ops->create && pol->ops->create(p, &pol->state) != 0)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	return 0;
}

void eng_route_policy_fini(struct eng_route_policy *pol)
{
	if (pol->ops && pol->ops->destroy)
		pol->ops->destroy(pol->state);
	pol->state = NULL;
}

int eng_route_least_loaded(const struct eng_route_worker *w, int n)
{
	int best = -1;

	for (int i = 0; i < n; i++) {
		if (!w[i].healthy)
			continue;
		if (best < 0 || w[i].queue_depth < w[best].queue_depth ||
		    (w[i].queue_depth == w[best].queue_depth &&
		     w[i].inflight_tokens < w[best].inflight_tokens))
			best = i;
	}
	return best;
}

int eng_route_n_healthy(const struct eng_route_worker *w, int n)
{
	int k = 0;

	for (int i = 0; i < n; i++)
		k += w[i].healthy;
	return k;
}

int eng_route_nth_healthy(const struct eng_route_worker *w, int n, int k)
{
	for (int i = 0; i < n; i++)
		if (w[i].healthy && k-- == 0)
			return i;
	return -1;
}
