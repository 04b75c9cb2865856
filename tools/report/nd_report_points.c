/*
 * nd_report_points.c: the sweep as the report reads it: one point per
 * batch size, holding its summaries (one per repeated run), the median
 * and the spread of its output throughput, and whether it is a point of
 * the sweep at all.
 *
 * A batch size is set apart (flagged, shown, never ranked) when it cannot
 * have run as asked:
 *   - it is larger than the number of conversations of its runs: with 4
 *     conversations, batch size 8 runs exactly like batch size 4, and any
 *     difference between them is noise;
 *   - its measured concurrency (summed request latency over the duration:
 *     the mean number of requests in flight) is below half of what it
 *     allows: min(batch size, conversations), times the share of a
 *     conversation's time spent in LLM calls when environment time is
 *     replayed (known from the run record; without one, no judgement).
 *     The batch was then mostly empty (a long tail of one
 *     conversation, a scheduler that admitted fewer), so the run does not
 *     measure its batch size.
 * Every figure of a point is the median over its runs, as numpy.median
 * takes it (the mean of the two middle values for an even count).
 */
#include "tools/report/nd_report_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Share of the expected concurrency below which a run is flagged. */
#define RP_LOW_CONCURRENCY_SHARE 0.5

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median, min and max of the finite values among v (n); NaN when none. */
static double median_of(double *v, size_t n, double *lo, double *hi)
{
	size_t m = 0;

	for (size_t i = 0; i < n; i++)
		if (isfinite(v[i]))
			v[m++] = v[i];
	if (!m) {
		if (lo)
			*lo = NAN;
		if (hi)
			*hi = NAN;
		return NAN;
	}
	qsort(v, m, sizeof(*v), cmp_double);
	if (lo)
		*lo = v[0];
	if (hi)
		*hi = v[m - 1];
	return m % 2 ? v[m / 2] : (v[m / 2 - 1] + v[m / 2]) / 2;
}

double rp_point_num(const struct rp_point *p, const char *key)
{
	double v[p->n ? p->n : 1];

	for (size_t i = 0; i < p->n; i++)
		v[i] = rp_num(p->rows[i]->summary, key);
	return median_of(v, p->n, NULL, NULL);
}

/* Conversations per run: the run record's, else the summary's completed
 * trajectories; -1 when neither says. */
static long conversations(const struct rp_point *p)
{
	double n = rp_num(p->g->run_rec, "num_conversations");

	if (!isfinite(n))
		n = rp_point_num(p, "num_trajectories");
	return isfinite(n) && n >= 0 ? (long)n : -1;
}

/* The share of a conversation's time in LLM calls, with environment time
 * waited for at the run's env_time_scale; 1 when none was. */
static double llm_share(const struct rp_point *p)
{
	const struct rp_group *g = p->g;
	double scale = rp_num(g->run_rec, "env_time_scale");
	double env = isfinite(scale) ? scale * g->sum_env_s : 0;

	if (!(g->sum_llm_s > 0) || !(env > 0))
		return 1;
	return g->sum_llm_s / (g->sum_llm_s + env);
}

static void judge(struct rp_point *p)
{
	double v[p->n ? p->n : 1];
	long cap;

	for (size_t i = 0; i < p->n; i++)
		v[i] = rp_out_tput(p->rows[i]);
	p->tput = median_of(v, p->n, &p->lo, &p->hi);
	p->concurrency = rp_point_num(p, "concurrency");
	p->n_conv = conversations(p);
	p->flag = RP_SWEEP;
	p->expected = NAN;
	if (p->batch_size < 0) {
		p->flag = RP_NO_BATCH;
		return;
	}
	if (p->n_conv > 0 && p->batch_size > p->n_conv) {
		p->flag = RP_OVER_CONVERSATIONS;
		return;
	}
	cap = p->batch_size > 0 && (p->n_conv < 0 || p->batch_size < p->n_conv)
	      ? p->batch_size : p->n_conv;
	if (cap > 0)
		p->expected = (double)cap * llm_share(p);
	/* without a run record the env time waited is unknown: no judgement */
	if (isfinite(p->expected) && isfinite(p->concurrency) &&
	    isfinite(rp_num(p->g->run_rec, "env_time_scale")) &&
	    p->concurrency < RP_LOW_CONCURRENCY_SHARE * p->expected)
		p->flag = RP_LOW_CONCURRENCY;
}

int rp_points_build(struct rp_row **rows, size_t n_rows, struct rp_point **out,
		    size_t *n_out)
{
	struct rp_point *pts = calloc(n_rows ? n_rows : 1, sizeof(*pts));
	size_t n = 0;

	*out = NULL;
	*n_out = 0;
	if (!pts)
		return -1;
	/* rows come sorted by batch size, unknown last */
	for (size_t i = 0; i < n_rows; i++) {
		long b = rows[i]->batch_size;
		struct rp_point *p = n ? &pts[n - 1] : NULL;

		if (!p || b < 0 || p->batch_size != b) {
			p = &pts[n++];
			p->batch_size = b;
			p->g = rows[i]->g;
			p->rows = calloc(n_rows, sizeof(*p->rows));
			if (!p->rows) {
				rp_points_free(pts, n);
				return -1;
			}
		}
		p->rows[p->n++] = rows[i];
	}
	for (size_t i = 0; i < n; i++)
		judge(&pts[i]);
	*out = pts;
	*n_out = n;
	return 0;
}

void rp_points_free(struct rp_point *pts, size_t n)
{
	for (size_t i = 0; pts && i < n; i++)
		free(pts[i].rows);
	free(pts);
}
