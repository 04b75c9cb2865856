/*
 * sched.c: continuous batching over a paged KV pool and the radix cache
 * (see sched.h for the contract).
 *
 * A request's block table is its page ids in position order: the first
 * prefix_pages belong to the radix tree (locked while the request runs),
 * the rest to the request.  `computed` counts the tokens whose KV is in
 * those pages; tokens[] holds the prompt followed by the generated tokens,
 * the last of which has no KV yet while the request decodes.
 *
 * Order inside a step: decode tokens first (latency of running requests
 * matters most), then prefill chunks of requests already admitted, then
 * new admissions while the chunk budget, max_running_requests and memory
 * allow.  The step is all-or-nothing for page allocation: pages are taken
 * before the model runs, so a step never fails half way for memory.
 *
 * Invariants:
 * - Reservation: the pages every running request still needs to finish
 *   (pages_to_finish: its whole prefill target and its remaining decode,
 *   less the pages it holds) sum to no more than the free pages plus the
 *   cache's evictable ones.  Admission keeps it; so a running request
 *   whose output length is fixed is never retracted.  Only an estimate
 *   (the new-token ratio of a request a stop token may end) can break it,
 *   and then plan_decode evicts everything it may and retracts.
 * - A conversation between turns holds its history in the tree (radix.h:
 *   evicted after every unheld leaf).  Admission counts held pages as room
 *   only when nothing is running and nothing else was planned: a request
 *   that would take another conversation's history lets one whose own
 *   history is cached go first (up to SKIP_WINDOW places behind it).
 * - seen has the chain hash of every page whose KV was ever completed
 *   (since the last flush), so a request's first admission can say what
 *   an unbounded cache would have held for it (stats.unbounded_tokens).
 */
#include "engine/sched.h"
#include "engine/pages.h"
#include "engine/radix.h"
#include "engine/seen.h"
#include "engine/clock.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
	int32_t *spare;            /* (cap_spare) page ids, cache_prefill's */
	int32_t cap_spare;
};

void eng_sched_default_params(struct eng_sched_params *p)
{
	p->page_size = 16;
	p->n_pages = 4096;
	p->chunked_prefill_size = 8192;
	p->max_running_requests = 0;
	p->max_context = 32768;
	p->policy = ENG_SCHED_POLICY_FCFS;
	p->disable_radix_cache = false;
	memset(&p->roofline, 0, sizeof(p->roofline));
}

static int32_t pages_for(const struct eng_sched *s, int32_t n_tokens)
{
	return (n_tokens + s->p.page_size - 1) / s->p.page_size;
}

int eng_sched_create(const struct eng_sched_params *p, const int32_t *stop_ids, int32_t n_stop,
		     eng_step_fn step, void *step_ctx, const struct eng_sched_callbacks *cb,
		     struct eng_sched **out, struct eng_error *err)
{
	struct eng_sched *s;
	int rc;

