/*
 * nd_summary_text.c: a summary record printed the way SGLang's
 * bench_serving prints its result: the "Serving Benchmark Result" block,
 * labels padded to 40 columns and values to 10 ("{:<40} {:<10}"), section
 * rules 50 wide with the title centred as Python's "{:-^50}" centres it
 * (the odd column goes to the right).  SGLang's labels are kept verbatim;
 * the percentile lines follow --metric-percentiles.  After SGLang's closing
 * rule come trajbench's own lines (failures, prefix cache, trajectories,
 * env time, and the projection, headed as one), then the per-turn table.
 *
 * It formats what the record holds and computes nothing, so the text and
 * the JSON can never disagree.  A null prints as "n/a".
 *
 * --format sglang prints SGLang's block exactly as its bench_serving does
 * (python/sglang/bench_serving.py): a blank line, then Backend to Max ITL
 * with no line of ours in between (no Run:, the retokenized and text token
 * counts, the peaks), SGLang's own percentile lines unless
 * --metric-percentiles asks for others, and 0 where the record holds null
 * (SGLang's np.mean(x or 0)), so that a script that reads SGLang's output
 * reads ours unchanged.  trajbench's lines follow only on request.
 */
#include "tools/stats/nd_summary.h"
#include "tools/stats/nd_stats.h"
#include "tools/common/nd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WIDTH 50

static int out(const char *s)
{
	return nd_write_line(s, strlen(s));
}

/* title centred in WIDTH columns of fill, as Python's format "^". */
static int rule(const char *title, char fill)
{
	char buf[WIDTH + 64];
	size_t len = strlen(title), pad = len < WIDTH ? WIDTH - len : 0;
	size_t left = pad / 2, right = pad - left;

	memset(buf, fill, left);
	memcpy(buf + left, title, len);
	memset(buf + left + len, fill, right);
	buf[left + len + right] = '\0';
	return out(buf);
}

static int kv(const char *label, const char *value)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "%-40s %-10s", label, value);
	return out(buf);
}

/* A number of the record with 2 decimals (times scale, e.g. 100 for %). */
static int kv_num(const char *label, const json_t *sum, const char *key,
		  double scale)
{
	const json_t *v = json_object_get(sum, key);
	char val[64];

	if (json_is_integer(v) && scale == 1)
		snprintf(val, sizeof(val), "%lld", (long long)json_integer_value(v));
	else if (json_is_number(v))
		snprintf(val, sizeof(val), "%.2f", json_number_value(v) * scale);
	else
		snprintf(val, sizeof(val), "n/a");
	return kv(label, val);
}

static int kv_int(const char *label, const json_t *sum, const char *key)
{
	return kv_num(label, sum, key, 1);
}

/* True when key is "pNN_NAME_ms" (NN digits and dots); *nn_len = len(NN). */
static bool pct_key(const char *key, const char *name, size_t *nn_len)
{
	size_t klen = strlen(key), nlen = strlen(name), i;

	if (key[0] != 'p' || klen < nlen + 6 ||
	    strcmp(key + klen - 3, "_ms") != 0 ||
	    strncmp(key + klen - 3 - nlen, name, nlen) != 0 ||
	    key[klen - 4 - nlen] != '_')
		return false;
	*nn_len = klen - 5 - nlen;
	for (i = 1; i <= *nn_len; i++)
		if (!strchr("0123456789.", key[i]))
			return false;
	return *nn_len > 0;
}

/* Mean, median, every percentile the record holds (in its order) and, for
 * ITL, the maximum of one metric: keys *_NAME_ms, labels "... LABEL (ms):". */
static int stats_lines(const json_t *sum, const char *name, const char *label,
		       bool with_max)
{
	char key[96], lab[128];
	const char *k;
	const json_t *v;
	size_t nn;
	int rc = 0;

	snprintf(key, sizeof(key), "mean_%s_ms", name);
	snprintf(lab, sizeof(lab), "Mean %s (ms):", label);
	rc |= kv_num(lab, sum, key, 1);
	snprintf(key, sizeof(key), "median_%s_ms", name);
	snprintf(lab, sizeof(lab), "Median %s (ms):", label);
	rc |= kv_num(lab, sum, key, 1);
	json_object_foreach((json_t *)sum, k, v) {
		if (!pct_key(k, name, &nn))
			continue;
		snprintf(lab, sizeof(lab), "P%.*s %s (ms):", (int)nn, k + 1, label);
		rc |= kv_num(lab, sum, k, 1);
	}
	if (with_max) {
		snprintf(key, sizeof(key), "max_%s_ms", name);
		snprintf(lab, sizeof(lab), "Max %s (ms):", label);
		rc |= kv_num(lab, sum, key, 1);
	}
	return rc;
}

