/*
 * nd_report_charts.c: the report's SVG charts, drawn with nd_svg.
 *
 *   throughput.svg      output throughput by batch size (log2 x axis): the
 *                       median of the sweep's points with the spread of
 *                       their runs, the batch sizes that are not points of
 *                       the sweep as hollow markers, and the line of linear
 *                       scaling from the baseline as a guide that does not
 *                       set the y axis (clipped at its top), so the
 *                       measured values fill the chart
 *   ttft-cdf.svg        TTFT distribution per batch size (log time axis)
 *   itl-cdf.svg         ITL distribution per batch size (log time axis)
 *   turn-ttft.svg       mean TTFT by turn index, per batch size
 *   turn-cache-hit.svg  prefix cache hit rate by turn index
 *   time-split.svg      LLM and environment time per trajectory (bars)
 *
 * A distribution is the empirical CDF of the request records when the
 * input has them, else a line through the summary's percentiles (median,
 * every pNN, and max for ITL): the summary alone holds no more.  A chart
 * with nothing to draw is not written, and the Markdown does not link it.
 */
#include "tools/report/nd_report_int.h"
#include "tools/report/nd_svg.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int save(struct nd_svg_chart *ch, const char *dir, const char *name,
		char *err, size_t errlen)
{
	char path[PATH_MAX];
	FILE *fp;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	if (!fp) {
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

/* Saves ch when it holds a series; frees it either way. */
static int finish(struct nd_svg_chart *ch, size_t n_series, const char *dir,
		  const char *name, bool *drawn, char *err, size_t errlen)
{
	int rc = 0;

	*drawn = false;
	if (n_series) {
		rc = save(ch, dir, name, err, errlen);
		*drawn = rc == 0;
	}
	nd_svg_free(ch);
	return rc;
}

static struct nd_svg_chart *new_chart(enum nd_svg_kind kind,
				      enum nd_svg_scale scale,
				      const char *title, const char *xl,
				      const char *yl, char *err,
				      size_t errlen)
{
	struct nd_svg_params p = nd_svg_default_params();
	struct nd_svg_chart *ch;

	p.kind = kind;
	p.x_scale = scale;
	p.title = title;
	p.x_label = xl;
	p.y_label = yl;
	ch = nd_svg_new(&p);
	if (!ch)
		snprintf(err, errlen, "out of memory");
	return ch;
}

int rp_chart_throughput(const struct rp_ctx *c, const char *dir,
			bool *drawn, char *err, size_t errlen)
{
	size_t cap = c->n_pts + 1, n = 0, nf = 0, ns = 0;
	double *x = malloc(cap * sizeof(double)), *y = malloc(cap * sizeof(double));
	double *lo = malloc(cap * sizeof(double)), *hi = malloc(cap * sizeof(double));
	double *fx = malloc(cap * sizeof(double)), *fy = malloc(cap * sizeof(double));
	double *ideal = malloc(cap * sizeof(double));
	struct nd_svg_chart *ch = new_chart(
		ND_SVG_LINE, ND_SVG_SCALE_LOG2, "Output throughput by batch size",
		"batch size (log2 scale)", "output tokens/s", err, errlen);
	struct nd_svg_style sweep = { .lo = lo, .hi = hi };
	struct nd_svg_style set_apart = { .points_only = true };
	struct nd_svg_style guide = { .reference = true };
	char name[64];
	int rc = -1;

	if (!x || !y || !lo || !hi || !fx || !fy || !ideal || !ch) {
		snprintf(err, errlen, "out of memory");
		nd_svg_free(ch);
		goto out;
	}
	for (size_t i = 0; i < c->n_pts; i++) {
		const struct rp_point *p = &c->pts[i];

		if (p->batch_size <= 0 || !isfinite(p->tput))
			continue;
		if (p->flag != RP_SWEEP) {
			fx[nf] = (double)p->batch_size;
			fy[nf++] = p->tput;
			continue;
		}
		x[n] = (double)p->batch_size;
		y[n] = p->tput;
		lo[n] = p->lo;
		hi[n++] = p->hi;
	}
	if (n)
		ns += nd_svg_add_series_styled(ch, c->max_runs > 1 ? "median (bars: runs)" : "measured",
					       x, y, n, c->max_runs > 1 ? &sweep : NULL) == 0;
	if (nf)
		ns += nd_svg_add_series_styled(ch, "not ranked", fx, fy, nf, &set_apart) == 0;
	if (n > 1) {
		for (size_t i = 0; i < n; i++)
			ideal[i] = y[0] * x[i] / x[0];
		snprintf(name, sizeof(name), "linear from batch %.0f", x[0]);
		ns += nd_svg_add_series_styled(ch, name, x, ideal, n, &guide) == 0;
	}
	rc = finish(ch, ns, dir, RP_CHART_THROUGHPUT, drawn, err, errlen);
out:
	free(x);
	free(y);
	free(lo);
	free(hi);
	free(fx);
	free(fy);
	free(ideal);
	return rc;
}

/* The percentile points of a summary for metric ("ttft", "itl"): the
 * median, every pNN key, and for ITL the max.  Returns the count. */
static size_t pct_points(const json_t *s, const char *metric, double *x,
			 double *y, size_t cap)
{
	size_t n = 0, mlen = strlen(metric);
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)s, key, v) {
		double frac = NAN;
		char *end;

		if (!json_is_number(v) || n == cap)
			continue;
		if (strncmp(key, "median_", 7) == 0 &&
		    strncmp(key + 7, metric, mlen) == 0 &&
		    strcmp(key + 7 + mlen, "_ms") == 0)
			frac = 0.5;
		else if (strcmp(metric, "itl") == 0 &&
			 strcmp(key, "max_itl_ms") == 0)
			frac = 1.0;
		else if (key[0] == 'p' && key[1] >= '0' && key[1] <= '9') {
			double pct = strtod(key + 1, &end);

			if (*end == '_' && strncmp(end + 1, metric, mlen) == 0 &&
			    strcmp(end + 1 + mlen, "_ms") == 0 && pct <= 100)
				frac = pct / 100.0;
		}
		if (!isfinite(frac))
			continue;
		x[n] = json_number_value(v);
		y[n++] = frac;
	}
	return n;
}