	*out = NULL;
	if (p->page_size <= 0 || p->n_pages <= 0 || p->chunked_prefill_size <= 0 ||
	    p->max_context <= 0 || p->max_running_requests < 0)
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "scheduler settings must be positive");
	s = calloc(1, sizeof(*s));
	if (!s)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "cannot allocate the scheduler");
	s->p = *p;
	s->step = step;
	s->step_ctx = step_ctx;
	s->cb = *cb;
	s->stop_ids = malloc(sizeof(int32_t) * (size_t)(n_stop > 0 ? n_stop : 1));
	if (!s->stop_ids) {
		free(s);
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "cannot allocate the scheduler");
	}
	if (n_stop > 0)
		memcpy(s->stop_ids, stop_ids, sizeof(int32_t) * (size_t)n_stop);
	s->n_stop = n_stop;
	s->new_token_ratio = RATIO_INIT;
	s->st.total_pages = (size_t)p->n_pages;
	s->seen = eng_seen_create();
	rc = s->seen ? eng_pages_create(p->n_pages, &s->pool, err)
		     : eng_error_set(err, ENG_E_NOMEM, NULL, 0, "cannot allocate the scheduler");
	if (rc == 0 && !p->disable_radix_cache)
		rc = eng_radix_create(p->page_size, s->pool, &s->radix, err);
	if (rc != 0) {
		eng_sched_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

static void req_free(struct req *r)
{
	if (!r)
		return;
	free(r->tokens);
	free(r->forced);
	free(r->pages);
	free(r->logprobs);
	free(r);
}

/* Gives back the request's own pages and its lock on the tree. */
static void req_release_memory(struct eng_sched *s, struct req *r)
{
	eng_pages_release(s->pool, (size_t)(r->n_pages - r->prefix_pages),
			  r->pages + r->prefix_pages);
	if (s->radix && r->node)
		eng_radix_unlock(s->radix, r->node);
	r->node = NULL;
	r->n_pages = 0;
	r->prefix_pages = 0;
	r->computed = 0;
	r->chain = ENG_SEEN_ROOT;
	r->chained_pages = 0;
}

void eng_sched_free(struct eng_sched *s)
{
	if (!s)
		return;
	for (int32_t i = 0; i < s->n_running; i++) {
		req_release_memory(s, s->running[i]);
		req_free(s->running[i]);
	}
	for (int32_t i = 0; i < s->n_waiting; i++)
		req_free(s->waiting[i]);
	eng_radix_free(s->radix);
	eng_pages_free(s->pool);
	eng_seen_free(s->seen);
	free(s->waiting);
	free(s->running);
	free(s->seqs);
	free(s->seq_req);
	free(s->next);
	free(s->rl_seqs);
	free(s->spare);
	free(s->stop_ids);
	free(s);
}

/* Makes room for one more request in every per-request array. */
static int grow_reqs(struct eng_sched *s)
{
	int32_t cap = s->cap_reqs ? 2 * s->cap_reqs : 64;
	void *w = realloc(s->waiting, sizeof(*s->waiting) * (size_t)cap);
	void *r = w ? realloc(s->running, sizeof(*s->running) * (size_t)cap) : NULL;
	void *q = r ? realloc(s->seqs, sizeof(*s->seqs) * (size_t)cap) : NULL;
	void *sr = q ? realloc(s->seq_req, sizeof(*s->seq_req) * (size_t)cap) : NULL;
	void *n = sr ? realloc(s->next, sizeof(*s->next) * (size_t)cap) : NULL;
	void *rl = n ? realloc(s->rl_seqs, sizeof(*s->rl_seqs) * (size_t)cap) : NULL;

	if (w)
		s->waiting = w;
	if (r)
		s->running = r;
	if (q)
		s->seqs = q;
	if (sr)
		s->seq_req = sr;
	if (n)
		s->next = n;
	if (!rl)
		return -1;
	s->rl_seqs = rl;
	s->cap_reqs = cap;
	return 0;
}

static int check_request(struct eng_sched *s, const struct eng_request_params *p,
			 struct eng_error *err)
{
	int64_t total = (int64_t)p->prompt_len + (p->score ? 0 : p->max_new_tokens);

	if (p->prompt_len <= 0 || (!p->score && p->max_new_tokens <= 0))
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "a request needs a prompt and at least one output token");
	if (total > s->p.max_context)
		return eng_error_set(err, ENG_E_RANGE, NULL, 0,
				     "prompt of %d tokens + %d output tokens exceeds the context of %d",
				     p->prompt_len, p->score ? 0 : p->max_new_tokens, s->p.max_context);
	if (pages_for(s, (int32_t)total) > s->p.n_pages)
		return eng_error_set(err, ENG_E_RANGE, NULL, 0,
				     "request of %lld tokens does not fit in the KV pool of %d tokens",
				     (long long)total, s->p.n_pages * s->p.page_size);
	return 0;
}

int eng_sched_submit(struct eng_sched *s, const struct eng_request_params *p,
		     struct eng_error *err)
{
	struct req *r;
	int rc = check_request(s, p, err);

