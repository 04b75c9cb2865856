/*
 * nd_stats.c: mean, std, median and percentiles computed the way NumPy
 * computes them (see nd_stats.h for the exact order of operations).
 *
 * Why mirror NumPy rather than use a "better" algorithm: the numbers are
 * compared with SGLang's and vLLM's benchmark output, which come from NumPy.
 * Pairwise summation already keeps the rounding error at O(log n) ulps, and
 * the variance is a two-pass one (deviations from the mean), so nothing is
 * lost by agreeing with it.  This file refuses NaN handling: the callers
 * validate their input, and an empty sample is the caller's null.
 */
#include "tools/stats/nd_stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* NumPy's PW_BLOCKSIZE: below it, eight running sums; above, split. */
#define PW_BLOCKSIZE 128
/* np.add.reduce hands its inner loop at most one buffer (np.getbufsize(),
 * 8192 elements) at a time and adds the blocks' pairwise sums in order. */
#define NP_BUFSIZE 8192

/* One term of the sum: the value, or its squared deviation from mean. */
static inline double term(const double *x, size_t i, double mean, int sq)
{
	double d;

	if (!sq)
		return x[i];
	d = x[i] - mean;
	return d * d;
}

static double pairwise(const double *x, size_t n, double mean, int sq)
{
	double r[8], res;
	size_t i, j;

	if (n < 8) {
		res = 0.0;
		for (i = 0; i < n; i++)
			res += term(x, i, mean, sq);
		return res;
	}
	if (n <= PW_BLOCKSIZE) {
		for (j = 0; j < 8; j++)
			r[j] = term(x, j, mean, sq);
		for (i = 8; i < n - (n % 8); i += 8)
			for (j = 0; j < 8; j++)
				r[j] += term(x, i + j, mean, sq);
		res = ((r[0] + r[1]) + (r[2] + r[3])) +
		      ((r[4] + r[5]) + (r[6] + r[7]));
		for (; i < n; i++)
			res += term(x, i, mean, sq);
		return res;
	}
	i = n / 2;
	i -= i % 8;
	return pairwise(x, i, mean, sq) + pairwise(x + i, n - i, mean, sq);
}

/* np.add.reduce: start from the identity 0.0, add each buffer's sum. */
static double reduce(const double *x, size_t n, double mean, int sq)
{
	double res = 0.0;

	for (size_t i = 0; i < n; i += NP_BUFSIZE)
		res += pairwise(x + i, n - i < NP_BUFSIZE ? n - i : NP_BUFSIZE,
				mean, sq);
	return res;
}

double nd_stats_sum(const double *x, size_t n)
{
	return reduce(x, n, 0.0, 0);
}

double nd_stats_mean(const double *x, size_t n)
{
	return nd_stats_sum(x, n) / (double)n;
}

double nd_stats_std(const double *x, size_t n)
{
	double mean = nd_stats_mean(x, n);

	return sqrt(reduce(x, n, mean, 1) / (double)n);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void nd_stats_sort(double *x, size_t n)
{
	if (n > 1)
		qsort(x, n, sizeof(*x), cmp_double);
}

double nd_stats_percentile_sorted(const double *x, size_t n, double p)
{
	double q = p / 100.0;
	double rank = (double)(n - 1) * q;
	double below = floor(rank);
	double t = rank - below;
	size_t i, j;
	double a, b, diff;

	if (rank >= (double)(n - 1))
		return x[n - 1];
	if (rank <= 0.0)
		return x[0];
	i = (size_t)below;
	j = i + 1;
	a = x[i];
	b = x[j];
	diff = b - a;
	/* NumPy's _lerp: interpolate from the nearer end for accuracy. */
	return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

double nd_stats_median_sorted(const double *x, size_t n)
{
	if (n % 2)
		return x[n / 2];
	/* np.median takes np.mean of the two middle values. */
	return (0.0 + x[n / 2 - 1] + x[n / 2]) / 2.0;
}

void nd_stats_describe(double *x, size_t n, struct nd_stats_desc *d)
{
	d->n = n;
	d->mean = nd_stats_mean(x, n);
	d->std = nd_stats_std(x, n);
	nd_stats_sort(x, n);
	d->median = nd_stats_median_sorted(x, n);
	d->min = x[0];
	d->max = x[n - 1];
}

size_t nd_stats_sort_unique(double *x, size_t n)
{
	size_t k = 0;

	nd_stats_sort(x, n);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || x[i] != x[k - 1])
			x[k++] = x[i];
	return k;
}

void nd_stats_pct_name(double pct, char *buf, size_t len)
{
	snprintf(buf, len, "p%.10g", pct);
}
