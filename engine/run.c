/*
 * run.c: one run over a loaded engine: NDJSON conversations in, timing
 * records out (see infer.h).
 *
 * Records follow trajbench-records(5): field names of SGLang's and vLLM's
 * RequestFuncOutput in seconds, plus conversation_id, turn, run.
 */
#include <config.h>
#include "engine/conv.h"
#include "engine/prompt_bound.h"
#include "engine/infer.h"
#include "engine/model.h"
#include "engine/router.h"
#include "engine/remote.h"
#include "engine/tokenizer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

/* Warmup requests: synthetic one-turn conversations, not reported. */
#define WARMUP_PROMPT 64
#define WARMUP_OUTPUT 8

struct eng_run {
	struct eng_infer *e;
	struct eng_run_params p;
	struct eng_run_io io;
	struct eng_session *warm;     /* the warmup, while it runs */
	int32_t warm_left;
	int32_t warm_ids[WARMUP_PROMPT + WARMUP_OUTPUT];
	struct eng_turn warm_turn;
	struct eng_conv warm_conv;
	struct eng_session *sess;     /* the measured run, once the warmup is done */
	struct eng_sched_stats st0;   /* scheduler counters when it started */
	char *run_name, *mode;
	double start_unix;
	long n_bad, n_conversations, n_requests;
	long n_failed;                /* requests that did not succeed */
	long n_recorded, n_mismatch;  /* turns with a recorded prompt length, and
				       * those whose prompt_len differs from it */
	struct eng_route_tally *tally; /* a router's: per-worker totals */
	size_t bytes_per_token;       /* the most input bytes a token stands for (0:
				       * unbounded), to refuse by length a prompt
				       * that cannot fit before tokenizing it */
	bool cancelled;
	struct remote_counts {        /* what a remote engine's server said */
		long n_reported;      /* requests with the server's prompt count */
		long n_mismatch;      /* ... that differs from ours */
		long n_from_stream;   /* output counted from the stream */
		long n_no_cache;      /* no cached-token count */
		long n_retries;
		int64_t prompt_tokens, cached_tokens;
		double cpu0_s;        /* the process's CPU time at the start */
	} rc;
};

static void __attribute__((format(printf, 3, 4)))
diag(struct eng_run *r, long line, const char *fmt, ...)
{
	char msg[1400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r->io.diag)
		r->io.diag(r->io.ctx, line, msg);
}

/* A request line (no "type"; its prompt is all its messages, rendered as
 * it is read) whose prompt cannot fit the context by its length in bytes
 * alone is refused, and reported, before it is tokenized. */
static bool request_too_long(struct eng_run *r, const json_t *rec, long lineno)
{
	int64_t min_len = eng_prompt_min_tokens(rec, SIZE_MAX, r->bytes_per_token);
	int32_t ctx = eng_runner_max_context(r->e->runner);

	if (json_object_get(rec, "type") || min_len < ctx)
		return false;
	diag(r, lineno, "prompt of at least %lld tokens (from its length in bytes) exceeds the "
	     "context of %d; not tokenized", (long long)min_len, ctx);
	return true;
}

/* Each turn's lower bound on its prompt, from the bytes of the messages
 * before its reply: the runner fails a turn that cannot fit without
 * rendering it. */
static void set_prompt_bounds(const struct eng_run *r, struct eng_conv_rec *c)
{
	for (int32_t k = 0; k < c->conv.n_turns; k++) {
		size_t end = c->chat ? eng_chat_conv_msg_index(c->chat, (size_t)(c->first_turn + k))
				     : SIZE_MAX;

		c->conv.turns[k].min_prompt_len = eng_prompt_min_tokens(c->record, end,
									r->bytes_per_token);
	}
}

