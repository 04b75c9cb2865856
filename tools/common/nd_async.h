/*
 * nd_async.h: NDJSON output written by a thread of its own.
 *
 * A producer that must not stall on a slow reader of stdout (the engine's
 * step loop) hands finished lines to nd_async_put, which only copies them
 * into a buffer; a writer thread does the write(2)s.  The buffer is
 * bounded: past `limit` bytes the producer waits, so memory stays bounded
 * when the reader is slower than the producer for long.
 */
#ifndef TRAJBENCH_ND_ASYNC_H
#define TRAJBENCH_ND_ASYNC_H

#include <stddef.h>
#include <jansson.h>

struct nd_async;

/* Starts the writer thread on stdout.  NULL when out of memory or threads. */
struct nd_async *nd_async_start(size_t limit);

/* Queues rec as one compact line.  Returns 0, or -1 once a write failed. */
int nd_async_put_json(struct nd_async *a, const json_t *rec);

/* Writes what is queued, stops the thread, frees a.  Returns 0, or -1 when
 * a write failed (noted for nd_finish, which reports it and exits 2). */
int nd_async_stop(struct nd_async *a);

#endif
