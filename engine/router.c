/*
 * router.c: the router executor: requests, routing, health (see router.h).
 *
 * Every request the runner submits gets a record here from submission to
 * its one result.  It is queued, routed (the policy picks over a snapshot
 * of the workers), sent through its worker's link, and answered; when its
 * worker fails (the connection closes, probes fail, or the request times
 * out) it goes back to the queue and is sent again, from its prompt, to
 * another worker.  The request's attempts are told apart by wire id: slot
 * index in the low 32 bits, the slot's generation in the high ones, so a
 * link's report finds its request in O(1) and an abandoned attempt's
 * report finds nothing.
 *
 * Invariants (checked by the tests through the records):
 *   - a request is in exactly one place: queued (worker -1) or in flight
 *     at one worker, counted in that worker's queue depth;
 *   - the runner hears on_finish once per request, and never from inside
 *     submit or cancel (only from step), as from the scheduler.
 *
 * What it refuses to do: it never retries a request the worker answered
 * with an error (a prompt too long for its context fails everywhere); only
 * what a worker failed to answer is sent again.
 */
#include <config.h>
#include "engine/router.h"
#include "engine/route_tree.h"
#include "engine/clock.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static const struct rt_link_ops *const link_kinds[] = { &eng_link_http, &eng_link_sock };

void eng_router_default_params(struct eng_router_params *p)
{
	memset(p, 0, sizeof(*p));
	p->policy = "cache_aware";
	eng_route_default_params(&p->route);
	p->health_check_interval_s = 60;
	p->health_check_timeout_s = 5;
	p->health_failure_threshold = 3;
	p->health_success_threshold = 2;
	p->request_timeout_s = 1800;
	p->retry_max_retries = 5;
	p->worker_startup_timeout_s = 300;
}

/* ---------------------------------------------------------------- slots */

static int slot_take(struct eng_router *r, struct rt_req *q)
{
	if (r->n_free > 0) {
		q->slot = r->free_slots[--r->n_free];
	} else {
		if (r->n_slots == r->cap_slots) {
			uint32_t cap = r->cap_slots ? 2 * r->cap_slots : 64;
			struct slot *s = realloc(r->slots, sizeof(*s) * cap);
			uint32_t *f = s ? realloc(r->free_slots, sizeof(*f) * cap) : NULL;

			if (s)
				r->slots = s;
			if (!s || !f)
				return ENG_E_NOMEM;
			r->free_slots = f;
			r->cap_slots = cap;
		}
		q->slot = r->n_slots++;
		r->slots[q->slot].gen = 0;
	}
	r->slots[q->slot].q = q;
	return 0;
}

/* A new wire id for q's next attempt; the old one stops matching. */
static uint64_t new_wire_id(struct eng_router *r, struct rt_req *q)
{
	uint32_t gen = ++r->slots[q->slot].gen;

	if (gen == 0)
		gen = ++r->slots[q->slot].gen;
	return (uint64_t)gen << 32 | q->slot;
}

static struct rt_req *find_wire(struct eng_router *r, int worker, uint64_t wire_id)
{
	uint32_t s = (uint32_t)wire_id;
	struct rt_req *q;

	if (s >= r->n_slots || !(q = r->slots[s].q))
		return NULL;
	return q->wire_id == wire_id && q->worker == worker ? q : NULL;
}

/* ---------------------------------------------------------------- requests */

static void req_free(struct eng_router *r, struct rt_req *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		r->head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	else
		r->tail = q->prev;
	r->slots[q->slot].q = NULL;
	r->slots[q->slot].gen++;
	r->free_slots[r->n_free++] = q->slot;
	r->n_reqs--;
	if (q->worker < 0)
		r->n_queued--;
	eng_ids_free(&q->out);
	free(q->ids);
	free(q);
}

/* Takes q off its worker (its attempt is abandoned) and queues it. */
static void unassign(struct eng_router *r, struct rt_req *q)
{
	struct rt_worker *w;

	if (q->worker < 0)
		return;
	w = &r->w[q->worker];
	w->queue_depth--;
	w->inflight_tokens -= q->tokens;
	q->worker = -1;
	q->wire_id = 0;
	r->n_queued++;
}

/* q's worker failed it: back to the queue, to go elsewhere. */
static void fail_over(struct eng_router *r, struct rt_req *q)
{
	int k = q->worker;

	if (k < 0)
		return;
	r->w[k].st.failed_over++;
	if (k < MAX_WORKERS)
		q->failed_on |= 1ull << k;
	unassign(r, q);
	q->retries++;
}