static int next_conv(void *ctx, struct eng_conv **out)
{
	struct eng_run *r = ctx;

	for (;;) {
		char *line;
		size_t len;
		long lineno = 0;
		int rc = r->io.next_line(r->io.ctx, &line, &len, &lineno);
		json_error_t jerr;
		struct eng_error err;
		struct eng_conv_rec *c;
		json_t *rec;

		if (rc != 1)
			return rc; /* 0 end, 2 not yet, < 0 error */
		if (len == 0 || strspn(line, " \t\r") == len)
			continue;
		rec = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
		if (!json_is_object(rec)) {
			if (rec)
				diag(r, lineno, "expected a JSON object");
			else
				diag(r, lineno, "invalid JSON at column %d: %s", jerr.column, jerr.text);
			json_decref(rec);
			r->n_bad++;
			continue;
		}
		eng_error_clear(&err);
		if (request_too_long(r, rec, lineno)) {
			json_decref(rec);
			r->n_bad++;
			continue;
		}
		if (eng_conv_from_json(r->e->chat, rec, lineno, &c, &err) != 0) {
			diag(r, lineno, "%s", err.msg);
			json_decref(rec);
			r->n_bad++;
			continue;
		}
		/* A remote chat endpoint sends the messages themselves. */
		c->conv.record = c->record;
		json_decref(rec);
		/* Generate mode: every record is one independent request, a
		 * conversation its last turn, as SGLang's benchmark sends it. */
		if (!strcmp(r->mode, "generate"))
			eng_conv_keep_last_turn(c);
		set_prompt_bounds(r, c);
		*out = &c->conv;
		return 1;
	}
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

/* The generated text, decoded; NULL when it cannot be. */
static json_t *output_text(struct eng_run *r, const struct eng_request_timing *t)
{
	char *text = NULL, *clean;
	size_t len = 0, clean_len = 0;
	json_t *j;

	if (!t->output || eng_tokenizer_decode(r->e->tok, t->output,
					       (size_t)t->output_len, 0, &text, &len, NULL) != 0)
		return json_null();
	/* Random weights produce any bytes; the record must stay UTF-8. */
	clean = eng_utf8_sanitize(text, len, &clean_len);
	j = clean ? json_stringn(clean, clean_len) : NULL;
	free(clean);
	free(text);
	return j ? j : json_null();
}

/* Writes rec and frees it.  NULL (it could not be built: out of memory, a
 * number that is not finite, text that is not UTF-8) is never skipped in
 * silence: a diagnostic names the record, and it counts as bad. */
static void emit_record(struct eng_run *r, long line, json_t *rec, const char *what,
			const char *id, int turn)
{
	if (!rec) {
		if (turn >= 0)
			diag(r, line, "conversation %s turn %d: the %s record could not be built",
			     id, turn, what);
		else
			diag(r, line, "conversation %s: the %s record could not be built", id, what);
		r->n_bad++;
		return;
	}
	r->io.emit(r->io.ctx, rec);
	json_decref(rec);
}

/* Sets key of *rec to v (taken); when that fails, *rec becomes NULL (and
 * is reported by emit_record).  A NULL *rec stays NULL. */
static void set_field(json_t **rec, const char *key, json_t *v)
{
	if (!*rec) {
		json_decref(v);
	} else if (json_object_set_new(*rec, key, v) != 0) {
		json_decref(*rec);
		*rec = NULL;
	}
}

/* A measured double, or null when it is not finite (JSON has no inf). */
static json_t *real_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/* Writes a turn's record (and frees it); a failed turn is also reported. */
static void emit_turn(struct eng_run *r, const struct eng_conv_rec *cr,
		      const struct eng_request_timing *t, json_t *rec, const char *what)
{
	r->n_requests++;
	r->n_failed += t->error != NULL;
	if (t->recorded_prompt_len >= 0 && t->prompt_len > 0) {
		r->n_recorded++;
		r->n_mismatch += t->prompt_len != t->recorded_prompt_len;
	}
	if (t->error && t->finish != ENG_FINISH_ABORT) {
		diag(r, cr->line, "conversation %s turn %d failed: %s", cr->id, t->turn, t->error);
		r->n_bad++;
	}
	emit_record(r, cr->line, rec, what, cr->id, t->turn);
}

/* Score mode: the log-probs of one turn's recorded reply. */
static json_t *score_record(struct eng_run *r, const struct eng_conv_rec *cr,
			    const struct eng_request_timing *t)
{
	return json_pack("{s:s,s:s,s:s%,s:i,s:i,s:i,s:i,s:o,s:o,s:f,s:b,s:o}",
			 "type", "score", "run", r->run_name, "conversation_id", cr->id, cr->id_len,
			 "turn", t->turn, "prompt_len", t->prompt_len, "n_tokens", t->n_scored,
			 "cached_tokens", t->cached_tokens,
			 "sum_logprob", t->error ? json_null() : real_or_null(t->sum_logprob),
			 "mean_logprob", t->error || t->n_scored == 0 ? json_null()
				 : real_or_null(t->sum_logprob / t->n_scored),
			 "latency", t->latency, "success", t->error == NULL,
			 "error", t->error ? json_string(t->error) : json_null());
}

/* --output-details: the generated ids and text; 0, or -1 out of memory. */
static int add_details(struct eng_run *r, const struct eng_request_timing *t, json_t *rec)
{
	json_t *ids = json_array();

	for (int32_t i = 0; ids && t->output && i < t->output_len; i++)
		if (json_array_append_new(ids, json_integer(t->output[i])) != 0) {
			json_decref(ids);
			ids = NULL;
		}
	if (json_object_set_new(rec, "output_ids", ids) != 0)
		return -1;
	return json_object_set_new(rec, "output_text", output_text(r, t));
}

/* A remote engine's request: the cached tokens as the server counted them
 * (null when it did not), its prompt count, where the output count came
 * from, and the retries; the run's counts of them. */
static void add_remote_fields(struct eng_run *r, const struct eng_request_timing *t, json_t *rec)
{
	const struct eng_remote_usage *u = t->remote;
	struct remote_counts *k = &r->rc;

	if (u->cached_tokens < 0)
		json_object_set_new(rec, "cached_tokens", json_null());
	json_object_set_new(rec, "server_prompt_len", u->server_prompt_tokens >= 0
			    ? json_integer(u->server_prompt_tokens) : json_null());
	json_object_set_new(rec, "usage_source", t->error ? json_null()
			    : json_string(u->from_stream ? "stream" : "usage"));
	json_object_set_new(rec, "retries", json_integer(u->retries));
	k->n_retries += u->retries;
	if (t->error)
		return;
	k->n_from_stream += u->from_stream;
	k->n_no_cache += u->cached_tokens < 0;
	if (u->server_prompt_tokens >= 0) {
		k->n_reported++;
		k->n_mismatch += u->server_prompt_tokens != t->prompt_len;
		k->prompt_tokens += u->server_prompt_tokens;
		k->cached_tokens += u->cached_tokens > 0 ? u->cached_tokens : 0;
	}
}

/* The reply's text as the server streamed it. */
static json_t *remote_text(const struct eng_remote_usage *u)
{
	size_t len = 0;
	char *clean = eng_utf8_sanitize(u->text, u->text_len, &len);
	json_t *j = clean ? json_stringn(clean, len) : NULL;

	free(clean);
	return j ? j : json_null();
}

/* A routed turn: its record names the worker (rec may be NULL), and the
 * run's per-worker tally counts it. */
static void add_route(struct eng_run *r, const struct eng_request_timing *t, json_t *rec)
{
	if (!t->route)
		return;
	if (rec)
		eng_route_record_fields(rec, t->route);
	eng_route_tally_add(&r->tally, t);
}

static void on_request(void *ctx, const struct eng_conv *c, const struct eng_request_timing *t)
{
	struct eng_run *r = ctx;
	const struct eng_conv_rec *cr = c->user;
	json_t *itl, *rec;

	if (r->p.session.score) {
		rec = score_record(r, cr, t);
		add_route(r, t, rec);
		emit_turn(r, cr, t, rec, "score");
		return;
	}
	itl = json_array();
	for (int32_t i = 0; itl && i < t->n_itl; i++)
		if (json_array_append_new(itl, real_or_null(t->itl[i])) != 0) {
			json_decref(itl);
			itl = NULL;
		}
	rec = json_pack("{s:s,s:s,s:s%,s:i,s:f,s:f,s:f,s:o,s:f,s:i,s:i,s:i,s:s,s:b,s:o,s:o}",
			"type", "request", "run", r->run_name, "conversation_id", cr->id, cr->id_len,
			"turn", t->turn + cr->first_turn, "start_time", t->start_time, "ttft", t->ttft,
			"latency", t->latency, "itl", itl, "tpot", t->tpot,
			"prompt_len", t->prompt_len, "output_len", t->output_len,
			"cached_tokens", t->cached_tokens, "finish_reason", finish_name(t->finish),
			"success", t->error == NULL,
			"error", t->error ? json_string(t->error) : json_null(),
			"env_exec_time", t->env_time_s >= 0 ? json_real(t->env_time_s) : json_null());
	if (t->recorded_prompt_len >= 0)
		set_field(&rec, "recorded_prompt_len", json_integer(t->recorded_prompt_len));
	if (rec && t->remote)
		add_remote_fields(r, t, rec);
	if (t->remote && r->p.output_details) {
		set_field(&rec, "output_ids", json_null());
		set_field(&rec, "output_text", remote_text(t->remote));
	} else if (rec && r->p.output_details && add_details(r, t, rec) != 0) {
		json_decref(rec);
		rec = NULL;
	}
	add_route(r, t, rec);
	emit_turn(r, cr, t, rec, "request");
}

static void on_conversation(void *ctx, const struct eng_conv *c, const struct eng_conv_timing *t)
{
	struct eng_run *r = ctx;
	const struct eng_conv_rec *cr = c->user;
	json_t *rec = json_pack("{s:s,s:s,s:s%,s:i,s:b,s:f,s:f,s:f,s:f,s:f,s:I,s:I,s:I}",
				"type", "conversation_result", "run", r->run_name,
				"conversation_id", cr->id, cr->id_len, "turns", t->n_turns,
				"success", t->n_failed == 0, "start_time", t->start_time,
				"end_time", t->end_time, "llm_time", t->llm_time,
				"env_time", t->env_time, "env_wait", t->env_wait,
				"prompt_tokens", (json_int_t)t->prompt_tokens,
				"output_tokens", (json_int_t)t->output_tokens,
				"cached_tokens", (json_int_t)t->cached_tokens);

	r->n_conversations++;
	set_field(&rec, "error", t->error ? json_string(t->error) : json_null());
	set_field(&rec, "skipped_turns", json_integer(t->n_skipped));
	emit_record(r, cr->line, rec, "conversation_result", cr->id, -1);
}

static void release_conv(void *ctx, struct eng_conv *c)
{
	(void)ctx;
	eng_conv_rec_free(c->user);
}

static int warm_next(void *ctx, struct eng_conv **out)
{
	struct eng_run *r = ctx;

	if (r->warm_left == 0)
		return 0;
	r->warm_left--;
	*out = &r->warm_conv;
	return 1;
}

static const struct eng_session_ops run_ops = {
	next_conv, on_request, on_conversation, release_conv, NULL,
};

/* CPU seconds of this process so far, user and system, every thread. */
static double cpu_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* The measured part: from a cold cache unless asked otherwise. */
static int start_measured(struct eng_run *r, struct eng_error *err)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	r->start_unix = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
	if (!r->p.keep_cache)
		eng_runner_flush_cache(r->e->runner);
	eng_runner_get_stats(r->e->runner, &r->st0);
	eng_runner_reset_peak(r->e->runner);
	r->rc.cpu0_s = cpu_seconds();
	return eng_session_start(r->e->runner, &r->p.session, &run_ops, r, &r->sess, err);
}

