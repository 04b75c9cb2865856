/*
 * bench-http.c: a load client for `make bench-http` (pipelines/
 * bench-http.sh), so that the HTTP front can be measured against the
 * Unix-socket front on the same requests, by the same client.
 *
 *   bench-http --port N [--host A] [--concurrency C] [--max-tokens L]
 *              [--idle K] FILE
 *   bench-http --socket PATH [--concurrency C] [--max-tokens L] FILE
 *
 * With --flush-port N the server's prefix cache is emptied first (POST
 * /flush_cache on that port), so that runs start from a cold cache.
 *
 * FILE holds OpenAI chat-completion request lines (prompt-render --format
 * openai).  Each is sent to /v1/chat/completions as a stream at temperature
 * 0 with ignore_eos and max_tokens L, C at a time over C kept-alive
 * connections, by one thread polling them all (so that the client costs
 * little next to the server).  K more connections are opened first, each
 * answered once (GET /health) and then left idle for the whole run.
 *
 * With --socket the same lines go to a worker's socket as one generate run
 * (output_len L, C lines in flight, the cache kept as it is); a request's
 * record comes back when it ends, so there the TTFT is the one the record
 * gives (measured in the engine, from submission), and the E2E is the
 * client's, as over HTTP.
 *
 * Over HTTP, TTFT is the time from writing a request to reading its first
 * content event (the role chunk that opens a chat stream does not count;
 * a token whose text is held back, half a UTF-8 character, sends none, so
 * with random weights this is often a later token: compare the engine's
 * TTFT, or the one-token round trip, across fronts); E2E to the end of
 * its stream.  Prints one JSON object: requests, output
 * tokens, wall seconds, output tokens per second, TTFT and E2E percentiles
 * in ms.  Exit 1 when a request failed.
 *
 * A benchmark tool: it trusts the server to speak HTTP/1.1 with chunked
 * streams and parses no more of it than that needs.
 */
#include "engine/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct conn {
	int fd;
	int req;                  /* request in flight, or -1 */
	char *in;                 /* (cap) bytes read, not yet parsed */
	size_t len, cap;
	bool headers_done, first_seen;
	size_t chunk_left;        /* bytes left of the current chunk */
	char *events;             /* de-chunked body not yet split into events */
	size_t ev_len, ev_cap;
	double t_send;
};

static char **bodies;
static int n_bodies;
static double *ttft, *e2e;
static long long out_tokens;
static int n_failed;

static int connect_tcp(const char *host, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void append(char **b, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*b = realloc(*b, *cap);
		if (!*b)
			abort(); /* a benchmark client out of memory cannot go on */
	}
	memcpy(*b + *len, s, n);
	*len += n;
	(*b)[*len] = '\0';
}

/* The request lines; for HTTP as stream bodies with the run's settings. */
static int load(const char *path, int max_tokens, bool http)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;

	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		json_t *j = json_loads(line, 0, NULL);

		if (!json_is_object(j))
			continue;
		json_object_set_new(j, "max_tokens", json_integer(max_tokens));
		if (http) {
			json_object_set_new(j, "temperature", json_real(0));
			json_object_set_new(j, "ignore_eos", json_true());
			json_object_set_new(j, "stream", json_true());
			json_object_set_new(j, "stream_options", json_pack("{s:b}", "include_usage", 1));
		}
		bodies = realloc(bodies, sizeof(*bodies) * (size_t)(n_bodies + 1));
		bodies[n_bodies++] = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	}
	free(line);
	fclose(f);
	return n_bodies > 0 ? 0 : -1;
}

static int send_request(struct conn *c, int req, const char *host)
{
	char head[256];
	size_t n = strlen(bodies[req]);
	int h = snprintf(head, sizeof(head),
			 "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\n"
			 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", host, n);

	c->req = req;
	c->len = c->ev_len = c->chunk_left = 0;
	c->headers_done = c->first_seen = false;
	c->t_send = eng_mono_s();
	return write(c->fd, head, (size_t)h) == h && write(c->fd, bodies[req], n) == (ssize_t)n ? 0 : -1;
}

/* Splits the de-chunked body into SSE events; returns true at [DONE]. */
static bool take_events(struct conn *c, double now)
{
	char *p = c->events, *end;
	bool done = false;

	if (!p)
		return false;
	while ((end = strstr(p, "\n\n"))) {
		*end = '\0';
		if (!strncmp(p, "data: [DONE]", 12)) {
			done = true;
		} else if (!strncmp(p, "data: ", 6)) {
			const char *u = strstr(p, "\"completion_tokens\":");

			if (!c->first_seen && !strstr(p, "\"role\"") && strstr(p, "\"content\":\"")) {
				c->first_seen = true;
				ttft[c->req] = now - c->t_send;
			}
			if (u)
				out_tokens += atoll(u + 20);
		}
		p = end + 2;
	}
	c->ev_len -= (size_t)(p - c->events);
	memmove(c->events, p, c->ev_len + 1);
	return done;
}

/* Parses what was read: headers, then chunks.  Returns 1 when the
 * response is complete, 0 when more is needed, -1 on an error status. */
static int parse(struct conn *c, double now)
{
	char *p = c->in, *end = c->in + c->len;
	int complete = 0;

	if (!c->headers_done) {
		char *h = strstr(c->in, "\r\n\r\n");

		if (!h)
			return 0;
		if (strncmp(c->in, "HTTP/1.1 200", 12) != 0)
			return -1;
		c->headers_done = true;
		p = h + 4;
	}
	while (p < end && !complete) {
		if (c->chunk_left == 0) {
			char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);

			if (!eol)
				break;
			c->chunk_left = strtoul(p, NULL, 16) + 2; /* the chunk's CRLF too */
			if (c->chunk_left == 2) {
				complete = 1; /* the last chunk */
				p = eol + 2;
				break;
			}
			p = eol + 2;
		}
		{
			size_t n = (size_t)(end - p) < c->chunk_left ? (size_t)(end - p) : c->chunk_left;
			size_t data = c->chunk_left > 2 ? (n < c->chunk_left - 2 ? n : c->chunk_left - 2) : 0;

			append(&c->events, &c->ev_len, &c->ev_cap, p, data);
			c->chunk_left -= n;
			p += n;
		}
	}
	c->len -= (size_t)(p - c->in);
	memmove(c->in, p, c->len + 1);
	take_events(c, now);
	return complete;
}

