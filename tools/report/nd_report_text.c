/*
 * nd_report_text.c: the parts of the report that are computed rather
 * than copied (conclusions), the projection kept apart from the
 * measurements, the notes on what the input lacks, and nd_report_write,
 * which draws the charts and then writes every section in order.
 *
 * Conclusions use the points of the sweep only (nd_report_points.c: a
 * batch size above the number of conversations, or one whose batch was
 * mostly empty, is not one) and, per batch size, the median output
 * throughput T over its runs.
 *   - A batch size is called best only when its slowest run beat the
 *     fastest run of every other batch size: with one run each the spread
 *     is unknown and the report names the highest measured, not a best.
 *   - Scaling "flattens" at the smallest batch size b from which no larger
 *     measured size b' gains the threshold per doubling:
 *     (T(b') / T(b)) ^ (1 / log2(b' / b)) - 1 < threshold for every b' > b.
 *     The highest throughput may then lie beyond b, by less than the
 *     threshold per doubling, and the sentence gives it, so the two
 *     statements never contradict each other.
 *
 * What it refuses to do: it states nothing the records cannot support;
 * with one batch size, or none known, it says so instead, and the scope
 * section says what the runs cannot show.
 */
#include "tools/report/nd_report_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- conclusions */

/* The points of the sweep with a throughput, ascending batch size. */
static size_t sweep(const struct rp_ctx *c, const struct rp_point **v)
{
	size_t n = 0;

	for (size_t i = 0; i < c->n_pts; i++)
		if (c->pts[i].flag == RP_SWEEP && c->pts[i].batch_size > 0 &&
		    isfinite(c->pts[i].tput))
			v[n++] = &c->pts[i];
	return n;
}

static const struct rp_point *highest(const struct rp_point *const *v, size_t n)
{
	const struct rp_point *best = NULL;

	for (size_t i = 0; i < n; i++)
		if (!best || v[i]->tput > best->tput)
			best = v[i];
	return best;
}

static void versus_base(const struct rp_ctx *c, const struct rp_point *p)
{
	double scale;

	if (c->base && c->base != p)
		fprintf(c->fp, ", %.2fx batch size %ld", rp_speed_up(c, p, &scale),
			c->base->batch_size);
}

/* Best, or the highest measured when the spread cannot tell. */
static void concl_best(const struct rp_ctx *c, const struct rp_point *const *v, size_t n,
		       const struct rp_point *best)
{
	bool repeated = true, beyond = true;

	if (n == 1) {
		fprintf(c->fp, "- Output throughput: batch size %ld is the only point of the "
			"sweep (%.2f tok/s), so there is no best batch size to choose.\n",
			best->batch_size, best->tput);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		repeated = repeated && v[i]->n > 1;
		if (v[i] != best)
			beyond = beyond && best->lo > v[i]->hi;
	}
	if (!repeated) {
		fprintf(c->fp, "- Highest output throughput measured: batch size %ld, %.2f tok/s",
			best->batch_size, best->tput);
		versus_base(c, best);
		fputs(". Each batch size ran once, so the run-to-run spread is unknown and "
		      "no batch size is called best (`REPEAT=3` measures the spread).\n", c->fp);
		return;
	}
	if (!beyond) {
		fprintf(c->fp, "- No batch size is best beyond the run-to-run spread: batch "
			"size %ld has the highest median, %.2f tok/s (runs %.2f-%.2f), but its "
			"slowest run is not faster than the fastest run of batch size", best->batch_size,
			best->tput, best->lo, best->hi);
		for (size_t i = 0, k = 0; i < n; i++)
			if (v[i] != best && best->lo <= v[i]->hi)
				fprintf(c->fp, "%s %ld", k++ ? "," : "", v[i]->batch_size);
		fputs(".\n", c->fp);
		return;
	}
	fprintf(c->fp, "- Best output throughput: batch size %ld, median %.2f tok/s (runs "
		"%.2f-%.2f), its slowest run faster than the fastest of every other batch "
		"size", best->batch_size, best->tput, best->lo, best->hi);
	versus_base(c, best);
	fputs(".", c->fp);
	if (best == v[n - 1])
		fputs(" It is the largest batch size measured: throughput may keep growing "
		      "beyond it.", c->fp);
	fputc('\n', c->fp);
}