	if (rc != 0)
		return rc;
	if (s->n_waiting + s->n_running + 1 > s->cap_reqs && grow_reqs(s) != 0)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "cannot queue the request");
	r = calloc(1, sizeof(*r));
	if (r) {
		/* A score request's last target is one past the prompt: a spare
		 * slot, whose log-prob is computed and ignored. */
		r->cap = p->prompt_len + (p->score ? 1 : p->max_new_tokens);
		r->tokens = calloc((size_t)r->cap, sizeof(int32_t));
		r->cap_pages = pages_for(s, r->cap);
		r->pages = malloc(sizeof(int32_t) * (size_t)r->cap_pages);
		if (p->forced_output && !p->score)
			r->forced = malloc(sizeof(int32_t) * (size_t)p->max_new_tokens);
		if (p->score)
			r->logprobs = malloc(sizeof(float) * (size_t)p->prompt_len);
	}
	if (!r || !r->tokens || !r->pages || (p->forced_output && !p->score && !r->forced) ||
	    (p->score && !r->logprobs)) {
		req_free(r);
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "cannot queue the request");
	}
	memcpy(r->tokens, p->prompt, sizeof(int32_t) * (size_t)p->prompt_len);
	r->score = p->score;
	if (r->forced)
		memcpy(r->forced, p->forced_output, sizeof(int32_t) * (size_t)p->max_new_tokens);
	r->n_tokens = r->prompt_len = p->prompt_len;
	r->max_new = p->max_new_tokens;
	r->ignore_eos = p->ignore_eos;
	r->exact = p->ignore_eos || r->forced;
	r->conv = p->conversation;
	r->more_turns = p->more_turns && p->conversation != 0;
	r->chain = ENG_SEEN_ROOT;
	r->sampling = p->sampling;
	r->user = p->user;
	r->id = s->next_id++;
	s->waiting[s->n_waiting++] = r;
	return r->id;
}

void eng_sched_cancel(struct eng_sched *s, int id)
{
	for (int32_t i = 0; i < s->n_running; i++)
		if (s->running[i]->id == id)
			s->running[i]->cancelled = true;
	for (int32_t i = 0; i < s->n_waiting; i++)
		if (s->waiting[i]->id == id)
			s->waiting[i]->cancelled = true;
}

size_t eng_sched_flush_cache(struct eng_sched *s)
{
	eng_seen_clear(s->seen);
	return s->radix ? eng_radix_evict(s->radix, (size_t)-1) : 0;
}

void eng_sched_end_conversation(struct eng_sched *s, uint64_t conversation)
{
	if (s->radix && conversation != 0)
		eng_radix_release(s->radix, conversation);
}

/* room() is defined with the memory logic below. */
static size_t room(const struct eng_sched *s, bool with_held);

void eng_sched_reset_peak(struct eng_sched *s)
{
	s->st.peak_used_pages = eng_pages_total(s->pool) - room(s, true);
}

bool eng_sched_busy(const struct eng_sched *s)
{
	return s->n_running + s->n_waiting > 0;
}

void eng_sched_get_stats(const struct eng_sched *s, struct eng_sched_stats *st)
{
	*st = s->st;
	st->n_running = s->n_running;
	st->n_waiting = s->n_waiting;
	st->free_pages = eng_pages_available(s->pool);
	st->cached_pages = s->radix ? eng_radix_cached_pages(s->radix) : 0;
	st->held_pages = s->radix ? eng_radix_held_pages(s->radix) : 0;
	st->new_token_ratio = s->new_token_ratio;
	st->roofline_bandwidth = s->p.roofline.rates.bandwidth_bytes_s;
	st->roofline_gemm_rate = s->p.roofline.rates.gemm_flops_s;
	st->page_size = s->p.page_size;
}

static void finish(struct eng_sched *s, struct req *r, enum eng_finish how, const char *error)
{
	struct eng_request_result res = {
		.finish = how,
		.output = r->tokens + r->prompt_len,
		.n_output = r->n_gen,
		.prompt_len = r->prompt_len,
		.cached_tokens = r->cached_tokens,
		.n_retractions = r->n_retractions,
		.error = error,
		.logprobs = r->score ? r->logprobs : NULL,
	};

	s->st.n_finished++;
	if (s->cb.on_finish)
		s->cb.on_finish(r->user, &res);
}

/* Removes element i of a request array, keeping the order. */
static void remove_at(struct req **v, int32_t *n, int32_t i)
{
	memmove(v + i, v + i + 1, sizeof(*v) * (size_t)(*n - i - 1));
	(*n)--;
}

/* The tokens whose KV a request must have before it can decode: the whole
 * prompt for a fresh request; all but the last token for a retracted one
 * that had started generating. */
static int32_t prefill_target(const struct req *r)
{
	return r->n_gen == 0 ? r->prompt_len : r->n_tokens - 1;
}

/* After a prefill chunk, the request's whole computed pages go into the
 * tree (SGLang's cache of unfinished requests), so that requests starting
 * together share a prefix one of them computed first (the system prompt
 * of conversations started at once) and a retracted request keeps its
 * progress as cache.  Pages a twin request inserted meanwhile replace the
 * request's own copies, which go back to the pool.  Out of host memory
 * the pages simply stay the request's own. */
