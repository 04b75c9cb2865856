/*
 * nd_report_text.c: the parts of the report that are computed rather
 * than copied (conclusions), the projection kept apart from the
 * measurements, the notes on what the input lacks, and nd_report_write,
 * which draws the charts and then writes every section in order.
 *
 * Conclusions use, per batch size, the best output throughput among its
 * summaries.  Scaling "flattens" at the first batch size b whose next
 * measured size b' gains less than the threshold per doubling:
 * (T(b') / T(b)) ^ (1 / log2(b' / b)) - 1 < threshold, which for b' = 2b is
 * plainly the gain of the doubling.
 *
 * What it refuses to do: it states nothing the records cannot support;
 * with one batch size, or none known, it says so instead.
 */
#include "tools/report/nd_report_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- conclusions */

/* The best output throughput of each known batch size, ascending.
 * Returns the number of batch sizes written to bs and tp. */
static size_t batch_curve(const struct rp_ctx *c, long *bs, double *tp,
			  size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < c->r->n_rows; i++) {
		long b = c->rows[i]->batch_size;
		double t = rp_out_tput(c->rows[i]);

		if (b < 0 || !isfinite(t))
			continue;
		if (n && bs[n - 1] == b) {
			tp[n - 1] = fmax(tp[n - 1], t);
		} else if (n < cap) {
			bs[n] = b;
			tp[n++] = t;
		}
	}
	return n;
}

static const struct rp_row *best_row(const struct rp_ctx *c)
{
	const struct rp_row *best = NULL;

	for (size_t i = 0; i < c->r->n_rows; i++) {
		const struct rp_row *row = c->rows[i];

		if (isfinite(rp_out_tput(row)) && row->batch_size >= 0 &&
		    (!best || rp_cmp_tput(&row, &best) < 0))
			best = row;
	}
	return best;
}

static void concl_best(const struct rp_ctx *c, const struct rp_row *best,
		       long largest)
{
	double scale;

	fprintf(c->fp, "- Best output throughput: batch size %ld, %.2f tok/s",
		best->batch_size, rp_out_tput(best));
	if (c->base && c->base != best)
		fprintf(c->fp, ", %.2fx batch size %ld",
			rp_speed_up(c, best, &scale), c->base->batch_size);
	fputs(".", c->fp);
	if (best->batch_size == largest && c->base &&
	    c->base->batch_size != largest)
		fputs(" It is the largest batch size measured: throughput may "
		      "keep growing beyond it.", c->fp);
	fputc('\n', c->fp);
}

static void concl_flatten(const struct rp_ctx *c, const long *bs,
			  const double *tp, size_t n)
{
	double thr = c->p->flatten_threshold;

	if (n < 2) {
		fputs("- Scaling: only one batch size was measured, so there "
		      "is no scaling to judge.\n", c->fp);
		return;
	}
	for (size_t i = 0; i + 1 < n; i++) {
		double doublings, gain;

		if (bs[i] <= 0 || tp[i] <= 0 || tp[i + 1] <= 0)
			continue;
		doublings = log2((double)bs[i + 1] / (double)bs[i]);
		gain = pow(tp[i + 1] / tp[i], 1.0 / doublings) - 1.0;
		if (gain >= thr)
			continue;
		fprintf(c->fp, "- Scaling flattens at batch size %ld: ", bs[i]);
		if (bs[i + 1] == 2 * bs[i])
			fprintf(c->fp, "doubling it to %ld ", bs[i + 1]);
		else
			fprintf(c->fp, "going to %ld, per doubling, ", bs[i + 1]);
		fprintf(c->fp, "%s output throughput by %s%.1f%% (threshold "
			"%.1f%% per doubling).\n", gain < 0 ? "lowers" : "raises",
			gain >= 0 ? "only " : "", 100.0 * fabs(gain), 100.0 * thr);
		return;
	}
	fprintf(c->fp, "- Scaling does not flatten in the measured range: up "
		"to batch size %ld every doubling raises output throughput by "
		"at least %.1f%%.\n", bs[n - 1], 100.0 * thr);
}

