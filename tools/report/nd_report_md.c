/*
 * nd_report_md.c: writes the report's Markdown.
 *
 * Sections, in order: setup, results (ranked by output throughput, with
 * speed-up over the smallest batch size), latency, prefix cache (per
 * batch size, then per turn), environment time, conclusions, scope,
 * projection, notes on the input.  Every table has one row per batch size
 * (nd_report_points.c): with repeated runs its figures are medians, and
 * the results give the spread; batch sizes that are not points of the
 * sweep are shown, marked and never ranked.  Numbers have one format per unit so the tables
 * line up and diffs stay readable:
 *   ms, s       3 decimals          tok/s, concurrency  2 decimals
 *   request/s, trajectories/s       4 decimals (batch 1 rates are small)
 *   counts      integers, no thousands separators
 *   fractions   percent, 1 decimal  ratios  2 decimals and "x"
 * A value that is absent from the records prints as "n/a".
 *
 * What it refuses to do: no figure is typed in or assumed; a conclusion
 * that the data cannot support (one batch size, no batch size 1) says so
 * instead of guessing, and projections stay in their own section.
 */
#include "tools/report/nd_report_int.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const chart_names[RP_N_CHARTS] = {
	RP_CHART_THROUGHPUT, RP_CHART_TTFT, RP_CHART_ITL, RP_CHART_TURN_TTFT,
	RP_CHART_TURN_CACHE, RP_CHART_TIME_SPLIT,
};

/* ---------------------------------------------------------------- cells */

/* Markdown text: characters that would start markup are escaped, line
 * breaks become spaces, so a value never breaks a table row. */
void rp_md_text(FILE *fp, const char *s)
{
	for (; *s; s++) {
		if (strchr("\\`*_[]<>|#", *s))
			fputc('\\', fp);
		fputc(*s == '\n' || *s == '\r' ? ' ' : *s, fp);
	}
}

void rp_cell_fixed(FILE *fp, double v, int decimals)
{
	if (isfinite(v))
		fprintf(fp, " %.*f |", decimals, v);
	else
		fputs(" n/a |", fp);
}

void rp_cell_int(FILE *fp, double v)
{
	rp_cell_fixed(fp, v, 0);
}

void rp_cell_pct(FILE *fp, double frac)
{
	if (isfinite(frac))
		fprintf(fp, " %.1f%% |", 100.0 * frac);
	else
		fputs(" n/a |", fp);
}

void rp_cell_ratio(FILE *fp, double v)
{
	if (isfinite(v))
		fprintf(fp, " %.2fx |", v);
	else
		fputs(" n/a |", fp);
}

void rp_cell_batch(FILE *fp, const struct rp_point *p)
{
	if (p->batch_size >= 0)
		fprintf(fp, "| %ld |", p->batch_size);
	else {
		fputs("| n/a (run ", fp);
		rp_md_text(fp, p->g->run);
		fputs(") |", fp);
	}
}

void rp_table_head(FILE *fp, const char *const *cols, size_t n,
		   bool numeric)
{
	for (size_t i = 0; i < n; i++)
		fprintf(fp, "| %s ", cols[i]);
	fputs("|\n", fp);
	for (size_t i = 0; i < n; i++)
		fputs(i && numeric ? "|---:" : "|---", fp);
	fputs("|\n", fp);
}

void rp_chart_link(const struct rp_ctx *c, enum rp_chart k, const char *alt)
{
	const char *href = c->p->charts_href ? c->p->charts_href : "";
	bool wrap = strpbrk(href, " ()") != NULL;

	if (!c->drawn[k])
		return;
	fprintf(c->fp, "![%s](%s%s%s%s)\n\n", alt, wrap ? "<" : "", href,
		chart_names[k], wrap ? ">" : "");
}

/* ---------------------------------------------------------------- setup */

/* Writes the distinct values of a run-record field, in batch order,
 * joined by ", " (strings escaped, numbers with fmt); "n/a" when none. */