/* Hands the runner its result and forgets q. */
static void finish(struct eng_router *r, struct rt_req *q, const struct rt_result *res)
{
	int k = q->worker >= 0 ? q->worker : q->stopped ? q->stopped_at : -1;
	struct eng_route_info info = {
		.worker = k, .retried = q->retries,
		.router_queue_time = k >= 0 ? q->sent_t - q->arrival_t
				     : eng_mono_s() - q->arrival_t,
		.worker_queue_time = res->worker_queue_time,
		.queue_depth = q->depth_at_send, .match_tokens = q->match_at_send,
	};
	struct eng_request_result er = {
		.finish = res->finish, .output = res->output, .n_output = res->n_output,
		.prompt_len = res->prompt_len > 0 ? res->prompt_len : q->p.prompt_len,
		.cached_tokens = res->cached_tokens > 0 ? res->cached_tokens : 0,
		.error = res->error, .logprobs = res->logprobs, .route = &info,
		/* queued at the router, then at the worker before admission */
		.queue_time = info.router_queue_time +
			      (res->worker_queue_time > 0 ? res->worker_queue_time : 0),
	};
	void *user = q->user;

	info.worker_name = k >= 0 ? r->w[k].addr : NULL;
	r->st.n_finished++;
	r->st.generated_tokens += res->n_output;
	if (k >= 0) {
		r->st.prompt_tokens += er.prompt_len;
		r->st.cached_tokens += er.cached_tokens;
		r->st.computed_tokens += er.prompt_len - er.cached_tokens;
	}
	unassign(r, q);
	req_free(r, q);
	if (r->cb->on_finish)
		r->cb->on_finish(user, &er);
}

static void finish_error(struct eng_router *r, struct rt_req *q, enum eng_finish f,
			 const char *why)
{
	struct rt_result res = { .finish = f, .error = why, .worker_queue_time = -1 };

	finish(r, q, &res);
}

/* ---------------------------------------------------------------- health */

static void __attribute__((format(printf, 2, 3)))
note(const struct eng_router *r, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (!r->p.on_event)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->p.on_event(r->p.event_ctx, msg);
}

static void mark_down(struct eng_router *r, int k, const char *why)
{
	struct rt_worker *w = &r->w[k];

	snprintf(w->why, sizeof(w->why), "%s", why);
	w->fails = w->oks = 0;
	if (!w->up)
		return;
	w->up = false;
	w->st.marked_down++;
	w->ops->disconnect(w->link);
	for (struct rt_req *q = r->head; q; q = q->next)
		if (q->worker == k)
			fail_over(r, q);
	if (w->tree)
		eng_route_tree_clear(w->tree);
	note(r, "worker %s is down: %s", w->addr, why);
}

/* A failure counted against worker k (a probe, or a request that timed
 * out); enough in a row take it down. */
static void strike(struct eng_router *r, int k, const char *why)
{
	struct rt_worker *w = &r->w[k];

	w->oks = 0;
	snprintf(w->why, sizeof(w->why), "%s", why);
	if (++w->fails >= r->p.health_failure_threshold && w->up)
		mark_down(r, k, why);
}

void eng_router_probed(struct eng_router *r, int k, bool ok, const char *why)
{
	struct rt_worker *w = &r->w[k];

	w->probing = false;
	if (!ok) {
		if (why && strstr(why, "timed out"))
			w->st.timeouts++;
		strike(r, k, why ? why : "probe failed");
		return;
	}
	w->fails = 0;
	w->oks++;
	if (!w->up && (!w->ever_up || w->oks >= r->p.health_success_threshold)) {
		if (w->ever_up) {
			w->st.rejoined++;
			note(r, "worker %s is back", w->addr);
		}
		w->up = w->ever_up = true;
		w->why[0] = '\0';
	}
}

/* A connection closed with nothing in flight (the worker closes idle
 * connections) says nothing of the worker: the next request reconnects,
 * and a worker that is gone fails that connect. */
void eng_router_broken(struct eng_router *r, int k, const char *why)
{
	if (r->w[k].queue_depth > 0)
		mark_down(r, k, why);
}

