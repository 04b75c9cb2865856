/*
 * step.c: scheduler batch -> backend forward -> next tokens (see step.h).
 * Greedy requests (temperature 0) take the backend's own argmax
 * (eng_backend_forward_next): on a GPU backend the token is picked on the
 * device and no logits cross to the host.  Only sampled requests
 * (temperature > 0), and those that ban tokens (min_tokens) or want the
 * log-probs of their tokens, ask for logits, into one buffer grown to the
 * largest count of them seen, so a step allocates nothing once the run has
 * warmed up (the sampler aside).  Log-probs are those of the raw logits, as
 * the model gives them: before temperature, top-k, top-p and bans.
 */
#include "engine/step.h"
#include "engine/rng.h"
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>

struct eng_stepper {
	struct eng_backend *be;
	int vocab;
	struct eng_seq_input *in; /* (cap) */
	uint8_t *greedy;          /* (cap) the sequence wants its argmax token */
	int32_t cap;
	float *logits;            /* (cap_logits, vocab): sampled sequences only */
	int32_t cap_logits;
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
	free(s->greedy);
	free(s->logits);
	free(s);
}

static int reserve(struct eng_stepper *s, int32_t n, int32_t n_sampled, struct eng_error *err)
{
	void *p;

	if (n > s->cap) {
		if ((p = realloc(s->in, sizeof(*s->in) * (size_t)n)))
			s->in = p;
		if (!p || !(p = realloc(s->greedy, (size_t)n)))
			return eng_error_set(err, ENG_E_NOMEM, NULL, 0,
					     "cannot allocate a batch of %d sequences", n);
		s->greedy = p;
		s->cap = n;
	}
	if (n_sampled > s->cap_logits) {
		if (!(p = realloc(s->logits, sizeof(float) * (size_t)n_sampled * (size_t)s->vocab)))
			return eng_error_set(err, ENG_E_NOMEM, NULL, 0,
					     "cannot allocate logits for %d sequences", n_sampled);
		s->logits = p;
		s->cap_logits = n_sampled;
	}
	return 0;
}

/* Whether the token is picked on the host, from the logits. */
static int is_sampled(const struct eng_step_seq *q)
{
	return q->want_token &&
	       (q->sampling->temperature > 0 || q->n_banned > 0 || q->token_logprobs);
}

/* The seed of a request's counter-th sampling: a function of both only. */
static uint64_t mix_seed(uint64_t seed, int32_t counter)
{
	uint64_t x = seed + 0x9e3779b97f4a7c15ull * (uint64_t)counter;

	return eng_splitmix64(&x);
}

/* The log-softmax of logits at the top n tokens (n <= ENG_TOP_LOGPROBS_MAX),
 * most likely first, lowest id on ties; returns log(sum(exp(logits))). */
static double top_logprobs(const float *logits, int vocab, int32_t n, struct eng_token_logprobs *lp)
{
	float mx = logits[eng_argmax(logits, vocab)];
	double sum = 0, lse;

	for (int i = 0; i < vocab; i++)
		sum += exp((double)(logits[i] - mx));
	lse = (double)mx + log(sum);
	lp->n_top = 0;
	for (int i = 0; i < vocab && n > 0; i++) {
		int32_t k = lp->n_top;

		if (k == n && logits[i] <= lp->top_logprobs[n - 1])
			continue;
		if (k < n)
			lp->n_top++;
		else
			k = n - 1;
		for (; k > 0 && logits[i] > lp->top_logprobs[k - 1]; k--) {
			lp->top_logprobs[k] = lp->top_logprobs[k - 1];
			lp->top_ids[k] = lp->top_ids[k - 1];
		}
		lp->top_logprobs[k] = logits[i];
		lp->top_ids[k] = i;
	}
	for (int32_t k = 0; k < lp->n_top; k++)
		lp->top_logprobs[k] = (float)(lp->top_logprobs[k] - lse);
	return lse;
}

/* A token from the logits of a request picked on the host: log-probs
 * first (of the raw logits), then the bans, then greedy or sampled.  A
 * picked token is never banned, so its logit is still the raw one. */
static int sample(struct eng_stepper *s, const struct eng_step_seq *q, float *logits,
		  int32_t *tok, struct eng_error *err)
{
	struct eng_sampler_params sp;
	struct eng_sampler *smp;
	double lse = 0;
	int rc;

	if (q->token_logprobs)
		lse = top_logprobs(logits, s->vocab, q->top_logprobs, q->token_logprobs);
	for (int32_t i = 0; i < q->n_banned; i++)
		if (q->banned[i] >= 0 && q->banned[i] < s->vocab)
			logits[q->banned[i]] = -INFINITY;
	if (q->sampling->temperature == 0) {
		*tok = eng_argmax(logits, s->vocab);
	} else {
		sp.temperature = q->sampling->temperature;
		sp.top_k = q->sampling->top_k;
		sp.top_p = q->sampling->top_p;
		sp.seed = mix_seed(q->sampling->seed, q->n_generated);
		rc = eng_sampler_create(&sp, s->vocab, &smp, err);
		if (rc != 0)
			return rc;
		*tok = eng_sampler_sample(smp, logits);
		eng_sampler_free(smp);
	}
	if (q->token_logprobs)
		q->token_logprobs->logprob = (float)((double)logits[*tok] - lse);
	return 0;
}

int eng_stepper_step(void *ctx, const struct eng_step_seq *seqs, int32_t n_seqs,
		     int32_t *next, struct eng_error *err)
{
	struct eng_stepper *s = ctx;
	struct eng_batch batch;
	int32_t n_sampled = 0, k = 0;
	int rc;

	for (int32_t i = 0; i < n_seqs; i++)
		n_sampled += is_sampled(&seqs[i]);
	if ((rc = reserve(s, n_seqs, n_sampled, err)) != 0)
		return rc;
	for (int32_t i = 0; i < n_seqs; i++) {
		s->greedy[i] = seqs[i].want_token && !is_sampled(&seqs[i]);
		s->in[i] = (struct eng_seq_input){
			.tokens = seqs[i].tokens,
			.n_tokens = seqs[i].n_tokens,
			.start_pos = seqs[i].start_pos,
			.block_table = seqs[i].pages,
			.n_blocks = seqs[i].n_pages,
			.logits = is_sampled(&seqs[i]) ? s->logits + (size_t)k++ * (size_t)s->vocab
						       : NULL,
			.targets = seqs[i].targets,
			.logprobs = seqs[i].logprobs,
		};
	}
	batch.n_seqs = n_seqs;
	batch.seqs = s->in;
	rc = eng_backend_forward_next(s->be, &batch, s->greedy, next, err);
	for (int32_t i = 0; rc == 0 && i < n_seqs; i++)
		if (s->in[i].logits)
			rc = sample(s, &seqs[i], s->in[i].logits, &next[i], err);
	return rc;
}
