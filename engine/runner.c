/*
 * runner.c: sessions of conversations over one executor (see runner.h).
 *
 * Each session keeps an array of slots, one per conversation in flight.  A
 * slot is idle (waiting for its environment delay to end) or has one turn
 * in the executor.  Per-token times are written by the executor's
 * on_token callback into the slot's buffer; on_finish turns them into the
 * turn's timing record and schedules the next turn.
 *
 * Each conversation has a key in the executor, and every turn but its
 * last says more turns follow, so its history stays cached (evicted last)
 * across the environment wait; dropping the slot ends the key, whatever
 * way the conversation ended.
 *
 * The executor is the scheduler (the wrappers below) or another one given
 * to eng_runner_create_exec; the runner sees only eng_executor_ops.
 */
#include "engine/runner.h"
#include "engine/rng.h"
#include "engine/clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slot {
	struct eng_session *sess;
	struct eng_conv *conv;
	uint64_t key;             /* the conversation's key in the scheduler */
	int32_t turn;
	bool in_flight;
	int req_id;
	double ready_at;          /* when the next turn may be submitted */
	double submit_t;
	double *tok_t;            /* (cap_tok) time of each produced token */
	int32_t cap_tok;
	int32_t n_timed;          /* tokens timed in tok_t: a remote executor times
				   * streamed chunks, which may be fewer than the
				   * tokens its server counts */
	int32_t prompt_len;       /* of the turn in flight */
	int32_t n_scored;         /* score: recorded reply tokens of that turn */
	int32_t *seq;             /* (cap_seq) score: prompt and reply together */
	int32_t cap_seq;
	char error[256];          /* why the conversation ended early */
	struct eng_token_logprobs lp; /* the latest token's, when asked for */
	struct eng_conv_timing ct;
};

struct eng_session {
	struct eng_runner *runner;
	struct eng_session_params p;
	struct eng_session_ops ops;
	void *ctx;
	struct slot **slots;      /* (n_slots) conversations in flight */
	int32_t n_slots, cap_slots;
	int32_t n_in_flight;      /* turns inside the executor */
	bool input_done, cancelled;
	double t0;                /* monotonic start */
	double next_arrival;
	uint64_t rng;
	struct eng_session *next;
};

struct eng_runner {
	const struct eng_executor_ops *ops;
	void *x;                  /* the executor; NULL once freed */
	struct eng_session *sessions;
	uint64_t next_key;        /* conversation keys, unique runner-wide */
	double *itl;              /* (cap_itl) scratch for timing records */
	int32_t cap_itl;
};

void eng_session_default_params(struct eng_session_params *p)
{
	memset(p, 0, sizeof(*p));
	p->batch_size = 1;
	p->request_rate = INFINITY;
	p->recorded_output = true;
	p->ignore_eos = true;
	p->sampling.top_p = 1.0f;
}

static void on_token(void *user, int32_t tok, int32_t index)
{
	struct slot *sl = user;
	struct eng_session *s = sl->sess;

	if (index < sl->cap_tok) {
		sl->tok_t[index] = eng_mono_s();
		if (index >= sl->n_timed)
			sl->n_timed = index + 1;
	}
	if (s->ops.on_token && !s->cancelled)
		s->ops.on_token(s->ctx, sl->conv, tok, index, s->p.logprobs ? &sl->lp : NULL);
}

static void on_finish(void *user, const struct eng_request_result *res);

const struct eng_sched_callbacks eng_runner_callbacks = { on_token, on_finish };

/* ------------------------------------------------ the scheduler as executor */

static int sched_submit(void *x, const struct eng_request_params *p, const struct eng_conv *c,
			int32_t turn, struct eng_error *err)
{
	(void)c;
	(void)turn;
	return eng_sched_submit(x, p, err);
}

