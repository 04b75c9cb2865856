/*
 * test-worker-helper.h: what the worker tests share: a scratch directory
 * with a tiny model and an input file of conversations, a worker serving
 * that model in a child process, and clients, through the engine's client
 * or a raw socket.
 */
#ifndef TRAJBENCH_TEST_WORKER_HELPER_H
#define TRAJBENCH_TEST_WORKER_HELPER_H

#include <stdbool.h>
#include <sys/types.h>

#include "engine/engine.h"

extern char tw_dir[64], tw_model[128], tw_sock[128], tw_input[128];

/* One conversation line (two turns) of id cN, printf'ed with N three
 * times; ends in '\n'. */
extern const char *tw_conv_fmt;

/* Makes the scratch directory, the tiny model and tw_input: n_convs
 * conversations, then one line that is not JSON.  0, or -1 (skip). */
int tw_setup(const char *name, int n_convs);

/* Removes the scratch directory. */
void tw_cleanup(void);

/* A worker serving the tiny model on sock in a child process; wp NULL for
 * the defaults.  Returns once it accepts connections. */
pid_t tw_start_worker(const char *sock, const struct eng_worker_params *wp);

/* Waits (10 s at most) until a worker accepts connections on sock. */
void tw_wait_listening(const char *sock);

/* Asks the worker at sock to shut down and waits for it; its exit status
 * (0 for a clean exit). */
int tw_stop_worker(const char *sock, pid_t pid);

/* A hello for cmd: a replay run of the given batch size, greedy, the
 * model's own tokens, with output details. */
json_t *tw_hello(const char *cmd, int batch);

/* Runs the file at input through the worker at sock; returns the request
 * records' output ids, sorted by conversation and turn, as one malloc'ed
 * string, and the bad count (or a negative ENG_E_*) in *bad. */
char *tw_client_run(const char *sock, const char *input, int batch, long *bad);

/* A connected socket to sock (no checks), or -1. */
int tw_connect(const char *sock);

/* Sends all of s (blocking); 0 or -1. */
int tw_send(int fd, const char *s, size_t n);

/* Reads from fd until the worker closes it or timeout_s passes; a
 * malloc'ed NUL-terminated string. */
char *tw_read_all(int fd, double timeout_s);

/* The resident set of process pid in KiB, from /proc; -1 when unknown. */
long tw_rss_kib(pid_t pid);

#endif
