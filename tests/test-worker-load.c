/*
 * test-worker-load.c: one worker, many clients at once, some of them
 * hostile; the others must finish with the same tokens as when run alone.
 *
 * Well-behaved: five runs of the same input at batch sizes 1, 2, 3, 4 and
 * 0 (all at once).  Hostile, at the same time:
 *   - bad flags: hellos whose sampling parameters no sampler can use, of
 *     the wrong type, or unknown; each gets an error record;
 *   - extreme but valid flags: temperature 1e-39 with top-k 3 (which once
 *     overran the sampler's buffer and took the worker down);
 *   - garbage: lines that are not JSON, not objects, not conversations,
 *     control bytes; the run reports them and ends;
 *   - a client that sends a lot and never reads;
 *   - a client that hangs up mid-run.
 * Afterwards the worker still answers status and shuts down cleanly.
 */
#include "engine/engine.h"
#include "tests/tap.h"
#include "tests/test-worker-helper.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define N_GOOD 5

static const int good_batch[N_GOOD] = { 1, 2, 3, 4, 0 };
static char *good_ids[N_GOOD];
static long good_bad[N_GOOD];
static volatile int good_done;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *good_client(void *arg)
{
	int i = (int)(intptr_t)arg;

	good_ids[i] = tw_client_run(tw_sock, tw_input, good_batch[i], &good_bad[i]);
	pthread_mutex_lock(&mu);
	good_done++;
	pthread_mutex_unlock(&mu);
	return NULL;
}

static bool all_good_done(void)
{
	bool done;

	pthread_mutex_lock(&mu);
	done = good_done == N_GOOD;
	pthread_mutex_unlock(&mu);
	return done;
}

/* Sends one raw hello line and returns all the worker says. */
static char *raw_hello(const char *hello)
{
	int fd = tw_connect(tw_sock);
	char *reply;

	if (fd < 0)
		return strdup("");
	tw_send(fd, hello, strlen(hello));
	tw_send(fd, "\n", 1);
	shutdown(fd, SHUT_WR);
	reply = tw_read_all(fd, 60);
	close(fd);
	return reply;
}

static int n_bad_flags_refused;

static void *bad_flags_client(void *arg)
{
	static const char *const hellos[] = {
		"{\"type\":\"hello\",\"command\":\"run\",\"params\":{\"temperature\":1e300}}",
		"{\"type\":\"hello\",\"command\":\"run\",\"params\":{\"temperature\":1,\"top_k\":-5}}",
		"{\"type\":\"hello\",\"command\":\"run\",\"params\":{\"temperature\":1,\"top_p\":7}}",
		"{\"type\":\"hello\",\"command\":\"run\",\"params\":{\"temperature\":\"hot\"}}",
		"{\"type\":\"hello\",\"command\":\"run\",\"params\":{\"batch_size\":-3}}",
		"{\"type\":\"hello\",\"command\":\"run\",\"params\":{\"no_such_flag\":1}}",
		"{\"type\":\"hello\",\"command\":\"explode\"}",
		"[1,2,3]",
	};

	(void)arg;
	for (size_t i = 0; i < sizeof(hellos) / sizeof(hellos[0]); i++) {
		char *reply = raw_hello(hellos[i]);

		if (strstr(reply, "\"type\":\"error\""))
			n_bad_flags_refused++;
		else
			tap_diag("not refused: %s -> %s", hellos[i], reply);
		free(reply);
	}
	return NULL;
}

static char *extreme_reply;

/* Temperature 1e-39 (1 / t overflows a float) with top-k 3, over the
 * same input: a valid run that must complete. */
static void *extreme_flags_client(void *arg)
{
	json_t *h = tw_hello("run", 2), *p = json_object_get(h, "params");
	FILE *in = fopen(tw_input, "r");
	char *buf = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&buf, &size);
	struct eng_client_io io = { in, out, NULL, NULL, NULL };
	struct eng_error err;
	long rc;

	(void)arg;
	json_object_set_new(p, "temperature", json_real(1e-39));
	json_object_set_new(p, "top_k", json_integer(3));
	rc = eng_client_run(tw_sock, h, &io, &err);
	fclose(out);
	fclose(in);
	if (rc != 1) {
		free(buf);
		buf = strdup(rc < 0 ? err.msg : "not one bad line");
	}
	extreme_reply = buf;
	json_decref(h);
	return NULL;
}

static char *garbage_reply;

