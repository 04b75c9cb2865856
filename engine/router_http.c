/*
 * router_http.c: the router's link to an OpenAI-compatible server (ours
 * with --port, SGLang, vLLM, llama.cpp), see router.h.
 *
 * A turn is sent by the remote executor (remote.h) that --connect http://
 * uses: one streamed POST of the prompt's token ids to /v1/completions,
 * each chunk a token for the clock, the usage (with the cached tokens the
 * server reports) at the end.  The link owns one remote executor per
 * worker, made at the first good probe (it asks the server for its model
 * name), and drives it from the router's step.  Health is GET /health
 * (SGLang, vLLM, llama.cpp, ours), or GET /v1/models on a server that has
 * no /health, on a curl multi handle of the link's own so that a probe
 * never blocks the router.
 *
 * A transfer that got no HTTP answer, a 5xx, or a stream cut short is the
 * worker failing (the router sends the turn elsewhere); any other error is
 * the request's (passed on, as from a local scheduler).  Servers stream
 * text, not ids, so a routed turn's output ids are not known here: its
 * record has the output length the server reported.
 */
#include <config.h>
#include "engine/router.h"
#include "engine/remote.h"
#include "engine/clock.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An attempt in flight at this worker. */
struct attempt {
	struct http_link *l;
	uint64_t wire_id;
	int id;                      /* the remote executor's */
	struct attempt *next;
};

struct http_link {
	struct eng_router *r;
	int k;
	char *url;
	struct eng_tokenizer *tok;
	struct eng_remote *x;        /* NULL until the first good probe */
	struct attempt *attempts;
	CURLM *pm;                   /* the probes' multi handle */
	CURL *probe;                 /* the probe in flight, or NULL */
	double p_deadline;
	char health_path[16];        /* "/health", or "/v1/models" */
	char p_err[CURL_ERROR_SIZE];
};

static bool http_accepts(const char *addr)
{
	return !strncmp(addr, "http://", 7) || !strncmp(addr, "https://", 8);
}

/* ---------------------------------------------------------------- the executor's callbacks */

static void http_on_token(void *user, int32_t token, int32_t index)
{
	struct attempt *a = user;

	eng_router_token(a->l->r, a->l->k, a->wire_id, token, index);
}

static void forget(struct http_link *l, struct attempt *a)
{
	for (struct attempt **pp = &l->attempts; *pp; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
	free(a);
}

static void http_on_finish(void *user, const struct eng_request_result *res)
{
	struct attempt *a = user;
	struct http_link *l = a->l;
	const struct eng_remote_usage *u = res->remote;
	struct rt_result rr = {
		.finish = res->finish, .output = res->output, .n_output = res->n_output,
		.prompt_len = res->prompt_len,
		.cached_tokens = u && u->cached_tokens >= 0 ? res->cached_tokens : -1,
		.error = res->error, .logprobs = res->logprobs, .worker_queue_time = -1,
	};

	uint64_t wire_id = a->wire_id;

	/* no answer, a server error, or a stream cut short: the worker failed */
	rr.worker_failed = res->finish == ENG_FINISH_ERROR && u &&
			   (u->http_status == 0 || u->http_status >= 500 ||
			    (u->http_status == 200 && res->error));
	forget(l, a);
	if (wire_id)
		eng_router_result(l->r, l->k, wire_id, &rr);
}

static const struct eng_sched_callbacks http_cb = { http_on_token, http_on_finish };

/* ---------------------------------------------------------------- link ops */

static int http_open(struct eng_router *r, int k, const char *addr, void **out,
		     struct eng_error *err)
{
	struct http_link *l = calloc(1, sizeof(*l));

	*out = NULL;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!l || !(l->url = strdup(addr)) || !(l->pm = curl_multi_init())) {
		curl_global_cleanup();
		if (l)
			free(l->url);
		free(l);
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	}
	l->r = r;
	l->k = k;
	l->tok = eng_router_tokenizer(r);
	snprintf(l->health_path, sizeof(l->health_path), "/health");
	*out = l;
	return 0;
}

/* The remote executor of a worker that answered: its model's name comes
 * from GET /v1/models. */
static int make_executor(struct http_link *l, struct eng_error *err)
{
	struct eng_remote_params p;

	if (l->x)
		return 0;
	eng_remote_default_params(&p);
	p.url = l->url;
	p.endpoint = ENG_REMOTE_COMPLETIONS;
	return eng_remote_create(&p, l->tok, &http_cb, &l->x, err);
}

static int http_send(void *lv, const struct rt_send *s, struct eng_error *err)
{
	struct http_link *l = lv;
	struct attempt *a = calloc(1, sizeof(*a));
	struct eng_request_params p = *s->p;
	int id;

	if (!a)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	if (make_executor(l, err) != 0) {
		free(a);
		return err->code;
	}
	a->l = l;
	a->wire_id = s->wire_id;
	p.user = a;
	id = eng_remote_ops.submit(l->x, &p, s->conv, s->turn, err);
	if (id < 0) {
		free(a);
		return id;
	}
	a->id = id;
	a->next = l->attempts;
	l->attempts = a;
	return 0;
}

