/*
 * nd_progress.h: gpu-batch-infer's progress line on stderr (with
 * --progress, or when stderr is a terminal): time so far, conversations
 * done out of those in the input, and an estimate of the time left.
 *
 * The total is the number of non-blank lines of the input files, counted
 * before the run when every input is a regular file (standard input too
 * when it is one); a pipe gives no total and no estimate.  The estimate
 * assumes the rest of the conversations take as long, each, as the
 * finished ones did: it is a guide, not a measurement.
 */
#ifndef TRAJBENCH_ND_PROGRESS_H
#define TRAJBENCH_ND_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

struct nd_progress {
	bool on;
	double t0, last;    /* start, last line printed (monotonic s) */
	long total;         /* conversations in the input; -1: unknown */
	long done;          /* conversation_result records seen */
	long requests;      /* request records seen */
	long long tokens;   /* their output_len */
	bool printed;       /* a line is on the terminal */
};

/* Starts the clock and counts the input (files, or stdin when none). */
void nd_progress_start(struct nd_progress *p, bool on, char **files, int n_files);

/* Counts a record written by the run. */
void nd_progress_record(struct nd_progress *p, const json_t *rec);

/* True when a new line is due (once a second). */
bool nd_progress_due(struct nd_progress *p);

/* "12s, 3/40 conversations, ETA 1m05s, 57 requests, 456.7 tok/s" into
 * buf (the total and the estimate when known). */
void nd_progress_head(const struct nd_progress *p, char *buf, size_t len);

#endif
