/*
 * test-sched.c: the scheduler against the fake model of fake-step.h, which
 * reads its context back from the KV pages.  Every request's output is
 * compared with the reference computed from the plain token list.
 */
#include "engine/sched.h"
#include "tests/fake-step.h"
#include "tests/tap.h"

#include <stdlib.h>
#include <string.h>

#define VOCAB FAKE_VOCAB
#define STOP 60
#define ref_next fake_ref_next
#define step_fails fake_step_fails

struct job {
	int32_t prompt[600];
	int32_t prompt_len, max_new;
	bool ignore_eos;
	int32_t out[300];
	int32_t n_out, cached, finish, n_tokens_cb, retractions;
	bool done;
	struct eng_sched *stop_sched; /* set: eng_sched_stop at token stop_at */
	int id, stop_at;
	double queue_time;
};

static void on_token(void *user, int32_t tok, int32_t index)
{
	struct job *j = user;

	(void)tok;
	if (index == j->n_tokens_cb)
		j->n_tokens_cb++;
	if (j->stop_sched && index == j->stop_at)
		eng_sched_stop(j->stop_sched, j->id);
}

static void on_finish(void *user, const struct eng_request_result *r)
{
	struct job *j = user;

	memcpy(j->out, r->output, sizeof(int32_t) * (size_t)r->n_output);
	j->n_out = r->n_output;
	j->cached = r->cached_tokens;
	j->finish = r->finish;
	j->queue_time = r->queue_time;
	j->retractions = r->n_retractions;
	j->done = true;
}

/* The output the reference model gives for the job. */
static int check_job(const struct job *j)
{
	int32_t t[1000];
	int32_t n = j->prompt_len;

	memcpy(t, j->prompt, sizeof(int32_t) * (size_t)n);
	for (int32_t i = 0; i < j->n_out; i++) {
		int32_t want = ref_next(t, n);

		if (j->out[i] != want)
			return 0;
		t[n++] = want;
		if (want == STOP && !j->ignore_eos)
			return i == j->n_out - 1 && j->finish == ENG_FINISH_STOP;
	}
	return j->n_out == j->max_new && j->finish == ENG_FINISH_LENGTH &&
	       j->n_tokens_cb == j->n_out;
}

static const struct eng_sched_callbacks cbs = { on_token, on_finish };

static struct eng_sched *make_stop(int ps, int n_pages, int chunk, int max_running, int policy,
				   bool no_cache, int32_t stop)
{
	struct eng_sched_params p;
	struct eng_sched *s;
	struct eng_error err;

	eng_sched_default_params(&p);
	fake_page_size = p.page_size = ps;
	p.n_pages = n_pages;
	p.chunked_prefill_size = chunk;
	p.max_running_requests = max_running;
	p.policy = policy;
	p.disable_radix_cache = no_cache;
	p.max_context = 1000;
	if (eng_sched_create(&p, &stop, 1, fake_step, NULL, &cbs, &s, &err) != 0)
		return NULL;
	return s;
}

static struct eng_sched *make(int ps, int n_pages, int chunk, int max_running, int policy,
			      bool no_cache)
{
	return make_stop(ps, n_pages, chunk, max_running, policy, no_cache, STOP);
}

