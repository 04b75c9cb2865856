/*
 * worker_req.h: the socket worker's "requests" command (worker_req.c):
 * after {"type":"hello","command":"requests"} a client sends request,
 * cancel and flush_cache lines and gets token and result lines back
 * (engine.h has the protocol).  worker.c feeds it lines and settles it
 * after every engine step; one stream per client connection.
 */
#ifndef TRAJBENCH_ENG_WORKER_REQ_H
#define TRAJBENCH_ENG_WORKER_REQ_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/infer.h"

struct eng_reqstream;

/* A stream over e whose output lines (each ending in '\n') go to emit. */
int eng_reqstream_open(struct eng_infer *e, int (*emit)(void *ctx, const char *line, size_t len),
		       void *ctx, struct eng_reqstream **out);

/* One input line (without its '\n').  A bad request is answered with a
 * failed result naming what is wrong; the stream goes on. */
void eng_reqstream_line(struct eng_reqstream *rs, const char *line, size_t len);

/* Frees the requests that are done. */
void eng_reqstream_settle(struct eng_reqstream *rs);

/* The client went away: every request is cancelled, none answered. */
void eng_reqstream_cancel(struct eng_reqstream *rs);

/* True when no request is left in the engine (settles first). */
bool eng_reqstream_idle(struct eng_reqstream *rs);

/* Frees the stream; only once it is idle. */
void eng_reqstream_free(struct eng_reqstream *rs);

#endif
