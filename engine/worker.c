/*
 * worker.c: the persistent worker's event loop (see engine.h).
 *
 * One thread: poll(2) over the listening socket and the clients, with a
 * zero timeout while the engine has work, so sockets are served between
 * scheduler steps.  Sockets are non-blocking; every client has an input
 * buffer (bounded by its longest line) and an output buffer (bounded by
 * the backpressure limit plus what one step can produce).
 */
#include <config.h>
#include "engine/infer.h"
#include "engine/worker_req.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define OUT_LIMIT (16u << 20)   /* pending output that pauses a client's input */
#define LINE_LIMIT (256u << 20) /* longest input line accepted */

struct buf {
	char *p;
	size_t off, len, cap;   /* unread data is p[off, len) */
};

struct client {
	int fd;
	struct buf in, out;
	char *line;             /* the line last handed to the run */
	size_t line_cap;
	long lineno;
	bool eof_in, dead, hello_done, closing;
	struct eng_run *run;
	struct eng_reqstream *rs; /* a "requests" client's stream */
	struct client *next;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int buf_append(struct buf *b, const char *s, size_t n)
{
	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		if (b->off > 0) { /* compact before growing */
			memmove(b->p, b->p + b->off, b->len - b->off);
			b->len -= b->off;
			b->off = 0;
		}
		while (cap < b->len + n)
			cap *= 2;
		if (cap != b->cap) {
			p = realloc(b->p, cap);
			if (!p)
				return -1;
			b->p = p;
			b->cap = cap;
		}
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

static int emit_line(struct client *c, const json_t *rec)
{
	char *s;
	int rc;

	if (c->dead)
		return 0;
	s = json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(16));
	if (!s)
		return -1;
	rc = buf_append(&c->out, s, strlen(s));
	free(s);
	return rc ? rc : buf_append(&c->out, "\n", 1);
}

/* ------------------------------------------------------------ run I/O */

static int client_next_line(void *ctx, char **line, size_t *len, long *lineno)
{
	struct client *c = ctx;
	char *start = c->in.p + c->in.off;
	size_t avail = c->in.len - c->in.off, n;
	char *nl;

	if (c->dead || c->out.len - c->out.off > OUT_LIMIT)
		return c->dead ? 0 : 2;
	nl = avail ? memchr(start, '\n', avail) : NULL;
	if (!nl && !(c->eof_in && avail > 0))
		return c->eof_in ? 0 : 2;
	n = nl ? (size_t)(nl - start) : avail;
	if (n + 1 > c->line_cap) {
		char *p = realloc(c->line, n + 1);

		if (!p)
			return ENG_E_NOMEM;
		c->line = p;
		c->line_cap = n + 1;
	}
	memcpy(c->line, start, n);
	c->line[n] = '\0';
	c->in.off += nl ? n + 1 : n;
	*line = c->line;
	*len = n;
	*lineno = ++c->lineno;
	return 1;
}

static int client_emit(void *ctx, const json_t *rec)
{
	return emit_line(ctx, rec);
}

static int client_emit_raw(void *ctx, const char *s, size_t n)
{
	struct client *c = ctx;

	return c->dead ? 0 : buf_append(&c->out, s, n);
}

static void client_diag(void *ctx, long line, const char *msg)
{
	json_t *rec = json_pack("{s:s,s:I,s:s}", "type", "diagnostic", "line",
				(json_int_t)line, "message", msg);

	if (rec)
		emit_line(ctx, rec);
	json_decref(rec);
}

/* ------------------------------------------------------------ server */

struct server {
	struct eng_infer *e;
	int lfd;
	struct client *clients;
	double t0;
	long n_runs_served;
	bool shutting_down;
};

/* Creates the listening socket, mode 0600.  A socket file nobody answers
 * on is stale and replaced; one a worker answers on is an error. */
static int listen_on(const char *path, int *fd_out, struct eng_error *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;
	mode_t old;

	if (strlen(path) >= sizeof(addr.sun_path))
		return eng_error_set(err, ENG_E_INVALID, path, 0, "socket path too long");
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return eng_error_set(err, ENG_E_IO, path, 0, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
		close(fd);
		return eng_error_set(err, ENG_E_IO, path, 0, "a worker is already serving here");
	}
	unlink(path);
	old = umask(077);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || chmod(path, 0600) != 0 ||
	    listen(fd, 64) != 0) {
		int e = errno;

		umask(old);
		close(fd);
		return eng_error_set(err, ENG_E_IO, path, 0, "cannot listen: %s", strerror(e));
	}
	umask(old);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	*fd_out = fd;
	return 0;
}

