/*
 * runner.h: turns conversations into timed requests on the scheduler.
 *
 * A session is one run of one client: a stream of conversations, each a
 * token array with turn boundaries, replayed turn by turn.  Turn k+1 of a
 * conversation is submitted only when turn k has finished and its recorded
 * environment time, times env_time_scale, has passed; at most batch_size
 * conversations are in flight per session.  Several sessions share the one
 * scheduler, so they share one continuous batch.  The same machinery runs
 * independent requests (one-turn conversations) with Poisson arrivals for
 * the generate mode.
 *
 * The runner measures: submit time, time of every produced token, and
 * derives TTFT, ITL, TPOT and latency per turn, and start, end, LLM and
 * environment time per conversation.  Times are seconds on the monotonic
 * clock, relative to the session's start.
 *
 * It is single-threaded: eng_runner_poll() is the event loop's body.
 * Input arrives through a callback that may say "nothing yet", so a
 * network client never blocks the batch.
 *
 * What runs the turns is an executor: the scheduler over the local model
 * (eng_runner_create), or anything else that takes the same requests and
 * reports tokens and results through eng_runner_callbacks, such as an
 * OpenAI-compatible server (remote.h; eng_runner_create_exec).  The replay
 * (turn order, environment waits, batch size, arrivals, timing records) is
 * the same for all of them.
 */
#ifndef TRAJBENCH_ENG_RUNNER_H
#define TRAJBENCH_ENG_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/sched.h"

struct eng_route_info;
struct eng_remote_usage;

/* A conversation gives its turns' tokens in one of two ways:
 *  - build_turn (recorded conversations): turn k's prompt is built when the
 *    turn is submitted, from anything (chat.h renders it again from the
 *    messages); nothing ties it to the previous turn's prompt and reply:
 *    the prefix cache reuses what still matches;
 *  - ids (synthetic workloads, tests), when build_turn is NULL: one array
 *    whose [0, prompt_end) is turn k's prompt and [prompt_end, prompt_end
 *    + reply_len) its recorded reply. */
struct eng_turn {
	int32_t prompt_end;          /* ids layout: end of the prompt in ids */
	int32_t reply_len;           /* tokens of the recorded reply (with its end
				      * token), or to generate when none is
				      * recorded */
	int32_t recorded_prompt_len; /* the prompt length the input recorded
				      * (token_usage_prompt); -1: none */
	double env_time_s;           /* recorded environment time after this turn; < 0 unknown */
	int64_t min_prompt_len;      /* a lower bound on the prompt's tokens known
				      * before building it (0: none); a turn whose
				      * bound leaves no room in the context fails
				      * without being built */
};

/* Turn k's tokens as build_turn gives them, valid until the next call for
 * the same conversation. */
struct eng_turn_ids {
	const int32_t *prompt;       /* (prompt_len) */
	int32_t prompt_len;
	const int32_t *reply;        /* (reply_len) the recorded reply, or NULL */
	int32_t reply_len;           /* its tokens, or the tokens to generate when
				      * none is recorded */
};

struct eng_conv {
	int32_t *ids;            /* (n_ids) ids layout: the whole conversation's tokens */
	int32_t n_ids;
	struct eng_turn *turns;  /* (n_turns) */
	int32_t n_turns;
	/* Builds turn k.  0, or a negative ENG_E_* with err filled: the turn
	 * fails (a request record says why) and the conversation ends. */
	int (*build_turn)(struct eng_conv *c, int32_t k, struct eng_turn_ids *out,
			  struct eng_error *err);
	void *user;              /* the caller's handle (id, line, ...) */
	const json_t *record;    /* the input record (messages, tools), for
				  * executors that send text (a chat endpoint);
				  * NULL: none */
};

struct eng_request_timing {
	int32_t turn;
	double start_time;         /* submitted */
	double ttft, latency, tpot;
	const double *itl;         /* (n_itl) */
	int32_t n_itl;
	int32_t prompt_len, output_len, cached_tokens;
	int32_t recorded_prompt_len; /* the turn's, -1: none */
	const int32_t *output;     /* (output_len) tokens produced */
	enum eng_finish finish;
	const char *error;         /* NULL on success */
	double env_time_s;         /* the recorded env time that follows */
	int32_t n_scored;          /* score: tokens of the turn's recorded reply */
	double sum_logprob;        /* score: the sum of their log-probs */
	const struct eng_route_info *route; /* a router's: which worker answered
				    * (router.h); NULL from the scheduler */
	const float *logprobs;     /* score: [i] = log p(seq[i + 1]) of the scored sequence
				    * (the turn's prompt, then its reply), from the
				    * prompt's last token on */
	double queue_time;         /* from submission to the first admission */
	const struct eng_remote_usage *remote; /* a remote executor's counts, else NULL */
};

struct eng_conv_timing {
	int32_t n_turns, n_failed;
	int32_t n_skipped;         /* turns not run: a turn failed before them */
	const char *error;         /* why the conversation ended early, or NULL */
	double start_time, end_time;
	double llm_time;           /* sum of turn latencies */
	double env_time;           /* sum of recorded env times (unscaled) */
	double env_wait;           /* time actually waited for the environment */
	int64_t prompt_tokens, output_tokens, cached_tokens;
};

