/*
 * http_metrics.c: the HTTP front's Prometheus metrics and its request log
 * (see http_int.h).
 *
 * Names are SGLang's with the "sglang:" prefix replaced by "trajbench:",
 * and a model_name label on each, so that dashboards made for SGLang read
 * them by a prefix change.  TTFT and E2E count from the request's arrival
 * (its parsing, tokenization and queueing included), as SGLang's do; the
 * request log keeps the engine's own times, as gpu-batch-infer's runs
 * record them.  Gauges (running and queued requests, KV usage,
 * cache hit rate) are read from the scheduler when scraped, so they cover
 * every front; counters and histograms count the HTTP front's generations
 * (one per prompt, as SGLang counts), with SGLang's bucket bounds and,
 * below them, finer ones for latencies under 0.1 s, which a small model
 * reaches.  trajbench:http_requests_total counts every answer by endpoint
 * and status.
 *
 * The request log (--log-requests) has one `request` record per finished
 * generation, the shape gpu-batch-infer's runs write (trajbench-records(5)),
 * with run "http", the request's id as conversation_id and its index in a
 * batch as turn; start_time counts from the server's start.
 */
#include "engine/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STATUS 600

static const double ttft_bounds[] = {
	0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10,
	20, 40, 60, 80, 100, 200, 400,
};
static const double itl_bounds[] = {
	0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035,
	0.040, 0.060, 0.080, 0.100, 0.200, 0.400, 0.600, 0.800, 1, 2, 4, 6, 8,
};
static const double e2e_bounds[] = {
	0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80,
	100, 200, 400, 600, 1200, 1800, 2400,
};
static const double queue_bounds[] = {
	0, 0.001, 0.005, 0.010, 0.050, 0.100, 0.200, 0.500, 1, 2, 3, 4, 5, 10, 15, 20, 30, 40,
	50, 60, 70, 80, 90, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1600,
	1800, 2000, 2500, 3000,
};

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

struct hist {
	const char *name, *help;
	const double *bounds;     /* (n) upper bounds, ascending */
	int n;
	uint64_t counts[48];      /* (n) observations in (bounds[i-1], bounds[i]] */
	uint64_t count;
	double sum;
};

struct http_metrics {
	uint64_t requests, aborted, prompt_tokens, generation_tokens, cached_tokens;
	struct hist ttft, itl, e2e, queue;
	uint64_t answers[HTTP_R_NONE + 1][MAX_STATUS];
};

static void hist_init(struct hist *h, const char *name, const char *help, const double *bounds,
		      int n)
{
	h->name = name;
	h->help = help;
	h->bounds = bounds;
	h->n = n;
}

int http_metrics_new(struct http_metrics **out)
{
	struct http_metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return -1;
	hist_init(&m->ttft, "time_to_first_token_seconds",
		  "Histogram of time to first token in seconds.", ttft_bounds, N_OF(ttft_bounds));
	hist_init(&m->itl, "inter_token_latency_seconds",
		  "Histogram of inter-token latency in seconds.", itl_bounds, N_OF(itl_bounds));
	hist_init(&m->e2e, "e2e_request_latency_seconds",
		  "Histogram of End-to-end request latency in seconds", e2e_bounds, N_OF(e2e_bounds));
	hist_init(&m->queue, "queue_time_seconds", "Histogram of queueing time in seconds.",
		  queue_bounds, N_OF(queue_bounds));
	*out = m;
	return 0;
}

void http_metrics_free(struct http_metrics *m)
{
	free(m);
}

static void observe(struct hist *h, double v)
{
	int i = 0;

	while (i < h->n && v > h->bounds[i])
		i++;
	if (i < h->n)
		h->counts[i]++;
	h->count++;
	h->sum += v;
}

void http_metrics_answer(struct http_metrics *m, enum http_route r, unsigned status)
{
	if (status < MAX_STATUS && (unsigned)r <= HTTP_R_NONE)
		m->answers[r][status]++;
}

/* ---------------------------------------------------------------- request log */

static void log_request(const struct http_front *fr, const struct http_req *q,
			const struct http_gen *g)
{
	static const char *const names[] = { "length", "stop", "abort", "error" };
	json_t *itl = json_array(), *rec;
	int32_t n = (int32_t)g->out.n;
	char rid[64], *s;

	for (int32_t i = 0; i < g->n_itl; i++)
		json_array_append_new(itl, json_real(g->itl[i]));
	snprintf(rid, sizeof(rid), "%s", q->id);
	rec = json_pack("{s:s,s:s,s:s,s:i,s:f,s:f,s:f,s:o,s:f,s:i,s:i,s:i,s:s,s:b,s:o,s:n}",
			"type", "request", "run", "http", "conversation_id", rid, "turn", g->index,
			"start_time", g->t_submit - fr->t0, "ttft", g->ttft, "latency", g->latency,
			"itl", itl, "tpot", n > 1 ? (g->latency - g->ttft) / (n - 1) : 0.0,
			"prompt_len", g->n_prompt, "output_len", n, "cached_tokens", g->cached_tokens,
			"finish_reason", names[g->finish & 3],
			"success", g->finish == ENG_FINISH_STOP || g->finish == ENG_FINISH_LENGTH,
			"error", g->error ? json_string(g->error)
			       : g->finish == ENG_FINISH_ABORT ? json_string(q->gone ? "client disconnected"
										      : "cancelled")
			       : json_null(),
			"env_exec_time");
	s = rec ? json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(16)) : NULL;
	json_decref(rec);
	if (s) {
		fprintf(fr->p.request_log, "%s\n", s);
		fflush(fr->p.request_log);
	}
	free(s);
}