/* Starts the probes that are due; fails those past their deadline. */
static void probe_workers(struct eng_router *r, double now, double period)
{
	for (int k = 0; k < r->n; k++) {
		struct rt_worker *w = &r->w[k];

		if (w->probing && now > w->probe_deadline + 1.0)
			eng_router_probed(r, k, false, "health check timed out");
		if (w->probing || now < w->next_probe)
			continue;
		w->probing = true;
		w->probe_deadline = now + r->p.health_check_timeout_s;
		w->next_probe = now + period;
		w->ops->probe(w->link, w->probe_deadline);
	}
}

/* Requests in flight past request_timeout_s: their workers failed them. */
static void check_timeouts(struct eng_router *r, double now)
{
	for (struct rt_req *q = r->head; q; q = q->next) {
		int k = q->worker;
		char why[64];

		if (k < 0 || now - q->sent_t <= r->p.request_timeout_s)
			continue;
		r->w[k].st.timeouts++;
		r->w[k].ops->cancel(r->w[k].link, q->wire_id);
		fail_over(r, q);
		snprintf(why, sizeof(why), "a request timed out after %g s", r->p.request_timeout_s);
		strike(r, k, why);
	}
}

/* ---------------------------------------------------------------- routing */

static void snapshot(struct eng_router *r, const struct rt_req *q, bool avoid_failed)
{
	bool tree = r->pol.ops->needs_tree;

	for (int k = 0; k < r->n; k++) {
		const struct rt_worker *w = &r->w[k];
		struct eng_route_worker *s = &r->snap[k];

		s->healthy = w->up && !(avoid_failed && k < MAX_WORKERS && (q->failed_on >> k & 1));
		s->queue_depth = w->queue_depth;
		s->inflight_tokens = w->inflight_tokens;
		s->match_tokens = tree && s->healthy
				  ? eng_route_tree_match(w->tree, q->p.prompt, q->p.prompt_len) : 0;
		s->tree_tokens = tree ? eng_route_tree_size(w->tree) : 0;
	}
}

/* Sends q to worker k.  False when the link broke (k is then down). */
static bool send_to(struct eng_router *r, struct rt_req *q, int k, double now)
{
	struct rt_worker *w = &r->w[k];
	struct rt_send s = { new_wire_id(r, q), &q->p, q->conv, q->turn };
	struct eng_error err;

	if (w->ops->send(w->link, &s, &err) != 0) {
		mark_down(r, k, err.msg);
		return false;
	}
	q->wire_id = s.wire_id;
	q->worker = k;
	q->sent_t = now;
	r->n_queued--;
	w->queue_depth++;
	w->inflight_tokens += q->tokens;
	w->st.sent++;
	q->depth_at_send = w->queue_depth;
	q->match_at_send = r->snap[k].match_tokens;
	if (w->tree && eng_route_tree_insert(w->tree, q->p.prompt, q->p.prompt_len) != 0)
		eng_route_tree_clear(w->tree); /* out of memory: forget, do not guess */
	return true;
}

/* Routes q if some worker is up; false when none is. */
static bool route(struct eng_router *r, struct rt_req *q, double now)
{
	struct eng_route_req rq = { q->p.prompt, q->p.prompt_len, q->p.max_new_tokens };

	for (int tries = 0; tries <= r->n; tries++) {
		int k;

		snapshot(r, q, true);
		k = eng_route_policy_pick(&r->pol, &rq, r->snap, r->n);
		if (k < 0) {
			/* every live worker failed it once: any of them again */
			snapshot(r, q, false);
			k = eng_route_policy_pick(&r->pol, &rq, r->snap, r->n);
		}
		if (k < 0)
			return false;
		if (send_to(r, q, k, now))
			return true;
	}
	return false;
}

/* Routes the queue in order; ends what cannot be sent. */
static void route_queued(struct eng_router *r, double now)
{
	struct rt_req *q = r->head, *next;
	bool any_up = true;

	for (; q && r->n_queued > 0; q = next) {
		next = q->next;
		if (q->worker >= 0)
			continue;
		if (q->cancelled && q->stopped) {
			struct rt_result res = { .finish = ENG_FINISH_STOP, .output = q->out.ids,
						 .n_output = (int32_t)q->out.n, .cached_tokens = -1,
						 .worker_queue_time = -1 };

			finish(r, q, &res);
		} else if (q->cancelled) {
			finish_error(r, q, ENG_FINISH_ABORT, "cancelled");
		} else if (q->retries > r->p.retry_max_retries) {
			finish_error(r, q, ENG_FINISH_ERROR,
				     "no worker answered (retries exhausted)");
		} else if (!any_up || !route(r, q, now)) {
			any_up = false;
			if (now - q->arrival_t > r->p.request_timeout_s)
				finish_error(r, q, ENG_FINISH_ERROR, "no worker available");
		}
	}
}

