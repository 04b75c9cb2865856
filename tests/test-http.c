/*
 * test-http.c: the serving loop's states and the HTTP front before it has
 * an engine (tests/http-server.test drives a whole server with curl).
 *
 * Checks: while the model loads, /health and the generation endpoints
 * answer 503 "loading" on a keep-alive connection; eng_serve_load reports
 * LISTENING, LOADED, READY and DRAINING in order and returns 0 after
 * SIGTERM; a model that cannot load leaves it at LISTENING with the load's
 * error; a port in use is refused before anything loads.
 *
 * The idle timeout, on a whole server (a child process) with
 * idle_timeout_s = 1: a connection that sends nothing, one that stops
 * mid-request and a kept-alive one after its answer are closed by the
 * server after about a second, while a stream and a non-streamed request
 * whose server stops for 2.5 s mid-generation (SIGSTOP: longer than the
 * timeout, nothing sent meanwhile) are answered whole.  The bounds on the
 * times are loose: they tell "after the timeout" from "at once" and
 * "never".
 */
#include "engine/front.h"
#include "engine/infer.h"
#include "tools/modelgen/model_writer.h"
#include "tests/tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/trajbench-http-XXXXXX";
static char model[128];

static int connect_to(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* Sends req on fd and turns the front until the answer holds want (or
 * two seconds pass); the answer goes to buf. */
static int exchange(struct eng_front *f, int fd, const char *req, const char *want, char *buf,
		    size_t cap)
{
	struct eng_pollset ps = { 0 };
	size_t len = 0;

	buf[0] = '\0';
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		return 0;
	for (int i = 0; i < 200 && !strstr(buf, want); i++) {
		ssize_t n;

		ps.n = 0;
		f->ops->watch(f->st, &ps);
		poll(ps.fds, (nfds_t)ps.n, 10);
		f->ops->dispatch(f->st, &ps);
		f->ops->settle(f->st);
		while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
			len += (size_t)n;
		buf[len] = '\0';
	}
	free(ps.fds);
	return strstr(buf, want) != NULL;
}

static void test_loading(void)
{
	struct eng_serve_params p;
	struct eng_front f;
	struct eng_error err;
	char buf[4096];
	int port = -1, fd, rc;
	static const char post[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
				   "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n"
				   "{\"messages\":1}";

	eng_serve_default_params(&p);
	p.port = 0;
	rc = eng_http_front_open(&p, &f, &port, &err);
	if (!tap_ok(rc == 0 && port > 0, "the HTTP front listens before the model loads (port %d)",
		    port))
		return;
	fd = connect_to(port);
	tap_ok(fd >= 0 && exchange(&f, fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", "loading", buf,
				   sizeof(buf)) &&
	       !strncmp(buf, "HTTP/1.1 503", 12), "while loading, /health answers 503");
	tap_ok(fd >= 0 && exchange(&f, fd, post, "loading", buf, sizeof(buf)) &&
	       !strncmp(buf, "HTTP/1.1 503", 12), "and so does a chat request, on the same connection");
	if (fd >= 0)
		close(fd);
	f.ops->close(f.st);
}

static int states[8], n_states;

static void on_state(void *ctx, enum eng_serve_state st, int port)
{
	(void)ctx;
	(void)port;
	if (n_states < 8)
		states[n_states++] = st;
	if (st == ENG_SERVE_READY)
		raise(SIGTERM);
}

static void test_states(void)
{
	struct eng_infer_params ip;
	struct eng_serve_params p;
	struct eng_error err;
	char missing[160];
	int rc, busy_port;

	eng_infer_default_params(&ip);
	ip.model_dir = model;
	ip.n_threads = 1;
	eng_serve_default_params(&p);
	p.port = 0;
	p.on_state = on_state;
	rc = eng_serve_load(&ip, &p, &err);
	tap_ok(rc == 0 && n_states == 4 && states[0] == ENG_SERVE_LISTENING &&
	       states[1] == ENG_SERVE_LOADED && states[2] == ENG_SERVE_READY &&
	       states[3] == ENG_SERVE_DRAINING,
	       "listening, loaded, ready, draining; SIGTERM ends it with 0 (rc %d, %d states)", rc,
	       n_states);
	snprintf(missing, sizeof(missing), "%s/none", dir);
	ip.model_dir = missing;
	n_states = 0;
	rc = eng_serve_load(&ip, &p, &err);
	tap_ok(rc != 0 && n_states == 1 && states[0] == ENG_SERVE_LISTENING,
	       "a model that cannot load: its error, after listening (%s)", err.msg);
	{
		struct eng_front f;

		eng_serve_default_params(&p);
		p.port = 0;
		if (eng_http_front_open(&p, &f, &busy_port, &err) == 0) {
			p.port = busy_port;
			p.on_state = on_state;
			n_states = 0;
			ip.model_dir = model;
			rc = eng_serve_load(&ip, &p, &err);
			tap_ok(rc == ENG_E_IO && n_states == 0,
			       "a port in use: ENG_E_IO before loading (%s)", err.msg);
			f.ops->close(f.st);
		}
	}
}

/* ---------------------------------------------------------------- idle timeout */

#define IDLE_S 1.0
#define PAUSE_S 2.5   /* the server stopped for this long, mid-generation */
#define NEVER_S 10.0  /* a connection still open after this was not closed */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void report_port(void *ctx, enum eng_serve_state st, int port)
{
	int fd = *(int *)ctx;

	if (st == ENG_SERVE_READY && write(fd, &port, sizeof(port)) != sizeof(port))
		_exit(3);
}

/* A server of the tiny model with idle_timeout_s = IDLE_S, in a child; its
 * pid, and its port in *port (-1 when it did not start). */
static pid_t start_server(int *port)
{
	int pfd[2];
	pid_t pid;

	*port = -1;
	if (pipe(pfd) != 0)
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct eng_infer_params ip;
		struct eng_serve_params p;
		struct eng_error err;

		close(pfd[0]);
		alarm(120); /* ends it if the test goes wrong */
		eng_infer_default_params(&ip);
		ip.model_dir = model;
		ip.n_threads = 1;
		eng_serve_default_params(&p);
		p.port = 0;
		p.idle_timeout_s = IDLE_S;
		p.on_state = report_port;
		p.ctx = &pfd[1];
		_exit(eng_serve_load(&ip, &p, &err) == 0 ? 0 : 1);
	}
	close(pfd[1]);
	if (pid < 0 || read(pfd[0], port, sizeof(*port)) != sizeof(*port))
		*port = -1;
	close(pfd[0]);
	return pid;
}

/* Reads fd (appending to buf, NUL-terminated; cap at least 8 KiB) until
 * the answer holds want or the server closes the connection, for at most
 * max_s.  1 when want
 * came, 0 when the server closed first, -1 on timeout. */
static int read_until(int fd, const char *want, double max_s, char *buf, size_t cap)
{
	size_t len = strlen(buf);
	double end = now_s() + max_s;

	while (!want || !strstr(buf, want)) {
		struct pollfd pf = { fd, POLLIN, 0 };
		double left = end - now_s();
		ssize_t n;

		if (len > 2048 && cap - len < 4096) { /* only the end matters: keep its last KiB */
			memmove(buf, buf + len - 1024, 1024);
			len = 1024;
		}
		if (left <= 0 || poll(&pf, 1, (int)(left * 1000) + 1) == 0)
			return -1;
		n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
			return 0;
		if (n > 0)
			len += (size_t)n;
		buf[len] = '\0';
	}
	return 1;
}

/* Seconds until the server closes fd (what it sends is read and dropped),
 * or -1 when it is still open after NEVER_S. */
static double closed_after(int fd, double t0)
{
	char buf[16384] = "";

	return read_until(fd, NULL, NEVER_S, buf, sizeof(buf)) == 0 ? now_s() - t0 : -1;
}

/* t as the checks print it. */
static const char *secs(double t, char *b, size_t n)
{
	if (t < 0)
		snprintf(b, n, "still open after %g s", NEVER_S);
	else
		snprintf(b, n, "after %.2f s", t);
	return b;
}

static bool closed_in_time(double t)
{
	return t >= IDLE_S * 0.9 && t < NEVER_S;
}

static int send_str(int fd, const char *s)
{
	return write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? fd : -1;
}

/* A completion of n tokens, streamed or not, on a new connection. */
static int send_completion(int port, int n, bool stream)
{
	char body[200], req[512];
	int fd = connect_to(port);

	snprintf(body, sizeof(body), "{\"prompt\":\"Hello there\",\"max_tokens\":%d,"
		 "\"ignore_eos\":true,\"temperature\":0,\"stream\":%s}", n, stream ? "true" : "false");
	snprintf(req, sizeof(req), "POST /v1/completions HTTP/1.1\r\nHost: t\r\n"
		 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		 strlen(body), body);
	return fd >= 0 ? send_str(fd, req) : -1;
}

static void pause_server(pid_t pid)
{
	struct timespec ts = { (time_t)PAUSE_S, (long)((PAUSE_S - (int)PAUSE_S) * 1e9) };

	kill(pid, SIGSTOP);
	nanosleep(&ts, NULL);
	kill(pid, SIGCONT);
}

/* Connections with nothing in the engine are closed after the timeout. */
static void test_idle_closed(int port)
{
	double t0 = now_s();
	int fd = connect_to(port);
	char buf[4096] = "", b[64];
	double t;

	t = fd >= 0 ? closed_after(fd, t0) : -1;
	tap_ok(closed_in_time(t), "idle timeout %g s: a connection that sends nothing is closed "
	       "(%s)", IDLE_S, secs(t, b, sizeof(b)));
	if (fd >= 0)
		close(fd);
	t0 = now_s();
	fd = connect_to(port);
	t = fd >= 0 && send_str(fd, "POST /v1/completions HTTP/1.1\r\nHost: t\r\n") >= 0
	    ? closed_after(fd, t0) : -1;
	tap_ok(closed_in_time(t), "one that stops mid-request is closed (%s)", secs(t, b, sizeof(b)));
	if (fd >= 0)
		close(fd);
	fd = connect_to(port);
	tap_ok(fd >= 0 && send_str(fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n") >= 0 &&
	       read_until(fd, "\r\n\r\n", NEVER_S, buf, sizeof(buf)) == 1 &&
	       !strncmp(buf, "HTTP/1.1 200", 12), "a request on a fresh connection is answered");
	t0 = now_s();
	t = fd >= 0 ? closed_after(fd, t0) : -1;
	tap_ok(closed_in_time(t), "and the kept-alive connection is closed after its answer (%s)",
	       secs(t, b, sizeof(b)));
	if (fd >= 0)
		close(fd);
}

/* Requests in the engine are not idle, however long they take. */
static void test_busy_kept(pid_t pid, int port)
{
	static char buf[1 << 16];
	int fd = send_completion(port, 3000, true), got;
	char b[64];
	double t0, t;

	buf[0] = '\0';
	got = fd >= 0 ? read_until(fd, "data: ", NEVER_S, buf, sizeof(buf)) : -1;
	if (got == 1)
		pause_server(pid);
	got = got == 1 ? read_until(fd, "data: [DONE]", 60, buf, sizeof(buf)) : got;
	tap_ok(got == 1 && strstr(buf, "\"finish_reason\":\"length\""),
	       "a stream whose server pauses %g s mid-generation is not cut (%s)", PAUSE_S,
	       got == 1 ? "whole" : got == 0 ? "closed" : "timed out");
	if (fd >= 0)
		close(fd);
	buf[0] = '\0';
	fd = send_completion(port, 3000, false);
	if (fd >= 0) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };

		nanosleep(&ts, NULL);
		pause_server(pid);
	}
	got = fd >= 0 ? read_until(fd, "\"completion_tokens\":3000", 60, buf, sizeof(buf)) : -1;
	tap_ok(got == 1 && !strncmp(buf, "HTTP/1.1 200", 12),
	       "nor is a request answered whole, after a pause as long (%s)",
	       got == 1 ? "answered" : got == 0 ? "closed" : "timed out");
	t0 = now_s();
	t = fd >= 0 ? closed_after(fd, t0) : -1;
	tap_ok(closed_in_time(t), "once answered, its connection is idle again and closed (%s)",
	       secs(t, b, sizeof(b)));
	if (fd >= 0)
		close(fd);
}

static void test_idle_timeout(void)
{
	int port, status = -1;
	pid_t pid = start_server(&port);

	if (!tap_ok(port > 0, "a server with an idle timeout of %g s starts", IDLE_S)) {
		if (pid > 0)
			kill(pid, SIGKILL);
	} else {
		test_idle_closed(port);
		test_busy_kept(pid, port);
		kill(pid, SIGTERM);
	}
	if (pid > 0)
		waitpid(pid, &status, 0);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "and stops with 0 on SIGTERM");
}

int main(void)
{
	struct mw_params mp = mw_default_params();
	struct eng_error err;
	char cmd[200];

	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		return tap_skip_all("no temporary directory");
	snprintf(model, sizeof(model), "%s/m", dir);
	if (mw_write(&mp, model, NULL, &err) != 0)
		return tap_skip_all("model writer failed");
	test_loading();
	test_states();
	test_idle_timeout();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		tap_diag("cannot remove %s", dir);
	return tap_done();
}
