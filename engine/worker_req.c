/*
 * worker_req.c: the worker's "requests" command: a stream of independent
 * requests in token ids, each streamed back token by token (see engine.h
 * for the lines, worker_req.h for the calls).  It is how a router sends a
 * turn to one of our workers.
 *
 * Each request is one runner session of one one-turn conversation, so that
 * its sampling, length and forced reply are its own while it shares the
 * continuous batch with every other client.  The sampling seed is used as
 * given: the router already derived it from its run's seed and the turn,
 * as the local runner does, so a routed turn samples what a local one
 * would.
 *
 * A score request ("score_from":F) is a one-turn score session whose
 * prompt is the first F ids and whose recorded reply is the rest: the
 * result carries the log-probs of ids F.. (each float written with 9
 * significant digits, so the router reads back the very floats the runner
 * here summed, and its sums equal a worker's own).
 *
 * What it refuses: token ids outside the model's vocabulary (they would
 * index past the embedding).
 */
#include <config.h>
#include "engine/worker_req.h"
#include "engine/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rs_req {
	struct eng_reqstream *rs;
	uint64_t id;                 /* the client's */
	struct eng_session *sess;
	struct eng_conv conv;
	struct eng_turn turn;
	int32_t *ids;                /* (conv.n_ids) prompt, then the forced reply */
	int32_t *stop;               /* (n_stop) tokens that also end it */
	int32_t n_stop;
	int32_t score_from;          /* score: ids from here on are scored; 0: generate */
	bool taken, answered;
	struct rs_req *next;
};

struct eng_reqstream {
	struct eng_infer *e;
	int (*emit)(void *ctx, const char *line, size_t len);
	void *ctx;
	struct rs_req *reqs;
	bool cancelled;
};

int eng_reqstream_open(struct eng_infer *e, int (*emit)(void *ctx, const char *line, size_t len),
		       void *ctx, struct eng_reqstream **out)
{
	struct eng_reqstream *rs = calloc(1, sizeof(*rs));

	*out = rs;
	if (!rs)
		return ENG_E_NOMEM;
	rs->e = e;
	rs->emit = emit;
	rs->ctx = ctx;
	return 0;
}

static void emit_json(struct eng_reqstream *rs, json_t *rec)
{
	char *s = rec ? json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;

	if (s) {
		size_t n = strlen(s);

		s[n] = '\n';
		rs->emit(rs->ctx, s, n + 1);
	}
	free(s);
	json_decref(rec);
}

static void emit_error(struct eng_reqstream *rs, uint64_t id, const char *msg)
{
	emit_json(rs, json_pack("{s:s,s:I,s:s,s:s}", "type", "result", "id", (json_int_t)id,
				"finish_reason", "error", "error", msg));
}

/* ---------------------------------------------------------------- session ops */

static int req_next_conv(void *ctx, struct eng_conv **out)
{
	struct rs_req *q = ctx;

	if (q->taken)
		return 0;
	q->taken = true;
	*out = &q->conv;
	return 1;
}

static void req_on_token(void *ctx, const struct eng_conv *c, int32_t token, int32_t index,
			 const struct eng_token_logprobs *lp)
{
	struct rs_req *q = ctx;
	char line[128];
	int n = snprintf(line, sizeof(line), "{\"type\":\"token\",\"id\":%llu,\"index\":%d,"
			 "\"token\":%d}\n", (unsigned long long)q->id, (int)index, (int)token);

	(void)c;
	(void)lp;
	q->rs->emit(q->rs->ctx, line, (size_t)n);
}

static const char *finish_name(enum eng_finish f)
{
	switch (f) {
	case ENG_FINISH_LENGTH: return "length";
	case ENG_FINISH_STOP: return "stop";
	case ENG_FINISH_ABORT: return "abort";
	case ENG_FINISH_ERROR: return "error";
	}
	return "error";
}

/* A score result's "logprobs_from" and "logprobs": [i] = log p(ids[from + 1 + i]),
 * from = score_from - 1, as eng_request_result's logprobs are indexed.  A
 * log-prob that is not finite goes as null (JSON has no -inf). */
static void add_logprobs(const struct rs_req *q, const struct eng_request_timing *t, json_t *rec)
{
	json_t *lps = json_array();
	int32_t from = q->score_from - 1;

	for (int32_t i = from; lps && i < q->conv.n_ids - 1; i++) {
		double v = t->logprobs[i];

		json_array_append_new(lps, isfinite(v) ? json_real(v) : json_null());
	}
	json_object_set_new(rec, "logprobs_from", json_integer(from));
	json_object_set_new(rec, "logprobs", lps);
}