static void cache_prefill(struct eng_sched *s, struct req *r)
{
	int32_t full = r->computed / s->p.page_size, own = full - r->prefix_pages;
	struct eng_radix_node *node, *end;
	size_t m, present;

	if (!s->radix || !r->node || own <= 0)
		return;
	if (own > s->cap_spare) {
		int32_t *p = realloc(s->spare, sizeof(int32_t) * (size_t)own);

		if (!p)
			return;
		s->spare = p;
		s->cap_spare = own;
	}
	memcpy(s->spare, r->pages + r->prefix_pages, sizeof(int32_t) * (size_t)own);
	m = eng_radix_match(s->radix, r->tokens, (size_t)full * (size_t)s->p.page_size, r->pages,
			    &node);
	if (m < (size_t)r->prefix_pages * (size_t)s->p.page_size)
		return; /* a split out of memory: r->pages beyond m untouched */
	eng_pages_release(s->pool, m / (size_t)s->p.page_size - (size_t)r->prefix_pages, s->spare);
	present = eng_radix_insert(s->radix, r->tokens, (size_t)r->computed, r->pages, &end);
	if (present == (size_t)-1)
		end = node;
	eng_radix_lock(s->radix, end);
	eng_radix_unlock(s->radix, r->node);
	r->node = end;
	r->prefix_pages = present == (size_t)-1 ? (int32_t)(m / (size_t)s->p.page_size) : full;
}

/* A finished request leaves its tokens in the cache for the next turn. */
static void retire(struct eng_sched *s, struct req *r)
{
	if (s->radix && r->node) {
		int32_t ps = s->p.page_size;
		struct eng_radix_node *end;
		size_t present = eng_radix_insert(s->radix, r->tokens, (size_t)r->computed, r->pages,
						  &end);
		int32_t taken_from = r->computed / ps; /* first page not taken by the tree */

		/* Out of host memory for the hold: the history is ordinary cache. */
		if (r->more_turns && present != (size_t)-1)
			eng_radix_hold(s->radix, r->conv, end);
		else if (r->conv)
			eng_radix_release(s->radix, r->conv);
		if (present == (size_t)-1) {
			present = (size_t)r->prefix_pages * (size_t)ps;
			taken_from = r->prefix_pages;
		}
		/* Own pages the tree already had (a twin request inserted them). */
		if ((int32_t)(present / (size_t)ps) > r->prefix_pages)
			eng_pages_release(s->pool, present / (size_t)ps - (size_t)r->prefix_pages,
					  r->pages + r->prefix_pages);
		eng_pages_release(s->pool, (size_t)(r->n_pages - taken_from), r->pages + taken_from);
		eng_radix_unlock(s->radix, r->node);
		r->node = NULL;
		r->n_pages = r->prefix_pages = 0;
	} else {
		req_release_memory(s, r);
	}
}

/* Decode tokens r will still produce, as far as can be told: exact when
 * its output length is fixed, else the new-token ratio's share. */
static int32_t decode_left(const struct eng_sched *s, const struct req *r)
{
	int32_t left = r->max_new - r->n_gen;

	if (r->score)
		return 0;
	if (!r->exact) {
		int32_t clip = left < CLIP_NEW_TOKENS ? left : CLIP_NEW_TOKENS;

		left = (int32_t)ceil(clip * s->new_token_ratio);
	}
	return left;
}

/* Pages r still needs to run to its end: the KV of its prompt and of every
 * generated token but the last (which is sampled, never stored), less the
 * pages it holds. */
static int32_t pages_to_finish(const struct eng_sched *s, const struct req *r)
{
	int32_t kv_end = r->score ? r->prompt_len : r->n_tokens + decode_left(s, r) - 1;
	int32_t need = pages_for(s, kv_end < r->computed ? r->computed : kv_end) - r->n_pages;

	return need > 0 ? need : 0;
}

static int64_t reserved_pages(const struct eng_sched *s)
{
	int64_t sum = 0;

	for (int32_t i = 0; i < s->n_running; i++)
		sum += pages_to_finish(s, s->running[i]);
	return sum;
}

/* Pages that can be had without retracting anyone: free ones and the
 * cache's unlocked ones, the held histories of conversations between
 * turns only when with_held. */
static size_t room(const struct eng_sched *s, bool with_held)
{
	size_t n = eng_pages_available(s->pool);

	if (s->radix)
		n += eng_radix_evictable_pages(s->radix) -
		     (with_held ? 0 : eng_radix_held_pages(s->radix));
	return n;
}

