/*
 * remote.c: the executor that runs the runner's requests on an
 * OpenAI-compatible server (see remote.h).
 *
 * One curl multi handle, driven from the runner's thread by step(): every
 * request in flight is one easy handle whose write callback feeds an SSE
 * parser; each event that carries reply text is a token for the runner,
 * stamped when its bytes arrive.  Nothing else runs in between, so the
 * client's own cost per token is one JSON parse.  HTTP itself (connections,
 * keep-alive, chunked encoding, TLS) is libcurl's; the connection cache is
 * the multi handle's, so a conversation's next turn reuses a connection.
 *
 * A request finishes well only with an HTTP 200 and a stream that ended in
 * "data: [DONE]" (or a whole JSON reply, for a server that does not
 * stream).  Anything else is a failed request with the reason; with
 * max_retries it is sent again after a short back-off (0.1 s doubling, at
 * most 2 s), except after an HTTP 4xx other than 429, which a retry would
 * only repeat.  Retries count in the result; times run from the first
 * attempt, as the agent would have waited.
 *
 * It refuses to do what the engine does for itself: a prefix cache reset is
 * asked of the server (SGLang's /flush_cache, then vLLM's
 * /reset_prefix_cache) and, where neither exists, the run says so.
 */
#include <config.h>
#include "engine/remote.h"
#include "engine/sse.h"
#include "engine/clock.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_BODY_MAX ((size_t)64 << 10)   /* kept of an error reply */
#define WHOLE_BODY_MAX ((size_t)256 << 20)  /* kept of a whole (score) reply */
#define RETRY_FIRST_S 0.1
#define RETRY_MAX_S 2.0

/* One request, from submission to its result. */
struct xfer {
	struct eng_remote *x;
	struct xfer *next;
	CURL *easy;
	int id;
	void *user;                /* the runner's */
	char *body;                /* (body_len) the request, kept for retries */
	size_t body_len;
	bool score;
	int32_t prompt_len;        /* ours */
	bool cancelled, in_multi, streaming, typed;
	double retry_at;           /* > 0: waiting to be sent again */
	int32_t retries;
	long status;
	struct eng_sse sse;
	struct rm_reply reply;
	char *raw;                 /* (raw_len) a reply that is not an event stream */
	size_t raw_len, raw_cap;
	char curl_err[CURL_ERROR_SIZE];
};

struct eng_remote {
	struct eng_remote_params p;
	char *base;                /* the URL without a trailing / or /v1 */
	char *url;                 /* base + the endpoint's path */
	char *model;
	char *api_key;
	char cache_reset[32];      /* how the last reset was done; "" none */
	bool reset_tried;
	struct curl_slist *headers;
	CURLM *multi;
	struct eng_tokenizer *tok;
	const struct eng_sched_callbacks *cb;
	struct xfer *xfers;        /* in flight or waiting to be retried */
	int next_id;
	struct eng_sched_stats st; /* n_running, n_waiting kept current */
};

void eng_remote_default_params(struct eng_remote_params *p)
{
	memset(p, 0, sizeof(*p));
	p->endpoint = ENG_REMOTE_CHAT;
}

int eng_remote_endpoint_from_name(const char *name, enum eng_remote_endpoint *out,
				  struct eng_error *err)
{
	static const enum eng_remote_endpoint all[] = {
		ENG_REMOTE_CHAT, ENG_REMOTE_COMPLETIONS, ENG_REMOTE_GENERATE,
	};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (!strcmp(name, rm_endpoint_name(all[i]))) {
			*out = all[i];
			return 0;
		}
	}
	return eng_error_set(err, ENG_E_INVALID, NULL, 0,
			     "unknown endpoint '%s' (chat, completions or generate)", name);
}

/* ---------------------------------------------------------------- setup */

static char *str_printf(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 1;
	char *s = malloc(n);

	if (s)
		snprintf(s, n, "%s%s", a, b);
	return s;
}

/* http(s)://HOST[:PORT][/v1][/] -> http(s)://HOST[:PORT] */
static int base_url(const char *url, char **out, struct eng_error *err)
{
	size_t n = strlen(url);
	char *b;

	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		return eng_error_set(err, ENG_E_INVALID, url, 0, "not an http:// or https:// URL");
	b = strdup(url);
	if (!b)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	while (n > 0 && b[n - 1] == '/')
		b[--n] = '\0';
	if (n >= 3 && !strcmp(b + n - 3, "/v1"))
		b[n -= 3] = '\0';
	*out = b;
	return 0;
}

