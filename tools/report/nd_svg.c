/*
 * nd_svg.c: line, bar and CDF charts as standalone SVG 1.1.
 *
 * Why our own: the report must be reproducible from the records alone on a
 * machine with nothing but a C compiler, and a chart is a handful of
 * rectangles, polylines and text.  The writer takes the data, picks axis
 * ranges from nice ticks, and prints every coordinate with two decimals so
 * that the bytes depend on the data only (tests compare them).
 *
 * What it refuses to do: no styling options beyond the kind of chart and
 * the labels, no fonts embedded, no interactivity, no scripts.  Large raw
 * sample sets for a CDF are reduced to ND_SVG_CDF_POINTS quantiles so the
 * file stays small whatever the number of requests.
 */
#include "tools/report/nd_svg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ND_SVG_CDF_POINTS 400
#define MAX_TICKS 8
#define MAX_CATEGORIES 64

struct series {
	char *name;
	double *x, *y;     /* (n) each */
	double *lo, *hi;   /* (n) each, or NULL: whiskers */
	size_t n;
	bool step;         /* CDF from raw samples: draw as a staircase */
	bool reference;    /* guide line: no say in the axes, clipped */
	bool points_only;  /* hollow markers, no line */
};

struct nd_svg_chart {
	struct nd_svg_params p;
	char *title, *x_label, *y_label;
	struct series s[ND_SVG_MAX_SERIES];
	size_t n_series;
};

/* Where the data lands in the picture. */
struct frame {
	double px0, px1, py0, py1;     /* plot area, pixels; py0 is the top */
	double xlo, xhi, ylo, yhi;     /* data range of the axes */
	double xt[64], yt[64];         /* tick values */
	size_t nxt, nyt;
	double xstep, ystep;
	double cat[MAX_CATEGORIES];    /* BAR: category values in order */
	size_t ncat;
};

static const char *const palette[] = {
	"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
	"#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
};
#define N_PALETTE (sizeof(palette) / sizeof(palette[0]))

struct nd_svg_params nd_svg_default_params(void)
{
	struct nd_svg_params p = {
		.kind = ND_SVG_LINE,
		.x_scale = ND_SVG_SCALE_LINEAR,
		.y_from_zero = true,
		.width = 720,
		.height = 420,
	};
	return p;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct nd_svg_chart *nd_svg_new(const struct nd_svg_params *p)
{
	struct nd_svg_chart *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->p = *p;
	if (c->p.width < 200)
		c->p.width = 200;
	if (c->p.height < 150)
		c->p.height = 150;
	c->title = dup_or_null(p->title);
	c->x_label = dup_or_null(p->x_label);
	c->y_label = dup_or_null(p->y_label);
	c->p.title = c->p.x_label = c->p.y_label = NULL;
	return c;
}

void nd_svg_free(struct nd_svg_chart *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_series; i++) {
		free(c->s[i].name);
		free(c->s[i].x);
		free(c->s[i].y);
		free(c->s[i].lo);
		free(c->s[i].hi);
	}
	free(c->title);
	free(c->x_label);
	free(c->y_label);
	free(c);
}

/* Reserves the next series slot with room for n points. */
static struct series *new_series(struct nd_svg_chart *c, const char *name,
				 size_t n)
{
	struct series *s;

	if (c->n_series >= ND_SVG_MAX_SERIES)
		return NULL;
	s = &c->s[c->n_series];
	memset(s, 0, sizeof(*s));
	s->name = strdup(name ? name : "");
	s->x = malloc((n ? n : 1) * sizeof(double));
	s->y = malloc((n ? n : 1) * sizeof(double));
	if (!s->name || !s->x || !s->y) {
		free(s->name);
		free(s->x);
		free(s->y);
		return NULL;
	}
	c->n_series++;
	return s;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts points by x (CDF input may come in any order). */
static void sort_points(struct series *s)
{
	for (size_t i = 1; i < s->n; i++) {
		double x = s->x[i], y = s->y[i];
		size_t j = i;

		for (; j > 0 && s->x[j - 1] > x; j--) {
			s->x[j] = s->x[j - 1];
			s->y[j] = s->y[j - 1];
		}
		s->x[j] = x;
		s->y[j] = y;
	}
}

int nd_svg_add_series_styled(struct nd_svg_chart *c, const char *name,
			     const double *x, const double *y, size_t n,
			     const struct nd_svg_style *st)
{
	bool whiskers = st && st->lo && st->hi;
	struct series *s;

	for (size_t i = 0; i < n; i++)
		if (c->p.kind != ND_SVG_BAR && c->p.x_scale == ND_SVG_SCALE_LOG2 &&
		    isfinite(x[i]) && x[i] <= 0)
			return -1;
	s = new_series(c, name, n);
	if (!s)
		return -1;
	if (st) {
		s->reference = st->reference;
		s->points_only = st->points_only;
	}
	if (whiskers) {
		s->lo = malloc((n ? n : 1) * sizeof(double));
		s->hi = malloc((n ? n : 1) * sizeof(double));
		if (!s->lo || !s->hi)
			return -1;   /* freed with the chart */
	}
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(x[i]) || !isfinite(y[i]))
			continue;
		s->x[s->n] = x[i];
		s->y[s->n] = y[i];
		if (whiskers) {
			s->lo[s->n] = isfinite(st->lo[i]) ? st->lo[i] : y[i];
			s->hi[s->n] = isfinite(st->hi[i]) ? st->hi[i] : y[i];
		}
		s->n++;
	}
	if (c->p.kind == ND_SVG_CDF)
		sort_points(s);
	return 0;
}

