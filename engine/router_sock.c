/*
 * router_sock.c: the router's link to one of our workers over its Unix
 * socket (see router.h).
 *
 * Two connections per worker.  The request connection says
 * {"type":"hello","command":"requests"} and then carries request lines
 * (and cancel and flush_cache lines) one way and token and result lines
 * the other, all requests of the router multiplexed on it by wire id (the
 * worker protocol is in engine.h).  A probe is a connection of its own
 * asking for the worker's status, so that a worker busy answering
 * requests is still seen to answer, and one that stopped answering is
 * seen to stop even with nothing in flight.
 *
 * Everything is non-blocking; the output buffer holds what the worker has
 * not read yet (a hung worker fills its socket, then this buffer: its
 * requests time out and it is marked down, which frees it).  A Unix
 * connect either succeeds or fails at once, so there is no connecting
 * state.
 */
#include <config.h>
#include "engine/router.h"
#include "engine/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct sbuf {
	char *p;
	size_t off, len, cap;    /* unread data is p[off, len) */
};

struct sock_link {
	struct eng_router *r;
	int k;                   /* the worker's index */
	char *path;
	int fd;                  /* the request connection, or -1 */
	unsigned conn_gen;       /* bumped when fd is dropped */
	struct sbuf in, out;
	int pfd;                 /* the probe's connection, or -1 */
	double p_deadline;
	struct sbuf pin;
	json_t *status;          /* the last status reply */
	int32_t *ids;            /* (cap_ids) a result's output ids */
	float *lps;              /* (cap_lps) a result's log-probs */
	size_t cap_ids, cap_lps;
};

static bool sock_accepts(const char *addr)
{
	return strncmp(addr, "http://", 7) && strncmp(addr, "https://", 8);
}

static int sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		if (b->off > 0) {
			memmove(b->p, b->p + b->off, b->len - b->off);
			b->len -= b->off;
			b->off = 0;
		}
		while (cap < b->len + n)
			cap *= 2;
		if (cap > b->cap) {
			if (!(p = realloc(b->p, cap)))
				return ENG_E_NOMEM;
			b->p = p;
			b->cap = cap;
		}
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