static void http_cancel(void *lv, uint64_t wire_id)
{
	struct http_link *l = lv;

	for (struct attempt *a = l->attempts; a; a = a->next) {
		if (a->wire_id == wire_id) {
			eng_remote_ops.cancel(l->x, a->id);
			a->wire_id = 0; /* its end matches no request */
		}
	}
}

static void http_flush_cache(void *lv)
{
	struct http_link *l = lv;

	if (l->x)
		eng_remote_ops.flush_cache(l->x);
}

static void http_disconnect(void *lv)
{
	struct http_link *l = lv;

	for (struct attempt *a = l->attempts; a; a = a->next)
		http_cancel(l, a->wire_id);
}

/* ---------------------------------------------------------------- probes */

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;
}

static void probe_end(struct http_link *l, bool ok, const char *why)
{
	curl_multi_remove_handle(l->pm, l->probe);
	curl_easy_cleanup(l->probe);
	l->probe = NULL;
	eng_router_probed(l->r, l->k, ok, why);
}

static void http_probe(void *lv, double deadline)
{
	struct http_link *l = lv;
	char url[1200];
	size_t n;

	if (l->probe)
		return;
	snprintf(url, sizeof(url), "%s", l->url);
	n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		url[--n] = '\0';
	if (n >= 3 && !strcmp(url + n - 3, "/v1"))
		url[n -= 3] = '\0';
	snprintf(url + n, sizeof(url) - n, "%s", l->health_path);
	if (!(l->probe = curl_easy_init())) {
		eng_router_probed(l->r, l->k, false, "out of memory");
		return;
	}
	l->p_err[0] = '\0';
	l->p_deadline = deadline;
	curl_easy_setopt(l->probe, CURLOPT_URL, url);
	curl_easy_setopt(l->probe, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(l->probe, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(l->probe, CURLOPT_ERRORBUFFER, l->p_err);
	curl_easy_setopt(l->probe, CURLOPT_TIMEOUT_MS, (long)((deadline - eng_mono_s()) * 1000) + 1);
	curl_multi_add_handle(l->pm, l->probe);
}

/* A probe's end: 200 is up; a 404 on /health tries /v1/models next time. */
static void probe_done(struct http_link *l, CURLcode rc)
{
	struct eng_error err;
	long status = 0;
	char why[CURL_ERROR_SIZE + 64];

	if (rc != CURLE_OK) {
		snprintf(why, sizeof(why), "%s", rc == CURLE_OPERATION_TIMEDOUT
			 ? "health check timed out" : l->p_err[0] ? l->p_err : curl_easy_strerror(rc));
		probe_end(l, false, why);
		return;
	}
	curl_easy_getinfo(l->probe, CURLINFO_RESPONSE_CODE, &status);
	if (status == 404 && !strcmp(l->health_path, "/health"))
		snprintf(l->health_path, sizeof(l->health_path), "/v1/models");
	if (status != 200) {
		snprintf(why, sizeof(why), "health check answered HTTP %ld", status);
		probe_end(l, false, why);
		return;
	}
	if (make_executor(l, &err) != 0) {
		probe_end(l, false, err.msg);
		return;
	}
	probe_end(l, true, NULL);
}

static void http_step(void *lv, double now)
{
	struct http_link *l = lv;
	struct eng_error err;
	CURLMsg *m;
	int running, left;

	if (l->x && eng_remote_ops.busy(l->x))
		eng_remote_ops.step(l->x, 0, &err);
	if (!l->probe)
		return;
	curl_multi_perform(l->pm, &running);
	while (l->probe && (m = curl_multi_info_read(l->pm, &left)))
		if (m->msg == CURLMSG_DONE)
			probe_done(l, m->data.result);
	if (l->probe && now > l->p_deadline)
		probe_end(l, false, "health check timed out");
}

static void http_watch(void *lv, struct pollfd *fds, int *n, int cap)
{
	(void)lv;
	(void)fds;
	(void)n;
	(void)cap;
}

static void http_dispatch(void *lv, const struct pollfd *fds, int n)
{
	(void)lv;
	(void)fds;
	(void)n;
}

static json_t *http_last_status(void *lv)
{
	(void)lv;
	return NULL;
}

static void http_close(void *lv)
{
	struct http_link *l = lv;

	if (l->probe) {
		curl_multi_remove_handle(l->pm, l->probe);
		curl_easy_cleanup(l->probe);
	}
	curl_multi_cleanup(l->pm);
	eng_remote_free(l->x); /* no callback after this */
	while (l->attempts) {
		struct attempt *a = l->attempts;

		l->attempts = a->next;
		free(a);
	}
	free(l->url);
	free(l);
	curl_global_cleanup();
}

const struct rt_link_ops eng_link_http = {
	"http", http_accepts, http_open, http_send, http_cancel, http_flush_cache, http_probe,
	http_watch, http_dispatch, http_step, http_disconnect, http_last_status, http_close,
};