/* ---------------------------------------------------------------- socket */

/* One generate run on the worker's socket: lines sent C ahead of the
 * records that come back. */
static int run_socket(const char *path, int conc, int max_tokens)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), next = 0, done = 0;
	double *t_send = calloc((size_t)n_bodies, sizeof(double));
	char hello[256], *buf = NULL, chunk[65536];
	size_t len = 0, cap = 0;
	FILE *w;

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || !(w = fdopen(dup(fd), "w")))
		return -1;
	snprintf(hello, sizeof(hello), "{\"type\":\"hello\",\"command\":\"run\",\"params\":"
		 "{\"run\":\"bench\",\"mode\":\"generate\",\"batch_size\":0,\"output_len\":%d,"
		 "\"keep_cache\":true}}\n", max_tokens);
	fputs(hello, w);
	for (; next < n_bodies && next < conc; next++) {
		t_send[next] = eng_mono_s();
		fprintf(w, "%s\n", bodies[next]);
	}
	fflush(w);
	while (done < n_bodies) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		char *nl;

		if (n <= 0)
			return -1;
		append(&buf, &len, &cap, chunk, (size_t)n);
		while ((nl = memchr(buf, '\n', len))) {
			json_t *r = json_loadb(buf, (size_t)(nl - buf), 0, NULL);
			const char *type = json_string_value(json_object_get(r, "type"));
			double now = eng_mono_s();

			if (type && !strcmp(type, "request")) {
				int i = atoi(json_string_value(json_object_get(r, "conversation_id"))) - 1;

				if (i >= 0 && i < n_bodies) {
					ttft[i] = json_real_value(json_object_get(r, "ttft"));
					e2e[i] = now - t_send[i];
				}
				out_tokens += json_integer_value(json_object_get(r, "output_len"));
				n_failed += !json_is_true(json_object_get(r, "success"));
				done++;
				if (next < n_bodies) {
					t_send[next] = eng_mono_s();
					fprintf(w, "%s\n", bodies[next++]);
					fflush(w);
				}
			}
			json_decref(r);
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len);
		}
	}
	fclose(w);
	close(fd);
	free(buf);
	free(t_send);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n ? v[(int)(p / 100 * (n - 1) + 0.5)] * 1e3 : 0;
}

