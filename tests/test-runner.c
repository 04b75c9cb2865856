/*
 * test-runner.c: conversations replayed turn by turn through the runner
 * and the scheduler, on the fake model of fake-step.h.
 *
 * Checks: one timing record per turn and one per conversation; turns of a
 * conversation in order, each submitted after the previous one finished
 * plus its scaled environment time; never more conversations in flight
 * than the batch size; the recorded reply replayed so that every turn
 * after the first hits the whole previous turn in the prefix cache; a
 * turn longer than the context reported as a failed request that ends its
 * conversation (the conversation result says why, the others go on); turns
 * built on demand whose prompt does not extend the previous turn hit the
 * cache up to where they differ; a turn that cannot be built fails alone;
 * no history held once its conversation is done; a cancelled session
 * drains without losing pages.
 */
#include "engine/runner.h"
#include "tests/fake-step.h"
#include "tests/tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NCONV 12
#define PS 8

struct conv {
	struct eng_conv c;
	int32_t ids[4000];
	struct eng_turn turns[8];
	int index;
	double last_end;          /* end of the previous turn */
	int next_turn;            /* turns reported so far */
	bool done;
};

static struct conv convs[NCONV];
static int n_given, n_in_flight, max_in_flight, n_requests, n_order_bad, n_cache_bad;
static int n_failed, n_conv_results, n_wait_bad, n_skipped, n_conv_errors;
static double env_scale;

static void make_convs(int32_t long_conv)
{
	for (int i = 0; i < NCONV; i++) {
		struct conv *v = &convs[i];
		int32_t n = 0;

		memset(v, 0, sizeof(*v));
		v->index = i;
		for (int k = 0; k < 20; k++)
			v->ids[n++] = k % 50;                 /* a shared system prompt */
		for (int t = 0; t < 2 + i % 5; t++) {
			for (int k = 0; k < 9 + (i == long_conv ? 150 * t : 0); k++)
				v->ids[n++] = (i * 7 + t * 3 + k) % 50; /* the user message */
			v->turns[t].prompt_end = n;
			v->turns[t].reply_len = 3 + (i + t) % 6;
			v->turns[t].env_time_s = 0.5 + t;
			for (int k = 0; k < v->turns[t].reply_len; k++)
				v->ids[n++] = (i + k * 11) % 50;      /* the recorded reply */
			v->c.n_turns = t + 1;
		}
		v->c.ids = v->ids;
		v->c.n_ids = n;
		v->c.turns = v->turns;
		v->c.user = v;
	}
}

static int next_conv(void *ctx, struct eng_conv **out)
{
	(void)ctx;
	if (n_given == NCONV)
		return 0;
	*out = &convs[n_given++].c;
	if (++n_in_flight > max_in_flight)
		max_in_flight = n_in_flight;
	return 1;
}

static void on_request(void *ctx, const struct eng_conv *c, const struct eng_request_timing *t)
{
	struct conv *v = c->user;
	const struct eng_turn *prev = t->turn > 0 ? &c->turns[t->turn - 1] : NULL;

	(void)ctx;
	n_requests++;
	if (t->turn != v->next_turn++) {
		n_order_bad++;
		tap_diag("conversation %d: turn %d reported, expected %d", v->index, t->turn, v->next_turn - 1);
	}
	if (prev && t->start_time + 1e-9 < v->last_end + prev->env_time_s * env_scale)
		n_wait_bad++;
	v->last_end = t->start_time + t->latency;
	if (t->error) {
		n_failed++;
		return;
	}
	if (memcmp(t->output, c->ids + c->turns[t->turn].prompt_end,
		   sizeof(int32_t) * (size_t)t->output_len) != 0 ||
	    t->output_len != c->turns[t->turn].reply_len)
		n_cache_bad++;
	/* The previous turn's prompt and reply, but its last token, are in
	 * the cache, in whole pages. */
	if (prev && t->cached_tokens != (prev->prompt_end + prev->reply_len - 1) / PS * PS)
		n_cache_bad++;
}

