/*
 * test-nd-svg.c: the chart writer's tick choice and the shape of its
 * output.  Every chart kind is written and checked for well-formed XML:
 * by xmllint when it is installed, and always by a small structural check
 * (balanced tags, one root, no stray markup characters); output must be
 * the same bytes when written twice.
 */
#include "tools/report/nd_svg.h"
#include "tests/tap.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool near(double a, double b)
{
	return fabs(a - b) < 1e-9 * (fabs(a) + fabs(b) + 1);
}

static void test_nice_ticks(void)
{
	double t[64], step;
	size_t n;

	n = nd_svg_nice_ticks(0, 97, 8, t, 64, &step);
	tap_ok(n == 6 && near(step, 20) && t[0] == 0 && near(t[5], 100),
	       "ticks over [0, 97]: 0..100 by 20 (got %zu, step %g)", n, step);
	n = nd_svg_nice_ticks(0.13, 0.87, 6, t, 64, &step);
	tap_ok(n == 6 && near(step, 0.2) && t[0] == 0 && near(t[5], 1.0),
	       "ticks over [0.13, 0.87]: 0..1 by 0.2 (got %zu, step %g)", n,
	       step);
	n = nd_svg_nice_ticks(-3, 7, 6, t, 64, &step);
	tap_ok(n == 4 && near(step, 5) && near(t[0], -5) && near(t[3], 10),
	       "ticks over [-3, 7] with at most 6: -5..10 by 5 (got %zu)", n);
	n = nd_svg_nice_ticks(5, 5, 8, t, 64, &step);
	tap_ok(t[0] == 0 && near(t[n - 1], 10), "equal ends 5, 5 widen to "
	       "[0, 10]");
	n = nd_svg_nice_ticks(0, 0, 8, t, 64, &step);
	tap_ok(t[0] == 0 && near(t[n - 1], 1), "all-zero data widens to [0, 1]");
	n = nd_svg_nice_ticks(1234, 98765, 8, t, 64, &step);
	tap_ok(n <= 8 && t[0] <= 1234 && t[n - 1] >= 98765 &&
	       (near(step, 20000) || near(step, 10000)),
	       "ticks over [1234, 98765] cover it with a nice step (%g)", step);
	for (size_t i = 0; i < n; i++)
		if (!near(fmod(t[i], step), 0))
			tap_ok(0, "tick %g is a multiple of the step", t[i]);
}

static void test_log2_ticks(void)
{
	double t[64];
	size_t n;

	n = nd_svg_log2_ticks(1, 16, 8, t, 64);
	tap_ok(n == 5 && t[0] == 1 && t[4] == 16, "log2 ticks 1..16: 1,2,4,8,16");
	n = nd_svg_log2_ticks(1, 256, 5, t, 64);
	tap_ok(n == 5 && t[1] == 4 && t[4] == 256,
	       "log2 ticks 1..256 thinned to 1,4,16,64,256 (got %zu)", n);
	n = nd_svg_log2_ticks(3, 12, 8, t, 64);
	tap_ok(n == 4 && t[0] == 2 && t[3] == 16,
	       "log2 ticks round out to powers of two: 2..16");
	n = nd_svg_log2_ticks(4, 4, 8, t, 64);
	tap_ok(n == 3 && t[0] == 2 && t[2] == 8, "one point 4 gets 2, 4, 8");
}

static void test_log10_ticks(void)
{
	double t[64];
	size_t n;

	n = nd_svg_log10_ticks(3, 480, 12, t, 64);
	tap_ok(n == 8 && near(t[0], 2) && near(t[1], 5) && near(t[2], 10) &&
	       near(t[7], 500),
	       "log10 ticks 3..480: 2, 5, 10, 20, 50, 100, 200, 500 (got %zu, %g..%g)",
	       n, t[0], n ? t[n - 1] : 0);
	n = nd_svg_log10_ticks(0.5, 2000, 12, t, 64);
	tap_ok(n <= 12 && t[0] <= 0.5 && t[n - 1] >= 2000,
	       "log10 ticks 0.5..2000 cover the range in at most 12 (got %zu)", n);
	n = nd_svg_log10_ticks(1e-3, 1e6, 6, t, 64);
	tap_ok(n <= 6 && near(t[0], 1e-3) && t[n - 1] >= 1e6,
	       "nine decades thinned to powers of ten, at most 6 (got %zu)", n);
	n = nd_svg_log10_ticks(7, 7, 12, t, 64);
	tap_ok(n >= 2 && t[0] <= 7 && t[n - 1] >= 7, "one value 7 gets ticks around it");
}