static void req_on_request(void *ctx, const struct eng_conv *c, const struct eng_request_timing *t)
{
	struct rs_req *q = ctx;
	json_t *out = json_array(), *rec;

	(void)c;
	q->answered = true;
	for (int32_t i = 0; t->output && i < t->output_len; i++)
		json_array_append_new(out, json_integer(t->output[i]));
	/* A score request's prompt is the whole sequence it was sent. */
	rec = json_pack("{s:s,s:I,s:s,s:i,s:i,s:o,s:f,s:o,s:f,s:f}",
			"type", "result", "id", (json_int_t)q->id,
			"finish_reason", finish_name(t->finish),
			"prompt_len", q->score_from ? q->conv.n_ids : t->prompt_len,
			"cached_tokens", t->cached_tokens, "output_ids", out,
			"queue_time", t->queue_time,
			"error", t->error ? json_string(t->error) : json_null(),
			"ttft", t->ttft, "latency", t->latency);
	if (rec && q->score_from && !t->error && t->logprobs)
		add_logprobs(q, t, rec);
	emit_json(q->rs, rec);
}

static const struct eng_session_ops req_ops = {
	req_next_conv, req_on_request, NULL, NULL, req_on_token,
};

/* ---------------------------------------------------------------- lines */

/* arr as token ids into *ids (malloc'ed, with room for extra more); the
 * count, or -1 with why filled. */
static int32_t read_ids(const json_t *arr, int32_t vocab, int32_t extra, int32_t **ids,
			const char **why)
{
	size_t n = json_array_size(arr);
	int32_t *v;

	if (!json_is_array(arr) || n > (size_t)1 << 26) {
		*why = "token ids must be an array of integers";
		return -1;
	}
	if (!(v = malloc(sizeof(int32_t) * (n + (size_t)extra + 1)))) {
		*why = "out of memory";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		const json_t *x = json_array_get(arr, i);
		json_int_t t = json_integer_value(x);

		if (!json_is_integer(x) || t < 0 || t >= vocab) {
			free(v);
			*why = "a token id outside the model's vocabulary";
			return -1;
		}
		v[i] = (int32_t)t;
	}
	*ids = v;
	return (int32_t)n;
}

/* The session parameters of one request line. */
static void line_params(const json_t *rec, struct eng_session_params *sp)
{
	const json_t *v;

	eng_session_default_params(sp);
	sp->batch_size = 1;
	if ((v = json_object_get(rec, "ignore_eos")))
		sp->ignore_eos = json_is_true(v);
	sp->sampling.temperature = (float)json_number_value(json_object_get(rec, "temperature"));
	sp->sampling.top_k = (int32_t)json_integer_value(json_object_get(rec, "top_k"));
	v = json_object_get(rec, "top_p");
	sp->sampling.top_p = json_is_number(v) ? (float)json_number_value(v) : 1.0f;
	sp->sampling.seed = (uint64_t)json_integer_value(json_object_get(rec, "seed"));
	v = json_object_get(rec, "min_tokens");
	sp->min_tokens = json_integer_value(v) > 0 && json_integer_value(v) <= 1 << 24
			 ? (int32_t)json_integer_value(v) : 0;
}

/* The ids the engine takes: the model's vocabulary, or the tokenizer's
 * where no model is loaded here (a router). */
static int32_t vocab_of(const struct eng_infer *e)
{
	return e->model ? eng_model_config(e->model)->vocab : eng_tokenizer_vocab_size(e->tok);
}

static void req_free(struct rs_req *q)
{
	free(q->stop);
	free(q->ids);
	free(q);
}

/* The ids of a request line into q: the prompt, the forced reply after it,
 * the stop ids.  NULL, or what is wrong.  A score request's prompt is
 * prompt and reply together, split at score_from (max_new is unused). */
static const char *request_ids(const struct eng_reqstream *rs, const json_t *rec, int32_t max_new,
			       struct rs_req *q)
{
	int32_t vocab = vocab_of(rs->e), n, n_forced = 0, *f = NULL;
	const json_t *forced = json_object_get(rec, "forced_output_ids");
	const json_t *stop = json_object_get(rec, "stop_ids");
	const char *why = NULL;