static const char *str_or(const json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : dflt;
}

/* Run, backend, rate, concurrency limit: who and how, before the figures. */
static int head_lines(const json_t *sum, const char *backend)
{
	const json_t *bs = json_object_get(sum, "batch_size");
	const char *mode = str_or(sum, "mode", NULL);
	char val[64];
	int rc = 0;

	rc |= rule(" Serving Benchmark Result ", '=');
	rc |= kv("Run:", str_or(sum, "run", "(several runs)"));
	if (json_object_get(sum, "conversation_id"))
		rc |= kv("Conversation:", str_or(sum, "conversation_id", "n/a"));
	if (json_object_get(sum, "worker"))
		rc |= kv("Worker:", str_or(sum, "worker", "n/a"));
	if (json_is_integer(json_object_get(sum, "turn")))
		rc |= kv_int("Turn:", sum, "turn");
	rc |= kv("Backend:", backend ? backend : "n/a");
	/* Replay sends each turn when its conversation is ready: a trace. */
	rc |= kv("Traffic request rate:",
		 mode && strcmp(mode, "replay") == 0 ? "trace" : "n/a");
	if (json_is_integer(bs))
		snprintf(val, sizeof(val), "%lld", (long long)json_integer_value(bs));
	else
		snprintf(val, sizeof(val), "not set");
	rc |= kv("Max request concurrency:", val);
	return rc;
}

/* SGLang's block, from "Successful requests" to its closing rule. */
static int sglang_lines(const json_t *sum)
{
	int rc = 0;

	rc |= kv_int("Successful requests:", sum, "completed");
	rc |= kv_num("Benchmark duration (s):", sum, "duration", 1);
	rc |= kv_int("Total input tokens:", sum, "total_input_tokens");
	rc |= kv_int("Total generated tokens:", sum, "total_output_tokens");
	rc |= kv_num("Request throughput (req/s):", sum, "request_throughput", 1);
	rc |= kv_num("Input token throughput (tok/s):", sum, "input_throughput", 1);
	rc |= kv_num("Output token throughput (tok/s):", sum, "output_throughput", 1);
	rc |= kv_num("Total token throughput (tok/s):", sum, "total_throughput", 1);
	rc |= kv_num("Concurrency:", sum, "concurrency", 1);
	rc |= rule("End-to-End Latency", '-');
	rc |= stats_lines(sum, "e2e_latency", "E2E Latency", false);
	rc |= rule("Time to First Token", '-');
	rc |= stats_lines(sum, "ttft", "TTFT", false);
	rc |= rule("Time per Output Token (excl. 1st token)", '-');
	rc |= stats_lines(sum, "tpot", "TPOT", false);
	rc |= rule("Inter-Token Latency", '-');
	rc |= stats_lines(sum, "itl", "ITL", true);
	rc |= rule("", '=');
	return rc;
}

/* trajbench's own lines: failures, cache, trajectories, projection. */
static int replay_lines(const json_t *sum, const struct nd_summary_params *p)
{
	char lab[96];
	int rc = 0;

	rc |= rule("Trajectory Replay", '-');
	rc |= kv_int("Failed requests:", sum, "failed");
	/* Only where the input recorded prompt lengths: 0 would say nothing. */
	if (json_integer_value(json_object_get(sum, "recorded_prompt_lens")) > 0)
		rc |= kv_int("Prompt lengths unlike recorded:", sum, "prompt_len_mismatches");
	rc |= kv_int("Total cached tokens:", sum, "total_cached_tokens");
	rc |= kv_num("Cache hit rate (%):", sum, "cache_hit_rate", 100);
	if (json_object_get(sum, "retractions")) {
		rc |= kv_int("Computed prompt tokens:", sum, "computed_prompt_tokens");
		rc |= kv_int("Recomputed prompt tokens:", sum, "recomputed_prompt_tokens");
		rc |= kv_int("Retractions:", sum, "retractions");
		rc |= kv_int("Peak KV use (tokens):", sum, "peak_kv_tokens");
		rc |= kv_int("KV pool (tokens):", sum, "kv_pool_tokens");
		rc |= kv_num("Roofline fraction (%):", sum, "roofline_fraction", 100);
	}
	rc |= kv_int("Completed trajectories:", sum, "num_trajectories");
	rc |= kv_num("Trajectory throughput (traj/s):", sum, "trajectories_per_s", 1);
	rc |= kv_num("Total env time (s):", sum, "total_env_time", 1);
	rc |= kv_num("Mean env time per trajectory (s):", sum,
		     "mean_env_time_per_trajectory", 1);
	rc |= kv_num("Total LLM time (s):", sum, "total_llm_time", 1);
	rc |= kv_num("Mean LLM time per trajectory (s):", sum,
		     "mean_llm_time_per_trajectory", 1);
	if (p->project_trajectories > 0) {
		rc |= rule("Projection (not a measurement)", '-');
		snprintf(lab, sizeof(lab), "Time for %ld trajectories (s):",
			 p->project_trajectories);
		rc |= kv_num(lab, sum, "projected_rollout_time", 1);
	}
	rc |= rule("", '=');
	return rc;
}