static void sched_cancel(void *x, int id) { eng_sched_cancel(x, id); }
static bool sched_busy(const void *x) { return eng_sched_busy(x); }
static void sched_stats(const void *x, struct eng_sched_stats *st) { eng_sched_get_stats(x, st); }
static void sched_flush(void *x) { eng_sched_flush_cache(x); }
static void sched_reset_peak(void *x) { eng_sched_reset_peak(x); }
static void sched_end(void *x, uint64_t key) { eng_sched_end_conversation(x, key); }
static void sched_free(void *x) { eng_sched_free(x); }
static int32_t sched_max_context(const void *x) { return eng_sched_max_context(x); }
static void sched_stop(void *x, int id) { eng_sched_stop(x, id); }

/* One batch; a step is never a wait. */
static int sched_step(void *x, double max_wait_s, struct eng_error *err)
{
	(void)max_wait_s;
	return eng_sched_step(x, err);
}

static const struct eng_executor_ops sched_ops = {
	sched_submit, sched_cancel, sched_busy, sched_step, sched_stats, sched_flush,
	sched_reset_peak, sched_end, sched_free, sched_max_context, sched_stop,
};

int eng_runner_create(const struct eng_sched_params *p, const int32_t *stop_ids, int32_t n_stop,
		      eng_step_fn step, void *step_ctx, struct eng_runner **out,
		      struct eng_error *err)
{
	struct eng_sched *sched;
	int rc = eng_sched_create(p, stop_ids, n_stop, step, step_ctx, &eng_runner_callbacks,
				  &sched, err);

	*out = NULL;
	return rc != 0 ? rc : eng_runner_create_exec(&sched_ops, sched, out, err);
}

int eng_runner_create_exec(const struct eng_executor_ops *ops, void *x, struct eng_runner **out,
			   struct eng_error *err)
{
	struct eng_runner *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r) {
		ops->free(x);
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "cannot allocate the runner");
	}
	r->ops = ops;
	r->x = x;
	*out = r;
	return 0;
}

void eng_runner_free(struct eng_runner *r)
{
	if (!r)
		return;
	r->ops->free(r->x); /* before the sessions: no callback after this */
	r->x = NULL;
	while (r->sessions)
		eng_session_free(r->sessions);
	free(r->itl);
	free(r);
}

void eng_runner_get_stats(const struct eng_runner *r, struct eng_sched_stats *st)
{
	r->ops->get_stats(r->x, st);
}

int32_t eng_runner_max_context(const struct eng_runner *r)
{
	return r->ops->max_context ? r->ops->max_context(r->x) : INT32_MAX;
}

void eng_runner_flush_cache(struct eng_runner *r)
{
	r->ops->flush_cache(r->x);
}

void eng_runner_reset_peak(struct eng_runner *r)
{
	r->ops->reset_peak(r->x);
}

int eng_session_start(struct eng_runner *r, const struct eng_session_params *p,
		      const struct eng_session_ops *ops, void *ctx, struct eng_session **out,
		      struct eng_error *err)
{
	struct eng_session *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "cannot allocate a session");
	if (p->batch_size < 0 || !(p->env_time_scale >= 0 &&
				   p->env_time_scale <= ENG_MAX_ENV_TIME_SCALE) ||
	    !(p->request_rate > 0)) {
		free(s);
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "batch size, env time scale (at most %g) and request rate "
				     "must be positive", ENG_MAX_ENV_TIME_SCALE);
	}
	if (eng_sched_check_sampling(&p->sampling, err) != 0) {
		free(s);
		return ENG_E_INVALID;
	}
	s->runner = r;
	s->p = *p;
	s->ops = *ops;
	s->ctx = ctx;
	s->t0 = eng_mono_s();
	s->rng = p->seed ^ 0x9e3779b97f4a7c15ull;
	s->next = r->sessions;
	r->sessions = s;
	*out = s;
	return 0;
}

bool eng_session_busy(const struct eng_session *s)
{
	return s->n_slots > 0 || s->n_in_flight > 0;
}

