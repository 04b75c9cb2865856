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
 *   (eng_sched_pages_to_finish, sched_kv.c: its whole prefill target and
 *   its remaining decode,
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
 *
 * The memory side of all this (reservations, pages, the prefix cache as a
 * request goes through it) is in sched_kv.c.
 */
#include "engine/sched_int.h"
#include "engine/sampler.h"
#include "engine/clock.h"

#include <stdlib.h>
#include <string.h>

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
	p->prefill_step_ratio = 0;
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
	if (!(p->prefill_step_ratio == 0 || p->prefill_step_ratio >= 1))
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "prefill_step_ratio must be 0 or at least 1");
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
	free(r->stop_ids);
	free(r->banned);
	free(r);
}

void eng_sched_free(struct eng_sched *s)
{
	if (!s)
		return;
	for (int32_t i = 0; i < s->n_running; i++) {
		eng_sched_release_memory(s, s->running[i]);
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

int eng_sched_check_sampling(const struct eng_sampling *s, struct eng_error *err)
{
	struct eng_sampler_params sp = { s->temperature, s->top_k, s->top_p, s->seed };

	if (s->temperature == 0)
		return 0; /* greedy: top_k and top_p are not used */
	return eng_sampler_check_params(&sp, err);
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
	if (eng_sched_check_sampling(&p->sampling, err) != 0)
		return ENG_E_INVALID;
	if (total > s->p.max_context)
		return eng_error_set(err, ENG_E_RANGE, NULL, 0,
				     "prompt of %d tokens + %d output tokens exceeds the context of %d",
				     p->prompt_len, p->score ? 0 : p->max_new_tokens, s->p.max_context);
	if (eng_sched_pages_for(s, (int32_t)total) > s->p.n_pages)
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

int32_t eng_sched_max_context(const struct eng_sched *s)
{
	return s->p.max_context;
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
		r->cap_pages = eng_sched_pages_for(s, r->cap);
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
	r->score_from = p->score_from;
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

void eng_sched_stop(struct eng_sched *s, int id)
{
	for (int32_t i = 0; i < s->n_running; i++)
		if (s->running[i]->id == id)
			s->running[i]->stop_now = true;
}

size_t eng_sched_flush_cache(struct eng_sched *s)
{
	size_t n = s->radix ? eng_radix_flush(s->radix) : 0;

	/* Another client's conversations in flight keep their histories and
	 * the record of what they computed. */
	if (s->n_running + s->n_waiting == 0 && (!s->radix || eng_radix_held_pages(s->radix) == 0))
		eng_seen_clear(s->seen);
	return n;
}

void eng_sched_end_conversation(struct eng_sched *s, uint64_t conversation)
{
	if (s->radix && conversation != 0)
		eng_radix_release(s->radix, conversation);
}

void eng_sched_reset_peak(struct eng_sched *s)
{
	s->st.peak_used_pages = (size_t)s->p.n_pages - eng_sched_room(s, true);
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

/* Retracts running[i]: frees its memory and requeues it at the front, to
 * be recomputed (prompt and generated tokens) when memory allows. */
static void retract(struct eng_sched *s, int32_t i)
{
	struct req *v = s->running[i];

	eng_sched_release_memory(s, v);
	v->state = REQ_WAITING;
	v->n_retractions++;
	s->st.n_retractions++;
	remove_at(s->running, &s->n_running, i);
	memmove(s->waiting + 1, s->waiting, sizeof(*s->waiting) * (size_t)s->n_waiting);
	s->waiting[0] = v;
	s->n_waiting++;
	eng_sched_raise_ratio(s);
}

static bool decode_ready(const struct req *r)
{
	return !r->score && r->computed >= eng_sched_prefill_target(r);
}

/* Whether a prefill chunk ends with the prompt's last token, whose logits
 * give a fresh request its first token. */
static bool wants_token(const struct req *r, int32_t chunk)
{
	return !r->score && r->n_gen == 0 && r->computed + chunk == eng_sched_prefill_target(r);
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
 * Their pages come first: evict cache (held histories too), then, as the
 * last resort, retract. */
static void plan_decode(struct eng_sched *s, int32_t *n)
{
	for (;;) {
		size_t need = 0;

		for (int32_t i = 0; i < s->n_running; i++) {
			struct req *r = s->running[i];

			if (decode_ready(r) && eng_sched_pages_for(s, r->computed + 1) > r->n_pages)
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
		eng_sched_take_pages(s, r, r->computed + 1); /* cannot fail: counted above */
		add_seq(s, n, r, 1, true);
	}
}

/* The FLOPs of n prompt tokens of r after its computed ones. */
static double chunk_flops(const struct eng_sched *s, const struct req *r, int32_t n)
{
	struct eng_roofline_seq q = { r->computed, n, 0 };
	struct eng_roofline_cost c;

	eng_roofline_step(&s->p.roofline, &q, 1, &c);
	return c.flops;
}

/* want cut to what the step's prefill FLOPs left allow (prefill_step_ratio),
 * but not below the tokens the floor leaves. */
static int32_t time_fit(const struct eng_sched *s, const struct req *r, int32_t want)
{
	int32_t lo = want < s->pf_floor_left ? want : s->pf_floor_left, hi = want;

	if (s->pf_flops_left < 0 || chunk_flops(s, r, want) <= s->pf_flops_left)
		return want;
	/* the largest n in [lo, want) within the FLOPs left: they grow with n */
	while (lo < hi) {
		int32_t mid = lo + (hi - lo + 1) / 2;

		if (chunk_flops(s, r, mid) <= s->pf_flops_left)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/* The largest chunk of r's prefill, up to budget, that memory (and
 * prefill_step_ratio) allows now; its pages are taken.  0 when not even one
 * token fits. */
static int32_t fit_chunk(struct eng_sched *s, struct req *r, int32_t budget)
{
	int32_t want = eng_sched_prefill_target(r) - r->computed;
	int64_t avail = ((int64_t)r->n_pages + (int64_t)eng_sched_room(s, true)) * s->p.page_size -
			r->computed;

	if (want > budget)
		want = budget;
	if (want > avail)
		want = (int32_t)avail;
	if (want > 0)
		want = time_fit(s, r, want);
	if (want <= 0 || eng_sched_take_pages(s, r, r->computed + want) != 0)
		return 0;
	return want;
}

static void plan_chunk(struct eng_sched *s, int32_t *n, int32_t *budget, struct req *r,
		       int32_t chunk)
{
	if (s->pf_flops_left >= 0) {
		s->pf_flops_left -= chunk_flops(s, r, chunk);
		if (s->pf_flops_left < 0)
			s->pf_flops_left = 0;
		s->pf_floor_left -= chunk < s->pf_floor_left ? chunk : s->pf_floor_left;
	}
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

/* The waiting request to admit next, by policy. */
static int32_t pick_waiting(struct eng_sched *s)
{
	int32_t best = 0;
	size_t best_len = 0;

	if (s->p.policy != ENG_SCHED_POLICY_LPM || !s->radix || s->n_waiting > 128)
		return 0;
	for (int32_t i = 0; i < s->n_waiting; i++) {
		struct eng_radix_node *node;
		size_t len = eng_sched_match_prefix(s, s->waiting[i], &node);

		if (len > best_len) {
			best_len = len;
			best = i;
		}
	}
	return best;
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
		r->admit_t = eng_mono_s();
		r->cached_tokens = r->computed;
		s->st.prompt_tokens += r->prompt_len;
		s->st.cached_tokens += r->computed;
		s->st.unbounded_tokens += r->prompt_len - eng_sched_unbounded_match(s, r);
	}
	eng_sched_chain_pages(s, r);
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

		if (eng_sched_try_fit(s, r, reserved) == FIT_HELD) {
			int64_t take = reserved + eng_sched_pages_to_finish(s, r) -
				       (int64_t)eng_sched_room(s, false);

			if (take < best_take || (take == best_take && i == head)) {
				best_take = take;
				best = i;
			}
		}
		eng_sched_release_memory(s, r);
	}
	if (best < 0 || eng_sched_try_fit(s, s->waiting[best], reserved) == FIT_NONE) {
		if (best >= 0)
			eng_sched_release_memory(s, s->waiting[best]);
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
	int64_t reserved = eng_sched_reserved_pages(s);
	enum fit f = eng_sched_try_fit(s, s->waiting[head], reserved);

	if (f == FIT) {
		start(s, head, n, budget);
		return true;
	}
	eng_sched_release_memory(s, s->waiting[head]);
	if (f == FIT_NONE)
		return false;
	for (int32_t i = 0; i < s->n_waiting && i <= SKIP_WINDOW; i++) {
		if (i == head)
			continue;
		if (eng_sched_try_fit(s, s->waiting[i], reserved) == FIT) {
			start(s, i, n, budget);
			return true;
		}
		eng_sched_release_memory(s, s->waiting[i]);
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
		eng_sched_release_memory(s, r);
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
		eng_sched_chain_pages(s, r);
		if (r->computed <= eng_sched_prefill_target(r) && !r->score)
			eng_sched_cache_prefill(s, r);
		if (r->score && r->computed == r->prompt_len) {
			eng_sched_retire(s, r);
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
		eng_sched_retire(s, r);
		remove_at(s->running, &s->n_running, running_index(s, r));
		finish(s, r, stop ? ENG_FINISH_STOP : ENG_FINISH_LENGTH, NULL);
		req_free(r);
	}
}

static void fail_batch(struct eng_sched *s, int32_t n, const char *msg)
{
	for (int32_t k = 0; k < n; k++) {
		struct req *r = s->seq_req[k];

		eng_sched_release_memory(s, r);
		remove_at(s->running, &s->n_running, running_index(s, r));
		finish(s, r, ENG_FINISH_ERROR, msg);
		req_free(r);
	}
}

/* Counts the planned step: its size, the pages in use, its roofline
 * ceiling; and lets the decode estimate decay. */
static int account(struct eng_sched *s, int32_t n)
{
	struct eng_roofline_cost cost;
	int32_t n_tokens = 0;
	size_t used = (size_t)s->p.n_pages - eng_sched_room(s, true);

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
	if (n_tokens > n) {
		s->st.n_prefill_steps++;
		s->st.prefill_roofline_seconds += cost.seconds;
	}
	s->new_token_ratio -= RATIO_DECAY;
	if (s->new_token_ratio < RATIO_MIN)
		s->new_token_ratio = RATIO_MIN;
	return n_tokens > n;
}

/* prefill_step_ratio: the FLOPs the step's prompt chunks may take beside
 * its n decode rows (s->seqs[0, n)), so that the step's ceiling stays
 * within ratio times theirs: a decode step is bound by its bytes, and at
 * ratio 1 the chunks fill the arithmetic it leaves idle. */
static void prefill_limit(struct eng_sched *s, int32_t n)
{
	const struct eng_roofline_rates *rt = &s->p.roofline.rates;
	struct eng_roofline_cost c;

	s->pf_flops_left = -1;
	s->pf_floor_left = 0;
	if (s->p.prefill_step_ratio < 1 || n == 0 || rt->gemm_flops_s <= 0 ||
	    rt->bandwidth_bytes_s <= 0)
		return;
	for (int32_t k = 0; k < n; k++)
		s->rl_seqs[k] = (struct eng_roofline_seq){ s->seqs[k].start_pos, 1, 1 };
	eng_roofline_step(&s->p.roofline, s->rl_seqs, n, &c);
	s->pf_flops_left = s->p.prefill_step_ratio * c.seconds * rt->gemm_flops_s - c.flops;
	if (s->pf_flops_left < 0)
		s->pf_flops_left = 0;
	s->pf_floor_left = ENG_PREFILL_STEP_FLOOR;
}

int eng_sched_step(struct eng_sched *s, struct eng_error *err)
{
	int32_t n = 0, budget = s->p.chunked_prefill_size;
	double t0;
	int rc, prefill;

	drop_cancelled(s);
	plan_decode(s, &n);
	prefill_limit(s, n);
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
	prefill = account(s, n);
	t0 = eng_mono_s();
	rc = s->step(s->step_ctx, s->seqs, n, s->next, err);
	t0 = eng_mono_s() - t0;
	s->st.step_seconds += t0;
	if (prefill)
		s->st.prefill_step_seconds += t0;
	if (rc != 0) {
		fail_batch(s, n, err ? err->msg : "the model step failed");
		return rc;
	}
	apply(s, n);
	return n;
}