/* The running request to retract when pages run out: as SGLang picks it,
 * the one with the fewest generated tokens (the least decode lost), of
 * those the one with the longest prompt (the most freed), of those the
 * last admitted. */
static int32_t pick_victim(const struct eng_sched *s)
{
	int32_t v = s->n_running - 1;

	for (int32_t i = s->n_running - 2; i >= 0; i--) {
		const struct req *a = s->running[i], *b = s->running[v];

		if (a->n_gen < b->n_gen || (a->n_gen == b->n_gen && a->prompt_len > b->prompt_len))
			v = i;
	}
	return v;
}

/* After a retraction the estimate was too low: raise the ratio to what
 * the running requests show, as SGLang does. */
static void raise_ratio(struct eng_sched *s)
{
	double done = 0, max_new = 0, ratio;

	for (int32_t i = 0; i < s->n_running; i++) {
		done += s->running[i]->n_gen;
		max_new += s->running[i]->max_new;
	}
	if (max_new <= 0)
		return;
	ratio = (done + (double)RETRACT_DECODE_STEPS * s->n_running) / max_new;
	if (ratio > 1)
		ratio = 1;
	if (ratio > s->new_token_ratio)
		s->new_token_ratio = ratio;
}

/* Retracts running[i]: frees its memory and requeues it at the front, to
 * be recomputed (prompt and generated tokens) when memory allows. */
static void retract(struct eng_sched *s, int32_t i)
{
	struct req *v = s->running[i];

	req_release_memory(s, v);
	v->state = REQ_WAITING;
	v->n_retractions++;
	s->st.n_retractions++;
	remove_at(s->running, &s->n_running, i);
	memmove(s->waiting + 1, s->waiting, sizeof(*s->waiting) * (size_t)s->n_waiting);
	s->waiting[0] = v;
	s->n_waiting++;
	raise_ratio(s);
}

static bool decode_ready(const struct req *r)
{
	return !r->score && r->computed >= prefill_target(r);
}

/* Whether a prefill chunk ends with the prompt's last token, whose logits
 * give a fresh request its first token. */
static bool wants_token(const struct req *r, int32_t chunk)
{
	return !r->score && r->n_gen == 0 && r->computed + chunk == prefill_target(r);
}

/* Takes pages so that r covers its first n_tokens tokens, evicting cache
 * when needed (unheld before held, radix.h); never retracts.  All or
 * nothing. */
static int take_pages(struct eng_sched *s, struct req *r, int32_t n_tokens)
{
	int32_t need = pages_for(s, n_tokens) - r->n_pages;
	size_t avail = eng_pages_available(s->pool);

	if (need <= 0)
		return 0;
	if ((size_t)need > avail && s->radix)
		eng_radix_evict(s->radix, (size_t)need - avail);
	if (eng_pages_alloc(s->pool, (size_t)need, r->pages + r->n_pages) != 0)
		return ENG_E_RANGE;
	r->n_pages += need;
	return 0;
}

/* Completes the chain hashes of r's pages whose KV is all there, marking
 * them seen. */
static void chain_pages(struct eng_sched *s, struct req *r)
{
	int32_t ps = s->p.page_size;

	for (; (r->chained_pages + 1) * ps <= r->computed; r->chained_pages++) {
		r->chain = eng_seen_chain(r->chain, r->tokens + (size_t)r->chained_pages * ps,
					  (size_t)ps);
		eng_seen_add(s->seen, r->chain);
	}
}

/* Prompt tokens an unbounded cache would hold for a fresh request: its
 * leading whole pages ever computed, up to the last prompt token (whose
 * logits must be computed), as match_prefix limits a real match. */
static int32_t unbounded_match(const struct eng_sched *s, const struct req *r)
{
	int32_t ps = s->p.page_size, n = 0;
	uint64_t h = ENG_SEEN_ROOT;

	if (!s->radix || r->score)
		return 0;
	for (; (n + 1) * ps <= r->prompt_len - 1; n++) {
		h = eng_seen_chain(h, r->tokens + (size_t)n * ps, (size_t)ps);
		if (!eng_seen_has(s->seen, h))
			break;
	}
	return n * ps;
}

