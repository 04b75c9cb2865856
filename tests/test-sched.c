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
	int32_t n_out, cached, finish, n_tokens_cb;
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

static struct eng_sched *make(int ps, int n_pages, int chunk, int max_running, int policy,
			      bool no_cache)
{
	struct eng_sched_params p;
	struct eng_sched *s;
	struct eng_error err;
	int32_t stop = STOP;

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

static int submit(struct eng_sched *s, struct job *j)
{
	struct eng_request_params rp = {0};
	struct eng_error err;

	rp.prompt = j->prompt;
	rp.prompt_len = j->prompt_len;
	rp.max_new_tokens = j->max_new;
	rp.ignore_eos = j->ignore_eos;
	rp.user = j;
	return eng_sched_submit(s, &rp, &err);
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
	test_stops();
	return tap_done();
}
