/*
 * http.c: the HTTP front of the serving engine (see engine.h, "serving",
 * front.h and http_int.h): libmicrohttpd in external epoll mode.
 *
 * Why external mode and not MHD's own thread: the engine is single-
 * threaded, and every request ends up in its runner, every token comes
 * out of its step.  With MHD driven from the engine's loop (its epoll
 * descriptor polled with the other fronts', MHD_run between steps) the
 * handlers call the runner directly and tokens go straight into the
 * response buffers: no lock, no queue, no second copy, no thread
 * hand-off on the way to the first token.  The price is that HTTP I/O
 * waits while a step runs, as the socket worker's always has; a step is
 * what makes the next tokens anyway, and the loop polls with a zero
 * timeout while there is work, so no step waits for an idle client.
 *
 * A request that generates is suspended (MHD_suspend_connection) until
 * it has something to send: a non-streamed reply is queued and its
 * connection resumed when the last generation ends; a stream's content
 * reader hands out the events written so far and suspends again when it
 * has none.  MHD watches no suspended connection, so the front polls their
 * sockets for POLLRDHUP itself: a client that hangs up cancels its
 * requests at once (their KV pages return to the pool at the next step).
 *
 * Idle connections (idle_timeout_s) are closed by MHD's connection
 * timeout, which counts from the last byte sent or received: a client that
 * sends nothing, stops mid-request, keeps a connection open between
 * requests or leaves the end of its answer unread.  A connection whose
 * request is in the engine has no timeout until it is answered, so a long
 * prefill or a stream read slowly is never cut while tokens still come.
 *
 * Bodies are read whole (up to max_body_size; past it, the rest is read
 * and dropped and the answer is 413, so the client reads its answer
 * rather than a reset) and parsed by http_parse.c.  An error found from
 * the headers alone (404, 405, 401, 503) is likewise answered once the
 * body is in.
 */
#include <config.h>
#include "engine/http_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STREAM_BLOCK (16u << 10)  /* bytes MHD asks a stream for at once */
#define FLUSH_AFTER_CANCEL_S 1.0  /* cancelled answers get this long to go out */

static const struct {
	const char *path;
	enum http_route route;
	const char *methods;          /* as the Allow header lists them */
} routes[] = {
	{ "/v1/chat/completions", HTTP_R_CHAT, "POST" },
	{ "/v1/completions", HTTP_R_COMPLETIONS, "POST" },
	{ "/generate", HTTP_R_GENERATE, "POST" },
	{ "/health", HTTP_R_HEALTH, "GET, HEAD" },
	{ "/v1/models", HTTP_R_MODELS, "GET, HEAD" },
	{ "/get_model_info", HTTP_R_MODEL_INFO, "GET, HEAD" },
	{ "/get_server_info", HTTP_R_SERVER_INFO, "GET, HEAD" },
	{ "/metrics", HTTP_R_METRICS, "GET, HEAD" },
	{ "/flush_cache", HTTP_R_FLUSH_CACHE, "GET, POST" },
};

const char *http_route_path(enum http_route r)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (routes[i].route == r)
			return routes[i].path;
	return "other";
}

const char *http_model_name(const struct http_front *fr)
{
	return fr->p.served_model_name ? fr->p.served_model_name : fr->e->p.model_dir;
}

static bool method_allowed(const char *allowed, const char *method)
{
	size_t n = strlen(method);

	for (const char *p = strstr(allowed, method); p; p = strstr(p + 1, method))
		if ((p == allowed || p[-1] == ' ') && (p[n] == '\0' || p[n] == ','))
			return true;
	return false;
}

/* MHD's connection timeout: whole seconds, rounded up; 0 none. */
static unsigned timeout_s(double idle_timeout_s)
{
	if (!(idle_timeout_s > 0))
		return 0;
	return idle_timeout_s >= UINT_MAX ? UINT_MAX : (unsigned)ceil(idle_timeout_s);
}

/* A request in the engine keeps its connection open however long it
 * takes (a long prefill, a stream whose client reads slowly); once
 * answered, the connection is idle-timed again, from now. */
