/*
 * serve.c: the serving engine's one event loop over its fronts (see
 * engine.h, "serving", and front.h).
 *
 * One thread owns the engine.  Each turn: the fronts say what they wait
 * on, one poll(2) covers all of them (with a zero timeout while the engine
 * has work, so that clients are served between steps and a step is never
 * delayed by an idle client), the fronts handle what is ready, the engine
 * runs one step, the fronts settle what it finished.  A front's handling
 * is bounded (parse a request, copy out some bytes), so a step waits at
 * most for one turn of I/O.
 *
 * Shutdown (SIGINT, SIGTERM, or a client's shutdown command): the fronts
 * stop taking work, what is in flight goes on until graceful_timeout_s,
 * the rest is cancelled, the loop ends when every front is idle.  A second
 * signal cancels at once.
 *
 * While the model loads (eng_serve_load), a second thread runs the HTTP
 * front alone, which answers 503 (the socket's clients wait in its listen
 * queue); the engine is built on the calling thread, which takes the
 * front back (pthread_join) before serving, so no two threads ever touch
 * the front or the engine at once.
 */
#include <config.h>
#include "engine/front.h"
#include "engine/infer.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define IDLE_WAIT_MS 50 /* poll timeout when nothing runs: bounds signal latency */

static volatile sig_atomic_t n_signals;

static void on_signal(int sig)
{
	(void)sig;
	n_signals++;
}

int eng_pollset_add(struct eng_pollset *ps, int fd, short events)
{
	if (ps->n == ps->cap) {
		int cap = ps->cap ? 2 * ps->cap : 64;
		struct pollfd *p = realloc(ps->fds, sizeof(*p) * (size_t)cap);

		if (!p)
			return -1;
		ps->fds = p;
		ps->cap = cap;
	}
	ps->fds[ps->n] = (struct pollfd){ .fd = fd, .events = events };
	return ps->n++;
}

void eng_serve_default_params(struct eng_serve_params *p)
{
	memset(p, 0, sizeof(*p));
	p->host = "127.0.0.1";
	p->port = -1;
	p->max_body_size = (size_t)64 << 20;
	p->max_connections = 4096;
	p->idle_timeout_s = 600;
	p->graceful_timeout_s = 30;
}

struct loop {
	struct eng_infer *e;             /* NULL while loading */
	struct eng_front fronts[2];
	int n_fronts;
	struct eng_worker *worker;       /* the socket front's, listening */
	bool own_worker;                 /* opened here, closed here */
	const struct eng_serve_params *p;
	int http_port;
	struct eng_pollset ps;
	bool draining, cancelled;
	double deadline;
};

static void tell(const struct loop *l, enum eng_serve_state st)
{
	if (l->p->on_state)
		l->p->on_state(l->p->ctx, st, l->http_port);
}

/* One round of I/O over every front, waiting up to timeout_ms. */
static void io_round(struct loop *l, int timeout_ms)
{
	l->ps.n = 0;
	for (int i = 0; i < l->n_fronts; i++) {
		int t = l->fronts[i].ops->timeout_ms(l->fronts[i].st);

		l->fronts[i].ops->watch(l->fronts[i].st, &l->ps);
		if (t >= 0 && t < timeout_ms)
			timeout_ms = t;
	}
	if (poll(l->ps.fds, (nfds_t)l->ps.n, timeout_ms) < 0 && errno != EINTR)
		return;
	for (int i = 0; i < l->n_fronts; i++)
		l->fronts[i].ops->dispatch(l->fronts[i].st, &l->ps);
}

/* Moves to draining, then to cancelling, as signals, commands and the
 * clock say.  True when the loop may end. */
static bool shutdown_step(struct loop *l)
{
	bool asked = n_signals > 0, idle = true;

	for (int i = 0; i < l->n_fronts; i++)
		asked |= l->fronts[i].ops->shutdown_asked(l->fronts[i].st);
	if (asked && !l->draining) {
		l->draining = true;
		l->deadline = eng_mono_s() + l->p->graceful_timeout_s;
		for (int i = 0; i < l->n_fronts; i++)
			l->fronts[i].ops->drain(l->fronts[i].st);
		tell(l, ENG_SERVE_DRAINING);
	}
	if (!l->draining)
		return false;
	if (!l->cancelled && (eng_mono_s() >= l->deadline || n_signals > 1)) {
		l->cancelled = true;
		for (int i = 0; i < l->n_fronts; i++)
			l->fronts[i].ops->cancel(l->fronts[i].st);
	}
	for (int i = 0; i < l->n_fronts; i++)
		idle &= l->fronts[i].ops->idle(l->fronts[i].st);
	return idle && eng_runner_idle(l->e->runner);
}