/* POST /flush_cache: every run starts from a cold prefix cache. */
static int flush_cache(const char *host, int port)
{
	static const char req[] = "POST /flush_cache HTTP/1.1\r\nHost: bench\r\n"
				  "Content-Length: 0\r\nConnection: close\r\n\r\n";
	char buf[512];
	int fd = connect_tcp(host, port), ok;

	ok = fd >= 0 && write(fd, req, sizeof(req) - 1) == sizeof(req) - 1 &&
	     read(fd, buf, sizeof(buf)) > 12 && !strncmp(buf, "HTTP/1.1 200", 12);
	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* K idle kept-alive connections: each answered once, then left alone. */
static int open_idle(const char *host, int port, int k, int *fds)
{
	char buf[512];

	for (int i = 0; i < k; i++) {
		static const char req[] = "GET /health HTTP/1.1\r\nHost: bench\r\n\r\n";

		fds[i] = connect_tcp(host, port);
		if (fds[i] < 0 || write(fds[i], req, sizeof(req) - 1) != sizeof(req) - 1 ||
		    read(fds[i], buf, sizeof(buf)) <= 0 || strncmp(buf, "HTTP/1.1 200", 12)) {
			fprintf(stderr, "bench-http: idle connection %d failed: %s\n", i, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int run(const char *host, int port, int conc)
{
	struct conn *cs = calloc((size_t)conc, sizeof(*cs));
	struct pollfd *pfd = calloc((size_t)conc, sizeof(*pfd));
	int next = 0, done = 0;
	char buf[65536];

	for (int i = 0; i < conc; i++) {
		cs[i].fd = connect_tcp(host, port);
		cs[i].req = -1;
		if (cs[i].fd < 0)
			return -1;
		if (next < n_bodies && send_request(&cs[i], next++, host) != 0)
			return -1;
	}
	while (done < n_bodies) {
		for (int i = 0; i < conc; i++)
			pfd[i] = (struct pollfd){ .fd = cs[i].fd, .events = cs[i].req >= 0 ? POLLIN : 0 };
		if (poll(pfd, (nfds_t)conc, 10000) <= 0)
			return -1;
		for (int i = 0; i < conc; i++) {
			struct conn *c = &cs[i];
			ssize_t n;
			double now;
			int st;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(c->fd, buf, sizeof(buf));
			if (n <= 0)
				return -1;
			now = eng_mono_s();
			append(&c->in, &c->len, &c->cap, buf, (size_t)n);
			st = parse(c, now);
			if (st == 0)
				continue;
			e2e[c->req] = now - c->t_send;
			done++;
			c->req = -1;
			if (st < 0) { /* its body is not a stream: a fresh connection */
				n_failed++;
				close(c->fd);
				c->fd = connect_tcp(host, port);
				if (c->fd < 0)
					return -1;
			}
			if (next < n_bodies && send_request(c, next++, host) != 0)
				return -1;
		}
	}
	for (int i = 0; i < conc; i++) {
		close(cs[i].fd);
		free(cs[i].in);
		free(cs[i].events);
	}
	free(cs);
	free(pfd);
	return 0;
}

struct args {
	const char *host, *sock, *file;
	int port, conc, max_tokens, idle, flush_port;
};

static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' }, { "port", required_argument, NULL, 'p' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "max-tokens", required_argument, NULL, 'm' }, { "idle", required_argument, NULL, 'i' },
		{ "socket", required_argument, NULL, 's' },
		{ "flush-port", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	*a = (struct args){ .host = "127.0.0.1", .conc = 16, .max_tokens = 32 };
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'H': a->host = optarg; break;
		case 'p': a->port = atoi(optarg); break;
		case 'c': a->conc = atoi(optarg); break;
		case 'm': a->max_tokens = atoi(optarg); break;
		case 'i': a->idle = atoi(optarg); break;
		case 's': a->sock = optarg; break;
		case 'f': a->flush_port = atoi(optarg); break;
		default: return -1;
		}
	}
	if (optind != argc - 1 || (a->port <= 0 && !a->sock) || a->conc <= 0) {
		fprintf(stderr, "usage: bench-http --port N [--host A] [--concurrency C] "
			"[--max-tokens L] [--idle K] [--flush-port N] FILE\n"
			"   or: bench-http --socket PATH [--concurrency C] [--max-tokens L] "
			"[--flush-port N] FILE\n");
		return -1;
	}
	a->file = argv[optind];
	return 0;
}

/* Room for the idle connections and the client's own. */
static void raise_fd_limit(int n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	struct args a;
	int *idle_fds;
	double t0, wall;

	if (parse_args(argc, argv, &a) != 0 || load(a.file, a.max_tokens, !a.sock) != 0)
		return 2;
	raise_fd_limit(a.idle + a.conc + 64);
	ttft = calloc((size_t)n_bodies, sizeof(*ttft));
	e2e = calloc((size_t)n_bodies, sizeof(*e2e));
	idle_fds = calloc((size_t)(a.idle > 0 ? a.idle : 1), sizeof(*idle_fds));
	if (a.flush_port > 0 && flush_cache(a.host, a.flush_port) != 0) {
		fprintf(stderr, "bench-http: POST /flush_cache failed\n");
		return 2;
	}
	if (!a.sock && open_idle(a.host, a.port, a.idle, idle_fds) != 0)
		return 2;
	t0 = eng_mono_s();
	if (a.sock ? run_socket(a.sock, a.conc, a.max_tokens) != 0
		   : run(a.host, a.port, a.conc < n_bodies ? a.conc : n_bodies) != 0) {
		fprintf(stderr, "bench-http: a connection failed: %s\n", strerror(errno));
		return 2;
	}
	wall = eng_mono_s() - t0;
	printf("{\"front\":\"%s\",\"requests\":%d,\"failed\":%d,\"idle_connections\":%d,"
	       "\"output_tokens\":%lld,\"wall_s\":%.4f,\"output_tok_s\":%.1f,\"ttft_p50_ms\":%.3f,"
	       "\"ttft_p90_ms\":%.3f,\"e2e_p50_ms\":%.3f}\n", a.sock ? "socket" : "http", n_bodies,
	       n_failed, a.idle, out_tokens, wall, (double)out_tokens / wall,
	       pct(ttft, n_bodies, 50), pct(ttft, n_bodies, 90), pct(e2e, n_bodies, 50));
	for (int i = 0; i < a.idle; i++)
		close(idle_fds[i]);
	return n_failed > 0;
}