/* Appends what a blocking request receives. */
static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *t = ud;
	size_t len = size * n;

	if (t->raw_len + len + 1 > WHOLE_BODY_MAX)
		return 0;
	if (t->raw_len + len + 1 > t->raw_cap) {
		size_t cap = t->raw_cap ? t->raw_cap : 4096;
		char *q;

		while (cap < t->raw_len + len + 1)
			cap *= 2;
		if (!(q = realloc(t->raw, cap)))
			return 0;
		t->raw = q;
		t->raw_cap = cap;
	}
	memcpy(t->raw + t->raw_len, p, len);
	t->raw_len += len;
	t->raw[t->raw_len] = '\0';
	return len;
}

/* A blocking request outside the run (models, cache reset): the status,
 * or -1 when there was no answer (msg says why). */
static long simple_request(struct eng_remote *x, const char *path, bool post, char **body,
			   char *msg, size_t msg_len)
{
	struct xfer t = { 0 };
	char *url = str_printf(x->base, path);
	CURL *e = curl_easy_init();
	CURLcode rc = CURLE_OUT_OF_MEMORY;

	t.curl_err[0] = '\0';
	if (e && url) {
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.curl_err);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, x->p.request_timeout_s > 0
				 ? (long)(x->p.request_timeout_s * 1000) : 30000L);
		if (post)
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
		rc = curl_easy_perform(e);
		if (rc == CURLE_OK)
			curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &t.status);
	}
	if (rc != CURLE_OK)
		snprintf(msg, msg_len, "%s", t.curl_err[0] ? t.curl_err : curl_easy_strerror(rc));
	curl_easy_cleanup(e);
	free(url);
	if (body)
		*body = t.raw;
	else
		free(t.raw);
	return rc == CURLE_OK ? t.status : -1;
}

/* The first model of GET /v1/models. */
static int ask_model(struct eng_remote *x, struct eng_error *err)
{
	char msg[CURL_ERROR_SIZE + 64] = "", *body = NULL;
	long st = simple_request(x, "/v1/models", false, &body, msg, sizeof(msg));
	json_t *j = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0),
							   "id"));
	int rc = 0;

	if (st < 0)
		rc = eng_error_set(err, ENG_E_IO, x->base, 0, "the server does not answer: %s", msg);
	else if (!id)
		rc = eng_error_set(err, ENG_E_IO, x->base, 0,
				   "GET /v1/models names no model (HTTP %ld); give --model", st);
	else if (!(x->model = strdup(id)))
		rc = eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	json_decref(j);
	free(body);
	return rc;
}

int eng_remote_create(const struct eng_remote_params *p, struct eng_tokenizer *tok,
		      const struct eng_sched_callbacks *cb, struct eng_remote **out,
		      struct eng_error *err)
{
	struct eng_remote *x = calloc(1, sizeof(*x));
	char auth[1024];
	int rc;

	*out = NULL;
	if (!x)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(x);
		return eng_error_set(err, ENG_E_IO, NULL, 0, "cannot initialize libcurl");
	}
	x->p = *p;
	x->tok = tok;
	x->cb = cb;
	rc = base_url(p->url ? p->url : "", &x->base, err);
	if (rc == 0) {
		x->url = str_printf(x->base, rm_endpoint_path(p->endpoint));
		x->headers = curl_slist_append(NULL, "Content-Type: application/json");
		/* No "Expect: 100-continue" round trip before a long prompt. */
		x->headers = curl_slist_append(x->headers, "Expect:");
		if (p->api_key) {
			snprintf(auth, sizeof(auth), "Authorization: Bearer %s", p->api_key);
			x->headers = curl_slist_append(x->headers, auth);
		}
		x->multi = curl_multi_init();
		if (!x->url || !x->headers || !x->multi)
			rc = eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	}
	if (rc == 0) {
		/* Keep a connection per stream between turns. */
		curl_multi_setopt(x->multi, CURLMOPT_MAXCONNECTS, 4096L);
		if (p->served_model)
			x->model = strdup(p->served_model);
		else
			rc = ask_model(x, err);
	}
	if (rc == 0 && !x->model)
		rc = eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	if (rc != 0) {
		eng_remote_free(x);
		return rc;
	}
	*out = x;
	return 0;
}

static void xfer_free(struct xfer *t)
{
	if (t->in_multi)
		curl_multi_remove_handle(t->x->multi, t->easy);
	curl_easy_cleanup(t->easy);
	eng_sse_free(&t->sse);
	rm_reply_free(&t->reply);
	free(t->raw);
	free(t->body);
	free(t);
}

