/*
 * test-sampler.c: greedy == argmax, seeded reproducibility, top-k = 1 and a
 * tiny top-p reduce to greedy, top-k never leaves the k best, and the
 * sampled frequencies follow the softmax.  Totality: NaN and infinite
 * logits, temperatures at the ends of the float range and edge values of
 * top-k and top-p give a defined token in range (these once ran the top-k
 * partition off its buffer); parameters no sampler can use are refused by
 * name.
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

/* Draws n tokens with the given parameters; true when every one is in
 * [0, V) and, when want >= 0, equal to want. */
static int draws_are(float temp, int top_k, float top_p, const float *logits, int n, int want)
{
	struct eng_sampler *s = make(temp, top_k, top_p, 11);
	int ok = s != NULL;

	for (int i = 0; ok && i < n; i++) {
		int t = eng_sampler_sample(s, logits);

		ok = t >= 0 && t < V && (want < 0 || t == want);
	}
	eng_sampler_free(s);
	return ok;
}

/* Logits with one clear best (id 7) and the rest spread below it. */
static void spread(float *logits)
{
	fill(logits, 99);
	logits[7] = 10.0f;
}

static void check_extreme_temperatures(void)
{
	float logits[V];

	spread(logits);
	tap_ok(draws_are(1e-39f, 3, 1, logits, 50, 7),
	       "temperature 1e-39 with top-k 3 is greedy (1 / t overflows)");
	tap_ok(draws_are(1e-39f, 0, 1, logits, 50, 7), "temperature 1e-39 alone is greedy");
	tap_ok(draws_are(1e-39f, 0, 0.9f, logits, 50, 7), "temperature 1e-39 with top-p is greedy");
	tap_ok(draws_are(1.4e-45f, 40, 0.5f, logits, 50, 7), "the smallest denormal temperature is greedy");
	tap_ok(draws_are(3e-39f, 3, 1, logits, 50, 7),
	       "a temperature whose inverse is still finite stays in range");
	tap_ok(draws_are(3.4e38f, 3, 1, logits, 200, -1), "temperature FLT_MAX with top-k 3 stays in range");
	tap_ok(draws_are(1e30f, 0, 0.5f, logits, 200, -1), "temperature 1e30 with top-p stays in range");
}

static void check_nan_inf_logits(void)
{
	float logits[V];

	spread(logits);
	logits[3] = NAN;
	tap_ok(eng_argmax(logits, V) == 7, "argmax skips a NaN logit");
	tap_ok(draws_are(1.0f, 3, 1, logits, 200, -1), "one NaN logit with top-k 3 stays in range");
	logits[0] = NAN;
	tap_ok(eng_argmax(logits, V) == 7, "argmax skips a NaN in first place");
	for (int i = 0; i < V; i++)
		logits[i] = i == 7 ? 1.0f : NAN;
	tap_ok(draws_are(1.0f, 0, 1, logits, 100, 7) && draws_are(0.7f, 5, 0.9f, logits, 100, 7),
	       "all NaN but one: that one is always drawn");
	for (int i = 0; i < V; i++)
		logits[i] = NAN;
	tap_ok(eng_argmax(logits, V) == 0 && draws_are(1.0f, 3, 0.9f, logits, 20, 0) &&
	       draws_are(1.0f, 0, 1, logits, 20, 0), "all NaN: token 0, sampled or greedy");
	for (int i = 0; i < V; i++)
		logits[i] = -INFINITY;
	tap_ok(draws_are(1.0f, 3, 0.9f, logits, 20, 0), "all -inf: token 0");
	spread(logits);
	logits[5] = logits[9] = INFINITY;
	{
		struct eng_sampler *s = make(1.0f, 0, 1, 12);
		int ok = 1, seen5 = 0, seen9 = 0;

		for (int i = 0; i < 400; i++) {
			int t = eng_sampler_sample(s, logits);

			ok &= t == 5 || t == 9;
			seen5 += t == 5;
			seen9 += t == 9;
		}
		tap_ok(ok && seen5 > 100 && seen9 > 100,
		       "two +inf logits share the draws (%d, %d)", seen5, seen9);
		eng_sampler_free(s);
	}
	tap_ok(draws_are(0.5f, 1, 1, logits, 20, 5), "+inf logits with top-k 1: the lower id");
	logits[200] = NAN;
	logits[300] = -INFINITY;
	tap_ok(draws_are(2.0f, 0, 0.3f, logits, 200, -1) && draws_are(2.0f, 4, 0.3f, logits, 200, -1),
	       "+inf, -inf and NaN together with top-p stay in range");
}

static void check_edge_params(void)
{
	float logits[V];

	for (int i = 0; i < V; i++)
		logits[i] = 0.0f;
	tap_ok(draws_are(1.0f, 0, 1e-6f, logits, 50, 0),
	       "uniform logits with a tiny top-p: the lowest id, never an empty nucleus");
	spread(logits);
	tap_ok(draws_are(1.0f, V + 5, 1, logits, 200, -1), "top-k above the vocabulary keeps all");
	tap_ok(draws_are(1.0f, 0x7fffffff, 0.999f, logits, 200, -1), "top-k INT_MAX with top-p");
	tap_ok(draws_are(1.0f, 1, 1, logits, 50, 7), "top-k 1 is the argmax");
}

static void check_param_errors(void)
{
	struct eng_sampler_params p = eng_sampler_default_params();
	struct eng_error err;

	p.temperature = INFINITY;
	tap_ok(eng_sampler_check_params(&p, &err) == ENG_E_INVALID && strstr(err.msg, "temperature"),
	       "an infinite temperature is refused: %s", err.msg);
	p.temperature = NAN;
	tap_ok(eng_sampler_check_params(&p, &err) == ENG_E_INVALID, "a NaN temperature is refused");
	p.temperature = 1;
	p.top_p = NAN;
	tap_ok(eng_sampler_check_params(&p, &err) == ENG_E_INVALID && strstr(err.msg, "top_p"),
	       "a NaN top_p is refused: %s", err.msg);
	p.top_p = 1.5f;
	tap_ok(eng_sampler_check_params(&p, &err) == ENG_E_INVALID, "top_p 1.5 is refused");
	p.top_p = 1;
	p.top_k = -1;
	tap_ok(eng_sampler_check_params(&p, &err) == ENG_E_INVALID && strstr(err.msg, "top_k"),
	       "a negative top_k is refused: %s", err.msg);
	p.top_k = 0;
	p.temperature = 1e-39f;
	tap_ok(eng_sampler_check_params(&p, &err) == 0, "temperature 1e-39 is accepted (greedy)");
}

int main(void)
{
	check_repro();
	check_greedy_cases();
	check_truncation();
	check_params();
	check_extreme_temperatures();
	check_nan_inf_logits();
	check_edge_params();
	check_param_errors();
	return tap_done();
}
