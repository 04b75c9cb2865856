/*
 * test-nd-stats.c: nd_stats against values worked out by hand.
 *
 * Each expected value is derived in the comment beside it from the NumPy
 * definitions (np.percentile "linear": rank = p/100 * (n - 1), then
 * a + (b - a) * t, or b - (b - a) * (1 - t) when t >= 0.5; np.std with
 * ddof 0).  The literals are the shortest decimal forms of the doubles, and
 * they were cross-checked with NumPy 1.24 (repr of np.percentile etc.), so
 * the comparisons are exact (==), not within a tolerance: agreeing with
 * NumPy to the last bit is the point of nd_stats.
 */
#include "tools/stats/nd_stats.h"
#include "tests/tap.h"

#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void check(const char *what, double got, double want)
{
	if (!tap_ok(got == want, "%s = %.16g", what, want))
		tap_diag("got %.17g", got);
}

/* Copies v, describes it, and checks mean, std, median, min, max. */
static void check_desc(const char *name, const double *v, size_t n,
		       double mean, double std, double median)
{
	double x[16];
	struct nd_stats_desc d;
	char what[96];

	memcpy(x, v, n * sizeof(*v));
	nd_stats_describe(x, n, &d);
	snprintf(what, sizeof(what), "%s mean", name);
	check(what, d.mean, mean);
	snprintf(what, sizeof(what), "%s std", name);
	check(what, d.std, std);
	snprintf(what, sizeof(what), "%s median", name);
	check(what, d.median, median);
	tap_ok(d.n == n, "%s n", name);
	for (size_t i = 1; i < n; i++)
		if (x[i - 1] > x[i]) {
			tap_ok(0, "%s sorted after describe", name);
			return;
		}
	tap_ok(d.min == x[0] && d.max == x[n - 1], "%s min/max", name);
}

static void even_count(void)
{
	double v[] = {1, 2, 3, 4};

	/* mean 10/4 = 2.5; deviations 1.5,0.5,0.5,1.5 -> squares sum 5,
	 * 5/4 = 1.25, sqrt(1.25) = 1.118033988749895; median (2+3)/2 */
	check_desc("[1,2,3,4]", v, N(v), 2.5, 1.118033988749895, 2.5);
	/* p90: rank 0.9*3 = 2.7, between x[2]=3 and x[3]=4, t = 0.7 -> 3.7 */
	check("[1,2,3,4] p90", nd_stats_percentile_sorted(v, 4, 90), 3.7);
	/* p99: rank 2.97, t = 0.97 >= 0.5 -> 4 - 1*0.03 = 3.97, which as a
	 * double is 3.9699999999999998 (0.03 is not exact) */
	check("[1,2,3,4] p99", nd_stats_percentile_sorted(v, 4, 99),
	      3.9699999999999998);
	/* p25: rank 0.75 -> 2 - 1*0.25 = 1.75; p50 rank 1.5 -> 2.5 */
	check("[1,2,3,4] p25", nd_stats_percentile_sorted(v, 4, 25), 1.75);
	check("[1,2,3,4] p50", nd_stats_percentile_sorted(v, 4, 50), 2.5);
	/* the ends: rank 0 and rank n-1 are the minimum and the maximum */
	check("[1,2,3,4] p0", nd_stats_percentile_sorted(v, 4, 0), 1);
	check("[1,2,3,4] p100", nd_stats_percentile_sorted(v, 4, 100), 4);
}

static void odd_unsorted(void)
{
	double v[] = {5, 1, 3};
	double w[] = {10, 40, 20, 30};

	/* sorted 1,3,5: mean 3, squares 4+0+4 = 8, sqrt(8/3) = 1.632993161855452,
	 * median the middle value 3 */
	check_desc("[5,1,3]", v, N(v), 3, 1.632993161855452, 3);
	nd_stats_sort(v, N(v));
	/* p90: rank 0.9*2 = 1.8, between 3 and 5, t = 0.8 -> 5 - 2*0.2 = 4.6 */
	check("[5,1,3] p90", nd_stats_percentile_sorted(v, 3, 90), 4.6);
	/* p25: rank 0.5, t = 0.5 uses the upper end: 3 - 2*0.5 = 2 */
	check("[5,1,3] p25", nd_stats_percentile_sorted(v, 3, 25), 2);
	/* unsorted even count: sorted 10,20,30,40, median (20+30)/2 = 25,
	 * std sqrt((225+25+25+225)/4) = sqrt(125) = 11.180339887498949 */
	check_desc("[10,40,20,30]", w, N(w), 25, 11.180339887498949, 25);
	nd_stats_sort(w, N(w));
	/* p90: rank 2.7 between 30 and 40 -> 40 - 10*0.3 = 37;
	 * p99: rank 2.97 -> 40 - 10*0.03 = 39.699999999999996 in doubles */
	check("[10,40,20,30] p90", nd_stats_percentile_sorted(w, 4, 90), 37);
	check("[10,40,20,30] p99", nd_stats_percentile_sorted(w, 4, 99),
	      39.699999999999996);
}