/* One cell of the per-turn table, right-aligned in w columns. */
static size_t cell(char *buf, size_t len, int w, const json_t *v, double scale)
{
	if (json_is_integer(v) && scale == 1)
		return (size_t)snprintf(buf, len, " %*lld", w,
					(long long)json_integer_value(v));
	if (json_is_number(v))
		return (size_t)snprintf(buf, len, " %*.2f", w,
					json_number_value(v) * scale);
	return (size_t)snprintf(buf, len, " %*s", w, "n/a");
}

/* The turn_summary records as a table: one row per turn. */
static int turn_lines(const json_t *turns)
{
	static const char *const skip[] = {"type", "run", "conversation_id", "worker"};
	char buf[1024];
	size_t i, j, pos;
	const char *k;
	const json_t *v, *t0 = json_array_get(turns, 0);
	int rc = rule("Per Turn", '-');

	if (!t0)
		return rc;
	/* Header: the record's keys past its identity, in record order. */
	pos = 0;
	json_object_foreach((json_t *)t0, k, v) {
		bool shown = true;

		for (j = 0; j < 3; j++)
			shown = shown && strcmp(k, skip[j]) != 0;
		if (shown && pos < sizeof(buf))
			pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, " %*s",
				strcmp(k, "cache_hit_rate") ? (int)strlen(k) : 12,
				strcmp(k, "cache_hit_rate") ? k : "cache_hit_%");
	}
	rc |= out(buf + 1);
	json_array_foreach(turns, i, t0) {
		pos = 0;
		json_object_foreach((json_t *)t0, k, v) {
			bool shown = true;
			bool hit = strcmp(k, "cache_hit_rate") == 0;

			for (j = 0; j < 3; j++)
				shown = shown && strcmp(k, skip[j]) != 0;
			if (shown && pos < sizeof(buf))
				pos += cell(buf + pos, sizeof(buf) - pos,
					    hit ? 12 : (int)strlen(k), v, hit ? 100 : 1);
		}
		rc |= out(buf + 1);
	}
	return rc;
}

/* ------------------------------------------------------------ sglang */

/* A figure of the record, never n/a: null (an empty sample, a zero
 * duration) prints 0, as SGLang prints its np.mean(x or 0). */
static int sg_num(const char *label, const json_t *sum, const char *key)
{
	const json_t *v = json_object_get(sum, key);
	char val[64];

	snprintf(val, sizeof(val), "%.2f", json_is_number(v) ? json_number_value(v) : 0.0);
	return kv(label, val);
}

static int sg_int(const char *label, const json_t *sum, const char *key)
{
	const json_t *v = json_object_get(sum, key);
	char val[64];

	snprintf(val, sizeof(val), "%lld", json_is_number(v) ? (long long)json_number_value(v) : 0LL);
	return kv(label, val);
}

/* A float as Python's str() writes it: shortest round trip, ".0" on a
 * whole number ("50.0", "2.5", "inf"). */