int nd_svg_add_series(struct nd_svg_chart *c, const char *name,
		      const double *x, const double *y, size_t n)
{
	return nd_svg_add_series_styled(c, name, x, y, n, NULL);
}

int nd_svg_add_samples(struct nd_svg_chart *c, const char *name,
		       const double *v, size_t n)
{
	size_t m = 0, npts;
	double *sorted = malloc((n ? n : 1) * sizeof(double));
	struct series *s;

	if (!sorted)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (isfinite(v[i]))
			sorted[m++] = v[i];
	qsort(sorted, m, sizeof(double), cmp_double);
	npts = m > ND_SVG_CDF_POINTS ? ND_SVG_CDF_POINTS : m;
	s = new_series(c, name, npts);
	if (!s) {
		free(sorted);
		return -1;
	}
	s->step = true;
	/* Point k is the sample at rank ceil((k+1) m / npts): the whole
	 * staircase when m <= npts, evenly spaced quantiles otherwise. */
	for (size_t k = 0; k < npts; k++) {
		size_t rank = ((k + 1) * m + npts - 1) / npts;

		s->x[k] = sorted[rank - 1];
		s->y[k] = (double)rank / (double)m;
	}
	s->n = npts;
	free(sorted);
	return 0;
}

/* ---------------------------------------------------------------- ticks */

static double nice_step(double rough)
{
	double mag = pow(10.0, floor(log10(rough)));
	double norm = rough / mag;

	if (norm <= 1.0 + 1e-9)
		return mag;
	if (norm <= 2.0 + 1e-9)
		return 2.0 * mag;
	if (norm <= 5.0 + 1e-9)
		return 5.0 * mag;
	return 10.0 * mag;
}

size_t nd_svg_nice_ticks(double lo, double hi, int max_ticks,
			 double *out, size_t cap, double *step)
{
	double st, first, last;
	size_t count;

	if (max_ticks < 2)
		max_ticks = 2;
	if (!(hi > lo)) {
		if (hi > 0)
			lo = 0, hi = 2 * hi;
		else if (lo < 0)
			hi = 0, lo = 2 * lo;
		else
			lo = 0, hi = 1;
	}
	st = nice_step((hi - lo) / (max_ticks - 1));
	for (;;) {
		first = floor(lo / st + 1e-9) * st;
		last = ceil(hi / st - 1e-9) * st;
		count = (size_t)llround((last - first) / st) + 1;
		if (count <= (size_t)max_ticks)
			break;
		st = nice_step(st * 1.5);
	}
	for (size_t i = 0; i < count && i < cap; i++) {
		double v = first + (double)i * st;

		out[i] = fabs(v) < st * 1e-9 ? 0.0 : v;
	}
	if (step)
		*step = st;
	return count < cap ? count : cap;
}

