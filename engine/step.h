/*
 * step.h: the scheduler's step function over a compute backend.
 *
 * Translates a scheduler batch (eng_step_seq) into a backend forward
 * (eng_batch), then picks each wanted next token from the logits: argmax
 * for greedy requests, the sampler otherwise, seeded from the request's
 * seed and its count of generated tokens so that a request's tokens do not
 * depend on what else shares its batch.
 */
#ifndef TRAJBENCH_ENG_STEP_H
#define TRAJBENCH_ENG_STEP_H

#include <stdint.h>

#include "engine/backend.h"
#include "engine/sched.h"

struct eng_stepper;

int eng_stepper_create(struct eng_backend *be, int vocab, struct eng_stepper **out,
		       struct eng_error *err);
void eng_stepper_free(struct eng_stepper *s);

/* An eng_step_fn; ctx is the eng_stepper. */
int eng_stepper_step(void *ctx, const struct eng_step_seq *seqs, int32_t n_seqs,
		     int32_t *next, struct eng_error *err);

#endif
