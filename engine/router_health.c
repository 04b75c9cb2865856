/*
 * router_health.c: the router's view of its workers' health (see
 * engine.h, "router").
 *
 * A worker is up or down.  Probes (a link's status command or GET
 * /health) run every health_check_interval_s whether requests are in
 * flight or not; a failed or late probe, a request past
 * request_timeout_s, or an HTTP worker's failed answer is a strike, and
 * health_failure_threshold strikes in a row take the worker down, as does
 * a connection it closes with requests in flight.  Down, its requests go
 * back to the queue (to be re-sent elsewhere, from their prompts) and its
 * tree empties, since its cache is no longer known; it comes back after
 * health_success_threshold good probes in a row, or at its first when it
 * was never up (a worker still loading at the start).
 */
#include <config.h>
#include "engine/router_int.h"
#include "engine/clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void __attribute__((format(printf, 2, 3)))
rt_note(const struct eng_router *r, const char *fmt, ...)
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

void rt_mark_down(struct eng_router *r, int k, const char *why)
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
			rt_fail_over(r, q);
	if (w->tree)
		eng_route_tree_clear(w->tree);
	rt_note(r, "worker %s is down: %s", w->addr, why);
}

/* A failure counted against worker k (a probe, or a request that timed
 * out); enough in a row take it down. */
void rt_strike(struct eng_router *r, int k, const char *why)
{
	struct rt_worker *w = &r->w[k];

	w->oks = 0;
	snprintf(w->why, sizeof(w->why), "%s", why);
	if (++w->fails >= r->p.health_failure_threshold && w->up)
		rt_mark_down(r, k, why);
}

void eng_router_probed(struct eng_router *r, int k, bool ok, const char *why)
{
	struct rt_worker *w = &r->w[k];

	w->probing = false;
	if (!ok) {
		if (why && strstr(why, "timed out"))
			w->st.timeouts++;
		rt_strike(r, k, why ? why : "probe failed");
		return;
	}
	w->fails = 0;
	w->oks++;
	if (!w->up && (!w->ever_up || w->oks >= r->p.health_success_threshold)) {
		if (w->ever_up) {
			w->st.rejoined++;
			rt_note(r, "worker %s is back", w->addr);
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
		rt_mark_down(r, k, why);
}

/* Starts the probes that are due; fails those past their deadline. */
void rt_probe_workers(struct eng_router *r, double now, double period)
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
void rt_check_timeouts(struct eng_router *r, double now)
{
	for (struct rt_req *q = r->head; q; q = q->next) {
		int k = q->worker;
		char why[64];

		if (k < 0 || now - q->sent_t <= r->p.request_timeout_s)
			continue;
		r->w[k].st.timeouts++;
		r->w[k].ops->cancel(r->w[k].link, q->wire_id);
		rt_fail_over(r, q);
		snprintf(why, sizeof(why), "a request timed out after %g s", r->p.request_timeout_s);
		rt_strike(r, k, why);
	}
}

/* Probes until every worker is up or the startup timeout passes. */
int rt_wait_for_workers(struct eng_router *r, struct eng_error *err)
{
	double t0 = eng_mono_s(), now = t0;
	int up = 0;

	for (;;) {
		up = 0;
		for (int k = 0; k < r->n; k++)
			up += r->w[k].up;
		if (up == r->n || now - t0 >= r->p.worker_startup_timeout_s)
			break;
		rt_probe_workers(r, now, STARTUP_RETRY_S);
		rt_service_links(r, 0.02);
		now = eng_mono_s();
	}
	for (int k = 0; k < r->n; k++) {
		r->w[k].probing = false; /* a late answer is taken as the next probe's */
		r->w[k].next_probe = now + r->p.health_check_interval_s;
		if (!r->w[k].up)
			rt_note(r, "worker %s did not answer: %s", r->w[k].addr, r->w[k].why);
	}
	if (up > 0)
		return 0;
	return eng_error_set(err, ENG_E_IO, r->w[0].addr, 0, "no worker answers: %s",
			     r->w[0].why);
}
