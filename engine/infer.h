/*
 * infer.h: an inference engine ready to serve runs, and runs over it.
 *
 * eng_infer bundles what stays loaded between runs: the model (weights
 * mmapped), tokenizer, chat template, compute backend with its KV pool,
 * and the runner with its scheduler and prefix cache.  A persistent worker
 * opens one and serves many runs; the in-process filter opens one for one
 * run.
 *
 * eng_run is one run: NDJSON lines in (conversation records or OpenAI chat
 * requests), NDJSON records out (one `request` per turn as it completes,
 * one `conversation_result` per conversation, one `run` at the end).  I/O
 * goes through callbacks, so the same code reads a pipe or a socket.  A bad
 * line or a failed request is reported (a diagnostic, and a failed
 * `request` record for a request) and counted; the run goes on.
 */
#ifndef TRAJBENCH_ENG_INFER_H
#define TRAJBENCH_ENG_INFER_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "engine/error.h"
#include "engine/runner.h"
#include "engine/sched.h"

struct eng_infer_params {
	const char *model_dir;
	const char *tokenizer;        /* NULL: the model directory's */
	const char *chat_template;    /* "chatml", "qwen3", "llama3"; NULL: from the model */
	const char *device;           /* "cpu" or "cuda" */
	int n_threads;                /* cpu: 0 = online CPUs */
	int32_t page_size;
	int64_t max_total_tokens;     /* KV pool size in tokens; 0: the default */
	int32_t chunked_prefill_size;
	int32_t max_running_requests; /* 0: memory bound only */
	int32_t context_length;       /* 0: the model's max_position_embeddings */
	enum eng_sched_policy policy;
	bool disable_radix_cache;
	const char *load_format;      /* "auto": the weight files; "dummy": random
				       * weights of the config's shape, made on
				       * the GPU (cuda only) */
	double mem_fraction_static;   /* cuda: share of GPU memory for weights and
				       * KV pool when max_total_tokens is 0 */
	int32_t cuda_graph_max_bs;    /* cuda: decode batches up to this size run as
				       * captured graphs */
	bool disable_cuda_graph;
	int32_t tp_size;              /* cuda: tensor-parallel ranks, on GPUs
				       * 0 .. tp_size - 1 (default 1) */
};

void eng_infer_default_params(struct eng_infer_params *p);

struct eng_infer;

/* Loads everything.  ENG_E_DEVICE when the device is unavailable (no CUDA
 * build or no GPU), the loaders' codes for a bad model or tokenizer. */
int eng_infer_open(const struct eng_infer_params *p, struct eng_infer **out,
		   struct eng_error *err);
void eng_infer_close(struct eng_infer *e);

struct eng_runner *eng_infer_runner(struct eng_infer *e);
double eng_infer_load_time(const struct eng_infer *e);
/* The settings in force, as the `run` record's "settings" object (new ref). */
json_t *eng_infer_settings(const struct eng_infer *e);

/* The I/O of a run.  next_line returns 1 with a line (valid until the next
 * call), 0 at end of input, 2 when no line is available yet, or < 0 on a
 * read error.  emit writes one record.  diag reports a bad input line or a
 * failed request (line 0: none applies). */
struct eng_run_io {
	int (*next_line)(void *ctx, char **line, size_t *len, long *lineno);
	int (*emit)(void *ctx, const json_t *record);
	void (*diag)(void *ctx, long line, const char *msg);
	void *ctx;
};

struct eng_run_params {
	struct eng_session_params session;
	const char *run_name;         /* the "run" field of every record */
	const char *mode;             /* "replay" or "generate" */
	bool output_details;          /* generated token ids and text per request */
	bool keep_cache;              /* start from the prefix cache as it is, not
				       * from a cold one */
	int32_t warmup_requests;      /* synthetic requests run (and not reported)
				       * before the measured run starts */
};

struct eng_run;

int eng_run_start(struct eng_infer *e, const struct eng_run_params *p,
		  const struct eng_run_io *io, struct eng_run **out, struct eng_error *err);

/* True when all input was read and every conversation is done.  Also
 * moves a run from its warmup to its measured part, so call it from the
 * polling loop. */
bool eng_run_done(struct eng_run *r);

/* Stops a run whose client went away: its requests are cancelled and no
 * more records are emitted.  Poll until eng_run_done, then eng_run_finish. */
void eng_run_cancel(struct eng_run *r);

/* Emits the final `run` record (unless cancelled) and frees the run.
 * Returns the number of bad lines and failed requests. */
long eng_run_finish(struct eng_run *r);

#endif
