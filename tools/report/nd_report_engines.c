/*
 * nd_report_engines.c: the side-by-side comparison of engines.
 *
 * A run named "ENGINE/NAME" (gpu-batch-infer --run ENGINE/NAME, as the
 * study names the runs of ENGINES=) belongs to ENGINE; any other run to
 * "trajbench".  When the records hold more than one engine, the report's
 * usual sections describe the first engine only (the first in the input),
 * and this section sets every engine's figures side by side, per batch
 * size: trajectories/s, output tok/s, TTFT and TPOT median and p99, cache
 * hit rate, and trajectories/s against the first engine's at the same batch
 * size; one chart per figure; then what each engine's run records say of
 * how its numbers were counted (usage from the stream, prompt counts that
 * differ from ours, a prefix cache that could not be reset).
 *
 * What it refuses to do: it compares only what the summaries hold, at
 * batch sizes both engines ran; a missing value prints "n/a".
 */
#include "tools/report/nd_report_int.h"
#include "tools/report/nd_svg.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ENG_DEFAULT "trajbench"

/* The engine of a group, into buf. */
static const char *engine_of(const struct rp_group *g, char *buf, size_t n)
{
	const char *slash = g->run ? strchr(g->run, '/') : NULL;

	if (!slash || slash == g->run)
		return snprintf(buf, n, "%s", ENG_DEFAULT), buf;
	snprintf(buf, n, "%.*s", (int)(slash - g->run), g->run);
	return buf;
}

static bool same_engine(const struct rp_group *g, const char *name)
{
	char buf[128];

	return strcmp(engine_of(g, buf, sizeof(buf)), name) == 0;
}

void rp_engines_free(struct rp_engines *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->e[i].name);
		free(e->e[i].view.groups);
		free(e->e[i].view.rows);
		free(e->e[i].rows);
		rp_points_free(e->e[i].pts, e->e[i].n_pts);
	}
	free(e->e);
	memset(e, 0, sizeof(*e));
}

/* Engines in order of their first summary (then of their first group). */
static int list_engines(const struct nd_report *r, struct rp_engines *e)
{
	e->e = calloc(r->n_rows + r->n_groups + 1, sizeof(*e->e));
	if (!e->e)
		return -1;
	for (size_t i = 0; i < r->n_rows + r->n_groups; i++) {
		const struct rp_group *g = i < r->n_rows ? r->rows[i].g : r->groups[i - r->n_rows];
		char buf[128];
		size_t k;

		engine_of(g, buf, sizeof(buf));
		for (k = 0; k < e->n && strcmp(e->e[k].name, buf); k++)
			;
		if (k == e->n && !(e->e[e->n++].name = strdup(buf)))
			return -1;
	}
	return 0;
}

/* One engine's view of r: its groups and rows, and its points. */
static int engine_view(const struct nd_report *r, struct rp_engine *en)
{
	struct nd_report *v = &en->view;

	*v = *r;
	v->groups = malloc((r->n_groups + 1) * sizeof(*v->groups));
	v->rows = malloc((r->n_rows + 1) * sizeof(*v->rows));
	if (!v->groups || !v->rows)
		return -1;
	v->n_groups = v->n_rows = 0;
	for (size_t i = 0; i < r->n_groups; i++)
		if (same_engine(r->groups[i], en->name))
			v->groups[v->n_groups++] = r->groups[i];
	for (size_t i = 0; i < r->n_rows; i++)
		if (same_engine(r->rows[i].g, en->name))
			v->rows[v->n_rows++] = r->rows[i];
	en->rows = rp_rows_by_batch(v);
	if (!en->rows)
		return -1;
	return rp_points_build(en->rows, v->n_rows, &en->pts, &en->n_pts);
}

int rp_engines_split(const struct nd_report *r, struct rp_engines *e)
{
	memset(e, 0, sizeof(*e));
	e->base = *r;
	if (list_engines(r, e) != 0)
		return -1;
	if (e->n < 2)
		return 0;
	for (size_t k = 0; k < e->n; k++)
		if (engine_view(r, &e->e[k]) != 0)
			return -1;
	e->base = e->e[0].view;
	return 0;
}

/* ---------------------------------------------------------------- figures */

struct figure {
	const char *key;          /* of the summary; NULL: computed */
	const char *head;         /* table column */
	const char *chart;        /* file name */
	const char *title, *y_label;
	int decimals;             /* < 0: a percentage */
};

