/*
 * engine.h: the inference engine's one public header.
 *
 * The tools see the engine through this file and what it includes (the
 * error struct, the clock, the random numbers, the id vector); every other
 * header under engine/ is internal.  Handles are opaque; options come in
 * params structs filled with defaults by an eng_*_default_params()
 * function and then changed field by field.
 *
 * What is here:
 *   - eng_infer: a loaded engine (model, tokenizer, chat template,
 *     backend, KV pool, scheduler with its prefix cache), kept between runs;
 *   - eng_run: one run over it, NDJSON lines in and records out through
 *     callbacks (trajbench-records(5));
 *   - the persistent worker over a Unix socket and its client, and the
 *     server that adds an HTTP front to it;
 *   - the tokenizer and the chat templates, for the tokenizer modes.
 *
 * Every function that can fail on something a user controls returns 0 or a
 * negative ENG_E_* and fills a caller-owned struct eng_error.
 */
#ifndef TRAJBENCH_ENG_ENGINE_H
#define TRAJBENCH_ENG_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

#include "engine/error.h"
#include "engine/clock.h"
#include "engine/rng.h"
#include "engine/ids.h"

/* ---------------------------------------------------------------- engine */

enum eng_sched_policy {
	ENG_SCHED_POLICY_FCFS = 0, /* first come, first served */
	ENG_SCHED_POLICY_LPM = 1,  /* longest cached prefix first */
};

struct eng_infer_params {
	const char *model_dir;
	const char *tokenizer;        /* NULL: the model directory's */
	const char *chat_template;    /* "chatml", "qwen3", "llama3"; NULL: from the model */
	const char *device;           /* "cpu" or "cuda" */
	int n_threads;                /* cpu: 0 = online CPUs */
	int32_t page_size;
	int64_t max_total_tokens;     /* KV pool size in tokens; 0: the default */
	int32_t chunked_prefill_size;
	double prefill_step_ratio;    /* eng_sched_params' (0: chunked_prefill_size alone) */
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
	const char *kv_cache_dtype;   /* "auto" (default): K and V pages in bf16
				       * on the GPU, fp32 on the CPU; "bf16": bf16
				       * (the CPU rounds to it); "fp8_e4m3": one
				       * byte an element with the checkpoint's
				       * per-head k_scale / v_scale (1.0 without
				       * them), so the pool holds twice the
				       * tokens; the CPU emulates its rounding */
	const char *quantization;     /* "none" (default, also NULL): the weights
				       * as loaded; "fp8": the linear layers' weights
				       * quantized at load to FP8 E4M3, one scale per
				       * output row, their inputs per token (W8A8,
				       * as vLLM / SGLang --quantization fp8); not
				       * with tp_size > 1 yet.  Other names:
				       * ENG_E_INVALID */
};

void eng_infer_default_params(struct eng_infer_params *p);

struct eng_infer;

/* Loads everything.  ENG_E_DEVICE when the device is unavailable (no CUDA
 * build or no GPU), the loaders' codes for a bad model or tokenizer. */
int eng_infer_open(const struct eng_infer_params *p, struct eng_infer **out,
		   struct eng_error *err);
void eng_infer_close(struct eng_infer *e);

double eng_infer_load_time(const struct eng_infer *e);

/* The settings in force, as the `run` record's "settings" object (new ref). */
json_t *eng_infer_settings(const struct eng_infer *e);

/* One turn of the engine's event loop: take input, submit ready turns, run
 * one batch step, or sleep up to max_wait_s for the next environment delay.
 * 0, or a negative ENG_E_* of a failed step (its requests failed; the
 * engine goes on). */
int eng_infer_poll(struct eng_infer *e, double max_wait_s, struct eng_error *err);

