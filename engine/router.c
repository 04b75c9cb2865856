/*
 * router.c: the router executor: requests and routing (see router.h;
 * router_health.c keeps the workers' health, router_setup.c makes it).
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
#include "engine/router_int.h"
#include "engine/clock.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void rt_req_free(struct eng_router *r, struct rt_req *q)
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
void rt_fail_over(struct eng_router *r, struct rt_req *q)
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
	rt_req_free(r, q);
	if (r->cb->on_finish)
		r->cb->on_finish(user, &er);
}

static void finish_error(struct eng_router *r, struct rt_req *q, enum eng_finish f,
			 const char *why)
{
	struct rt_result res = { .finish = f, .error = why, .worker_queue_time = -1 };

	finish(r, q, &res);
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
		rt_mark_down(r, k, err.msg);
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
		rt_fail_over(r, q);
		rt_strike(r, k, res->error ? res->error : "the worker failed a request");
		return;
	}
	r->w[k].fails = 0;
	r->w[k].st.answered++;
	if (res->finish == ENG_FINISH_ABORT && !q->cancelled) {
		/* the worker dropped it (shutting down): send it elsewhere */
		rt_fail_over(r, q);
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
void rt_service_links(struct eng_router *r, double wait_s)
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

	rt_probe_workers(r, now, r->p.health_check_interval_s);
	rt_check_timeouts(r, now);
	route_queued(r, now);
	rt_service_links(r, max_wait_s);
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
