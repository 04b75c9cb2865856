/*
 * nd_summary_record.c: one group's samples -> its "summary" record (and
 * "turn_summary" records), with SGLang's bench_serving field names and
 * definitions, plus trajbench's cache, trajectory and env-time fields.
 *
 * Order of operations follows SGLang so that values agree to the bit:
 * statistics in seconds, then * 1000; concurrency = np.sum(latencies) /
 * duration with the sum taken in input order, before any sort.  Every
 * ratio whose denominator is 0 (and every statistic of an empty sample) is
 * written as null, never as 0, nan or inf.
 */
#include "tools/stats/nd_summary_impl.h"
#include "tools/stats/nd_stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ summary record */

/* Sets keys in order and remembers any failure (a NULL value included). */
struct jb {
	json_t *o;
	int err;
};

static void jb_set(struct jb *b, const char *key, json_t *v)
{
	if (json_object_set_new(b->o, key, v) != 0)
		b->err = 1;
}

/* A real, or null when not ok or not finite (JSON has no nan or inf). */
static void jb_num(struct jb *b, const char *key, double v, bool ok)
{
	jb_set(b, key, ok && isfinite(v) ? json_real(v) : json_null());
}

static void jb_ratio(struct jb *b, const char *key, double num, double den)
{
	jb_num(b, key, den > 0 ? num / den : 0, den > 0);
}

static void jb_str(struct jb *b, const char *key, const char *v)
{
	jb_set(b, key, v ? json_string(v) : json_null());
}