/* Gain per doubling from a to b (b larger). */
static double gain_per_doubling(const struct rp_point *a, const struct rp_point *b)
{
	double doublings = log2((double)b->batch_size / (double)a->batch_size);

	return pow(b->tput / a->tput, 1.0 / doublings) - 1.0;
}

static void concl_flatten(const struct rp_ctx *c, const struct rp_point *const *v, size_t n,
			  const struct rp_point *best)
{
	double thr = c->p->flatten_threshold;

	if (n < 2) {
		fputs("- Scaling: only one batch size is a point of the sweep, so there is "
		      "no scaling to judge.\n", c->fp);
		return;
	}
	for (size_t i = 0; i + 1 < n; i++) {
		bool flat = v[i]->tput > 0;

		for (size_t k = i + 1; flat && k < n; k++)
			flat = gain_per_doubling(v[i], v[k]) < thr;
		if (!flat)
			continue;
		fprintf(c->fp, "- Scaling flattens at batch size %ld (%.2f tok/s): no larger "
			"batch size measured gains %.1f%% or more per doubling over it",
			v[i]->batch_size, v[i]->tput, 100.0 * thr);
		if (best != v[i])
			fprintf(c->fp, "; the highest, batch size %ld, is %+.1f%%", best->batch_size,
				100.0 * (best->tput / v[i]->tput - 1.0));
		fputs(".\n", c->fp);
		return;
	}
	fprintf(c->fp, "- Scaling does not flatten in the measured range: below batch size "
		"%ld, every batch size has a larger one that gains at least %.1f%% per "
		"doubling.\n", v[n - 1]->batch_size, 100.0 * thr);
}

static void concl_ttft(const struct rp_ctx *c, const struct rp_point *best)
{
	double a = rp_point_num(best, "mean_ttft_ms"), b, pa, pb;

	if (!c->base)
		return;
	b = rp_point_num(c->base, "mean_ttft_ms");
	if (best == c->base) {
		fprintf(c->fp, "- TTFT cost: the highest throughput is at the baseline (batch "
			"size %ld) itself, so there is no TTFT cost to compare.\n",
			best->batch_size);
		return;
	}
	fprintf(c->fp, "- TTFT cost: at batch size %ld the mean TTFT is %.3f ms, %.2fx "
		"the %.3f ms of batch size %ld", best->batch_size, a, a / b, b,
		c->base->batch_size);
	pa = rp_point_num(best, "p99_ttft_ms");
	pb = rp_point_num(c->base, "p99_ttft_ms");
	if (isfinite(pa) && isfinite(pb))
		fprintf(c->fp, " (p99: %.3f ms against %.3f ms)", pa, pb);
	fputs(".\n", c->fp);
}

static void section_conclusions(const struct rp_ctx *c)
{
	const struct rp_point **v = malloc((c->n_pts ? c->n_pts : 1) * sizeof(*v));
	size_t n = v ? sweep(c, v) : 0;
	const struct rp_point *best = highest(v, n);

	fputs("## Conclusions\n\n", c->fp);
	if (!best) {
		fputs("No batch size is a point of the sweep with an output throughput: "
		      "there is nothing to conclude (see the notes below the results).\n\n",
		      c->fp);
		free(v);
		return;
	}
	concl_best(c, v, n, best);
	concl_flatten(c, v, n, best);
	concl_ttft(c, best);
	fputc('\n', c->fp);
	free(v);
}

/* ---------------------------------------------------------------- scope */