static void test_format(void)
{
	char buf[64];

	tap_ok(strcmp(nd_svg_format_tick(0.2, 0.2, buf, 64), "0.2") == 0,
	       "tick 0.2 by 0.2 prints 0.2");
	tap_ok(strcmp(nd_svg_format_tick(15000, 5000, buf, 64), "15000") == 0,
	       "tick 15000 prints with no separator");
	tap_ok(strcmp(nd_svg_format_tick(-0.0, 0.05, buf, 64), "0.00") == 0,
	       "negative zero prints as 0.00");
	tap_ok(strcmp(nd_svg_format_tick(-2.5, 0.5, buf, 64), "-2.5") == 0,
	       "tick -2.5 by 0.5 prints -2.5");
}

/* ---------------------------------------------------------------- XML */

/* Structural well-formedness: one root element, every start tag closed
 * in order, attribute values quoted, no '<' or '&' outside markup and
 * entities.  Enough to catch what this writer could get wrong. */
static bool xml_balanced(const char *s)
{
	char stack[64][32];
	int depth = 0, roots = 0;

	while (*s) {
		if (*s == '&') {
			if (strncmp(s, "&amp;", 5) && strncmp(s, "&lt;", 4) &&
			    strncmp(s, "&gt;", 4) && strncmp(s, "&quot;", 6))
				return false;
			s++;
			continue;
		}
		if (*s != '<') {
			s++;
			continue;
		}
		if (s[1] == '?') {
			s = strstr(s, "?>");
			if (!s)
				return false;
			s += 2;
			continue;
		}
		const char *end = strchr(s, '>');
		size_t quotes = 0;

		if (!end)
			return false;
		for (const char *q = s; q < end; q++) {
			quotes += *q == '"';
			if (q > s && *q == '<')
				return false;
		}
		if (quotes % 2)
			return false;
		if (s[1] == '/') {
			size_t len = strcspn(s + 2, " >");

			if (depth == 0 || strlen(stack[depth - 1]) != len ||
			    strncmp(stack[depth - 1], s + 2, len))
				return false;
			depth--;
		} else if (end[-1] != '/') {
			size_t len = strcspn(s + 1, " />");

			if (depth == 64 || len >= 32)
				return false;
			if (depth == 0)
				roots++;
			memcpy(stack[depth], s + 1, len);
			stack[depth++][len] = '\0';
		} else if (depth == 0) {
			roots++;
		}
		s = end + 1;
	}
	return depth == 0 && roots == 1;
}

static bool xmllint_ok(const char *doc, size_t len)
{
	char path[] = "/tmp/test-nd-svg-XXXXXX";
	char cmd[128];
	int fd = mkstemp(path);
	bool ok;

	if (fd < 0)
		return false;
	ok = write(fd, doc, len) == (ssize_t)len;
	close(fd);
	snprintf(cmd, sizeof(cmd), "xmllint --noout %s", path);
	ok = ok && system(cmd) == 0;
	unlink(path);
	return ok;
}

static bool have_xmllint(void)
{
	return system("command -v xmllint >/dev/null 2>&1") == 0;
}

/* Writes c into a malloc'ed string; *len gets its length. */
static char *render(const struct nd_svg_chart *c, size_t *len)
{
	char *buf = NULL;
	FILE *fp = open_memstream(&buf, len);

	if (!fp)
		return NULL;
	if (nd_svg_write(c, fp) != 0) {
		fclose(fp);
		free(buf);
		return NULL;
	}
	fclose(fp);
	return buf;
}

