/*
 * nd_report_int.h: what the parts of the report share (not installed).
 *
 *   nd_report.c         collects and checks records, groups them by run
 *   nd_report_points.c  one point per batch size: repeats, median,
 *                       spread, and whether it is a point of the sweep
 *   nd_report_md.c      Markdown cells and the measurement sections
 *   nd_report_text.c    conclusions, projection, notes; the entry point
 *   nd_report_charts.c  draws the SVG charts with nd_svg
 *   nd_report_engines.c engines side by side (runs named ENGINE/...)
 *   nd_report_routing.c routing policies compared (runs through a router)
 */
#ifndef TRAJBENCH_ND_REPORT_INT_H
#define TRAJBENCH_ND_REPORT_INT_H

#include "tools/report/nd_report.h"
#include "tools/common/nd_vec.h"

/* Everything recorded under one "run" id. */
struct rp_group {
	char *run;                 /* for display: U+0000 shown as "\0" */
	char *key;                 /* the name in JSON form: the group's identity */
	json_t *run_rec;           /* the last run record; NULL when none */
	size_t n_run_recs;
	size_t n_conv;             /* conversation_result records */
	double sum_llm_s, sum_env_s, sum_wall_s;
	size_t n_requests;         /* request records, failed ones included */
	struct nd_dvec ttft_ms;    /* (successful requests) */
	struct nd_dvec itl_ms;     /* (all gaps of successful requests) */
	json_t **turns;            /* (n_turns) turn_summary, input order */
	size_t n_turns, cap_turns;
	long batch_size;           /* from a summary or the run record; -1 */
	bool has_summary;
	size_t n_summaries;        /* one per repeated run */
};

enum rp_type {
	RP_SUMMARY, RP_TURN_SUMMARY, RP_RUN, RP_CONV, RP_REQUEST, RP_N_TYPES
};

/* One summary record: one row of the tables. */
struct rp_row {
	json_t *summary;
	struct rp_group *g;
	long batch_size;           /* -1 when unknown */
	size_t order;              /* input order */
};

struct nd_report {
	struct rp_group **groups;  /* (n_groups) first appearance order */
	size_t n_groups, cap_groups;
	struct rp_row *rows;       /* (n_rows) input order */
	size_t n_rows, cap_rows;
	size_t n_records, n_passed_over;
	size_t n_by_type[RP_N_TYPES];   /* records used, by enum rp_type */
};

/* A summary, run or turn_summary field as a double; NaN when absent or
 * null (the record was type-checked when added). */
double rp_num(const json_t *obj, const char *key);

/* Rows sorted by batch size, unknown sizes last, ties in input order.
 * Returns a malloc'ed array of n_rows pointers, or NULL. */
struct rp_row **rp_rows_by_batch(const struct nd_report *r);

/* Groups sorted by batch size (unknown last, ties in input order); only
 * those holding turn_summary records when with_turns.  *n gets the count.
 * Malloc'ed; NULL when there are none or out of memory. */
struct rp_group **rp_groups_by_batch(const struct nd_report *r,
				     bool with_turns, size_t *n);

/* The batch size of a group: a summary's, else its run record's; -1. */
long rp_group_batch(const struct rp_group *g);

/* The label of a group in a chart legend or table head: "batch N", or
 * "run ID" when the batch size is unknown.  Returns buf. */
char *rp_group_label(const struct rp_group *g, char *buf, size_t len);

/* Why a batch size is not a point of the sweep (nd_report_points.c). */
enum rp_flag {
	RP_SWEEP = 0,           /* it is: ranked, compared, charted as a curve */
	RP_OVER_CONVERSATIONS,  /* larger than the conversations of its runs */
	RP_LOW_CONCURRENCY,     /* measured concurrency under half of what it allows */
	RP_NO_BATCH,            /* no batch size known */
};

/* One batch size: its summaries (one per repeated run) and what the
 * report may say of it.  Unknown batch sizes get a point per summary. */
struct rp_point {
	long batch_size;               /* -1: unknown */
	struct rp_row **rows;          /* (n) its summaries */
	size_t n;
	struct rp_group *g;            /* the group of its first summary */
	double tput, lo, hi;           /* output tok/s: median, min, max */
	double concurrency;            /* measured, median */
	double expected;               /* requests in flight it allows; NaN */
	long n_conv;                   /* conversations per run; -1 unknown */
	enum rp_flag flag;
};

/* Points from rows sorted by batch size (rp_rows_by_batch), ascending.
 * 0, or -1 when out of memory. */
int rp_points_build(struct rp_row **rows, size_t n_rows, struct rp_point **out,
		    size_t *n_out);
void rp_points_free(struct rp_point *pts, size_t n);

/* A summary field of the point: the median over its runs; NaN. */
double rp_point_num(const struct rp_point *p, const char *key);

struct rp_ctx;

/* Charts: each returns 0 and sets *drawn (whether a file was written), or
 * -1 with err filled.  dir is p->charts_dir. */
int rp_chart_throughput(const struct rp_ctx *c, const char *dir,
			bool *drawn, char *err, size_t errlen);
int rp_chart_latency_cdf(const struct nd_report *r, const char *dir,
			 bool itl, bool *drawn, char *err, size_t errlen);