/* Batch sizes with flag k, as "8, 16"; false when none. */
static bool list_flag(const struct rp_ctx *c, enum rp_flag k)
{
	size_t m = 0;

	for (size_t i = 0; i < c->n_pts; i++)
		if (c->pts[i].flag == k)
			fprintf(c->fp, "%s%ld", m++ ? ", " : "", c->pts[i].batch_size);
	return m > 0;
}

static size_t count_flag(const struct rp_ctx *c, enum rp_flag k)
{
	size_t m = 0;

	for (size_t i = 0; i < c->n_pts; i++)
		m += c->pts[i].flag == k;
	return m;
}

/* What the runs cannot show, said once and plainly. */
static void section_scope(const struct rp_ctx *c)
{
	long conv = -1;

	for (size_t i = 0; i < c->n_pts; i++)
		if (c->pts[i].n_conv > 0)
			conv = conv < 0 || c->pts[i].n_conv < conv ? c->pts[i].n_conv : conv;
	fputs("## What these runs can and cannot show\n\n", c->fp);
	if (conv > 0 && count_flag(c, RP_OVER_CONVERSATIONS)) {
		fprintf(c->fp, "- Each run replayed %ld conversation%s: at most %ld can be in "
			"flight, so only batch sizes up to %ld are measured as asked. Batch "
			"size%s ", conv, conv == 1 ? "" : "s", conv, conv,
			count_flag(c, RP_OVER_CONVERSATIONS) > 1 ? "s" : "");
		list_flag(c, RP_OVER_CONVERSATIONS);
		fputs(" ran like that and are not ranked; a larger input (`NUM_PROMPTS`, or "
		      "`SYNTHETIC=N`) measures them.\n", c->fp);
	} else if (conv > 0) {
		fprintf(c->fp, "- Each run replayed %ld conversation%s, as many as or more than "
			"every batch size measured.\n", conv, conv == 1 ? "" : "s");
	}
	if (count_flag(c, RP_LOW_CONCURRENCY)) {
		fputs("- At batch size ", c->fp);
		list_flag(c, RP_LOW_CONCURRENCY);
		fputs(" the batch was mostly not full (measured concurrency under half of what "
		      "the batch size allows): the run measures fewer requests in flight than "
		      "its batch size and is not ranked.\n", c->fp);
	}
	if (c->max_runs < 2)
		fputs("- One run per batch size: a difference smaller than the run-to-run "
		      "spread cannot be told from noise, and no batch size is called best. "
		      "`REPEAT=3` runs each three times and gives medians and spreads.\n", c->fp);
	else
		fprintf(c->fp, "- Up to %zu runs per batch size: differences within the spread "
			"of the runs are not conclusions.\n", c->max_runs);
	if (c->env_known && !c->env_replayed)
		fputs("- Environment time was not replayed (env time scale 0): the times are "
		      "LLM time alone, and a live rollout adds the recorded tool time "
		      "(Environment time section) to every trajectory.\n", c->fp);
	fputs("- Everything here was measured on the device and model of the setup table; "
	      "nothing is extrapolated to other hardware or to more trajectories outside the "
	      "projection section.\n\n", c->fp);
}

static void section_projection(const struct rp_ctx *c)
{
	static const char *const cols[] = {
		"batch size", "trajectories", "projected rollout time (s)",
		"projected rollout time (h)",
	};
	size_t n = 0;

	for (size_t i = 0; i < c->n_pts; i++)
		n += isfinite(rp_point_num(&c->pts[i], "projected_rollout_time"));
	if (!n)
		return;
	fputs("## Projection (not a measurement)\n\n"
	      "timing-stats projected these rollout times from the measured "
	      "trajectories/s (trajectories = projected time times the measured "
	      "rate); nothing in this section was measured.\n\n", c->fp);
	rp_table_head(c->fp, cols, 4, true);
	for (size_t i = 0; i < c->n_pts; i++) {
		const struct rp_point *p = &c->pts[i];
		double v = rp_point_num(p, "projected_rollout_time");

		if (!isfinite(v))
			continue;
		rp_cell_batch(c->fp, p);
		rp_cell_int(c->fp, round(v * rp_point_num(p, "trajectories_per_s")));
		rp_cell_fixed(c->fp, v, 3);
		rp_cell_fixed(c->fp, v / 3600.0, 2);
		fputc('\n', c->fp);
	}
	fputc('\n', c->fp);
}