static void hold_open(struct http_req *q, bool busy)
{
	unsigned t = timeout_s(q->fr->p.idle_timeout_s);

	if (q->conn && t > 0)
		MHD_set_connection_option(q->conn, MHD_CONNECTION_OPTION_TIMEOUT, busy ? 0u : t);
}

/* ---------------------------------------------------------------- answers */

static enum MHD_Result respond(struct http_front *fr, struct MHD_Connection *c,
			       enum http_route r, unsigned status, const char *type,
			       const char *body, size_t len, const char *allow)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	if (fr->draining)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	http_metrics_answer(fr->metrics, r, status);
	return ret;
}

/* Sends j (and frees it). */
static enum MHD_Result respond_json(struct http_front *fr, struct MHD_Connection *c,
				    enum http_route r, unsigned status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
	enum MHD_Result ret;

	json_decref(j);
	if (!s)
		return respond(fr, c, r, 500, "application/json", "{}", 2, NULL);
	ret = respond(fr, c, r, status, "application/json", s, strlen(s), NULL);
	free(s);
	return ret;
}

static enum MHD_Result respond_error(struct http_front *fr, struct MHD_Connection *c,
				     enum http_route r, const struct http_err *e, const char *allow)
{
	json_t *j = http_error_json(e);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	enum MHD_Result ret;

	json_decref(j);
	ret = respond(fr, c, r, e->status, "application/json", s ? s : "{}", s ? strlen(s) : 2,
		      allow);
	free(s);
	return ret;
}

/* The answers that need no body and start nothing. */
static enum MHD_Result respond_get(struct http_front *fr, struct MHD_Connection *c,
				   enum http_route r)
{
	size_t len = 0;
	char *text;
	enum MHD_Result ret;

	switch (r) {
	case HTTP_R_HEALTH:
		return respond(fr, c, r, 200, "text/plain", "", 0, NULL);
	case HTTP_R_MODELS:
		return respond_json(fr, c, r, 200, http_models_json(fr));
	case HTTP_R_MODEL_INFO:
		return respond_json(fr, c, r, 200, http_model_info_json(fr));
	case HTTP_R_SERVER_INFO:
		return respond_json(fr, c, r, 200, http_server_info_json(fr));
	case HTTP_R_METRICS:
		text = http_metrics_text(fr, &len);
		ret = respond(fr, c, r, text ? 200 : 500, "text/plain; version=0.0.4; charset=utf-8",
			      text ? text : "", text ? len : 0, NULL);
		free(text);
		return ret;
	case HTTP_R_FLUSH_CACHE: {
		struct eng_sched_stats st;

		eng_runner_flush_cache(fr->e->runner);
		eng_infer_get_stats(fr->e, &st);
		return respond_json(fr, c, r, 200, json_pack("{s:b,s:I}", "success", 1, "cached_pages",
							     (json_int_t)st.cached_pages));
	}
	default:
		return respond(fr, c, r, 500, "text/plain", "", 0, NULL);
	}
}

/* ---------------------------------------------------------------- requests */

static bool authorized(const struct http_front *fr, struct MHD_Connection *c, enum http_route r)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	const char *key = fr->p.api_key;
	size_t n;
	unsigned char diff = 0;

	if (!key || r == HTTP_R_HEALTH || r == HTTP_R_METRICS)
		return true;
	if (!h || strncmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	n = strlen(key);
	if (strlen(h) != n)
		return false;
	for (size_t i = 0; i < n; i++) /* the same time whatever matches */
		diff |= (unsigned char)(h[i] ^ key[i]);
	return diff == 0;
}

/* What the headers alone decide: 0, or -1 with e filled. */
static int check_headers(struct http_front *fr, struct MHD_Connection *c, const char *url,
			 const char *method, enum http_route *r, const char **allow,
			 struct http_err *e)
{
	size_t i;