int rp_chart_latency_cdf(const struct nd_report *r, const char *dir,
			 bool itl, bool *drawn, char *err, size_t errlen)
{
	struct rp_row **rows = rp_rows_by_batch(r);
	struct nd_svg_chart *ch = new_chart(
		ND_SVG_CDF, ND_SVG_SCALE_LOG10, itl ? "Inter-token latency distribution"
				: "Time to first token distribution",
		itl ? "ITL (ms, log scale)" : "TTFT (ms, log scale)", "fraction of samples", err,
		errlen);
	size_t ns = 0;

	if (!rows || !ch) {
		free(rows);
		nd_svg_free(ch);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < r->n_rows && ns < ND_SVG_MAX_SERIES; i++) {
		const struct rp_group *g = rows[i]->g;
		const struct nd_dvec *d = itl ? &g->itl_ms : &g->ttft_ms;
		double x[64], y[64];
		char label[128];
		size_t n;

		rp_group_label(g, label, sizeof(label));
		if (d->n) {
			ns += nd_svg_add_samples(ch, label, d->v, d->n) == 0;
			continue;
		}
		n = pct_points(rows[i]->summary, itl ? "itl" : "ttft", x, y, 64);
		if (n)
			ns += nd_svg_add_series(ch, label, x, y, n) == 0;
	}
	free(rows);
	return finish(ch, ns, dir, itl ? RP_CHART_ITL : RP_CHART_TTFT, drawn,
		      err, errlen);
}

/* Fills x (turn) and y (key, times scale) from g's turn summaries, sorted
 * by turn.  Returns the count. */
static size_t turn_points(const struct rp_group *g, const char *key,
			  double scale, double *x, double *y)
{
	size_t n = 0;

	for (size_t k = 0; k < g->n_turns; k++) {
		double t = rp_num(g->turns[k], "turn");
		double v = rp_num(g->turns[k], key) * scale;
		size_t j = n;

		if (!isfinite(t) || !isfinite(v))
			continue;
		for (; j > 0 && x[j - 1] > t; j--) {
			x[j] = x[j - 1];
			y[j] = y[j - 1];
		}
		x[j] = t;
		y[j] = v;
		n++;
	}
	return n;
}

