/*
 * front.h: a front of the serving engine (the Unix-socket worker, HTTP) as
 * the one event loop of serve.c sees it.
 *
 * The loop is single-threaded: every turn it asks each front for the file
 * descriptors it waits on, polls them all at once (not at all while the
 * engine has work), lets each front handle what is ready, runs one engine
 * step, and lets each front settle what the step finished.  A front never
 * blocks and never runs the engine itself; all of them share the one
 * continuous batch through eng_infer's runner.
 */
#ifndef TRAJBENCH_ENG_FRONT_H
#define TRAJBENCH_ENG_FRONT_H

#include <poll.h>
#include <stdbool.h>

#include "engine/engine.h"

/* The descriptors of one poll(2) over every front; grown as needed. */
struct eng_pollset {
	struct pollfd *fds;   /* (cap) */
	int n, cap;
};

/* Appends fd; returns its index, or -1 when out of memory (the fd is then
 * not watched this turn). */
int eng_pollset_add(struct eng_pollset *ps, int fd, short events);

struct eng_front_ops {
	/* Adds the descriptors to wait on; the front remembers where. */
	void (*watch)(void *st, struct eng_pollset *ps);
	/* Handles what poll found on them (all of them, after poll). */
	void (*dispatch)(void *st, const struct eng_pollset *ps);
	/* After an engine step: answers what finished, frees gone clients. */
	void (*settle)(void *st);
	/* Milliseconds until the front must be called without I/O; -1: never. */
	int (*timeout_ms)(void *st);
	/* Stops taking new work; what is in flight goes on. */
	void (*drain)(void *st);
	/* Cancels what is in flight: the grace period is over. */
	void (*cancel)(void *st);
	/* True when nothing is in flight and no client waits for an answer. */
	bool (*idle)(void *st);
	/* True once a client asked the whole server to shut down. */
	bool (*shutdown_asked)(void *st);
	void (*close)(void *st);
};

struct eng_front {
	const struct eng_front_ops *ops;
	void *st;
};

/* The Unix-socket worker front (worker.c) on a listening worker, over a
 * loaded engine.  Closing the front leaves the worker's socket open. */
int eng_sock_front_open(struct eng_worker *w, struct eng_infer *e, struct eng_front *out,
			struct eng_error *err);

/* The HTTP front (http.c).  It listens at once; until eng_http_front_attach
 * gives it the engine it answers 503 (loading), and its calls may run on
 * another thread than the one the engine will use (never two at once). */
int eng_http_front_open(const struct eng_serve_params *p, struct eng_front *out,
			int *port, struct eng_error *err);
void eng_http_front_attach(struct eng_front *f, struct eng_infer *e);

#endif