size_t nd_svg_log2_ticks(double lo, double hi, int max_ticks,
			 double *out, size_t cap)
{
	long e_lo = lround(floor(log2(lo) + 1e-9));
	long e_hi = lround(ceil(log2(hi) - 1e-9));
	long stride = 1, n;

	if (max_ticks < 2)
		max_ticks = 2;
	if (e_lo >= e_hi) {
		e_lo--;
		e_hi = e_lo + 2;
	}
	while ((e_hi - e_lo + stride - 1) / stride + 1 > max_ticks)
		stride *= 2;
	n = (e_hi - e_lo + stride - 1) / stride + 1;
	for (long i = 0; i < n && (size_t)i < cap; i++)
		out[i] = ldexp(1.0, (int)(e_lo + i * stride));
	return (size_t)n < cap ? (size_t)n : cap;
}

size_t nd_svg_log10_ticks(double lo, double hi, int max_ticks,
			  double *out, size_t cap)
{
	static const double mult[] = {1, 2, 5};
	long e_lo = lround(floor(log10(lo) + 1e-9));
	long e_hi = lround(ceil(log10(hi) - 1e-9));
	double cand[3 * 40];
	size_t nc = 0, first = 0, last, n = 0;
	long stride = 1;

	if (max_ticks < 2)
		max_ticks = 2;
	if (e_lo >= e_hi)
		e_hi = e_lo + 1;
	if (e_hi - e_lo > 36)
		e_lo = e_hi - 36;
	for (long e = e_lo; e <= e_hi; e++)
		for (int m = 0; m < 3 && (e < e_hi || m == 0); m++)
			cand[nc++] = mult[m] * pow(10.0, (double)e);
	/* from the largest tick <= lo to the smallest >= hi */
	for (size_t k = 0; k < nc; k++)
		if (cand[k] <= lo * (1 + 1e-9))
			first = k;
	last = nc - 1;
	for (size_t k = nc; k-- > first;)
		if (cand[k] >= hi * (1 - 1e-9))
			last = k;
	if (last - first + 1 <= (size_t)max_ticks) {
		for (size_t k = first; k <= last && n < cap; k++)
			out[n++] = cand[k];
		return n;
	}
	while ((e_hi - e_lo + stride - 1) / stride + 1 > max_ticks)
		stride++;
	for (long e = e_lo; n < cap; e += stride) {
		out[n++] = pow(10.0, (double)e);
		if (e >= e_hi)
			break;
	}
	return n;
}

char *nd_svg_format_tick(double v, double step, char *buf, size_t len)
{
	int decimals = 0;

	if (step > 0 && step < 1)
		decimals = (int)ceil(-log10(step) - 1e-9);
	if (decimals > 9)
		decimals = 9;
	snprintf(buf, len, "%.*f", decimals, v);
	if (strspn(buf, "-0.") == strlen(buf) && buf[0] == '-')
		memmove(buf, buf + 1, strlen(buf));
	return buf;
}

/* Log2 axis labels: whole numbers from 1 up, shortest form below. */
static char *format_pow2(double v, char *buf, size_t len)
{
	if (v >= 1)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%g", v);
	return buf;
}

/* A bar category label: an integer when integral, else 4 digits. */
static char *format_category(double v, char *buf, size_t len)
{
	if (v == floor(v) && fabs(v) < 1e15)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.4g", v);
	return buf;
}

/* ---------------------------------------------------------------- layout */

static bool log_x(const struct nd_svg_chart *c)
{
	return c->p.x_scale == ND_SVG_SCALE_LOG2 || c->p.x_scale == ND_SVG_SCALE_LOG10;
}

/* The range of the data, whiskers included; reference series have no say,
 * and on a log axis neither has x <= 0. */
static void data_range(const struct nd_svg_chart *c, double *xlo,
		       double *xhi, double *ylo, double *yhi)
{
	*xlo = *ylo = INFINITY;
	*xhi = *yhi = -INFINITY;
	for (size_t i = 0; i < c->n_series; i++) {
		const struct series *s = &c->s[i];

		for (size_t k = 0; k < s->n && !s->reference; k++) {
			if (!log_x(c) || s->x[k] > 0) {
				*xlo = fmin(*xlo, s->x[k]);
				*xhi = fmax(*xhi, s->x[k]);
			}
			*ylo = fmin(*ylo, s->lo ? fmin(s->y[k], s->lo[k]) : s->y[k]);
			*yhi = fmax(*yhi, s->hi ? fmax(s->y[k], s->hi[k]) : s->y[k]);
		}
	}
	if (*xlo > *xhi) {   /* no points at all */
		*xlo = log_x(c) ? 1 : 0;
		*xhi = log_x(c) ? 2 : 1;
	}
	if (*ylo > *yhi) {
		*ylo = 0;
		*yhi = 1;
	}
}

