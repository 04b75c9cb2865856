/*
 * http_gen.c: the generations of an HTTP request (see http_int.h).
 *
 * Each prompt of a request is one runner session of one one-turn
 * conversation, so that its sampling, stop tokens, min_tokens and
 * log-probs are its own while it shares the continuous batch with every
 * other client.  When the prompt's log-probs are asked for (completions'
 * echo with logprobs, /generate's logprob_start_len), a scoring session
 * runs first (a full prefill with targets, no cache), then the reply's.
 *
 * Tokens become text as they come (eng_tok_stream: never half a UTF-8
 * character).  Stop strings are looked for in the text as it grows; one
 * found cuts the text before it and ends the request with that token
 * (eng_session_stop), so no token is wasted after it.  A stream sends only
 * the text that cannot turn out to be the start of a stop string: the
 * longest suffix that is a prefix of some stop string is held back until
 * the next token decides.
 */
#include "engine/http_int.h"

#include <stdlib.h>
#include <string.h>

static void gen_end(struct http_gen *g, enum eng_finish finish, const char *error);

/* ---------------------------------------------------------------- text */

/* Cuts the text at the first stop string that ends past from; true when
 * one was found. */
static bool find_stop(struct http_gen *g, size_t from)
{
	const struct http_opts *o = &g->req->o;
	size_t best = g->len;
	int which = -1;

	for (int i = 0; i < o->n_stop; i++) {
		size_t start = from + 1 > o->stop_len[i] ? from + 1 - o->stop_len[i] : 0;
		const char *hit;

		if (start >= g->len)
			continue;
		hit = memmem(g->text + start, g->len - start, o->stop[i], o->stop_len[i]);
		if (hit && (size_t)(hit - g->text) < best) {
			best = (size_t)(hit - g->text);
			which = i;
		}
	}
	if (which < 0)
		return false;
	g->len = best;
	g->text[best] = '\0';
	g->stopped = true;
	g->stop_index = which;
	return true;
}

/* Bytes at the end of the text that may be the start of a stop string. */
static size_t held_back(const struct http_gen *g)
{
	const struct http_opts *o = &g->req->o;
	size_t hold = 0;

	for (int i = 0; i < o->n_stop; i++) {
		size_t k = o->stop_len[i] - 1 < g->len ? o->stop_len[i] - 1 : g->len;

		for (; k > hold; k--) {
			if (memcmp(g->text + g->len - k, o->stop[i], k) == 0) {
				hold = k;
				break;
			}
		}
	}
	return hold;
}

/* Streams what may be sent: all of it once the generation is over. */
static void stream_more(struct http_gen *g)
{
	struct http_req *q = g->req;
	size_t safe = g->done || g->stopped ? g->len : g->len - held_back(g);
	int32_t k = g->tokens_sent;

	if (!q->streaming || q->gone)
		return;
	while (k < (int32_t)g->out.n && (g->done || g->ends[k] <= safe))
		k++;
	if (safe > g->sent || (g->req->o.logprobs && k > g->tokens_sent))
		http_stream_delta(q, g, safe, k);
}

static int reserve_token(struct http_gen *g)
{
	size_t need = g->out.n + 1;

	if (need > g->cap_ends) {
		size_t cap = g->cap_ends ? 2 * g->cap_ends : 64;
		size_t *e = realloc(g->ends, sizeof(*e) * cap);

		if (!e)
			return -1;
		g->ends = e;
		g->cap_ends = cap;
	}
	if (g->req->o.logprobs && need > g->cap_lps) {
		size_t cap = g->cap_lps ? 2 * g->cap_lps : 64;
		struct eng_token_logprobs *l = realloc(g->lps, sizeof(*l) * cap);

		if (!l)
			return -1;
		g->lps = l;
		g->cap_lps = cap;
	}
	return eng_ids_push(&g->out, 0);
}

/* ---------------------------------------------------------------- session ops */

static int gen_next_conv(void *ctx, struct eng_conv **out)
{
	struct http_gen *g = ctx;

	if (g->conv_taken)
		return 0;
	g->conv_taken = true;
	*out = &g->conv;
	return 1;
}

