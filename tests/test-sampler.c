/*
 * test-sampler.c: greedy == argmax, seeded reproducibility, top-k = 1 and a
 * tiny top-p reduce to greedy, top-k never leaves the k best, and the
 * sampled frequencies follow the softmax.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"
#include "tests/tap.h"
#include "tests/test-model-helper.h"

#define V 1000
#define N_DRAWS 200

static struct eng_sampler *make(float temp, int top_k, float top_p, uint64_t seed)
{
	struct eng_sampler_params p = { temp, top_k, top_p, seed };
	struct eng_sampler *s = NULL;
	struct eng_error err;

	if (eng_sampler_create(&p, V, &s, &err))
		tap_diag("sampler: %s", err.msg);
	return s;
}

static void fill(float *logits, uint64_t seed)
{
	int i;

	for (i = 0; i < V; i++)
		logits[i] = 3.0f * tm_uniform(&seed);
}

/* Draws N_DRAWS tokens from logits regenerated per draw. */
static void draw(struct eng_sampler *s, int *out)
{
	float logits[V];
	int i;

	for (i = 0; i < N_DRAWS; i++) {
		fill(logits, 1000 + (uint64_t)i);
		out[i] = eng_sampler_sample(s, logits);
	}
}

static int all_greedy(struct eng_sampler *s)
{
	float logits[V];
	int i, ok = 1;

	for (i = 0; i < N_DRAWS; i++) {
		fill(logits, 1000 + (uint64_t)i);
		ok &= eng_sampler_sample(s, logits) == eng_argmax(logits, V);
	}
	return ok;
}

static void check_repro(void)
{
	struct eng_sampler *a = make(0.8f, 40, 0.95f, 7), *b = make(0.8f, 40, 0.95f, 7);
	struct eng_sampler *c = make(0.8f, 40, 0.95f, 8);
	int ta[N_DRAWS], tb[N_DRAWS], tc[N_DRAWS];

	draw(a, ta);
	draw(b, tb);
	draw(c, tc);
	tap_ok(!memcmp(ta, tb, sizeof(ta)), "same seed, same logits: the same %d tokens", N_DRAWS);
	tap_ok(memcmp(ta, tc, sizeof(ta)) != 0, "another seed gives other tokens");
	eng_sampler_free(a);
	eng_sampler_free(b);
	eng_sampler_free(c);
}

static void check_greedy_cases(void)
{
	struct eng_sampler *g = make(0, 0, 1, 1), *k1 = make(1.5f, 1, 1, 2);
	struct eng_sampler *p0 = make(1.0f, 0, 1e-6f, 3), *kp = make(2.0f, 50, 1e-6f, 4);
	float ties[V];

	tap_ok(all_greedy(g), "temperature 0 is argmax");
	tap_ok(all_greedy(k1), "top-k 1 is greedy at any temperature");
	tap_ok(all_greedy(p0), "a tiny top-p is greedy");
	tap_ok(all_greedy(kp), "top-k 50 with a tiny top-p is greedy");
	memset(ties, 0, sizeof(ties));
	ties[5] = ties[9] = 1;
	tap_ok(eng_sampler_sample(g, ties) == 5 && eng_argmax(ties, V) == 5,
	       "argmax takes the lowest id on ties");
	eng_sampler_free(g);
	eng_sampler_free(k1);
	eng_sampler_free(p0);
	eng_sampler_free(kp);
}

/* top-k 3 only yields the three best; top-p 0.5 only the nucleus. */
static void check_truncation(void)
{
	struct eng_sampler *k3 = make(1.0f, 3, 1, 5), *pp = make(1.0f, 0, 0.5f, 6);
	float logits[V];
	int i, t, ok_k = 1, ok_p = 1, seen[3] = { 0 };

	for (i = 0; i < V; i++)
		logits[i] = -10.0f - (float)(i % 7);
	logits[10] = 2.0f;     /* p ~ 0.665 of the top three */
	logits[20] = 1.0f;
	logits[30] = 0.5f;
	for (i = 0; i < 3000; i++) {
		t = eng_sampler_sample(k3, logits);
		ok_k &= t == 10 || t == 20 || t == 30;
		seen[t == 10 ? 0 : t == 20 ? 1 : 2]++;
		/* the best alone holds more than half: the nucleus is {10} */
		ok_p &= eng_sampler_sample(pp, logits) == 10;
	}
	tap_ok(ok_k, "top-k 3 draws only the three most likely tokens");
	tap_ok(fabs(seen[0] / 3000.0 - 0.6285) < 0.04 && fabs(seen[1] / 3000.0 - 0.2312) < 0.04,
	       "top-k 3 frequencies follow the renormalised softmax (%d %d %d)",
	       seen[0], seen[1], seen[2]);
	tap_ok(ok_p, "top-p 0.5 keeps only a token holding more than half the mass");
	eng_sampler_free(k3);
	eng_sampler_free(pp);
}

static void check_params(void)
{
	struct eng_sampler_params p = eng_sampler_default_params();
	struct eng_sampler *s;
	struct eng_error err;

	p.top_p = 0;
	tap_ok(eng_sampler_create(&p, V, &s, &err) == ENG_E_INVALID && !s, "top_p 0 is refused");
	p.top_p = 1;
	p.temperature = -1;
	tap_ok(eng_sampler_create(&p, V, &s, &err) == ENG_E_INVALID, "a negative temperature is refused");
}

int main(void)
{
	check_repro();
	check_greedy_cases();
	check_truncation();
	check_params();
	return tap_done();
}