static void collect_categories(const struct nd_svg_chart *c, struct frame *f)
{
	f->ncat = 0;
	for (size_t i = 0; i < c->n_series; i++)
		for (size_t k = 0; k < c->s[i].n; k++) {
			size_t j = 0;

			while (j < f->ncat && f->cat[j] != c->s[i].x[k])
				j++;
			if (j == f->ncat && f->ncat < MAX_CATEGORIES)
				f->cat[f->ncat++] = c->s[i].x[k];
		}
}

static void layout(const struct nd_svg_chart *c, struct frame *f)
{
	double xlo, xhi, ylo, yhi;

	memset(f, 0, sizeof(*f));
	f->px0 = 78;
	f->px1 = c->p.width - 170;
	f->py0 = 44;
	f->py1 = c->p.height - 58;
	data_range(c, &xlo, &xhi, &ylo, &yhi);
	if (c->p.kind == ND_SVG_CDF) {
		ylo = 0;
		yhi = 1;
	} else if (c->p.kind == ND_SVG_BAR || c->p.y_from_zero) {
		ylo = fmin(ylo, 0);
		yhi = fmax(yhi, 0);
	}
	f->nyt = nd_svg_nice_ticks(ylo, yhi, MAX_TICKS, f->yt, 64, &f->ystep);
	f->ylo = f->yt[0];
	f->yhi = f->yt[f->nyt - 1];
	if (c->p.kind == ND_SVG_BAR) {
		collect_categories(c, f);
		return;
	}
	if (c->p.x_scale == ND_SVG_SCALE_LOG2)
		f->nxt = nd_svg_log2_ticks(xlo, xhi, MAX_TICKS + 4, f->xt, 64);
	else if (c->p.x_scale == ND_SVG_SCALE_LOG10)
		f->nxt = nd_svg_log10_ticks(xlo, xhi, MAX_TICKS + 4, f->xt, 64);
	else
		f->nxt = nd_svg_nice_ticks(xlo, xhi, MAX_TICKS, f->xt, 64,
					   &f->xstep);
	f->xlo = f->xt[0];
	f->xhi = f->xt[f->nxt - 1];
}

static double map_x(const struct nd_svg_chart *c, const struct frame *f,
		    double x)
{
	double t;

	if (log_x(c) && !(x > f->xlo))
		t = 0;   /* at or left of the axis, x <= 0 included */
	else if (log_x(c))
		t = (log2(x) - log2(f->xlo)) / (log2(f->xhi) - log2(f->xlo));
	else
		t = (x - f->xlo) / (f->xhi - f->xlo);
	return f->px0 + t * (f->px1 - f->px0);
}

static double map_y(const struct frame *f, double y)
{
	double t = (y - f->ylo) / (f->yhi - f->ylo);

	return f->py1 - t * (f->py1 - f->py0);
}

/* ---------------------------------------------------------------- output */

/* Writes s as XML character data: markup characters escaped, control
 * characters (not allowed in XML 1.0) replaced by '?'. */
static void put_text(FILE *fp, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '&')
			fputs("&amp;", fp);
		else if (ch == '<')
			fputs("&lt;", fp);
		else if (ch == '>')
			fputs("&gt;", fp);
		else if (ch == '"')
			fputs("&quot;", fp);
		else if (ch < 0x20 && ch != '\t')
			fputc('?', fp);
		else
			fputc(ch, fp);
	}
}

static void put_label(FILE *fp, double x, double y, const char *anchor,
		      const char *extra, const char *text)
{
	fprintf(fp, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"%s\"%s>",
		x, y, anchor, extra ? extra : "");
	put_text(fp, text);
	fputs("</text>\n", fp);
}

static void write_head(const struct nd_svg_chart *c, FILE *fp)
{
	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n",
	      fp);
	fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
		"width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
		"font-family=\"sans-serif\" font-size=\"12\">\n",
		c->p.width, c->p.height, c->p.width, c->p.height);
	if (c->title) {
		fputs("<title>", fp);
		put_text(fp, c->title);
		fputs("</title>\n", fp);
	}
	fprintf(fp, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" "
		"fill=\"#ffffff\"/>\n", c->p.width, c->p.height);
	if (c->title)
		put_label(fp, c->p.width / 2.0, 24, "middle",
			  " font-size=\"15\" font-weight=\"bold\"", c->title);
}