static void add_seq(struct eng_sched *s, int32_t *n, struct req *r, int32_t n_tokens, bool want)
{
	struct eng_step_seq *q = &s->seqs[*n];

	q->tokens = r->tokens + r->computed;
	q->n_tokens = n_tokens;
	q->start_pos = r->computed;
	q->pages = r->pages;
	q->n_pages = r->n_pages;
	q->want_token = want;
	q->sampling = &r->sampling;
	q->n_generated = r->n_gen;
	q->targets = r->score ? r->tokens + r->computed + 1 : NULL;
	q->logprobs = r->score ? r->logprobs + r->computed : NULL;
	s->seq_req[*n] = r;
	(*n)++;
}

/* Phase 1: one decode token for every request that finished its prefill.
 * Their pages come first: evict cache (held histories too), then, as the
 * last resort, retract. */
static void plan_decode(struct eng_sched *s, int32_t *n)
{
	for (;;) {
		size_t need = 0;

		for (int32_t i = 0; i < s->n_running; i++) {
			struct req *r = s->running[i];

			if (decode_ready(r) && pages_for(s, r->computed + 1) > r->n_pages)
				need++;
		}
		if (need <= eng_pages_available(s->pool))
			break;
		if (s->radix && eng_radix_evict(s->radix, need - eng_pages_available(s->pool)) > 0)
			continue;
		retract(s, pick_victim(s));
	}
	for (int32_t i = 0; i < s->n_running; i++) {
		struct req *r = s->running[i];

		if (!decode_ready(r))
			continue;
		take_pages(s, r, r->computed + 1); /* cannot fail: counted above */
		add_seq(s, n, r, 1, true);
	}
}

/* The largest chunk of r's prefill, up to budget, that memory allows now;
 * its pages are taken.  0 when not even one token fits. */
static int32_t fit_chunk(struct eng_sched *s, struct req *r, int32_t budget)
{
	int32_t want = prefill_target(r) - r->computed;
	int64_t avail = ((int64_t)r->n_pages + (int64_t)room(s, true)) * s->p.page_size -
			r->computed;

	if (want > budget)
		want = budget;
	if (want > avail)
		want = (int32_t)avail;
	if (want <= 0 || take_pages(s, r, r->computed + want) != 0)
		return 0;
	return want;
}

static void plan_chunk(struct eng_sched *s, int32_t *n, int32_t *budget, struct req *r,
		       int32_t chunk)
{
	*budget -= chunk;
	s->st.computed_tokens += chunk;
	add_seq(s, n, r, chunk, wants_token(r, chunk));
}

/* Phase 2: continue the chunked prefills of admitted requests. */
static void plan_prefill(struct eng_sched *s, int32_t *n, int32_t *budget)
{
	for (int32_t i = 0; i < s->n_running && *budget > 0; i++) {
		struct req *r = s->running[i];
		int32_t chunk;

		if (decode_ready(r))
			continue;
		chunk = fit_chunk(s, r, *budget);
		if (chunk == 0)
			break;
		plan_chunk(s, n, budget, r, chunk);
	}
}

/* How far r's tokens are cached: at most up to the last prompt token for a
 * fresh request (its logits must be computed), the whole prefill target
 * for a retracted one. */
static size_t match_prefix(struct eng_sched *s, struct req *r, struct eng_radix_node **node)
{
	int32_t limit = r->n_gen == 0 ? r->prompt_len - 1 : prefill_target(r);

	*node = NULL;
	if (!s->radix || r->score)
		return 0;
	return eng_radix_match(s->radix, r->tokens, (size_t)limit, r->pages, node);
}

/* The waiting request to admit next, by policy. */
static int32_t pick_waiting(struct eng_sched *s)
{
	int32_t best = 0;
	size_t best_len = 0;

	if (s->p.policy != ENG_SCHED_POLICY_LPM || !s->radix || s->n_waiting > 128)
		return 0;
	for (int32_t i = 0; i < s->n_waiting; i++) {
		struct eng_radix_node *node;
		size_t len = match_prefix(s, s->waiting[i], &node);

		if (len > best_len) {
			best_len = len;
			best = i;
		}
	}
	return best;
}

enum fit {
	FIT_NONE,  /* not even with every evictable page */
	FIT_HELD,  /* only by evicting held histories of other conversations */
	FIT,       /* with free pages and unheld cache */
};

/* Locks r's cached prefix into its block table and says whether r can run
 * to its end next to the running requests' reservations.  Undo with
 * req_release_memory when r is not admitted. */
static enum fit try_fit(struct eng_sched *s, struct req *r, int64_t reserved)
{
	size_t matched = match_prefix(s, r, &r->node);
	int64_t need;

