/*
 * nd_report.h: the Markdown benchmark report behind report-md(1).
 *
 * A report is built in two steps: records are added one at a time as they
 * are read (summary, turn_summary, run, conversation_result, request; any
 * other type is passed over), then the whole report is written: Markdown
 * to a stream and, when a charts directory is given, SVG charts into it.
 * Every figure in the output is taken or computed from the records.
 */
#ifndef TRAJBENCH_ND_REPORT_H
#define TRAJBENCH_ND_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <jansson.h>

struct nd_report_params {
	const char *title;          /* first heading */
	const char *input_desc;     /* free text about the input; NULL: none */
	double flatten_threshold;   /* gain per doubling below which scaling
				     * counts as flat, as a fraction (0.10) */
	const char *charts_dir;     /* where to write the SVG files; NULL: no
				     * charts */
	const char *charts_href;    /* prefix of the chart links, "" or ending
				     * in '/' */
	const char *no_charts_why;  /* when charts_dir is NULL: the note that
				     * says why (NULL: none) */
};

/* Title "trajbench report", threshold 0.10, no charts. */
struct nd_report_params nd_report_default_params(void);

struct nd_report;

struct nd_report *nd_report_new(void);
void nd_report_free(struct nd_report *r);

/* What nd_report_add did with a record. */
enum nd_report_added {
	ND_REPORT_USED = 0,
	ND_REPORT_PASSED_OVER = 1,  /* a type the report does not read */
	ND_REPORT_BAD = -1,         /* malformed; err says why */
	ND_REPORT_NOMEM = -2,
};

/* Adds one record.  The report keeps a reference to obj when it uses it
 * (the caller keeps its own and may decref it).  On ND_REPORT_BAD a
 * lowercase message naming the record type and field is written to err. */
enum nd_report_added nd_report_add(struct nd_report *r, json_t *obj,
				   char *err, size_t errlen);

/* Number of summary records added. */
size_t nd_report_n_summaries(const struct nd_report *r);

/* Writes the Markdown report to fp and, with p->charts_dir, the charts
 * (the directory must exist).  Returns 0, or -1 with a message in err
 * (a chart file that could not be written, or a write error on fp). */
int nd_report_write(struct nd_report *r, const struct nd_report_params *p,
		    FILE *fp, char *err, size_t errlen);

/* The relative path from directory `from` to directory `to`, both
 * existing, into buf with a trailing '/' ("" when they are the same).
 * Returns 0, or -1 when a directory cannot be resolved or buf is short. */
int nd_report_relpath(const char *from, const char *to, char *buf,
		      size_t len);

#endif