int rp_chart_turns(const struct nd_report *r, const char *dir, bool cache,
		   bool *drawn, char *err, size_t errlen);
int rp_chart_time_split(const struct rp_ctx *c, const char *dir,
			bool *drawn, char *err, size_t errlen);

/* File names of the charts inside the charts directory. */
#define RP_CHART_THROUGHPUT "throughput.svg"
#define RP_CHART_TTFT       "ttft-cdf.svg"
#define RP_CHART_ITL        "itl-cdf.svg"
#define RP_CHART_TURN_TTFT  "turn-ttft.svg"
#define RP_CHART_TURN_CACHE "turn-cache-hit.svg"
#define RP_CHART_TIME_SPLIT "time-split.svg"

/* ---------------------------------------------------------------- Markdown */

enum rp_chart {
	RP_C_THROUGHPUT, RP_C_TTFT, RP_C_ITL, RP_C_TURN_TTFT, RP_C_TURN_CACHE,
	RP_C_TIME_SPLIT, RP_N_CHARTS
};

/* The engines of a report (nd_report_engines.c). */
struct rp_engine {
	char *name;
	struct nd_report view;     /* its groups and rows (owned arrays) */
	struct rp_row **rows;      /* (view.n_rows) by batch size */
	struct rp_point *pts;      /* (n_pts) a point per batch size: medians
				    * over repeated runs */
	size_t n_pts;
};

struct rp_engines {
	struct rp_engine *e;       /* (n) in order of first appearance */
	size_t n;
	struct nd_report base;     /* the first engine's view, or a copy of the
				    * whole report when n < 2 */
	bool drawn[8];             /* charts written, by figure */
};

/* Fills e from r: 0, or -1 when out of memory (free e all the same). */
int rp_engines_split(const struct nd_report *r, struct rp_engines *e);
void rp_engines_free(struct rp_engines *e);

/* One chart per figure when there are two engines or more. */
int rp_chart_engines(const struct nd_report *r, struct rp_engines *e, const char *dir,
		     char *err, size_t errlen);

/* What the sections of one report share while it is written. */
struct rp_ctx {
	const struct nd_report *r;
	const struct nd_report_params *p;
	FILE *fp;
	struct rp_row **rows;      /* (n_rows) by batch size */
	struct rp_group **groups;  /* (n_groups) by batch size */
	size_t n_groups;
	struct rp_point *pts;      /* (n_pts) by batch size, unknown last */
	size_t n_pts;
	const struct rp_point *base; /* the smallest batch size of the sweep */
	size_t max_runs;           /* most runs of one batch size */
	bool env_replayed;         /* some run waited environment time */
	bool env_known;            /* some run record gives its env time scale */
	bool drawn[RP_N_CHARTS];   /* charts written */
	const struct nd_report *all;        /* every engine's records (r: the first's) */
	const struct rp_engines *engines;
};

/* Markdown text with markup characters escaped, on one line. */
void rp_md_text(FILE *fp, const char *s);

/* Table cells, each " value |"; NaN prints "n/a".  rp_cell_batch starts
 * a row ("| 16 |"). */
void rp_cell_fixed(FILE *fp, double v, int decimals);
void rp_cell_int(FILE *fp, double v);
void rp_cell_pct(FILE *fp, double frac);
void rp_cell_ratio(FILE *fp, double v);
void rp_cell_batch(FILE *fp, const struct rp_point *p);

/* Head and alignment rows of a table: the first column left-aligned, the
 * others right-aligned when numeric, else left. */
void rp_table_head(FILE *fp, const char *const *cols, size_t n,
		   bool numeric);

/* "![alt](href)" for a chart that was drawn; nothing otherwise. */
void rp_chart_link(const struct rp_ctx *c, enum rp_chart k, const char *alt);

double rp_out_tput(const struct rp_row *row);

/* qsort order of point pointers: points of the sweep first, by median
 * output throughput descending (NaN last), then the others by batch size. */
int rp_cmp_points(const void *pa, const void *pb);

/* A point's median output throughput over the baseline's; *scale gets its
 * batch size over the baseline's.  NaN when there is no baseline. */
double rp_speed_up(const struct rp_ctx *c, const struct rp_point *p,
		   double *scale);

/* The sentence that says why p is not a point of the sweep ("" when it
 * is), for the tables' notes and the conclusions. */
const char *rp_flag_text(const struct rp_point *p, char *buf, size_t len);

/* The sections of nd_report_md.c, in report order. */
void rp_md_title(const struct rp_ctx *c);
void rp_md_setup(const struct rp_ctx *c);
void rp_md_settings(const struct rp_ctx *c);
void rp_md_results(const struct rp_ctx *c);
void rp_md_latency(const struct rp_ctx *c);
void rp_md_cache(const struct rp_ctx *c);
void rp_md_kv(const struct rp_ctx *c);
void rp_md_turns(const struct rp_ctx *c);
void rp_md_env(const struct rp_ctx *c);
/* Engines side by side; nothing with one engine. */
void rp_md_engines(const struct rp_ctx *c, const struct nd_report *r, const struct rp_engines *e);

/* The routing policies compared (nd_report_routing.c): a row per summary
 * of a routed run (a run record with "workers"); nothing when there is
 * none. */
void rp_md_routing(const struct rp_ctx *c, const struct nd_report *r);

#endif