static void put_distinct(const struct rp_ctx *c, const char *key,
			 const char *fmt, double scale)
{
	json_t *seen = json_array();
	size_t n = 0;

	for (size_t i = 0; i < c->n_groups; i++) {
		const json_t *v = c->groups[i]->run_rec ?
			json_object_get(c->groups[i]->run_rec, key) : NULL;
		char buf[64];
		json_t *s;
		size_t k, j;

		if (!v || json_is_null(v))
			continue;
		if (json_is_number(v))
			snprintf(buf, sizeof(buf), fmt,
				 json_number_value(v) * scale);
		s = json_is_string(v) ? json_copy((json_t *)v) : json_string(buf);
		json_array_foreach(seen, k, v)
			if (json_equal(v, s))
				break;
		j = k;
		if (j < json_array_size(seen)) {
			json_decref(s);
			continue;
		}
		fputs(n++ ? ", " : "", c->fp);
		rp_md_text(c->fp, json_string_value(s));
		json_array_append_new(seen, s);
	}
	if (!n)
		fputs("n/a", c->fp);
	json_decref(seen);
}

static void setup_row(const struct rp_ctx *c, const char *item, const char *key,
		      const char *fmt)
{
	fprintf(c->fp, "| %s | ", item);
	put_distinct(c, key, fmt, 1.0);
	fputs(" |\n", c->fp);
}

static void put_dates(const struct rp_ctx *c)
{
	double lo = INFINITY, hi = -INFINITY;
	char a[64], b[64];

	for (size_t i = 0; i < c->n_groups; i++) {
		double t = rp_num(c->groups[i]->run_rec, "start_time_unix");

		if (isfinite(t)) {
			lo = fmin(lo, t);
			hi = fmax(hi, t);
		}
	}
	if (!(lo <= hi) || fabs(lo) > 1e15 || fabs(hi) > 1e15) {
		fputs("| date (UTC) | n/a |\n", c->fp);
		return;
	}
	{
		time_t tl = (time_t)floor(lo), th = (time_t)floor(hi);
		struct tm tm;

		strftime(a, sizeof(a), "%Y-%m-%d %H:%M:%S", gmtime_r(&tl, &tm));
		strftime(b, sizeof(b), "%Y-%m-%d %H:%M:%S", gmtime_r(&th, &tm));
	}
	if (strcmp(a, b) == 0)
		fprintf(c->fp, "| date (UTC) | %s |\n", a);
	else
		fprintf(c->fp, "| date (UTC) | %s to %s |\n", a, b);
}

static void put_batch_sizes(const struct rp_ctx *c)
{
	long last = -1;
	size_t n = 0;

	fputs("| batch sizes | ", c->fp);
	for (size_t i = 0; i < c->n_pts; i++) {
		long b = c->pts[i].batch_size;

		if (b < 0 || b == last)
			continue;
		fprintf(c->fp, "%s%ld", n++ ? ", " : "", b);
		last = b;
	}
	fputs(n ? " |\n" : "n/a |\n", c->fp);
	if (c->max_runs > 1)
		fprintf(c->fp, "| runs per batch size | %zu (medians and spreads below) |\n",
			c->max_runs);
}

void rp_md_setup(const struct rp_ctx *c)
{
	static const char *const cols[] = {"item", "value"};

	fputs("## Setup\n\n", c->fp);
	rp_table_head(c->fp, cols, 2, false);
	setup_row(c, "model", "model", "%g");
	setup_row(c, "device", "device", "%g");
	setup_row(c, "backend", "backend", "%g");
	setup_row(c, "mode", "mode", "%g");
	put_batch_sizes(c);
	setup_row(c, "conversations per run", "num_conversations", "%.0f");
	setup_row(c, "requests per run", "num_requests", "%.0f");
	if (c->p->input_desc) {
		fputs("| input | ", c->fp);
		rp_md_text(c->fp, c->p->input_desc);
		fputs(" |\n", c->fp);
	}
	setup_row(c, "model load time (s)", "model_load_time", "%.3f");
	setup_row(c, "env time scale", "env_time_scale", "%g");
	setup_row(c, "trajbench version", "version", "%g");
	put_dates(c);
	fputc('\n', c->fp);
}