/* ---------------------------------------------------------------- reports */

void eng_router_token(struct eng_router *r, int k, uint64_t wire_id, int32_t token,
		      int32_t index)
{
	struct rt_req *q = find_wire(r, k, wire_id);

	if (!q || q->cancelled || index < q->n_forwarded)
		return;
	q->n_forwarded = index + 1;
	eng_ids_push(&q->out, token); /* out of memory: a stop reports fewer */
	if (r->cb->on_token)
		r->cb->on_token(q->user, token, index);
}

void eng_router_result(struct eng_router *r, int k, uint64_t wire_id, const struct rt_result *res)
{
	struct rt_req *q = find_wire(r, k, wire_id);

	if (!q)
		return;
	if (res->worker_failed && !q->cancelled) {
		fail_over(r, q);
		strike(r, k, res->error ? res->error : "the worker failed a request");
		return;
	}
	r->w[k].fails = 0;
	r->w[k].st.answered++;
	if (res->finish == ENG_FINISH_ABORT && !q->cancelled) {
		/* the worker dropped it (shutting down): send it elsewhere */
		fail_over(r, q);
		return;
	}
	finish(r, q, res);
}

/* ---------------------------------------------------------------- the executor's face */

int eng_router_submit(struct eng_router *r, const struct eng_request_params *p,
		      const struct eng_conv *c, int32_t turn, struct eng_error *err)
{
	int32_t n_forced = p->forced_output ? p->max_new_tokens : 0;
	int32_t n_stop = p->stop_ids ? p->n_stop_ids : 0;
	size_t n_ids = (size_t)p->prompt_len + (size_t)n_forced + (size_t)n_stop;
	struct rt_req *q = calloc(1, sizeof(*q));

	if (p->prompt_len <= 0) {
		free(q);
		return eng_error_set(err, ENG_E_INVALID, NULL, 0, "empty prompt");
	}
	if (!q || !(q->ids = malloc(sizeof(int32_t) * n_ids)) ||
	    slot_take(r, q) != 0) {
		if (q)
			free(q->ids);
		free(q);
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	}
	memcpy(q->ids, p->prompt, sizeof(int32_t) * (size_t)p->prompt_len);
	if (n_forced)
		memcpy(q->ids + p->prompt_len, p->forced_output, sizeof(int32_t) * (size_t)n_forced);
	if (n_stop)
		memcpy(q->ids + p->prompt_len + n_forced, p->stop_ids, sizeof(int32_t) * (size_t)n_stop);
	q->p = *p;
	q->p.prompt = q->ids;
	q->p.forced_output = n_forced ? q->ids + p->prompt_len : NULL;
	q->p.stop_ids = n_stop ? q->ids + p->prompt_len + n_forced : NULL;
	q->p.n_stop_ids = n_stop;
	q->p.token_logprobs = NULL; /* not carried to the workers */
	q->p.top_logprobs = 0;
	q->user = p->user;
	q->conv = c;
	q->turn = turn;
	q->worker = -1;
	q->tokens = (int64_t)p->prompt_len + (p->score ? 0 : p->max_new_tokens);
	q->id = r->next_id;
	r->next_id = r->next_id == INT_MAX ? 0 : r->next_id + 1;
	q->arrival_t = eng_mono_s();
	q->prev = r->tail;
	if (r->tail)
		r->tail->next = q;
	else
		r->head = q;
	r->tail = q;
	r->n_reqs++;
	r->n_queued++;
	route(r, q, q->arrival_t);
	return q->id;
}

/* Takes q off its worker now; the next step ends it. */
static void withdraw(struct eng_router *r, struct rt_req *q)
{
	q->cancelled = true;
	if (q->worker >= 0) {
		r->w[q->worker].ops->cancel(r->w[q->worker].link, q->wire_id);
		unassign(r, q);
	}
}

void eng_router_stop(struct eng_router *r, int id)
{
	for (struct rt_req *q = r->head; q; q = q->next) {
		if (q->id == id && !q->cancelled) {
			q->stopped = true;
			q->stopped_at = q->worker;
			withdraw(r, q);
			return;
		}
	}
}