void http_metrics_gen_done(struct http_front *fr, const struct http_req *q,
			   const struct http_gen *g)
{
	struct http_metrics *m = fr->metrics;

	m->requests++;
	m->prompt_tokens += (uint64_t)g->n_prompt;
	m->generation_tokens += g->out.n;
	m->cached_tokens += (uint64_t)g->cached_tokens;
	if (g->finish == ENG_FINISH_ABORT)
		m->aborted++;
	if (g->finish == ENG_FINISH_STOP || g->finish == ENG_FINISH_LENGTH) {
		if (g->out.n > 0 && g->t_first > 0)
			observe(&m->ttft, g->t_first - q->t_arrival);
		observe(&m->e2e, g->t_end - q->t_arrival);
		observe(&m->queue, g->queue_time);
		for (int32_t i = 0; i < g->n_itl; i++)
			observe(&m->itl, g->itl[i]);
	}
	if (fr->p.request_log)
		log_request(fr, q, g);
}

/* ---------------------------------------------------------------- exposition */

static void head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP trajbench:%s %s\n# TYPE trajbench:%s %s\n", name, help, name, type);
}

static void sample(FILE *f, const char *name, const char *label, double v)
{
	fprintf(f, "trajbench:%s{model_name=\"%s\"} %.17g\n", name, label, v);
}

static void hist_text(FILE *f, const struct hist *h, const char *label)
{
	uint64_t cum = 0;

	head(f, h->name, "histogram", h->help);
	fprintf(f, "trajbench:%s_sum{model_name=\"%s\"} %.17g\n", h->name, label, h->sum);
	for (int i = 0; i < h->n; i++) {
		cum += h->counts[i];
		fprintf(f, "trajbench:%s_bucket{le=\"%g\",model_name=\"%s\"} %llu\n", h->name,
			h->bounds[i], label, (unsigned long long)cum);
	}
	fprintf(f, "trajbench:%s_bucket{le=\"+Inf\",model_name=\"%s\"} %llu\n", h->name, label,
		(unsigned long long)h->count);
	fprintf(f, "trajbench:%s_count{model_name=\"%s\"} %llu\n", h->name, label,
		(unsigned long long)h->count);
}

/* The model name as a label value: backslash, quote and newline escaped. */
static void escape_label(const char *s, char *out, size_t n)
{
	size_t o = 0;

	for (; *s && o + 3 < n; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n')
			out[o++] = '\\';
		out[o++] = *s == '\n' ? 'n' : *s;
	}
	out[o] = '\0';
}

static void gauges(FILE *f, const struct http_front *fr, const char *l)
{
	struct eng_sched_stats st;
	double total = (double)fr->e->sp.n_pages * fr->e->sp.page_size;
	double used;

	eng_infer_get_stats(fr->e, &st);
	used = ((double)fr->e->sp.n_pages - (double)st.free_pages - (double)st.evictable_pages) *
	       fr->e->sp.page_size;
	head(f, "num_running_reqs", "gauge", "The number of running requests.");
	sample(f, "num_running_reqs", l, st.n_running);
	head(f, "num_queue_reqs", "gauge", "The number of requests in the waiting queue.");
	sample(f, "num_queue_reqs", l, st.n_waiting);
	head(f, "num_used_tokens", "gauge", "The number of used tokens.");
	sample(f, "num_used_tokens", l, used);
	head(f, "token_usage", "gauge", "The token usage.");
	sample(f, "token_usage", l, total > 0 ? used / total : 0);
	head(f, "max_total_num_tokens", "gauge",
	     "Maximum total number of tokens in the KV cache pool.");
	sample(f, "max_total_num_tokens", l, total);
	head(f, "cache_hit_rate", "gauge", "The prefix cache hit rate.");
	sample(f, "cache_hit_rate", l,
	       st.prompt_tokens ? (double)st.cached_tokens / (double)st.prompt_tokens : 0);
}

static void counters(FILE *f, const struct http_metrics *m, const char *l)
{
	head(f, "prompt_tokens_total", "counter", "Number of prefill tokens processed.");
	sample(f, "prompt_tokens_total", l, (double)m->prompt_tokens);
	head(f, "generation_tokens_total", "counter", "Number of generation tokens processed.");
	sample(f, "generation_tokens_total", l, (double)m->generation_tokens);
	head(f, "cached_tokens_total", "counter", "Number of cached prompt tokens.");
	sample(f, "cached_tokens_total", l, (double)m->cached_tokens);
	head(f, "num_requests_total", "counter", "Number of requests processed.");
	sample(f, "num_requests_total", l, (double)m->requests);
	head(f, "num_aborted_requests_total", "counter", "Number of requests aborted.");
	sample(f, "num_aborted_requests_total", l, (double)m->aborted);
	head(f, "http_requests_total", "counter", "HTTP answers by endpoint and status.");
	for (int r = 0; r <= HTTP_R_NONE; r++)
		for (int s = 0; s < MAX_STATUS; s++)
			if (m->answers[r][s])
				fprintf(f, "trajbench:http_requests_total{endpoint=\"%s\",status=\"%d\","
					"model_name=\"%s\"} %llu\n", http_route_path((enum http_route)r),
					s, l, (unsigned long long)m->answers[r][s]);
}

char *http_metrics_text(const struct http_front *fr, size_t *len)
{
	const struct http_metrics *m = fr->metrics;
	char *buf = NULL, label[512];
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	escape_label(http_model_name(fr), label, sizeof(label));
	gauges(f, fr, label);
	counters(f, m, label);
	hist_text(f, &m->ttft, label);
	hist_text(f, &m->itl, label);
	hist_text(f, &m->e2e, label);
	hist_text(f, &m->queue, label);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
