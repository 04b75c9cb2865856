/*
 * router_setup.c: making and freeing a router, its settings and counters
 * for the records, and its face as a runner executor (see router.h).
 */
#include <config.h>
#include "engine/router_int.h"
#include "engine/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct rt_link_ops *const link_kinds[] = { &eng_link_http, &eng_link_sock };

void eng_router_default_params(struct eng_router_params *p)
{
	memset(p, 0, sizeof(*p));
	p->policy = "cache_aware";
	eng_route_default_params(&p->route);
	p->health_check_interval_s = 60;
	p->health_check_timeout_s = 5;
	p->health_failure_threshold = 3;
	p->health_success_threshold = 2;
	p->request_timeout_s = 1800;
	p->retry_max_retries = 5;
	p->worker_startup_timeout_s = 300;
}

void eng_router_free(struct eng_router *r)
{
	if (!r)
		return;
	while (r->head)
		rt_req_free(r, r->head);
	for (int k = 0; k < r->n; k++) {
		if (r->w[k].link)
			r->w[k].ops->close(r->w[k].link);
		eng_route_tree_free(r->w[k].tree);
		free(r->w[k].addr);
	}
	eng_route_policy_fini(&r->pol);
	free(r->w);
	free(r->snap);
	free(r->fds);
	free(r->slots);
	free(r->free_slots);
	free(r);
}

/* ---------------------------------------------------------------- setup */

static int check_params(const struct eng_router_params *p, struct eng_error *err)
{
	if (p->n_workers < 1 || p->n_workers > MAX_WORKERS)
		return eng_error_set(err, ENG_E_INVALID, NULL, 0, "a router needs 1 to %d workers",
				     MAX_WORKERS);
	for (int i = 0; i < p->n_workers; i++)
		for (int j = 0; j < i; j++)
			if (!strcmp(p->workers[i], p->workers[j]))
				return eng_error_set(err, ENG_E_INVALID, NULL, 0,
						     "worker %s given twice", p->workers[i]);
	if (!(p->health_check_interval_s > 0) || !(p->health_check_timeout_s > 0) ||
	    p->health_failure_threshold < 1 || p->health_success_threshold < 1 ||
	    !(p->request_timeout_s > 0) || p->retry_max_retries < 0 ||
	    !(p->worker_startup_timeout_s >= 0))
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "health check interval, timeouts and thresholds must be "
				     "positive");
	return 0;
}

static int open_worker(struct eng_router *r, int k, const char *addr, struct eng_error *err)
{
	struct rt_worker *w = &r->w[k];

	if (!(w->addr = strdup(addr)))
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	for (size_t i = 0; i < sizeof(link_kinds) / sizeof(link_kinds[0]) && !w->ops; i++)
		if (link_kinds[i]->accepts(addr))
			w->ops = link_kinds[i];
	if (!w->ops)
		return eng_error_set(err, ENG_E_INVALID, addr, 0,
				     "not a worker address (a socket path or an http:// URL)");
	if (r->pol.ops->needs_tree && !(w->tree = eng_route_tree_new()))
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	snprintf(w->why, sizeof(w->why), "not answered yet");
	return w->ops->open(r, k, addr, &w->link, err);
}

struct eng_tokenizer *eng_router_tokenizer(struct eng_router *r)
{
	return r->tok;
}

int eng_router_create(const struct eng_router_params *p, struct eng_tokenizer *tok,
		      const struct eng_sched_callbacks *cb, struct eng_router **out,
		      struct eng_error *err)
{
	struct eng_router *r = calloc(1, sizeof(*r));
	int rc;

	*out = NULL;
	if (!r)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	r->p = *p;
	r->p.workers = NULL; /* borrowed: the addresses are copied */
	r->tok = tok;
	r->cb = cb;
	rc = check_params(p, err);
	if (rc == 0)
		rc = eng_route_policy_init(&r->pol, p->policy, &p->route, err);
	if (rc == 0) {
		r->w = calloc((size_t)p->n_workers, sizeof(*r->w));
		r->snap = calloc((size_t)p->n_workers, sizeof(*r->snap));
		rc = r->w && r->snap ? 0 : eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	}
	for (int k = 0; rc == 0 && k < p->n_workers; k++) {
		r->n = k + 1;
		rc = open_worker(r, k, p->workers[k], err);
	}
	if (rc == 0)
		rc = rt_wait_for_workers(r, err);
	if (rc != 0) {
		eng_router_free(r);
		return rc;
	}
	r->next_eviction = eng_mono_s() + r->p.route.eviction_interval_s;
	*out = r;
	return 0;
}

/* ---------------------------------------------------------------- reporting */

int eng_router_n_workers(const struct eng_router *r)
{
	return r->n;
}