	*r = HTTP_R_NONE;
	*allow = NULL;
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(url, routes[i].path) == 0)
			break;
	if (i == sizeof(routes) / sizeof(routes[0]) ||
	    (routes[i].route == HTTP_R_METRICS && !fr->p.enable_metrics))
		return http_err_set(e, 404, "not_found", NULL, "no such endpoint: %s", url);
	*r = routes[i].route;
	if (!method_allowed(routes[i].methods, method)) {
		*allow = routes[i].methods;
		return http_err_set(e, 405, "method_not_allowed", NULL, "%s takes %s, not %s", url,
				    routes[i].methods, method);
	}
	if (!fr->e)
		return http_err_set(e, 503, "loading", NULL, "the model is loading");
	if (fr->draining)
		return http_err_set(e, 503, "shutting_down", NULL, "the server is shutting down");
	if (!authorized(fr, c, *r))
		return http_err_set(e, 401, "invalid_api_key", NULL,
				    "a valid API key is required (Authorization: Bearer KEY)");
	return 0;
}

static struct http_req *req_new(struct http_front *fr, struct MHD_Connection *c,
				enum http_route r)
{
	struct http_req *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->fr = fr;
	q->conn = c;
	q->route = r;
	q->poll_at = -1;
	q->t_arrival = eng_mono_s();
	q->next = fr->reqs;
	fr->reqs = q;
	return q;
}

static void req_free(struct http_req *q)
{
	http_gens_free(q);
	json_decref(q->json);
	free(q->body);
	free(q->out);
	free(q);
}

static uint64_t next_random(struct http_front *fr)
{
	uint64_t x = fr->next_id++ ^ ((uint64_t)fr->t0_unix << 20);

	return eng_splitmix64(&x);
}

/* The first call for a request: headers only.  Nothing is answered yet
 * (libmicrohttpd 0.9 closes a connection whose answer was queued in the
 * first call), except a 413 to a client that waits for 100 Continue. */
static enum MHD_Result on_headers(struct http_front *fr, struct MHD_Connection *c,
				  const char *url, const char *method, void **con_cls)
{
	struct http_err e;
	enum http_route r;
	const char *allow, *expect, *clen;
	int rc = check_headers(fr, c, url, method, &r, &allow, &e);
	struct http_req *q;

	clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
	if (rc == 0 && clen && strtoull(clen, NULL, 10) > fr->p.max_body_size) {
		rc = http_err_set(&e, 413, "request_too_large", NULL,
				  "the request body is over %zu bytes", fr->p.max_body_size);
		/* The client waits for 100 Continue: answer now, it sends nothing. */
		if (expect && !strcasecmp(expect, "100-continue"))
			return respond_error(fr, c, r, &e, NULL);
	}
	if (!(q = req_new(fr, c, r)))
		return MHD_NO;
	if (rc != 0) {
		q->early = e;
		q->early_allow = allow;
		q->has_early = true;
	}
	*con_cls = q;
	return MHD_YES;
}

static void take_body(struct http_req *q, const char *data, size_t n)
{
	if (q->has_early || q->body_too_big)
		return;
	if (q->len + n > q->fr->p.max_body_size) {
		q->body_too_big = true;
		free(q->body);
		q->body = NULL;
		q->len = q->cap = 0;
		return;
	}
	if (q->len + n + 1 > q->cap) {
		size_t cap = q->cap ? q->cap : 4096;
		char *b;

		while (cap < q->len + n + 1)
			cap *= 2;
		if (!(b = realloc(q->body, cap))) {
			q->body_too_big = true;
			return;
		}
		q->body = b;
		q->cap = cap;
	}
	memcpy(q->body + q->len, data, n);
	q->len += n;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max);

/* The body is in: parse it, start the generations, stream or wait. */
static enum MHD_Result on_body(struct http_front *fr, struct http_req *q)
{
	static const enum http_api apis[] = { HTTP_API_CHAT, HTTP_API_COMPLETIONS, HTTP_API_GENERATE };
	struct http_prompt *prompts = NULL;
	struct MHD_Response *resp;
	struct http_err e;
	json_error_t jerr;
	int n = 0, rc;
	enum MHD_Result ret;

