/*
 * cpu_pool.c: the worker threads of the CPU backend.
 *
 * Workers sleep on a condition variable until the generation counter moves,
 * then claim task numbers from an atomic counter until none are left; the
 * caller claims tasks too, then waits for the workers to report in.  Tasks
 * are claimed dynamically (not split evenly up front) so that uneven work,
 * such as attention over sequences of different lengths, balances itself.
 * Creating threads once per backend, not per matmul, keeps a decode step's
 * hundreds of small parallel loops cheap.
 */
#include "engine/cpu_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct eng_pool {
	int n_threads;
	pthread_t *threads;        /* (n_threads - 1) workers */
	pthread_mutex_t mu;
	pthread_cond_t wake;       /* workers wait for a new generation */
	pthread_cond_t done;       /* the caller waits for n_busy == 0 */
	unsigned long generation;
	int n_busy;
	int stop;
	eng_pool_fn fn;
	void *arg;
	int n_tasks;
	atomic_int next_task;
};

static void drain(struct eng_pool *p, int thread)
{
	int t;

	while ((t = atomic_fetch_add(&p->next_task, 1)) < p->n_tasks)
		p->fn(p->arg, t, thread);
}

struct worker_arg {
	struct eng_pool *pool;
	int thread;
};

static void *worker(void *a)
{
	struct eng_pool *p = ((struct worker_arg *)a)->pool;
	int thread = ((struct worker_arg *)a)->thread;
	unsigned long seen = 0;

	free(a);
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->generation == seen && !p->stop)
			pthread_cond_wait(&p->wake, &p->mu);
		if (p->stop)
			break;
		seen = p->generation;
		pthread_mutex_unlock(&p->mu);
		drain(p, thread);
		pthread_mutex_lock(&p->mu);
		if (--p->n_busy == 0)
			pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct eng_pool *eng_pool_create(int n_threads)
{
	struct eng_pool *p = calloc(1, sizeof(*p));
	int i;

	if (!p || n_threads < 1) {
		free(p);
		return NULL;
	}
	p->threads = calloc((size_t)n_threads, sizeof(*p->threads));
	if (!p->threads) {
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->done, NULL);
	p->n_threads = 1;
	for (i = 1; i < n_threads; i++) {
		struct worker_arg *a = malloc(sizeof(*a));

		if (!a)
			break;
		a->pool = p;
		a->thread = i;
		if (pthread_create(&p->threads[i - 1], NULL, worker, a)) {
			free(a);
			break;
		}
		p->n_threads++;
	}
	if (p->n_threads != n_threads) {
		eng_pool_free(p);
		return NULL;
	}
	return p;
}

void eng_pool_free(struct eng_pool *p)
{
	int i;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->n_threads - 1; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->wake);
	pthread_cond_destroy(&p->done);
	free(p->threads);
	free(p);
}

int eng_pool_n_threads(const struct eng_pool *p)
{
	return p->n_threads;
}

void eng_pool_run(struct eng_pool *p, int n_tasks, eng_pool_fn fn, void *arg)
{
	if (n_tasks <= 0)
		return;
	if (p->n_threads == 1 || n_tasks == 1) {
		int t;

		for (t = 0; t < n_tasks; t++)
			fn(arg, t, 0);
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->fn = fn;
	p->arg = arg;
	p->n_tasks = n_tasks;
	atomic_store(&p->next_task, 0);
	p->n_busy = p->n_threads - 1;
	p->generation++;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	drain(p, 0);
	pthread_mutex_lock(&p->mu);
	while (p->n_busy > 0)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
}