/* min(*cur, v) over the values reported (> 0); *cur 0 means none yet. */
static void tighten(int64_t *cur, const json_t *v)
{
	int64_t x = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;

	if (x > 0 && (*cur == 0 || x < *cur))
		*cur = x;
}

void eng_router_limits(const struct eng_router *r, int64_t *max_context, int64_t *pool_tokens)
{
	*max_context = *pool_tokens = 0;
	for (int k = 0; k < r->n; k++) {
		json_t *st = r->w[k].ops->last_status(r->w[k].link);
		const json_t *set = json_object_get(st, "settings");

		tighten(max_context, json_object_get(set, "context_length"));
		tighten(pool_tokens, json_object_get(set, "max_total_tokens"));
		json_decref(st);
	}
}

void eng_router_worker_stats(const struct eng_router *r, int k, struct eng_router_worker_stats *st)
{
	*st = r->w[k].st;
}

static json_t *worker_json(const struct eng_router *r, int k)
{
	const struct rt_worker *w = &r->w[k];
	json_t *j = json_pack("{s:s,s:s,s:b,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
			      "name", w->addr, "transport", w->ops->kind, "up", w->up,
			      "queue_depth", w->queue_depth,
			      "inflight_tokens", (json_int_t)w->inflight_tokens,
			      "tree_tokens", (json_int_t)(w->tree ? eng_route_tree_size(w->tree) : 0),
			      "sent", (json_int_t)w->st.sent, "answered", (json_int_t)w->st.answered,
			      "failed_over", (json_int_t)w->st.failed_over,
			      "timeouts", (json_int_t)w->st.timeouts,
			      "marked_down", (json_int_t)w->st.marked_down,
			      "rejoined", (json_int_t)w->st.rejoined);

	if (j)
		json_object_set_new(j, "last_error", w->why[0] ? json_string(w->why) : json_null());
	return j;
}

json_t *eng_router_settings(const struct eng_router *r)
{
	const struct eng_route_params *rp = &r->p.route;
	json_t *workers = json_array();
	json_t *j = json_pack("{s:s,s:f,s:i,s:f,s:f,s:I,s:I,s:f,s:f,s:i,s:i,s:f,s:i}",
			      "policy", r->pol.ops->name, "cache_threshold", rp->cache_threshold,
			      "balance_abs_threshold", rp->balance_abs_threshold,
			      "balance_rel_threshold", rp->balance_rel_threshold,
			      "eviction_interval", rp->eviction_interval_s,
			      "max_tree_size", (json_int_t)rp->max_tree_size,
			      "seed", (json_int_t)rp->seed,
			      "health_check_interval", r->p.health_check_interval_s,
			      "health_check_timeout", r->p.health_check_timeout_s,
			      "health_failure_threshold", r->p.health_failure_threshold,
			      "health_success_threshold", r->p.health_success_threshold,
			      "request_timeout", r->p.request_timeout_s,
			      "retry_max_retries", r->p.retry_max_retries);

	for (int k = 0; k < r->n; k++)
		json_array_append_new(workers, worker_json(r, k));
	json_object_set_new(j, "worker_health", workers);
	return j;
}

/* ---------------------------------------------------------------- as an executor */

static int exec_submit(void *x, const struct eng_request_params *p, const struct eng_conv *c,
		       int32_t turn, struct eng_error *err)
{
	return eng_router_submit(x, p, c, turn, err);
}

static void exec_cancel(void *x, int id) { eng_router_cancel(x, id); }
static void exec_stop(void *x, int id) { eng_router_stop(x, id); }
static bool exec_busy(const void *x) { return eng_router_busy(x); }
static void exec_stats(const void *x, struct eng_sched_stats *st) { eng_router_get_stats(x, st); }
static void exec_flush(void *x) { eng_router_flush_cache(x); }
static void exec_free(void *x) { eng_router_free(x); }

static int exec_step(void *x, double max_wait_s, struct eng_error *err)
{
	(void)err;
	eng_router_step(x, max_wait_s);
	return 0;
}

/* The workers keep no conversation between turns for the router (a turn
 * may go elsewhere), so there is nothing to end; the peak of pages is a
 * worker's own figure. */
static void exec_reset_peak(void *x) { (void)x; }
static void exec_end_conversation(void *x, uint64_t key) { (void)x; (void)key; }

/* No context bound here: each worker refuses what does not fit its own
 * (a failed turn, as from the local scheduler). */
const struct eng_executor_ops eng_router_ops = {
	exec_submit, exec_cancel, exec_busy, exec_step, exec_stats, exec_flush,
	exec_reset_peak, exec_end_conversation, exec_free, NULL, exec_stop,
};