static void accept_clients(struct server *sv)
{
	for (;;) {
		int fd = accept(sv->lfd, NULL, NULL);
		struct client *c;

		if (fd < 0)
			return;
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			return;
		}
		c->fd = fd;
		c->next = sv->clients;
		sv->clients = c;
	}
}

static json_t *status_record(struct server *sv)
{
	struct eng_sched_stats st;
	long clients = 0, runs = 0;

	eng_runner_get_stats(sv->e->runner, &st);
	for (struct client *c = sv->clients; c; c = c->next) {
		clients++;
		runs += c->run != NULL;
	}
	return json_pack("{s:s,s:f,s:I,s:I,s:I,s:i,s:i,s:I,s:I,s:I,s:f,s:o,s:s}",
			 "type", "status", "uptime", eng_mono_s() - sv->t0,
			 "clients", (json_int_t)clients, "runs", (json_int_t)runs,
			 "runs_served", (json_int_t)sv->n_runs_served,
			 "running_requests", st.n_running, "waiting_requests", st.n_waiting,
			 "free_pages", (json_int_t)st.free_pages,
			 "cached_pages", (json_int_t)st.cached_pages, "steps", (json_int_t)st.n_steps,
			 "model_load_time", eng_infer_load_time(sv->e),
			 "settings", eng_infer_settings(sv->e), "version", PACKAGE_VERSION);
}

static void reply_and_close(struct client *c, json_t *rec)
{
	if (rec)
		emit_line(c, rec);
	json_decref(rec);
	c->closing = true;
	c->eof_in = true;
}

/* The first line of a client says what it wants. */
static void handle_hello(struct server *sv, struct client *c)
{
	static const struct eng_run_io io_tmpl = { client_next_line, client_emit, client_diag, NULL };
	char *line, name[256];
	size_t len;
	long lineno;
	json_t *hello, *rec;
	const char *cmd;
	struct eng_run_params rp;
	struct eng_run_io io = io_tmpl;
	struct eng_error err;

	if (client_next_line(c, &line, &len, &lineno) != 1)
		return;
	c->hello_done = true;
	c->lineno = 0; /* the run's input lines count from 1 */
	hello = json_loadb(line, len, 0, NULL);
	cmd = json_string_value(json_object_get(hello, "command"));
	if (!cmd || strcmp(json_string_value(json_object_get(hello, "type")) ?: "", "hello")) {
		rec = json_pack("{s:s,s:s}", "type", "error", "message", "expected a hello record");
	} else if (!strcmp(cmd, "status")) {
		rec = status_record(sv);
	} else if (!strcmp(cmd, "shutdown")) {
		sv->shutting_down = true;
		rec = json_pack("{s:s}", "type", "ok");
	} else if (!strcmp(cmd, "requests")) {
		if (eng_reqstream_open(sv->e, client_emit_raw, c, &c->rs) == 0) {
			json_decref(hello);
			return;
		}
		rec = json_pack("{s:s,s:s}", "type", "error", "message", "out of memory");
	} else if (strcmp(cmd, "run") != 0) {
		rec = json_pack("{s:s,s:s}", "type", "error", "message", "unknown command");
	} else if (eng_run_params_from_json(json_object_get(hello, "params"), &rp, name,
					    sizeof(name), &err) != 0 ||
		   (io.ctx = c, eng_run_start(sv->e, &rp, &io, &c->run, &err)) != 0) {
		rec = json_pack("{s:s,s:s}", "type", "error", "message", err.msg);
	} else {
		sv->n_runs_served++;
		json_decref(hello);
		return;
	}
	json_decref(hello);
	reply_and_close(c, rec);
}

static void read_client(struct client *c)
{
	char chunk[65536];

	for (;;) {
		ssize_t n = read(c->fd, chunk, sizeof(chunk));

		if (n > 0) {
			if (c->in.len - c->in.off + (size_t)n > LINE_LIMIT &&
			    !memchr(c->in.p + c->in.off, '\n', c->in.len - c->in.off)) {
				c->dead = true; /* a line past the limit: refuse the client */
				return;
			}
			if (buf_append(&c->in, chunk, (size_t)n) != 0)
				c->dead = true;
			if ((size_t)n < sizeof(chunk))
				return;
			continue;
		}
		if (n == 0)
			c->eof_in = true;
		else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			c->dead = true;
		return;
	}
}

static void write_client(struct client *c)
{
	while (c->out.off < c->out.len) {
		ssize_t n = send(c->fd, c->out.p + c->out.off, c->out.len - c->out.off, MSG_NOSIGNAL);

		if (n > 0) {
			c->out.off += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0 && errno == EINTR)
			continue;
		c->dead = true;
		return;
	}
}

static void client_free(struct client *c)
{
	close(c->fd);
	free(c->in.p);
	free(c->out.p);
	free(c->line);
	free(c);
}

