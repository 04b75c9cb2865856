/*
 * test-runner.c: conversations replayed turn by turn through the runner
 * and the scheduler, on the fake model of fake-step.h.
 *
 * Checks: one timing record per turn and one per conversation; turns of a
 * conversation in order, each submitted after the previous one finished
 * plus its scaled environment time; never more conversations in flight
 * than the batch size; the recorded reply replayed so that every turn
 * after the first hits the whole previous turn in the prefix cache; a
 * turn longer than the context reported as a failed request; a cancelled
 * session drains without losing pages.
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
static int n_failed, n_conv_results, n_wait_bad;
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
	if (t->n_turns == c->n_turns && !v->done)
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

static void replay(int batch, double scale, int32_t long_conv, int32_t max_context)
{
	struct eng_runner *r = make_runner(max_context);
	struct eng_session_params sp;
	struct eng_session *s;
	struct eng_error err;
	int total_turns = 0, all_done = 1;

	make_convs(long_conv);
	n_given = n_in_flight = max_in_flight = n_requests = n_order_bad = n_cache_bad = 0;
	n_failed = n_conv_results = n_wait_bad = 0;
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
	tap_ok(n_requests == total_turns && n_conv_results == NCONV && all_done,
	       "batch %d: one record per turn (%d) and per conversation", batch, total_turns);
	tap_ok(n_order_bad == 0 && n_wait_bad == 0,
	       "batch %d: turns in order, after the scaled environment time", batch);
	tap_ok(max_in_flight <= batch, "batch %d: at most %d conversations in flight (saw %d)",
	       batch, batch, max_in_flight);
	if (long_conv < 0)
		tap_ok(n_cache_bad == 0 && n_failed == 0,
		       "batch %d: replies replayed, each turn hits the previous one in the cache", batch);
	else
		tap_ok(n_failed > 0 && n_requests == total_turns,
		       "turns longer than the context fail alone, reported (%d failed)", n_failed);
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
	cancel();
	return tap_done();
}
