/*
 * test-cuda.h: what the GPU model tests (test-cuda-forward, -graph, -tp)
 * share, and the CPU FP8 accuracy tests (test-kv-fp8, test-fp8-weights)
 * with them: the relative error of one logits vector against another and
 * a small seeded generator, so that each test draws the same prompts on
 * every run.
 */
#ifndef TRAJBENCH_TESTS_TEST_CUDA_H
#define TRAJBENCH_TESTS_TEST_CUDA_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* ||a - b|| / ||b|| (||b|| taken as 1 when it is 0). */
static inline double test_rel_err(const float *a, const float *b, size_t n)
{
	double num = 0, den = 0;

	for (size_t i = 0; i < n; i++) {
		num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		den += (double)b[i] * b[i];
	}
	return sqrt(num / (den > 0 ? den : 1));
}

/* Uniform in [0, n), from the xorshift state *rng (never 0). */
static inline int test_irand(uint64_t *rng, int n)
{
	*rng ^= *rng << 13;
	*rng ^= *rng >> 7;
	*rng ^= *rng << 17;
	return (int)(*rng % (uint64_t)n);
}

#endif
