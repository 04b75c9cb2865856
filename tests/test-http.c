/*
 * test-http.c: the serving loop's states and the HTTP front before it has
 * an engine (tests/http-server.test drives a whole server with curl).
 *
 * Checks: while the model loads, /health and the generation endpoints
 * answer 503 "loading" on a keep-alive connection; eng_serve_load reports
 * LISTENING, LOADED, READY and DRAINING in order and returns 0 after
 * SIGTERM; a model that cannot load leaves it at LISTENING with the load's
 * error; a port in use is refused before anything loads.
 */
#include "engine/front.h"
#include "engine/infer.h"
#include "tools/modelgen/model_writer.h"
#include "tests/tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		tap_diag("cannot remove %s", dir);
	return tap_done();
}