json_t *nd_summary_name_json(const char *name)
{
	return name ? json_loads(name, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : json_null();
}

/* A name kept in JSON form (nd_summary_impl.h), written back as it was. */
static void jb_name(struct jb *b, const char *key, const char *v)
{
	jb_set(b, key, nd_summary_name_json(v));
}

/* mean_, median_, std_, pNN_ (and max_) NAME_ms of a sample in seconds.
 * Sorts the sample. */
static void jb_stats(struct jb *b, const char *name, struct nd_dvec *v,
		     const double *pct, size_t n_pct, bool with_max,
		     bool with_std)
{
	struct nd_stats_desc d = {0};
	bool ok = v->n > 0;
	char key[64], pname[32];

	if (ok)
		nd_stats_describe(v->v, v->n, &d);
	snprintf(key, sizeof(key), "mean_%s_ms", name);
	jb_num(b, key, d.mean * 1000, ok);
	snprintf(key, sizeof(key), "median_%s_ms", name);
	jb_num(b, key, d.median * 1000, ok);
	if (with_std) {
		snprintf(key, sizeof(key), "std_%s_ms", name);
		jb_num(b, key, d.std * 1000, ok);
	}
	for (size_t i = 0; i < n_pct; i++) {
		nd_stats_pct_name(pct[i], pname, sizeof(pname));
		snprintf(key, sizeof(key), "%s_%s_ms", pname, name);
		jb_num(b, key, ok ? nd_stats_percentile_sorted(v->v, v->n, pct[i])
				     * 1000 : 0, ok);
	}
	if (with_max) {
		snprintf(key, sizeof(key), "max_%s_ms", name);
		jb_num(b, key, d.max * 1000, ok);
	}
}

/* The group's identity: run, and the key of a finer grouping. */
static void jb_identity(struct jb *b, const struct nd_summary *s,
			const struct group *g, const char *type)
{
	jb_str(b, "type", type);
	jb_name(b, "run", g->run);
	if (s->p.group_by == ND_GROUP_BY_CONVERSATION)
		jb_name(b, "conversation_id", g->conversation_id);
	else if (s->p.group_by == ND_GROUP_BY_WORKER)
		jb_name(b, "worker", g->worker);
	else if (s->p.group_by == ND_GROUP_BY_TURN && strcmp(type, "summary") == 0)
		jb_set(b, "turn", json_integer(g->turn));
}

static void jb_throughputs(struct jb *b, const struct group *g, double dur)
{
	jb_num(b, "duration", dur, true);
	jb_set(b, "completed", json_integer(g->completed));
	jb_set(b, "failed", json_integer(g->failed));
	jb_set(b, "recorded_prompt_lens", json_integer(g->recorded));
	jb_set(b, "prompt_len_mismatches", json_integer(g->mismatched));
	jb_set(b, "total_input_tokens", json_integer(g->input_tokens));
	jb_set(b, "total_output_tokens", json_integer(g->output_tokens));
	jb_ratio(b, "request_throughput", (double)g->completed, dur);
	jb_ratio(b, "input_throughput", (double)g->input_tokens, dur);
	jb_ratio(b, "output_throughput", (double)g->output_tokens, dur);
	jb_ratio(b, "total_throughput",
		 (double)(g->input_tokens + g->output_tokens), dur);
}

/* Trajectory figures over the group's successful conversations: those
 * whose conversation_result says success, or, without one, whose requests
 * in this group all succeeded. */
static void jb_trajectories(struct jb *b, const struct nd_summary *s,
			    const struct group *g, double dur)
{
	double *env = malloc((g->n_conv + 1) * sizeof(*env));
	double *llm = malloc((g->n_conv + 1) * sizeof(*llm));
	size_t k = 0;
	double n, total_env, total_llm, per_s;

	if (!env || !llm) {
		b->err = 1;
		goto out;
	}
	for (size_t i = 0; i < g->n_conv; i++) {
		const struct conv_acc *c = g->conv_list[i];
		bool ok = c->has_result ? c->result_ok
					: c->n_failed == 0 && c->n_ok > 0;

		if (!ok)
			continue;
		env[k] = c->has_result ? c->result_env : c->env_req;
		llm[k] = c->has_result ? c->result_llm : c->llm_req;
		k++;
	}
	n = (double)k;
	total_env = nd_stats_sum(env, k);
	total_llm = nd_stats_sum(llm, k);
	per_s = dur > 0 ? n / dur : 0;
	jb_set(b, "num_trajectories", json_integer((json_int_t)k));
	jb_num(b, "trajectories_per_s", per_s, dur > 0);
	jb_num(b, "total_env_time", total_env, true);
	jb_ratio(b, "mean_env_time_per_trajectory", total_env, n);
	jb_num(b, "total_llm_time", total_llm, true);
	jb_ratio(b, "mean_llm_time_per_trajectory", total_llm, n);
	jb_ratio(b, "projected_rollout_time", (double)s->p.project_trajectories,
		 s->p.project_trajectories > 0 ? per_s : 0);
out:
	free(env);
	free(llm);
}

/* SGLang's peaks, over one-second buckets from the earliest start_time:
 * the most output tokens in a bucket (a request's tokens at start + ttft,
 * then after each ITL gap) and the most requests in flight in a bucket (a
 * request counts in every bucket from its start's to its end's).  Reads
 * the samples in request order, so it runs before they are sorted.  false
 * when there is no successful request, or the span is absurdly long. */
static bool peaks(const struct group *g, double *tok_per_s, long *max_req)
{
	double t0 = g->t_first;
	/* Seconds are counted in doubles and cast only once inside the
	 * buckets: times come from the records, 1e300 included. */
	double span = g->completed ? ceil(g->t_last - t0) + 1 : 0;
	long n_b, best_r = 0;
	double *tok, *req, best_t = 0;
	size_t k = 0;

	if (!(span >= 1 && span <= 1e8))
		return false;
	n_b = (long)span;
	tok = calloc((size_t)n_b, sizeof(*tok));
	req = calloc((size_t)n_b, sizeof(*req));
	for (size_t i = 0; tok && req && i < g->start.n; i++) {
		double t = g->start.v[i] + g->ttft.v[i];
		double d1 = g->start.v[i] - t0, d2 = g->start.v[i] + g->e2e.v[i] - t0;

		for (size_t j = 0; j <= (size_t)g->n_itl.v[i]; j++) {
			if (j > 0)
				t += g->itl.v[k++];
			if (t - t0 >= 0 && t - t0 < (double)n_b)
				tok[(long)(t - t0)] += 1;
		}
		if (!(d2 >= 0 && d1 < (double)n_b))
			continue;
		for (long b = d1 > 0 ? (long)d1 : 0; b <= (d2 < n_b ? (long)d2 : n_b - 1); b++)
			req[b] += 1;
	}
	for (long b = 0; tok && req && b < n_b; b++) {
		best_t = fmax(best_t, tok[b]);
		best_r = (long)fmax((double)best_r, req[b]);
	}
	*tok_per_s = best_t;
	*max_req = best_r;
	free(tok);
	free(req);
	return tok && req;
}

/* What the engine says of its memory and speed, from the run record's
 * engine_stats: only for a group of one run whose record has them. */
static void jb_engine(struct jb *b, const struct run_info *ri)
{
	static const char *const keys[] = {
		"computed_prompt_tokens", "recomputed_prompt_tokens", "retractions",
		"peak_kv_tokens", "kv_pool_tokens", "roofline_fraction",
	};

	if (!ri || !ri->engine_stats)
		return;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(ri->engine_stats, keys[i]);

		jb_set(b, keys[i], json_is_number(v) ? json_deep_copy(v) : json_null());
	}
}