static void check_chart(const struct nd_svg_chart *c, const char *what)
{
	size_t len, len2;
	char *a = render(c, &len), *b = render(c, &len2);

	tap_ok(a && strncmp(a, "<?xml version=\"1.0\"", 19) == 0 &&
	       strstr(a, "<svg xmlns=\"http://www.w3.org/2000/svg\" "
			 "version=\"1.1\"") &&
	       len > 7 && strcmp(a + len - 7, "</svg>\n") == 0,
	       "%s: SVG 1.1 document from prolog to </svg>", what);
	tap_ok(a && xml_balanced(a), "%s: tags balanced, one root", what);
	tap_ok(a && b && len == len2 && memcmp(a, b, len) == 0,
	       "%s: same bytes when written twice", what);
	if (a && have_xmllint())
		tap_ok(xmllint_ok(a, len), "%s: xmllint --noout accepts it",
		       what);
	free(a);
	free(b);
}

static void test_line_log2(void)
{
	struct nd_svg_params p = nd_svg_default_params();
	double x[] = {1, 2, 4, 8, 16}, y[] = {52.5, 101, 190.25, 310, 342};
	double bad[] = {0, 1};
	struct nd_svg_chart *c;
	size_t len;
	char *doc;

	p.title = "Throughput <tok/s> & more";
	p.x_label = "batch size";
	p.y_label = "output tokens/s";
	p.x_scale = ND_SVG_SCALE_LOG2;
	c = nd_svg_new(&p);
	tap_ok(nd_svg_add_series(c, "measured", x, y, 5) == 0,
	       "line: series added");
	tap_ok(nd_svg_add_series(c, "bad", bad, y, 2) == -1,
	       "line: x <= 0 refused on a log2 axis");
	check_chart(c, "line chart, log2 x");
	doc = render(c, &len);
	tap_ok(doc && strstr(doc, "Throughput &lt;tok/s&gt; &amp; more"),
	       "line: title escaped");
	tap_ok(doc && strstr(doc, ">16</text>") && strstr(doc, ">1</text>") &&
	       !strstr(doc, ">32</text>"),
	       "line: log2 x ticks from 1 to 16 exactly");
	tap_ok(doc && strstr(doc, ">350</text>") && strstr(doc, ">0</text>"),
	       "line: y ticks from 0 to 350");
	tap_ok(doc && strstr(doc, "<circle") && strstr(doc, ">measured</text>"),
	       "line: point markers and legend entry");
	free(doc);
	nd_svg_free(c);
}

static void test_cdf(void)
{
	struct nd_svg_params p = nd_svg_default_params();
	double *v = malloc(1000 * sizeof(double));
	double px[] = {95.0, 40.0, 60.0}, py[] = {0.99, 0.5, 0.9};
	struct nd_svg_chart *c;
	size_t len, steps = 0;
	char *doc;

	for (int i = 0; i < 1000; i++)
		v[i] = (double)((i * 7919) % 1000) / 10.0;   /* 0 .. 99.9 */
	p.kind = ND_SVG_CDF;
	p.x_label = "TTFT (ms)";
	c = nd_svg_new(&p);
	tap_ok(nd_svg_add_samples(c, "batch 1", v, 1000) == 0,
	       "cdf: samples added");
	tap_ok(nd_svg_add_series(c, "batch 2", px, py, 3) == 0,
	       "cdf: percentile points added");
	check_chart(c, "CDF chart");
	doc = render(c, &len);
	for (const char *s = doc; s && (s = strstr(s, " H")); s++)
		steps++;
	tap_ok(steps > 0 && steps <= 400,
	       "cdf: 1000 samples drawn as at most 400 steps (%zu)", steps);
	tap_ok(doc && strstr(doc, ">1.0</text>") && strstr(doc, ">0.0</text>"),
	       "cdf: y axis from 0.0 to 1.0");
	free(doc);
	nd_svg_free(c);
	free(v);
}