static int connect_unix(const char *path, char *why, size_t n)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(why, n, "socket path too long");
		return -1;
	}
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		snprintf(why, n, "connect: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* Writes what the worker will take now.  -1 when the connection broke. */
static int flush_out(int fd, struct sbuf *b)
{
	while (b->off < b->len) {
		ssize_t w = send(fd, b->p + b->off, b->len - b->off, MSG_NOSIGNAL);

		if (w > 0) {
			b->off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		return w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
	}
	return 0;
}

static void sock_disconnect(void *lv)
{
	struct sock_link *l = lv;

	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	l->conn_gen++;
	l->in.off = l->in.len = 0;
	l->out.off = l->out.len = 0;
}

static int ensure_connected(struct sock_link *l, struct eng_error *err)
{
	static const char hello[] = "{\"type\":\"hello\",\"command\":\"requests\"}\n";
	char why[256];

	if (l->fd >= 0)
		return 0;
	l->fd = connect_unix(l->path, why, sizeof(why));
	if (l->fd < 0)
		return eng_error_set(err, ENG_E_IO, l->path, 0, "%s", why);
	return sbuf_add(&l->out, hello, sizeof(hello) - 1) == 0 ? 0
	       : eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
}

/* Appends ",\"key\":[ids...]" to b. */
static int add_ids(struct sbuf *b, const char *key, const int32_t *ids, int32_t n)
{
	char tmp[32];
	int len = snprintf(tmp, sizeof(tmp), ",\"%s\":[", key);
	int rc = sbuf_add(b, tmp, (size_t)len);

	for (int32_t i = 0; rc == 0 && i < n; i++) {
		len = snprintf(tmp, sizeof(tmp), i ? ",%d" : "%d", (int)ids[i]);
		rc = sbuf_add(b, tmp, (size_t)len);
	}
	return rc ? rc : sbuf_add(b, "]", 1);
}

static int request_line(struct sbuf *b, const struct rt_send *s)
{
	const struct eng_request_params *p = s->p;
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "{\"type\":\"request\",\"id\":%llu,\"max_new_tokens\":%d,"
			 "\"ignore_eos\":%s,\"temperature\":%.9g,\"top_k\":%d,\"top_p\":%.9g,"
			 "\"seed\":%lld",
			 (unsigned long long)s->wire_id, (int)p->max_new_tokens,
			 p->ignore_eos ? "true" : "false", (double)p->sampling.temperature,
			 (int)p->sampling.top_k, (double)p->sampling.top_p,
			 (long long)p->sampling.seed);
	int rc = sbuf_add(b, head, (size_t)n);

	if (rc == 0 && p->score) {
		n = snprintf(head, sizeof(head), ",\"score_from\":%d", (int)p->score_from);
		rc = sbuf_add(b, head, (size_t)n);
	}
	if (rc == 0 && p->min_tokens > 0) {
		n = snprintf(head, sizeof(head), ",\"min_tokens\":%d", (int)p->min_tokens);
		rc = sbuf_add(b, head, (size_t)n);
	}
	if (rc == 0 && p->n_stop_ids > 0)
		rc = add_ids(b, "stop_ids", p->stop_ids, p->n_stop_ids);
	if (rc == 0)
		rc = add_ids(b, "prompt_ids", p->prompt, p->prompt_len);
	if (rc == 0 && p->forced_output && !p->score)
		rc = add_ids(b, "forced_output_ids", p->forced_output, p->max_new_tokens);
	return rc ? rc : sbuf_add(b, "}\n", 2);
}

static int sock_send(void *lv, const struct rt_send *s, struct eng_error *err)
{
	struct sock_link *l = lv;
	int rc = ensure_connected(l, err);

	if (rc != 0)
		return rc;
	if (request_line(&l->out, s) != 0)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	if (flush_out(l->fd, &l->out) != 0) {
		int e = errno;

		sock_disconnect(l);
		return eng_error_set(err, ENG_E_IO, l->path, 0, "send: %s", strerror(e));
	}
	return 0;
}

static void sock_cancel(void *lv, uint64_t wire_id)
{
	struct sock_link *l = lv;
	char line[96];
	int n = snprintf(line, sizeof(line), "{\"type\":\"cancel\",\"id\":%llu}\n",
			 (unsigned long long)wire_id);

	if (l->fd >= 0)
		sbuf_add(&l->out, line, (size_t)n);
}

static void sock_flush_cache(void *lv)
{
	static const char line[] = "{\"type\":\"flush_cache\"}\n";
	struct sock_link *l = lv;
	struct eng_error err;

	if (ensure_connected(l, &err) == 0)
		sbuf_add(&l->out, line, sizeof(line) - 1);
}

/* ---------------------------------------------------------------- replies */

static enum eng_finish finish_of(const char *s)
{
	if (!s)
		return ENG_FINISH_ERROR;
	if (!strcmp(s, "length"))
		return ENG_FINISH_LENGTH;
	if (!strcmp(s, "stop"))
		return ENG_FINISH_STOP;
	if (!strcmp(s, "abort"))
		return ENG_FINISH_ABORT;
	return ENG_FINISH_ERROR;
}

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
	void *q;

	if (n <= *cap)
		return 0;
	if (!(q = realloc(*p, size * n)))
		return -1;
	*p = q;
	*cap = n;
	return 0;
}