void eng_remote_free(struct eng_remote *x)
{
	if (!x)
		return;
	while (x->xfers) {
		struct xfer *t = x->xfers;

		x->xfers = t->next;
		xfer_free(t);
	}
	if (x->multi)
		curl_multi_cleanup(x->multi);
	curl_slist_free_all(x->headers);
	free(x->base);
	free(x->url);
	free(x->model);
	free(x);
	curl_global_cleanup();
}

const char *eng_remote_model(const struct eng_remote *x)
{
	return x->model;
}

const char *eng_remote_url(const struct eng_remote *x)
{
	return x->base;
}

json_t *eng_remote_settings(const struct eng_remote *x)
{
	return json_pack("{s:s,s:s,s:s,s:f,s:i,s:o}", "url", x->base,
			 "endpoint", rm_endpoint_name(x->p.endpoint), "served_model", x->model,
			 "request_timeout", x->p.request_timeout_s, "max_retries", x->p.max_retries,
			 "cache_reset", x->cache_reset[0] ? json_string(x->cache_reset) : json_null());
}

/* ---------------------------------------------------------------- a request */

/* Bytes of the reply: an event stream is parsed as it comes; anything
 * else (an error, a score, a server that does not stream) is kept whole. */
static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *t = ud;
	size_t len = size * n;
	int rc;

	if (!t->typed) {
		char *ct = NULL;

		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
		curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &ct);
		t->streaming = t->status == 200 && !t->score && ct && strstr(ct, "event-stream");
		t->typed = true;
	}
	if (!t->streaming) {
		if (t->status != 200 && t->raw_len >= ERROR_BODY_MAX)
			return len;
		return collect(p, size, n, ud);
	}
	rc = eng_sse_feed(&t->sse, p, len);
	if (rc == -1 && !t->reply.error[0])
		snprintf(t->reply.error, sizeof(t->reply.error),
			 "the stream has a line or event too long to hold");
	return rc == 0 ? len : 0; /* 0: curl stops with a write error */
}

static int on_event(void *ctx, const char *event, const char *data, size_t len)
{
	struct xfer *t = ctx;
	int32_t index = t->reply.n_chunks;
	int rc = rm_reply_event(t->x->p.endpoint, &t->reply, data, len);

	if (rc < 0)
		return 1;
	if (!strcmp(event, "error")) {
		snprintf(t->reply.error, sizeof(t->reply.error), "the server sent an error event: %.400s",
			 data);
		return 1;
	}
	if (rc == 1 && t->x->cb->on_token)
		t->x->cb->on_token(t->user, -1, index);
	return 0;
}

/* (Re)starts the transfer of t. */
static int xfer_start(struct eng_remote *x, struct xfer *t)
{
	CURL *e = t->easy;

	t->status = 0;
	t->typed = t->streaming = false;
	t->raw_len = 0;
	t->curl_err[0] = '\0';
	t->retry_at = 0;
	rm_reply_reset(&t->reply);
	eng_sse_reset(&t->sse);
	curl_easy_setopt(e, CURLOPT_URL, x->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body_len);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->curl_err);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	if (x->p.request_timeout_s > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(x->p.request_timeout_s * 1000));
	if (curl_multi_add_handle(x->multi, e) != CURLM_OK)
		return -1;
	t->in_multi = true;
	return 0;
}

static int remote_submit(void *xv, const struct eng_request_params *p, const struct eng_conv *c,
			 int32_t turn, struct eng_error *err)
{
	struct eng_remote *x = xv;
	struct xfer *t = calloc(1, sizeof(*t));

	eng_error_clear(err);
	if (!t || !(t->easy = curl_easy_init())) {
		free(t);
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	}
	t->x = x;
	t->id = x->next_id++ & 0x7fffffff;
	t->user = p->user;
	t->score = p->score;
	t->prompt_len = p->prompt_len;
	rm_reply_reset(&t->reply);
	eng_sse_init(&t->sse, 0, on_event, t);
	t->body = rm_request_body(x->p.endpoint, x->model, p, c, turn, x->tok, err);
	if (t->body)
		t->body_len = strlen(t->body);
	if (!t->body || xfer_start(x, t) != 0) {
		int code = err->code ? err->code
			   : eng_error_set(err, ENG_E_NOMEM, NULL, 0, "cannot start the request");

		xfer_free(t);
		return code;
	}
	t->next = x->xfers;
	x->xfers = t;
	x->st.n_running++;
	return t->id;
}