	if (q->has_early)
		return respond_error(fr, q->conn, q->route, &q->early, q->early_allow);
	if (q->body_too_big) {
		http_err_set(&e, 413, "request_too_large", NULL, "the request body is over %zu bytes",
			     fr->p.max_body_size);
		return respond_error(fr, q->conn, q->route, &e, NULL);
	}
	if (q->route > HTTP_R_GENERATE)
		return respond_get(fr, q->conn, q->route);
	q->json = json_loadb(q->body ? q->body : "", q->len, 0, &jerr);
	if (!q->json)
		return http_err_set(&e, 400, "invalid_json", NULL, "invalid JSON at line %d, column %d: %s",
				    jerr.line, jerr.column, jerr.text),
		       respond_error(fr, q->conn, q->route, &e, NULL);
	q->created = (long long)time(NULL);
	snprintf(q->id, sizeof(q->id), "%s%016llx", q->route == HTTP_R_CHAT ? "chatcmpl-"
			 : q->route == HTTP_R_COMPLETIONS ? "cmpl-" : "",
		 (unsigned long long)next_random(fr));
	rc = http_parse_request(fr->e, apis[q->route], q->json, next_random(fr), &q->o, &prompts, &n,
				&e);
	if (rc == 0)
		rc = http_gens_start(q, prompts, n, &e);
	for (int i = 0; i < n; i++)
		free(prompts[i].ids);
	free(prompts);
	if (rc != 0)
		return respond_error(fr, q->conn, q->route, &e, NULL);
	q->started = true;
	hold_open(q, true);
	if (!q->o.stream) {
		MHD_suspend_connection(q->conn);
		q->suspended = true;
		return MHD_YES;
	}
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_read, q, NULL);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	q->streaming = true;
	http_stream_open(q);
	ret = MHD_queue_response(q->conn, 200, resp);
	MHD_destroy_response(resp);
	http_metrics_answer(fr->metrics, q->route, 200);
	return ret;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
				 const char *method, const char *version, const char *data,
				 size_t *data_size, void **con_cls)
{
	struct http_front *fr = cls;
	struct http_req *q = *con_cls;

	(void)version;
	if (!q)
		return on_headers(fr, c, url, method, con_cls);
	if (*data_size > 0) {
		take_body(q, data, *data_size);
		*data_size = 0;
		return MHD_YES;
	}
	if (!q->started && !q->gone)
		return on_body(fr, q);
	/* Resumed with nothing queued: the client went away. */
	return MHD_NO;
}

/* MHD is done with a request: answered, or its connection died. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_req *q = *con_cls;

	(void)cls;
	(void)c;
	if (!q)
		return;
	q->conn = NULL;
	q->suspended = false;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !q->finished) {
		q->gone = true;
		http_gens_cancel(q);
	}
	*con_cls = NULL;
}

/* ---------------------------------------------------------------- streams */

static void wake(struct http_req *q)
{
	if (q->suspended && q->conn) {
		q->suspended = false;
		MHD_resume_connection(q->conn);
		q->fr->resumed = true;
	}
}

void http_req_write(struct http_req *q, const char *s, size_t n)
{
	if (q->gone)
		return;
	if (q->out_off > 0 && q->out_off == q->out_len)
		q->out_off = q->out_len = 0;
	if (q->out_len + n > q->out_cap) {
		size_t cap = q->out_cap ? q->out_cap : 4096;
		char *p;

		while (cap < q->out_len + n)
			cap *= 2;
		if (!(p = realloc(q->out, cap))) {
			q->gone = true; /* cannot go on: the stream breaks */
			http_gens_cancel(q);
			wake(q);
			return;
		}
		q->out = p;
		q->out_cap = cap;
	}
	memcpy(q->out + q->out_len, s, n);
	q->out_len += n;
	wake(q);
}

void http_req_write_event(struct http_req *q, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;

	json_decref(j);
	if (!s)
		return;
	http_req_write(q, "data: ", 6);
	http_req_write(q, s, strlen(s));
	http_req_write(q, "\n\n", 2);
	free(s);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct http_req *q = cls;
	size_t n = q->out_len - q->out_off;

	(void)pos;
	if (q->gone)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (n > 0) {
		n = n < max ? n : max;
		memcpy(buf, q->out + q->out_off, n);
		q->out_off += n;
		return (ssize_t)n;
	}
	if (q->stream_end)
		return MHD_CONTENT_READER_END_OF_STREAM;
	MHD_suspend_connection(q->conn);
	q->suspended = true;
	return 0;
}

/* ---------------------------------------------------------------- settling */

