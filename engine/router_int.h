/*
 * router_int.h: the router's state, shared by router.c (requests and
 * routing), router_health.c (health checks, marking workers down and up,
 * the wait for them at the start) and router_setup.c (creation, settings,
 * the executor's table).  Nothing outside these files includes it.
 */
#ifndef TRAJBENCH_ENG_ROUTER_INT_H
#define TRAJBENCH_ENG_ROUTER_INT_H

#include "engine/router.h"
#include "engine/route_tree.h"

#define MAX_WORKERS 64           /* a request's failed-on set is one uint64_t */
#define STARTUP_RETRY_S 0.2      /* probe period while workers start */

struct rt_worker {
	char *addr;
	const struct rt_link_ops *ops;
	void *link;
	bool up, ever_up, probing;
	int32_t fails, oks;          /* consecutive failures and good probes */
	double probe_deadline, next_probe;
	char why[256];               /* the last failure, for status and errors */
	int32_t queue_depth;
	int64_t inflight_tokens;
	struct eng_route_tree *tree; /* needs_tree policies only */
	int fd_start, fd_count;      /* this poll round's descriptors */
	struct eng_router_worker_stats st;
};

struct rt_req {
	uint64_t wire_id;            /* the attempt in flight; 0 when queued */
	int id;                      /* the runner's */
	void *user;
	struct eng_request_params p; /* prompt and forced output point into ids */
	int32_t *ids;                /* (prompt_len [+ max_new_tokens forced]
				      * [+ n_stop_ids]) */
	const struct eng_conv *conv;
	int32_t turn;
	int worker;                  /* in flight there, or -1: queued */
	uint32_t slot;
	double arrival_t, sent_t;
	int32_t retries;
	struct eng_ids out;          /* the tokens passed to the runner, for a stop */
	int32_t n_forwarded;         /* tokens passed to the runner (a retry does
				      * not pass them twice) */
	uint64_t failed_on;          /* workers that failed it: avoided */
	int32_t depth_at_send, match_at_send;
	int64_t tokens;              /* what it counts in inflight_tokens */
	bool cancelled;
	bool stopped;                /* ends as stopped (a stop string), with out */
	int stopped_at;              /* the worker it was at then, or -1 */
	struct rt_req *prev, *next;  /* submission order */
};

struct slot {
	struct rt_req *q;
	uint32_t gen;
};

struct eng_router {
	struct eng_router_params p;
	struct rt_worker *w;         /* (n) */
	int n;
	struct eng_route_policy pol;
	struct eng_tokenizer *tok;
	const struct eng_sched_callbacks *cb;
	struct rt_req *head, *tail;
	int32_t n_reqs, n_queued;
	struct slot *slots;          /* (n_slots, cap_slots) */
	uint32_t n_slots, cap_slots;
	uint32_t *free_slots;        /* (n_free) */
	uint32_t n_free;
	int next_id;
	double next_eviction;
	struct eng_sched_stats st;
	struct eng_route_worker *snap; /* (n) */
	struct pollfd *fds;          /* (cap_fds) */
	int cap_fds;
};

/* router.c */

/* Forgets q (its slot, its place in the list). */
void rt_req_free(struct eng_router *r, struct rt_req *q);

/* q's worker failed it: back to the queue, to go elsewhere (retried). */
void rt_fail_over(struct eng_router *r, struct rt_req *q);

/* One round of every link's I/O, waiting up to wait_s for a descriptor. */
void rt_service_links(struct eng_router *r, double wait_s);

/* router_health.c */

/* Tells p.on_event, if set. */
void rt_note(const struct eng_router *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Worker k is down: its requests go back to the queue, its tree empties. */
void rt_mark_down(struct eng_router *r, int k, const char *why);

/* A failure counted against worker k; enough in a row take it down. */
void rt_strike(struct eng_router *r, int k, const char *why);

/* Starts the probes that are due (every period seconds); fails those past
 * their deadline. */
void rt_probe_workers(struct eng_router *r, double now, double period);

/* Requests in flight past request_timeout_s fail over and strike their
 * workers. */
void rt_check_timeouts(struct eng_router *r, double now);

/* Probes until every worker is up or the startup timeout passes; ENG_E_IO
 * when none is up. */
int rt_wait_for_workers(struct eng_router *r, struct eng_error *err);

#endif