/* A settings value as text: JSON for anything but a string. */
static char *setting_text(const json_t *v)
{
	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (json_is_real(v)) {
		char buf[64];

		snprintf(buf, sizeof(buf), "%.6g", json_real_value(v));
		return strdup(buf);
	}
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* One settings row: key and its distinct values over the runs. */
static void settings_row(const struct rp_ctx *c, const char *key)
{
	json_t *seen = json_array();

	fputs("| ", c->fp);
	rp_md_text(c->fp, key);
	fputs(" | ", c->fp);
	for (size_t i = 0; i < c->n_groups; i++) {
		json_t *set = json_object_get(c->groups[i]->run_rec, "settings");
		json_t *v = json_object_get(set, key), *e;
		char *text;
		size_t k;

		if (!v || !(text = setting_text(v)))
			continue;
		json_array_foreach(seen, k, e)
			if (strcmp(json_string_value(e), text) == 0)
				break;
		if (k == json_array_size(seen)) {
			fputs(k ? ", " : "", c->fp);
			rp_md_text(c->fp, text);
			json_array_append_new(seen, json_string(text));
		}
		free(text);
	}
	fputs(" |\n", c->fp);
	json_decref(seen);
}

void rp_md_settings(const struct rp_ctx *c)
{
	static const char *const cols[] = {"setting", "value"};
	json_t *keys = json_object();
	size_t n = 0;

	for (size_t i = 0; i < c->n_groups; i++) {
		json_t *set = json_object_get(c->groups[i]->run_rec, "settings");
		const char *key;
		json_t *v;

		json_object_foreach(set, key, v) {
			if (json_object_get(keys, key))
				continue;
			if (!n++) {
				fputs("### Engine settings\n\n", c->fp);
				rp_table_head(c->fp, cols, 2, false);
			}
			json_object_set_new(keys, key, json_true());
			settings_row(c, key);
		}
	}
	if (n)
		fputc('\n', c->fp);
	json_decref(keys);
}

/* ---------------------------------------------------------------- results */

double rp_out_tput(const struct rp_row *row)
{
	return rp_num(row->summary, "output_throughput");
}

/* Points of the sweep first, by median throughput (NaN last); the others
 * after them, by batch size (the order they come in). */
int rp_cmp_points(const void *pa, const void *pb)
{
	const struct rp_point *a = *(const struct rp_point *const *)pa;
	const struct rp_point *b = *(const struct rp_point *const *)pb;
	bool sa = a->flag == RP_SWEEP, sb = b->flag == RP_SWEEP;

	if (sa != sb)
		return sa ? -1 : 1;
	if (sa && isfinite(a->tput) != isfinite(b->tput))
		return isfinite(a->tput) ? -1 : 1;
	if (sa && isfinite(a->tput) && a->tput != b->tput)
		return a->tput > b->tput ? -1 : 1;
	return (a > b) - (a < b);
}

/* Speed-up of a point's median output throughput over the baseline's,
 * and the batch-size ratio it is measured against. */
double rp_speed_up(const struct rp_ctx *c, const struct rp_point *p, double *scale)
{
	*scale = NAN;
	if (!c->base || p->batch_size <= 0 || p->flag != RP_SWEEP)
		return NAN;
	*scale = (double)p->batch_size / (double)c->base->batch_size;
	return p->tput / c->base->tput;
}

const char *rp_flag_text(const struct rp_point *p, char *buf, size_t len)
{
	switch (p->flag) {
	case RP_SWEEP:
		snprintf(buf, len, "%s", "");
		break;
	case RP_OVER_CONVERSATIONS:
		snprintf(buf, len, "batch size %ld is larger than the %ld conversations of its "
			 "runs, so it ran like batch size %ld", p->batch_size, p->n_conv,
			 p->n_conv);
		break;
	case RP_LOW_CONCURRENCY:
		snprintf(buf, len, "at batch size %ld the measured concurrency, %.2f requests "
			 "in flight, is under half of the %.2f the batch size allows, so the "
			 "batch was mostly not full", p->batch_size, p->concurrency,
			 p->expected);
		break;
	case RP_NO_BATCH:
		snprintf(buf, len, "run %s has no batch size", p->g->run);
		break;
	}
	return buf;
}

static void results_intro(const struct rp_ctx *c)
{
	fputs("Rows are ranked by output throughput", c->fp);
	if (c->max_runs > 1)
		fprintf(c->fp, ". Each batch size ran up to %zu times: every figure is the "
			"median over its runs, and the spread goes from the slowest run's "
			"output throughput to the fastest's. ", c->max_runs);
	else
		fputs(". Each batch size ran once, so the run-to-run spread is unknown "
		      "(`REPEAT=3` in `make report`, or `gpu-batch-infer --repeat 3`, "
		      "measures it). ", c->fp);
	if (!c->base) {
		fputs("No batch size is a point of the sweep, so there is no baseline "
		      "for the speed-up.\n\n", c->fp);
		return;
	}
	if (c->base->batch_size == 1)
		fputs("Speed-up is the output throughput over that of batch "
		      "size 1; scaling efficiency is the speed-up divided by "
		      "the batch size.\n\n", c->fp);
	else
		fprintf(c->fp, "There is no batch size 1 run: speed-up is the "
			"output throughput over that of batch size %ld, the "
			"smallest present; scaling efficiency is the speed-up "
			"divided by (batch size / %ld).\n\n",
			c->base->batch_size, c->base->batch_size);
}

static void spread_cell(FILE *fp, const struct rp_point *p)
{
	if (p->n < 2)
		fputs(" 1 run |", fp);
	else if (isfinite(p->lo))
		fprintf(fp, " %.2f-%.2f (%zu runs) |", p->lo, p->hi, p->n);
	else
		fprintf(fp, " n/a (%zu runs) |", p->n);
}

/* Why the unranked rows are not ranked, one line each. */
static void results_notes(const struct rp_ctx *c)
{
	char buf[512];
	size_t n = 0;

	for (size_t i = 0; i < c->n_pts; i++) {
		if (c->pts[i].flag == RP_SWEEP)
			continue;
		fputs(n++ ? "" : "Not ranked:\n\n", c->fp);
		fputs("- ", c->fp);
		rp_flag_text(&c->pts[i], buf, sizeof(buf));
		buf[0] = (char)toupper((unsigned char)buf[0]);
		rp_md_text(c->fp, buf);
		fputs(".\n", c->fp);
	}
	if (n)
		fputc('\n', c->fp);
}

void rp_md_results(const struct rp_ctx *c)
{
	static const char *const cols[] = {
		"rank", "batch size", "completed", "failed", "duration (s)", "request/s",
		"input tok/s", "output tok/s", "spread (tok/s)", "trajectories/s",
		"concurrency", "speed-up", "scaling efficiency",
	};
	size_t n = c->n_pts, rank = 0;
	const struct rp_point **v = malloc((n ? n : 1) * sizeof(*v));

	fputs("## Results\n\n", c->fp);
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		v[i] = &c->pts[i];
	qsort(v, n, sizeof(*v), rp_cmp_points);
	results_intro(c);
	rp_table_head(c->fp, cols, sizeof(cols) / sizeof(cols[0]), true);
	for (size_t i = 0; i < n; i++) {
		const struct rp_point *p = v[i];
		double scale, su = rp_speed_up(c, p, &scale);

		if (p->flag == RP_SWEEP)
			fprintf(c->fp, "| %zu ", ++rank);
		else
			fputs("| not ranked ", c->fp);
		rp_cell_batch(c->fp, p);
		rp_cell_int(c->fp, rp_point_num(p, "completed"));
		rp_cell_int(c->fp, rp_point_num(p, "failed"));
		rp_cell_fixed(c->fp, rp_point_num(p, "duration"), 3);
		rp_cell_fixed(c->fp, rp_point_num(p, "request_throughput"), 4);
		rp_cell_fixed(c->fp, rp_point_num(p, "input_throughput"), 2);
		rp_cell_fixed(c->fp, p->tput, 2);
		spread_cell(c->fp, p);
		rp_cell_fixed(c->fp, rp_point_num(p, "trajectories_per_s"), 4);
		rp_cell_fixed(c->fp, p->concurrency, 2);
		rp_cell_ratio(c->fp, su);
		rp_cell_pct(c->fp, su / scale);
		fputc('\n', c->fp);
	}
	fputc('\n', c->fp);
	results_notes(c);
	rp_chart_link(c, RP_C_THROUGHPUT, "Output throughput by batch size");
	free(v);
}

/* ---------------------------------------------------------------- latency */

static void latency_table(const struct rp_ctx *c, const char *title,
			  const char *metric)
{
	static const char *const cols[] = {
		"batch size", "mean", "median", "p90", "p99",
	};
	static const char *const stats[] = {"mean", "median", "p90", "p99"};

	fprintf(c->fp, "### %s\n\n", title);
	rp_table_head(c->fp, cols, 5, true);
	for (size_t i = 0; i < c->n_pts; i++) {
		rp_cell_batch(c->fp, &c->pts[i]);
		for (size_t k = 0; k < 4; k++) {
			char key[64];

			snprintf(key, sizeof(key), "%s_%s_ms", stats[k], metric);
			rp_cell_fixed(c->fp, rp_point_num(&c->pts[i], key), 3);
		}
		fputc('\n', c->fp);
	}
	fputc('\n', c->fp);
}

/* Says where the distribution curves come from, per batch size. */
static void cdf_source(const struct rp_ctx *c, bool itl)
{
	size_t n_req = 0, n_pct = 0;

	for (size_t i = 0; i < c->n_pts; i++) {
		const struct rp_group *g = c->pts[i].g;

		if ((itl ? g->itl_ms.n : g->ttft_ms.n) > 0)
			n_req++;
		else
			n_pct++;
	}
	if (!n_pct)
		fputs("The curves are empirical distributions of the request "
		      "records.\n\n", c->fp);
	else if (!n_req)
		fputs("The input has no request records: the curves join the "
		      "summary percentiles (median, p90, p99, ...), not the "
		      "full distribution.\n\n", c->fp);
	else
		fputs("Curves with request records are empirical "
		      "distributions; the others join the summary "
		      "percentiles.\n\n", c->fp);
}

void rp_md_latency(const struct rp_ctx *c)
{
	fputs("## Latency\n\nAll latencies in milliseconds; the distribution charts have a "
	      "logarithmic time axis.\n\n", c->fp);
	latency_table(c, "Time to first token (TTFT)", "ttft");
	if (c->drawn[RP_C_TTFT]) {
		rp_chart_link(c, RP_C_TTFT, "TTFT distribution by batch size");
		cdf_source(c, false);
	}
	latency_table(c, "Time per output token (TPOT)", "tpot");
	latency_table(c, "Inter-token latency (ITL)", "itl");
	if (c->drawn[RP_C_ITL]) {
		rp_chart_link(c, RP_C_ITL, "ITL distribution by batch size");
		cdf_source(c, true);
	}
	latency_table(c, "End-to-end latency (E2E)", "e2e_latency");
}

/* ---------------------------------------------------------------- cache */

void rp_md_cache(const struct rp_ctx *c)
{
	static const char *const cols[] = {
		"batch size", "input tokens", "cached tokens", "cache hit rate",
	};

	fputs("## Prefix cache\n\n", c->fp);
	rp_table_head(c->fp, cols, 4, true);
	for (size_t i = 0; i < c->n_pts; i++) {
		const struct rp_point *p = &c->pts[i];

		rp_cell_batch(c->fp, p);
		rp_cell_int(c->fp, rp_point_num(p, "total_input_tokens"));
		rp_cell_int(c->fp, rp_point_num(p, "total_cached_tokens"));
		rp_cell_pct(c->fp, rp_point_num(p, "cache_hit_rate"));
		fputc('\n', c->fp);
	}
	fputc('\n', c->fp);
}

/* A run recomputed more than 5% over what an unbounded prefix cache would
 * have computed (the engine's target), or retracted a request. */
static bool thrashed(const json_t *s)
{
	double computed = rp_num(s, "computed_prompt_tokens");
	double again = rp_num(s, "recomputed_prompt_tokens");

	return rp_num(s, "retractions") > 0 ||
	       (isfinite(again) && again > 0.05 * (computed - again));
}

/* The engine's KV pool and roofline figures (timing-stats copies them
 * from the run records), and a warning for each run that thrashed. */
void rp_md_kv(const struct rp_ctx *c)
{
	static const char *const cols[] = {
		"batch size", "prompt tokens computed", "computed again", "retractions",
		"peak KV (tokens)", "KV pool (tokens)", "roofline fraction",
	};
	bool any = false;

	for (size_t i = 0; i < c->r->n_rows; i++)
		any |= json_object_get(c->rows[i]->summary, "retractions") != NULL;
	/* the table gives the median of a batch size's runs; the warnings
	 * below name every run that thrashed */
	if (!any)
		return;
	fputs("## KV cache and roofline\n\n", c->fp);
	rp_table_head(c->fp, cols, 7, true);
	for (size_t i = 0; i < c->n_pts; i++) {
		const struct rp_point *p = &c->pts[i];

		rp_cell_batch(c->fp, p);
		rp_cell_int(c->fp, rp_point_num(p, "computed_prompt_tokens"));
		rp_cell_int(c->fp, rp_point_num(p, "recomputed_prompt_tokens"));
		rp_cell_int(c->fp, rp_point_num(p, "retractions"));
		rp_cell_int(c->fp, rp_point_num(p, "peak_kv_tokens"));
		rp_cell_int(c->fp, rp_point_num(p, "kv_pool_tokens"));
		rp_cell_pct(c->fp, rp_point_num(p, "roofline_fraction"));
		fputc('\n', c->fp);
	}
	fputs("\nComputed again: prompt tokens an unbounded prefix cache would not have "
	      "computed (evicted, or retracted).  Roofline fraction: the sum over steps of "
	      "max(bytes moved / measured bandwidth, FLOPs / measured GEMM rate) against the "
	      "time in those steps.\n\n", c->fp);
	for (size_t i = 0; i < c->r->n_rows; i++) {
		const json_t *s = c->rows[i]->summary;
		double computed = rp_num(s, "computed_prompt_tokens");
		double again = rp_num(s, "recomputed_prompt_tokens");

		if (!thrashed(s))
			continue;
		fprintf(c->fp, "> **Warning:** the run at batch size %ld thrashed its KV cache: "
			"%.0f prompt tokens computed again (%.1f%% over an unbounded cache), "
			"%.0f retractions.  Its times measure recomputation, not the model; a "
			"larger pool (`--max-total-tokens`, `--mem-fraction-static`) or a "
			"smaller batch avoids it.\n\n", c->rows[i]->batch_size,
			isfinite(again) ? again : 0,
			computed - again > 0 ? 100 * again / (computed - again) : 0,
			rp_num(s, "retractions"));
	}
}

/* The turn_summary of group g for turn t (the last one given); NULL. */
static const json_t *turn_of(const struct rp_group *g, long t)
{
	const json_t *found = NULL;

	for (size_t k = 0; k < g->n_turns; k++)
		if ((long)rp_num(g->turns[k], "turn") == t)
			found = g->turns[k];
	return found;
}

/* The highest turn index over the groups' turn summaries. */
static long max_turn(struct rp_group *const *tg, size_t n)
{
	long m = -1;

	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < tg[i]->n_turns; k++) {
			double t = rp_num(tg[i]->turns[k], "turn");

			if (t > (double)m && t < 1e6)
				m = (long)t;
		}
	return m;
}

