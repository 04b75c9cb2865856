/*
 * sched_int.h: what sched.c (the step and its phases, the request queues)
 * and sched_kv.c (the KV memory: reservations, pages, the prefix cache on
 * admission and retirement) share.  Private to those two files.
 */
#ifndef TRAJBENCH_ENG_SCHED_INT_H
#define TRAJBENCH_ENG_SCHED_INT_H

#include "engine/sched.h"
#include "engine/pages.h"
#include "engine/radix.h"
#include "engine/seen.h"

/* The decode estimate of requests a stop token may end, as SGLang's
 * defaults have it: the expected share of max_new_tokens starts at 0.7,
 * decays to 0.7 * 0.14 over 600 steps without retraction, and is raised
 * on a retraction to what the running requests then show; at most
 * CLIP_NEW_TOKENS tokens of one request are counted. */
#define RATIO_INIT 0.7
#define RATIO_MIN (0.7 * 0.14)
#define RATIO_DECAY ((RATIO_INIT - RATIO_MIN) / 600)
#define RETRACT_DECODE_STEPS 20
#define CLIP_NEW_TOKENS 4096

/* Waiting requests looked at behind the head when the head would take
 * another conversation's held history. */
#define SKIP_WINDOW 64

enum req_state { REQ_WAITING, REQ_RUNNING };

struct req {
	int id;
	void *user;
	enum req_state state;
	int32_t *tokens;      /* (cap) prompt + generated */
	int32_t n_tokens, cap;
	int32_t prompt_len, max_new, n_gen;
	int32_t *forced;      /* (max_new) or NULL */
	bool ignore_eos, cancelled, score;
	bool stop_now;        /* eng_sched_stop: ends with the token being applied */
	int32_t *stop_ids;    /* (n_stop_ids) the request's own stop tokens */
	int32_t n_stop_ids, min_tokens;
	int32_t *banned;      /* (n_banned) stop tokens, before min_tokens */
	int32_t n_banned;
	struct eng_token_logprobs *token_logprobs; /* the caller's, or NULL */
	int32_t top_logprobs;
	double submit_t, admit_t; /* monotonic: submitted, first admitted */
	int32_t score_from;   /* score: first position whose log-prob is wanted */
	float *logprobs;      /* score: (prompt_len) */
	struct eng_sampling sampling;
	bool exact;           /* the output length is known: forced or ignore_eos */
	uint64_t conv;        /* conversation key, 0: none */
	bool more_turns;
	uint64_t chain;       /* chain hash of the first chained_pages pages */
	int32_t chained_pages;
	int32_t *pages;       /* (cap_pages) block table */
	int32_t n_pages, cap_pages, prefix_pages;
	struct eng_radix_node *node;
	int32_t computed;
	int32_t cached_tokens; /* from the first admission */
	bool admitted_once;
	int32_t n_retractions;
};

struct eng_sched {
	struct eng_sched_params p;
	int32_t *stop_ids;
	int32_t n_stop;
	eng_step_fn step;
	void *step_ctx;
	struct eng_sched_callbacks cb;
	struct eng_pages *pool;
	struct eng_radix *radix;   /* NULL when disabled */
	struct eng_seen *seen;     /* pages ever computed, by chain hash */
	double new_token_ratio;
	struct req **waiting;      /* (n_waiting) in queue order */
	struct req **running;      /* (n_running) in admission order */
	int32_t n_waiting, n_running, cap_reqs;
	int next_id;
	struct eng_sched_stats st;
	/* per-step scratch, (cap_reqs) each */
	struct eng_step_seq *seqs;
	struct req **seq_req;
	int32_t *next;
	struct eng_roofline_seq *rl_seqs;
	double pf_flops_left;         /* prefill_step_ratio: FLOPs the step's prompt
				       * chunks may still take; < 0: no limit */
	int32_t pf_floor_left;        /* tokens the step may take whatever the FLOPs */
	int32_t *spare;            /* (cap_spare) page ids, cache_prefill's */
	int32_t cap_spare;
};

enum fit {
	FIT_NONE,  /* not even with every evictable page */
	FIT_HELD,  /* only by evicting held histories of other conversations */
	FIT,       /* with free pages and unheld cache */
};

/* sched_kv.c.  Pages of n tokens; the tokens r must have KV for before
 * it decodes (the whole prompt fresh, all but the last token after a
 * retraction). */
int32_t eng_sched_pages_for(const struct eng_sched *s, int32_t n_tokens);
int32_t eng_sched_prefill_target(const struct req *r);

/* Gives back r's own pages and its lock on the tree (r is then as if
 * never admitted). */
void eng_sched_release_memory(struct eng_sched *s, struct req *r);

/* Takes pages so that r covers its first n_tokens tokens, evicting cache
 * as needed; never retracts.  0, or ENG_E_RANGE (nothing taken). */
int eng_sched_take_pages(struct eng_sched *s, struct req *r, int32_t n_tokens);

/* The longest cached prefix r may use (eng_radix_match into r->pages). */
size_t eng_sched_match_prefix(struct eng_sched *s, struct req *r, struct eng_radix_node **node);

/* Seen-page accounting: chain_pages marks r's completed pages seen;
 * unbounded_match is what an unbounded cache would hold of r's prompt. */
void eng_sched_chain_pages(struct eng_sched *s, struct req *r);
int32_t eng_sched_unbounded_match(const struct eng_sched *s, const struct req *r);

/* The prefix cache as a request goes: its prefill's pages after each
 * chunk, its whole tokens when it finishes (held when more turns come). */
void eng_sched_cache_prefill(struct eng_sched *s, struct req *r);
void eng_sched_retire(struct eng_sched *s, struct req *r);

/* Reservations: the pages r still needs to finish, their sum over the
 * running requests, the pages to be had (held histories only when
 * with_held), and the new-token ratio raised after a retraction. */
int32_t eng_sched_pages_to_finish(const struct eng_sched *s, const struct req *r);
int64_t eng_sched_reserved_pages(const struct eng_sched *s);
size_t eng_sched_room(const struct eng_sched *s, bool with_held);
void eng_sched_raise_ratio(struct eng_sched *s);

/* Locks r's cached prefix into its block table and says whether r can
 * run to its end beside reserved pages of the running requests.  Undo
 * with eng_sched_release_memory when r is not admitted. */
enum fit eng_sched_try_fit(struct eng_sched *s, struct req *r, int64_t reserved);

#endif