/* A requests client: its lines go in, and it ends once it closed its side
 * (or went away) and none of its requests is left in the engine. */
static void settle_requests(struct client *c)
{
	char *line;
	size_t len;
	long lineno;

	if (c->dead)
		eng_reqstream_cancel(c->rs);
	else
		while (client_next_line(c, &line, &len, &lineno) == 1)
			eng_reqstream_line(c->rs, line, len);
	if ((c->dead || (c->eof_in && c->in.off == c->in.len)) && eng_reqstream_idle(c->rs)) {
		eng_reqstream_free(c->rs);
		c->rs = NULL;
		reply_and_close(c, NULL);
	}
}

/* Runs that ended get their run and end records; gone clients are freed. */
static void settle_clients(struct server *sv)
{
	struct client **pp = &sv->clients;

	while (*pp) {
		struct client *c = *pp;

		if (c->rs)
			settle_requests(c);
		if (c->run && c->dead)
			eng_run_cancel(c->run);
		if (c->run && eng_run_done(c->run)) {
			long bad = eng_run_finish(c->run);
			json_t *end = json_pack("{s:s,s:I}", "type", "end", "bad", (json_int_t)bad);

			c->run = NULL;
			reply_and_close(c, end);
		}
		if (!c->run && !c->rs && (c->dead || (c->closing && c->out.off == c->out.len))) {
			*pp = c->next;
			client_free(c);
			continue;
		}
		pp = &c->next;
	}
}

/* One round of socket I/O; waits up to timeout_ms when nothing is ready. */
static void serve_sockets(struct server *sv, int timeout_ms)
{
	struct pollfd fds[1024];
	struct client *who[1024];
	nfds_t n = 1;

	fds[0] = (struct pollfd){ .fd = sv->lfd, .events = sv->shutting_down ? 0 : POLLIN };
	for (struct client *c = sv->clients; c && n < 1024; c = c->next) {
		short ev = 0;

		if (!c->eof_in && !c->dead)
			ev |= POLLIN;
		if (c->out.off < c->out.len && !c->dead)
			ev |= POLLOUT;
		fds[n] = (struct pollfd){ .fd = c->fd, .events = ev };
		who[n++] = c;
	}
	if (poll(fds, n, timeout_ms) <= 0)
		return;
	if (fds[0].revents & POLLIN)
		accept_clients(sv);
	for (nfds_t i = 1; i < n; i++) {
		struct client *c = who[i];

		if (fds[i].revents & POLLIN)
			read_client(c);
		if (fds[i].revents & POLLOUT)
			write_client(c);
		if ((fds[i].revents & (POLLERR | POLLNVAL)) ||
		    ((fds[i].revents & POLLHUP) && !(fds[i].revents & POLLIN)))
			c->dead = true;
		if (!c->hello_done && !c->dead)
			handle_hello(sv, c);
	}
}

struct eng_worker {
	int lfd;
	char *path;
};

int eng_worker_listen(const char *socket_path, struct eng_worker **out, struct eng_error *err)
{
	struct eng_worker *w = calloc(1, sizeof(*w));
	int rc;

	*out = NULL;
	if (!w || !(w->path = strdup(socket_path))) {
		free(w);
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	}
	rc = listen_on(socket_path, &w->lfd, err);
	if (rc != 0) {
		free(w->path);
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

void eng_worker_close(struct eng_worker *w)
{
	if (!w)
		return;
	close(w->lfd);
	unlink(w->path);
	free(w->path);
	free(w);
}

int eng_worker_serve(struct eng_infer *e, const char *socket_path, struct eng_error *err)
{
	struct eng_worker *w;
	int rc = eng_worker_listen(socket_path, &w, err);

	if (rc != 0)
		return rc;
	rc = eng_worker_run(w, e, err);
	eng_worker_close(w);
	return rc;
}

int eng_worker_run(struct eng_worker *w, struct eng_infer *e, struct eng_error *err)
{
	struct server sv = { .e = e, .t0 = eng_mono_s(), .lfd = w->lfd };
	struct eng_runner *runner = e->runner;
	struct sigaction sa = { .sa_handler = on_signal };

	(void)err;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	stop_requested = 0;
	while (!(sv.shutting_down || stop_requested) || sv.clients) {
		bool idle = eng_runner_idle(runner);
		struct eng_error step_err;

		if (stop_requested && !sv.shutting_down) {
			sv.shutting_down = true;
			for (struct client *c = sv.clients; c; c = c->next)
				c->dead = true; /* cancels its run */
		}
		serve_sockets(&sv, idle ? 50 : 0);
		if (!idle)
			eng_runner_poll(runner, 0.002, &step_err);
		settle_clients(&sv);
	}
	return 0;
}