/* The scheduler's counters, for progress lines and status replies. */
struct eng_sched_stats {
	int32_t n_running, n_waiting;
	int64_t n_steps;
	int64_t prompt_tokens;     /* of admitted requests */
	int64_t cached_tokens;     /* of those found in the cache */
	int64_t computed_tokens;   /* prompt tokens actually prefilled */
	int64_t unbounded_tokens;  /* prompt tokens an unbounded prefix cache would
				      have prefilled: computed_tokens less this is
				      what was computed twice (evicted from the
				      cache, or retracted) */
	int64_t n_retractions;
	int64_t n_finished;        /* requests finished, failed and aborted included */
	int64_t generated_tokens;  /* tokens produced over all requests */
	double step_seconds;       /* wall time inside the step function (the model's
				      forward, its wait for the device included) */
	double roofline_seconds;   /* summed per-step ceilings: max(bytes moved /
				      bandwidth, FLOPs / GEMM rate) of each step */
	double roofline_bytes, roofline_flops;
	/* the steps where some sequence brings more than one token (prefill
	 * chunks, alone or beside decode rows) on their own: their count,
	 * wall time and ceilings; the rest are decode steps */
	int64_t n_prefill_steps;
	double prefill_step_seconds, prefill_roofline_seconds;
	double roofline_bandwidth; /* the measured rates they use, bytes/s and FLOP/s;
				      0 when the backend measured none */
	double roofline_gemm_rate;
	double new_token_ratio;    /* the decode estimate's ratio now */
	size_t free_pages, cached_pages;
	size_t evictable_pages;    /* cached pages no running request holds */
	size_t held_pages;         /* cached pages of conversations between turns */
	size_t total_pages;        /* the pool */
	int32_t page_size;
	size_t peak_used_pages;    /* most pages the running requests held at once
				      (shared prefix pages counted once), since
				      the last reset */
	int32_t last_batch_seqs, last_batch_tokens;
};

void eng_infer_get_stats(const struct eng_infer *e, struct eng_sched_stats *st);

/* ---------------------------------------------------------------- runs */

/* Sampling of one request.  The random stream of a request depends only on
 * its seed and on how many tokens it has generated, never on the batch. */
struct eng_sampling {
	float temperature; /* 0: greedy */
	int32_t top_k;     /* 0: off */
	float top_p;       /* 1: off */
	uint64_t seed;
};

/* How one client's conversations are replayed (or its requests generated). */
/* The largest env_time_scale: with recorded env times of at most a day
 * (conv.c) every wait stays finite. */
#define ENG_MAX_ENV_TIME_SCALE 1e6

struct eng_session_params {
	int32_t batch_size;        /* conversations in flight; 0: no limit */
	double env_time_scale;     /* 0: submit the next turn at once; at most
				    * ENG_MAX_ENV_TIME_SCALE */
	double request_rate;       /* conversations started per second (Poisson);
				    * INFINITY: all at once (the replay default) */
	int32_t output_len;        /* tokens per turn; 0: the recorded reply length */
	bool recorded_output;      /* with output_len 0: emit the recorded reply's
				    * tokens, so the next turn's prompt is exactly
				    * what was cached (the model still runs) */
	bool ignore_eos;
	bool score;                /* per turn, one prefill of the prompt and the
				    * recorded reply, and the reply's log-probs,
				    * instead of generation */
	struct eng_sampling sampling;
	const int32_t *stop_ids;   /* (n_stop_ids) tokens that also end a reply,
				    * ignore_eos or not; borrowed */
	int32_t n_stop_ids;
	int32_t min_tokens;        /* no stop token before this many tokens */
	bool logprobs;             /* each generated token's log-prob ... */
	int32_t top_logprobs;      /* ... and this many alternatives (at most 20) */
	uint64_t seed;             /* arrivals */
};

void eng_session_default_params(struct eng_session_params *p);

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

/* ---------------------------------------------------------------- remote */

/*
 * A remote engine: the same runs (eng_run_*), the same replay and the same
 * records, but every turn is sent to an OpenAI-compatible server (SGLang,
 * vLLM, llama.cpp, ours) and streamed back, instead of run on a local
 * model.  Only the tokenizer and chat template are loaded (from the
 * eng_infer_params' tokenizer, else model_dir), to count the prompt tokens
 * as the engine would and to lay out the turns.
 */
enum eng_remote_endpoint {
	ENG_REMOTE_CHAT = 0,        /* POST /v1/chat/completions: the messages */
	ENG_REMOTE_COMPLETIONS = 1, /* POST /v1/completions: our prompt tokens */
	ENG_REMOTE_GENERATE = 2,    /* POST /generate (SGLang): our prompt tokens */
};