static void turn_table(const struct rp_ctx *c, struct rp_group *const *tg,
		       size_t n, const char *key, bool pct)
{
	long last = max_turn(tg, n);

	fputs("| turn |", c->fp);
	for (size_t i = 0; i < n; i++) {
		char label[128];

		fputc(' ', c->fp);
		rp_md_text(c->fp, rp_group_label(tg[i], label, sizeof(label)));
		fputs(" |", c->fp);
	}
	fputs("\n|---|", c->fp);
	for (size_t i = 0; i < n; i++)
		fputs("---:|", c->fp);
	fputc('\n', c->fp);
	for (long t = 0; t <= last; t++) {
		fprintf(c->fp, "| %ld |", t);
		for (size_t i = 0; i < n; i++) {
			double v = rp_num(turn_of(tg[i], t), key);

			if (pct)
				rp_cell_pct(c->fp, v);
			else
				rp_cell_fixed(c->fp, v, 3);
		}
		fputc('\n', c->fp);
	}
	fputc('\n', c->fp);
}

void rp_md_turns(const struct rp_ctx *c)
{
	size_t n;
	struct rp_group **tg = rp_groups_by_batch(c->r, true, &n);

	fputs("### Per turn\n\n", c->fp);
	if (!tg) {
		fputs("The input has no turn_summary records (timing-stats "
		      "--per-turn writes them).\n\n", c->fp);
		return;
	}
	fputs("Mean TTFT (ms) by turn index:\n\n", c->fp);
	turn_table(c, tg, n, "mean_ttft_ms", false);
	rp_chart_link(c, RP_C_TURN_TTFT, "Mean TTFT by turn");
	fputs("Prefix cache hit rate by turn index:\n\n", c->fp);
	turn_table(c, tg, n, "cache_hit_rate", true);
	rp_chart_link(c, RP_C_TURN_CACHE, "Cache hit rate by turn");
	free(tg);
}