	n = read_ids(json_object_get(rec, "prompt_ids"), vocab, max_new, &q->ids, &why);
	if (n <= 0)
		return n == 0 ? "an empty prompt" : why;
	if (q->score_from) {
		if (q->score_from > n)
			return "score_from must be between 1 and the prompt's length";
		q->turn = (struct eng_turn){ q->score_from, n - q->score_from, -1, -1.0, 0 };
		q->conv = (struct eng_conv){ .ids = q->ids, .n_ids = n, .turns = &q->turn,
					     .n_turns = 1 };
		return NULL;
	}
	if (forced) {
		n_forced = read_ids(forced, vocab, 0, &f, &why);
		if (n_forced >= 0 && n_forced != max_new)
			why = "forced_output_ids must hold max_new_tokens ids";
		else if (n_forced == max_new)
			memcpy(q->ids + n, f, sizeof(int32_t) * (size_t)n_forced);
		free(f);
		if (why)
			return why;
	}
	if (stop && (q->n_stop = read_ids(stop, vocab, 0, &q->stop, &why)) < 0)
		return why;
	q->turn = (struct eng_turn){ n, max_new, -1, -1.0, 0 };
	q->conv = (struct eng_conv){ .ids = q->ids, .n_ids = n + n_forced, .turns = &q->turn,
				     .n_turns = 1 };
	return NULL;
}

static void take_request(struct eng_reqstream *rs, const json_t *rec, uint64_t id)
{
	json_int_t max_new = json_integer_value(json_object_get(rec, "max_new_tokens"));
	struct rs_req *q = calloc(1, sizeof(*q));
	struct eng_session_params sp;
	const json_t *from = json_object_get(rec, "score_from");
	struct eng_error err;
	const char *why = NULL;

	if (!q)
		why = "out of memory";
	else if (from && (!json_is_integer(from) || json_integer_value(from) < 1 ||
			  json_integer_value(from) > 1 << 26))
		why = "score_from must be between 1 and the prompt's length";
	else if (from)
		q->score_from = (int32_t)json_integer_value(from);
	else if (max_new < 1 || max_new > 1 << 24)
		why = "max_new_tokens must be between 1 and 16777216";
	if (q && !why)
		why = request_ids(rs, rec, q->score_from ? 0 : (int32_t)max_new, q);
	if (!why) {
		q->rs = rs;
		q->id = id;
		line_params(rec, &sp);
		sp.score = q->score_from > 0;
		sp.stop_ids = q->stop;
		sp.n_stop_ids = q->n_stop;
		if (eng_session_start(rs->e->runner, &sp, &req_ops, q, &q->sess, &err) != 0)
			why = err.msg;
	}
	if (why) {
		if (q)
			req_free(q);
		emit_error(rs, id, why);
		return;
	}
	q->next = rs->reqs;
	rs->reqs = q;
}

static void cancel_request(struct eng_reqstream *rs, uint64_t id)
{
	for (struct rs_req *q = rs->reqs; q; q = q->next) {
		if (q->id == id && !q->answered) {
			q->answered = true; /* no result: the client gave up on it */
			eng_session_cancel(q->sess);
			return;
		}
	}
}

void eng_reqstream_line(struct eng_reqstream *rs, const char *line, size_t len)
{
	json_t *rec;
	const char *type;
	uint64_t id;

	if (len == 0 || rs->cancelled)
		return;
	rec = json_loadb(line, len, 0, NULL);
	type = json_string_value(json_object_get(rec, "type"));
	id = (uint64_t)json_integer_value(json_object_get(rec, "id"));
	if (type && !strcmp(type, "request"))
		take_request(rs, rec, id);
	else if (type && !strcmp(type, "cancel"))
		cancel_request(rs, id);
	else if (type && !strcmp(type, "flush_cache"))
		eng_runner_flush_cache(rs->e->runner);
	else
		emit_error(rs, id, "expected a request, cancel or flush_cache record");
	json_decref(rec);
}

/* ---------------------------------------------------------------- lifetime */

void eng_reqstream_settle(struct eng_reqstream *rs)
{
	struct rs_req **pp = &rs->reqs;

	while (*pp) {
		struct rs_req *q = *pp;

		if (!eng_session_done(q->sess)) {
			pp = &q->next;
			continue;
		}
		*pp = q->next;
		eng_session_free(q->sess);
		req_free(q);
	}
}

void eng_reqstream_cancel(struct eng_reqstream *rs)
{
	rs->cancelled = true;
	for (struct rs_req *q = rs->reqs; q; q = q->next)
		eng_session_cancel(q->sess);
}

bool eng_reqstream_idle(struct eng_reqstream *rs)
{
	eng_reqstream_settle(rs);
	return rs->reqs == NULL;
}

void eng_reqstream_free(struct eng_reqstream *rs)
{
	if (!rs)
		return;
	eng_reqstream_cancel(rs);
	eng_reqstream_settle(rs); /* only sessions that are done may be freed */
	free(rs);
}
