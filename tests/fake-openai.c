/*
 * fake-openai: a scripted OpenAI-compatible server for the tests of
 * gpu-batch-infer --connect http://, on plain sockets.
 *
 *   fake-openai [--port-file FILE] [--no-flush] [--delay-ms N]
 *
 * Listens on 127.0.0.1 on a free port (written to FILE, else stdout) and
 * serves until killed: GET /v1/models ("fake-model"), POST /flush_cache
 * (200, or 404 with --no-flush), and the three generation endpoints.  What
 * a request gets is chosen by its "model" field, so one server plays every
 * case:
 *   (any other)   max_tokens chunks of one character each, "é" and "🙂"
 *                 among them, a usage chunk, [DONE]
 *   split         the same bytes written 1 to 3 at a time with pauses, so
 *                 reads end mid-line and mid-UTF-8 character
 *   no-usage      no usage chunk (as llama.cpp sometimes ends)
 *   no-cache      usage without prompt_tokens_details
 *   llamacpp      no usage; llama.cpp's timings in the last chunk
 *   http-429, http-500   that status and an OpenAI error body
 *   flaky         HTTP 500 for the first attempt of each request body
 *   cut           half the chunks, then the connection closes: no [DONE]
 *   cut-chunked   half the chunks, then a close inside a chunk
 *   hang          reads the request and never answers
 *   whole         a JSON completion, not streamed
 *   auth          HTTP 401 unless the request has "Authorization: Bearer sekrit"
 * The prompt count is the number of prompt token ids (completions,
 * generate), or 5 per message (chat, whose template is the server's);
 * cached tokens are the longest prefix shared with one of the last 64
 * prompts.  A score request (echo, or return_logprob) gets log-prob -0.5
 * for every token after the first.
 *
 * One thread, poll(2) over every connection, HTTP/1.1 keep-alive: it
 * answers at once, so a client measured against it measures itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#define MAX_CONN 4096
#define RING 64

/* One piece of output: bytes, sent no earlier than at (monotonic s). */
struct piece {
	char *data;
	size_t len;
	double at;
	bool close_after;
};

struct conn {
	int fd;
	char *in;                  /* (in_len, in_cap) bytes of requests not yet answered */
	size_t in_len, in_cap;
	struct piece *out;         /* (n_out) queued, in order */
	size_t n_out, cap_out, out_off;
	bool hung;
};

static struct conn conns[MAX_CONN];
static int n_conns;
static bool no_flush;
static double delay_s;
static int32_t *ring[RING];     /* recent prompts, for the cached count */
static size_t ring_len[RING];
static int ring_next;
static uint64_t *seen;          /* hashes of bodies seen, for "flaky" */
static size_t n_seen, cap_seen;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void queue(struct conn *c, const char *data, size_t len, double at, bool close_after)
{
	struct piece *p;

	if (c->n_out == c->cap_out) {
		c->cap_out = c->cap_out ? 2 * c->cap_out : 64;
		c->out = realloc(c->out, c->cap_out * sizeof(*c->out));
		if (!c->out)
			exit(2);
	}
	p = &c->out[c->n_out++];
	p->data = malloc(len ? len : 1);
	if (!p->data)
		exit(2);
	memcpy(p->data, data, len);
	p->len = len;
	p->at = at;
	p->close_after = close_after;
}

static void queue_str(struct conn *c, const char *s, double at)
{
	queue(c, s, strlen(s), at, false);
}

static void respond_json(struct conn *c, int status, const char *reason, const char *body)
{
	char head[256];

	snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n", status, reason, strlen(body));
	queue_str(c, head, 0);
	queue_str(c, body, 0);
}

/* ---------------------------------------------------------------- requests */

struct req {
	char method[8], path[128];
	json_t *body;
	const char *model;
	int64_t max_tokens;
	int32_t *ids;              /* (n_ids) prompt token ids, if sent */
	size_t n_ids;
	size_t n_messages;
	bool chat, generate, score;
	bool authorized;           /* the key "sekrit" came with it */
	uint64_t hash;
};

