/*
 * sched.h: the continuous-batching scheduler.
 *
 * Requests (a prompt of token ids and how many tokens to generate) are
 * submitted at any time; each eng_sched_step() builds one batch that mixes
 * one decode token for every running request with prefill chunks of new or
 * partly prefilled requests, up to chunked_prefill_size prompt tokens, runs
 * the model once through a step function, and hands out the produced tokens
 * through callbacks.  Prompts are matched against the radix prefix cache
 * first, so only the uncached part is computed; a finished request inserts
 * its tokens for the next turn to hit.
 *
 * Memory: the KV pool has a fixed number of pages.  A request is admitted
 * only with room to run to its end: its uncached prompt and its decode
 * (exact when its output length is fixed, estimated SGLang-style with a
 * new-token ratio when a stop token may end it early), on top of what the
 * running requests have reserved.  Room comes from free pages and the
 * cache's unlocked pages.  A conversation between turns (a request with
 * more_turns) keeps its history in the cache as evicted-last, and a
 * request is not admitted at the cost of such histories unless nothing
 * else would run; so when the pool holds every conversation in flight,
 * nothing is computed twice.  Retraction (a running request's pages freed,
 * the request requeued to be recomputed) is the last resort, taken only
 * when an estimate fell short.  A request fails for lack of memory only
 * when it could not fit even alone; that, and a prompt longer than the
 * context, is refused at submission with ENG_E_RANGE.
 *
 * The scheduler knows nothing of the model: the step function does the
 * forward pass and the sampling, on whatever backend.
 */
#ifndef TRAJBENCH_ENG_SCHED_H
#define TRAJBENCH_ENG_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/roofline.h"

struct eng_sched_params {
	int32_t page_size;            /* tokens per KV page */
	int32_t n_pages;              /* pages in the KV pool */
	int32_t chunked_prefill_size; /* prompt tokens per step, all requests together */
	int32_t max_running_requests; /* 0: bounded by memory only */
	int32_t max_context;          /* prompt + output tokens per request */
	enum eng_sched_policy policy;
	bool disable_radix_cache;
	struct eng_roofline roofline; /* per-step ceilings summed into the stats;
				       * rates 0: none */
	double prefill_step_ratio;    /* >= 1: a step with decode rows takes prompt
				       * tokens only while its ceiling stays within
				       * this many times its decode rows' (at least
				       * ENG_PREFILL_STEP_FLOOR tokens a step); 0: by
				       * chunked_prefill_size alone.  Needs the
				       * roofline's rates. */
};

/* The prompt tokens a step with decode rows may always take under
 * prefill_step_ratio, so that prefills go on. */
#define ENG_PREFILL_STEP_FLOOR 256

void eng_sched_default_params(struct eng_sched_params *p);

/* 0 when a request may sample with s; ENG_E_INVALID naming the field
 * otherwise (eng_sampler_check_params; a greedy request, temperature 0,
 * uses neither top_k nor top_p).  eng_sched_submit checks every
 * request with it, so one request's parameters never fail a shared step. */
int eng_sched_check_sampling(const struct eng_sampling *s, struct eng_error *err);

/* One sequence of a step: n_tokens new tokens at positions
 * [start_pos, start_pos + n_tokens); the KV of [0, start_pos) is already in
 * its pages, and the new tokens' KV goes into them too.  page ids cover
 * [0, start_pos + n_tokens). */
/* The log-probabilities of one generated token, from the model's raw
 * logits (before temperature, top-k, top-p and banned tokens). */
#define ENG_TOP_LOGPROBS_MAX 20

struct eng_token_logprobs {
	float logprob;                          /* of the token picked */
	int32_t n_top;                          /* alternatives below */
	int32_t top_ids[ENG_TOP_LOGPROBS_MAX];  /* the most likely first */
	float top_logprobs[ENG_TOP_LOGPROBS_MAX];
};

struct eng_step_seq {
	const int32_t *tokens;    /* (n_tokens) */
	int32_t n_tokens;
	int32_t start_pos;
	const int32_t *pages;     /* (n_pages) block table */
	int32_t n_pages;
	bool want_token;          /* sample a token after the last new one */
	const struct eng_sampling *sampling;
	int32_t n_generated;      /* tokens generated so far: the sampling counter */
	const int32_t *targets;   /* (n_tokens) score requests: the token after each
				   * new one, or NULL */
	float *logprobs;          /* out (n_tokens): log p(targets[i]) after token i;
				   * NULL exactly when targets is NULL */
	const int32_t *banned;    /* (n_banned) tokens the pick may not be (stop
				   * tokens before min_tokens), or NULL */
	int32_t n_banned;
	struct eng_token_logprobs *token_logprobs; /* out with want_token: the
				   * picked token's log-probs and top_logprobs
				   * alternatives, or NULL */
	int32_t top_logprobs;
};

/* Runs the model on the batch and writes, for every sequence with
 * want_token, the sampled next token into next[i] (others: -1).  Returns 0
 * or a negative ENG_E_* with err filled; a failed step fails the requests
 * of that batch, not the scheduler. */
typedef int (*eng_step_fn)(void *ctx, const struct eng_step_seq *seqs, int32_t n_seqs,
			   int32_t *next, struct eng_error *err);

enum eng_finish {
	ENG_FINISH_LENGTH = 0, /* max_new_tokens reached */
	ENG_FINISH_STOP = 1,   /* a stop token was produced */
	ENG_FINISH_ABORT = 2,  /* cancelled */
	ENG_FINISH_ERROR = 3,  /* the step failed */
};