double eng_session_elapsed(const struct eng_session *s)
{
	return eng_mono_s() - s->t0;
}

bool eng_session_done(const struct eng_session *s)
{
	if (s->cancelled)
		return s->n_in_flight == 0;
	return s->input_done && s->n_slots == 0;
}

static void slot_free(struct slot *sl)
{
	if (!sl)
		return;
	free(sl->tok_t);
	free(sl->seq);
	free(sl);
}

static void drop_slot(struct eng_session *s, int32_t i)
{
	struct slot *sl = s->slots[i];

	if (s->runner->x)
		s->runner->ops->end_conversation(s->runner->x, sl->key);
	if (s->ops.release_conv)
		s->ops.release_conv(s->ctx, sl->conv);
	slot_free(sl);
	s->slots[i] = s->slots[--s->n_slots];
}

void eng_session_cancel(struct eng_session *s)
{
	s->cancelled = true;
	for (int32_t i = 0; i < s->n_slots; i++)
		if (s->slots[i]->in_flight)
			s->runner->ops->cancel(s->runner->x, s->slots[i]->req_id);
}

void eng_session_stop(struct eng_session *s)
{
	void (*stop)(void *, int) = s->runner->ops->stop ? s->runner->ops->stop
							: s->runner->ops->cancel;

	for (int32_t i = 0; i < s->n_slots; i++)
		if (s->slots[i]->in_flight)
			stop(s->runner->x, s->slots[i]->req_id);
}

void eng_session_free(struct eng_session *s)
{
	struct eng_session **pp;

	if (!s)
		return;
	for (pp = &s->runner->sessions; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	while (s->n_slots > 0)
		drop_slot(s, s->n_slots - 1);
	free(s->slots);
	free(s);
}

/* An exponential gap of the given rate: Poisson arrivals. */
static double exp_sample(uint64_t *state, double rate)
{
	double u = eng_unit_double(eng_splitmix64(state)) + 0x1.0p-54; /* (0, 1) */

	return -log(u) / rate;
}

/* The current turn's tokens, from build_turn or the ids layout. */
static int turn_ids(struct slot *sl, struct eng_turn_ids *ti, struct eng_error *err)
{
	struct eng_conv *c = sl->conv;
	const struct eng_turn *t = &c->turns[sl->turn];

	if (c->build_turn)
		return c->build_turn(c, sl->turn, ti, err);
	ti->prompt = c->ids;
	ti->prompt_len = t->prompt_end;
	ti->reply_len = t->reply_len;
	ti->reply = t->prompt_end + t->reply_len <= c->n_ids ? c->ids + t->prompt_end : NULL;
	return 0;
}

/* Score: the prompt and the recorded reply as one sequence, whose
 * log-probs past the prompt are the reply's. */
static int score_params(struct slot *sl, const struct eng_turn_ids *ti,
			struct eng_request_params *rp, struct eng_error *err)
{
	int32_t n = ti->prompt_len + (ti->reply ? ti->reply_len : 0);

	sl->n_scored = ti->reply ? ti->reply_len : 0;
	rp->score = true;
	rp->score_from = ti->prompt_len;
	rp->prompt_len = n;
	if (ti->reply == ti->prompt + ti->prompt_len || !ti->reply)
		return 0; /* already contiguous */
	if (n > sl->cap_seq) {
		int32_t *p = realloc(sl->seq, sizeof(int32_t) * (size_t)n);

		if (!p)
			return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "cannot allocate the sequence");
		sl->seq = p;
		sl->cap_seq = n;
	}
	memcpy(sl->seq, ti->prompt, sizeof(int32_t) * (size_t)ti->prompt_len);
	memcpy(sl->seq + ti->prompt_len, ti->reply, sizeof(int32_t) * (size_t)ti->reply_len);
	rp->prompt = sl->seq;
	return 0;
}