/* ---------------------------------------------------------------- env */

/* Mean LLM and environment time and wall time per trajectory of a point:
 * from its conversation results (all its runs), else from its summaries
 * (no wall time then). */
static void env_means(const struct rp_point *p, double *env, double *llm, double *wall)
{
	const struct rp_group *g = p->g;
	double n = (double)g->n_conv;

	if (g->n_conv) {
		*env = g->sum_env_s / n;
		*llm = g->sum_llm_s / n;
		*wall = g->sum_wall_s / n;
	} else {
		*env = rp_point_num(p, "mean_env_time_per_trajectory");
		*llm = rp_point_num(p, "mean_llm_time_per_trajectory");
		*wall = NAN;
	}
}

static void env_row(const struct rp_ctx *c, const struct rp_point *p)
{
	double env, llm, wall;

	env_means(p, &env, &llm, &wall);
	rp_cell_batch(c->fp, p);
	rp_cell_int(c->fp, rp_point_num(p, "num_trajectories"));
	rp_cell_fixed(c->fp, env, 3);
	rp_cell_fixed(c->fp, llm, 3);
	if (c->env_replayed || !c->env_known)
		rp_cell_pct(c->fp, env / (env + llm));
	rp_cell_fixed(c->fp, wall, 3);
	fputc('\n', c->fp);
}