static const struct figure figures[] = {
	{"trajectories_per_s", "trajectories/s", "engines-trajectories.svg",
	 "Trajectories per second by batch size", "trajectories/s", 4},
	{"output_throughput", "output tok/s", "engines-throughput.svg",
	 "Output throughput by batch size", "output tokens/s", 2},
	{"median_ttft_ms", "TTFT median (ms)", "engines-ttft.svg",
	 "Median time to first token by batch size", "ms", 3},
	{"p99_ttft_ms", "TTFT p99 (ms)", NULL, NULL, NULL, 3},
	{"median_tpot_ms", "TPOT median (ms)", "engines-tpot.svg",
	 "Median time per output token by batch size", "ms", 3},
	{"p99_tpot_ms", "TPOT p99 (ms)", NULL, NULL, NULL, 3},
	{"cache_hit_rate", "cache hit", "engines-cache-hit.svg",
	 "Prefix cache hit rate by batch size", "fraction of prompt tokens", -1},
};

#define N_FIGURES (sizeof(figures) / sizeof(figures[0]))

/* Engine k's point at batch size b; NULL. */
static const struct rp_point *point_at(const struct rp_engines *e, size_t k, long b)
{
	for (size_t i = 0; i < e->e[k].n_pts; i++)
		if (e->e[k].pts[i].batch_size == b)
			return &e->e[k].pts[i];
	return NULL;
}

/* A figure of a point: the median over its runs; NaN without a point. */
static double value(const struct rp_point *p, const struct figure *f)
{
	return p ? rp_point_num(p, f->key) : NAN;
}

/* The known batch sizes of every engine, ascending, distinct; *n gets
 * their count.  Malloc'ed; NULL when out of memory. */
static long *batch_sizes(const struct rp_engines *e, size_t *n)
{
	size_t cap = 1;
	long *out;

	for (size_t k = 0; k < e->n; k++)
		cap += e->e[k].n_pts;
	out = malloc(cap * sizeof(long));
	*n = 0;
	for (size_t k = 0; out && k < e->n; k++) {
		for (size_t i = 0; i < e->e[k].n_pts; i++) {
			long b = e->e[k].pts[i].batch_size;
			size_t j = 0;

			while (j < *n && out[j] < b)
				j++;
			if (b < 0 || (j < *n && out[j] == b))
				continue;
			memmove(out + j + 1, out + j, (*n - j) * sizeof(long));
			out[j] = b;
			(*n)++;
		}
	}
	return out;
}

static int save(struct nd_svg_chart *ch, const char *dir, const char *name, char *err,
		size_t errlen)
{
	char path[PATH_MAX];
	FILE *fp;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (!(fp = fopen(path, "w"))) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	rc = nd_svg_write(ch, fp);
	if (fclose(fp) != 0 || rc != 0) {
		snprintf(err, errlen, "%s: write error", path);
		return -1;
	}
	return 0;
}

/* One chart: the figure by batch size, one line per engine. */
static int chart(const struct rp_engines *e, const struct figure *f, const char *dir, bool *drawn,
		 char *err, size_t errlen)
{
	struct nd_svg_params p = nd_svg_default_params();
	size_t nb = 0, ns = 0;
	long *bs = batch_sizes(e, &nb);
	double *x = malloc((nb + 1) * sizeof(double));
	double *y = malloc((nb + 1) * sizeof(double));
	struct nd_svg_chart *ch;
	int rc = -1;

	p.kind = ND_SVG_LINE;
	p.x_scale = ND_SVG_SCALE_LOG2;
	p.title = f->title;
	p.x_label = "batch size (log2 scale)";
	p.y_label = f->y_label;
	ch = nd_svg_new(&p);
	*drawn = false;
	if (!bs || !x || !y || !ch) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < e->n && k < ND_SVG_MAX_SERIES; k++) {
		size_t n = 0;

		for (size_t i = 0; i < nb; i++) {
			double v = value(point_at(e, k, bs[i]), f);

			if (bs[i] > 0 && isfinite(v)) {
				x[n] = (double)bs[i];
				y[n++] = v;
			}
		}
		if (n && nd_svg_add_series(ch, e->e[k].name, x, y, n) != 0) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		ns += n > 0;
	}
	rc = ns ? save(ch, dir, f->chart, err, errlen) : 0;
	*drawn = ns && rc == 0;
out:
	nd_svg_free(ch);
	free(bs);
	free(x);
	free(y);
	return rc;
}

int rp_chart_engines(const struct nd_report *r, struct rp_engines *e, const char *dir,
		     char *err, size_t errlen)
{
	(void)r;
	for (size_t i = 0; i < N_FIGURES && dir && e->n > 1; i++)
		if (figures[i].chart && chart(e, &figures[i], dir, &e->drawn[i], err, errlen) != 0)
			return -1;
	return 0;
}

/* ---------------------------------------------------------------- Markdown */

static void cell(FILE *fp, const struct rp_point *p, const struct figure *f)
{
	if (f->decimals < 0)
		rp_cell_pct(fp, value(p, f));
	else
		rp_cell_fixed(fp, value(p, f), f->decimals);
}