/* Room for the token times of n output tokens. */
static int reserve_times(struct slot *sl, int32_t n, struct eng_error *err)
{
	double *p;

	if (n <= sl->cap_tok)
		return 0;
	if (!(p = realloc(sl->tok_t, sizeof(double) * (size_t)n)))
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "cannot allocate token times");
	sl->tok_t = p;
	sl->cap_tok = n;
	return 0;
}

/* The request of the slot's current turn. */
static int turn_request(struct eng_session *s, struct slot *sl, struct eng_request_params *rp,
			struct eng_error *err)
{
	struct eng_turn_ids ti = {0};
	int64_t min_len = sl->conv->turns[sl->turn].min_prompt_len;
	int32_t ctx = eng_runner_max_context(s->runner);
	int rc;

	if (min_len >= ctx)
		return eng_error_set(err, ENG_E_RANGE, NULL, 0,
				     "prompt of at least %lld tokens (from its length in bytes) "
				     "exceeds the context of %d; not tokenized", (long long)min_len, ctx);
	rc = turn_ids(sl, &ti, err);
	if (rc != 0)
		return rc;
	sl->prompt_len = ti.prompt_len;
	rp->prompt = ti.prompt;
	rp->prompt_len = ti.prompt_len;
	rp->max_new_tokens = s->p.output_len > 0 ? s->p.output_len
			     : ti.reply_len > 0 ? ti.reply_len : 1;
	rp->ignore_eos = s->p.ignore_eos;
	if (s->p.output_len == 0 && s->p.recorded_output && ti.reply && ti.reply_len > 0)
		rp->forced_output = ti.reply;
	rp->sampling = s->p.sampling;
	rp->sampling.seed ^= (uint64_t)sl->turn * 0x100000001b3ull;
	rp->stop_ids = s->p.stop_ids;
	rp->n_stop_ids = s->p.n_stop_ids;
	rp->min_tokens = s->p.min_tokens;
	rp->token_logprobs = s->p.logprobs ? &sl->lp : NULL;
	rp->top_logprobs = s->p.logprobs ? s->p.top_logprobs : 0;
	rp->conversation = sl->key;
	rp->more_turns = sl->turn + 1 < sl->conv->n_turns;
	rp->user = sl;
	if (s->p.score)
		return score_params(sl, &ti, rp, err);
	return reserve_times(sl, rp->max_new_tokens, err);
}

/* Submits the slot's current turn; a turn that cannot be built or that the
 * scheduler refuses (too long for the context or the pool) is reported as
 * a failed request at once. */
static void submit_turn(struct eng_session *s, struct slot *sl, double now)
{
	struct eng_request_params rp = {0};
	struct eng_error err;
	int id;

	eng_error_clear(&err);
	sl->prompt_len = 0;
	sl->n_scored = 0;
	sl->submit_t = now;
	sl->n_timed = 0;
	sl->in_flight = true;
	s->n_in_flight++;
	id = turn_request(s, sl, &rp, &err);
	if (id == 0)
		id = s->runner->ops->submit(s->runner->x, &rp, sl->conv, sl->turn, &err);
	if (id >= 0) {
		sl->req_id = id;
		return;
	}
	struct eng_request_result res = {
		.finish = ENG_FINISH_ERROR, .prompt_len = rp.prompt_len, .error = err.msg,
	};
	on_finish(sl, &res);
}

/* What every turn adds to its conversation's totals. */
static void account(struct slot *sl, const struct eng_request_timing *t)
{
	sl->ct.n_turns++;
	sl->ct.n_failed += t->error != NULL;
	sl->ct.llm_time += t->latency;
	sl->ct.prompt_tokens += t->prompt_len;
	sl->ct.output_tokens += t->output_len;
	sl->ct.cached_tokens += t->cached_tokens;
	if (t->env_time_s > 0)
		sl->ct.env_time += t->env_time_s;
}