/* The env time scale of the runs, when they all have the same one; NaN. */
static double env_scale(const struct rp_ctx *c)
{
	double s = NAN;

	for (size_t i = 0; i < c->n_groups; i++) {
		double v = rp_num(c->groups[i]->run_rec, "env_time_scale");

		if (!isfinite(v))
			continue;
		if (isfinite(s) && s != v)
			return NAN;
		s = v;
	}
	return s;
}

void rp_md_env(const struct rp_ctx *c)
{
	static const char *const replayed[] = {
		"batch size", "trajectories", "mean env time (s)", "mean LLM time (s)",
		"env share", "mean wall time (s)",
	};
	static const char *const not_replayed[] = {
		"batch size", "trajectories", "recorded env time, not replayed (s)",
		"mean LLM time (s)", "mean wall time (s)",
	};
	double scale = env_scale(c);

	fputs("## Environment time\n\n", c->fp);
	if (c->env_known && !c->env_replayed) {
		fputs("The recorded environment time (the agent's tool calls) was **not "
		      "replayed** (env time scale 0): each turn was sent as soon as the one "
		      "before it had finished, so the wall time of a trajectory is its LLM "
		      "time alone. The recorded time per trajectory is shown for what a live "
		      "rollout would add; it was not waited for.", c->fp);
	} else {
		fputs("Per trajectory: the recorded environment time", c->fp);
		if (!c->env_known)
			fputs(" (the input has no run record to say whether it was replayed)",
			      c->fp);
		else if (isfinite(scale) && scale != 1)
			fprintf(c->fp, " (waited for at %g times its length)", scale);
		fputs(", the time spent in LLM calls, the environment's share of the two, "
		      "and the wall time from first request to last response.", c->fp);
	}
	fputs(" Means are over the conversation_result records; rows without them show "
	      "the summary's per-trajectory means and no wall time.\n\n", c->fp);
	if (c->env_replayed || !c->env_known)
		rp_table_head(c->fp, replayed, 6, true);
	else
		rp_table_head(c->fp, not_replayed, 5, true);
	for (size_t i = 0; i < c->n_pts; i++)
		env_row(c, &c->pts[i]);
	fputc('\n', c->fp);
	rp_chart_link(c, RP_C_TIME_SPLIT, "LLM and environment time per trajectory");
}

/* ---------------------------------------------------------------- write */

void rp_md_title(const struct rp_ctx *c)
{
	fputs("# ", c->fp);
	rp_md_text(c->fp, c->p->title ? c->p->title : "");
	fputs("\n\n", c->fp);
	if (!c->p->charts_dir && c->p->no_charts_why) {
		fputs("> ", c->fp);
		rp_md_text(c->fp, c->p->no_charts_why);
		fputs("\n\n", c->fp);
	}
}