/* Why a finished transfer failed, into msg; "" when it did not. */
static void failure(const struct xfer *t, CURLcode rc, char *msg, size_t n)
{
	char emsg[512];

	msg[0] = '\0';
	if (t->reply.error[0]) {
		snprintf(msg, n, "%s", t->reply.error);
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		snprintf(msg, n, "no complete reply within the request timeout of %g s%s",
			 t->x->p.request_timeout_s, t->status ? "" : " (no response)");
	} else if (rc != CURLE_OK && t->status == 0) {
		snprintf(msg, n, "cannot reach the server: %s",
			 t->curl_err[0] ? t->curl_err : curl_easy_strerror(rc));
	} else if (t->status != 200) {
		rm_error_message(t->raw ? t->raw : "", t->raw_len, emsg, sizeof(emsg));
		snprintf(msg, n, "HTTP %ld%s%s", t->status, emsg[0] ? ": " : "", emsg);
	} else if (rc != CURLE_OK) {
		snprintf(msg, n, "the reply broke off after %d chunks: %s", t->reply.n_chunks,
			 t->curl_err[0] ? t->curl_err : curl_easy_strerror(rc));
	} else if (t->streaming && !t->reply.done) {
		snprintf(msg, n, "the stream ended without [DONE] after %d chunks", t->reply.n_chunks);
	}
}

/* Retries what a retry could mend: not a request the server refused. */
static bool may_retry(const struct xfer *t)
{
	if (t->retries >= t->x->p.max_retries || t->cancelled)
		return false;
	return !(t->status >= 400 && t->status < 500 && t->status != 429);
}

/* Hands t's result to the runner. */
static void deliver(struct eng_remote *x, struct xfer *t, const char *error, bool aborted)
{
	const struct rm_reply *r = &t->reply;
	struct eng_remote_usage u = {
		.server_prompt_tokens = r->prompt_tokens >= 0 ? (int32_t)r->prompt_tokens : -1,
		.cached_tokens = r->cached_tokens >= 0 ? (int32_t)r->cached_tokens : -1,
		.from_stream = r->completion_tokens < 0,
		.retries = t->retries,
		.http_status = (int32_t)t->status,
		.text = r->text ? r->text : "",
		.text_len = r->text_len,
	};
	struct eng_request_result res = {
		.finish = aborted ? ENG_FINISH_ABORT : error ? ENG_FINISH_ERROR
			  : !strcmp(r->finish_reason, "stop") ? ENG_FINISH_STOP : ENG_FINISH_LENGTH,
		.n_output = error || aborted ? 0 : r->completion_tokens >= 0
			    ? (int32_t)r->completion_tokens : r->n_chunks,
		.prompt_len = t->prompt_len,
		.cached_tokens = u.cached_tokens > 0 && !error ? u.cached_tokens : 0,
		.error = aborted ? "cancelled" : error,
		.logprobs = r->logprobs,
		.remote = &u,
	};

	if (!error && !aborted) {
		x->st.n_finished++;
		x->st.generated_tokens += res.n_output;
		if (u.server_prompt_tokens >= 0) {
			x->st.prompt_tokens += u.server_prompt_tokens;
			x->st.cached_tokens += res.cached_tokens;
			x->st.computed_tokens += u.server_prompt_tokens - res.cached_tokens;
		}
	}
	x->cb->on_finish(t->user, &res);
}

/* Unlinks t from the list of transfers. */
static void unlink_xfer(struct eng_remote *x, struct xfer *t)
{
	struct xfer **pp;

	for (pp = &x->xfers; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			return;
		}
	}
}

/* A transfer ended: its result, or a retry. */
static void xfer_done(struct eng_remote *x, struct xfer *t, CURLcode rc)
{
	char msg[768];

	curl_multi_remove_handle(x->multi, t->easy);
	t->in_multi = false;
	if (!t->typed)
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
	if (!t->cancelled) {
		if (eng_sse_end(&t->sse) == 1 && !t->reply.error[0] && rc == CURLE_OK)
			snprintf(t->reply.error, sizeof(t->reply.error),
				 "the stream ended inside a line after %d chunks", t->reply.n_chunks);
		/* A whole reply: its one token (for the clock) came with its end. */
		if (rc == CURLE_OK && t->status == 200 && !t->streaming && !t->reply.error[0] &&
		    rm_reply_whole(x->p.endpoint, &t->reply, t->raw ? t->raw : "", t->raw_len,
				   t->score, t->prompt_len) == 0 && t->reply.n_chunks > 0)
			x->cb->on_token(t->user, -1, 0);
	}
	failure(t, rc, msg, sizeof(msg));
	if (msg[0] && may_retry(t)) {
		double back = RETRY_FIRST_S * pow(2, t->retries);

		t->retries++;
		t->retry_at = eng_mono_s() + (back < RETRY_MAX_S ? back : RETRY_MAX_S);
		x->st.n_running--;
		x->st.n_waiting++;
		return;
	}
	unlink_xfer(x, t);
	x->st.n_running--;
	deliver(x, t, msg[0] ? msg : NULL, t->cancelled);
	xfer_free(t);
}