static void gen_on_token(void *ctx, const struct eng_conv *c, int32_t tok, int32_t index,
			 const struct eng_token_logprobs *lp)
{
	struct http_gen *g = ctx;
	size_t before = g->len;
	struct eng_error err;

	(void)c;
	(void)index;
	if (g->t_first == 0)
		g->t_first = eng_mono_s();
	if (reserve_token(g) != 0) {
		eng_session_cancel(g->sess);
		gen_end(g, ENG_FINISH_ERROR, "out of memory");
		return;
	}
	g->out.ids[g->out.n - 1] = tok;
	if (lp)
		g->lps[g->out.n - 1] = *lp;
	if (!g->stopped) {
		eng_tok_stream_push(&g->ts, tok, &g->text, &g->len, &g->cap, &err);
		if (find_stop(g, before))
			eng_session_stop(g->sess);
	}
	g->ends[g->out.n - 1] = g->len;
	stream_more(g);
}

static void gen_on_request(void *ctx, const struct eng_conv *c, const struct eng_request_timing *t)
{
	struct http_gen *g = ctx;
	struct eng_error err;
	size_t before = g->len;

	(void)c;
	g->queue_time = t->queue_time;
	g->cached_tokens = t->cached_tokens;
	if (g->scoring) {
		if (!t->error && t->logprobs && g->n_prompt > 1 &&
		    (g->prompt_lps = malloc(sizeof(float) * (size_t)(g->n_prompt - 1))))
			memcpy(g->prompt_lps, t->logprobs, sizeof(float) * (size_t)(g->n_prompt - 1));
		if (t->error)
			gen_end(g, ENG_FINISH_ERROR, t->error);
		return;
	}
	g->ttft = t->ttft;
	g->latency = t->latency;
	if (t->n_itl > 0 && (g->itl = malloc(sizeof(double) * (size_t)t->n_itl))) {
		memcpy(g->itl, t->itl, sizeof(double) * (size_t)t->n_itl);
		g->n_itl = t->n_itl;
	}
	if (!g->stopped) {
		eng_tok_stream_flush(&g->ts, &g->text, &g->len, &g->cap, &err);
		find_stop(g, before);
	}
	gen_end(g, t->finish, t->finish == ENG_FINISH_ABORT ? NULL : t->error);
}

static const struct eng_session_ops gen_ops = {
	gen_next_conv, gen_on_request, NULL, NULL, gen_on_token,
};

/* ---------------------------------------------------------------- passes */

/* Starts the scoring pass or the reply's. */
static int start_pass(struct http_gen *g, bool scoring, struct eng_error *err)
{
	const struct http_opts *o = &g->req->o;
	struct eng_session_params sp;

	eng_session_default_params(&sp);
	sp.batch_size = 1;
	sp.recorded_output = false;
	sp.score = scoring;
	sp.output_len = scoring ? 1 : o->max_tokens;
	sp.ignore_eos = o->ignore_eos;
	sp.sampling = o->sampling;
	sp.sampling.seed += (uint64_t)g->index * 0x9e3779b97f4a7c15ull;
	sp.stop_ids = o->stop_ids;
	sp.n_stop_ids = o->n_stop_ids;
	sp.min_tokens = o->min_tokens;
	sp.logprobs = o->logprobs;
	sp.top_logprobs = o->top_logprobs;
	/* Scoring: the first token as the prompt, the rest as the reply whose
	 * log-probs the runner's score mode computes (all of the prompt's). */
	g->turn = (struct eng_turn){ .prompt_end = scoring ? 1 : g->n_prompt,
				     .reply_len = scoring ? g->n_prompt - 1 : o->max_tokens,
				     .recorded_prompt_len = -1, .env_time_s = -1 };
	g->conv = (struct eng_conv){ .ids = g->prompt, .n_ids = g->n_prompt, .turns = &g->turn,
				     .n_turns = 1, .user = g };
	g->conv_taken = false;
	g->scoring = scoring;
	g->t_submit = eng_mono_s();
	return eng_session_start(g->req->fr->e->runner, &sp, &gen_ops, g, &g->sess, err);
}