static void take_result(struct sock_link *l, uint64_t id, const json_t *rec)
{
	const json_t *out = json_object_get(rec, "output_ids");
	const json_t *lps = json_object_get(rec, "logprobs");
	const json_t *qt = json_object_get(rec, "queue_time");
	const json_t *cached = json_object_get(rec, "cached_tokens");
	struct rt_result res = {
		.finish = finish_of(json_string_value(json_object_get(rec, "finish_reason"))),
		.prompt_len = (int32_t)json_integer_value(json_object_get(rec, "prompt_len")),
		.cached_tokens = json_is_integer(cached) ? (int32_t)json_integer_value(cached) : -1,
		.error = json_string_value(json_object_get(rec, "error")),
		.worker_queue_time = json_is_number(qt) ? json_number_value(qt) : -1,
	};
	size_t n = json_array_size(out), m = json_array_size(lps);
	int64_t from = json_integer_value(json_object_get(rec, "logprobs_from"));

	if (grow((void **)&l->ids, &l->cap_ids, n, sizeof(int32_t)) != 0 ||
	    (m && grow((void **)&l->lps, &l->cap_lps, (size_t)from + m, sizeof(float)) != 0)) {
		res.finish = ENG_FINISH_ERROR;
		res.error = "out of memory";
		n = m = 0;
	}
	for (size_t i = 0; i < n; i++)
		l->ids[i] = (int32_t)json_integer_value(json_array_get(out, i));
	res.output = l->ids;
	res.n_output = (int32_t)n;
	if (m && from >= 0) {
		for (size_t i = 0; i < m; i++) {
			const json_t *v = json_array_get(lps, i);

			/* null: not finite at the worker (JSON has no -inf) */
			l->lps[(size_t)from + i] = json_is_number(v) ? (float)json_number_value(v)
							: NAN;
		}
		res.logprobs = l->lps;
	}
	if (res.finish == ENG_FINISH_ERROR && !res.error)
		res.error = "the worker failed the request";
	eng_router_result(l->r, l->k, id, &res);
}

/* One line from the request connection. */
static void take_line(struct sock_link *l, const char *line, size_t len)
{
	json_t *rec = json_loadb(line, len, 0, NULL);
	const char *type = json_string_value(json_object_get(rec, "type"));
	uint64_t id = (uint64_t)json_integer_value(json_object_get(rec, "id"));

	if (type && !strcmp(type, "token")) {
		eng_router_token(l->r, l->k, id,
				 (int32_t)json_integer_value(json_object_get(rec, "token")),
				 (int32_t)json_integer_value(json_object_get(rec, "index")));
	} else if (type && !strcmp(type, "result")) {
		take_result(l, id, rec);
	} else if (type && !strcmp(type, "error")) {
		char why[512];

		snprintf(why, sizeof(why), "the worker refused requests: %s",
			 json_string_value(json_object_get(rec, "message")) ?: "error");
		sock_disconnect(l);
		eng_router_broken(l->r, l->k, why);
	}
	json_decref(rec);
}

/* Reads what came; reports each whole line.  Stops when a report dropped
 * the connection. */
static void read_requests(struct sock_link *l)
{
	unsigned gen = l->conn_gen;
	char chunk[65536];
	bool eof = false;
	int e = 0;

	for (;;) {
		ssize_t n = read(l->fd, chunk, sizeof(chunk));

		if (n > 0 && sbuf_add(&l->in, chunk, (size_t)n) == 0 && (size_t)n == sizeof(chunk))
			continue;
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			eof = true;
			e = n < 0 ? errno : 0;
		}
		break;
	}
	while (l->conn_gen == gen && l->in.off < l->in.len) {
		char *start = l->in.p + l->in.off;
		char *nl = memchr(start, '\n', l->in.len - l->in.off);

		if (!nl)
			break;
		l->in.off += (size_t)(nl - start) + 1;
		take_line(l, start, (size_t)(nl - start));
	}
	if (eof && l->conn_gen == gen) {
		char why[300];

		snprintf(why, sizeof(why), "the worker closed the connection%s%s", e ? ": " : "",
			 e ? strerror(e) : "");
		sock_disconnect(l);
		eng_router_broken(l->r, l->k, why);
	}
}

/* ---------------------------------------------------------------- probes */

static void probe_end(struct sock_link *l, bool ok, const char *why)
{
	close(l->pfd);
	l->pfd = -1;
	l->pin.off = l->pin.len = 0;
	eng_router_probed(l->r, l->k, ok, why);
}

