/*
 * worker.c: the persistent worker's Unix-socket front (see engine.h and
 * front.h; serve.c runs the loop).
 *
 * One thread: epoll(7) over the listening socket and the clients, its
 * descriptor polled with the other fronts', with a zero timeout while the
 * engine has work, so sockets are served between scheduler steps.  Level-triggered epoll hands out ready sockets in turn,
 * so every client is served however many there are (poll(2) over a fixed
 * array once starved the oldest past 1024).
 *
 * Memory per connection is bounded by constants, so the worker's is bounded
 * by its settings (max_connections): a client's unread input is read only
 * while it holds no whole line or less than IN_LIMIT bytes, and only while
 * its output waiting to be sent is under OUT_LIMIT (a client that never
 * reads stops being read); a line may be up to LINE_LIMIT long, and a
 * longer one ends the connection with an error record.  The output buffer
 * holds OUT_LIMIT plus what one scheduler step can produce.
 *
 * A connection is refused with an error record, then closed, when it would
 * exceed max_connections or comes from another user (SO_PEERCRED), and
 * closed when nothing has moved on it for idle_timeout_s while none of its
 * requests is in the engine.
 */
#include <config.h>
#include "engine/front.h"
#include "engine/infer.h"
#include "engine/worker_req.h"
#include "engine/sock.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_LIMIT (1u << 20)     /* unread input past one whole line that pauses reading */
#define OUT_LIMIT (16u << 20)   /* pending output that pauses a client's input */
#define LINE_LIMIT (256u << 20) /* longest input line accepted */
#define READ_CHUNK 65536

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
	bool has_line;          /* in holds a whole line */
	bool discard_in;        /* refused: what it sends is read and dropped */
	bool in_epoll;
	uint32_t events;        /* what epoll watches on fd now */
	double last_io_s;       /* when bytes last moved either way */
	struct eng_run *run;
	struct eng_reqstream *rs; /* a "requests" client's stream */
	struct client *next;
};

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
	char *nl = NULL;

	if (c->dead || c->discard_in)
		return 0;
	if (c->out.len - c->out.off > OUT_LIMIT)
		return 2;
	if (c->has_line)
		nl = memchr(start, '\n', avail);
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
	c->has_line = nl && memchr(c->in.p + c->in.off, '\n', c->in.len - c->in.off);
	*line = c->line;
	*len = n;
	*lineno = ++c->lineno;
	return 1;
}

static int client_emit(void *ctx, const json_t *rec)
{
	return emit_line(ctx, rec);
}

/* msg as a JSON string.  Messages quote input cut to a length (a
 * conversation id, say), which may end inside a UTF-8 sequence: they are
 * made valid, or the record holding them could not be built. */
static json_t *message_json(const char *msg)
{
	size_t len;
	char *clean = eng_utf8_sanitize(msg, strlen(msg), &len);
	json_t *j = clean ? json_stringn(clean, len) : NULL;

	free(clean);
	return j;
}

static int client_emit_raw(void *ctx, const char *s, size_t n)
{
	struct client *c = ctx;

	return c->dead ? 0 : buf_append(&c->out, s, n);
}

static void client_diag(void *ctx, long line, const char *msg)
{
	json_t *rec = json_pack("{s:s,s:I,s:o}", "type", "diagnostic", "line",
				(json_int_t)line, "message", message_json(msg));

	if (rec)
		emit_line(ctx, rec);
	else
		fprintf(stderr, "worker: a diagnostic for a client was lost: out of memory\n");
	json_decref(rec);
}

/* ------------------------------------------------------------ server */

struct server {
	struct eng_infer *e;
	struct eng_worker_params p;
	struct eng_listener l;
	int epfd;
	uint32_t l_events;        /* what epoll watches on the listener now */
	struct client *clients;
	int32_t n_clients;
	double t0, last_idle_check;
	long n_runs_served;
	bool shutting_down, accept_paused;
	bool draining;            /* no new clients */
};

/* An error record for a connection refused before it became a client:
 * best effort, the socket is new and its buffer empty. */