static void table(const struct rp_ctx *c, const struct rp_engines *e)
{
	static const struct figure traj = { "trajectories_per_s", NULL, NULL, NULL, NULL, 4 };
	size_t nb = 0;
	long *bs = batch_sizes(e, &nb);
	char vs[160];

	snprintf(vs, sizeof(vs), "vs %s (trajectories/s)", e->e[0].name);
	fputs("| batch size | engine |", c->fp);
	for (size_t i = 0; i < N_FIGURES; i++)
		fprintf(c->fp, " %s |", figures[i].head);
	fprintf(c->fp, " %s |\n|---:|---|", vs);
	for (size_t i = 0; i <= N_FIGURES; i++)
		fputs("---:|", c->fp);
	fputc('\n', c->fp);
	for (size_t i = 0; bs && i < nb; i++) {
		double base = value(point_at(e, 0, bs[i]), &traj);

		for (size_t k = 0; k < e->n; k++) {
			const struct rp_point *p = point_at(e, k, bs[i]);

			fprintf(c->fp, "| %ld | ", bs[i]);
			rp_md_text(c->fp, e->e[k].name);
			fputs(" |", c->fp);
			for (size_t f = 0; f < N_FIGURES; f++)
				cell(c->fp, p, &figures[f]);
			rp_cell_ratio(c->fp, base > 0 ? value(p, &traj) / base : NAN);
			fputc('\n', c->fp);
		}
	}
	fputc('\n', c->fp);
	free(bs);
}

/* Sums of an engine_stats counter over an engine's run records. */
static long stat_sum(const struct nd_report *r, const char *engine, const char *key, bool *any)
{
	long sum = 0;

	for (size_t i = 0; i < r->n_groups; i++) {
		const json_t *v = json_object_get(json_object_get(r->groups[i]->run_rec,
								  "engine_stats"), key);

		if (same_engine(r->groups[i], engine) && json_is_integer(v)) {
			sum += (long)json_integer_value(v);
			*any = true;
		}
	}
	return sum;
}

/* What the run records of remote engines say about their counts. */
static void counting_notes(const struct rp_ctx *c, const struct nd_report *r,
			   const struct rp_engines *e)
{
	for (size_t k = 0; k < e->n; k++) {
		const char *name = e->e[k].name;
		bool any = false, warm = false;
		long reported = stat_sum(r, name, "server_prompt_len_reported", &any);
		long mism = stat_sum(r, name, "server_prompt_len_mismatches", &any);
		long stream = stat_sum(r, name, "usage_from_stream", &any);
		long nocache = stat_sum(r, name, "cached_tokens_unreported", &any);
		long retries = stat_sum(r, name, "retries", &any);

		for (size_t i = 0; i < r->n_groups; i++) {
			const json_t *set = json_object_get(r->groups[i]->run_rec, "settings");

			warm |= same_engine(r->groups[i], name) && json_object_get(set, "url") &&
				json_is_null(json_object_get(set, "cache_reset"));
		}
		if (!any)
			continue;
		fputs("- ", c->fp);
		rp_md_text(c->fp, name);
		fprintf(c->fp, ": the server's prompt count differs from ours in %ld of %ld requests "
			"that report one%s; output counted from the stream (no usage) in %ld; no "
			"cached-token count in %ld; %ld retries.%s\n", mism, reported,
			mism ? " (its chat template or tokenizer differs)" : "", stream, nocache, retries,
			warm ? " Its prefix cache could not be reset between runs (no /flush_cache or "
			       "/reset_prefix_cache): later runs may find earlier runs' prefixes cached."
			     : "");
	}
}

static void chart_link(const struct rp_ctx *c, const struct rp_engines *e, size_t i)
{
	const char *href = c->p->charts_href ? c->p->charts_href : "";
	bool wrap = strpbrk(href, " ()") != NULL;

	if (e->drawn[i])
		fprintf(c->fp, "![%s](%s%s%s%s)\n\n", figures[i].title, wrap ? "<" : "", href,
			figures[i].chart, wrap ? ">" : "");
}

void rp_md_engines(const struct rp_ctx *c, const struct nd_report *r, const struct rp_engines *e)
{
	if (e->n < 2)
		return;
	fputs("## Engines side by side\n\n", c->fp);
	fputs("The same conversations through each engine, measured by the same client "
	      "(gpu-batch-infer) and summarized by the same timing-stats; the sections above "
	      "describe ", c->fp);
	rp_md_text(c->fp, e->e[0].name);
	fputs(" alone; with repeated runs (REPEAT=), each figure is the median over them.\n\n",
	      c->fp);
	table(c, e);
	for (size_t i = 0; i < N_FIGURES; i++)
		chart_link(c, e, i);
	counting_notes(c, r, e);
	fputc('\n', c->fp);
}