struct eng_request_params {
	const int32_t *prompt;        /* (prompt_len), copied at submission */
	int32_t prompt_len;
	int32_t max_new_tokens;
	bool ignore_eos;              /* EOS does not end the request (with no
				       * stop_ids: exactly max_new_tokens) */
	const int32_t *forced_output; /* (max_new_tokens) or NULL: tokens to emit in
				       * place of the sampled ones (replay of a
				       * recorded reply); the model still runs */
	struct eng_sampling sampling;
	const int32_t *stop_ids;      /* (n_stop_ids) tokens that also end this request,
				       * ignore_eos or not; copied at submission */
	int32_t n_stop_ids;
	int32_t min_tokens;           /* the stop tokens (EOS unless ignore_eos, and
				       * stop_ids) cannot be picked before this many */
	struct eng_token_logprobs *token_logprobs; /* the caller's: each generated
				       * token's log-probs, written before its
				       * on_token; NULL: none computed */
	int32_t top_logprobs;         /* alternatives in it, 0..ENG_TOP_LOGPROBS_MAX */
	bool score;                   /* prefill the prompt and return the log-prob
				       * of every prompt token from score_from on;
				       * generates nothing (max_new_tokens unused).
				       * The prompt before score_from - 1 may come
				       * from the prefix cache (its tokens have no
				       * log-probs); the whole prompt enters the
				       * cache when done */
	int32_t score_from;           /* score: first position whose log-prob is
				       * wanted; 0: all of them, nothing cached */
	uint64_t conversation;        /* 0, or a key naming the conversation this
				       * request is a turn of */
	bool more_turns;              /* the conversation goes on after this turn:
				       * its tokens stay in the cache, evicted
				       * after all others, until a later turn
				       * finishes without more_turns or
				       * eng_sched_end_conversation */
	void *user;                   /* handed back in callbacks */
};

struct eng_route_info;
struct eng_remote_usage;

struct eng_request_result {
	enum eng_finish finish;
	const int32_t *output;        /* (n_output) generated tokens */
	int32_t n_output;
	int32_t prompt_len;
	int32_t cached_tokens;        /* prompt tokens found in the prefix cache */
	int32_t n_retractions;
	const char *error;            /* for ENG_FINISH_ERROR, else NULL */
	const float *logprobs;        /* score: (prompt_len - 1) values, [i] = log p(
				       * prompt[i + 1] | prompt[0..i]), set for
				       * i >= score_from - 1; else NULL */
	const struct eng_route_info *route; /* set by the router (router.h): the
				       * worker that answered; NULL from the
				       * scheduler */
	double queue_time;            /* seconds from submission to the first
				       * admission (to the end, if never admitted) */
	const struct eng_remote_usage *remote; /* set by a remote executor (remote.h);
						* NULL from the scheduler */
};

struct eng_sched_callbacks {
	/* A request produced its index-th token (0-based). */
	void (*on_token)(void *user, int32_t token, int32_t index);
	/* A request is done; result valid during the call only.  After this
	 * the scheduler forgets the request. */
	void (*on_finish)(void *user, const struct eng_request_result *result);
};

struct eng_sched;

int eng_sched_create(const struct eng_sched_params *p, const int32_t *stop_ids, int32_t n_stop,
		     eng_step_fn step, void *step_ctx, const struct eng_sched_callbacks *cb,
		     struct eng_sched **out, struct eng_error *err);
void eng_sched_free(struct eng_sched *s);

/* The most tokens a request may hold, prompt and output together. */
int32_t eng_sched_max_context(const struct eng_sched *s);

/* Queues a request.  Returns a request id >= 0, or ENG_E_RANGE (too long
 * for the context, or more pages than the whole pool), ENG_E_INVALID (no
 * prompt or output, bad sampling parameters), or
 * ENG_E_NOMEM, with err filled. */
int eng_sched_submit(struct eng_sched *s, const struct eng_request_params *p,
		     struct eng_error *err);

/* Cancels a request by id (finishes it with ENG_FINISH_ABORT at the next
 * step).  Unknown ids are ignored: the request may have just finished. */
void eng_sched_cancel(struct eng_sched *s, int id);

/* Finishes a running request with ENG_FINISH_STOP once the token being
 * reported is applied: call it from on_token (a stop string the caller
 * found in the text).  Its tokens go to the prefix cache as on any stop.
 * Unknown ids are ignored. */
void eng_sched_stop(struct eng_sched *s, int id);

/* Runs one batch.  Returns the number of sequences run (0 when there was
 * nothing to do), or a negative ENG_E_* when the step function failed (the
 * batch's requests were finished with ENG_FINISH_ERROR; the scheduler can
 * go on). */
int eng_sched_step(struct eng_sched *s, struct eng_error *err);

/* Drops every cached prefix not in use by a running request nor held by a
 * conversation between turns; returns the pages released.  Runs that
 * compare settings start from a cold cache, and so does the count of what
 * an unbounded cache would hold (unless other requests are in flight). */
size_t eng_sched_flush_cache(struct eng_sched *s);

/* The conversation will submit no more turns (it ended, failed or was
 * cancelled): its history is ordinary cache again.  Unknown keys are
 * ignored. */
void eng_sched_end_conversation(struct eng_sched *s, uint64_t conversation);

/* Starts stats.peak_used_pages over from the pages in use now (a new run). */
void eng_sched_reset_peak(struct eng_sched *s);

/* True while requests are waiting or running. */
bool eng_sched_busy(const struct eng_sched *s);

void eng_sched_get_stats(const struct eng_sched *s, struct eng_sched_stats *st);

#endif
