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
 */
#include "engine/sched.h"
#include "engine/pages.h"
#include "engine/radix.h"
#include "engine/clock.h"

#include <stdlib.h>
#include <string.h>

enum req_state { REQ_WAITING, REQ_RUNNING };

struct req {
	int id;
	void *user;
	enum req_state state;
	int32_t *tokens;      /* (cap) prompt + generated */
	int32_t n_tokens, cap;
	int32_t prompt_len, max_new, n_gen;
	int32_t *forced;      /* (max_new) or NULL */
	bool ignore_eos, cancelled, score, stop_now;
	int32_t *stop_ids;    /* (n_stop_ids) the request's own stop tokens */
	int32_t n_stop_ids, min_tokens;
	int32_t *banned;      /* (n_banned) stop tokens, before min_tokens */
	int32_t n_banned;
	struct eng_token_logprobs *token_logprobs; /* the caller's, or NULL */
	int32_t top_logprobs;
	double submit_t, admit_t;
	float *logprobs;      /* score: (prompt_len) */
	struct eng_sampling sampling;
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
	struct req **waiting;      /* (n_waiting) in queue order */
	struct req **running;      /* (n_running) in admission order */
	int32_t n_waiting, n_running, cap_reqs;
	int next_id;
	struct eng_sched_stats st;
	/* per-step scratch, (cap_reqs) each */
	struct eng_step_seq *seqs;
	struct req **seq_req;
	int32_t *next;
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
	rc = eng_pages_create(p->n_pages, &s->pool, err);
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
	free(r->stop_ids);
	free(r->banned);
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
	free(s->waiting);
	free(s->running);
	free(s->seqs);
	free(s->seq_req);
	free(s->next);
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

	if (w)
		s->waiting = w;
	if (r)
		s->running = r;
	if (q)
		s->seqs = q;
	if (sr)
		s->seq_req = sr;
	if (!n)
		return -1;
	s->next = n;
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
	if (p->n_stop_ids < 0 || p->min_tokens < 0 || p->top_logprobs < 0 ||
	    p->top_logprobs > ENG_TOP_LOGPROBS_MAX)
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "stop ids, min_tokens and top_logprobs (at most %d) must not be negative",
				     ENG_TOP_LOGPROBS_MAX);
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

/* The request's own stop tokens, and the tokens banned before min_tokens:
 * the engine's (unless ignore_eos) and its own. */
static int set_stops(const struct eng_sched *s, struct req *r, const struct eng_request_params *p)
{
	int32_t n_eos = r->ignore_eos ? 0 : s->n_stop;

	if (p->n_stop_ids > 0) {
		r->stop_ids = malloc(sizeof(int32_t) * (size_t)p->n_stop_ids);
		if (!r->stop_ids)
			return -1;
		memcpy(r->stop_ids, p->stop_ids, sizeof(int32_t) * (size_t)p->n_stop_ids);
		r->n_stop_ids = p->n_stop_ids;
	}
	r->min_tokens = p->min_tokens;
	if (p->min_tokens <= 0 || n_eos + r->n_stop_ids == 0)
		return 0;
	r->banned = malloc(sizeof(int32_t) * (size_t)(n_eos + r->n_stop_ids));
	if (!r->banned)
		return -1;
	memcpy(r->banned, s->stop_ids, sizeof(int32_t) * (size_t)n_eos);
	if (r->n_stop_ids > 0)
		memcpy(r->banned + n_eos, r->stop_ids, sizeof(int32_t) * (size_t)r->n_stop_ids);
	r->n_banned = n_eos + r->n_stop_ids;
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
	if (set_stops(s, r, p) != 0) {
		req_free(r);
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "cannot queue the request");
	}
	r->token_logprobs = p->token_logprobs;
	r->top_logprobs = p->top_logprobs;
	r->submit_t = eng_mono_s();
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

void eng_sched_stop(struct eng_sched *s, int id)
{
	for (int32_t i = 0; i < s->n_running; i++)
		if (s->running[i]->id == id)
			s->running[i]->stop_now = true;
}