static void write_y_axis(const struct nd_svg_chart *c, const struct frame *f,
			 FILE *fp)
{
	char buf[64];

	fputs("<g stroke=\"#dddddd\" stroke-width=\"1\">\n", fp);
	for (size_t i = 0; i < f->nyt; i++) {
		double y = map_y(f, f->yt[i]);

		fprintf(fp, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" "
			"y2=\"%.2f\"/>\n", f->px0, y, f->px1, y);
	}
	fputs("</g>\n", fp);
	for (size_t i = 0; i < f->nyt; i++)
		put_label(fp, f->px0 - 6, map_y(f, f->yt[i]) + 4, "end", NULL,
			  nd_svg_format_tick(f->yt[i], f->ystep, buf,
					     sizeof(buf)));
	if (c->y_label) {
		double cy = (f->py0 + f->py1) / 2;

		snprintf(buf, sizeof(buf), " transform=\"rotate(-90 18 %.2f)\"",
			 cy);
		put_label(fp, 18, cy, "middle", buf, c->y_label);
	}
}

/* x position of bar category k's centre. */
static double cat_x(const struct frame *f, size_t k)
{
	double w = (f->px1 - f->px0) / (double)(f->ncat ? f->ncat : 1);

	return f->px0 + w * ((double)k + 0.5);
}

static void write_x_axis(const struct nd_svg_chart *c, const struct frame *f,
			 FILE *fp)
{
	char buf[64];
	size_t n = c->p.kind == ND_SVG_BAR ? f->ncat : f->nxt;

	fputs("<g stroke=\"#000000\" stroke-width=\"1\">\n", fp);
	for (size_t i = 0; i < n; i++) {
		double x = c->p.kind == ND_SVG_BAR ? cat_x(f, i)
						   : map_x(c, f, f->xt[i]);

		fprintf(fp, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" "
			"y2=\"%.2f\"/>\n", x, f->py1, x, f->py1 + 5);
	}
	fputs("</g>\n", fp);
	for (size_t i = 0; i < n; i++) {
		double x;

		if (c->p.kind == ND_SVG_BAR) {
			x = cat_x(f, i);
			format_category(f->cat[i], buf, sizeof(buf));
		} else if (log_x(c)) {
			x = map_x(c, f, f->xt[i]);
			format_pow2(f->xt[i], buf, sizeof(buf));
		} else {
			x = map_x(c, f, f->xt[i]);
			nd_svg_format_tick(f->xt[i], f->xstep, buf, sizeof(buf));
		}
		put_label(fp, x, f->py1 + 19, "middle", NULL, buf);
	}
	if (c->x_label)
		put_label(fp, (f->px0 + f->px1) / 2, c->p.height - 16, "middle",
			  NULL, c->x_label);
}

static void write_frame(const struct frame *f, FILE *fp)
{
	fprintf(fp, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
		"fill=\"none\" stroke=\"#000000\" stroke-width=\"1\"/>\n",
		f->px0, f->py0, f->px1 - f->px0, f->py1 - f->py0);
}

/* Reference lines are grey; the data series take the palette in turn. */
static const char *color_of(const struct nd_svg_chart *c, size_t i)
{
	size_t k = 0;

	if (c->s[i].reference)
		return "#888888";
	for (size_t j = 0; j < i; j++)
		k += !c->s[j].reference;
	return palette[k % N_PALETTE];
}

static void write_legend(const struct nd_svg_chart *c, const struct frame *f,
			 FILE *fp)
{
	for (size_t i = 0; i < c->n_series; i++) {
		double y = f->py0 + 8 + 20.0 * (double)i;

		fprintf(fp, "<rect x=\"%.2f\" y=\"%.2f\" width=\"14\" "
			"height=\"10\" fill=\"%s\"/>\n", f->px1 + 14, y - 5,
			color_of(c, i));
		put_label(fp, f->px1 + 34, y + 4, "start", NULL, c->s[i].name);
	}
}