struct eng_remote_params {
	const char *url;              /* http(s)://HOST:PORT, with or without /v1 */
	const char *api_key;          /* sent as a bearer token; NULL: none */
	const char *served_model;     /* the "model" of requests; NULL: the first of
				       * GET /v1/models */
	enum eng_remote_endpoint endpoint;
	double request_timeout_s;     /* a whole request, stream included; 0: none */
	int32_t max_retries;          /* attempts after a failed one (0: none) */
};

void eng_remote_default_params(struct eng_remote_params *p);

/* "chat", "completions", "generate" -> endpoint; ENG_E_INVALID otherwise. */
int eng_remote_endpoint_from_name(const char *name, enum eng_remote_endpoint *out,
				  struct eng_error *err);

/* Opens a remote engine.  ENG_E_INVALID for a URL that is not http(s);
 * ENG_E_IO when served_model is NULL and GET /v1/models does not answer
 * with a model; the tokenizer's and chat template's codes.  A server that
 * goes away later fails requests, not the open. */
int eng_infer_open_remote(const struct eng_infer_params *p, const struct eng_remote_params *rp,
			  struct eng_infer **out, struct eng_error *err);

/* ---------------------------------------------------------------- worker */

/*
 * The persistent worker keeps one engine loaded and serves runs to clients
 * over a Unix stream socket created with mode 0600.  Several clients at
 * once share one continuous batch.  The protocol is NDJSON both ways:
 *   client -> worker  {"type":"hello","command":"run","params":{...}}, then
 *                     the run's input lines; end of input = shutdown(SHUT_WR)
 *                     or {"type":"hello","command":"status"|"shutdown"}
 *   worker -> client  the run's records as they are produced,
 *                     {"type":"diagnostic","line":N,"message":S} for bad input,
 *                     {"type":"end","bad":N} last; or one status/ok record
 * or, for independent requests in token ids (how a router sends turns):
 *   client -> worker  {"type":"hello","command":"requests"}, then lines
 *                     {"type":"request","id":N,"prompt_ids":[...],
 *                      "max_new_tokens":M,"ignore_eos":B,"temperature":T,
 *                      "top_k":K,"top_p":P,"seed":S[,"forced_output_ids":[...]]
 *                      [,"stop_ids":[...]][,"min_tokens":N][,"score_from":F]},
 *                     {"type":"cancel","id":N}, {"type":"flush_cache"}
 *   worker -> client  {"type":"token","id":N,"index":I,"token":T} per token,
 *                     {"type":"result","id":N,"finish_reason":S,"prompt_len":L,
 *                      "cached_tokens":C,"output_ids":[...],"queue_time":Q,
 *                      "error":E[,"logprobs_from":F-1,"logprobs":[...]]}
 *                     once per request (none once cancelled)
 * A request with score_from (1 <= F <= its prompt's length) generates
 * nothing: its prompt_ids are a prompt and a reply split at F, and its
 * result has the log-probs of ids F.. ([i] = log p(prompt_ids[F + i]),
 * null where not finite), as a score run's turn needs them.
 * A client that disconnects mid-run cancels only its own requests; a bad
 * record fails only itself; the worker keeps serving.  A connection the
 * worker will not serve (another user, over the connection limit, a line
 * over 256 MiB, idle too long) gets {"type":"error","message":S} before it
 * is closed.  Both ends check the other's uid: only the same user (and root
 * for a worker that allows it) talks to a worker.
 */

struct eng_worker_params {
	const char *socket_path;
	int32_t max_connections;   /* connections served at once; one more gets an
				    * error record and is closed (default 256) */
	double idle_timeout_s;     /* close a connection on which nothing was sent
				    * or received for this long while none of its
				    * requests is in the engine; 0: never
				    * (default 600) */
	bool allow_root_clients;   /* serve root too; by default only the worker's
				    * own user is served (SO_PEERCRED) */
};

void eng_worker_default_params(struct eng_worker_params *p);

struct eng_worker;

