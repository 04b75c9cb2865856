/*
 * fuzz-stats.c: timing-stats' summary statistics (tools/stats): request,
 * conversation_result and run records of any shape, every grouping, the
 * JSON and the text output; and the NumPy-exact statistics over raw
 * doubles.  The first byte picks the parameters; the rest is NDJSON.
 * Output goes to /dev/null.  Statistics of finite samples stay within the
 * sample's range.
 */
#include "tests/fuzz/fuzz.h"
#include "tools/stats/nd_stats.h"
#include "tools/stats/nd_summary.h"

#include <jansson.h>
#include <math.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!freopen("/dev/null", "w", stdout))
		abort();
	return 0;
}

/* The records: one per line, as timing-stats reads them. */
static void summarize(uint8_t mode, const char *s, size_t n)
{
	struct nd_summary_params p;
	struct nd_summary *sum;
	char err[512];
	size_t i = 0;

	nd_summary_default_params(&p);
	p.group_by = (enum nd_group_by)(mode % 4);
	p.per_turn = mode & 4;
	p.format = mode & 8 ? ND_SUMMARY_TEXT : ND_SUMMARY_JSON;
	p.project_trajectories = mode & 16 ? 500 : 0;
	if (mode & 32)
		FUZZ_CHECK(nd_summary_parse_percentiles("0,50,99.9,100", &p) == 0);
	sum = nd_summary_new(&p);
	FUZZ_CHECK(sum != NULL);
	while (i < n) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t len = nl ? (size_t)(nl - (s + i)) : n - i;
		json_t *rec = json_loadb(s + i, len, JSON_ALLOW_NUL, NULL);

		if (json_is_object(rec)) {
			int rc = nd_summary_add(sum, rec, err, sizeof(err));

			FUZZ_CHECK(rc == ND_SUMMARY_OK || rc == ND_SUMMARY_BAD_RECORD);
		}
		json_decref(rec);
		i += len + 1;
	}
	FUZZ_CHECK(nd_summary_finish(sum) == ND_SUMMARY_OK);
	nd_summary_free(sum);
}

/* The statistics over the input's bytes as doubles. */
static void describe(const uint8_t *data, size_t size)
{
	size_t n = size / 8;
	double *x = malloc((n ? n : 1) * sizeof(double));
	double lo = INFINITY, hi = -INFINITY;
	struct nd_stats_desc d;
	int finite = 1;

	FUZZ_CHECK(x != NULL);
	memcpy(x, data, n * 8);
	for (size_t i = 0; i < n; i++) {
		finite &= isfinite(x[i]) && fabs(x[i]) < 1e300;
		lo = fmin(lo, x[i]);
		hi = fmax(hi, x[i]);
	}
	if (n > 0) {
		nd_stats_describe(x, n, &d);
		for (size_t i = 1; finite && i < n; i++)
			FUZZ_CHECK(x[i - 1] <= x[i]);   /* sorted */
		if (finite) {
			double tol = 1e-9 * fmax(fabs(lo), fabs(hi));

			FUZZ_CHECK(d.mean >= lo - tol && d.mean <= hi + tol);
			FUZZ_CHECK(d.median >= lo && d.median <= hi);
			FUZZ_CHECK(d.std >= 0);
			for (double q = 0; q <= 100; q += 12.5) {
				double v = nd_stats_percentile_sorted(x, n, q);

				FUZZ_CHECK(v >= lo - tol && v <= hi + tol);
			}
		}
	}
	free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 64)
		describe(data + 1, size - 1);
	else
		summarize(data[0], (const char *)data + 1, size - 1);
	return 0;
}
