/*
 * rates_cpu.c: the ceilings the CPU backend's roofline is measured
 * against, taken once when the backend is made.
 *
 * Bandwidth: memcpy of 64 MiB spread over the backend's threads, bytes
 * read plus written (as a device copy is counted on a GPU).  GEMM rate:
 * the backend's own matmul (eng_cpu_matmul, the kernel of every
 * projection) of 256 rows against a 1024 x 1024 weight of the model's
 * dtype, or eng_cpu_matmul_fp8 over that weight quantized when the
 * backend runs FP8 weights.  Each is the best of a few runs: a ceiling, so the least
 * disturbed run is the truest.  Together about 0.1 s on two cores.
 *
 * These are the rates of this code on this machine, not the machine's
 * peak: the fp32 reference matmul is far from a tuned BLAS, and the
 * fraction reported against them says how much of the step time the
 * forward's arithmetic and traffic explain (the rest is per-op overhead,
 * attention done row by row, host scheduling).
 */
#include "engine/cpu_ops.h"

#include <stdlib.h>
#include <string.h>

#include "engine/clock.h"
#include "engine/rng.h"

#define COPY_BYTES ((size_t)64 << 20)
#define GEMM_ROWS 256
#define GEMM_DIM 1024
#define TRIES 4

struct copy_job {
	char *dst;
	const char *src;
	size_t per;      /* bytes per task */
};

static void copy_task(void *arg, int task, int thread)
{
	const struct copy_job *J = arg;

	(void)thread;
	memcpy(J->dst + (size_t)task * J->per, J->src + (size_t)task * J->per, J->per);
}

static double copy_rate(struct eng_pool *pool, char *a, char *b)
{
	int n_tasks = eng_pool_n_threads(pool);
	struct copy_job J = { b, a, COPY_BYTES / (size_t)n_tasks };
	double best = 0;

	for (int i = 0; i < TRIES; i++) {
		double t0 = eng_mono_s(), t;

		eng_pool_run(pool, n_tasks, copy_task, &J);
		t = eng_mono_s() - t0;
		if (t > 0 && 2.0 * (double)J.per * n_tasks / t > best)
			best = 2.0 * (double)J.per * n_tasks / t;
	}
	return best;
}

/* The product timed: fp8 NULL runs eng_cpu_matmul over w, else
 * eng_cpu_matmul_fp8 over fp8 with xq, sa its activation scratch. */
struct gemm_probe {
	const struct eng_tensor *w;
	const struct eng_cpu_fp8_weight *fp8;
	float *xq, *sa;
};

static double gemm_rate(struct eng_pool *pool, const struct gemm_probe *g, const float *x,
			float *out, float *scratch)
{
	double best = 0, flops = 2.0 * GEMM_ROWS * GEMM_DIM * GEMM_DIM;

	for (int i = 0; i < TRIES; i++) {
		double t0 = eng_mono_s(), t;

		if (g->fp8)
			eng_cpu_matmul_fp8(pool, scratch, g->xq, g->sa, out, x, GEMM_ROWS, g->fp8,
					   NULL);
		else
			eng_cpu_matmul(pool, scratch, out, x, GEMM_ROWS, g->w, NULL);
		t = eng_mono_s() - t0;
		if (t > 0 && flops / t > best)
			best = flops / t;
	}
	return best;
}

int eng_cpu_measure_rates(struct eng_pool *pool, enum eng_dtype weight_dtype, int weight_fp8,
			  struct eng_roofline_rates *out, struct eng_error *err)
{
	size_t wbytes = (size_t)GEMM_DIM * GEMM_DIM * eng_dtype_size(weight_dtype);
	size_t act = (size_t)GEMM_ROWS * GEMM_DIM;
	size_t scr = (size_t)eng_pool_n_threads(pool) * ENG_MATMUL_ROWS * GEMM_DIM;
	char *a = malloc(COPY_BYTES), *b = malloc(COPY_BYTES);
	float *x = malloc(act * sizeof(float)), *y = malloc(act * sizeof(float));
	float *scratch = malloc(scr * sizeof(float));
	uint16_t *wdata = malloc(wbytes);
	float *xq = malloc(act * sizeof(float)), *sa = malloc(GEMM_ROWS * sizeof(float));
	struct eng_tensor w = { weight_dtype, GEMM_DIM, GEMM_DIM, wdata };
	struct eng_cpu_fp8_weight fp8 = { 0, 0, NULL, NULL };
	struct gemm_probe g = { &w, NULL, xq, sa };
	uint64_t rng = 42;
	int rc = 0;

	if (!a || !b || !x || !y || !scratch || !wdata || !xq || !sa) {
		rc = eng_error_set(err, ENG_E_NOMEM, "cpu", 0, "cannot allocate the rate probes");
		goto out;
	}
	memset(a, 1, COPY_BYTES);
	memset(b, 2, COPY_BYTES);
	/* Small values of any dtype: the low bits of a bf16/f16/f32 word. */
	for (size_t i = 0; i < wbytes / 2; i++)
		wdata[i] = (uint16_t)(0x3c00 | (eng_splitmix64(&rng) & 0xff));
	for (size_t i = 0; i < act; i++)
		x[i] = (float)(eng_splitmix64(&rng) % 1000) * 1e-3f;
	if (weight_fp8 && (rc = eng_cpu_fp8_quantize_weight(pool, scratch, &w, &fp8, err)))
		goto out;
	g.fp8 = weight_fp8 ? &fp8 : NULL;
	out->bandwidth_bytes_s = copy_rate(pool, a, b);
	out->gemm_flops_s = gemm_rate(pool, &g, x, y, scratch);
out:
	free(a);
	free(b);
	free(x);
	free(y);
	free(scratch);
	free(wdata);
	free(xq);
	free(sa);
	eng_cpu_fp8_weight_free(&fp8);
	return rc;
}