static void on_conversation(void *ctx, const struct eng_conv *c, const struct eng_conv_timing *t)
{
	struct conv *v = c->user;

	(void)ctx;
	n_conv_results++;
	n_skipped += t->n_skipped;
	n_conv_errors += t->error != NULL;
	if (t->n_turns + t->n_skipped == c->n_turns && !v->done)
		v->done = true;
}

static void release_conv(void *ctx, struct eng_conv *c)
{
	(void)ctx;
	(void)c;
	n_in_flight--;
}

static const struct eng_session_ops ops = { next_conv, on_request, on_conversation, release_conv,
						    NULL };

static struct eng_runner *make_runner(int32_t max_context)
{
	struct eng_sched_params p;
	struct eng_runner *r;
	struct eng_error err;

	eng_sched_default_params(&p);
	fake_page_size = p.page_size = PS;
	p.n_pages = 2000;
	p.chunked_prefill_size = 64;
	p.max_context = max_context;
	if (eng_runner_create(&p, NULL, 0, fake_step, NULL, &r, &err) != 0)
		return NULL;
	return r;
}

/* The first turn of conversation i whose prompt and reply exceed max. */
static int first_too_long(int i, int32_t max)
{
	int t = 0;

	while (t < convs[i].c.n_turns &&
	       convs[i].turns[t].prompt_end + convs[i].turns[t].reply_len <= max)
		t++;
	return t;
}

static void replay(int batch, double scale, int32_t long_conv, int32_t max_context)
{
	struct eng_runner *r = make_runner(max_context);
	struct eng_session_params sp;
	struct eng_session *s;
	struct eng_error err;
	struct eng_sched_stats st;
	int total_turns = 0, all_done = 1;

	make_convs(long_conv);
	n_given = n_in_flight = max_in_flight = n_requests = n_order_bad = n_cache_bad = 0;
	n_failed = n_conv_results = n_wait_bad = n_skipped = n_conv_errors = 0;
	env_scale = scale;
	eng_session_default_params(&sp);
	sp.batch_size = batch;
	sp.env_time_scale = scale;
	eng_session_start(r, &sp, &ops, NULL, &s, &err);
	while (!eng_session_done(s))
		eng_runner_poll(r, 0.01, &err);
	for (int i = 0; i < NCONV; i++) {
		total_turns += convs[i].c.n_turns;
		all_done &= convs[i].done;
	}
	tap_ok(n_requests + n_skipped == total_turns && n_conv_results == NCONV && all_done,
	       "batch %d: one record per turn run (%d) and per conversation", batch, n_requests);
	tap_ok(n_order_bad == 0 && n_wait_bad == 0,
	       "batch %d: turns in order, after the scaled environment time", batch);
	tap_ok(max_in_flight <= batch, "batch %d: at most %d conversations in flight (saw %d)",
	       batch, batch, max_in_flight);
	if (long_conv < 0)
		tap_ok(n_cache_bad == 0 && n_failed == 0,
		       "batch %d: replies replayed, each turn hits the previous one in the cache", batch);
	else
		tap_ok(n_failed == 1 && n_conv_errors == 1 &&
		       n_skipped == convs[long_conv].c.n_turns - first_too_long(long_conv, max_context) - 1 &&
		       n_requests == total_turns - n_skipped,
		       "a turn longer than the context fails, ends its conversation (%d turns "
		       "skipped, the result says why); the others run", n_skipped);
	eng_runner_get_stats(r, &st);
	tap_ok(st.held_pages == 0 && st.n_retractions == 0,
	       "batch %d: finished conversations hold no history, nothing retracted", batch);
	eng_session_free(s);
	eng_runner_free(r);
}

/* Turns built on demand: turn k's prompt is turn k-1's prompt, its reply
 * with the first token changed (a reply re-tokenized in the history), and
 * a user message; turn 2 of conversation 1 cannot be built. */
static int32_t built_prompt[NCONV][600];