static void sock_probe(void *lv, double deadline)
{
	static const char hello[] = "{\"type\":\"hello\",\"command\":\"status\"}\n";
	struct sock_link *l = lv;
	char why[256];

	if (l->pfd >= 0)
		return;
	l->pfd = connect_unix(l->path, why, sizeof(why));
	if (l->pfd < 0) {
		eng_router_probed(l->r, l->k, false, why);
		return;
	}
	l->p_deadline = deadline;
	if (send(l->pfd, hello, sizeof(hello) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(hello) - 1))
		probe_end(l, false, "cannot send the status command");
}

static void read_probe(struct sock_link *l)
{
	char chunk[4096], *nl;
	ssize_t n = read(l->pfd, chunk, sizeof(chunk));
	json_t *rec;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0 && sbuf_add(&l->pin, chunk, (size_t)n) != 0)
		n = -1;
	nl = l->pin.len ? memchr(l->pin.p, '\n', l->pin.len) : NULL;
	if (!nl && n > 0)
		return;
	if (!nl) {
		probe_end(l, false, "the worker closed the status connection");
		return;
	}
	rec = json_loadb(l->pin.p, (size_t)(nl - l->pin.p), 0, NULL);
	if (strcmp(json_string_value(json_object_get(rec, "type")) ?: "", "status") != 0) {
		json_decref(rec);
		probe_end(l, false, "no status reply");
		return;
	}
	json_decref(l->status);
	l->status = rec;
	probe_end(l, true, NULL);
}

/* ---------------------------------------------------------------- polling */

static void sock_watch(void *lv, struct pollfd *fds, int *n, int cap)
{
	struct sock_link *l = lv;

	if (l->fd >= 0 && *n < cap)
		fds[(*n)++] = (struct pollfd){ l->fd, (short)(POLLIN |
					       (l->out.off < l->out.len ? POLLOUT : 0)), 0 };
	if (l->pfd >= 0 && *n < cap)
		fds[(*n)++] = (struct pollfd){ l->pfd, POLLIN, 0 };
}

static void sock_dispatch(void *lv, const struct pollfd *fds, int n)
{
	struct sock_link *l = lv;

	for (int i = 0; i < n; i++) {
		short ev = fds[i].revents;

		if (!ev)
			continue;
		if (fds[i].fd == l->fd) {
			if ((ev & POLLOUT) && flush_out(l->fd, &l->out) != 0)
				ev |= POLLHUP;
			if (ev & (POLLIN | POLLHUP | POLLERR))
				read_requests(l);
		} else if (fds[i].fd == l->pfd) {
			read_probe(l);
		}
	}
}

static void sock_step(void *lv, double now)
{
	struct sock_link *l = lv;
	char why[96];

	if (l->fd >= 0 && l->out.off < l->out.len && flush_out(l->fd, &l->out) != 0) {
		sock_disconnect(l);
		eng_router_broken(l->r, l->k, "the worker closed the connection");
	}
	if (l->pfd >= 0 && now > l->p_deadline) {
		snprintf(why, sizeof(why), "health check timed out");
		probe_end(l, false, why);
	}
}

static json_t *sock_last_status(void *lv)
{
	struct sock_link *l = lv;

	return l->status ? json_incref(l->status) : NULL;
}

static int sock_open(struct eng_router *r, int k, const char *addr, void **out,
		     struct eng_error *err)
{
	struct sock_link *l = calloc(1, sizeof(*l));

	*out = NULL;
	if (!l || !(l->path = strdup(addr))) {
		free(l);
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	}
	l->r = r;
	l->k = k;
	l->fd = l->pfd = -1;
	*out = l;
	return 0;
}

static void sock_close(void *lv)
{
	struct sock_link *l = lv;

	sock_disconnect(l);
	if (l->pfd >= 0)
		close(l->pfd);
	json_decref(l->status);
	free(l->in.p);
	free(l->out.p);
	free(l->pin.p);
	free(l->ids);
	free(l->lps);
	free(l->path);
	free(l);
}

const struct rt_link_ops eng_link_sock = {
	"socket", sock_accepts, sock_open, sock_send, sock_cancel, sock_flush_cache,
	sock_probe, sock_watch, sock_dispatch, sock_step, sock_disconnect, sock_last_status,
	sock_close,
};