static uint64_t fnv(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static void parse_body(struct req *r, const char *b, size_t n)
{
	const json_t *ids, *sp, *v;
	size_t i;

	r->hash = fnv(b, n);
	r->body = json_loadb(b, n, 0, NULL);
	r->model = json_string_value(json_object_get(r->body, "model"));
	if (!r->model)
		r->model = "";
	r->max_tokens = json_integer_value(json_object_get(r->body, "max_tokens"));
	sp = json_object_get(r->body, "sampling_params");
	if (sp)
		r->max_tokens = json_integer_value(json_object_get(sp, "max_new_tokens"));
	ids = json_object_get(r->body, "prompt");
	if (!json_is_array(ids))
		ids = json_object_get(r->body, "input_ids");
	r->n_messages = json_array_size(json_object_get(r->body, "messages"));
	r->ids = calloc(json_array_size(ids) + 1, sizeof(int32_t));
	json_array_foreach(ids, i, v)
		r->ids[r->n_ids++] = (int32_t)json_integer_value(v);
	r->score = json_is_true(json_object_get(r->body, "echo")) ||
		   json_is_true(json_object_get(r->body, "return_logprob"));
}

/* The prompt count, and the cached count against the recent prompts. */
static void count_prompt(const struct req *r, int64_t *prompt, int64_t *cached)
{
	size_t best = 0;

	*prompt = r->chat ? (int64_t)(5 * r->n_messages) : (int64_t)r->n_ids;
	for (int k = 0; k < RING && !r->chat; k++) {
		size_t i = 0;

		while (ring[k] && i < ring_len[k] && i < r->n_ids && ring[k][i] == r->ids[i])
			i++;
		if (i > best)
			best = i;
	}
	*cached = (int64_t)best;
	if (!r->chat && r->n_ids) {
		free(ring[ring_next]);
		ring[ring_next] = malloc(r->n_ids * sizeof(int32_t));
		memcpy(ring[ring_next], r->ids, r->n_ids * sizeof(int32_t));
		ring_len[ring_next] = r->n_ids;
		ring_next = (ring_next + 1) % RING;
	}
}

/* The i-th character of a reply. */
static const char *reply_char(int64_t i)
{
	static const char *const cs[] = { "a", "é", " ", "🙂", "b", "漢" };

	return cs[i % 6];
}

/* One SSE event as one HTTP chunk (or raw, when the reply is not chunked). */
static void event(struct conn *c, const char *json, bool chunked, bool split, double *at)
{
	char buf[4096];
	int n = chunked ? snprintf(buf, sizeof(buf), "%zx\r\ndata: %s\n\n\r\n", strlen(json) + 8, json)
			: snprintf(buf, sizeof(buf), "data: %s\n\n", json);

	if (!split) {
		queue(c, buf, (size_t)n, *at, false);
		return;
	}
	for (int i = 0; i < n;) {
		int k = 1 + (i % 3);

		k = k < n - i ? k : n - i;
		*at += 0.0005;
		queue(c, buf + i, (size_t)k, *at, false);
		i += k;
	}
}

/* One chunk of a chat or completions stream (text needs no escaping). */
static void chunk_json(char *buf, size_t n, const struct req *r, const char *text, const char *fin)
{
	char f[32];

	snprintf(f, sizeof(f), fin ? "\"%s\"" : "null", fin);
	if (r->chat)
		snprintf(buf, n, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"},"
			 "\"finish_reason\":%s}]}", text, f);
	else
		snprintf(buf, n, "{\"choices\":[{\"index\":0,\"text\":\"%s\",\"finish_reason\":%s}]}",
			 text, f);
}

static void stream_reply(struct conn *c, const struct req *r)
{
	const char *m = r->model;
	bool split = !strcmp(m, "split"), cut = !strncmp(m, "cut", 3);
	bool chunked = strcmp(m, "cut") != 0;
	int64_t n = r->max_tokens > 0 ? r->max_tokens : 1, prompt, cached;
	double at = now_s() + delay_s;
	char buf[2048], text[4096] = "";

	count_prompt(r, &prompt, &cached);
	queue_str(c, chunked ? "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			       "Transfer-Encoding: chunked\r\n\r\n"
			     : "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			       "Connection: close\r\n\r\n", at);
	for (int64_t i = 0; i < (cut ? n / 2 : n); i++) {
		if (r->generate) {
			json_t *j;
			char *s;

			if (strlen(text) + 8 < sizeof(text))
				strcat(text, reply_char(i));
			j = json_pack("{s:s,s:{s:I,s:I,s:I}}", "text", text, "meta_info",
				      "prompt_tokens", (json_int_t)prompt, "completion_tokens",
				      (json_int_t)(i + 1), "cached_tokens", (json_int_t)cached);
			s = json_dumps(j, JSON_COMPACT);
			snprintf(buf, sizeof(buf), "%s", s);
			free(s);
			json_decref(j);
		} else {
			chunk_json(buf, sizeof(buf), r, reply_char(i), i == n - 1 ? "length" : NULL);
		}
		event(c, buf, chunked, split, &at);
	}
	if (cut) {
		/* Half a chunk's header and nothing more, or just the close. */
		queue(c, chunked ? "40\r\ndata: {\"cho" : "", chunked ? 15 : 0, at, true);
		return;
	}
	if (!strcmp(m, "llamacpp")) {
		snprintf(buf, sizeof(buf), "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
			 "\"length\"}],\"timings\":{\"prompt_n\":%lld,\"cache_n\":%lld,\"predicted_n\":%lld}}",
			 (long long)(prompt - cached), (long long)cached, (long long)n);
		event(c, buf, chunked, split, &at);
	} else if (!r->generate && strcmp(m, "no-usage")) {
		if (!strcmp(m, "no-cache"))
			snprintf(buf, sizeof(buf), "{\"choices\":[],\"usage\":{\"prompt_tokens\":%lld,"
				 "\"completion_tokens\":%lld}}", (long long)prompt, (long long)n);
		else
			snprintf(buf, sizeof(buf), "{\"choices\":[],\"usage\":{\"prompt_tokens\":%lld,"
				 "\"completion_tokens\":%lld,\"prompt_tokens_details\":{\"cached_tokens\":%lld}}}",
				 (long long)prompt, (long long)n, (long long)cached);
		event(c, buf, chunked, split, &at);
	}
	event(c, "[DONE]", chunked, split, &at);
	queue(c, "0\r\n\r\n", 5, at, false);
}

static void whole_reply(struct conn *c, const struct req *r)
{
	int64_t n = r->max_tokens > 0 ? r->max_tokens : 1, prompt, cached;
	json_t *j, *lp;
	char *s;

	count_prompt(r, &prompt, &cached);
	if (r->score && r->generate) {
		lp = json_array();
		for (size_t i = 0; i < r->n_ids; i++)
			json_array_append_new(lp, json_pack("[o,i,n]", i ? json_real(-0.5) : json_null(),
							    r->ids[i]));
		j = json_pack("{s:s,s:{s:I,s:o}}", "text", "", "meta_info", "prompt_tokens",
			      (json_int_t)prompt, "input_token_logprobs", lp);
	} else if (r->score) {
		lp = json_array();
		for (size_t i = 0; i <= r->n_ids; i++)
			json_array_append_new(lp, i ? json_real(-0.5) : json_null());
		j = json_pack("{s:[{s:s,s:{s:o},s:s}],s:{s:I,s:i}}", "choices", "text", "x",
			      "logprobs", "token_logprobs", lp, "finish_reason", "length", "usage",
			      "prompt_tokens", (json_int_t)prompt, "completion_tokens", 1);
	} else {
		char text[4096] = "";

		for (int64_t i = 0; i < n && strlen(text) + 8 < sizeof(text); i++)
			strcat(text, reply_char(i));
		/* Both shapes: a chat message and a completion's text. */
		j = json_pack("{s:[{s:{s:s,s:s},s:s,s:s}],s:{s:I,s:I}}", "choices", "message", "role",
			      "assistant", "content", text, "text", text, "finish_reason", "length",
			      "usage", "prompt_tokens", (json_int_t)prompt, "completion_tokens",
			      (json_int_t)n);
	}
	s = json_dumps(j, JSON_COMPACT);
	respond_json(c, 200, "OK", s);
	free(s);
	json_decref(j);
}

static bool seen_before(uint64_t h)
{
	for (size_t i = 0; i < n_seen; i++)
		if (seen[i] == h)
			return true;
	if (n_seen == cap_seen) {
		cap_seen = cap_seen ? 2 * cap_seen : 256;
		seen = realloc(seen, cap_seen * sizeof(*seen));
		if (!seen)
			exit(2);
	}
	seen[n_seen++] = h;
	return false;
}

static void answer(struct conn *c, struct req *r)
{
	static const char err429[] = "{\"error\":{\"message\":\"rate limit reached\",\"code\":429}}";
	static const char err500[] = "{\"error\":{\"message\":\"internal failure\",\"code\":500}}";
	const char *m;

	if (!strcmp(r->method, "GET") && !strcmp(r->path, "/v1/models")) {
		respond_json(c, 200, "OK", "{\"object\":\"list\",\"data\":[{\"id\":\"fake-model\"}]}");
		return;
	}
	if (!strcmp(r->path, "/flush_cache")) {
		if (no_flush) {
			respond_json(c, 404, "Not Found", "{\"detail\":\"Not Found\"}");
			return;
		}
		for (int k = 0; k < RING; k++) {
			free(ring[k]);
			ring[k] = NULL;
		}
		respond_json(c, 200, "OK", "{}");
		return;
	}
	r->chat = !strcmp(r->path, "/v1/chat/completions");
	r->generate = !strcmp(r->path, "/generate");
	if (!r->chat && !r->generate && strcmp(r->path, "/v1/completions")) {
		respond_json(c, 404, "Not Found", "{\"detail\":\"Not Found\"}");
		return;
	}
	m = r->model;
	if (!strcmp(m, "hang")) {
		c->hung = true;
	} else if (!strcmp(m, "auth") && !r->authorized) {
		respond_json(c, 401, "Unauthorized", "{\"error\":{\"message\":\"invalid api key\"}}");
	} else if (!strcmp(m, "http-429")) {
		respond_json(c, 429, "Too Many Requests", err429);
	} else if (!strcmp(m, "http-500") || (!strcmp(m, "flaky") && !seen_before(r->hash))) {
		respond_json(c, 500, "Internal Server Error", err500);
	} else if (r->score || !strcmp(m, "whole")) {
		whole_reply(c, r);
	} else {
		stream_reply(c, r);
	}
}

/* Answers every complete request in c->in. */
static void take_requests(struct conn *c)
{
	for (;;) {
		char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4), *cl;
		size_t head, len = 0;
		struct req r = { 0 };

		if (!end || c->hung)
			return;
		head = (size_t)(end - c->in) + 4;
		cl = memmem(c->in, head, "Content-Length:", 15);
		if (!cl)
			cl = memmem(c->in, head, "content-length:", 15);
		if (cl)
			len = strtoul(cl + 15, NULL, 10);
		if (c->in_len < head + len)
			return;
		sscanf(c->in, "%7s %127s", r.method, r.path);
		r.authorized = memmem(c->in, head, "Bearer sekrit\r\n", 15) != NULL;
		parse_body(&r, c->in + head, len);
		answer(c, &r);
		json_decref(r.body);
		free(r.ids);
		memmove(c->in, c->in + head + len, c->in_len - head - len);
		c->in_len -= head + len;
	}
}

/* ---------------------------------------------------------------- the loop */

static void conn_close(int i)
{
	struct conn *c = &conns[i];

	close(c->fd);
	for (size_t k = 0; k < c->n_out; k++)
		free(c->out[k].data);
	free(c->out);
	free(c->in);
	conns[i] = conns[--n_conns];
	memset(&conns[n_conns], 0, sizeof(conns[n_conns]));
}

static bool conn_read(struct conn *c)
{
	char buf[65536];
	ssize_t n = read(c->fd, buf, sizeof(buf));

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return false;
	if (n < 0)
		return true;
	if (c->in_len + (size_t)n + 1 > c->in_cap) {
		c->in_cap = (c->in_len + (size_t)n + 1) * 2;
		c->in = realloc(c->in, c->in_cap);
		if (!c->in)
			exit(2);
	}
	memcpy(c->in + c->in_len, buf, (size_t)n);
	c->in_len += (size_t)n;
	take_requests(c);
	return true;
}

/* Writes what is due; false when the connection is to be closed. */
static bool conn_write(struct conn *c, double now)
{
	size_t k = 0;

	while (k < c->n_out && c->out[k].at <= now) {
		struct piece *p = &c->out[k];
		ssize_t w = p->len > c->out_off ? send(c->fd, p->data + c->out_off,
						       p->len - c->out_off, MSG_NOSIGNAL) : 0;

		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (w < 0)
			return false;
		c->out_off += (size_t)w;
		if (c->out_off < p->len)
			break;
		if (p->close_after)
			return false;
		free(p->data);
		p->data = NULL;
		c->out_off = 0;
		k++;
	}
	memmove(c->out, c->out + k, (c->n_out - k) * sizeof(*c->out));
	c->n_out -= k;
	return true;
}

static int listen_on(FILE *port_out)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 1024) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		perror("fake-openai: listen");
		exit(2);
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	fprintf(port_out, "%d\n", ntohs(a.sin_port));
	fflush(port_out);
	return fd;
}