static void py_float(char *buf, size_t len, double x)
{
	if (isinf(x)) {
		snprintf(buf, len, "inf");
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	if (!strpbrk(buf, ".en"))
		strncat(buf, ".0", len - strlen(buf) - 1);
}

/* Mean, median and percentile lines of one metric: SGLang's own (pcts)
 * or, when --metric-percentiles was given, those; max for ITL. */
static int sg_stats(const json_t *sum, const char *name, const char *label,
		    const double *sglang_pcts, size_t n_sglang,
		    const struct nd_summary_params *p, bool with_max)
{
	const double *pct = p->pct_given ? p->pct : sglang_pcts;
	size_t n = p->pct_given ? p->n_pct : n_sglang;
	char key[96], lab[128], pname[32];
	int rc = 0;

	snprintf(key, sizeof(key), "mean_%s_ms", name);
	snprintf(lab, sizeof(lab), "Mean %s (ms):", label);
	rc |= sg_num(lab, sum, key);
	snprintf(key, sizeof(key), "median_%s_ms", name);
	snprintf(lab, sizeof(lab), "Median %s (ms):", label);
	rc |= sg_num(lab, sum, key);
	for (size_t i = 0; i < n; i++) {
		nd_stats_pct_name(pct[i], pname, sizeof(pname));
		snprintf(key, sizeof(key), "%s_%s_ms", pname, name);
		snprintf(lab, sizeof(lab), "P%s %s (ms):", pname + 1, label);
		rc |= sg_num(lab, sum, key);
	}
	if (with_max) {
		snprintf(key, sizeof(key), "max_%s_ms", name);
		snprintf(lab, sizeof(lab), "Max %s (ms):", label);
		rc |= sg_num(lab, sum, key);
	}
	return rc;
}

/* SGLang's header: replay sends turns as its trace replay does ("trace");
 * generate mode its Poisson rate, inf without one. */
static int sg_head(const json_t *sum, const char *backend)
{
	const char *mode = str_or(sum, "mode", NULL);
	const json_t *rate = json_object_get(sum, "request_rate");
	const json_t *bs = json_object_get(sum, "batch_size");
	char val[64];
	int rc = 0;

	rc |= out("");
	rc |= rule(" Serving Benchmark Result ", '=');
	rc |= kv("Backend:", backend ? backend : "trajbench");
	if (mode && strcmp(mode, "generate") == 0)
		py_float(val, sizeof(val), json_is_number(rate) ? json_number_value(rate) : INFINITY);
	else
		snprintf(val, sizeof(val), "trace");
	rc |= kv("Traffic request rate:", val);
	if (json_is_integer(bs) && json_integer_value(bs) > 0)
		snprintf(val, sizeof(val), "%lld", (long long)json_integer_value(bs));
	else
		snprintf(val, sizeof(val), "not set");
	rc |= kv("Max request concurrency:", val);
	return rc;
}

/* SGLang's block, blank line to closing rule, as its bench_serving prints
 * it.  trajbench counts the token ids it generated, so the retokenized
 * count is the same number, and every input token is a text token. */
static int sglang_block(const json_t *sum, const char *backend,
			const struct nd_summary_params *p)
{
	static const double e2e[] = {90, 99}, one[] = {99}, itl[] = {95, 99};
	int rc = sg_head(sum, backend);

	rc |= sg_int("Successful requests:", sum, "completed");
	rc |= sg_num("Benchmark duration (s):", sum, "duration");
	rc |= sg_int("Total input tokens:", sum, "total_input_tokens");
	rc |= sg_int("Total input text tokens:", sum, "total_input_tokens");
	rc |= sg_int("Total generated tokens:", sum, "total_output_tokens");
	rc |= sg_int("Total generated tokens (retokenized):", sum, "total_output_tokens");
	rc |= sg_num("Request throughput (req/s):", sum, "request_throughput");
	rc |= sg_num("Input token throughput (tok/s):", sum, "input_throughput");
	rc |= sg_num("Output token throughput (tok/s):", sum, "output_throughput");
	rc |= sg_num("Peak output token throughput (tok/s):", sum, "max_output_tokens_per_s");
	rc |= sg_int("Peak concurrent requests:", sum, "max_concurrent_requests");
	rc |= sg_num("Total token throughput (tok/s):", sum, "total_throughput");
	rc |= sg_num("Concurrency:", sum, "concurrency");
	rc |= rule("End-to-End Latency", '-');
	rc |= sg_stats(sum, "e2e_latency", "E2E Latency", e2e, 2, p, false);
	rc |= rule("Time to First Token", '-');
	rc |= sg_stats(sum, "ttft", "TTFT", one, 1, p, false);
	rc |= rule("Time per Output Token (excl. 1st token)", '-');
	rc |= sg_stats(sum, "tpot", "TPOT", one, 1, p, false);
	rc |= rule("Inter-Token Latency", '-');
	rc |= sg_stats(sum, "itl", "ITL", itl, 2, p, true);
	rc |= rule("", '=');
	return rc;
}

int nd_summary_write_text(const json_t *summary, const json_t *turns,
			  const char *backend, const struct nd_summary_params *p,
			  bool first)
{
	int rc = 0;

	if (p->format == ND_SUMMARY_SGLANG) {
		rc |= sglang_block(summary, backend, p);
		if (p->replay_block)
			rc |= replay_lines(summary, p);
		if (turns)
			rc |= turn_lines(turns);
		return rc ? -1 : 0;
	}
	if (!first)
		rc |= out("");
	rc |= head_lines(summary, backend);
	rc |= sglang_lines(summary);
	rc |= replay_lines(summary, p);
	if (turns)
		rc |= turn_lines(turns);
	return rc ? -1 : 0;
}