size_t eng_sched_flush_cache(struct eng_sched *s)
{
	return s->radix ? eng_radix_evict(s->radix, (size_t)-1) : 0;
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
	st->evictable_pages = s->radix ? eng_radix_evictable_pages(s->radix) : 0;
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
		.queue_time = (r->admit_t > 0 ? r->admit_t : eng_mono_s()) - r->submit_t,
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

/* A finished request leaves its tokens in the cache for the next turn. */
static void retire(struct eng_sched *s, struct req *r)
{
	if (s->radix && r->node) {
		int32_t ps = s->p.page_size;
		size_t present = eng_radix_insert(s->radix, r->tokens, (size_t)r->computed, r->pages);
		int32_t taken_from = r->computed / ps; /* first page not taken by the tree */

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

/* Pages free now plus pages the cache could give up. */
static size_t reclaimable(const struct eng_sched *s)
{
	return eng_pages_available(s->pool) + (s->radix ? eng_radix_evictable_pages(s->radix) : 0);
}

/* Takes pages so that r covers its first n_tokens tokens, evicting cache
 * when needed; never retracts.  All or nothing. */
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
	q->banned = r->n_gen < r->min_tokens ? r->banned : NULL;
	q->n_banned = q->banned ? r->n_banned : 0;
	q->token_logprobs = want ? r->token_logprobs : NULL;
	q->top_logprobs = r->top_logprobs;
	s->seq_req[*n] = r;
	(*n)++;
}

/* Phase 1: one decode token for every request that finished its prefill.
 * Their pages come first: evict cache, then retract the newest requests. */
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
		retract(s, s->n_running - 1);
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
	int64_t room = ((int64_t)r->n_pages + (int64_t)reclaimable(s)) * s->p.page_size - r->computed;

	if (want > budget)
		want = budget;
	if (want > room)
		want = (int32_t)room;
	if (want <= 0 || take_pages(s, r, r->computed + want) != 0)
		return 0;
	return want;
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
		*budget -= chunk;
		s->st.computed_tokens += chunk;
		add_seq(s, n, r, chunk, wants_token(r, chunk));
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

/* Admits one waiting request.  Returns false when it does not fit now. */
static bool admit(struct eng_sched *s, int32_t *n, int32_t *budget)
{
	int32_t w = pick_waiting(s), chunk = 0, n_decoding = 0;
	struct req *r = s->waiting[w];
	size_t matched = match_prefix(s, r, &r->node);

	for (int32_t i = 0; i < s->n_running; i++)
		n_decoding += decode_ready(s->running[i]);
	if (s->radix)
		eng_radix_lock(s->radix, r->node);
	r->prefix_pages = r->n_pages = (int32_t)(matched / (size_t)s->p.page_size);
	r->computed = (int32_t)matched;
	/* Keep a page of headroom per decoding request, so that admitting
	 * does not force a retraction on the very next step. */
	if (reclaimable(s) > (size_t)n_decoding)
		chunk = fit_chunk(s, r, *budget);
	if (chunk == 0 && r->computed < prefill_target(r)) {
		req_release_memory(s, r);
		return false;
	}
	remove_at(s->waiting, &s->n_waiting, w);
	r->state = REQ_RUNNING;
	s->running[s->n_running++] = r;
	if (!r->admitted_once) {
		r->admitted_once = true;
		r->admit_t = eng_mono_s();
		r->cached_tokens = r->computed;
		s->st.prompt_tokens += r->prompt_len;
		s->st.cached_tokens += r->computed;
	}
	if (chunk > 0) {
		*budget -= chunk;
		s->st.computed_tokens += chunk;
		add_seq(s, n, r, chunk, wants_token(r, chunk));
	}
	return true;
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

static bool in_ids(const int32_t *ids, int32_t n, int32_t tok)
{
	for (int32_t i = 0; i < n; i++)
		if (ids[i] == tok)
			return true;
	return false;
}

/* Whether tok ends r: the engine's stop tokens unless ignore_eos, the
 * request's own, never before min_tokens; or the caller said so. */
static bool is_stop(const struct eng_sched *s, const struct req *r, int32_t tok)
{
	if (r->stop_now)
		return true;
	if (r->n_gen <= r->min_tokens) /* n_gen counts tok already */
		return false;
	return (!r->ignore_eos && in_ids(s->stop_ids, s->n_stop, tok)) ||
	       in_ids(r->stop_ids, r->n_stop_ids, tok);
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
		stop = is_stop(s, r, tok);
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

int eng_sched_step(struct eng_sched *s, struct eng_error *err)
{
	int32_t n = 0, budget = s->p.chunked_prefill_size, n_tokens = 0;
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
		/* Prefills stuck on memory held by each other: give one up. */
		if (s->n_running > 0)
			retract(s, s->n_running - 1);
		return 0;
	}
	for (int32_t k = 0; k < n; k++) {
		s->next[k] = -1;
		n_tokens += s->seqs[k].n_tokens;
	}
	s->st.n_steps++;
	s->st.last_batch_seqs = n;
	s->st.last_batch_tokens = n_tokens;
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
