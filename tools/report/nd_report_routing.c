/*
 * nd_report_routing.c: routing policies compared.
 *
 * A run made through a router (gpu-batch-infer --serve --router) has a
 * run record with "workers": what each worker answered of the run.  For
 * every summary of such a run this section gives one row: the policy,
 * trajectories/s, cache hit rate, TTFT median and p99, the turns each
 * worker answered and how far the busiest is above an even share, and the
 * turns re-sent after a worker failed them; then what the router said of
 * its workers' health.  Runs named POLICY/... by the study are also set
 * side by side, by batch size, in the engines section.
 *
 * What it refuses to do: it reads only what the records hold; a run
 * without the workers field is not a routed run and is left out.
 */
#include "tools/report/nd_report_int.h"

#include <math.h>
#include <string.h>

static const json_t *workers_of(const struct rp_group *g)
{
	const json_t *w = g->run_rec ? json_object_get(g->run_rec, "workers") : NULL;

	return json_is_array(w) ? w : NULL;
}

static const char *policy_of(const struct rp_group *g)
{
	const json_t *s = json_object_get(g->run_rec, "settings");

	return json_string_value(json_object_get(s, "policy")) ?: "n/a";
}

/* The turns a worker answered in the run: its entry of "workers" (only
 * those that answered one are there). */
static double turns_of(const json_t *workers, const char *name)
{
	size_t i;
	const json_t *w;

	json_array_foreach(workers, i, w)
		if (name && !strcmp(json_string_value(json_object_get(w, "worker")) ?: "", name))
			return rp_num(w, "requests");
	return 0;
}

/* "a / b / c" turns per worker, every worker of the router in its order,
 * the busiest over the mean, retried turns. */
static void load_cells(FILE *fp, const struct rp_group *g)
{
	const json_t *workers = workers_of(g);
	const json_t *all = json_object_get(json_object_get(g->run_rec, "settings"),
					    "worker_health");
	size_t i, n = json_array_size(all);
	double sum = 0, max = 0, retried = 0;
	const json_t *w;

	fputc(' ', fp);
	json_array_foreach(all, i, w) {
		double q = turns_of(workers, json_string_value(json_object_get(w, "name")));

		fprintf(fp, "%s%.0f", i ? " / " : "", q);
		sum += q;
		max = q > max ? q : max;
	}
	json_array_foreach(workers, i, w)
		retried += rp_num(w, "retried");
	fputs(" |", fp);
	rp_cell_ratio(fp, n && sum > 0 ? max / (sum / (double)n) : NAN);
	rp_cell_int(fp, retried);
}

static void row(FILE *fp, const struct rp_row *rw)
{
	const struct rp_group *g = rw->g;

	fputs("| ", fp);
	rp_md_text(fp, g->run ? g->run : "n/a");
	fputs(" | ", fp);
	rp_md_text(fp, policy_of(g));
	fputs(" |", fp);
	rp_cell_int(fp, rw->batch_size >= 0 ? (double)rw->batch_size : NAN);
	rp_cell_fixed(fp, rp_num(rw->summary, "trajectories_per_s"), 4);
	rp_cell_pct(fp, rp_num(rw->summary, "cache_hit_rate"));
	rp_cell_fixed(fp, rp_num(rw->summary, "median_ttft_ms"), 3);
	rp_cell_fixed(fp, rp_num(rw->summary, "p99_ttft_ms"), 3);
	load_cells(fp, g);
	fputc('\n', fp);
}

/* Workers the router marked down, timed out or saw come back, per run. */
static void health_notes(FILE *fp, const struct nd_report *r)
{
	for (size_t i = 0; i < r->n_groups; i++) {
		const struct rp_group *g = r->groups[i];
		const json_t *h = json_object_get(json_object_get(g->run_rec, "settings"),
						  "worker_health");
		const json_t *w;
		size_t k;

		if (!workers_of(g))
			continue;
		json_array_foreach(h, k, w) {
			double down = rp_num(w, "marked_down"), back = rp_num(w, "rejoined");
			double tmo = rp_num(w, "timeouts"), over = rp_num(w, "failed_over");

			if (!(down > 0 || tmo > 0 || over > 0))
				continue;
			fputs("- ", fp);
			rp_md_text(fp, g->run);
			fputs(": worker ", fp);
			rp_md_text(fp, json_string_value(json_object_get(w, "name")) ?: "n/a");
			fprintf(fp, " marked down %.0f times, back %.0f times, %.0f timeouts, %.0f turns "
				"failed over (counts since the router started).\n", down, back, tmo, over);
		}
	}
}

void rp_md_routing(const struct rp_ctx *c, const struct nd_report *r)
{
	static const char *const cols[] = {
		"run", "policy", "batch size", "trajectories/s", "cache hit", "TTFT median (ms)",
		"TTFT p99 (ms)", "turns per worker", "busiest / mean", "retried turns",
	};
	size_t n = 0;

	for (size_t i = 0; i < r->n_rows; i++)
		n += workers_of(r->rows[i].g) != NULL;
	if (n == 0)
		return;
	fputs("## Routing policies\n\n", c->fp);
	fputs("The same conversations through a router over the same workers, one run per "
	      "policy; each turn goes to the worker the policy picks for its prompt.  Turns per "
	      "worker are the run's own, in worker order; busiest / mean is 1 for an even "
	      "spread; retried turns were sent again after a worker failed them.\n\n", c->fp);
	rp_table_head(c->fp, cols, sizeof(cols) / sizeof(cols[0]), true);
	for (size_t i = 0; i < r->n_rows; i++)
		if (workers_of(r->rows[i].g))
			row(c->fp, &r->rows[i]);
	fputc('\n', c->fp);
	health_notes(c->fp, r);
	fputc('\n', c->fp);
}