/* Creates the listening socket at p->socket_path (mode 0600), so that a
 * bad path is known before a model is loaded.  What is at the path
 * already must be nothing or a stale socket (one no worker answers on,
 * which is replaced); anything else is left alone and refused with
 * ENG_E_IO ("a worker already serves this socket", "exists and is not a
 * socket").  Clients that connect before eng_worker_run wait in the listen
 * queue.  ENG_E_INVALID for bad params or a path too long for a socket. */
int eng_worker_listen(const struct eng_worker_params *p, struct eng_worker **out,
		      struct eng_error *err);

/* Serves runs over e until a shutdown command or SIGINT/SIGTERM.  0. */
int eng_worker_run(struct eng_worker *w, struct eng_infer *e, struct eng_error *err);

/* Closes the socket and removes its file, but only while the file at the
 * path is still the socket eng_worker_listen created.  NULL is allowed. */
void eng_worker_close(struct eng_worker *w);

/* eng_worker_listen, eng_worker_run and eng_worker_close in one. */
int eng_worker_serve(struct eng_infer *e, const struct eng_worker_params *p,
		     struct eng_error *err);

/* ---------------------------------------------------------------- serving */

/*
 * One engine, several fronts, one continuous batch: the Unix-socket worker
 * above and an OpenAI-compatible HTTP server (/v1/chat/completions,
 * /v1/completions, SGLang's /generate, /health, /v1/models,
 * /get_model_info, /get_server_info, /metrics; gpu-batch-infer(1) has the
 * details).  One thread runs the engine and serves every client between
 * its steps; a client that goes away cancels its requests.  SIGINT,
 * SIGTERM or a shutdown command stop the listening, let what is in flight
 * finish for graceful_timeout_s, cancel the rest and return 0.
 */
enum eng_serve_state {
	ENG_SERVE_LISTENING, /* the socket and the port listen; the model may still load */
	ENG_SERVE_LOADED,    /* the model is loaded (eng_serve_load) */
	ENG_SERVE_READY,     /* every front is open: serving */
	ENG_SERVE_DRAINING,  /* shutting down: no new requests */
};

struct eng_serve_params {
	const struct eng_worker_params *socket; /* the Unix-socket front, listening
					* before the model loads; NULL: none */
	struct eng_worker *worker;     /* or a socket already listening (the
					* caller's: left open) */
	const char *host;              /* HTTP: the address to bind (default 127.0.0.1) */
	int port;                      /* HTTP: 0 any free port; -1 no HTTP front (default) */
	const char *api_key;           /* HTTP: Bearer token required; NULL: none */
	const char *served_model_name; /* HTTP: the model's name; NULL: its directory */
	bool enable_metrics;           /* HTTP: GET /metrics */
	FILE *request_log;             /* HTTP: a request record per finished request */
	size_t max_body_size;          /* HTTP: larger bodies get 413 (default 64 MiB) */
	int32_t max_queued_requests;   /* HTTP: 503 beyond this many waiting; 0: no limit */
	int32_t max_connections;       /* HTTP: connections at once (default 4096) */
	double idle_timeout_s;         /* HTTP: close a connection on which nothing
					* was sent or received for this long
					* (rounded up to whole seconds) while none
					* of its requests is in the engine: a client
					* that sends nothing or stops mid-request, a
					* kept-alive one between requests; a stream
					* waiting for its next token is not idle.
					* 0: never (default 600) */
	double graceful_timeout_s;     /* shutdown: how long in-flight work may go on */
	/* Told of every state change; http_port is the bound port (or -1). */
	void (*on_state)(void *ctx, enum eng_serve_state state, int http_port);
	void *ctx;
};

void eng_serve_default_params(struct eng_serve_params *p);

/* Serves a loaded engine until shut down.  ENG_E_IO when a front cannot
 * listen (port in use, a worker already on the socket), ENG_E_INVALID
 * for a socket path too long. */
int eng_serve(struct eng_infer *e, const struct eng_serve_params *p, struct eng_error *err);

/* Listens first (the socket, whose clients wait in its queue; the HTTP
 * port, where /health answers 503), then loads the engine, serves it and
 * closes it.  The load's errors are returned as eng_infer_open's;
 * on_state says how far it got (LISTENING, LOADED, READY), so that a
 * caller tells a port in use or a bad socket path from a missing model. */