int main(int argc, char **argv)
{
	static struct pollfd fds[MAX_CONN + 1];
	FILE *port_out = stdout;
	int lfd;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port-file") && i + 1 < argc)
			port_out = fopen(argv[++i], "w");
		else if (!strcmp(argv[i], "--no-flush"))
			no_flush = true;
		else if (!strcmp(argv[i], "--delay-ms") && i + 1 < argc)
			delay_s = atof(argv[++i]) / 1000;
		else {
			fprintf(stderr, "usage: fake-openai [--port-file FILE] [--no-flush] [--delay-ms N]\n");
			return 2;
		}
	}
	if (!port_out) {
		perror("fake-openai: port file");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = listen_on(port_out);
	if (port_out != stdout)
		fclose(port_out);
	for (;;) {
		double now = now_s(), next = now + 1;
		int timeout;
		short listen_ev;

		for (int i = 0; i < n_conns; i++) {
			fds[i] = (struct pollfd){ .fd = conns[i].fd, .events = POLLIN };
			if (conns[i].n_out && conns[i].out[0].at <= now)
				fds[i].events |= POLLOUT;
			else if (conns[i].n_out && conns[i].out[0].at < next)
				next = conns[i].out[0].at;
		}
		fds[n_conns] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		timeout = (int)((next - now) * 1000);
		poll(fds, (nfds_t)n_conns + 1, timeout > 0 ? timeout : 0);
		listen_ev = fds[n_conns].revents;
		now = now_s();
		for (int i = n_conns - 1; i >= 0; i--) {
			bool ok = true;

			if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
				ok = conn_read(&conns[i]);
			if (ok && conns[i].n_out)
				ok = conn_write(&conns[i], now);
			if (!ok)
				conn_close(i);
		}
		while (listen_ev & POLLIN && n_conns < MAX_CONN) {
			int fd = accept(lfd, NULL, NULL), one = 1;

			if (fd < 0)
				break;
			fcntl(fd, F_SETFL, O_NONBLOCK);
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			conns[n_conns++].fd = fd;
		}
	}
}
