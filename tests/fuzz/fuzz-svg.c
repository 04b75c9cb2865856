/*
 * fuzz-svg.c: report-md's chart writer (tools/report/nd_svg.c): nice and
 * log2 and log10 ticks over any two doubles and any tick count, and whole
 * charts of every kind and x scale over any points, with whiskers and
 * reference lines.  Ticks are finite, increasing and at least two; a chart
 * has no NaN or infinity in it and ends.  The input is lo, hi (raw
 * doubles), a byte of options, then points as raw double pairs.
 */
#include "tests/fuzz/fuzz.h"
#include "tools/report/nd_svg.h"

#include <float.h>
#include <math.h>

static void check_ticks(const double *t, size_t n)
{
	FUZZ_CHECK(n >= 2);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(isfinite(t[i]) && (i == 0 || t[i] > t[i - 1]));
}

static void ticks(double lo, double hi, int max_ticks)
{
	double t[64], step = NAN;
	char buf[64];
	size_t n = nd_svg_nice_ticks(lo, hi, max_ticks, t, 64, &step);

	check_ticks(t, n);
	FUZZ_CHECK(isfinite(step) && step >= DBL_MIN);
	FUZZ_CHECK(n <= (size_t)(max_ticks < 3 ? 3 : max_ticks));
	for (size_t i = 0; i < n; i++)
		nd_svg_format_tick(t[i], step, buf, sizeof(buf));
	n = nd_svg_log2_ticks(lo, hi, max_ticks, t, 64);
	check_ticks(t, n);
	FUZZ_CHECK(t[0] > 0);
	n = nd_svg_log10_ticks(lo, hi, max_ticks, t, 64);
	check_ticks(t, n);
	FUZZ_CHECK(t[0] > 0);
	nd_svg_format_tick(lo, hi, buf, sizeof(buf));
}

static void chart(uint8_t opt, const double *xy, size_t n)
{
	struct nd_svg_params p = nd_svg_default_params();
	struct nd_svg_chart *c;
	double *x = malloc((n ? n : 1) * sizeof(double)), *y = malloc((n ? n : 1) * sizeof(double));
	char *doc = NULL;
	size_t len = 0;
	FILE *fp;

	FUZZ_CHECK(x && y);
	for (size_t i = 0; i < n; i++) {
		x[i] = xy[2 * i];
		y[i] = xy[2 * i + 1];
	}
	p.kind = (enum nd_svg_kind)(opt % 3);
	p.x_scale = (enum nd_svg_scale)((opt >> 2) % 3);
	p.y_from_zero = opt & 8;
	p.title = "t";
	c = nd_svg_new(&p);
	FUZZ_CHECK(c != NULL);
	(void)nd_svg_add_series(c, "a", x, y, n);
	if (opt & 32) {
		/* whiskers from the points' own coordinates, a guide through them */
		struct nd_svg_style w = { .lo = x, .hi = y }, g = { .reference = true };

		(void)nd_svg_add_series_styled(c, "w", y, x, n, &w);
		(void)nd_svg_add_series_styled(c, "g", x, y, n, &g);
	}
	if (opt & 64) {
		struct nd_svg_style pts = { .points_only = true };

		(void)nd_svg_add_series_styled(c, "p", x, y, n, &pts);
	}
	if (opt & 16)
		(void)nd_svg_add_samples(c, "b", y, n);
	fp = open_memstream(&doc, &len);
	FUZZ_CHECK(fp != NULL);
	FUZZ_CHECK(nd_svg_write(c, fp) == 0);
	fclose(fp);
	if (strstr(doc, "nan") || strstr(doc, "inf"))
		fprintf(stderr, "%s\n", doc);
	FUZZ_CHECK(!strstr(doc, "nan") && !strstr(doc, "inf"));
	free(doc);
	nd_svg_free(c);
	free(x);
	free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	double lo, hi, *xy;
	size_t n;

	if (size < 17)
		return 0;
	memcpy(&lo, data, 8);
	memcpy(&hi, data + 8, 8);
	ticks(lo, hi, data[16] % 20);
	n = (size - 17) / 16;
	xy = malloc((n ? n : 1) * 16);
	FUZZ_CHECK(xy != NULL);
	memcpy(xy, data + 17, n * 16);
	chart(data[16], xy, n);
	free(xy);
	return 0;
}