int eng_serve_load(const struct eng_infer_params *ip, const struct eng_serve_params *p,
		   struct eng_error *err);

/* The run parameters as the hello's "params" object, and back.  Unknown
 * keys are refused by from_json (ENG_E_INVALID naming the key). */
json_t *eng_run_params_to_json(const struct eng_run_params *p);
int eng_run_params_from_json(const json_t *j, struct eng_run_params *p, char *name_buf,
			     size_t name_len, struct eng_error *err);

struct eng_client_io {
	FILE *in;                  /* the run's input lines, or NULL for status/shutdown */
	FILE *out;                 /* records */
	void (*diag)(void *ctx, long line, const char *msg);
	/* Called with every record written to out (may be NULL): progress. */
	void (*on_record)(void *ctx, const json_t *record);
	void *ctx;
};

/* Connects, sends hello (owned by the caller), streams io->in to the worker
 * and the records back to io->out.  Returns the worker's count of bad
 * records (>= 0), or a negative ENG_E_* (ENG_E_IO: no worker at path, or it
 * went away, or io->out could not be written).  A failed write to io->out
 * ends the run at once: ENG_E_IO, "write error: ..." in err, errno that of
 * the write, and ferror(io->out) true. */
long eng_client_run(const char *socket_path, const json_t *hello, const struct eng_client_io *io,
		    struct eng_error *err);

/* ---------------------------------------------------------------- router */

/*
 * A router is an engine whose turns run on other engines (workers): the
 * same runs (eng_run_*), replay loop, records and fronts, but every turn
 * (one request: the prompt's token ids) is sent to the worker a routing
 * policy picks, and its tokens are streamed back.  Workers are our own
 * (a Unix socket; see the "requests" command of the worker protocol) or
 * OpenAI-compatible servers.  Only the tokenizer and chat template are
 * loaded here, to render the turns; the workers must serve that model.
 *
 * Health: each worker is probed (a status command, or GET /health) every
 * health_check_interval_s, busy or idle; a probe that fails
 * or takes longer than health_check_timeout_s counts a failure, and so
 * does a request that takes longer than request_timeout_s (it is re-sent
 * to another worker at once).  health_failure_threshold failures in a row
 * mark a worker down, as does a connection it closes; a down worker's
 * requests are re-sent to the others from their prompts (the turn's record
 * says retried), and health_success_threshold good probes in a row bring
 * it back.  A request re-sent more than retry_max_retries times fails.
 */

/* The routing policy's parameters (SGLang router's names and defaults). */
struct eng_route_params {
	double cache_threshold;        /* cache_aware: match ratio above which the
					* best match wins (0.5) */
	int32_t balance_abs_threshold; /* load imbalanced when max - min queue depth
					* is above this (32) ... */
	double balance_rel_threshold;  /* ... and max is above this times min (1.0001) */
	double eviction_interval_s;    /* the trees are cut back every this often (60) */
	int64_t max_tree_size;         /* ... to this many tokens each (2^24) */
	uint64_t seed;                 /* random, power_of_two */
};

void eng_route_default_params(struct eng_route_params *p);

struct eng_router_params {
	const char *const *workers;    /* (n_workers) socket paths or http(s):// URLs */
	int n_workers;
	const char *policy;            /* cache_aware (default), round_robin, random,
					* shortest_queue, power_of_two */
	struct eng_route_params route;
	double health_check_interval_s;   /* 60 */
	double health_check_timeout_s;    /* 5 */
	int32_t health_failure_threshold; /* 3 */
	int32_t health_success_threshold; /* 2 */
	double request_timeout_s;         /* 1800 */
	int32_t retry_max_retries;        /* 5 */
	double worker_startup_timeout_s;  /* 300: how long the open waits for every
					   * worker to answer (at least one must) */
	/* Told when a worker goes down, comes back, or did not answer at
	 * the start (a lowercase message); may be NULL. */
	void (*on_event)(void *ctx, const char *msg);
	void *event_ctx;
};

void eng_router_default_params(struct eng_router_params *p);

/* The policies' names, space-separated. */
const char *eng_router_policy_names(void);