static void run_loop(struct loop *l)
{
	struct eng_error step_err;

	while (!shutdown_step(l)) {
		int wait = eng_runner_idle(l->e->runner) ? IDLE_WAIT_MS : 0;

		if (l->draining && !l->cancelled) {
			double left_ms = (l->deadline - eng_mono_s()) * 1e3;

			if (left_ms < wait)
				wait = left_ms > 0 ? (int)left_ms : 0;
		}
		io_round(l, wait);
		/* New requests may have come in this round: step at once. */
		if (!eng_runner_idle(l->e->runner))
			eng_runner_poll(l->e->runner, 0.002, &step_err);
		for (int i = 0; i < l->n_fronts; i++)
			l->fronts[i].ops->settle(l->fronts[i].st);
	}
}

static void close_fronts(struct loop *l)
{
	for (int i = 0; i < l->n_fronts; i++)
		l->fronts[i].ops->close(l->fronts[i].st);
	l->n_fronts = 0;
	if (l->own_worker)
		eng_worker_close(l->worker);
	l->worker = NULL;
	free(l->ps.fds);
	l->ps.fds = NULL;
}

/* Signal handlers for the loop's lifetime; the old ones come back after. */
struct sigsave {
	struct sigaction intr, term, pipe;
};

static void signals_take(struct sigsave *old)
{
	struct sigaction sa = { .sa_handler = on_signal }, ign = { .sa_handler = SIG_IGN };

	sigemptyset(&sa.sa_mask);
	sigemptyset(&ign.sa_mask);
	n_signals = 0;
	sigaction(SIGINT, &sa, &old->intr);
	sigaction(SIGTERM, &sa, &old->term);
	sigaction(SIGPIPE, &ign, &old->pipe);
}

static void signals_give_back(const struct sigsave *old)
{
	sigaction(SIGINT, &old->intr, NULL);
	sigaction(SIGTERM, &old->term, NULL);
	sigaction(SIGPIPE, &old->pipe, NULL);
}

/* The socket and the port listen before anything loads: a bad path or a
 * port in use fails at once. */
static int listen_all(struct loop *l, struct eng_error *err)
{
	int rc = 0;

	l->worker = l->p->worker;
	if (!l->worker && l->p->socket) {
		rc = eng_worker_listen(l->p->socket, &l->worker, err);
		l->own_worker = rc == 0;
	}
	if (rc == 0 && l->p->port >= 0) {
		rc = eng_http_front_open(l->p, &l->fronts[l->n_fronts], &l->http_port, err);
		l->n_fronts += rc == 0;
	}
	if (rc == 0)
		tell(l, ENG_SERVE_LISTENING);
	return rc;
}

/* The engine joins the fronts: HTTP gets it, the socket front starts
 * accepting (its early clients waited in the listen queue). */
static int attach(struct loop *l, struct eng_infer *e, struct eng_error *err)
{
	int rc = 0;

	l->e = e;
	for (int i = 0; i < l->n_fronts; i++)
		eng_http_front_attach(&l->fronts[i], e);
	if (l->worker) {
		rc = eng_sock_front_open(l->worker, e, &l->fronts[l->n_fronts], err);
		if (rc == 0)
			l->n_fronts++;
	}
	if (rc == 0)
		tell(l, ENG_SERVE_READY);
	return rc;
}

int eng_serve(struct eng_infer *e, const struct eng_serve_params *p, struct eng_error *err)
{
	struct loop l = { .p = p, .http_port = -1 };
	struct sigsave old;
	int rc;

	signals_take(&old);
	rc = listen_all(&l, err);
	if (rc == 0)
		rc = attach(&l, e, err);
	if (rc == 0)
		run_loop(&l);
	close_fronts(&l);
	signals_give_back(&old);
	return rc;
}

/* ---------------------------------------------------------------- loading */

struct loading {
	struct loop *l;
	atomic_bool done;
};

/* The HTTP front alone, while the calling thread loads the model. */
static void *serve_while_loading(void *arg)
{
	struct loading *ld = arg;
	struct loop *l = ld->l;

	while (!atomic_load(&ld->done)) {
		io_round(l, IDLE_WAIT_MS);
		for (int i = 0; i < l->n_fronts; i++)
			l->fronts[i].ops->settle(l->fronts[i].st);
	}
	return NULL;
}

int eng_serve_load(const struct eng_infer_params *ip, const struct eng_serve_params *p,
		   struct eng_error *err)
{
	struct loop l = { .p = p, .http_port = -1 };
	struct loading ld = { .l = &l };
	struct eng_infer *e = NULL;
	struct sigsave old;
	pthread_t th;
	bool threaded;
	int rc;

	signals_take(&old);
	rc = listen_all(&l, err);
	if (rc != 0) {
		close_fronts(&l);
		signals_give_back(&old);
		return rc;
	}
	atomic_init(&ld.done, false);
	threaded = l.n_fronts > 0 && pthread_create(&th, NULL, serve_while_loading, &ld) == 0;
	rc = eng_infer_open(ip, &e, err);
	atomic_store(&ld.done, true);
	if (threaded)
		pthread_join(th, NULL);
	if (rc == 0) {
		tell(&l, ENG_SERVE_LOADED);
		rc = attach(&l, e, err);
	}
	if (rc == 0)
		run_loop(&l);
	close_fronts(&l);
	eng_infer_close(e);
	signals_give_back(&old);
	return rc;
}