/* The fields every turn's record has. */
static void turn_timing(struct slot *sl, const struct eng_request_result *res, double now,
			struct eng_request_timing *t)
{
	const struct eng_turn *tk = &sl->conv->turns[sl->turn];

	memset(t, 0, sizeof(*t));
	t->turn = sl->turn;
	t->start_time = sl->submit_t - sl->sess->t0;
	t->latency = now - sl->submit_t;
	t->prompt_len = sl->prompt_len;
	t->recorded_prompt_len = tk->recorded_prompt_len;
	t->cached_tokens = res->cached_tokens;
	t->queue_time = res->queue_time;
	t->finish = res->finish;
	t->env_time_s = tk->env_time_s;
	t->route = res->route;
	t->remote = res->remote;
}

/* Builds the timing record of a finished turn and reports it. */
static void report_turn(struct slot *sl, const struct eng_request_result *res, double now)
{
	struct eng_session *s = sl->sess;
	struct eng_runner *r = s->runner;
	struct eng_request_timing t;
	int32_t n = res->n_output < sl->n_timed ? res->n_output : sl->n_timed;

	if (n > r->cap_itl) {
		double *p = realloc(r->itl, sizeof(double) * (size_t)n);

		if (p) {
			r->itl = p;
			r->cap_itl = n;
		} else {
			n = r->cap_itl;
		}
	}
	turn_timing(sl, res, now, &t);
	t.ttft = n > 0 ? sl->tok_t[0] - sl->submit_t : 0;
	for (int32_t i = 1; i < n; i++)
		r->itl[i - 1] = sl->tok_t[i] - sl->tok_t[i - 1];
	t.itl = r->itl;
	t.n_itl = n > 1 ? n - 1 : 0;
	t.tpot = res->n_output > 1 ? (t.latency - t.ttft) / (res->n_output - 1) : 0;
	t.output_len = res->n_output;
	t.output = res->output;
	t.error = res->finish == ENG_FINISH_ERROR || res->finish == ENG_FINISH_ABORT
		  ? (res->error ? res->error : "cancelled") : NULL;
	if (s->ops.on_request)
		s->ops.on_request(s->ctx, sl->conv, &t);
	account(sl, &t);
}

/* Score: log-prob i is that of token i + 1, so a reply at [b, e) of the
 * sequence sums log-probs [b - 1, e - 1). */
static void report_score(struct slot *sl, const struct eng_request_result *res, double now)
{
	struct eng_session *s = sl->sess;
	struct eng_request_timing t;
	int32_t b = sl->prompt_len;

	turn_timing(sl, res, now, &t);
	t.ttft = t.latency;
	t.logprobs = res->logprobs;
	t.error = res->finish == ENG_FINISH_LENGTH ? NULL : res->error ? res->error : "cancelled";
	t.n_scored = sl->n_scored;
	for (int32_t p = b; !t.error && res->logprobs && p < b + t.n_scored; p++)
		t.sum_logprob += res->logprobs[p - 1];
	if (s->ops.on_request)
		s->ops.on_request(s->ctx, sl->conv, &t);
	account(sl, &t);
}

static void on_finish(void *user, const struct eng_request_result *res)
{
	struct slot *sl = user;
	struct eng_session *s = sl->sess;
	double now = eng_mono_s(), wait;

	sl->in_flight = false;
	s->n_in_flight--;
	if (s->cancelled)
		return;
	if (s->p.score)
		report_score(sl, res, now);
	else
		report_turn(sl, res, now);
	if (res->finish == ENG_FINISH_ERROR || (s->p.score && res->finish != ENG_FINISH_LENGTH)) {
		/* A failed turn ends its conversation: the next turn's prompt
		 * would hold a reply that was never produced. */
		snprintf(sl->error, sizeof(sl->error), "turn %d failed: %s", sl->turn,
			 res->error ? res->error : "cancelled");
		sl->ct.error = sl->error;
		sl->ct.n_skipped = sl->conv->n_turns - sl->turn - 1;
		sl->turn = sl->conv->n_turns;
		sl->ready_at = now;
		return;
	}
	wait = s->p.score ? 0 : sl->conv->turns[sl->turn].env_time_s * s->p.env_time_scale;
	sl->turn++;
	if (sl->turn < sl->conv->n_turns && wait > 0) {
		sl->ready_at = now + wait;
		sl->ct.env_wait += wait;
	} else {
		sl->ready_at = now;
	}
}

