/*
 * nd_svg.h: a minimal chart writer producing standalone SVG 1.1.
 *
 * Three kinds of chart, enough for a benchmark report:
 *   ND_SVG_LINE  polylines with point markers (x numeric, linear, log2 or
 *                log10)
 *   ND_SVG_BAR   grouped bars; x values are categories drawn in the order
 *                of their first appearance, labelled with their value
 *   ND_SVG_CDF   step curves of cumulative fraction (y fixed to [0, 1]);
 *                series come from raw samples or from (value, fraction)
 *                points such as percentiles
 * Axes carry ticks at nice numbers (1, 2, 5 times a power of ten; powers
 * of two on a log2 axis), labels and a legend.  The output depends only on
 * the data: no timestamps, no random ids, coordinates printed with a fixed
 * number of decimals, so equal input gives equal bytes.
 */
#ifndef TRAJBENCH_ND_SVG_H
#define TRAJBENCH_ND_SVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum nd_svg_kind {
	ND_SVG_LINE,
	ND_SVG_BAR,
	ND_SVG_CDF,
};

enum nd_svg_scale {
	ND_SVG_SCALE_LINEAR,
	ND_SVG_SCALE_LOG2,   /* x only; every x must be > 0 */
	ND_SVG_SCALE_LOG10,  /* x only (latencies); x <= 0 is drawn at the
			      * axis's left end, the range is the positive x */
};

struct nd_svg_params {
	enum nd_svg_kind kind;
	const char *title;        /* NULL: none */
	const char *x_label;      /* NULL: none */
	const char *y_label;      /* NULL: none */
	enum nd_svg_scale x_scale;
	bool y_from_zero;         /* y axis includes 0 (LINE; BAR always does) */
	int width, height;        /* pixels of the whole picture */
};

/* LINE, no labels, linear x, y from zero, 720 x 420. */
struct nd_svg_params nd_svg_default_params(void);

struct nd_svg_chart;

/* A new empty chart; params are copied (the strings too).  NULL when out
 * of memory. */
struct nd_svg_chart *nd_svg_new(const struct nd_svg_params *p);

/* Adds a series of n points (x[i], y[i]); the arrays are copied.  For a CDF
 * chart y is the cumulative fraction in [0, 1] and the points are sorted by
 * x.  Non-finite points are dropped.  Returns 0, or -1 when out of memory,
 * a log2 x value is <= 0, or the chart already holds ND_SVG_MAX_SERIES. */
int nd_svg_add_series(struct nd_svg_chart *c, const char *name,
		      const double *x, const double *y, size_t n);

/* How a series is drawn beyond its colour (nd_svg_add_series_styled). */
struct nd_svg_style {
	bool reference;      /* a guide line (dashed, grey): it does not widen
			      * the axes and is clipped to the plot area */
	bool points_only;    /* markers, hollow, no line between them */
	const double *lo, *hi;   /* (n) or NULL: a whisker from lo to hi at
				  * each point (a spread of repeats) */
};

/* nd_svg_add_series with a style (NULL: the plain one). */
int nd_svg_add_series_styled(struct nd_svg_chart *c, const char *name,
			     const double *x, const double *y, size_t n,
			     const struct nd_svg_style *st);

/* CDF charts: adds the empirical distribution of n raw samples (copied and
 * sorted).  Returns 0 or -1 as above. */
int nd_svg_add_samples(struct nd_svg_chart *c, const char *name,
		       const double *v, size_t n);

/* Writes the whole SVG document to fp.  Returns 0, or -1 on a write error
 * (errno set by stdio). */
int nd_svg_write(const struct nd_svg_chart *c, FILE *fp);

void nd_svg_free(struct nd_svg_chart *c);

#define ND_SVG_MAX_SERIES 16

/* Nice linear ticks covering [lo, hi] with at most max_ticks marks: the
 * step is 1, 2 or 5 times a power of ten, the first tick is the largest
 * multiple of the step <= lo and the last the smallest >= hi.  Writes up
 * to cap ticks into out and returns how many; *step gets the step.
 * lo == hi is widened first: to [0, 2 hi] (hi > 0), [2 lo, 0] (lo < 0)
 * or [0, 1] (both zero). */
size_t nd_svg_nice_ticks(double lo, double hi, int max_ticks,
			 double *out, size_t cap, double *step);

/* Ticks for a log2 axis covering [lo, hi] (both > 0): the powers of two
 * from the largest <= lo to the smallest >= hi, thinned to every 2nd, 4th,
 * ... power when there would be more than max_ticks.  Returns the count. */
size_t nd_svg_log2_ticks(double lo, double hi, int max_ticks,
			 double *out, size_t cap);

/* Ticks for a log10 axis covering [lo, hi] (both > 0): 1, 2 and 5 times
 * the powers of ten from the largest <= lo to the smallest >= hi, thinned
 * to the powers alone, then to every 2nd, 3rd, ... power when there would
 * be more than max_ticks.  Returns the count. */
size_t nd_svg_log10_ticks(double lo, double hi, int max_ticks,
			  double *out, size_t cap);

/* Formats a tick value for a label: with the decimals the step needs
 * (none for steps >= 1), "-0" printed as "0".  Returns buf. */
char *nd_svg_format_tick(double v, double step, char *buf, size_t len);

#endif
