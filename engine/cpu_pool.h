/*
 * cpu_pool.h: a fixed pool of worker threads that run numbered tasks.
 *
 * eng_pool_run(pool, n_tasks, fn, arg) calls fn(arg, task, thread) once for
 * every task in [0, n_tasks), spread over the pool's threads (the caller
 * counts as thread 0), and returns when all have finished.  thread is in
 * [0, eng_pool_n_threads()), so fn can index per-thread scratch with it.
 */
#ifndef TRAJBENCH_ENG_CPU_POOL_H
#define TRAJBENCH_ENG_CPU_POOL_H

typedef void (*eng_pool_fn)(void *arg, int task, int thread);

struct eng_pool;

/* n_threads >= 1 (the caller included).  Returns NULL when threads or
 * memory cannot be had. */
struct eng_pool *eng_pool_create(int n_threads);

/* Joins the workers and frees.  NULL is allowed. */
void eng_pool_free(struct eng_pool *p);

int eng_pool_n_threads(const struct eng_pool *p);

/* Not reentrant: one run at a time per pool. */
void eng_pool_run(struct eng_pool *p, int n_tasks, eng_pool_fn fn, void *arg);

#endif
