/*
 * sampler.c: greedy / temperature / top-k / top-p sampling.
 *
 * The generator is xoshiro256** seeded through splitmix64, so a seed means
 * the same stream everywhere (no rand(), no global state).  Candidates are
 * ordered by probability, then by token id, so ties never depend on the
 * sort implementation.  Without top-k, top-p first drops tokens whose
 * probability is below (1 - p) / (vocab - 1): the dropped ones together
 * hold less than 1 - p, so they cannot be in the nucleus, and the sort
 * stays short.
 *
 * Sampling is total: any logits and any parameters that pass
 * eng_sampler_check_params give a token in [0, vocab).  A NaN logit counts
 * as -inf (never drawn, never the argmax unless every logit is NaN, when
 * the argmax is token 0).  Logits of +inf share the whole mass equally, the
 * limit of the softmax.  A temperature so small that 1 / temperature
 * overflows a float is greedy, its limit; a huge one is uniform over the
 * finite logits.  With no usable logit (all NaN or -inf) the result is the
 * argmax.  Every probability is finite and the kept mass is never empty,
 * so the partition and the draw stay inside the candidates.
 *
 * Not here: repetition penalties, min-p, logit bias.
 */
#include "engine/sampler.h"
#include "engine/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

struct cand {
	float p;
	int id;
};

struct eng_sampler {
	struct eng_sampler_params p;
	int vocab;
	uint64_t s[4];        /* xoshiro256** state */
	struct cand *cand;    /* (vocab) scratch */
};

struct eng_sampler_params eng_sampler_default_params(void)
{
	struct eng_sampler_params p = { 0.0f, 0, 1.0f, 0 };

	return p;
}

/* Uniform in [0, 1) with 53 random bits. */
static double next_unit(uint64_t *s)
{
	return eng_unit_double(eng_xoshiro_next(s));
}

int eng_sampler_check_params(const struct eng_sampler_params *p, struct eng_error *err)
{
	if (!(p->temperature >= 0) || !isfinite(p->temperature))
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "temperature must be a finite number >= 0, not %g",
				     (double)p->temperature);
	if (p->top_k < 0)
		return eng_error_set(err, ENG_E_INVALID, NULL, 0, "top_k must be >= 0, not %d",
				     p->top_k);
	if (!(p->top_p > 0 && p->top_p <= 1))
		return eng_error_set(err, ENG_E_INVALID, NULL, 0, "top_p must be in (0, 1], not %g",
				     (double)p->top_p);
	return 0;
}

int eng_sampler_create(const struct eng_sampler_params *p, int vocab,
		       struct eng_sampler **out, struct eng_error *err)
{
	struct eng_sampler *s;
	int rc = eng_sampler_check_params(p, err);

	*out = NULL;
	if (rc != 0)
		return rc;
	if (vocab < 1)
		return eng_error_set(err, ENG_E_INVALID, "sampler", 0, "vocab must be >= 1, not %d",
				     vocab);
	s = calloc(1, sizeof(*s));
	if (!s || !(s->cand = malloc((size_t)vocab * sizeof(*s->cand)))) {
		free(s);
		return eng_error_set(err, ENG_E_NOMEM, "sampler", 0, "out of memory");
	}
	s->p = *p;
	s->vocab = vocab;
	eng_xoshiro_seed(s->s, p->seed);
	*out = s;
	return 0;
}

void eng_sampler_free(struct eng_sampler *s)
{
	if (!s)
		return;
	free(s->cand);
	free(s);
}

int eng_argmax(const float *x, int n)
{
	int i, best = 0;

	/* NaN compares false with everything: start from the first number. */
	while (best < n - 1 && isnan(x[best]))
		best++;
	if (isnan(x[best]))
		return 0;
	for (i = best + 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->p != y->p)
		return x->p > y->p ? -1 : 1;
	return x->id - y->id;
}

/* Moves the k best candidates to the front (unordered); quickselect. */
static void select_top(struct cand *c, int n, int k)
{
	int lo = 0, hi = n - 1;

	while (lo < hi) {
		struct cand pivot = c[lo + (hi - lo) / 2], tmp;
		int i = lo, j = hi;

		while (i <= j) {
			while (cmp_cand(&c[i], &pivot) < 0)
				i++;
			while (cmp_cand(&c[j], &pivot) > 0)
				j--;
			if (i <= j) {
				tmp = c[i];
				c[i++] = c[j];
				c[j--] = tmp;
			}
		}
		if (k - 1 <= j)
			hi = j;
		else if (k - 1 >= i)
			lo = i;
		else
			break;
	}
}

/* The unnormalised probability of a logit, given the largest logit mx
 * (not NaN, > -inf): 0 for NaN; with an infinite mx, 1 for each +inf and 0
 * for the rest. */
static float weight(float logit, float mx, float inv_t)
{
	if (isnan(logit))
		return 0;
	if (mx == INFINITY)
		return logit == INFINITY ? 1.0f : 0.0f;
	return expf((logit - mx) * inv_t);
}

/* Softmax of logits / temperature into s->cand (the largest logit, at
 * best, has weight 1, so the sum is >= 1); returns the count kept before
 * sorting (all, or those at or above the top-p floor, best among them). */
static int fill_probs(struct eng_sampler *s, const float *logits, int best)
{
	float mx = logits[best], inv_t = 1.0f / s->p.temperature;
	double sum = 0;
	float floor_p;
	int i, n = 0;

	for (i = 0; i < s->vocab; i++) {
		s->cand[i].id = i;
		s->cand[i].p = weight(logits[i], mx, inv_t);
		sum += s->cand[i].p;
	}
	for (i = 0; i < s->vocab; i++)
		s->cand[i].p = (float)(s->cand[i].p / sum);
	if (s->p.top_k > 0 || s->p.top_p >= 1 || s->vocab == 1)
		return s->vocab;
	floor_p = (1.0f - s->p.top_p) / (float)(s->vocab - 1);
	if (floor_p > s->cand[best].p)
		floor_p = s->cand[best].p;
	for (i = 0; i < s->vocab; i++)
		if (s->cand[i].p >= floor_p)
			s->cand[n++] = s->cand[i];
	return n;
}

/* Draws from the first n candidates in proportion to p; never one of
 * probability 0, whatever the rounding. */
static int draw(struct eng_sampler *s, int n)
{
	double mass = 0, r;
	int i, last = 0;

	for (i = 0; i < n; i++) {
		mass += s->cand[i].p;
		if (s->cand[i].p > 0)
			last = i;
	}
	r = next_unit(s->s) * mass;
	for (i = 0; i < last; i++) {
		r -= s->cand[i].p;
		if (r < 0)
			return s->cand[i].id;
	}
	return s->cand[last].id;
}

int eng_sampler_sample(struct eng_sampler *s, const float *logits)
{
	int best = eng_argmax(logits, s->vocab), n, i;
	double mass = 0;

	if (s->p.temperature == 0 || isinf(1.0f / s->p.temperature) ||
	    !(logits[best] > -INFINITY))
		return best;
	n = fill_probs(s, logits, best);
	if (s->p.top_k > 0 && s->p.top_k < n) {
		select_top(s->cand, n, s->p.top_k);
		n = s->p.top_k;
	}
	if (s->p.top_k > 0 || s->p.top_p < 1)
		qsort(s->cand, (size_t)n, sizeof(*s->cand), cmp_cand);
	if (s->p.top_p < 1) {
		for (i = 0; i < n - 1; i++) {
			mass += s->cand[i].p;
			if (mass >= s->p.top_p)
				break;
		}
		n = i + 1;
	}
	return draw(s, n);
}