/* Opens a router over rp->workers with the tokenizer and chat template of
 * ip (its tokenizer, else model_dir).  Returns once every worker answered
 * or the startup timeout passed; those that did not are down and probed
 * again later.  ENG_E_INVALID for bad parameters (an unknown policy, no
 * worker, a worker given twice); ENG_E_IO when no worker answers; the
 * tokenizer's and chat template's codes. */
int eng_infer_open_router(const struct eng_infer_params *ip, const struct eng_router_params *rp,
			  struct eng_infer **out, struct eng_error *err);
/* ---------------------------------------------------------------- JSON */

/* Reads obj[key] as an integer in [lo, hi]: a JSON integer, or a real with
 * an integral value within +-2^53.  0 with *out; 1 when obj has no such key
 * or it is null (*out untouched); ENG_E_FORMAT when the value is not an
 * integer or is out of range, with a message naming the key and the value
 * ("\"max_tokens\" must be an integer in [1, 2147483647], not 4294967297");
 * err's file and line are left for the caller, who knows the record. */
int eng_json_get_int_range(const json_t *obj, const char *key, json_int_t lo, json_int_t hi,
			   json_int_t *out, struct eng_error *err);

/* The same for a value v already at hand (an array element), named name in
 * the message; a missing v (NULL) is an error. */
int eng_json_int_range(const json_t *v, const char *name, json_int_t lo, json_int_t hi,
		       json_int_t *out, struct eng_error *err);

/* ---------------------------------------------------------------- tokenizer */

/* A byte-level BPE tokenizer from a Hugging Face tokenizer.json.  One
 * tokenizer may not be used by two threads at once (its merge cache). */
struct eng_tokenizer;

/* Loads path: a tokenizer.json file, or a directory holding one.
 * Returns 0 and sets *out, or a negative ENG_E_* code with err filled
 * (ENG_E_IO: unreadable; ENG_E_FORMAT: not a valid tokenizer.json;
 * ENG_E_UNSUPPORTED: a model, normalizer or pre-tokenizer we do not run). */
int eng_tokenizer_load(const char *path, struct eng_tokenizer **out, struct eng_error *err);
void eng_tokenizer_free(struct eng_tokenizer *tok);

/* Flags of eng_tokenizer_encode. */
enum {
	/* Treat added/special token strings in the text as plain text. */
	ENG_TOK_ENCODE_PLAIN = 1u << 0,
};

/* Encodes len bytes of UTF-8 text and appends the ids to out.  Returns 0;
 * ENG_E_INVALID when the text is not valid UTF-8 (err names the byte
 * offset); ENG_E_NOMEM.  On error out keeps what it had before the call. */
int eng_tokenizer_encode(struct eng_tokenizer *tok, const char *text, size_t len,
			 struct eng_ids *out, unsigned flags, struct eng_error *err);

/* Flags of eng_tokenizer_decode. */
enum {
	ENG_TOK_DECODE_SKIP_SPECIAL = 1u << 0, /* leave special tokens out */
};

/* Decodes n ids to bytes, appended to a malloc'ed NUL-terminated buffer
 * *text (length *len); the caller frees it.  The bytes are what the tokens
 * stand for and may hold invalid UTF-8 (see eng_utf8_sanitize).  Returns 0,
 * ENG_E_RANGE for an id outside the vocabulary (err names its position), or
 * ENG_E_NOMEM. */
int eng_tokenizer_decode(const struct eng_tokenizer *tok, const int32_t *ids, size_t n,
			 unsigned flags, char **text, size_t *len, struct eng_error *err);

/* The bytes a token stands for (not NUL-terminated), or NULL for an id that
 * names no token. */
const char *eng_tokenizer_token_bytes(const struct eng_tokenizer *tok, int32_t id, size_t *len);

/* One more than the largest id (holes, if any, count). */
int32_t eng_tokenizer_vocab_size(const struct eng_tokenizer *tok);

/* Copies s into a malloc'ed NUL-terminated buffer with every invalid
 * sequence replaced by U+FFFD (as Rust's from_utf8_lossy).  Returns NULL
 * when out of memory. */
char *eng_utf8_sanitize(const char *s, size_t len, size_t *out_len);

/* ---------------------------------------------------------------- chat */