/* Warmup conversations all share one prompt of distinct tokens; they run
 * at the run's batch size, greedily, with nothing written. */
static int start_warmup(struct eng_run *r, struct eng_error *err)
{
	static const struct eng_session_ops ops = { warm_next, NULL, NULL, NULL, NULL };
	struct eng_session_params sp;

	eng_session_default_params(&sp);
	sp.batch_size = r->p.session.batch_size;
	sp.recorded_output = false;
	for (int32_t i = 0; i < WARMUP_PROMPT + WARMUP_OUTPUT; i++)
		r->warm_ids[i] = i + 1;
	r->warm_turn = (struct eng_turn){ WARMUP_PROMPT, WARMUP_OUTPUT, -1, -1, 0 };
	r->warm_conv = (struct eng_conv){ .ids = r->warm_ids,
					  .n_ids = WARMUP_PROMPT + WARMUP_OUTPUT,
					  .turns = &r->warm_turn, .n_turns = 1 };
	r->warm_left = r->p.warmup_requests;
	return eng_session_start(r->e->runner, &sp, &ops, r, &r->warm, err);
}

int eng_run_start(struct eng_infer *e, const struct eng_run_params *p,
		  const struct eng_run_io *io, struct eng_run **out, struct eng_error *err)
{
	struct eng_run *r = calloc(1, sizeof(*r));
	int rc;

	*out = NULL;
	if (!r)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	r->e = e;
	r->p = *p;
	r->p.session.score = p->mode && !strcmp(p->mode, "score");
	r->bytes_per_token = eng_tokenizer_max_bytes_per_token(e->tok);
	r->io = *io;
	r->run_name = strdup(p->run_name ? p->run_name : "run");
	r->mode = strdup(p->mode ? p->mode : "replay");
	rc = r->run_name && r->mode ? 0 : eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	if (rc == 0)
		rc = p->warmup_requests > 0 ? start_warmup(r, err) : start_measured(r, err);
	if (rc != 0) {
		free(r->run_name);
		free(r->mode);
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

bool eng_run_done(struct eng_run *r)
{
	struct eng_error err;

	if (r->warm) {
		if (!eng_session_done(r->warm))
			return false;
		eng_session_free(r->warm);
		r->warm = NULL;
		if (r->cancelled)
			return true;
		if (start_measured(r, &err) != 0) {
			if (r->io.diag)
				r->io.diag(r->io.ctx, 0, err.msg);
			r->n_bad++;
			return true;
		}
	}
	return !r->sess || eng_session_done(r->sess);
}

bool eng_run_busy(const struct eng_run *r)
{
	return r->warm || (r->sess && eng_session_busy(r->sess));
}

void eng_run_cancel(struct eng_run *r)
{
	r->cancelled = true;
	if (r->warm)
		eng_session_cancel(r->warm);
	if (r->sess)
		eng_session_cancel(r->sess);
}

/* The run's roofline: its summed per-step ceilings against its time in
 * the steps, and the rates they were computed with; null figures when the
 * backend measured none. */
static void roofline_stats(json_t *o, const struct eng_sched_stats *st,
			   const struct eng_sched_stats *st0)
{
	double ceil_s = st->roofline_seconds - st0->roofline_seconds;
	double step_s = st->step_seconds - st0->step_seconds;
	bool have = st->roofline_bandwidth > 0 && st->roofline_gemm_rate > 0;

	json_object_set_new(o, "roofline_time", have ? json_real(ceil_s) : json_null());
	json_object_set_new(o, "roofline_fraction",
			    have && step_s > 0 ? json_real(ceil_s / step_s) : json_null());
	/* the same split between steps with prefill chunks and decode steps */
	ceil_s = st->prefill_roofline_seconds - st0->prefill_roofline_seconds;
	step_s = st->prefill_step_seconds - st0->prefill_step_seconds;
	json_object_set_new(o, "prefill_steps",
			    json_integer(st->n_prefill_steps - st0->n_prefill_steps));
	json_object_set_new(o, "prefill_step_time", json_real(step_s));
	json_object_set_new(o, "prefill_roofline_fraction",
			    have && step_s > 0 ? json_real(ceil_s / step_s) : json_null());
	ceil_s = st->roofline_seconds - st0->roofline_seconds - ceil_s;
	step_s = st->step_seconds - st0->step_seconds - step_s;
	json_object_set_new(o, "decode_step_time", json_real(step_s));
	json_object_set_new(o, "decode_roofline_fraction",
			    have && step_s > 0 ? json_real(ceil_s / step_s) : json_null());
	json_object_set_new(o, "roofline_bandwidth",
			    have ? json_real(st->roofline_bandwidth) : json_null());
	json_object_set_new(o, "roofline_gemm_rate",
			    have ? json_real(st->roofline_gemm_rate) : json_null());
}

/* What the scheduler did during the run.  Counters are engine-wide, so with
 * several clients at once they cover the others' requests too.  step_time
 * against the run's duration gives the host's share of an unshared run
 * without env waits: the time outside the model's forward.  Recomputed
 * prompt tokens are those an unbounded prefix cache would not have
 * prefilled again. */
static json_t *engine_stats(struct eng_run *r)
{
	struct eng_sched_stats st;
	const struct eng_sched_stats *s0 = &r->st0;
	int64_t computed, unbounded, ps;
	json_t *o;
	const struct remote_counts *k = &r->rc;

	/* client_cpu_time: what the client itself cost (parsing, tokenizing,
	 * HTTP, the streams, the records), to read against the requests. */
	if (r->e->remote)
		return json_pack("{s:I,s:I,s:I,s:i,s:i,s:i,s:i,s:i,s:f}",
				 "prompt_tokens", (json_int_t)k->prompt_tokens,
				 "cached_tokens", (json_int_t)k->cached_tokens,
				 "computed_prompt_tokens", (json_int_t)(k->prompt_tokens - k->cached_tokens),
				 "server_prompt_len_reported", (int)k->n_reported,
				 "server_prompt_len_mismatches", (int)k->n_mismatch,
				 "usage_from_stream", (int)k->n_from_stream,
				 "cached_tokens_unreported", (int)k->n_no_cache,
				 "retries", (int)k->n_retries,
				 "client_cpu_time", cpu_seconds() - k->cpu0_s);

	eng_runner_get_stats(r->e->runner, &st);
	computed = st.computed_tokens - s0->computed_tokens;
	unbounded = st.unbounded_tokens - s0->unbounded_tokens;
	ps = st.page_size;
	o = json_pack("{s:I,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
		      "steps", (json_int_t)(st.n_steps - s0->n_steps),
		      "step_time", st.step_seconds - s0->step_seconds,
		      "prompt_tokens", (json_int_t)(st.prompt_tokens - s0->prompt_tokens),
		      "cached_tokens", (json_int_t)(st.cached_tokens - s0->cached_tokens),
		      "computed_prompt_tokens", (json_int_t)computed,
		      "recomputed_prompt_tokens",
		      (json_int_t)(computed > unbounded ? computed - unbounded : 0),
		      "retractions", (json_int_t)(st.n_retractions - s0->n_retractions),
		      "peak_kv_pages", (json_int_t)st.peak_used_pages,
		      "peak_kv_tokens", (json_int_t)st.peak_used_pages * ps,
		      "kv_pool_pages", (json_int_t)st.total_pages,
		      "kv_pool_tokens", (json_int_t)st.total_pages * ps);
	if (o)
		roofline_stats(o, &st, s0);
	return o;
}

static json_t *run_record(struct eng_run *r)
{
	const struct eng_session_params *sp = &r->p.session;
	json_t *rec = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:f,s:f,s:f,s:i,s:i,s:i,s:f,s:o,s:s}",
			 "type", "run", "run", r->run_name, "mode", r->mode,
			 "model", r->e->remote ? eng_remote_model(r->e->remote) : r->e->p.model_dir,
			 "device", r->e->device, "backend", r->e->remote ? "http" : r->e->p.device,
			 "model_load_time", eng_infer_load_time(r->e),
			 "start_time_unix", r->start_unix,
			 "duration", eng_session_elapsed(r->sess),
			 "batch_size", sp->batch_size, "num_conversations", (int)r->n_conversations,
			 "num_requests", (int)r->n_requests, "env_time_scale", sp->env_time_scale,
			 "settings", eng_infer_settings(r->e), "version", PACKAGE_VERSION);

	/* null: not rate-limited (replay, or every request at once) */
	set_field(&rec, "request_rate", isfinite(sp->request_rate)
		  ? json_real(sp->request_rate) : json_null());
	/* A remote engine knows the model's shape only from a config.json
	 * beside its tokenizer. */
	set_field(&rec, "model_config", r->e->model
		  ? eng_config_json(eng_model_config(r->e->model)) : json_null());
	set_field(&rec, "failed_requests", json_integer(r->n_failed));
	set_field(&rec, "recorded_prompt_lens", json_integer(r->n_recorded));
	set_field(&rec, "prompt_len_mismatches", json_integer(r->n_mismatch));
	set_field(&rec, "engine_stats", engine_stats(r));
	if (r->e->router)
		set_field(&rec, "workers", eng_route_tally_json(r->tally));
	return rec;
}

long eng_run_finish(struct eng_run *r)
{
	long bad = r->n_bad;

	if (!r->cancelled && r->sess) {
		json_t *rec = run_record(r);

		if (rec)
			r->io.emit(r->io.ctx, rec);
		else {
			diag(r, 0, "the run record could not be built");
			bad++;
		}
		json_decref(rec);
	}
	eng_session_free(r->warm);
	eng_session_free(r->sess);
	eng_route_tally_free(r->tally);
	free(r->run_name);
	free(r->mode);
	free(r);
	return bad;
}
