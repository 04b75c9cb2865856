/*
 * nd_infer.h: the inference side of gpu-batch-infer: in-process runs (on a
 * model loaded here, or on an OpenAI-compatible server), the persistent
 * worker, and the client of a worker, over engine/engine.h (eng_infer,
 * eng_run, the worker and its client).  The tool's main parses options into
 * struct nd_infer_opts and calls one of the entry points; each returns an
 * exit status (enum nd_exit).
 */
#ifndef TRAJBENCH_ND_INFER_H
#define TRAJBENCH_ND_INFER_H

#include <stdbool.h>

#include "engine/engine.h"

struct nd_infer_opts {
	struct eng_infer_params engine;   /* --model, --device, --page-size, ... */
	struct eng_run_params run;        /* --run, --mode, --batch-size, ... */
	struct eng_serve_params serve;    /* --port, --host, --api-key, ... */
	const char *socket;               /* --socket / --connect PATH */
	struct eng_worker_params worker;  /* --serve: --max-connections, ... */
	struct eng_remote_params remote;  /* --connect http://..., --endpoint, ...;
					   * remote.url NULL: no server */
	bool log_requests;                /* --log-requests */
	const char *log_file;             /* --log-file (default stderr) */
	bool progress;                    /* --progress, or stderr is a terminal */
	long num_prompts;                 /* --num-prompts: records read at most (0: all) */
	int32_t repeat;                   /* --repeat: runs of the input, one after
					   * the other, same run name (1) */
	bool router_mode;                 /* --router: serve as a router */
	struct eng_router_params router;  /* --worker, --policy, health options */
	const char *workers[64];          /* router.workers points here */
	int32_t dp_size;                  /* --dp-size: workers to start (0: none) */
};

void nd_infer_default_opts(struct nd_infer_opts *o);

/* Runs the input files (or stdin) through a model loaded in-process, or,
 * with o->remote.url, through that server, o->repeat times (stdin that is
 * not a regular file is copied to a temporary file first, so that every
 * repeat reads the same input). */
int nd_infer_run_local(const struct nd_infer_opts *o, char **files, int n_files);

/* Loads the model once and serves it on o->socket and/or over HTTP
 * (o->serve.port) until shut down. */
int nd_infer_serve(const struct nd_infer_opts *o);

/* Serves a router over o->router's workers on o->socket (after starting
 * o->dp_size workers of its own, when set) until shut down. */
int nd_router_serve(const struct nd_infer_opts *o);

/* Runs the input files (or stdin) through the worker at o->socket. */
int nd_infer_run_remote(const struct nd_infer_opts *o, char **files, int n_files);

/* --status / --shutdown of the worker at o->socket. */
int nd_infer_command(const struct nd_infer_opts *o, const char *command);

#endif
