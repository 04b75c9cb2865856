/*
 * test-sched-reuse.c: agent conversations replayed through the runner and
 * the scheduler (fake model of fake-step.h), at several batch sizes and
 * pool sizes: the reproducer of conversations outgrowing the KV pool, in
 * small.
 *
 * The optimum is what the same replay computes with a pool too large to
 * ever evict.  While the pool holds every conversation in flight, the
 * prompt tokens computed stay within 5% of it and nothing is retracted;
 * below that, every turn still completes with the recorded reply, nothing
 * is retracted (every output length is known), and the recomputation
 * stays a bounded multiple, not a cliff.  The scheduler's own count of
 * what an unbounded cache would compute is checked against the optimum.
 */
#include "engine/runner.h"
#include "tests/fake-step.h"
#include "tests/tap.h"

#include <stdlib.h>
#include <string.h>

#define NCONV 8
#define PS 4
#define SYS 40            /* tokens of the shared system prompt */

struct conv {
	struct eng_conv c;
	int32_t ids[1200];
	struct eng_turn turns[12];
};

static struct conv convs[NCONV];
static int n_given, n_bad;
static int32_t largest;   /* tokens of the longest conversation */

static uint64_t rng;
static int32_t rnd(int32_t lo, int32_t hi)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return lo + (int32_t)(rng % (uint64_t)(hi - lo + 1));
}

/* A system prompt, a problem statement, then turns of a reply and an
 * observation, as an agent's trajectory renders. */
static void make_convs(void)
{
	rng = 0x2545f4914f6cdd1dull;
	largest = 0;
	for (int i = 0; i < NCONV; i++) {
		struct conv *v = &convs[i];
		int32_t n = 0, turns = rnd(5, 12);

		memset(v, 0, sizeof(*v));
		for (int k = 0; k < SYS; k++)
			v->ids[n++] = k % 50;
		for (int k = rnd(20, 40); k > 0; k--)
			v->ids[n++] = rnd(0, 59);
		for (int t = 0; t < turns; t++) {
			v->turns[t].prompt_end = n;
			v->turns[t].reply_len = rnd(8, 30);
			v->turns[t].env_time_s = 0.1;
			n += v->turns[t].reply_len;
			for (int k = n - v->turns[t].reply_len; k < n; k++)
				v->ids[k] = rnd(0, 59);
			for (int k = rnd(15, 60); k > 0 && t + 1 < turns; k--)
				v->ids[n++] = rnd(0, 59);
		}
		v->c.ids = v->ids;
		v->c.n_ids = n;
		v->c.turns = v->turns;
		v->c.n_turns = turns;
		v->c.user = v;
		if (n > largest)
			largest = n;
	}
}

static int next_conv(void *ctx, struct eng_conv **out)
{
	(void)ctx;
	if (n_given == NCONV)
		return 0;
	*out = &convs[n_given++].c;
	return 1;
}

static void on_request(void *ctx, const struct eng_conv *c, const struct eng_request_timing *t)
{
	(void)ctx;
	if (t->error || t->output_len != c->turns[t->turn].reply_len ||
	    memcmp(t->output, c->ids + c->turns[t->turn].prompt_end,
		   sizeof(int32_t) * (size_t)t->output_len) != 0)
		n_bad++;
}

static const struct eng_session_ops ops = { next_conv, on_request, NULL, NULL, NULL };

/* Replays all conversations at batch size batch over a pool of n_pages. */
static void replay(int batch, int32_t n_pages, struct eng_sched_stats *st)
{
	struct eng_sched_params p;
	struct eng_session_params sp;
	struct eng_runner *r;
	struct eng_session *s;
	struct eng_error err;

	eng_sched_default_params(&p);
	fake_page_size = p.page_size = PS;
	p.n_pages = n_pages;
	p.chunked_prefill_size = 128;
	p.max_context = 2000;
	n_given = n_bad = 0;
	if (eng_runner_create(&p, NULL, 0, fake_step, NULL, &r, &err) != 0) {
		memset(st, 0, sizeof(*st));
		return;
	}
	eng_session_default_params(&sp);
	sp.batch_size = batch;
	eng_session_start(r, &sp, &ops, NULL, &s, &err);
	while (!eng_session_done(s))
		eng_runner_poll(r, 0.01, &err);
	eng_runner_get_stats(r, st);
	eng_session_free(s);
	eng_runner_free(r);
}

int main(void)
{
	static const int batches[] = { 1, 2, 4, 8 };
	struct eng_sched_stats opt, st;
	int32_t working_set;

	make_convs();
	/* Every conversation at its longest, in whole pages, plus a page. */
	working_set = NCONV * (largest / PS + 2);
	for (size_t b = 0; b < sizeof(batches) / sizeof(batches[0]); b++) {
		int batch = batches[b];

		replay(batch, FAKE_MAX_PAGES, &opt);
		tap_ok(n_bad == 0 && opt.n_retractions == 0 &&
		       opt.unbounded_tokens == opt.computed_tokens,
		       "batch %d, unbounded pool: %lld prompt tokens computed, all needed", batch,
		       (long long)opt.computed_tokens);
		replay(batch, working_set, &st);
		tap_ok(n_bad == 0 && st.n_retractions == 0 &&
		       st.computed_tokens * 100 <= opt.computed_tokens * 105 &&
		       st.unbounded_tokens == opt.computed_tokens,
		       "batch %d, pool of %d pages holds the working set: %lld computed (%.3f x the "
		       "optimum), 0 retractions", batch, working_set, (long long)st.computed_tokens,
		       (double)st.computed_tokens / (double)opt.computed_tokens);
		replay(batch, working_set / 3, &st);
		tap_ok(n_bad == 0 && st.n_retractions == 0 &&
		       st.computed_tokens <= 2 * opt.computed_tokens,
		       "batch %d, pool of a third of the working set: %lld computed (%.3f x the "
		       "optimum), 0 retractions", batch, (long long)st.computed_tokens,
		       (double)st.computed_tokens / (double)opt.computed_tokens);
	}
	return tap_done();
}
