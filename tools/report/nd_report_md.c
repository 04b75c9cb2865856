/*
 * nd_report_md.c: writes the report's Markdown.
 *
 * Sections, in order: setup, results (ranked by output throughput, with
 * speed-up over the smallest batch size), latency, prefix cache (per
 * batch size, then per turn), environment time, conclusions, projection,
 * notes on the input.  Numbers have one format per unit so the tables
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

void rp_cell_batch(FILE *fp, const struct rp_row *row)
{
	if (row->batch_size >= 0)
		fprintf(fp, "| %ld |", row->batch_size);
	else {
		fputs("| n/a (run ", fp);
		rp_md_text(fp, row->g->run);
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
	for (size_t i = 0; i < c->r->n_rows; i++) {
		long b = c->rows[i]->batch_size;

		if (b < 0 || b == last)
			continue;
		fprintf(c->fp, "%s%ld", n++ ? ", " : "", b);
		last = b;
	}
	fputs(n ? " |\n" : "n/a |\n", c->fp);
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

int rp_cmp_tput(const void *pa, const void *pb)
{
	const struct rp_row *a = *(const struct rp_row *const *)pa;
	const struct rp_row *b = *(const struct rp_row *const *)pb;
	double x = rp_out_tput(a), y = rp_out_tput(b);

	if (isfinite(x) != isfinite(y))
		return isfinite(x) ? -1 : 1;
	if (isfinite(x) && x != y)
		return x > y ? -1 : 1;
	return (a->order > b->order) - (a->order < b->order);
}

/* Speed-up of a row's output throughput over the baseline, and the
 * batch-size ratio it is measured against. */
double rp_speed_up(const struct rp_ctx *c, const struct rp_row *row,
		       double *scale)
{
	*scale = NAN;
	if (!c->base || row->batch_size < 0)
		return NAN;
	*scale = (double)row->batch_size / (double)c->base->batch_size;
	return rp_out_tput(row) / rp_out_tput(c->base);
}