/* Every generation of q is over: its answer goes out. */
static void answer(struct http_front *fr, struct http_req *q)
{
	struct http_err e;
	json_t *j = NULL;
	unsigned status = 200;
	char *s;
	struct MHD_Response *resp;

	q->finished = true;
	if (q->gone || !q->conn)
		return;
	hold_open(q, false);
	if (q->streaming) {
		http_stream_close(q);
		q->stream_end = true;
		wake(q);
		return;
	}
	for (int i = 0; i < q->n_gens && !j; i++) {
		const struct http_gen *g = &q->gens[i];

		if (g->finish == ENG_FINISH_ERROR)
			http_err_set(&e, 500, "internal_error", NULL, "%s",
				     g->error ? g->error : "generation failed");
		else if (g->finish == ENG_FINISH_ABORT)
			http_err_set(&e, 503, "shutting_down", NULL,
				     "the server shut down before the request finished");
		else
			continue;
		j = http_error_json(&e);
		status = e.status;
	}
	if (!j)
		j = http_reply_body(q);
	s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
	json_decref(j);
	resp = MHD_create_response_from_buffer(s ? strlen(s) : 2, s ? s : "{}", MHD_RESPMEM_MUST_COPY);
	free(s);
	if (resp) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
		MHD_queue_response(q->conn, s ? status : 500, resp);
		MHD_destroy_response(resp);
	}
	http_metrics_answer(fr->metrics, q->route, status);
	wake(q);
}

static void front_settle(void *st)
{
	struct http_front *fr = st;
	struct http_req **pp = &fr->reqs;

	fr->n_new = 0;
	while (*pp) {
		struct http_req *q = *pp;

		if (q->started && !q->finished && http_gens_settle(q))
			answer(fr, q);
		else if (q->n_gens > 0)
			http_gens_settle(q); /* frees done sessions (of a failed start too) */
		if (!q->conn && !http_gens_busy(q)) {
			*pp = q->next;
			req_free(q);
			continue;
		}
		pp = &q->next;
	}
}

/* ---------------------------------------------------------------- the front */

static void front_watch(void *st, struct eng_pollset *ps)
{
	struct http_front *fr = st;
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(fr->d, MHD_DAEMON_INFO_EPOLL_FD);

	fr->epoll_at = di ? eng_pollset_add(ps, di->epoll_fd, POLLIN) : -1;
	for (struct http_req *q = fr->reqs; q; q = q->next) {
		const union MHD_ConnectionInfo *ci;

		q->poll_at = -1;
		if (!q->suspended || !q->conn || q->gone)
			continue;
		ci = MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci)
			q->poll_at = eng_pollset_add(ps, ci->connect_fd, POLLRDHUP);
	}
}

