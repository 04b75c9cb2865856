/*
 * router.h: the router executor's insides (router.c: requests, routing,
 * health), and the links that carry requests to workers: one link kind per
 * transport (router_sock.c: our worker's Unix socket; router_http.c: an
 * OpenAI-compatible server through the remote executor).
 *
 * The router is a runner executor (runner.h): the runner hands it one turn
 * at a time as a request (prompt token ids, tokens to generate, sampling),
 * exactly what it would hand the local scheduler, and gets back tokens and
 * a result through the same callbacks.  So the replay loop (turns in
 * order, environment waits, batch size, arrivals, records) is the one
 * runner.c already has, and a turn is the unit that is routed: each turn's
 * prompt picks its worker, which is what cache-aware routing needs.
 *
 * A link sees requests by their wire id, a number the router gives each
 * attempt: a request re-sent after a failure gets a new one, so a late
 * answer of an abandoned attempt matches nothing and is dropped, and every
 * turn is answered exactly once.
 */
#ifndef TRAJBENCH_ENG_ROUTER_H
#define TRAJBENCH_ENG_ROUTER_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "engine/engine.h"
#include "engine/route.h"
#include "engine/runner.h"
#include "engine/sched.h"

/* What the router adds to a turn's result (eng_request_result.route);
 * valid during the on_finish call. */
struct eng_route_info {
	int32_t worker;             /* index of the worker that answered; -1: none */
	const char *worker_name;    /* as given to --worker; NULL: none */
	int32_t retried;            /* times re-sent after a worker failed it */
	double router_queue_time;   /* from the router's submission to the last send */
	double worker_queue_time;   /* reported by the worker; < 0: not reported */
	int32_t queue_depth;        /* the worker's queue depth when it was sent,
				     * this request included */
	int32_t match_tokens;       /* its tree's match of the prompt then (cache_aware) */
};

/* A request as a link sends it. */
struct rt_send {
	uint64_t wire_id;
	const struct eng_request_params *p;   /* prompt, forced output, sampling */
	const struct eng_conv *conv;          /* the turn's conversation (for links that
					       * send messages), and turn */
	int32_t turn;
};

/* A result as a link reports it; valid during the call. */
struct rt_result {
	enum eng_finish finish;
	const int32_t *output;      /* (n_output) */
	int32_t n_output;
	int32_t prompt_len;
	int32_t cached_tokens;      /* < 0: the worker did not say */
	const char *error;          /* ENG_FINISH_ERROR: why */
	const float *logprobs;      /* score: as eng_request_result's, or NULL */
	double worker_queue_time;   /* < 0: not reported */
	bool worker_failed;         /* not the request's error: the worker failed to
				     * answer (no connection, a server error, a
				     * stream cut short); it is sent elsewhere */
};

struct eng_router;

/* A transport to one worker.  Every call returns at once: a link waits on
 * nothing but the descriptors it adds to the router's poll.  It reports
 * back through the eng_router_* functions below, never from inside
 * send (so the router's state is settled when a report comes). */
struct rt_link_ops {
	const char *kind;
	/* True when this kind serves addr (a path, a URL). */
	bool (*accepts)(const char *addr);
	int (*open)(struct eng_router *r, int worker, const char *addr, void **link,
		    struct eng_error *err);
	/* Queues a request to the worker; a connection is made if there is
	 * none.  Non-zero: the link is broken (err says why); nothing sent. */
	int (*send)(void *link, const struct rt_send *s, struct eng_error *err);
	/* Asks the worker to drop an attempt; its answers are ignored anyway. */
	void (*cancel)(void *link, uint64_t wire_id);
	/* Asks the worker to empty its prefix cache (ordered after what was
	 * sent before). */
	void (*flush_cache)(void *link);
	/* Starts a health probe unless one is running; its outcome comes
	 * through eng_router_probed, by deadline (seconds, monotonic) at the
	 * latest. */
	void (*probe)(void *link, double deadline);
	/* Adds the descriptors to watch to ps. */
	void (*watch)(void *link, struct pollfd *fds, int *n, int cap);
	/* Handles what poll found (all of fds[0 .. n), any link's). */
	void (*dispatch)(void *link, const struct pollfd *fds, int n);
	/* Work that does not show in a descriptor (a timer, a library's own
	 * loop); may be NULL. */
	void (*step)(void *link, double now);
	/* Drops the request connection and what is in flight on it. */
	void (*disconnect)(void *link);
	/* The worker's own figures from its last good probe (new ref), or NULL. */
	json_t *(*last_status)(void *link);
	void (*close)(void *link);
};