/* Takes new conversations while the session has room and input. */
static int fill_slots(struct eng_session *s, double now)
{
	while (!s->input_done && !s->cancelled &&
	       (s->p.batch_size == 0 || s->n_slots < s->p.batch_size) && now >= s->next_arrival) {
		struct eng_conv *c;
		struct slot *sl;
		int rc = s->ops.next_conv(s->ctx, &c);

		if (rc == 0 || rc < 0) {
			s->input_done = true;
			return rc;
		}
		if (rc == 2)
			return 0;
		if (s->n_slots == s->cap_slots) {
			int32_t cap = s->cap_slots ? 2 * s->cap_slots : 16;
			void *p = realloc(s->slots, sizeof(*s->slots) * (size_t)cap);

			if (!p)
				return ENG_E_NOMEM;
			s->slots = p;
			s->cap_slots = cap;
		}
		sl = calloc(1, sizeof(*sl));
		if (!sl)
			return ENG_E_NOMEM;
		sl->sess = s;
		sl->conv = c;
		sl->key = ++s->runner->next_key;
		sl->ready_at = now;
		sl->ct.start_time = now - s->t0;
		s->slots[s->n_slots++] = sl;
		if (isfinite(s->p.request_rate))
			s->next_arrival = (s->next_arrival > 0 ? s->next_arrival : now) +
					  exp_sample(&s->rng, s->p.request_rate);
	}
	return 0;
}

/* Submits ready turns, retires finished conversations; returns the
 * earliest future ready time (or INFINITY). */
static double advance(struct eng_session *s, double now)
{
	double soonest = INFINITY;

	for (int32_t i = s->n_slots - 1; i >= 0; i--) {
		struct slot *sl = s->slots[i];

		if (sl->in_flight || s->cancelled)
			continue;
		if (sl->turn >= sl->conv->n_turns) {
			sl->ct.end_time = now - s->t0;
			if (s->ops.on_conversation)
				s->ops.on_conversation(s->ctx, sl->conv, &sl->ct);
			drop_slot(s, i);
			continue;
		}
		if (sl->ready_at <= now)
			submit_turn(s, sl, now);
		else if (sl->ready_at < soonest)
			soonest = sl->ready_at;
	}
	return soonest;
}

int eng_runner_poll(struct eng_runner *r, double max_wait_s, struct eng_error *err)
{
	double now = eng_mono_s(), soonest = INFINITY, wait;

	for (struct eng_session *s = r->sessions; s; s = s->next) {
		double t;

		fill_slots(s, now);
		if (!s->input_done && isfinite(s->p.request_rate) && s->next_arrival < soonest)
			soonest = s->next_arrival;
		t = advance(s, now);
		if (t < soonest)
			soonest = t;
	}
	wait = soonest - now < max_wait_s ? soonest - now : max_wait_s;
	if (r->ops->busy(r->x)) {
		int rc = r->ops->step(r->x, wait > 0 ? wait : 0, err);

		return rc < 0 ? rc : 0;
	}
	if (isfinite(soonest) && soonest > now) {
		struct timespec ts = { (time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9) };

		nanosleep(&ts, NULL);
	}
	return 0;
}

bool eng_runner_idle(const struct eng_runner *r)
{
	if (r->ops->busy(r->x))
		return false;
	for (const struct eng_session *s = r->sessions; s; s = s->next)
		if (!eng_session_done(s))
			return false;
	return true;
}