static int run_all(struct eng_sched *s)
{
	struct eng_error err;
	int guard = 0;

	while (eng_sched_busy(s) && guard++ < 200000)
		eng_sched_step(s, &err);
	return !eng_sched_busy(s);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

/* Jobs that share a "system prompt" and come in families of growing
 * prompts, as agent turns do. */
static void make_jobs(struct job *jobs, int n)
{
	int32_t sys[40];

	for (int i = 0; i < 40; i++)
		sys[i] = (int32_t)rnd(VOCAB - 1);
	for (int i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		int fam = i % 5;

		memset(j, 0, sizeof(*j));
		memcpy(j->prompt, sys, sizeof(sys));
		j->prompt_len = 40;
		for (int k = 0; k < 10 + fam * 7 + (i / 5) * 30; k++)
			j->prompt[j->prompt_len++] = (int32_t)((fam * 13 + k * 7) % (VOCAB - 1));
		j->max_new = 1 + (int32_t)rnd(40);
		j->ignore_eos = rnd(2);
	}
}

static int submit_turn(struct eng_sched *s, struct job *j, uint64_t conv, bool more_turns)
{
	struct eng_request_params rp = {0};
	struct eng_error err;

	rp.prompt = j->prompt;
	rp.prompt_len = j->prompt_len;
	rp.max_new_tokens = j->max_new;
	rp.ignore_eos = j->ignore_eos;
	rp.conversation = conv;
	rp.more_turns = more_turns;
	rp.user = j;
	return eng_sched_submit(s, &rp, &err);
}

static int submit(struct eng_sched *s, struct job *j)
{
	return submit_turn(s, j, 0, false);
}

/* A job of len distinct tokens starting at base. */
static void plain_job(struct job *j, int32_t base, int32_t len, int32_t max_new, bool exact)
{
	memset(j, 0, sizeof(*j));
	for (int32_t k = 0; k < len; k++)
		j->prompt[k] = (base + k * 7) % (VOCAB - 1);
	j->prompt_len = len;
	j->max_new = max_new;
	j->ignore_eos = exact;
}

/* Four requests of known length whose full KV (13 pages each) does not
 * fit four at a time in 40 pages: the fourth waits instead of being
 * admitted and retracted. */
static void test_reserve(void)
{
	static struct job j[4];
	struct eng_sched *s = make(4, 40, 64, 0, ENG_SCHED_POLICY_FCFS, false);
	struct eng_sched_stats st;
	struct eng_error err;
	int ok = 1, max_running = 0, guard = 0;

	for (int i = 0; i < 4; i++) {
		plain_job(&j[i], 1 + i, 20, 30, true);
		submit(s, &j[i]);
	}
	while (eng_sched_busy(s) && guard++ < 1000) {
		eng_sched_step(s, &err);
		eng_sched_get_stats(s, &st);
		if (st.n_running > max_running)
			max_running = st.n_running;
	}
	for (int i = 0; i < 4; i++)
		ok &= j[i].done && check_job(&j[i]);
	tap_ok(ok && st.n_retractions == 0 && max_running == 3,
	       "reservation: 3 of 4 requests run at once, the 4th waits, 0 retractions "
	       "(saw %d running, %lld retractions)", max_running, (long long)st.n_retractions);
	eng_sched_free(s);
}

/* Requests a stop token could end early are admitted on an estimate; when
 * it falls short (no stop token comes), the one with the fewest generated
 * tokens is retracted, the ratio is raised, and both still finish right. */
static void test_retract(void)
{
	static struct job a, b;
	struct eng_sched *s = make_stop(4, 50, 64, 0, ENG_SCHED_POLICY_FCFS, false, 999);
	struct eng_sched_stats st;
	struct eng_error err;

	plain_job(&a, 3, 8, 100, false);
	plain_job(&b, 5, 40, 100, false);
	submit(s, &a);
	for (int i = 0; i < 10; i++)
		eng_sched_step(s, &err);
	submit(s, &b);
	run_all(s);
	eng_sched_get_stats(s, &st);
	a.ignore_eos = b.ignore_eos = true; /* for check_job: stop id 999 never came */
	tap_ok(a.done && b.done && check_job(&a) && check_job(&b),
	       "estimates short: both requests give the reference outputs");
	tap_ok(st.n_retractions >= 1 && a.retractions == 0 && b.retractions >= 1,
	       "the request with fewer generated tokens is the one retracted (%d, %d)",
	       a.retractions, b.retractions);
	tap_ok(st.new_token_ratio > 0.7, "a retraction raised the new-token ratio (%.3f)",
	       st.new_token_ratio);
	eng_sched_free(s);
}

/* Two finished first turns in the cache: conversation 1's, held (more
 * turns to come), and conversation 2's, its last, used more recently.
 * A request that needs room evicts conversation 2's, and conversation 1's
 * next turn finds its whole history. */
static void test_held(void)
{
	static struct job c1, c2, filler, c1b;
	struct eng_sched *s = make(4, 40, 128, 0, ENG_SCHED_POLICY_FCFS, false);
	struct eng_sched_stats st;

	plain_job(&c1, 1, 40, 8, true);
	plain_job(&c2, 2, 40, 8, true);
	plain_job(&filler, 4, 80, 8, true);
	submit_turn(s, &c1, 1, true);
	run_all(s);
	submit_turn(s, &c2, 2, false);
	run_all(s);
	eng_sched_get_stats(s, &st);
	tap_ok(st.held_pages == 11 && st.cached_pages == 22,
	       "held: conversation 1's 11 pages of 22 cached (%zu, %zu)", st.held_pages,
	       st.cached_pages);
	submit(s, &filler);
	run_all(s);
	plain_job(&c1b, 0, 0, 5, true);
	memcpy(c1b.prompt, c1.prompt, sizeof(int32_t) * 40);
	memcpy(c1b.prompt + 40, c1.out, sizeof(int32_t) * 8);
	for (int k = 0; k < 10; k++)
		c1b.prompt[48 + k] = (k * 11) % (VOCAB - 1);
	c1b.prompt_len = 58;
	submit_turn(s, &c1b, 1, false);
	run_all(s);
	eng_sched_get_stats(s, &st);
	tap_ok(filler.done && check_job(&filler) && c1b.done && check_job(&c1b) &&
	       c1b.cached == 44, "under pressure the held history survives: the next turn "
	       "finds %d of its 47 computed tokens cached", c1b.cached);
	tap_ok(st.held_pages == 0, "its last turn leaves nothing held");
	submit_turn(s, &c2, 3, true);
	run_all(s);
	eng_sched_end_conversation(s, 3);
	eng_sched_get_stats(s, &st);
	tap_ok(st.held_pages == 0, "an ended conversation holds nothing");
	eng_sched_free(s);
}

static void scenario(const char *name, int ps, int n_pages, int chunk, int max_running,
		     int policy, bool no_cache)
{
	static struct job jobs[40];
	struct eng_sched *s = make(ps, n_pages, chunk, max_running, policy, no_cache);
	struct eng_sched_stats st;
	int ok = 1, all_done;

	make_jobs(jobs, 40);
	for (int i = 0; i < 40; i++)
		if (submit(s, &jobs[i]) < 0)
			ok = 0;
	all_done = run_all(s);
	for (int i = 0; i < 40; i++)
		if (!jobs[i].done || !check_job(&jobs[i]))
			ok = 0;
	eng_sched_get_stats(s, &st);
	tap_ok(all_done && ok, "%s: 40 requests give the reference outputs", name);
	tap_ok(st.free_pages + st.cached_pages == (size_t)n_pages,
	       "%s: every page is free or cached at the end", name);
	if (n_pages >= 1000)
		tap_ok(st.n_retractions == 0 &&
		       st.computed_tokens == st.prompt_tokens - st.cached_tokens,
		       "%s: with ample memory only uncached prompt tokens are computed", name);
	else
		tap_diag("%s: %lld retractions", name, (long long)st.n_retractions);
	eng_sched_free(s);
}

/* Agent turns: each turn's prompt is the previous prompt + its output +
 * new tokens, so all but the partial last page should be cached. */
static void test_turns(void)
{
	static struct job j[6];
	struct eng_sched *s = make(8, 2000, 64, 0, ENG_SCHED_POLICY_FCFS, false);
	int ok = 1;

	memset(j, 0, sizeof(j));
	for (int k = 0; k < 30; k++)
		j[0].prompt[k] = k % 50;
	j[0].prompt_len = 30;
	for (int t = 0; t < 6; t++) {
		j[t].max_new = 5 + t;
		j[t].ignore_eos = true;
		submit(s, &j[t]);
		run_all(s);
		ok &= j[t].done && check_job(&j[t]);
		if (t > 0) {
			int32_t prev = j[t - 1].prompt_len + j[t - 1].n_out - 1; /* KV'd tokens */
			ok &= j[t].cached == prev / 8 * 8;
		}
		if (t < 5) {
			memcpy(j[t + 1].prompt, j[t].prompt, sizeof(int32_t) * (size_t)j[t].prompt_len);
			memcpy(j[t + 1].prompt + j[t].prompt_len, j[t].out,
			       sizeof(int32_t) * (size_t)j[t].n_out);
			j[t + 1].prompt_len = j[t].prompt_len + j[t].n_out;
			for (int k = 0; k < 11; k++)
				j[t + 1].prompt[j[t + 1].prompt_len++] = (k * 3 + t) % 50;
		}
	}
	tap_ok(ok, "turns: each turn hits the previous turn's prompt and output in the cache");
	eng_sched_free(s);
}

static void test_errors(void)
{
	static struct job j[3];
	struct eng_sched *s = make(4, 10, 16, 0, ENG_SCHED_POLICY_FCFS, false);
	struct eng_request_params rp = {0};
	struct eng_error err;
	int32_t toks[100] = {0};
	int id;

	rp.prompt = toks;
	rp.prompt_len = 38;
	rp.max_new_tokens = 3;
	tap_ok(eng_sched_submit(s, &rp, &err) == ENG_E_RANGE,
	       "a request larger than the whole pool is refused: %s", err.msg);
	rp.prompt_len = 990;
	rp.max_new_tokens = 20;
	tap_ok(eng_sched_submit(s, &rp, &err) == ENG_E_RANGE,
	       "a request longer than the context is refused: %s", err.msg);
	memset(j, 0, sizeof(j));
	for (int i = 0; i < 3; i++) {
		j[i].prompt_len = 10;
		for (int k = 0; k < 10; k++)
			j[i].prompt[k] = i * 10 + k;
		j[i].max_new = 20;
		j[i].ignore_eos = true;
	}
	submit(s, &j[0]);
	id = submit(s, &j[1]);
	eng_sched_cancel(s, id);
	step_fails = 1;
	eng_sched_step(s, &err);
	submit(s, &j[2]);
	run_all(s);
	tap_ok(j[0].done && j[0].finish == ENG_FINISH_ERROR, "a failed step fails its requests");
	tap_ok(j[1].done && j[1].finish == ENG_FINISH_ABORT, "a cancelled request is aborted");
	tap_ok(j[2].done && check_job(&j[2]), "the scheduler goes on after a failed step");
	eng_sched_free(s);
}

static void test_forced(void)
{
	static struct job j;
	struct eng_sched *s = make(4, 100, 16, 0, ENG_SCHED_POLICY_FCFS, false);
	struct eng_request_params rp = {0};
	struct eng_error err;
	int32_t forced[5] = {1, 2, 3, 4, 5};

	memset(&j, 0, sizeof(j));
	j.prompt_len = 7;
	rp.prompt = j.prompt;
	rp.prompt_len = 7;
	rp.max_new_tokens = 5;
	rp.forced_output = forced;
	rp.ignore_eos = true;
	rp.user = &j;
	eng_sched_submit(s, &rp, &err);
	run_all(s);
	tap_ok(j.done && j.n_out == 5 && memcmp(j.out, forced, sizeof(forced)) == 0,
	       "forced output replaces the sampled tokens");
	eng_sched_free(s);
}

/* A forced reply of 1 2 3 4 5 with the request's own stop tokens,
 * min_tokens and a stop from on_token. */
static struct job *stop_job(struct eng_sched *s, const int32_t *stops, int32_t n_stops,
			    int32_t min_tokens, int stop_at)
{
	static struct job jobs[8];
	static int next;
	static const int32_t forced[5] = {1, 2, 3, 4, 5};
	struct job *j = &jobs[next++ % 8];
	struct eng_request_params rp = {0};
	struct eng_error err;

	memset(j, 0, sizeof(*j));
	j->prompt_len = 7;
	rp.prompt = j->prompt;
	rp.prompt_len = 7;
	rp.max_new_tokens = 5;
	rp.forced_output = forced;
	rp.ignore_eos = true;
	rp.stop_ids = stops;
	rp.n_stop_ids = n_stops;
	rp.min_tokens = min_tokens;
	rp.user = j;
	j->stop_sched = stop_at >= 0 ? s : NULL;
	j->stop_at = stop_at;
	j->id = eng_sched_submit(s, &rp, &err);
	run_all(s);
	return j;
}

static void test_stops(void)
{
	struct eng_sched *s = make(4, 100, 16, 0, ENG_SCHED_POLICY_FCFS, false);
	int32_t three = 3, four = 4;
	struct job *j;

	j = stop_job(s, &three, 1, 0, -1);
	tap_ok(j->done && j->n_out == 3 && j->finish == ENG_FINISH_STOP,
	       "a request's own stop token ends it, ignore_eos or not");
	j = stop_job(s, &three, 1, 3, -1);
	tap_ok(j->done && j->n_out == 5 && j->finish == ENG_FINISH_LENGTH,
	       "no stop token counts before min_tokens");
	j = stop_job(s, &four, 1, 3, -1);
	tap_ok(j->done && j->n_out == 4 && j->finish == ENG_FINISH_STOP,
	       "the first token after min_tokens may stop");
	j = stop_job(s, NULL, 0, 0, 1);
	tap_ok(j->done && j->n_out == 2 && j->finish == ENG_FINISH_STOP,
	       "eng_sched_stop from on_token ends the request with that token");
	tap_ok(j->queue_time >= 0 && j->queue_time < 10, "the queue time is reported (%g s)",
	       j->queue_time);
	eng_sched_free(s);
}

/* The ceilings of the steps are summed: with 1000 bytes of weights at
 * 1000 bytes/s and nothing else, each step's is one second. */
static void test_roofline(void)
{
	static struct job j;
	struct eng_sched_params p;
	struct eng_sched *s;
	struct eng_sched_stats st;
	struct eng_error err;
	int32_t stop = STOP;

	eng_sched_default_params(&p);
	fake_page_size = p.page_size = 4;
	p.n_pages = 100;
	p.max_context = 1000;
	p.roofline.shape.weight_bytes = 1000;
	p.roofline.rates.bandwidth_bytes_s = 1000;
	p.roofline.rates.gemm_flops_s = 1e9;
	eng_sched_create(&p, &stop, 1, fake_step, NULL, &cbs, &s, &err);
	plain_job(&j, 1, 10, 6, true);
	submit(s, &j);
	run_all(s);
	eng_sched_get_stats(s, &st);
	tap_ok(st.n_steps == 6 && st.roofline_seconds == 6.0 && st.roofline_bytes == 6000.0 &&
	       st.roofline_bandwidth == 1000, "the run's roofline is the sum of its steps' (%.1f s)",
	       st.roofline_seconds);
	eng_sched_free(s);
}

/* The longest prompt chunk of a step with decode rows, and of one without
 * (steps through fake_step). */
static int32_t chunk_with_dec, chunk_alone;

static int chunk_step(void *ctx, const struct eng_step_seq *seqs, int32_t n, int32_t *next,
		      struct eng_error *err)
{
	int32_t most = 0, dec = 0;

	for (int32_t k = 0; k < n; k++) {
		dec += seqs[k].n_tokens == 1;
		most = seqs[k].n_tokens > most ? seqs[k].n_tokens : most;
	}
	if (dec && most > 1 && most > chunk_with_dec)
		chunk_with_dec = most;
	if (!dec && most > chunk_alone)
		chunk_alone = most;
	return fake_step(ctx, seqs, n, next, err);
}

/* prefill_step_ratio: beside decode rows a prompt goes in chunks the
 * roofline allows (at least ENG_PREFILL_STEP_FLOOR tokens), alone in one
 * chunk; at 0 the chunk size alone decides.  The outputs stay right. */
static void test_step_ratio(void)
{
	static struct job j[3];
	static const double ratio[3] = { 0, 1, 3 };
	int32_t with[3], alone[3];
	int ok = 1;

	for (int t = 0; t < 3; t++) {
		struct eng_sched_params p;
		struct eng_sched *s;
		struct eng_error err;
		int32_t stop = STOP;

		eng_sched_default_params(&p);
		fake_page_size = p.page_size = 4;
		p.n_pages = 1000;
		p.max_context = 1000;
		p.chunked_prefill_size = 4096;
		/* a decode step: ~0.1 s of bytes; a prompt token: 1 ms of FLOPs */
		p.roofline.shape.weight_bytes = 1e5;
		p.roofline.shape.linear_flops = 1e3;
		p.roofline.rates.bandwidth_bytes_s = 1e6;
		p.roofline.rates.gemm_flops_s = 1e6;
		p.prefill_step_ratio = ratio[t];
		chunk_with_dec = chunk_alone = 0;
		eng_sched_create(&p, &stop, 1, chunk_step, NULL, &cbs, &s, &err);
		plain_job(&j[0], 1, 8, 250, true);   /* decoding while the others come */
		plain_job(&j[1], 3, 590, 2, true);
		plain_job(&j[2], 5, 500, 2, true);
		submit(s, &j[0]);
		eng_sched_step(s, &err);
		eng_sched_step(s, &err);
		submit(s, &j[1]);
		ok &= run_all(s);
		submit(s, &j[2]);   /* alone */
		ok &= run_all(s);
		for (int k = 0; k < 3; k++)
			ok &= check_job(&j[k]);
		with[t] = chunk_with_dec;
		alone[t] = chunk_alone;
		eng_sched_free(s);
	}
	/* ratio 1: the idle arithmetic of a 0.1 s decode step, ~100 tokens,
	 * so the floor; ratio 3: ~300 */
	tap_ok(ok && with[0] == 590 && with[1] == ENG_PREFILL_STEP_FLOOR && with[2] > 256 &&
	       with[2] < 590 && alone[0] == 500 && alone[1] == 500 && alone[2] == 500,
	       "prefill step ratio 0, 1, 3: chunks beside decode rows %d, %d, %d tokens, alone "
	       "%d, %d, %d; outputs right", with[0], with[1], with[2], alone[0], alone[1], alone[2]);
}

int main(void)
{
	scenario("ample memory, fcfs", 4, 4000, 64, 0, ENG_SCHED_POLICY_FCFS, false);
	scenario("ample memory, lpm", 16, 1000, 100, 0, ENG_SCHED_POLICY_LPM, false);
	scenario("no radix cache", 4, 4000, 64, 0, ENG_SCHED_POLICY_FCFS, true);
	scenario("page size 1, small chunks", 1, 8000, 7, 3, ENG_SCHED_POLICY_FCFS, false);
	scenario("tight memory: eviction and retraction", 4, 160, 32, 0,
		 ENG_SCHED_POLICY_FCFS, false);
	scenario("tight memory, lpm, no cache", 8, 80, 50, 0, ENG_SCHED_POLICY_LPM, true);
	test_turns();
	test_errors();
	test_forced();
	test_reserve();
	test_retract();
	test_held();
	test_roofline();
	test_step_ratio();
	test_stops();
	return tap_done();
}