/* The percentiles with 95 added, for ITL (SGLang always reports p95). */
static size_t itl_percentiles(const struct nd_summary *s, double *out)
{
	memcpy(out, s->p.pct, s->p.n_pct * sizeof(*out));
	out[s->p.n_pct] = 95;
	return nd_stats_sort_unique(out, s->p.n_pct + 1);
}

json_t *nd_summary_record(const struct nd_summary *s, struct group *g)
{
	const struct run_info *ri = g->run ? nd_strmap_get(&s->runs, g->run) : NULL;
	struct jb b = {json_object(), 0};
	double dur = g->completed ? g->t_last - g->t_first : 0;
	/* SGLang: np.sum(e2e_latencies) / duration, summed before sorting. */
	double sum_e2e = nd_stats_sum(g->e2e.v, g->e2e.n);
	double itl_pct[ND_SUMMARY_MAX_PCT + 1];
	size_t n_itl_pct = itl_percentiles(s, itl_pct);
	double peak_tok = 0;
	long peak_req = 0;
	bool has_peaks = peaks(g, &peak_tok, &peak_req);

	if (!b.o)
		return NULL;
	jb_identity(&b, s, g, "summary");
	jb_name(&b, "mode", ri ? ri->mode : NULL);
	jb_set(&b, "batch_size", ri && ri->has_batch_size ?
	       json_integer(ri->batch_size) : json_null());
	if (ri && ri->mode && strcmp(ri->mode, "\"generate\"") == 0) {   /* JSON form */
		/* SGLang's arguments of a generate run: null is its inf and
		 * its "not set" (no rate limit, no concurrency limit). */
		jb_num(&b, "request_rate", ri->request_rate, true);
		jb_set(&b, "max_concurrency", ri->has_batch_size && ri->batch_size > 0 ?
		       json_integer(ri->batch_size) : json_null());
	}
	jb_throughputs(&b, g, dur);
	jb_stats(&b, "e2e_latency", &g->e2e, s->p.pct, s->p.n_pct, false, true);
	jb_stats(&b, "ttft", &g->ttft, s->p.pct, s->p.n_pct, false, true);
	jb_stats(&b, "tpot", &g->tpot, s->p.pct, s->p.n_pct, false, true);
	jb_stats(&b, "itl", &g->itl, itl_pct, n_itl_pct, true, true);
	jb_ratio(&b, "concurrency", sum_e2e, dur);
	jb_num(&b, "max_output_tokens_per_s", peak_tok, has_peaks);
	jb_set(&b, "max_concurrent_requests", has_peaks ? json_integer(peak_req) : json_null());
	/* Over the requests whose server said how many tokens it had cached. */
	jb_set(&b, "total_cached_tokens", g->n_cache_known || !g->completed
			 ? json_integer(g->cached_tokens) : json_null());
	jb_ratio(&b, "cache_hit_rate", (double)g->cached_tokens,
		 (double)g->cache_input_tokens);
	jb_engine(&b, ri);
	jb_trajectories(&b, s, g, dur);
	if (b.err) {
		json_decref(b.o);
		return NULL;
	}
	return b.o;
}

static int cmp_turn(const void *a, const void *b)
{
	long x = ((const struct turn_acc *)a)->turn;
	long y = ((const struct turn_acc *)b)->turn;

	return (x > y) - (x < y);
}

static json_t *turn_record(const struct nd_summary *s, const struct group *g,
			   struct turn_acc *t)
{
	struct jb b = {json_object(), 0};
	double n = (double)t->ttft.n;

	if (!b.o)
		return NULL;
	jb_identity(&b, s, g, "turn_summary");
	jb_set(&b, "turn", json_integer(t->turn));
	jb_set(&b, "count", json_integer((json_int_t)t->ttft.n));
	jb_stats(&b, "ttft", &t->ttft, s->p.pct, s->p.n_pct, false, false);
	jb_ratio(&b, "mean_prompt_len", (double)t->prompt_sum, n);
	jb_ratio(&b, "mean_cached_tokens", (double)t->cached_sum, (double)t->n_cache_known);
	jb_ratio(&b, "cache_hit_rate", (double)t->cached_sum,
		 (double)t->cache_prompt_sum);
	if (b.err) {
		json_decref(b.o);
		return NULL;
	}
	return b.o;
}

/* A JSON array of the group's turn_summary records, by turn. */
json_t *nd_summary_turn_records(const struct nd_summary *s, struct group *g)
{
	json_t *a = json_array();

	if (!a)
		return NULL;
	if (g->n_turns > 1)
		qsort(g->turns, g->n_turns, sizeof(*g->turns), cmp_turn);
	for (size_t i = 0; i < g->n_turns; i++)
		if (json_array_append_new(a, turn_record(s, g, &g->turns[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}