/* What the runner asks of a session's owner.  next_conv returns 1 with a
 * conversation (owned by the caller until release_conv), 0 at the end of
 * the input, 2 when none is available yet, or a negative error.  on_token
 * (may be NULL) sees every generated token as it comes, with its log-probs
 * when the session asked for them (else NULL); it may call
 * eng_session_stop. */
struct eng_session_ops {
	int (*next_conv)(void *ctx, struct eng_conv **out);
	void (*on_request)(void *ctx, const struct eng_conv *c, const struct eng_request_timing *t);
	void (*on_conversation)(void *ctx, const struct eng_conv *c, const struct eng_conv_timing *t);
	void (*release_conv)(void *ctx, struct eng_conv *c);
	void (*on_token)(void *ctx, const struct eng_conv *c, int32_t token, int32_t index,
			 const struct eng_token_logprobs *lp);
};

struct eng_runner;
struct eng_session;

/*
 * An executor runs the runner's requests.  submit queues one (the turn of
 * conversation c it belongs to is given for executors that send the
 * messages rather than the tokens) and returns an id >= 0 or a negative
 * ENG_E_* with err filled; it then reports through eng_runner_callbacks,
 * with p->user: on_token for every token (or streamed chunk) as it comes,
 * on_finish once.  cancel finishes a request with ENG_FINISH_ABORT no later
 * than the next step.  step does one round of work, waiting for it at
 * most max_wait_s (the scheduler never waits: a step is a batch).
 */
struct eng_executor_ops {
	int (*submit)(void *x, const struct eng_request_params *p, const struct eng_conv *c,
		      int32_t turn, struct eng_error *err);
	void (*cancel)(void *x, int id);
	bool (*busy)(const void *x);
	int (*step)(void *x, double max_wait_s, struct eng_error *err);
	void (*get_stats)(const void *x, struct eng_sched_stats *st);
	void (*flush_cache)(void *x);
	void (*reset_peak)(void *x);
	/* The conversation of key will send no more turns (its cached
	 * history may go). */
	void (*end_conversation)(void *x, uint64_t key);
	void (*free)(void *x);
	/* Prompt + output tokens one request may hold; NULL: no bound known
	 * here (the executor refuses what does not fit). */
	int32_t (*max_context)(const void *x);
	/* Ends a request with the token being reported, as a stop token
	 * would (eng_sched_stop); NULL: cancel does instead. */
	void (*stop)(void *x, int id);
};

/* What an executor calls back, with the request's user pointer. */
extern const struct eng_sched_callbacks eng_runner_callbacks;

/* The runner owns the scheduler it creates from p. */
int eng_runner_create(const struct eng_sched_params *p, const int32_t *stop_ids, int32_t n_stop,
		      eng_step_fn step, void *step_ctx, struct eng_runner **out,
		      struct eng_error *err);

/* A runner over another executor, which it owns from now on (freed with
 * ops->free, also when this fails). */
int eng_runner_create_exec(const struct eng_executor_ops *ops, void *x, struct eng_runner **out,
			   struct eng_error *err);
void eng_runner_free(struct eng_runner *r);

int eng_session_start(struct eng_runner *r, const struct eng_session_params *p,
		      const struct eng_session_ops *ops, void *ctx, struct eng_session **out,
		      struct eng_error *err);

/* True when the session's input ended and all its conversations are done. */
bool eng_session_done(const struct eng_session *s);

/* True while the session has conversations in flight (a turn in the
 * scheduler, or one waiting for its environment delay). */
bool eng_session_busy(const struct eng_session *s);

/* Seconds since the session started. */
double eng_session_elapsed(const struct eng_session *s);

/* Cancels everything the session has in flight (a client went away); its
 * callbacks are not called again.  Call eng_session_free once done. */
void eng_session_cancel(struct eng_session *s);

/* Ends the session's turns in flight as stopped (finish "stop") with the
 * token being reported: call it from on_token.  Their records follow as
 * usual. */
void eng_session_stop(struct eng_session *s);

/* Frees a session.  Only once eng_session_done() is true (a cancelled
 * session is done when its turns have left the scheduler): a turn still in
 * the scheduler would call back into it. */
void eng_session_free(struct eng_session *s);

/* One iteration: take input, submit ready turns, run one scheduler step,
 * or sleep up to max_wait_s for the next environment delay to end.
 * Returns 0, or a negative ENG_E_* from the step (requests failed, the
 * runner goes on). */
int eng_runner_poll(struct eng_runner *r, double max_wait_s, struct eng_error *err);

/* True when no session has work in flight or pending. */
bool eng_runner_idle(const struct eng_runner *r);

/* The executor's counters. */
void eng_runner_get_stats(const struct eng_runner *r, struct eng_sched_stats *st);

/* Prompt + output tokens one request may hold; INT32_MAX when the
 * executor knows no bound (a remote server keeps its own). */
int32_t eng_runner_max_context(const struct eng_runner *r);

/* Empties the prefix cache (pages held by requests in flight stay); a
 * remote executor asks its server to. */
void eng_runner_flush_cache(struct eng_runner *r);

/* Starts the peak of pages in use (stats.peak_used_pages) over: a new run. */
void eng_runner_reset_peak(struct eng_runner *r);

#endif
