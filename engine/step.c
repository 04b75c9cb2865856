/*
 * step.c: scheduler batch -> backend forward -> next tokens (see step.h).
 * Logits stay in one buffer grown to the largest batch seen, so a step
 * allocates nothing once the run has warmed up (sampled requests aside).
 */
#include "engine/step.h"
#include "engine/rng.h"
#include "engine/sampler.h"

#include <stdlib.h>

struct eng_stepper {
	struct eng_backend *be;
	int vocab;
	struct eng_seq_input *in; /* (cap) */
	float *logits;            /* (cap, vocab) */
	int32_t cap;
};

int eng_stepper_create(struct eng_backend *be, int vocab, struct eng_stepper **out,
		       struct eng_error *err)
{
	struct eng_stepper *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	s->be = be;
	s->vocab = vocab;
	*out = s;
	return 0;
}

void eng_stepper_free(struct eng_stepper *s)
{
	if (!s)
		return;
	free(s->in);
	free(s->logits);
	free(s);
}

static int reserve(struct eng_stepper *s, int32_t n, struct eng_error *err)
{
	void *in, *lg;

	if (n <= s->cap)
		return 0;
	in = realloc(s->in, sizeof(*s->in) * (size_t)n);
	if (in)
		s->in = in;
	lg = in ? realloc(s->logits, sizeof(float) * (size_t)n * (size_t)s->vocab) : NULL;
	if (!lg)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "cannot allocate logits for %d sequences", n);
	s->logits = lg;
	s->cap = n;
	return 0;
}

/* The seed of a request's counter-th sampling: a function of both only. */
static uint64_t mix_seed(uint64_t seed, int32_t counter)
{
	uint64_t x = seed + 0x9e3779b97f4a7c15ull * (uint64_t)counter;

	return eng_splitmix64(&x);
}

static int pick(struct eng_stepper *s, const struct eng_step_seq *q, const float *logits,
		int32_t *tok, struct eng_error *err)
{
	struct eng_sampler_params sp;
	struct eng_sampler *smp;
	int rc;

	if (q->sampling->temperature <= 0) {
		*tok = eng_argmax(logits, s->vocab);
		return 0;
	}
	sp.temperature = q->sampling->temperature;
	sp.top_k = q->sampling->top_k;
	sp.top_p = q->sampling->top_p;
	sp.seed = mix_seed(q->sampling->seed, q->n_generated);
	rc = eng_sampler_create(&sp, s->vocab, &smp, err);
	if (rc != 0)
		return rc;
	*tok = eng_sampler_sample(smp, logits);
	eng_sampler_free(smp);
	return 0;
}

int eng_stepper_step(void *ctx, const struct eng_step_seq *seqs, int32_t n_seqs,
		     int32_t *next, struct eng_error *err)
{
	struct eng_stepper *s = ctx;
	struct eng_batch batch;
	int rc = reserve(s, n_seqs, err);

	if (rc != 0)
		return rc;
	for (int32_t i = 0; i < n_seqs; i++) {
		s->in[i] = (struct eng_seq_input){
			.tokens = seqs[i].tokens,
			.n_tokens = seqs[i].n_tokens,
			.start_pos = seqs[i].start_pos,
			.block_table = seqs[i].pages,
			.n_blocks = seqs[i].n_pages,
			.logits = seqs[i].want_token ? s->logits + (size_t)i * (size_t)s->vocab : NULL,
			.targets = seqs[i].targets,
			.logprobs = seqs[i].logprobs,
		};
	}
	batch.n_seqs = n_seqs;
	batch.seqs = s->in;
	rc = eng_backend_forward(s->be, &batch, err);
	for (int32_t i = 0; rc == 0 && i < n_seqs; i++) {
		next[i] = -1;
		if (seqs[i].want_token)
			rc = pick(s, &seqs[i], s->in[i].logits, &next[i], err);
	}
	return rc;
}