static void *garbage_client(void *arg)
{
	static const char lines[] =
		"{\"type\":\"hello\",\"command\":\"run\",\"params\":{\"batch_size\":2}}\n"
		"not json at all\n"
		"[\"an\",\"array\"]\n"
		"{\"type\":\"conversation\",\"messages\":17}\n"
		"{\"type\":\"conversation\",\"messages\":[{\"role\":1}]}\n"
		"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":4294967297}\n"
		"{\"type\":\"request\"}\n"
		"\x01\x02\x7f\xff\xfe garbage bytes\n"
		"{\"unterminated\": \n"
		"\n";
	int fd = tw_connect(tw_sock);

	(void)arg;
	if (fd < 0) {
		garbage_reply = strdup("");
		return NULL;
	}
	tw_send(fd, lines, sizeof(lines) - 1);
	shutdown(fd, SHUT_WR);
	garbage_reply = tw_read_all(fd, 120);
	close(fd);
	return NULL;
}

/* Sends its hello and conversations without reading anything, until the
 * well-behaved clients are done; then hangs up. */
static void *never_reads_client(void *arg)
{
	int fd = tw_connect(tw_sock);
	char line[1024];
	int i = 0;

	(void)arg;
	if (fd < 0)
		return NULL;
	snprintf(line, sizeof(line), "%s\n",
		 "{\"type\":\"hello\",\"command\":\"run\",\"params\":{\"batch_size\":8}}");
	tw_send(fd, line, strlen(line));
	while (!all_good_done()) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int n = snprintf(line, sizeof(line), tw_conv_fmt, 1000 + i, i, i);

		if (poll(&p, 1, 100) <= 0)
			continue;
		if (send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) == n)
			i++;
	}
	close(fd);
	return NULL;
}

/* Connects, sends a hello and a few conversations, and hangs up. */
static void *hangs_up_client(void *arg)
{
	int fd = tw_connect(tw_sock);
	char line[1024];

	(void)arg;
	if (fd < 0)
		return NULL;
	snprintf(line, sizeof(line), "%s\n",
		 "{\"type\":\"hello\",\"command\":\"run\",\"params\":{\"batch_size\":4}}");
	tw_send(fd, line, strlen(line));
	for (int i = 0; i < 4; i++) {
		snprintf(line, sizeof(line), tw_conv_fmt, 2000 + i, i, i);
		tw_send(fd, line, strlen(line));
	}
	usleep(100000);
	close(fd);
	return NULL;
}

static void check_good(const char *alone)
{
	bool same = true, counted = true;

	for (int i = 0; i < N_GOOD; i++) {
		same &= good_ids[i] && !strcmp(good_ids[i], alone);
		counted &= good_bad[i] == 1;
	}
	tap_ok(same, "%d well-behaved clients get the same tokens as one alone", N_GOOD);
	tap_ok(counted, "each of them counts its one bad line");
}

int main(void)
{
	void *(*hostile[])(void *) = { bad_flags_client, extreme_flags_client, garbage_client,
				       never_reads_client, hangs_up_client };
	enum { N_HOSTILE = sizeof(hostile) / sizeof(hostile[0]) };
	pthread_t good[N_GOOD], bad[N_HOSTILE];
	char *alone;
	long n_bad;
	pid_t pid;

	if (tw_setup("worker-load", 6) != 0)
		return tap_skip_all("cannot write the tiny model");
	pid = tw_start_worker(tw_sock, NULL);
	alone = tw_client_run(tw_sock, tw_input, 1, &n_bad);
	tap_ok(n_bad == 1 && strlen(alone) > 0, "a run alone completes");
	for (int i = 0; i < N_HOSTILE; i++)
		pthread_create(&bad[i], NULL, hostile[i], NULL);
	for (int i = 0; i < N_GOOD; i++)
		pthread_create(&good[i], NULL, good_client, (void *)(intptr_t)i);
	for (int i = 0; i < N_GOOD; i++)
		pthread_join(good[i], NULL);
	for (int i = 0; i < N_HOSTILE; i++)
		pthread_join(bad[i], NULL);
	check_good(alone);
	tap_ok(n_bad_flags_refused == 8, "every hello with bad flags gets an error record (%d of 8)",
	       n_bad_flags_refused);
	tap_ok(extreme_reply && strstr(extreme_reply, "\"type\":\"run\""),
	       "temperature 1e-39 with top-k 3 runs to its end: %.80s", extreme_reply);
	tap_ok(garbage_reply && strstr(garbage_reply, "\"type\":\"end\",\"bad\":8"),
	       "garbage lines are reported and the run ends: %.120s",
	       garbage_reply ? strstr(garbage_reply, "\"type\":\"end\"") ?: garbage_reply : "");
	free(tw_client_run(tw_sock, tw_input, 2, &n_bad));
	tap_ok(n_bad == 1, "the worker still serves runs");
	tap_ok(tw_stop_worker(tw_sock, pid) == 0, "and shuts down cleanly");
	for (int i = 0; i < N_GOOD; i++)
		free(good_ids[i]);
	free(alone);
	free(extreme_reply);
	free(garbage_reply);
	tw_cleanup();
	return tap_done();
}
