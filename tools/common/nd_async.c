/*
 * nd_async.c: the writer thread of nd_async.h.  Two buffers: the producer
 * appends to `pending` under the lock; the thread swaps it with its own
 * empty one and writes outside the lock, so a put never waits for I/O
 * unless the bound is reached.
 */
#include "tools/common/nd_async.h"
#include "tools/common/nd.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nd_async {
	pthread_mutex_t mu;
	pthread_cond_t has_data, has_room;
	char *pending;        /* (cap) lines waiting for the thread */
	size_t len, cap, limit;
	bool closing;
	int write_errno;      /* nonzero once a write failed */
	pthread_t thread;
};

static void *writer(void *arg)
{
	struct nd_async *a = arg;
	char *mine = NULL;
	size_t mine_cap = 0;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		char *t;
		size_t n, tc;

		while (a->len == 0 && !a->closing)
			pthread_cond_wait(&a->has_data, &a->mu);
		if (a->len == 0)
			break;
		/* Take the pending lines, leave an empty buffer behind. */
		t = a->pending, tc = a->cap, n = a->len;
		a->pending = mine, a->cap = mine_cap, a->len = 0;
		mine = t, mine_cap = tc;
		pthread_cond_broadcast(&a->has_room);
		pthread_mutex_unlock(&a->mu);
		if (fwrite(mine, 1, n, stdout) != n || fflush(stdout) != 0) {
			pthread_mutex_lock(&a->mu);
			a->write_errno = errno ? errno : EIO;
			continue; /* keep draining so the producer never hangs */
		}
		pthread_mutex_lock(&a->mu);
	}
	pthread_mutex_unlock(&a->mu);
	free(mine);
	return NULL;
}

struct nd_async *nd_async_start(size_t limit)
{
	struct nd_async *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->limit = limit;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->has_data, NULL);
	pthread_cond_init(&a->has_room, NULL);
	if (pthread_create(&a->thread, NULL, writer, a) != 0) {
		free(a);
		return NULL;
	}
	return a;
}

static int append(struct nd_async *a, const char *s, size_t n)
{
	if (a->len + n > a->cap) {
		size_t cap = a->cap ? a->cap : 65536;
		char *p;

		while (cap < a->len + n)
			cap *= 2;
		p = realloc(a->pending, cap);
		if (!p)
			return -1;
		a->pending = p;
		a->cap = cap;
	}
	memcpy(a->pending + a->len, s, n);
	a->len += n;
	return 0;
}

int nd_async_put_json(struct nd_async *a, const json_t *rec)
{
	char *s = nd_dump_json(rec);
	size_t n = s ? strlen(s) : 0;
	int rc;

	if (!s)
		return -1;
	pthread_mutex_lock(&a->mu);
	while (a->len > 0 && a->len + n + 1 > a->limit && !a->write_errno)
		pthread_cond_wait(&a->has_room, &a->mu);
	rc = a->write_errno ? -1 : append(a, s, n);
	if (rc == 0)
		rc = append(a, "\n", 1);
	pthread_cond_signal(&a->has_data);
	pthread_mutex_unlock(&a->mu);
	free(s);
	return rc;
}

int nd_async_stop(struct nd_async *a)
{
	int err;

	pthread_mutex_lock(&a->mu);
	a->closing = true;
	pthread_cond_signal(&a->has_data);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->thread, NULL);
	err = a->write_errno;
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->has_data);
	pthread_cond_destroy(&a->has_room);
	free(a->pending);
	free(a);
	return err ? nd_note_write_error(err) : 0;
}