/* Chat templates rendered as Hugging Face's apply_chat_template +
 * encode(add_special_tokens=False) render them (engine/chat.h tells how). */
enum eng_chat_kind {
	ENG_CHAT_CHATML,
	ENG_CHAT_QWEN3,
	ENG_CHAT_LLAMA3,
};

/* A template: its family and the rules its text carries. */
struct eng_chat_spec {
	enum eng_chat_kind kind;
	/* chatml: Qwen2.5's tool rules (`tool` messages merged into a user
	 * message of <tool_response> blocks, tool_calls as <tool_call> blocks,
	 * the tools list in the system message); roles other than system,
	 * user, assistant and tool then render nothing.  Off: every message
	 * renders as <|im_start|>{role}\n{content}<|im_end|>\n.  Always on
	 * for qwen3. */
	bool tool_blocks;
	/* chatml: the system message rendered when the first message is not
	 * one (Qwen2.5: "You are Qwen, created by Alibaba Cloud. You are a
	 * helpful assistant.") */
	bool has_default_system;
	char default_system[512];
};

/* "chatml" (Qwen2.5's template), "qwen3", "llama3" -> spec.  ENG_E_INVALID
 * for other names. */
int eng_chat_spec_from_name(const char *name, struct eng_chat_spec *spec, struct eng_error *err);

/* The template of a model directory: the chat_template of
 * DIR/tokenizer_config.json (a string, or the "default" of a list), else
 * DIR/chat_template.jinja.  With neither, the tokenizer's markers decide
 * (<|im_start|> -> plain chatml, <|start_header_id|> -> llama3); tok may be
 * NULL.  ENG_E_UNSUPPORTED for a template of none of the three families. */
int eng_chat_spec_from_dir(const char *dir, const struct eng_tokenizer *tok,
			   struct eng_chat_spec *spec, struct eng_error *err);

/* One OpenAI-style message.  Strings are UTF-8 and need not be
 * NUL-terminated; everything is borrowed. */
struct eng_chat_msg {
	const char *role;
	const char *content;       /* NULL: null or absent (an assistant's with tool_calls) */
	size_t content_len;
	const char *reasoning;     /* reasoning_content; NULL: null or absent */
	size_t reasoning_len;
	const json_t *tool_calls;  /* array of {"function":{"name","arguments"}}, or NULL */
};

/* What a template renders: messages, the tools list and the template's
 * arguments. */
struct eng_chat_input {
	struct eng_chat_msg *msgs; /* (n_msgs) */
	size_t n_msgs;
	const json_t *tools;       /* the tools list of the request, or NULL */
	bool enable_thinking;      /* qwen3's chat template argument (default true) */
};

/* Reads record's "messages", "tools" and "chat_template_kwargs"
 * ({"enable_thinking": false}); in->msgs is allocated, the strings are
 * borrowed from record.  ENG_E_FORMAT names the bad field
 * ("messages[3]: ..."); ENG_E_NOMEM. */
int eng_chat_input_from_json(const json_t *record, struct eng_chat_input *in,
			     struct eng_error *err);
void eng_chat_input_free(struct eng_chat_input *in);

/* A chat template bound to a tokenizer. */
struct eng_chat;

/* Binds a template to a tokenizer (which must outlive it and must have the
 * template's markers: ENG_E_UNSUPPORTED otherwise). */
int eng_chat_new(struct eng_tokenizer *tok, const struct eng_chat_spec *spec,
		 struct eng_chat **out, struct eng_error *err);
void eng_chat_free(struct eng_chat *c);

/* Token counts of every turn of a conversation (a turn: an assistant
 * message, its prompt the messages before it and the generation prompt). */
struct eng_chat_turn {
	size_t msg_index;  /* index of the assistant message */
	size_t prompt_len; /* tokens of the turn's prompt */
	size_t reply_len;  /* tokens of its reply, the end token included */
};

/* Fills *turns (malloc'ed, caller frees) and *n_turns.  Each message is
 * encoded about once, not once per turn. */
int eng_chat_turns(struct eng_chat *c, const struct eng_chat_input *in,
		   struct eng_chat_turn **turns, size_t *n_turns, struct eng_error *err);

#endif