void eng_router_cancel(struct eng_router *r, int id)
{

	for (struct rt_req *q = r->head; q; q = q->next) {
		if (q->id != id || q->cancelled)
			continue;
		withdraw(r, q);
		return;
	}
}

/* Busy with requests, or with a health check that is due or running: an
 * idle router keeps checking its workers, so a worker that died or came
 * back is known before the next request comes. */
bool eng_router_busy(const struct eng_router *r)
{
	double now;

	if (r->n_reqs > 0)
		return true;
	now = eng_mono_s();
	for (int k = 0; k < r->n; k++)
		if (r->w[k].probing || now >= r->w[k].next_probe)
			return true;
	return false;
}

/* Polls every link's descriptors for up to wait_s and hands out what came. */
static void poll_links(struct eng_router *r, double wait_s)
{
	int n = 0;

	for (int k = 0; k < r->n; k++) {
		struct rt_worker *w = &r->w[k];

		if (r->cap_fds - n < 8) {
			int cap = r->cap_fds ? 2 * r->cap_fds : 32;
			struct pollfd *f = realloc(r->fds, sizeof(*f) * (size_t)cap);

			if (!f)
				return;
			r->fds = f;
			r->cap_fds = cap;
		}
		w->fd_start = n;
		w->ops->watch(w->link, r->fds, &n, r->cap_fds);
		w->fd_count = n - w->fd_start;
	}
	if (poll(r->fds, (nfds_t)n, (int)ceil(wait_s * 1000)) <= 0)
		return;
	for (int k = 0; k < r->n; k++)
		if (r->w[k].fd_count > 0)
			r->w[k].ops->dispatch(r->w[k].link, r->fds + r->w[k].fd_start,
					      r->w[k].fd_count);
}

/* One round of every link's I/O: their descriptors, then their own work. */
static void service_links(struct eng_router *r, double wait_s)
{
	double now;

	poll_links(r, wait_s);
	now = eng_mono_s();
	for (int k = 0; k < r->n; k++)
		if (r->w[k].ops->step)
			r->w[k].ops->step(r->w[k].link, now);
}

static void evict_trees(struct eng_router *r, double now)
{
	if (!r->pol.ops->needs_tree || now < r->next_eviction)
		return;
	r->next_eviction = now + r->p.route.eviction_interval_s;
	for (int k = 0; k < r->n; k++)
		eng_route_tree_evict(r->w[k].tree, r->p.route.max_tree_size);
}

void eng_router_step(struct eng_router *r, double max_wait_s)
{
	double now = eng_mono_s();

	probe_workers(r, now, r->p.health_check_interval_s);
	check_timeouts(r, now);
	route_queued(r, now);
	service_links(r, max_wait_s);
	now = eng_mono_s();
	route_queued(r, now);
	evict_trees(r, now);
	r->st.n_steps++;
	r->st.n_running = r->n_reqs - r->n_queued;
	r->st.n_waiting = r->n_queued;
}

void eng_router_get_stats(const struct eng_router *r, struct eng_sched_stats *st)
{

	*st = r->st;
	st->n_running = r->n_reqs - r->n_queued;
	st->n_waiting = r->n_queued;
}

void eng_router_flush_cache(struct eng_router *r)
{

	for (int k = 0; k < r->n; k++) {
		if (r->w[k].up)
			r->w[k].ops->flush_cache(r->w[k].link);
		if (r->w[k].tree)
			eng_route_tree_clear(r->w[k].tree);
	}
}

void eng_router_free(struct eng_router *r)
{
	if (!r)
		return;
	while (r->head)
		req_free(r, r->head);
	for (int k = 0; k < r->n; k++) {
		if (r->w[k].link)
			r->w[k].ops->close(r->w[k].link);
		eng_route_tree_free(r->w[k].tree);
		free(r->w[k].addr);
	}
	eng_route_policy_fini(&r->pol);
	free(r->w);
	free(r->snap);
	free(r->fds);
	free(r->slots);
	free(r->free_slots);
	free(r);
}

/* ---------------------------------------------------------------- setup */