/* Styled series: a reference line leaves the axes to the data and is
 * clipped; whiskers widen the y axis; points-only series have no path. */
static void test_styles(void)
{
	struct nd_svg_params p = nd_svg_default_params();
	double x[] = {1, 2, 4}, y[] = {100, 150, 160}, ideal[] = {100, 200, 400};
	double lo[] = {90, 140, 150}, hi[] = {110, 170, 245}, fx[] = {8}, fy[] = {170};
	struct nd_svg_style whiskers = { .lo = lo, .hi = hi };
	struct nd_svg_style points = { .points_only = true };
	struct nd_svg_style guide = { .reference = true };
	struct nd_svg_chart *c;
	size_t len, paths = 0;
	char *doc;

	p.x_scale = ND_SVG_SCALE_LOG2;
	c = nd_svg_new(&p);
	tap_ok(nd_svg_add_series_styled(c, "median", x, y, 3, &whiskers) == 0 &&
	       nd_svg_add_series_styled(c, "not ranked", fx, fy, 1, &points) == 0 &&
	       nd_svg_add_series_styled(c, "linear", x, ideal, 3, &guide) == 0,
	       "styled series added");
	check_chart(c, "styled line chart");
	doc = render(c, &len);
	tap_ok(doc && strstr(doc, ">250</text>") && !strstr(doc, ">300</text>") &&
	       !strstr(doc, ">400</text>"),
	       "the y axis ends at the data and whiskers (250), not the reference line (400)");
	tap_ok(doc && strstr(doc, "clip-path=\"url(#plot)\"") &&
	       strstr(doc, "<clipPath id=\"plot\">"),
	       "the reference line is clipped to the plot area");
	for (const char *s = doc; s && (s = strstr(s, "<path")); s++)
		paths++;
	tap_ok(paths == 2, "two paths: the median line and the reference, none for "
	       "the points-only series (%zu)", paths);
	tap_ok(doc && strstr(doc, "fill=\"#ffffff\" stroke="), "hollow markers");
	free(doc);
	nd_svg_free(c);

	p = nd_svg_default_params();
	p.kind = ND_SVG_CDF;
	p.x_scale = ND_SVG_SCALE_LOG10;
	c = nd_svg_new(&p);
	{
		double v[] = {0, 3, 12, 40, 480};

		tap_ok(nd_svg_add_samples(c, "batch 1", v, 5) == 0,
		       "log10 CDF: samples with a 0 accepted");
	}
	check_chart(c, "CDF chart, log10 x");
	doc = render(c, &len);
	tap_ok(doc && strstr(doc, ">2</text>") && strstr(doc, ">500</text>") &&
	       !strstr(doc, ">0</text>\n<text"),
	       "log10 CDF: x ticks from 2 to 500");
	free(doc);
	nd_svg_free(c);
}

static void test_bar_and_empty(void)
{
	struct nd_svg_params p = nd_svg_default_params();
	double x[] = {1, 2, 4}, a[] = {30, 32, 35}, b[] = {40, 40, 41};
	struct nd_svg_chart *c;
	size_t len, rects = 0;
	char *doc;

	p.kind = ND_SVG_BAR;
	c = nd_svg_new(&p);
	nd_svg_add_series(c, "LLM time", x, a, 3);
	nd_svg_add_series(c, "env time", x, b, 3);
	check_chart(c, "bar chart");
	doc = render(c, &len);
	for (const char *s = doc; s && (s = strstr(s, "<rect")); s++)
		rects++;
	tap_ok(rects == 1 + 1 + 6 + 1 + 2,
	       "bar: background, plot clip, 6 bars, frame, 2 legend keys (%zu)", rects);
	free(doc);
	nd_svg_free(c);

	p = nd_svg_default_params();
	c = nd_svg_new(&p);
	check_chart(c, "empty line chart");
	nd_svg_free(c);
}

int main(void)
{
	test_nice_ticks();
	test_log2_ticks();
	test_log10_ticks();
	test_format();
	test_line_log2();
	test_cdf();
	test_bar_and_empty();
	test_styles();
	return tap_done();
}