	if (s->radix)
		eng_radix_lock(s->radix, r->node);
	r->prefix_pages = r->n_pages = (int32_t)(matched / (size_t)s->p.page_size);
	r->computed = (int32_t)matched;
	need = reserved + pages_to_finish(s, r);
	if (need <= (int64_t)room(s, false))
		return FIT;
	return need <= (int64_t)room(s, true) ? FIT_HELD : FIT_NONE;
}

/* Moves waiting[w], already fitted, to the running requests and plans its
 * first chunk. */
static void start(struct eng_sched *s, int32_t w, int32_t *n, int32_t *budget)
{
	struct req *r = s->waiting[w];
	int32_t chunk;

	remove_at(s->waiting, &s->n_waiting, w);
	r->state = REQ_RUNNING;
	s->running[s->n_running++] = r;
	if (!r->admitted_once) {
		r->admitted_once = true;
		r->cached_tokens = r->computed;
		s->st.prompt_tokens += r->prompt_len;
		s->st.cached_tokens += r->computed;
		s->st.unbounded_tokens += r->prompt_len - unbounded_match(s, r);
	}
	chain_pages(s, r);
	chunk = fit_chunk(s, r, *budget);
	if (chunk > 0)
		plan_chunk(s, n, budget, r, chunk);
}

/* Nothing runs and every waiting request would take held histories: of
 * the head and the SKIP_WINDOW behind it, admits the one that takes the
 * fewest (the one with most of its own history cached). */
static bool admit_held(struct eng_sched *s, int32_t head, int64_t reserved, int32_t *n,
		       int32_t *budget)
{
	int32_t best = -1;
	int64_t best_take = INT64_MAX;

	for (int32_t i = 0; i < s->n_waiting && i <= SKIP_WINDOW; i++) {
		struct req *r = s->waiting[i];

		if (try_fit(s, r, reserved) == FIT_HELD) {
			int64_t take = reserved + pages_to_finish(s, r) - (int64_t)room(s, false);

			if (take < best_take || (take == best_take && i == head)) {
				best_take = take;
				best = i;
			}
		}
		req_release_memory(s, r);
	}
	if (best < 0 || try_fit(s, s->waiting[best], reserved) == FIT_NONE) {
		if (best >= 0)
			req_release_memory(s, s->waiting[best]);
		return false;
	}
	start(s, best, n, budget);
	return true;
}

/* Phase 3: admits one waiting request that has room to run to its end.
 * The head of the queue (by policy) goes first unless it would take other
 * conversations' held histories; then a request behind it that needs
 * none goes instead (typically the next turn of a conversation whose
 * history is cached), and the head takes them only when nothing else
 * would run.  Returns false when nothing was admitted. */
static bool admit(struct eng_sched *s, int32_t *n, int32_t *budget)
{
	int32_t head = pick_waiting(s);
	int64_t reserved = reserved_pages(s);
	enum fit f = try_fit(s, s->waiting[head], reserved);

	if (f == FIT) {
		start(s, head, n, budget);
		return true;
	}
	req_release_memory(s, s->waiting[head]);
	if (f == FIT_NONE)
		return false;
	for (int32_t i = 0; i < s->n_waiting && i <= SKIP_WINDOW; i++) {
		if (i == head)
			continue;
		if (try_fit(s, s->waiting[i], reserved) == FIT) {
			start(s, i, n, budget);
			return true;
		}
		req_release_memory(s, s->waiting[i]);
	}
	return *n == 0 && s->n_running == 0 && admit_held(s, head, reserved, n, budget);
}

/* Finishes and forgets every cancelled request. */
static void drop_cancelled(struct eng_sched *s)
{
	for (int32_t i = s->n_running - 1; i >= 0; i--) {
		struct req *r = s->running[i];

		if (!r->cancelled)
			continue;
		req_release_memory(s, r);
		remove_at(s->running, &s->n_running, i);
		finish(s, r, ENG_FINISH_ABORT, NULL);
		req_free(r);
	}
	for (int32_t i = s->n_waiting - 1; i >= 0; i--) {
		struct req *r = s->waiting[i];

		if (!r->cancelled)
			continue;
		remove_at(s->waiting, &s->n_waiting, i);
		finish(s, r, ENG_FINISH_ABORT, NULL);
		req_free(r);
	}
}

static int32_t running_index(const struct eng_sched *s, const struct req *r)
{
	for (int32_t i = 0; i < s->n_running; i++)
		if (s->running[i] == r)
			return i;
	return -1;
}