static void concl_ttft(const struct rp_ctx *c, const struct rp_row *best)
{
	const json_t *a = best->summary, *b;

	if (!c->base)
		return;
	b = c->base->summary;
	if (best->batch_size == c->base->batch_size) {
		fprintf(c->fp, "- TTFT cost: the best batch size is the baseline "
			"(%ld) itself, so there is no TTFT cost to compare.\n",
			best->batch_size);
		return;
	}
	fprintf(c->fp, "- TTFT cost: at batch size %ld the mean TTFT is ",
		best->batch_size);
	fprintf(c->fp, "%.3f ms, %.2fx the %.3f ms of batch size %ld",
		rp_num(a, "mean_ttft_ms"),
		rp_num(a, "mean_ttft_ms") / rp_num(b, "mean_ttft_ms"),
		rp_num(b, "mean_ttft_ms"), c->base->batch_size);
	if (isfinite(rp_num(a, "p99_ttft_ms")) &&
	    isfinite(rp_num(b, "p99_ttft_ms")))
		fprintf(c->fp, " (p99: %.3f ms against %.3f ms)",
			rp_num(a, "p99_ttft_ms"), rp_num(b, "p99_ttft_ms"));
	fputs(".\n", c->fp);
}

static void section_conclusions(const struct rp_ctx *c)
{
	long bs[256];
	double tp[256];
	size_t n = batch_curve(c, bs, tp, 256);
	const struct rp_row *best = best_row(c);

	fputs("## Conclusions\n\n", c->fp);
	if (!best) {
		fputs("No summary has both a batch size and an output "
		      "throughput: there is nothing to conclude.\n\n", c->fp);
		return;
	}
	concl_best(c, best, bs[n - 1]);
	concl_flatten(c, bs, tp, n);
	concl_ttft(c, best);
	fputc('\n', c->fp);
}

static void section_projection(const struct rp_ctx *c)
{
	static const char *const cols[] = {
		"batch size", "trajectories", "projected rollout time (s)",
		"projected rollout time (h)",
	};
	size_t n = 0;

	for (size_t i = 0; i < c->r->n_rows; i++)
		n += isfinite(rp_num(c->rows[i]->summary,
				     "projected_rollout_time"));
	if (!n)
		return;
	fputs("## Projection (not a measurement)\n\n"
	      "timing-stats projected these rollout times from the measured "
	      "trajectories/s (trajectories = projected time times the measured "
	      "rate); nothing in this section was measured.\n\n", c->fp);
	rp_table_head(c->fp, cols, 4, true);
	for (size_t i = 0; i < c->r->n_rows; i++) {
		const json_t *s = c->rows[i]->summary;
		double v = rp_num(s, "projected_rollout_time");

		if (!isfinite(v))
			continue;
		rp_cell_batch(c->fp, c->rows[i]);
		rp_cell_int(c->fp, round(v * rp_num(s, "trajectories_per_s")));
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
	case MANY_RUN_RECORDS: return g->n_run_recs > 1;
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
	group_note(c, &n, MANY_RUN_RECORDS, "Runs with more than one run "
		   "record (the last one is used):", ".");
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
	if (rp_chart_throughput(r, dir, &c->drawn[RP_C_THROUGHPUT], err, errlen) ||
	    rp_chart_latency_cdf(r, dir, false, &c->drawn[RP_C_TTFT], err,
				 errlen) ||
	    rp_chart_latency_cdf(r, dir, true, &c->drawn[RP_C_ITL], err, errlen) ||
	    rp_chart_turns(r, dir, false, &c->drawn[RP_C_TURN_TTFT], err,
			   errlen) ||
	    rp_chart_turns(r, dir, true, &c->drawn[RP_C_TURN_CACHE], err,
			   errlen) ||
	    rp_chart_time_split(r, dir, &c->drawn[RP_C_TIME_SPLIT], err, errlen))
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
		rp_md_latency(c);
		rp_md_cache(c);
		rp_md_turns(c);
		rp_md_env(c);
		section_conclusions(c);
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
	if (!c.rows || (c.r->n_groups && !c.groups)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (c.r->n_rows && c.rows[0]->batch_size >= 0)
		c.base = c.rows[0];
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
	free(c.rows);
	free(c.groups);
	rp_engines_free(&eng);
	return rc;
}