/* ---------------------------------------------------------------- notes */

static void note(const struct rp_ctx *c, size_t *n, const char *fmt,
		 const char *run, long v)
{
	if (!(*n)++)
		fputs("## Notes on the input\n\n", c->fp);
	fputs("- ", c->fp);
	for (const char *f = fmt; *f; f++) {
		if (*f == '@')
			rp_md_text(c->fp, run);
		else if (*f == '#')
			fprintf(c->fp, "%ld", v);
		else
			fputc(*f, c->fp);
	}
	fputc('\n', c->fp);
}

enum group_issue { NO_SUMMARY, NO_RUN_RECORD, MANY_RUN_RECORDS };

static bool has_issue(const struct rp_group *g, enum group_issue k)
{
	switch (k) {
	case NO_SUMMARY: return !g->has_summary;
	case NO_RUN_RECORD: return g->has_summary && !g->run_rec;
	case MANY_RUN_RECORDS: return g->n_run_recs > (g->n_summaries ? g->n_summaries : 1);
	}
	return false;
}

/* One note naming every run with issue k: "<head> a, b, c<tail>". */
static void group_note(const struct rp_ctx *c, size_t *n,
		       enum group_issue k, const char *head, const char *tail)
{
	size_t m = 0;

	for (size_t i = 0; i < c->n_groups; i++) {
		if (!has_issue(c->groups[i], k))
			continue;
		if (!m++) {
			if (!(*n)++)
				fputs("## Notes on the input\n\n", c->fp);
			fprintf(c->fp, "- %s ", head);
		} else {
			fputs(", ", c->fp);
		}
		rp_md_text(c->fp, c->groups[i]->run);
	}
	if (m)
		fprintf(c->fp, "%s\n", tail);
}

static void section_notes(const struct rp_ctx *c)
{
	size_t n = 0;

	if (c->r->n_rows == 0)
		note(c, &n, "The input holds no summary record: there are no "
		     "results to show.", "", 0);
	group_note(c, &n, NO_SUMMARY, "Runs with records but no summary, "
		   "left out of the tables:", ".");
	group_note(c, &n, NO_RUN_RECORD, "Runs with a summary but no run "
		   "record, so not in the setup:", ".");
	group_note(c, &n, MANY_RUN_RECORDS, "Runs with more run records than "
		   "summaries (the last one is used):", ".");
	for (size_t i = 0; i < c->r->n_rows; i++) {
		const struct rp_row *row = c->rows[i];
		double failed = rp_num(row->summary, "failed");
		double mismatched = rp_num(row->summary, "prompt_len_mismatches");

		if (row->batch_size < 0)
			note(c, &n, "The summary of run @ has no batch size, "
			     "and no run record gives one.", row->g->run, 0);
		if (failed > 0)
			note(c, &n, "Run @: # requests failed; each ended its "
			     "conversation (see the conversation results).",
			     row->g->run, (long)failed);
		if (mismatched > 0)
			note(c, &n, "Run @: # turns have a prompt length unlike "
			     "the recorded one: the chat template or the "
			     "tokenizer is not the one the trajectories were "
			     "made with.", row->g->run, (long)mismatched);
	}
	if (c->r->n_passed_over)
		note(c, &n, "# records of other types were passed over.", "",
		     (long)c->r->n_passed_over);
	if (n)
		fputc('\n', c->fp);
}