static void refuse(int fd, const char *msg)
{
	json_t *rec = json_pack("{s:s,s:s}", "type", "error", "message", msg);
	char *s = rec ? json_dumps(rec, JSON_COMPACT) : NULL;

	if (s && send(fd, s, strlen(s), MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
		send(fd, "\n", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	free(s);
	json_decref(rec);
	close(fd);
}

/* Why a new connection is refused, into msg; false when it is welcome. */
static bool refusal(const struct server *sv, int fd, char *msg, size_t n)
{
	uid_t uid;

	if (eng_sock_peer_uid(fd, &uid) != 0) {
		snprintf(msg, n, "cannot tell the connection's user: %s", strerror(errno));
		return true;
	}
	if (!eng_sock_uid_allowed(uid, geteuid(), sv->p.allow_root_clients)) {
		snprintf(msg, n, "the worker serves only its own user (uid %ld%s), not uid %ld",
			 (long)geteuid(), sv->p.allow_root_clients ? " and root" : "", (long)uid);
		return true;
	}
	if (sv->n_clients >= sv->p.max_connections) {
		snprintf(msg, n, "the worker serves at most %d connections at once (--max-connections); "
			 "try again later", sv->p.max_connections);
		return true;
	}
	return false;
}

static void add_client(struct server *sv, int fd)
{
	struct client *c = calloc(1, sizeof(*c));
	struct epoll_event ev = { .events = EPOLLIN };

	ev.data.ptr = c;
	if (!c || epoll_ctl(sv->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		free(c);
		refuse(fd, "the worker cannot take a connection now");
		return;
	}
	c->fd = fd;
	c->in_epoll = true;
	c->events = EPOLLIN;
	c->last_io_s = eng_mono_s();
	c->next = sv->clients;
	sv->clients = c;
	sv->n_clients++;
}

static void accept_clients(struct server *sv)
{
	char msg[200];

	for (;;) {
		int fd = accept4(sv->l.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			/* Out of descriptors: stop listening until a client leaves,
			 * or the ready listener would spin the loop. */
			if (errno == EMFILE || errno == ENFILE)
				sv->accept_paused = true;
			return;
		}
		if (refusal(sv, fd, msg, sizeof(msg)))
			refuse(fd, msg);
		else
			add_client(sv, fd);
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
		rec = json_pack("{s:s,s:o}", "type", "error", "message", message_json(err.msg));
	} else {
		sv->n_runs_served++;
		json_decref(hello);
		return;
	}
	json_decref(hello);
	reply_and_close(c, rec);
}

/* An error record to the client, which is then closed once its output is
 * sent (and its run, if any, has ended). */
static void close_with_error(struct client *c, const char *msg)
{
	json_t *rec = json_pack("{s:s,s:s}", "type", "error", "message", msg);

	if (rec)
		emit_line(c, rec);
	json_decref(rec);
	c->closing = true;
}

/* A line past LINE_LIMIT: the client's run stops and it is told why; what
 * it still sends is read and dropped, so that it is not stuck writing
 * while the error waits for it. */
static void refuse_long_line(struct client *c)
{
	char msg[200];

	if (c->hello_done)
		snprintf(msg, sizeof(msg), "input line %ld is longer than %u bytes; the run is stopped",
			 c->lineno + 1, LINE_LIMIT);
	else
		snprintf(msg, sizeof(msg), "the hello line is longer than %u bytes", LINE_LIMIT);
	free(c->in.p);
	c->in = (struct buf){ 0 };
	c->has_line = false;
	c->discard_in = true;
	if (c->run)
		eng_run_cancel(c->run);
	close_with_error(c, msg);
}

/* Whether to read the client's socket now: the back-pressure rule. */
static bool wants_input(const struct client *c)
{
	if (c->eof_in || c->dead)
		return false;
	if (c->discard_in)
		return true;
	if (c->out.len - c->out.off > OUT_LIMIT)
		return false;
	return !c->has_line || c->in.len - c->in.off < IN_LIMIT;
}

static void take_input(struct client *c, const char *chunk, size_t n)
{
	bool nl = memchr(chunk, '\n', n) != NULL;

	if (!c->has_line && !nl && c->in.len - c->in.off + n > LINE_LIMIT) {
		refuse_long_line(c);
		return;
	}
	if (buf_append(&c->in, chunk, n) != 0) {
		c->dead = true;
		return;
	}
	c->has_line |= nl;
}

static void read_client(struct client *c)
{
	char chunk[READ_CHUNK];

	while (wants_input(c)) {
		ssize_t n = read(c->fd, chunk, sizeof(chunk));

		if (n > 0) {
			c->last_io_s = eng_mono_s();
			if (!c->discard_in)
				take_input(c, chunk, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			c->eof_in = true;
		else if (errno != EAGAIN && errno != EWOULDBLOCK)
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
			c->last_io_s = eng_mono_s();
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

static void client_free(struct server *sv, struct client *c)
{
	close(c->fd); /* leaves the epoll set with it */
	free(c->in.p);
	free(c->out.p);
	free(c->line);
	free(c);
	sv->n_clients--;
	sv->accept_paused = false;
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
			client_free(sv, c);
			continue;
		}
		pp = &c->next;
	}
}

/* Closes connections on which nothing moved for idle_timeout_s while none
 * of their requests is in the engine (a run waiting for input that does
 * not come, or for a client that does not read; a connection that never
 * says hello).  Checked once a second. */
static void close_idle(struct server *sv)
{
	double now = eng_mono_s();
	char msg[160];

	if (sv->p.idle_timeout_s <= 0 || now - sv->last_idle_check < 1.0)
		return;
	sv->last_idle_check = now;
	snprintf(msg, sizeof(msg), "closed after %g s with nothing sent or received (--idle-timeout)",
		 sv->p.idle_timeout_s);
	for (struct client *c = sv->clients; c; c = c->next) {
		if (c->dead || now - c->last_io_s < sv->p.idle_timeout_s ||
		    (c->run && eng_run_busy(c->run)) || (c->rs && !eng_reqstream_idle(c->rs)))
			continue;
		close_with_error(c, msg);
		write_client(c); /* best effort: it may not be reading */
		c->dead = true;
	}
}

static void watch(struct server *sv, int fd, void *ptr, uint32_t *now, uint32_t want)
{
	struct epoll_event ev = { .events = want };

	if (want == *now)
		return;
	ev.data.ptr = ptr;
	if (epoll_ctl(sv->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
		*now = want;
}

/* Tells epoll what each socket waits for now.  A dead client leaves the
 * set: its hangup would otherwise be reported on every wait. */
static void update_interest(struct server *sv)
{
	watch(sv, sv->l.fd, NULL, &sv->l_events,
	      sv->shutting_down || sv->draining || sv->accept_paused ? 0 : EPOLLIN);
	for (struct client *c = sv->clients; c; c = c->next) {
		uint32_t want = 0;

		if (c->dead) {
			if (c->in_epoll)
				epoll_ctl(sv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
			c->in_epoll = false;
			continue;
		}
		if (wants_input(c))
			want |= EPOLLIN;
		if (c->out.off < c->out.len)
			want |= EPOLLOUT;
		watch(sv, c->fd, c, &c->events, want);
	}
}

static void client_ready(struct server *sv, struct client *c, uint32_t ev)
{
	if (ev & EPOLLIN)
		read_client(c);
	if (ev & EPOLLOUT)
		write_client(c);
	/* A hangup with nothing left to read: the client is gone. */
	if ((ev & EPOLLERR) || ((ev & EPOLLHUP) && !(ev & EPOLLIN)))
		c->dead = true;
	if (!c->hello_done && !c->dead && !c->discard_in)
		handle_hello(sv, c);
}

/* ------------------------------------------------------------ the front */

/* The epoll set is one descriptor among the other fronts'. */
static void sock_watch(void *st, struct eng_pollset *ps)
{
	struct server *sv = st;

	update_interest(sv);
	eng_pollset_add(ps, sv->epfd, POLLIN);
}

static void sock_dispatch(void *st, const struct eng_pollset *ps)
{
	struct server *sv = st;
	struct epoll_event evs[64];
	int n;

	(void)ps;
	n = epoll_wait(sv->epfd, evs, 64, 0);
	for (int i = 0; i < n; i++) {
		if (evs[i].data.ptr)
			client_ready(sv, evs[i].data.ptr, evs[i].events);
		else if (evs[i].events & EPOLLIN)
			accept_clients(sv);
	}
}

static void sock_settle(void *st)
{
	settle_clients(st);
	close_idle(st);
}

static int sock_timeout_ms(void *st)
{
	/* Idle connections are checked once a second. */
	return ((struct server *)st)->p.idle_timeout_s > 0 ? 1000 : -1;
}

static void sock_drain(void *st)
{
	((struct server *)st)->draining = true;
}

static void sock_cancel(void *st)
{
	for (struct client *c = ((struct server *)st)->clients; c; c = c->next)
		c->dead = true; /* cancels its run */
}

static bool sock_idle(void *st)
{
	return ((struct server *)st)->clients == NULL;
}

static bool sock_shutdown_asked(void *st)
{
	return ((struct server *)st)->shutting_down;
}

/* The listener and the epoll set stay open: they are the worker's. */
static void sock_close(void *st)
{
	struct server *sv = st;

	while (sv->clients) {
		struct client *c = sv->clients;

		sv->clients = c->next;
		if (c->run) {
			eng_run_cancel(c->run);
			while (!eng_run_done(c->run))
				eng_infer_poll(sv->e, 0, NULL);
			eng_run_finish(c->run);
		}
		client_free(sv, c);
	}
	free(sv);
}

static const struct eng_front_ops sock_ops = {
	sock_watch, sock_dispatch, sock_settle, sock_timeout_ms, sock_drain, sock_cancel,
	sock_idle, sock_shutdown_asked, sock_close,
};

struct eng_worker {
	struct eng_worker_params p;
	char *path;               /* p.socket_path, our copy */
	struct eng_listener l;
	int epfd;
};

void eng_worker_default_params(struct eng_worker_params *p)
{
	memset(p, 0, sizeof(*p));
	p->max_connections = 256;
	p->idle_timeout_s = 600;
}

/* The epoll set, with the listener in it. */
static int open_epoll(struct eng_worker *w, struct eng_error *err)
{
	struct epoll_event ev = { .events = EPOLLIN };

	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0)
		return eng_error_set(err, ENG_E_IO, NULL, 0, "epoll_create1: %s", strerror(errno));
	ev.data.ptr = NULL; /* the listener */
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->l.fd, &ev) != 0)
		return eng_error_set(err, ENG_E_IO, w->path, 0, "epoll_ctl: %s", strerror(errno));
	return 0;
}

int eng_worker_listen(const struct eng_worker_params *p, struct eng_worker **out,
		      struct eng_error *err)
{
	struct eng_worker *w;
	int rc;

	*out = NULL;
	if (!p->socket_path || p->max_connections < 1 || !(p->idle_timeout_s >= 0))
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "a socket path, max_connections >= 1 and idle_timeout_s >= 0 "
				     "are required");
	w = calloc(1, sizeof(*w));
	if (!w || !(w->path = strdup(p->socket_path))) {
		free(w);
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	}
	w->p = *p;
	w->p.socket_path = w->path;
	w->epfd = -1;
	rc = eng_listener_open(w->path, &w->l, err);
	if (rc == 0)
		rc = open_epoll(w, err);
	if (rc != 0) {
		eng_worker_close(w);
		return rc;
	}
	*out = w;
	return 0;
}

void eng_worker_close(struct eng_worker *w)
{
	if (!w)
		return;
	eng_listener_close(&w->l);
	if (w->epfd >= 0)
		close(w->epfd);
	free(w->path);
	free(w);
}

int eng_worker_serve(struct eng_infer *e, const struct eng_worker_params *p,
		     struct eng_error *err)
{
	struct eng_worker *w;
	int rc = eng_worker_listen(p, &w, err);

	if (rc != 0)
		return rc;
	rc = eng_worker_run(w, e, err);
	eng_worker_close(w);
	return rc;
}

int eng_sock_front_open(struct eng_worker *w, struct eng_infer *e, struct eng_front *out,
			struct eng_error *err)
{
	struct server *sv = calloc(1, sizeof(*sv));

	if (!sv)
		return eng_error_set(err, ENG_E_NOMEM, w->path, 0, "out of memory");
	*sv = (struct server){ .e = e, .p = w->p, .l = w->l, .epfd = w->epfd, .l_events = EPOLLIN };
	sv->t0 = sv->last_idle_check = eng_mono_s();
	out->ops = &sock_ops;
	out->st = sv;
	return 0;
}

int eng_worker_run(struct eng_worker *w, struct eng_infer *e, struct eng_error *err)
{
	struct eng_serve_params p;

	eng_serve_default_params(&p);
	p.worker = w;
	return eng_serve(e, &p, err);
}