static void write_bars(const struct nd_svg_chart *c, const struct frame *f,
		       FILE *fp)
{
	double group = (f->px1 - f->px0) / (double)(f->ncat ? f->ncat : 1);
	double bw = group * 0.8 / (double)(c->n_series ? c->n_series : 1);
	double y0 = map_y(f, 0);

	for (size_t i = 0; i < c->n_series; i++) {
		const struct series *s = &c->s[i];

		fprintf(fp, "<g fill=\"%s\">\n", palette[i % N_PALETTE]);
		for (size_t k = 0; k < s->n; k++) {
			size_t j = 0;
			double x, y;

			while (j < f->ncat && f->cat[j] != s->x[k])
				j++;
			if (j == f->ncat)
				continue;   /* beyond MAX_CATEGORIES */
			x = cat_x(f, j) - group * 0.4 + bw * (double)i;
			y = map_y(f, s->y[k]);
			fprintf(fp, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
				"height=\"%.2f\"/>\n", x, fmin(y, y0), bw,
				fabs(y0 - y));
		}
		fputs("</g>\n", fp);
	}
}

/* Whiskers from lo to hi at each point: the spread of repeats. */
static void write_whiskers(const struct nd_svg_chart *c, const struct frame *f,
			   const struct series *s, const char *color, FILE *fp)
{
	fprintf(fp, "<g stroke=\"%s\" stroke-width=\"1.5\">\n", color);
	for (size_t k = 0; k < s->n; k++) {
		double x = map_x(c, f, s->x[k]);
		double y0 = map_y(f, s->lo[k]), y1 = map_y(f, s->hi[k]);

		fprintf(fp, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n",
			x, y0, x, y1);
		fprintf(fp, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n",
			x - 4, y0, x + 4, y0);
		fprintf(fp, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n",
			x - 4, y1, x + 4, y1);
	}
	fputs("</g>\n", fp);
}

/* Hollow markers alone: points that are not a curve. */
static void write_points(const struct nd_svg_chart *c, const struct frame *f,
			 const struct series *s, const char *color, FILE *fp)
{
	fprintf(fp, "<g fill=\"#ffffff\" stroke=\"%s\" stroke-width=\"2\">\n", color);
	for (size_t k = 0; k < s->n; k++)
		fprintf(fp, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"4\"/>\n",
			map_x(c, f, s->x[k]), map_y(f, s->y[k]));
	fputs("</g>\n", fp);
}

static void write_path(const struct nd_svg_chart *c, const struct frame *f,
		       const struct series *s, size_t i, FILE *fp)
{
	const char *color = color_of(c, i);
	const char *dash = s->reference ? " stroke-dasharray=\"6 4\" clip-path=\"url(#plot)\""
			 : i >= N_PALETTE ? " stroke-dasharray=\"6 3\"" : "";

	if (s->n == 0)
		return;
	if (s->lo)
		write_whiskers(c, f, s, color, fp);
	if (s->points_only) {
		write_points(c, f, s, color, fp);
		return;
	}
	fprintf(fp, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s d=\"",
		color, dash);
	if (s->step) {
		/* Staircase: flat at the previous fraction up to each value,
		 * then up to the fraction the value reaches. */
		fprintf(fp, "M%.2f %.2f", map_x(c, f, s->x[0]), map_y(f, 0));
		for (size_t k = 0; k < s->n; k++)
			fprintf(fp, " H%.2f V%.2f", map_x(c, f, s->x[k]),
				map_y(f, s->y[k]));
	} else {
		for (size_t k = 0; k < s->n; k++)
			fprintf(fp, "%s%.2f %.2f", k ? " L" : "M",
				map_x(c, f, s->x[k]), map_y(f, s->y[k]));
	}
	fputs("\"/>\n", fp);
	if (s->step || s->reference)
		return;
	fprintf(fp, "<g fill=\"%s\">\n", color);
	for (size_t k = 0; k < s->n; k++)
		fprintf(fp, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\"/>\n",
			map_x(c, f, s->x[k]), map_y(f, s->y[k]));
	fputs("</g>\n", fp);
}

int nd_svg_write(const struct nd_svg_chart *c, FILE *fp)
{
	struct frame f;

	layout(c, &f);
	write_head(c, fp);
	fprintf(fp, "<defs><clipPath id=\"plot\"><rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
		"height=\"%.2f\"/></clipPath></defs>\n", f.px0, f.py0, f.px1 - f.px0,
		f.py1 - f.py0);
	write_y_axis(c, &f, fp);
	write_x_axis(c, &f, fp);
	if (c->p.kind == ND_SVG_BAR)
		write_bars(c, &f, fp);
	else
		for (size_t i = 0; i < c->n_series; i++)
			write_path(c, &f, &c->s[i], i, fp);
	write_frame(&f, fp);
	write_legend(c, &f, fp);
	fputs("</svg>\n", fp);
	return ferror(fp) ? -1 : 0;
}