int http_gens_start(struct http_req *q, struct http_prompt *prompts, int n, struct http_err *e)
{
	struct http_front *fr = q->fr;
	struct eng_sched_stats st;
	struct eng_error err;

	eng_infer_get_stats(fr->e, &st);
	if (fr->p.max_queued_requests > 0 &&
	    st.n_waiting + fr->n_new + n > fr->p.max_queued_requests)
		return http_err_set(e, 503, "queue_full", NULL,
				    "the request queue is full (%d waiting); retry later",
				    st.n_waiting + fr->n_new);
	q->gens = calloc((size_t)n, sizeof(*q->gens));
	if (!q->gens)
		return http_err_set(e, 500, NULL, NULL, "out of memory");
	q->n_gens = n;
	for (int i = 0; i < n; i++) {
		struct http_gen *g = &q->gens[i];

		g->req = q;
		g->index = i;
		g->prompt = prompts[i].ids;
		g->n_prompt = prompts[i].n;
		prompts[i].ids = NULL;
		eng_tok_stream_init(&g->ts, fr->e->tok, q->o.skip_special ? ENG_TOK_DECODE_SKIP_SPECIAL : 0);
	}
	for (int i = 0; i < n; i++) {
		if (start_pass(&q->gens[i], q->o.prompt_logprobs, &err) != 0) {
			http_gens_cancel(q);
			return http_err_set(e, 500, NULL, NULL, "%s", err.msg);
		}
	}
	fr->n_new += n;
	return 0;
}

/* A generation is over: it is counted once, and its stream ends. */
static void gen_end(struct http_gen *g, enum eng_finish finish, const char *error)
{
	if (g->done)
		return;
	g->done = true;
	g->t_end = eng_mono_s();
	g->finish = finish;
	if (error && !g->error)
		g->error = strdup(error);
	if (g->latency == 0)
		g->latency = eng_mono_s() - g->t_submit;
	if (g->ttft == 0 && g->t_first > 0)
		g->ttft = g->t_first - g->t_submit;
	http_metrics_gen_done(g->req->fr, g->req, g);
	if (g->req->streaming && !g->req->gone) {
		stream_more(g);
		http_stream_finish(g->req, g);
	}
}

bool http_gens_settle(struct http_req *q)
{
	bool all = true;
	struct eng_error err;

	for (int i = 0; i < q->n_gens; i++) {
		struct http_gen *g = &q->gens[i];

		if (g->sess && eng_session_done(g->sess)) {
			eng_session_free(g->sess);
			g->sess = NULL;
			if (g->scoring && !g->done) {
				if (q->streaming && !q->gone)
					http_stream_echo(q, g);
				if (q->o.max_tokens == 0 || q->gone)
					gen_end(g, ENG_FINISH_LENGTH, NULL);
				else if (start_pass(g, false, &err) != 0)
					gen_end(g, ENG_FINISH_ERROR, err.msg);
			}
		}
		all &= g->done;
	}
	return all;
}

void http_gens_cancel(struct http_req *q)
{
	for (int i = 0; i < q->n_gens; i++) {
		struct http_gen *g = &q->gens[i];

		if (g->sess)
			eng_session_cancel(g->sess);
		gen_end(g, ENG_FINISH_ABORT, NULL);
	}
}

bool http_gens_busy(const struct http_req *q)
{
	for (int i = 0; i < q->n_gens; i++)
		if (q->gens[i].sess)
			return true;
	return false;
}

/* Only once no session is busy (http_gens_busy false). */
void http_gens_free(struct http_req *q)
{
	for (int i = 0; i < q->n_gens; i++) {
		struct http_gen *g = &q->gens[i];

		eng_session_free(g->sess);
		free(g->prompt);
		free(g->prompt_lps);
		eng_ids_free(&g->out);
		free(g->lps);
		free(g->ends);
		free(g->text);
		free(g->error);
		free(g->itl);
	}
	free(q->gens);
	q->gens = NULL;
	q->n_gens = 0;
}