static bool is_stop(const struct eng_sched *s, int32_t tok)
{
	for (int32_t i = 0; i < s->n_stop; i++)
		if (s->stop_ids[i] == tok)
			return true;
	return false;
}

/* Applies the step's results: KV advanced, tokens appended, finished
 * requests retired into the cache. */
static void apply(struct eng_sched *s, int32_t n)
{
	for (int32_t k = 0; k < n; k++) {
		struct req *r = s->seq_req[k];
		int32_t tok;
		bool stop;

		r->computed += s->seqs[k].n_tokens;
		chain_pages(s, r);
		if (r->computed <= prefill_target(r) && !r->score)
			cache_prefill(s, r);
		if (r->score && r->computed == r->prompt_len) {
			req_release_memory(s, r);
			remove_at(s->running, &s->n_running, running_index(s, r));
			finish(s, r, ENG_FINISH_LENGTH, NULL);
			req_free(r);
			continue;
		}
		if (!s->seqs[k].want_token)
			continue;
		tok = r->forced ? r->forced[r->n_gen] : s->next[k];
		r->tokens[r->n_tokens++] = tok;
		r->n_gen++;
		s->st.generated_tokens++;
		if (s->cb.on_token)
			s->cb.on_token(r->user, tok, r->n_gen - 1);
		stop = !r->ignore_eos && is_stop(s, tok);
		if (!stop && r->n_gen < r->max_new)
			continue;
		retire(s, r);
		remove_at(s->running, &s->n_running, running_index(s, r));
		finish(s, r, stop ? ENG_FINISH_STOP : ENG_FINISH_LENGTH, NULL);
		req_free(r);
	}
}

static void fail_batch(struct eng_sched *s, int32_t n, const char *msg)
{
	for (int32_t k = 0; k < n; k++) {
		struct req *r = s->seq_req[k];

		req_release_memory(s, r);
		remove_at(s->running, &s->n_running, running_index(s, r));
		finish(s, r, ENG_FINISH_ERROR, msg);
		req_free(r);
	}
}

/* Counts the planned step: its size, the pages in use, its roofline
 * ceiling; and lets the decode estimate decay. */
static void account(struct eng_sched *s, int32_t n)
{
	struct eng_roofline_cost cost;
	int32_t n_tokens = 0;
	size_t used = eng_pages_total(s->pool) - room(s, true);

	for (int32_t k = 0; k < n; k++) {
		const struct eng_step_seq *q = &s->seqs[k];

		s->next[k] = -1;
		n_tokens += q->n_tokens;
		s->rl_seqs[k] = (struct eng_roofline_seq){
			q->start_pos, q->n_tokens, q->targets ? q->n_tokens : q->want_token,
		};
	}
	s->st.n_steps++;
	s->st.last_batch_seqs = n;
	s->st.last_batch_tokens = n_tokens;
	if (used > s->st.peak_used_pages)
		s->st.peak_used_pages = used;
	eng_roofline_step(&s->p.roofline, s->rl_seqs, n, &cost);
	s->st.roofline_seconds += cost.seconds;
	s->st.roofline_bytes += cost.bytes;
	s->st.roofline_flops += cost.flops;
	s->new_token_ratio -= RATIO_DECAY;
	if (s->new_token_ratio < RATIO_MIN)
		s->new_token_ratio = RATIO_MIN;
}

int eng_sched_step(struct eng_sched *s, struct eng_error *err)
{
	int32_t n = 0, budget = s->p.chunked_prefill_size;
	double t0;
	int rc;

	drop_cancelled(s);
	plan_decode(s, &n);
	plan_prefill(s, &n, &budget);
	while (budget > 0 && s->n_waiting > 0 &&
	       (s->p.max_running_requests == 0 || s->n_running < s->p.max_running_requests))
		if (!admit(s, &n, &budget))
			break;
	if (n == 0) {
		/* Prefills stuck on memory held by each other (an estimate fell
		 * short): give one up. */
		if (s->n_running > 0)
			retract(s, pick_victim(s));
		return 0;
	}
	account(s, n);
	t0 = eng_mono_s();
	rc = s->step(s->step_ctx, s->seqs, n, s->next, err);
	s->st.step_seconds += eng_mono_s() - t0;
	if (rc != 0) {
		fail_batch(s, n, err ? err->msg : "the model step failed");
		return rc;
	}
	apply(s, n);
	return n;
}