extern const struct rt_link_ops eng_link_sock;
extern const struct rt_link_ops eng_link_http;

/* The tokenizer the router renders with (links that send text need it). */
struct eng_tokenizer *eng_router_tokenizer(struct eng_router *r);

/* Reports from links.  Unknown or abandoned wire ids are ignored. */
void eng_router_token(struct eng_router *r, int worker, uint64_t wire_id, int32_t token,
		      int32_t index);
void eng_router_result(struct eng_router *r, int worker, uint64_t wire_id,
		       const struct rt_result *res);
/* The connection failed or the worker closed it: the worker is down. */
void eng_router_broken(struct eng_router *r, int worker, const char *why);
/* A probe's outcome: ok, or why not. */
void eng_router_probed(struct eng_router *r, int worker, bool ok, const char *why);

/* The executor: router.c. */

/* Creates a router over p's workers, reporting to cb (the runner's); tok
 * (which must outlive it) is the model's tokenizer.  It probes them until
 * all answer or the startup timeout passes; ENG_E_IO when none does. */
int eng_router_create(const struct eng_router_params *p, struct eng_tokenizer *tok,
		      const struct eng_sched_callbacks *cb, struct eng_router **out,
		      struct eng_error *err);
void eng_router_free(struct eng_router *r);

/* What a runner executor does (runner.h), with the scheduler's contract:
 * submit returns an id >= 0 (or a negative ENG_E_* with err filled) and
 * reports through cb with p->user, on_token for every token as it comes
 * and on_finish once, only from inside step; cancel finishes a request
 * with ENG_FINISH_ABORT by the next step; step does one round of I/O,
 * health checks and routing, waiting up to max_wait_s for a worker; busy
 * is true while requests are in flight and while a health check is due
 * or running, so that the event loop steps an idle router too. */
int eng_router_submit(struct eng_router *r, const struct eng_request_params *p,
		      const struct eng_conv *c, int32_t turn, struct eng_error *err);
void eng_router_cancel(struct eng_router *r, int id);
/* Ends a request as stopped (a stop string found in its text), with the
 * tokens it had; its worker is told to drop it.  Reported by the next
 * step. */
void eng_router_stop(struct eng_router *r, int id);
bool eng_router_busy(const struct eng_router *r);
void eng_router_step(struct eng_router *r, double max_wait_s);
void eng_router_get_stats(const struct eng_router *r, struct eng_sched_stats *st);
/* Asks every live worker to empty its prefix cache, and empties the trees. */
void eng_router_flush_cache(struct eng_router *r);

/* The same as a runner executor (eng_runner_create_exec); free is
 * eng_router_free. */
extern const struct eng_executor_ops eng_router_ops;

/* The router's settings and its workers' state (new ref): the run
 * record's "router" and the status reply. */
json_t *eng_router_settings(const struct eng_router *r);

/* Counters of one worker, since the router started. */
struct eng_router_worker_stats {
	int64_t sent, answered;     /* attempts sent, answers taken */
	int64_t failed_over;        /* attempts taken away and re-sent elsewhere */
	int64_t timeouts;           /* requests and probes that timed out */
	int64_t marked_down, rejoined;
};

int eng_router_n_workers(const struct eng_router *r);

/* The tightest context length and KV pool (tokens) the workers reported in
 * their last status (socket workers); 0 for each that none reported. */
void eng_router_limits(const struct eng_router *r, int64_t *max_context, int64_t *pool_tokens);
void eng_router_worker_stats(const struct eng_router *r, int worker,
			     struct eng_router_worker_stats *st);

/* What a run records of routing (router_record.c). */

/* Adds a routed turn's fields to its request record: worker, retried,
 * router_queue_time, worker_queue_time, queue_depth. */
void eng_route_record_fields(json_t *rec, const struct eng_route_info *ri);

/* Per-worker totals of one run's routed turns. */
struct eng_route_tally;

/* Counts a finished turn; 0 or ENG_E_NOMEM (*tally is created on first use). */
int eng_route_tally_add(struct eng_route_tally **tally, const struct eng_request_timing *t);

/* The run record's "workers" array (new ref), one object per worker that
 * answered a turn, in worker order; an empty array for NULL. */
json_t *eng_route_tally_json(const struct eng_route_tally *tally);

void eng_route_tally_free(struct eng_route_tally *tally);

#endif
