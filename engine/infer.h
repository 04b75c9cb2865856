/*
 * infer.h: the loaded engine's insides, shared by infer.c (loading and
 * the event loop), run.c (runs over it) and worker.c (the socket front).
 * The public face is engine.h; nothing outside engine/ includes this.
 *
 * eng_infer bundles what stays loaded between runs: the model (weights
 * mmapped), tokenizer, chat template, compute backend with its KV pool,
 * and the runner with its scheduler and prefix cache.
 */
#ifndef TRAJBENCH_ENG_INFER_H
#define TRAJBENCH_ENG_INFER_H

#include "engine/engine.h"
#include "engine/kv_fp8.h"
#include "engine/runner.h"
#include "engine/sched.h"

struct eng_infer {
	struct eng_infer_params p;
	struct eng_model *model;
	struct eng_tokenizer *tok;
	struct eng_chat *chat;
	struct eng_backend *be;
	struct eng_stepper *stepper;
	struct eng_runner *runner;    /* owns the scheduler and the prefix cache,
				       * or the remote executor, or the router */
	struct eng_remote *remote;    /* a remote engine's executor (the runner's),
				       * or NULL: no model loaded here */
	struct eng_router *router;    /* a router's executor (the runner's), or
				       * NULL: turns run here */
	struct eng_sched_params sp;   /* the scheduler's settings in force */
	enum eng_kv_dtype kv_dtype;   /* p.kv_cache_dtype, parsed */
	bool weight_fp8;              /* p.quantization is "fp8" */
	int64_t kv_token_bytes;       /* bytes of K and V a cached token takes (all ranks) */
	double load_time;
	char device[256];             /* "cpu: <model name>, N threads" or the GPU's name */
};

/* True while the run has work in the engine: its warmup, or conversations
 * in flight (a turn in the scheduler or waiting out its environment time).
 * The worker does not call a connection idle while its run is busy. */
bool eng_run_busy(const struct eng_run *r);

#endif