static void write_footer(const struct rp_ctx *c)
{
	const size_t *t = c->r->n_by_type;

	fprintf(c->fp, "Made by report-md from %zu records: %zu summary, "
		"%zu turn_summary, %zu run, %zu conversation_result, %zu "
		"request.\n", t[RP_SUMMARY] + t[RP_TURN_SUMMARY] + t[RP_RUN] +
		t[RP_CONV] + t[RP_REQUEST], t[RP_SUMMARY], t[RP_TURN_SUMMARY],
		t[RP_RUN], t[RP_CONV], t[RP_REQUEST]);
}

/* ---------------------------------------------------------------- entry */

static int draw_charts(struct rp_ctx *c, char *err, size_t errlen)
{
	const char *dir = c->p->charts_dir;
	const struct nd_report *r = c->r;

	if (!dir)
		return 0;
	if (rp_chart_throughput(c, dir, &c->drawn[RP_C_THROUGHPUT], err, errlen) ||
	    rp_chart_latency_cdf(r, dir, false, &c->drawn[RP_C_TTFT], err,
				 errlen) ||
	    rp_chart_latency_cdf(r, dir, true, &c->drawn[RP_C_ITL], err, errlen) ||
	    rp_chart_turns(r, dir, false, &c->drawn[RP_C_TURN_TTFT], err,
			   errlen) ||
	    rp_chart_turns(r, dir, true, &c->drawn[RP_C_TURN_CACHE], err,
			   errlen) ||
	    rp_chart_time_split(c, dir, &c->drawn[RP_C_TIME_SPLIT], err, errlen))
		return -1;
	return 0;
}

static void write_sections(const struct rp_ctx *c)
{
	rp_md_title(c);
	rp_md_setup(c);
	rp_md_settings(c);
	if (c->r->n_rows) {
		rp_md_results(c);
		rp_md_engines(c, c->all, c->engines);
		rp_md_routing(c, c->all);
		rp_md_latency(c);
		rp_md_cache(c);
		rp_md_turns(c);
		rp_md_kv(c);
		rp_md_env(c);
		section_conclusions(c);
		section_scope(c);
		section_projection(c);
	}
	section_notes(c);
	write_footer(c);
}

int nd_report_write(struct nd_report *r, const struct nd_report_params *p,
		    FILE *fp, char *err, size_t errlen)
{
	struct rp_engines eng;
	struct rp_ctx c = {.r = &eng.base, .p = p, .fp = fp, .all = r, .engines = &eng};
	int rc = -1;

	/* With several engines, the usual sections are the first engine's. */
	if (rp_engines_split(r, &eng) != 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	c.rows = rp_rows_by_batch(c.r);
	c.groups = rp_groups_by_batch(c.r, false, &c.n_groups);
	if (!c.rows || (c.r->n_groups && !c.groups) ||
	    rp_points_build(c.rows, c.r->n_rows, &c.pts, &c.n_pts) != 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < c.n_pts; i++) {
		const struct rp_point *p = &c.pts[i];

		if (!c.base && p->flag == RP_SWEEP && p->batch_size > 0 && isfinite(p->tput))
			c.base = p;
		c.max_runs = p->n > c.max_runs ? p->n : c.max_runs;
	}
	for (size_t i = 0; i < c.n_groups; i++) {
		double s = rp_num(c.groups[i]->run_rec, "env_time_scale");

		c.env_known |= isfinite(s);
		c.env_replayed |= s > 0;
	}
	if (draw_charts(&c, err, errlen) ||
	    rp_chart_engines(r, &eng, p->charts_dir, err, errlen))
		goto out;
	write_sections(&c);
	errno = 0;
	if (fflush(fp) != 0 || ferror(fp)) {
		snprintf(err, errlen, "write error: %s",
			 errno ? strerror(errno) : "unknown error");
		goto out;
	}
	rc = 0;
out:
	rp_points_free(c.pts, c.n_pts);
	free(c.rows);
	free(c.groups);
	rp_engines_free(&eng);
	return rc;
}