/* ---------------------------------------------------------------- the loop */

/* Cancelled transfers finish; retries whose time came are sent again.
 * Returns the earliest retry still waiting (INFINITY: none). */
static double service(struct eng_remote *x, double now)
{
	double soonest = INFINITY;
	struct xfer *t = x->xfers, *next;

	for (; t; t = next) {
		next = t->next;
		if (t->cancelled) {
			if (t->retry_at > 0) {
				x->st.n_waiting--;
				x->st.n_running++;
			}
			unlink_xfer(x, t);
			x->st.n_running--;
			deliver(x, t, NULL, true);
			xfer_free(t);
		} else if (t->retry_at > 0 && t->retry_at <= now) {
			x->st.n_waiting--;
			x->st.n_running++;
			if (xfer_start(x, t) != 0) {
				unlink_xfer(x, t);
				x->st.n_running--;
				deliver(x, t, "cannot restart the request", false);
				xfer_free(t);
			}
		} else if (t->retry_at > 0 && t->retry_at < soonest) {
			soonest = t->retry_at;
		}
	}
	return soonest;
}

/* Finished transfers, one by one. */
static bool drain(struct eng_remote *x)
{
	CURLMsg *m;
	int left;
	bool any = false;

	while ((m = curl_multi_info_read(x->multi, &left))) {
		struct xfer *t = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		if (t)
			xfer_done(x, t, m->data.result);
		any = true;
	}
	return any;
}

static int remote_step(void *xv, double max_wait_s, struct eng_error *err)
{
	struct eng_remote *x = xv;
	double now = eng_mono_s(), retry = service(x, now), wait = max_wait_s;
	int running = 0;

	if (curl_multi_perform(x->multi, &running) != CURLM_OK)
		return eng_error_set(err, ENG_E_IO, x->base, 0, "curl_multi_perform failed");
	if (drain(x))
		return 0;
	if (retry - now < wait)
		wait = retry - now > 0 ? retry - now : 0;
	curl_multi_poll(x->multi, NULL, 0, (int)(wait * 1000), NULL);
	if (curl_multi_perform(x->multi, &running) != CURLM_OK)
		return eng_error_set(err, ENG_E_IO, x->base, 0, "curl_multi_perform failed");
	drain(x);
	return 0;
}

static void remote_cancel(void *xv, int id)
{
	struct eng_remote *x = xv;

	for (struct xfer *t = x->xfers; t; t = t->next)
		if (t->id == id)
			t->cancelled = true;
}

static bool remote_busy(const void *xv)
{
	const struct eng_remote *x = xv;

	return x->xfers != NULL;
}

static void remote_stats(const void *xv, struct eng_sched_stats *st)
{
	const struct eng_remote *x = xv;

	*st = x->st;
}

/* Asks the server to drop its prefix cache: SGLang's /flush_cache, then
 * vLLM's /reset_prefix_cache (served in its development mode).  The first
 * that answers 200 is used from then on; if none does, runs go on warm and
 * the run record's settings say so (cache_reset null). */
static void remote_flush(void *xv)
{
	static const char *const paths[] = { "/flush_cache", "/reset_prefix_cache" };
	struct eng_remote *x = xv;
	char msg[CURL_ERROR_SIZE + 64];

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		if (x->reset_tried && strcmp(x->cache_reset, paths[i] + 1))
			continue;
		if (simple_request(x, paths[i], true, NULL, msg, sizeof(msg)) == 200) {
			snprintf(x->cache_reset, sizeof(x->cache_reset), "%s", paths[i] + 1);
			x->reset_tried = true;
			return;
		}
	}
	x->cache_reset[0] = '\0';
	x->reset_tried = true;
}

/* The server's memory is its own: no peak to reset, no history to
 * release. */
static void remote_reset_peak(void *xv) { (void)xv; }
static void remote_end(void *xv, uint64_t key) { (void)xv; (void)key; }

static void remote_free(void *xv)
{
	eng_remote_free(xv);
}

const struct eng_executor_ops eng_remote_ops = {
	remote_submit, remote_cancel, remote_busy, remote_step, remote_stats, remote_flush,
	remote_reset_peak, remote_end, remote_free, NULL, NULL,
};