static int check_params(const struct eng_router_params *p, struct eng_error *err)
{
	if (p->n_workers < 1 || p->n_workers > MAX_WORKERS)
		return eng_error_set(err, ENG_E_INVALID, NULL, 0, "a router needs 1 to %d workers",
				     MAX_WORKERS);
	for (int i = 0; i < p->n_workers; i++)
		for (int j = 0; j < i; j++)
			if (!strcmp(p->workers[i], p->workers[j]))
				return eng_error_set(err, ENG_E_INVALID, NULL, 0,
						     "worker %s given twice", p->workers[i]);
	if (!(p->health_check_interval_s > 0) || !(p->health_check_timeout_s > 0) ||
	    p->health_failure_threshold < 1 || p->health_success_threshold < 1 ||
	    !(p->request_timeout_s > 0) || p->retry_max_retries < 0 ||
	    !(p->worker_startup_timeout_s >= 0))
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "health check interval, timeouts and thresholds must be "
				     "positive");
	return 0;
}

static int open_worker(struct eng_router *r, int k, const char *addr, struct eng_error *err)
{
	struct rt_worker *w = &r->w[k];

	if (!(w->addr = strdup(addr)))
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	for (size_t i = 0; i < sizeof(link_kinds) / sizeof(link_kinds[0]) && !w->ops; i++)
		if (link_kinds[i]->accepts(addr))
			w->ops = link_kinds[i];
	if (!w->ops)
		return eng_error_set(err, ENG_E_INVALID, addr, 0,
				     "not a worker address (a socket path or an http:// URL)");
	if (r->pol.ops->needs_tree && !(w->tree = eng_route_tree_new()))
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	snprintf(w->why, sizeof(w->why), "not answered yet");
	return w->ops->open(r, k, addr, &w->link, err);
}

/* Probes until every worker is up or the startup timeout passes. */
static int wait_for_workers(struct eng_router *r, struct eng_error *err)
{
	double t0 = eng_mono_s(), now = t0;
	int up = 0;

	for (;;) {
		up = 0;
		for (int k = 0; k < r->n; k++)
			up += r->w[k].up;
		if (up == r->n || now - t0 >= r->p.worker_startup_timeout_s)
			break;
		probe_workers(r, now, STARTUP_RETRY_S);
		service_links(r, 0.02);
		now = eng_mono_s();
	}
	for (int k = 0; k < r->n; k++) {
		r->w[k].probing = false; /* a late answer is taken as the next probe's */
		r->w[k].next_probe = now + r->p.health_check_interval_s;
		if (!r->w[k].up)
			note(r, "worker %s did not answer: %s", r->w[k].addr, r->w[k].why);
	}
	if (up > 0)
		return 0;
	return eng_error_set(err, ENG_E_IO, r->w[0].addr, 0, "no worker answers: %s",
			     r->w[0].why);
}

struct eng_tokenizer *eng_router_tokenizer(struct eng_router *r)
{
	return r->tok;
}

int eng_router_create(const struct eng_router_params *p, struct eng_tokenizer *tok,
		      const struct eng_sched_callbacks *cb, struct eng_router **out,
		      struct eng_error *err)
{
	struct eng_router *r = calloc(1, sizeof(*r));
	int rc;

	*out = NULL;
	if (!r)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	r->p = *p;
	r->p.workers = NULL; /* borrowed: the addresses are copied */
	r->tok = tok;
	r->cb = cb;
	rc = check_params(p, err);
	if (rc == 0)
		rc = eng_route_policy_init(&r->pol, p->policy, &p->route, err);
	if (rc == 0) {
		r->w = calloc((size_t)p->n_workers, sizeof(*r->w));
		r->snap = calloc((size_t)p->n_workers, sizeof(*r->snap));
		rc = r->w && r->snap ? 0 : eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	}
	for (int k = 0; rc == 0 && k < p->n_workers; k++) {
		r->n = k + 1;
		rc = open_worker(r, k, p->workers[k], err);
	}
	if (rc == 0)
		rc = wait_for_workers(r, err);
	if (rc != 0) {
		eng_router_free(r);
		return rc;
	}
	r->next_eviction = eng_mono_s() + r->p.route.eviction_interval_s;
	*out = r;
	return 0;
}

/* ---------------------------------------------------------------- reporting */

int eng_router_n_workers(const struct eng_router *r)
{
	return r->n;
}

/* min(*cur, v) over the values reported (> 0); *cur 0 means none yet. */
static void tighten(int64_t *cur, const json_t *v)
{
	int64_t x = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;

	if (x > 0 && (*cur == 0 || x < *cur))
		*cur = x;
}

