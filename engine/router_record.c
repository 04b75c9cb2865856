/*
 * router_record.c: what a run's records say of routing (see router.h):
 * the fields of a routed turn's request record, and the run record's
 * per-worker totals (requests, prompt and cached tokens, retries, the
 * queue depth each request found), counted from the run's own turns so
 * that other clients of the same router do not mix in.
 */
#include "engine/router.h"

#include <stdlib.h>
#include <string.h>

void eng_route_record_fields(json_t *rec, const struct eng_route_info *ri)
{
	if (!rec || !ri)
		return;
	json_object_set_new(rec, "worker", ri->worker_name ? json_string(ri->worker_name)
							   : json_null());
	json_object_set_new(rec, "retried", json_integer(ri->retried));
	json_object_set_new(rec, "router_queue_time", json_real(ri->router_queue_time));
	json_object_set_new(rec, "worker_queue_time", ri->worker_queue_time >= 0
			    ? json_real(ri->worker_queue_time) : json_null());
	json_object_set_new(rec, "queue_depth", json_integer(ri->queue_depth));
}

struct worker_tally {
	char *name;                /* NULL: no turn of this run went there */
	int64_t requests, failed, retried, prompt_tokens, cached_tokens;
	int64_t depth_sum, depth_max;
};

struct eng_route_tally {
	struct worker_tally *w;    /* (n), indexed by the router's worker index */
	int n;
};

int eng_route_tally_add(struct eng_route_tally **tp, const struct eng_request_timing *t)
{
	const struct eng_route_info *ri = t->route;
	struct eng_route_tally *tl = *tp;
	struct worker_tally *w;

	if (!ri || ri->worker < 0 || !ri->worker_name)
		return 0;
	if (!tl && !(tl = *tp = calloc(1, sizeof(*tl))))
		return ENG_E_NOMEM;
	if (ri->worker >= tl->n) {
		struct worker_tally *v = realloc(tl->w, sizeof(*v) * (size_t)(ri->worker + 1));

		if (!v)
			return ENG_E_NOMEM;
		memset(v + tl->n, 0, sizeof(*v) * (size_t)(ri->worker + 1 - tl->n));
		tl->w = v;
		tl->n = ri->worker + 1;
	}
	w = &tl->w[ri->worker];
	if (!w->name && !(w->name = strdup(ri->worker_name)))
		return ENG_E_NOMEM;
	w->requests++;
	w->failed += t->error != NULL;
	w->retried += ri->retried > 0;
	w->prompt_tokens += t->prompt_len;
	w->cached_tokens += t->cached_tokens;
	w->depth_sum += ri->queue_depth;
	if (ri->queue_depth > w->depth_max)
		w->depth_max = ri->queue_depth;
	return 0;
}

json_t *eng_route_tally_json(const struct eng_route_tally *tl)
{
	json_t *arr = json_array();

	for (int k = 0; tl && k < tl->n; k++) {
		const struct worker_tally *w = &tl->w[k];

		if (!w->name)
			continue;
		json_array_append_new(arr, json_pack(
			"{s:s,s:I,s:I,s:I,s:I,s:I,s:o,s:f,s:I}", "worker", w->name,
			"requests", (json_int_t)w->requests, "failed", (json_int_t)w->failed,
			"retried", (json_int_t)w->retried,
			"prompt_tokens", (json_int_t)w->prompt_tokens,
			"cached_tokens", (json_int_t)w->cached_tokens,
			"cache_hit_rate", w->prompt_tokens
				? json_real((double)w->cached_tokens / (double)w->prompt_tokens)
				: json_null(),
			"queue_depth_mean", (double)w->depth_sum / (double)w->requests,
			"queue_depth_max", (json_int_t)w->depth_max));
	}
	return arr;
}

void eng_route_tally_free(struct eng_route_tally *tl)
{
	if (!tl)
		return;
	for (int k = 0; k < tl->n; k++)
		free(tl->w[k].name);
	free(tl->w);
	free(tl);
}
