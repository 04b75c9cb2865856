/*
 * worker.h: the persistent worker and its client.
 *
 * The worker keeps one engine loaded (model, KV pool, prefix cache) and
 * serves runs to clients over a Unix stream socket created with mode 0600.
 * Several clients at once share one continuous batch.  The protocol is
 * NDJSON both ways:
 *   client -> worker  {"type":"hello","command":"run","params":{...}}, then
 *                     the run's input lines; end of input = shutdown(SHUT_WR)
 *                     or {"type":"hello","command":"status"|"shutdown"}
 *   worker -> client  the run's records as they are produced,
 *                     {"type":"diagnostic","line":N,"message":S} for bad input,
 *                     {"type":"end","bad":N} last; or one status/ok record
 * A client that disconnects mid-run cancels only its own requests; a bad
 * record fails only itself; the worker keeps serving.  Output waiting for a
 * slow client is bounded: past a limit the worker stops taking that
 * client's input until it reads.
 */
#ifndef TRAJBENCH_ENG_WORKER_H
#define TRAJBENCH_ENG_WORKER_H

#include <jansson.h>
#include <stdio.h>

#include "engine/error.h"
#include "engine/infer.h"

/* Serves on socket_path until a shutdown command or SIGINT/SIGTERM.
 * ENG_E_IO when the socket cannot be created (or another worker answers
 * on it). */
int eng_worker_serve(struct eng_infer *e, const char *socket_path, struct eng_error *err);

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

#endif