void eng_router_limits(const struct eng_router *r, int64_t *max_context, int64_t *pool_tokens)
{
	*max_context = *pool_tokens = 0;
	for (int k = 0; k < r->n; k++) {
		json_t *st = r->w[k].ops->last_status(r->w[k].link);
		const json_t *set = json_object_get(st, "settings");

		tighten(max_context, json_object_get(set, "context_length"));
		tighten(pool_tokens, json_object_get(set, "max_total_tokens"));
		json_decref(st);
	}
}

void eng_router_worker_stats(const struct eng_router *r, int k, struct eng_router_worker_stats *st)
{
	*st = r->w[k].st;
}

static json_t *worker_json(const struct eng_router *r, int k)
{
	const struct rt_worker *w = &r->w[k];
	json_t *j = json_pack("{s:s,s:s,s:b,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
			      "name", w->addr, "transport", w->ops->kind, "up", w->up,
			      "queue_depth", w->queue_depth,
			      "inflight_tokens", (json_int_t)w->inflight_tokens,
			      "tree_tokens", (json_int_t)(w->tree ? eng_route_tree_size(w->tree) : 0),
			      "sent", (json_int_t)w->st.sent, "answered", (json_int_t)w->st.answered,
			      "failed_over", (json_int_t)w->st.failed_over,
			      "timeouts", (json_int_t)w->st.timeouts,
			      "marked_down", (json_int_t)w->st.marked_down,
			      "rejoined", (json_int_t)w->st.rejoined);

	if (j)
		json_object_set_new(j, "last_error", w->why[0] ? json_string(w->why) : json_null());
	return j;
}

json_t *eng_router_settings(const struct eng_router *r)
{
	const struct eng_route_params *rp = &r->p.route;
	json_t *workers = json_array();
	json_t *j = json_pack("{s:s,s:f,s:i,s:f,s:f,s:I,s:I,s:f,s:f,s:i,s:i,s:f,s:i}",
			      "policy", r->pol.ops->name, "cache_threshold", rp->cache_threshold,
			      "balance_abs_threshold", rp->balance_abs_threshold,
			      "balance_rel_threshold", rp->balance_rel_threshold,
			      "eviction_interval", rp->eviction_interval_s,
			      "max_tree_size", (json_int_t)rp->max_tree_size,
			      "seed", (json_int_t)rp->seed,
			      "health_check_interval", r->p.health_check_interval_s,
			      "health_check_timeout", r->p.health_check_timeout_s,
			      "health_failure_threshold", r->p.health_failure_threshold,
			      "health_success_threshold", r->p.health_success_threshold,
			      "request_timeout", r->p.request_timeout_s,
			      "retry_max_retries", r->p.retry_max_retries);

	for (int k = 0; k < r->n; k++)
		json_array_append_new(workers, worker_json(r, k));
	json_object_set_new(j, "worker_health", workers);
	return j;
}

/* ---------------------------------------------------------------- as an executor */

static int exec_submit(void *x, const struct eng_request_params *p, const struct eng_conv *c,
		       int32_t turn, struct eng_error *err)
{
	return eng_router_submit(x, p, c, turn, err);
}

static void exec_cancel(void *x, int id) { eng_router_cancel(x, id); }
static void exec_stop(void *x, int id) { eng_router_stop(x, id); }
static bool exec_busy(const void *x) { return eng_router_busy(x); }
static void exec_stats(const void *x, struct eng_sched_stats *st) { eng_router_get_stats(x, st); }
static void exec_flush(void *x) { eng_router_flush_cache(x); }
static void exec_free(void *x) { eng_router_free(x); }

static int exec_step(void *x, double max_wait_s, struct eng_error *err)
{
	(void)err;
	eng_router_step(x, max_wait_s);
	return 0;
}

/* The workers keep no conversation between turns for the router (a turn
 * may go elsewhere), so there is nothing to end; the peak of pages is a
 * worker's own figure. */
static void exec_reset_peak(void *x) { (void)x; }
static void exec_end_conversation(void *x, uint64_t key) { (void)x; (void)key; }

/* No context bound here: each worker refuses what does not fit its own
 * (a failed turn, as from the local scheduler). */
const struct eng_executor_ops eng_router_ops = {
	exec_submit, exec_cancel, exec_busy, exec_step, exec_stats, exec_flush,
	exec_reset_peak, exec_end_conversation, exec_free, NULL, exec_stop,
};