static void single_and_repeated(void)
{
	double one[] = {7.5};
	double same[] = {2, 2, 2, 2, 2};

	/* one value: every statistic is the value, std 0 */
	check_desc("[7.5]", one, 1, 7.5, 0, 7.5);
	check("[7.5] p99", nd_stats_percentile_sorted(one, 1, 99), 7.5);
	check("[7.5] p0", nd_stats_percentile_sorted(one, 1, 0), 7.5);
	/* repeated values: deviations are exactly 0, any percentile is 2 */
	check_desc("[2,2,2,2,2]", same, 5, 2, 0, 2);
	check("[2 x5] p90", nd_stats_percentile_sorted(same, 5, 90), 2);
	check("[2 x5] p99.9", nd_stats_percentile_sorted(same, 5, 99.9), 2);
}

/* NumPy reduces in buffers of 8192 values: 10000 x 0.1 is summed as
 * pairwise(8192 values) + pairwise(1808 values) = 1000.0000000000002,
 * which is what np.sum(np.full(10000, 0.1)) prints; one pairwise sum over
 * all 10000 would give 999.9999999999999.  (Too long to add by hand: the
 * value is NumPy 1.24's, the reason is the buffer split.) */
static void buffered(void)
{
	static double v[10000];

	for (size_t i = 0; i < N(v); i++)
		v[i] = 0.1;
	check("buffered sum 10000 x 0.1", nd_stats_sum(v, N(v)),
	      1000.0000000000002);
}

static void precision(void)
{
	double big[] = {1e9 + 1, 1e9 + 2, 1e9 + 3};
	double tenths[] = {0.1, 0.2, 0.3};
	double many[200];

	/* Two-pass variance: deviations -1,0,1 are exact, so
	 * std = sqrt(2/3) = 0.816496580927726.  A one-pass E[x^2] - E[x]^2
	 * would cancel 1e18-sized terms and lose every digit. */
	check_desc("[1e9+1..3]", big, 3, 1e9 + 2, 0.816496580927726, 1e9 + 2);
	/* 0.1 + 0.2 = 0.30000000000000004, + 0.3 = 0.6000000000000001,
	 * / 3 = 0.20000000000000004: NumPy's mean shows the same rounding */
	check("mean [0.1,0.2,0.3]", nd_stats_mean(tenths, 3),
	      0.20000000000000004);
	/* Pairwise order: 200 x 0.1 added left to right drifts to
	 * 20.000000000000014; NumPy splits 200 into 96 + 104 and sums each
	 * in eight lanes of 12-13 terms, and gets exactly 20. */
	for (size_t i = 0; i < N(many); i++)
		many[i] = 0.1;
	check("pairwise sum 200 x 0.1", nd_stats_sum(many, N(many)), 20.0);
	check("mean 200 x 0.1", nd_stats_mean(many, N(many)), 0.1);
	check("sum of nothing", nd_stats_sum(many, 0), 0.0);
	buffered();
	/* p99.9 on 0.1,0.2,0.3: q = 0.999, rank 1.998, t = 0.998 ->
	 * 0.3 - 0.1*0.002 = 0.2998 (the double nearest 0.2998) */
	check("[0.1,0.2,0.3] p99.9", nd_stats_percentile_sorted(tenths, 3, 99.9),
	      0.2998);
}

int main(void)
{
	even_count();
	odd_unsorted();
	single_and_repeated();
	precision();
	return tap_done();
}