int rp_chart_turns(const struct nd_report *r, const char *dir, bool cache,
		   bool *drawn, char *err, size_t errlen)
{
	size_t n_groups, ns = 0;
	struct rp_group **tg = rp_groups_by_batch(r, true, &n_groups);
	struct nd_svg_chart *ch = new_chart(
		ND_SVG_LINE, ND_SVG_SCALE_LINEAR, cache ? "Prefix cache hit rate by turn"
				   : "Mean TTFT by turn",
		"turn index", cache ? "cache hit rate (%)" : "mean TTFT (ms)",
		err, errlen);

	if (!ch) {
		free(tg);
		return -1;
	}
	for (size_t i = 0; i < n_groups && ns < ND_SVG_MAX_SERIES; i++) {
		double *x = malloc(tg[i]->n_turns * sizeof(double));
		double *y = malloc(tg[i]->n_turns * sizeof(double));
		char label[128];
		size_t n;

		if (!x || !y) {
			free(x);
			free(y);
			continue;
		}
		n = turn_points(tg[i], cache ? "cache_hit_rate" : "mean_ttft_ms",
				cache ? 100.0 : 1.0, x, y);
		if (n)
			ns += nd_svg_add_series(ch, rp_group_label(tg[i], label,
								   sizeof(label)),
						x, y, n) == 0;
		free(x);
		free(y);
	}
	free(tg);
	return finish(ch, ns, dir,
		      cache ? RP_CHART_TURN_CACHE : RP_CHART_TURN_TTFT, drawn,
		      err, errlen);
}

/* Mean LLM and env time per trajectory of a point: from the conversation
 * results when there are some, else from the summaries. */
static void split_of(const struct rp_point *p, double *llm, double *env)
{
	const struct rp_group *g = p->g;

	if (g->n_conv) {
		*llm = g->sum_llm_s / (double)g->n_conv;
		*env = g->sum_env_s / (double)g->n_conv;
	} else {
		*llm = rp_point_num(p, "mean_llm_time_per_trajectory");
		*env = rp_point_num(p, "mean_env_time_per_trajectory");
	}
}

int rp_chart_time_split(const struct rp_ctx *c, const char *dir,
			bool *drawn, char *err, size_t errlen)
{
	double *x = malloc((c->n_pts + 1) * sizeof(double));
	double *llm = malloc((c->n_pts + 1) * sizeof(double));
	double *env = malloc((c->n_pts + 1) * sizeof(double));
	struct nd_svg_chart *ch = new_chart(
		ND_SVG_BAR, ND_SVG_SCALE_LINEAR, "LLM and environment time per trajectory",
		"batch size", "mean seconds per trajectory", err, errlen);
	size_t n = 0, ns = 0;
	int rc = -1;

	if (!x || !llm || !env || !ch) {
		snprintf(err, errlen, "out of memory");
		nd_svg_free(ch);
		goto out;
	}
	for (size_t i = 0; i < c->n_pts; i++) {
		if (c->pts[i].batch_size < 0)
			continue;
		x[n] = (double)c->pts[i].batch_size;
		split_of(&c->pts[i], &llm[n], &env[n]);
		n += isfinite(llm[n]) && isfinite(env[n]);
	}
	if (n) {
		ns += nd_svg_add_series(ch, "LLM time", x, llm, n) == 0;
		ns += nd_svg_add_series(ch, c->env_replayed || !c->env_known ? "env time"
					: "env (not replayed)", x, env, n) == 0;
	}
	rc = finish(ch, ns, dir, RP_CHART_TIME_SPLIT, drawn, err, errlen);
out:
	free(x);
	free(llm);
	free(env);
	return rc;
}

/* ---------------------------------------------------------------- paths */

/* Splits an absolute path into its components (in place). */
static size_t components(char *path, char **out, size_t cap)
{
	size_t n = 0;
	char *save_ptr = NULL;

	for (char *tok = strtok_r(path, "/", &save_ptr); tok && n < cap;
	     tok = strtok_r(NULL, "/", &save_ptr))
		out[n++] = tok;
	return n;
}

int nd_report_relpath(const char *from, const char *to, char *buf,
		      size_t len)
{
	char a[PATH_MAX], b[PATH_MAX], *ca[256], *cb[256];
	size_t na, nb, common = 0, used = 0;

	if (!realpath(from, a) || !realpath(to, b))
		return -1;
	na = components(a, ca, 256);
	nb = components(b, cb, 256);
	while (common < na && common < nb &&
	       strcmp(ca[common], cb[common]) == 0)
		common++;
	buf[0] = '\0';
	for (size_t i = common; i < na; i++) {
		used += 3;
		if (used >= len)
			return -1;
		strcat(buf, "../");
	}
	for (size_t i = common; i < nb; i++) {
		used += strlen(cb[i]) + 1;
		if (used >= len)
			return -1;
		strcat(buf, cb[i]);
		strcat(buf, "/");
	}
	return 0;
}
