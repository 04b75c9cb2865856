/*
 * sampler.h: next-token choice from logits: greedy, or temperature, top-k
 * and top-p sampling with a seeded generator of its own, so that the same
 * seed and the same logits give the same tokens on every machine.
 */
#ifndef TRAJBENCH_ENG_SAMPLER_H
#define TRAJBENCH_ENG_SAMPLER_H

#include <stdint.h>

#include "engine/error.h"

struct eng_sampler_params {
	float temperature;   /* 0: greedy (argmax, lowest id on ties) */
	int top_k;           /* keep the k most likely; 0: all */
	float top_p;         /* keep the smallest set of mass >= top_p; 1: all */
	uint64_t seed;
};

/* temperature 0, top_k 0, top_p 1, seed 0: greedy. */
struct eng_sampler_params eng_sampler_default_params(void);

/* 0 when p can be sampled with; ENG_E_INVALID naming the field otherwise:
 * temperature must be finite and >= 0, top_k >= 0, top_p in (0, 1] (NaN
 * fails every test).  Requests are checked with it when they are admitted,
 * so that a step never meets parameters it cannot use. */
int eng_sampler_check_params(const struct eng_sampler_params *p, struct eng_error *err);

struct eng_sampler;

/* Returns 0, ENG_E_INVALID (eng_sampler_check_params, or vocab < 1),
 * ENG_E_NOMEM. */
int eng_sampler_create(const struct eng_sampler_params *p, int vocab,
		       struct eng_sampler **out, struct eng_error *err);
void eng_sampler_free(struct eng_sampler *s);

/* Picks a token from logits (vocab).  Applies temperature, then top-k,
 * then top-p, then draws.  Advances the generator once per non-greedy
 * call.  logits are not modified.  Total: any logits, NaN and infinities
 * included, give a token in [0, vocab) (sampler.c says which). */
int eng_sampler_sample(struct eng_sampler *s, const float *logits);

/* The index of the largest of x (n), lowest on ties; NaN ranks below every
 * number, and all NaN gives 0. */
int eng_argmax(const float *x, int n);

#endif
