/*
 * nd_summary.h: timing summaries of gpu-batch-infer's records, in the
 * shape of SGLang's `bench_serving --output-file` results.
 *
 * Feed it records one at a time (request, conversation_result and run; any
 * other type is passed over).  Requests are grouped (by run by default) and
 * every group yields one "summary" record, plus "turn_summary" records with
 * per_turn, written in the order the groups first appeared:
 *   - as soon as a group is complete and every earlier group has been
 *     written (a group is complete when the "run" record of its run, the
 *     last line of a run, has been seen), and
 *   - for all groups still held, by nd_summary_finish at end of input.
 * Memory: each held group keeps one double per successful request for
 * each of e2e latency, TTFT and TPOT, one per inter-token gap (ITL), and
 * one small entry per conversation; nothing is kept of the lines
 * themselves.  Percentiles need the whole sample, so this is the floor.
 *
 * Statistics follow SGLang's calculate_metrics (see timing-stats(1)):
 * failed requests are counted and left out of every latency statistic,
 * TPOT only covers requests with output_len > 1, ITL values are pooled over
 * all requests of the group, concurrency = sum(latency) / duration.  Where
 * SGLang would print 0 or nan for an empty sample, the record says null.
 */
#ifndef TRAJBENCH_ND_SUMMARY_H
#define TRAJBENCH_ND_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

enum nd_group_by {
	ND_GROUP_BY_RUN,
	ND_GROUP_BY_CONVERSATION,
	ND_GROUP_BY_TURN,
	ND_GROUP_BY_NONE,
	ND_GROUP_BY_WORKER,   /* run and the worker a router sent the turn to */
};

enum nd_summary_format {
	ND_SUMMARY_JSON,
	ND_SUMMARY_TEXT,
	ND_SUMMARY_SGLANG,   /* SGLang's block exactly, for scripts that scrape it */
};

#define ND_SUMMARY_MAX_PCT 16

struct nd_summary_params {
	enum nd_group_by group_by;
	double pct[ND_SUMMARY_MAX_PCT]; /* ascending, distinct, in [0, 100] */
	size_t n_pct;
	bool pct_given;                 /* --metric-percentiles was given: the
					 * sglang block prints those, not SGLang's */
	bool replay_block;              /* sglang format: add trajbench's block */
	bool per_turn;                  /* also write turn_summary records */
	enum nd_summary_format format;
	long project_trajectories;      /* N for the projection; 0 = none */
};

/* Return codes of nd_summary_add / nd_summary_finish. */
enum nd_summary_status {
	ND_SUMMARY_OK = 0,
	ND_SUMMARY_BAD_RECORD = -1,     /* record skipped; message in err */
	ND_SUMMARY_NO_MEMORY = -2,
	ND_SUMMARY_WRITE_FAILED = -3,   /* stdout failed; see nd_finish */
};

/* Group by run, percentiles 90 and 99, JSON, no per-turn, no projection. */
void nd_summary_default_params(struct nd_summary_params *p);

/* Parses "run", "conversation", "turn", "none" or "worker".  0 or -1. */
int nd_summary_parse_group_by(const char *s, enum nd_group_by *out);

/* Parses a comma-separated list of percentiles ("50,90,99.9") into
 * p->pct, sorted and without duplicates.  0, or -1 when an item is not a
 * number in [0, 100] or there are more than ND_SUMMARY_MAX_PCT. */
int nd_summary_parse_percentiles(const char *list, struct nd_summary_params *p);

struct nd_summary;

/* A new, empty summary with a copy of p; NULL when out of memory. */
struct nd_summary *nd_summary_new(const struct nd_summary_params *p);

/* Takes one record (any JSON object with a string "type").  May write the
 * summaries of groups that became complete.  Returns an nd_summary_status;
 * on ND_SUMMARY_BAD_RECORD a lowercase message is in err and the record
 * was left out. */
int nd_summary_add(struct nd_summary *s, const json_t *rec,
		   char *err, size_t errlen);

/* Writes every group still held, in order of first appearance. */
int nd_summary_finish(struct nd_summary *s);

void nd_summary_free(struct nd_summary *s);

/* ------------------------------------------------------------- text form */

/* Writes a summary record (and the turn_summary records in turns, a JSON
 * array, or NULL) as SGLang's "Serving Benchmark Result" block followed by
 * trajbench's own lines.  backend may be NULL.  first is false for every
 * block after the first (a blank line separates blocks).  With
 * p->format ND_SUMMARY_SGLANG the block is SGLang's exactly (its lines, its
 * percentiles unless p->pct_given, 0 where a figure is null, a blank line
 * before each block as SGLang prints it) and trajbench's lines follow only
 * with p->replay_block.  Returns 0, or -1 when the write failed. */
int nd_summary_write_text(const json_t *summary, const json_t *turns,
			  const char *backend, const struct nd_summary_params *p,
			  bool first);

#endif