static int build_turn(struct eng_conv *c, int32_t k, struct eng_turn_ids *out, struct eng_error *err)
{
	struct conv *v = c->user;
	int32_t *p = built_prompt[v->index], n = 0;

	if (v->index == 1 && k == 2)
		return eng_error_set(err, ENG_E_INVALID, NULL, 0, "cannot render turn 2");
	for (int k2 = 0; k2 <= k; k2++) {
		int32_t start = k2 == 0 ? 0 : v->turns[k2 - 1].prompt_end;

		if (k2 > 0) { /* the previous reply, its first token changed */
			p[n++] = 49;
			start++;
		}
		for (int32_t i = start; i < v->turns[k2].prompt_end; i++)
			if (k2 == 0 || i >= v->turns[k2 - 1].prompt_end + v->turns[k2 - 1].reply_len ||
			    i > v->turns[k2 - 1].prompt_end)
				p[n++] = v->ids[i];
	}
	out->prompt = p;
	out->prompt_len = n;
	out->reply = v->ids + v->turns[k].prompt_end;
	out->reply_len = v->turns[k].reply_len;
	return 0;
}

static int n_built_bad;
static int32_t built_prev_len[NCONV];

static void on_built_request(void *ctx, const struct eng_conv *c, const struct eng_request_timing *t)
{
	struct conv *v = c->user;

	(void)ctx;
	n_requests++;
	if (t->error) {
		n_failed++;
		return;
	}
	/* The previous prompt is cached in whole pages, and nothing after it:
	 * the reply differs at its first token. */
	if (t->turn > 0 && t->cached_tokens != built_prev_len[v->index] / PS * PS)
		n_built_bad++;
	built_prev_len[v->index] = t->prompt_len;
}

static void replay_built(void)
{
	static const struct eng_session_ops bops = { next_conv, on_built_request, on_conversation,
						     release_conv, NULL };
	struct eng_runner *r = make_runner(4000);
	struct eng_session_params sp;
	struct eng_session *s;
	struct eng_error err;
	int total_turns = 0;

	make_convs(-1);
	for (int i = 0; i < NCONV; i++) {
		convs[i].c.build_turn = build_turn;
		total_turns += convs[i].c.n_turns;
	}
	n_given = n_in_flight = n_requests = n_failed = n_built_bad = 0;
	n_conv_results = n_skipped = n_conv_errors = 0;
	eng_session_default_params(&sp);
	sp.batch_size = 4;
	eng_session_start(r, &sp, &bops, NULL, &s, &err);
	while (!eng_session_done(s))
		eng_runner_poll(r, 0.01, &err);
	tap_ok(n_built_bad == 0 && n_requests > NCONV,
	       "turns built on demand: the cache holds the previous prompt, not the changed reply");
	tap_ok(n_failed == 1 && n_conv_errors == 1 && n_skipped == convs[1].c.n_turns - 3 &&
	       n_requests + n_skipped == total_turns,
	       "a turn that cannot be built is a failed request and ends its conversation");
	eng_session_free(s);
	eng_runner_free(r);
}

static void cancel(void)
{
	struct eng_runner *r = make_runner(4000);
	struct eng_session_params sp;
	struct eng_session *s;
	struct eng_error err;
	struct eng_sched_stats st;

	make_convs(-1);
	n_given = n_in_flight = n_requests = 0;
	eng_session_default_params(&sp);
	sp.batch_size = 4;
	eng_session_start(r, &sp, &ops, NULL, &s, &err);
	for (int i = 0; i < 3; i++)
		eng_runner_poll(r, 0.01, &err);
	eng_session_cancel(s);
	for (int i = 0; i < 10 && !eng_session_done(s); i++)
		eng_runner_poll(r, 0.01, &err);
	eng_runner_get_stats(r, &st);
	tap_ok(eng_session_done(s) && st.n_running + st.n_waiting == 0 &&
	       st.free_pages + st.cached_pages == 2000,
	       "a cancelled session drains and gives its pages back");
	eng_session_free(s);
	tap_ok(eng_runner_idle(r), "the runner is idle afterwards");
	eng_runner_free(r);
}

int main(void)
{
	replay(1, 0, -1, 4000);
	replay(4, 0.002, -1, 4000);
	replay(16, 0, -1, 4000);
	replay(3, 0, 4, 600);
	replay_built();
	cancel();
	return tap_done();
}
