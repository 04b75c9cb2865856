/*
 * fake-step.h: a stand-in model for scheduler and runner tests.
 *
 * The step writes each new token into the page slot of its position and
 * "samples" the next token as a hash of the whole context read back
 * through the block table; fake_ref_next() computes the same from a plain
 * token list.  Any error in paging, prefix matching, chunking, eviction or
 * retraction changes some produced token.
 */
#ifndef TRAJBENCH_TESTS_FAKE_STEP_H
#define TRAJBENCH_TESTS_FAKE_STEP_H

#include "engine/sched.h"

#define FAKE_VOCAB 61
#define FAKE_MAX_PAGES 8192

static int32_t fake_kv[FAKE_MAX_PAGES][64]; /* (page, slot) token held there */
static int fake_page_size;
static int fake_step_fails; /* fail the next step when set */

static inline int32_t fake_ref_next(const int32_t *t, int32_t n)
{
	uint32_t h = 2166136261u;

	for (int32_t i = 0; i < n; i++)
		h = (h ^ (uint32_t)t[i]) * 16777619u;
	return (int32_t)(h % FAKE_VOCAB);
}

static inline int fake_step(void *ctx, const struct eng_step_seq *seqs, int32_t n,
			    int32_t *next, struct eng_error *err)
{
	static int32_t ctxbuf[1 << 16];

	(void)ctx;
	if (fake_step_fails) {
		fake_step_fails = 0;
		return eng_error_set(err, ENG_E_DEVICE, NULL, 0, "injected failure");
	}
	for (int32_t k = 0; k < n; k++) {
		const struct eng_step_seq *q = &seqs[k];
		int32_t end = q->start_pos + q->n_tokens;

		for (int32_t i = 0; i < q->n_tokens; i++) {
			int32_t pos = q->start_pos + i;

			fake_kv[q->pages[pos / fake_page_size]][pos % fake_page_size] = q->tokens[i];
		}
		if (!q->want_token)
			continue;
		for (int32_t pos = 0; pos < end; pos++)
			ctxbuf[pos] = fake_kv[q->pages[pos / fake_page_size]][pos % fake_page_size];
		next[k] = fake_ref_next(ctxbuf, end);
	}
	return 0;
}

#endif