static void front_dispatch(void *st, const struct eng_pollset *ps)
{
	struct http_front *fr = st;

	for (struct http_req *q = fr->reqs; q; q = q->next) {
		if (q->poll_at < 0 || !q->conn ||
		    !(ps->fds[q->poll_at].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
			continue;
		/* Hung up while waiting: cancel, and let MHD close it. */
		q->gone = true;
		http_gens_cancel(q);
		q->suspended = false;
		MHD_resume_connection(q->conn);
	}
	fr->resumed = false;
	MHD_run(fr->d);
}

static int front_timeout_ms(void *st)
{
	struct http_front *fr = st;
	MHD_UNSIGNED_LONG_LONG ms;

	if (fr->resumed)
		return 0;
	if (MHD_get_timeout(fr->d, &ms) != MHD_YES)
		return -1;
	return ms > 1000 ? 1000 : (int)ms;
}

static void front_drain(void *st)
{
	struct http_front *fr = st;
	MHD_socket s;

	fr->draining = true;
	s = MHD_quiesce_daemon(fr->d);
	if (s != MHD_INVALID_SOCKET) {
		close(s);
		fr->lfd = -1;
	}
}

static void front_cancel(void *st)
{
	struct http_front *fr = st;

	fr->cancelled = true;
	fr->cancel_t = eng_mono_s();
	for (struct http_req *q = fr->reqs; q; q = q->next)
		if (q->started && !q->finished)
			http_gens_cancel(q);
}

/* Idle once every answer went out; after a cancel, answers still being
 * sent (the aborted ends of streams) get FLUSH_AFTER_CANCEL_S. */
static bool front_idle(void *st)
{
	struct http_front *fr = st;
	bool flushed = fr->cancelled && eng_mono_s() - fr->cancel_t > FLUSH_AFTER_CANCEL_S;

	for (struct http_req *q = fr->reqs; q; q = q->next) {
		if (!q->started)
			continue;
		if (http_gens_busy(q) || !q->finished)
			return false;
		if (q->conn && !flushed)
			return false;
	}
	return true;
}

static bool front_shutdown_asked(void *st)
{
	(void)st;
	return false;
}

static void front_close(void *st)
{
	struct http_front *fr = st;

	for (struct http_req *q = fr->reqs; q; q = q->next) {
		q->gone = true;
		if (q->started)
			http_gens_cancel(q);
		if (q->suspended && q->conn) {
			q->suspended = false;
			MHD_resume_connection(q->conn);
		}
	}
	if (fr->d)
		MHD_stop_daemon(fr->d); /* completes every request: conn = NULL */
	while (fr->reqs) {
		struct http_req *q = fr->reqs;

		fr->reqs = q->next;
		req_free(q);
	}
	if (fr->lfd >= 0)
		close(fr->lfd);
	http_metrics_free(fr->metrics);
	free(fr);
}

static const struct eng_front_ops front_ops = {
	front_watch, front_dispatch, front_settle, front_timeout_ms, front_drain, front_cancel,
	front_idle, front_shutdown_asked, front_close,
};

/* ---------------------------------------------------------------- opening */

/* The listening socket on host:port (port 0: any); *port_out the port. */
static int listen_tcp(const char *host, int port, int *fd_out, int *port_out, bool *v6,
		      struct eng_error *err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	char ps[16];
	int fd, one = 1, rc;

	snprintf(ps, sizeof(ps), "%d", port);
	rc = getaddrinfo(host, ps, &hints, &res);
	if (rc != 0)
		return eng_error_set(err, ENG_E_INVALID, host, 0, "cannot resolve the host: %s",
				     gai_strerror(rc));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return eng_error_set(err, ENG_E_IO, host, 0, "cannot listen on port %d: %s", port,
				     strerror(e));
	}
	*v6 = res->ai_family == AF_INET6;
	freeaddrinfo(res);
	*fd_out = fd;
	*port_out = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
						    : ((struct sockaddr_in *)&sa)->sin_port);
	return 0;
}

/* Room for max_connections descriptors, as far as the hard limit allows. */
static void raise_fd_limit(int max_connections)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)max_connections + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

int eng_http_front_open(const struct eng_serve_params *p, struct eng_front *out, int *port,
			struct eng_error *err)
{
	struct http_front *fr = calloc(1, sizeof(*fr));
	bool v6 = false;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
	int rc;

	if (!fr || http_metrics_new(&fr->metrics) != 0) {
		free(fr);
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	}
	fr->p = *p;
	fr->t0 = eng_mono_s();
	fr->t0_unix = (long long)time(NULL);
	rc = listen_tcp(p->host ? p->host : "127.0.0.1", p->port, &fr->lfd, &fr->port, &v6, err);
	if (rc != 0) {
		http_metrics_free(fr->metrics);
		free(fr);
		return rc;
	}
	raise_fd_limit(p->max_connections);
	fr->d = MHD_start_daemon(flags | (v6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL, on_access, fr,
				 MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fr->lfd,
				 MHD_OPTION_CONNECTION_LIMIT, (unsigned)p->max_connections,
				 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64u << 10),
				 MHD_OPTION_CONNECTION_TIMEOUT, timeout_s(p->idle_timeout_s),
				 MHD_OPTION_NOTIFY_COMPLETED, on_completed, fr,
				 MHD_OPTION_END);
	if (!fr->d) {
		close(fr->lfd);
		http_metrics_free(fr->metrics);
		free(fr);
		return eng_error_set(err, ENG_E_IO, NULL, 0, "cannot start the HTTP server");
	}
	out->ops = &front_ops;
	out->st = fr;
	*port = fr->port;
	return 0;
}

void eng_http_front_attach(struct eng_front *f, struct eng_infer *e)
{
	if (f->ops == &front_ops)
		((struct http_front *)f->st)->e = e;
}
