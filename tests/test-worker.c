/*
 * test-worker.c: the persistent worker, over a real Unix socket.
 *
 * A child process loads a tiny model and serves; the parent is the client.
 * Checks: the socket is mode 0600; a run through the worker gives the same
 * generated tokens as in-process; two clients at once both complete; a
 * client that disconnects mid-run does not disturb the worker, which then
 * serves the next run; a client whose output cannot be written stops with
 * an error; status answers; shutdown stops it and removes the socket.
 */
#include "engine/engine.h"
#include "tests/tap.h"
#include "tests/test-worker-helper.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void *client_thread(void *arg)
{
	long bad;

	(void)arg;
	return tw_client_run(tw_sock, tw_input, 2, &bad);
}

/* Connects, sends a hello and half the input, and hangs up. */
static void rude_client(void)
{
	int fd = tw_connect(tw_sock);
	json_t *h = tw_hello("run", 4);
	char *s = json_dumps(h, JSON_COMPACT), line[512];

	if (fd >= 0) {
		if (tw_send(fd, s, strlen(s)) != 0 || tw_send(fd, "\n", 1) != 0)
			tap_diag("write failed");
		for (int i = 0; i < 3; i++) {
			snprintf(line, sizeof(line), tw_conv_fmt, 100 + i, i, i);
			if (tw_send(fd, line, strlen(line)) != 0)
				break;
		}
		usleep(50000);
		close(fd);
	}
	free(s);
	json_decref(h);
}

/* An output that fails its first write with ENOSPC and takes the rest: a
 * disk full for a moment. */
static ssize_t flaky_write(void *cookie, const char *buf, size_t size)
{
	int *n_writes = cookie;

	(void)buf;
	if ((*n_writes)++ == 0) {
		errno = ENOSPC;
		return -1;
	}
	return (ssize_t)size;
}

/* The client stops at a failed write of its records and says so, instead
 * of going on and returning success with records lost. */
static void check_lost_output(void)
{
	static int n_writes;
	static char obuf[256];
	cookie_io_functions_t fns = { .write = flaky_write };
	FILE *in = fopen(tw_input, "r"), *out = fopencookie(&n_writes, "w", fns);
	struct eng_client_io io = { in, out, NULL, NULL, NULL };
	struct eng_error err;
	json_t *h = tw_hello("run", 2);
	long rc;

	setvbuf(out, obuf, _IOFBF, sizeof(obuf));
	rc = eng_client_run(tw_sock, h, &io, &err);
	tap_ok(rc == ENG_E_IO && errno == ENOSPC && ferror(out) && strstr(err.msg, "write error"),
	       "a failed write of the records ends the run with an error (%ld: %s)", rc,
	       rc < 0 ? err.msg : "");
	json_decref(h);
	fclose(in);
	fclose(out);
}

static void check_status(void)
{
	json_t *h = json_pack("{s:s,s:s}", "type", "hello", "command", "status");
	char *sbuf = NULL;
	size_t slen = 0;
	struct eng_client_io sio = { NULL, open_memstream(&sbuf, &slen), NULL, NULL, NULL };
	struct eng_error err;
	long bad = eng_client_run(tw_sock, h, &sio, &err);

	fclose(sio.out);
	tap_ok(bad == 0 && sbuf && strstr(sbuf, "\"type\":\"status\"") &&
	       strstr(sbuf, "\"runs_served\":6"), "status answers: %.60s", sbuf ? sbuf : "");
	free(sbuf);
	json_decref(h);
}

int main(void)
{
	struct stat st;
	char *a, *b, *c, *d;
	pthread_t t;
	long bad;
	pid_t pid;

	if (tw_setup("worker", 5) != 0)
		return tap_skip_all("cannot write the tiny model");
	pid = tw_start_worker(tw_sock, NULL);
	tap_ok(stat(tw_sock, &st) == 0 && (st.st_mode & 0777) == 0600, "the socket is mode 0600");
	a = tw_client_run(tw_sock, tw_input, 1, &bad);
	tap_ok(bad == 1 && strlen(a) > 0, "a run through the worker completes, the bad line counted");
	pthread_create(&t, NULL, client_thread, NULL);
	b = tw_client_run(tw_sock, tw_input, 3, &bad);
	pthread_join(t, (void **)&c);
	tap_ok(!strcmp(a, b) && !strcmp(a, c), "two clients at once get the same tokens as one alone");
	rude_client();
	check_lost_output();
	d = tw_client_run(tw_sock, tw_input, 5, &bad);
	tap_ok(!strcmp(a, d), "after a client hangs up mid-run, the worker still serves");
	check_status();
	tap_ok(tw_stop_worker(tw_sock, pid) == 0 && access(tw_sock, F_OK) != 0,
	       "shutdown stops the worker and removes the socket");
	free(a);
	free(b);
	free(c);
	free(d);
	tw_cleanup();
	return tap_done();
}
