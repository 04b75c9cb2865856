/*
 * nd_stats.h: descriptive statistics that agree with NumPy.
 *
 * The benchmark tools of SGLang and vLLM report np.mean, np.median, np.std
 * (population, ddof 0), np.percentile (method "linear") and np.max over
 * float64 lists.  These functions compute the same numbers, in the same
 * order of operations, so that a figure printed by trajbench can be put next
 * to one printed by those tools without a last-digit argument:
 *   sum         NumPy's pairwise summation (np.add.reduce on a contiguous
 *               float64 array): blocks of 8 partial sums up to 128 values,
 *               halves split at a multiple of 8 above that, applied to
 *               each 8192-value buffer, the buffers added in order
 *               (checked bit for bit against NumPy 1.24)
 *   mean        sum / n
 *   std         two passes: mean first, then sqrt(sum((x - mean)^2) / n)
 *   percentile  on sorted data, rank = p/100 * (n - 1), linear interpolation
 *               written as NumPy's _lerp (from the nearer end when t >= 0.5)
 *   median      middle value, or (a + b) / 2 of the two middle values
 * Every function needs n >= 1; an empty sample has no statistics, and the
 * callers report it as null rather than invent a 0.  Values must be finite.
 */
#ifndef TRAJBENCH_ND_STATS_H
#define TRAJBENCH_ND_STATS_H

#include <stddef.h>

/* Sum of x[0..n) in NumPy's pairwise order; 0 when n == 0. */
double nd_stats_sum(const double *x, size_t n);

/* np.mean; n >= 1. */
double nd_stats_mean(const double *x, size_t n);

/* np.std with ddof 0 (population); n >= 1. */
double nd_stats_std(const double *x, size_t n);

/* Sorts x in place, ascending (finite values only). */
void nd_stats_sort(double *x, size_t n);

/* np.percentile(x, p) with the default "linear" method; x sorted
 * ascending, n >= 1, 0 <= p <= 100. */
double nd_stats_percentile_sorted(const double *x, size_t n, double p);

/* np.median; x sorted ascending, n >= 1. */
double nd_stats_median_sorted(const double *x, size_t n);

/* Sorts x ascending and drops duplicates in place; returns the new count. */
size_t nd_stats_sort_unique(double *x, size_t n);

/* Writes the record key of a percentile: 90 -> "p90", 99.9 -> "p99.9"
 * (the way vLLM names them).  buf of 32 bytes is always enough. */
void nd_stats_pct_name(double pct, char *buf, size_t len);

/* Everything a report prints for one sample. */
struct nd_stats_desc {
	size_t n;
	double mean;
	double std;
	double median;
	double min;
	double max;
};

/* Fills d from x[0..n), n >= 1.  Mean and std are taken in the order the
 * values were given (the order decides the last bits of a pairwise sum,
 * as it does in NumPy); then x is sorted in place so that the caller can
 * ask nd_stats_percentile_sorted for any percentile. */
void nd_stats_describe(double *x, size_t n, struct nd_stats_desc *d);

#endif