static void results_intro(const struct rp_ctx *c)
{
	fputs("Rows are ranked by output throughput. ", c->fp);
	if (!c->base) {
		fputs("No summary carries a batch size, so there is no "
		      "baseline for the speed-up.\n\n", c->fp);
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

void rp_md_results(const struct rp_ctx *c)
{
	static const char *const cols[] = {
		"rank", "batch size", "completed", "failed", "duration (s)", "request/s",
		"input tok/s", "output tok/s", "trajectories/s", "concurrency",
		"speed-up", "scaling efficiency",
	};
	size_t n = c->r->n_rows;
	struct rp_row **v = malloc((n ? n : 1) * sizeof(*v));

	fputs("## Results\n\n", c->fp);
	if (!v)
		return;
	memcpy(v, c->rows, n * sizeof(*v));
	qsort(v, n, sizeof(*v), rp_cmp_tput);
	results_intro(c);
	rp_table_head(c->fp, cols, sizeof(cols) / sizeof(cols[0]), true);
	for (size_t i = 0; i < n; i++) {
		const json_t *s = v[i]->summary;
		double scale, su = rp_speed_up(c, v[i], &scale);

		fprintf(c->fp, "| %zu ", i + 1);
		rp_cell_batch(c->fp, v[i]);
		rp_cell_int(c->fp, rp_num(s, "completed"));
		rp_cell_int(c->fp, rp_num(s, "failed"));
		rp_cell_fixed(c->fp, rp_num(s, "duration"), 3);
		rp_cell_fixed(c->fp, rp_num(s, "request_throughput"), 4);
		rp_cell_fixed(c->fp, rp_num(s, "input_throughput"), 2);
		rp_cell_fixed(c->fp, rp_out_tput(v[i]), 2);
		rp_cell_fixed(c->fp, rp_num(s, "trajectories_per_s"), 4);
		rp_cell_fixed(c->fp, rp_num(s, "concurrency"), 2);
		rp_cell_ratio(c->fp, su);
		rp_cell_pct(c->fp, su / scale);
		fputc('\n', c->fp);
	}
	fputc('\n', c->fp);
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
	for (size_t i = 0; i < c->r->n_rows; i++) {
		rp_cell_batch(c->fp, c->rows[i]);
		for (size_t k = 0; k < 4; k++) {
			char key[64];

			snprintf(key, sizeof(key), "%s_%s_ms", stats[k], metric);
			rp_cell_fixed(c->fp, rp_num(c->rows[i]->summary, key), 3);
		}
		fputc('\n', c->fp);
	}
	fputc('\n', c->fp);
}

/* Says where the distribution curves come from, per batch size. */
static void cdf_source(const struct rp_ctx *c, bool itl)
{
	size_t n_req = 0, n_pct = 0;

	for (size_t i = 0; i < c->r->n_rows; i++) {
		const struct rp_group *g = c->rows[i]->g;

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
	fputs("## Latency\n\nAll latencies in milliseconds.\n\n", c->fp);
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
	for (size_t i = 0; i < c->r->n_rows; i++) {
		const json_t *s = c->rows[i]->summary;

		rp_cell_batch(c->fp, c->rows[i]);
		rp_cell_int(c->fp, rp_num(s, "total_input_tokens"));
		rp_cell_int(c->fp, rp_num(s, "total_cached_tokens"));
		rp_cell_pct(c->fp, rp_num(s, "cache_hit_rate"));
		fputc('\n', c->fp);
	}
	fputc('\n', c->fp);
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

static void env_row(const struct rp_ctx *c, const struct rp_row *row)
{
	const json_t *s = row->summary;
	const struct rp_group *g = row->g;
	double n = (double)g->n_conv;

	rp_cell_batch(c->fp, row);
	if (g->n_conv) {
		rp_cell_int(c->fp, n);
		rp_cell_fixed(c->fp, rp_num(s, "total_env_time"), 3);
		rp_cell_fixed(c->fp, g->sum_env_s / n, 3);
		rp_cell_fixed(c->fp, g->sum_llm_s / n, 3);
		rp_cell_pct(c->fp, g->sum_env_s / (g->sum_env_s + g->sum_llm_s));
		rp_cell_fixed(c->fp, g->sum_wall_s / n, 3);
	} else {
		double env = rp_num(s, "mean_env_time_per_trajectory");
		double llm = rp_num(s, "mean_llm_time_per_trajectory");

		rp_cell_int(c->fp, rp_num(s, "num_trajectories"));
		rp_cell_fixed(c->fp, rp_num(s, "total_env_time"), 3);
		rp_cell_fixed(c->fp, env, 3);
		rp_cell_fixed(c->fp, llm, 3);
		rp_cell_pct(c->fp, env / (env + llm));
		fputs(" n/a |", c->fp);
	}
	fputc('\n', c->fp);
}

void rp_md_env(const struct rp_ctx *c)
{
	static const char *const cols[] = {
		"batch size", "trajectories", "total env time (s)",
		"mean env time (s)", "mean LLM time (s)", "env share",
		"mean wall time (s)",
	};
	size_t missing = 0;

	fputs("## Environment time\n\nPer trajectory: the recorded "
	      "environment time replayed between turns, the time spent in "
	      "LLM calls, the environment's share of the two, and the wall "
	      "time from first request to last response.", c->fp);
	for (size_t i = 0; i < c->r->n_rows; i++)
		missing += c->rows[i]->g->n_conv == 0;
	if (!missing)
		fputs(" Means are over the conversation_result records.",
		      c->fp);
	else
		fputs(" Means are over the conversation_result records; rows "
		      "without them show the summary's per-trajectory means "
		      "and no wall time.", c->fp);
	fputs("\n\n", c->fp);
	rp_table_head(c->fp, cols, 7, true);
	for (size_t i = 0; i < c->r->n_rows; i++)
		env_row(c, c->rows[i]);
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

