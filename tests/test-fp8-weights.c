/*
 * test-fp8-weights.c: FP8 weights (W8A8, eng_backend_params.weight_fp8)
 * on the CPU reference.
 *
 *   1. eng_cpu_fp8_quantize_weight gives the bytes and scales of
 *      eng_fp8_quantize_row on every row of bf16, f16 and f32 weights, and
 *      eng_cpu_matmul_fp8 equals a naive double-precision loop over the
 *      dequantized values (activations quantized per token by the same
 *      function): |got - want| <= K 2^-23 sum_k |a_k w_k| sa sw + |bias|
 *      2^-24, the bound of an fp32 sum of K exact products (E4M3 x E4M3
 *      products are exact in fp32); zero rows give the bias alone;
 *   2. accuracy of the forward pass with FP8 weights against the weights
 *      as loaded (bf16 on the model-writer presets, f32 or bf16 on the
 *      helper's), both with fp32 activations and KV, on the models the
 *      FP8 KV cache test uses: per model the worst relative logits error
 *      ||a - b|| / ||b|| over its prompts and 8 decode steps fed the
 *      reference's greedy tokens, greedy agreement, and the largest
 *      difference of the log-probs of a prompt's own next tokens (score
 *      mode), printed in the test lines and bounded (see ACC_*).
 *
 * The roofline's byte count of FP8 linear layers is in test-roofline.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/backend.h"
#include "engine/cpu_ops.h"
#include "engine/cpu_pool.h"
#include "engine/kv_fp8.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "tools/modelgen/model_writer.h"
#include "tests/tap.h"
#include "tests/test-cuda.h"
#include "tests/test-model-helper.h"

#define STEPS 8

/* Bounds of the forward comparison, from the figures measured on these
 * models (x86-64, gcc -O2) with margin; the figures are printed beside
 * them.  Measured: logits rel err 0.083-0.086 on the model-writer
 * presets, 0.13 on mid, 0.17 on the helper's qwen3, 0.65-0.67 on its
 * qwen2 and llama (large attention scores: a rounding moves their logits
 * far more than a real model's); greedy agreement 85% over all (91% on
 * the realistic ones); |delta log p| of scored tokens 0.22 on average,
 * 1.32 at worst on the realistic ones.  These are random-weight models:
 * flat next-token distributions, so ties flip and log-probs move more
 * than on a trained model. */
#define ACC_MAX_REL_ERR 0.25     /* logits, models of realistic scale */
#define ACC_MAX_REL_ERR_ANY 0.9  /* logits, the helper's sensitive tiny ones */
#define ACC_MIN_AGREE 0.75       /* greedy tokens over all models */
#define ACC_MAX_LOGPROB 2.0      /* |delta log p| of any scored token, realistic models */
#define ACC_MEAN_LOGPROB 0.35    /* mean |delta log p| over all models */

/* ---------------------------------------------------------------- matmul */

static void fill(float *x, size_t n, float amp, uint64_t *rng)
{
	for (size_t i = 0; i < n; i++)
		x[i] = amp * tm_uniform(rng);
}

/* The weight w (N, K) of f32 values stored as dtype (rounded to it). */
static void *store(const float *w, size_t n, enum eng_dtype dt)
{
	void *p = malloc(n * eng_dtype_size(dt));

	for (size_t i = 0; i < n; i++) {
		if (dt == ENG_DTYPE_F32) {
			((float *)p)[i] = w[i];
		} else if (dt == ENG_DTYPE_BF16) {
			((uint16_t *)p)[i] = eng_f32_to_bf16(w[i]);
		} else {
			/* f16 by way of a value f16 holds exactly: bf16's 8 bits
			 * of mantissa fit f16's 11; below f16's normals, 0 */
			float v = eng_bf16_to_f32(eng_f32_to_bf16(w[i]));
			uint32_t u, e, m;

			memcpy(&u, &v, sizeof(u));
			e = (u >> 23) & 0xff;
			m = (u >> 13) & 0x3ff;
			((uint16_t *)p)[i] = (uint16_t)(((u >> 16) & 0x8000) |
						       (e < 113 ? 0 : ((e - 112) << 10) | m));
		}
	}
	return p;
}

struct mm_case {
	int T, K, N;
	enum eng_dtype dt;
	int bias;          /* 0 none, 1 f32, 2 bf16 */
	float x_amp, w_amp;
};

/* One shape: quantization bytes, then the product against the loop. */
static void matmul_case(struct eng_pool *pool, const struct mm_case *c, uint64_t *rng)
{
	size_t nw = (size_t)c->N * c->K, nx = (size_t)c->T * c->K;
	float *w = malloc(nw * sizeof(float)), *x = malloc(nx * sizeof(float));
	float *bias = malloc((size_t)c->N * sizeof(float)), *row = malloc(c->K * sizeof(float));
	float *out = malloc((size_t)c->T * c->N * sizeof(float));
	float *xq = malloc(nx * sizeof(float)), *sa = malloc(c->T * sizeof(float));
	float *scratch = malloc((size_t)eng_pool_n_threads(pool) * ENG_MATMUL_ROWS * c->K *
				sizeof(float));
	uint8_t *qw = malloc(nw), *qx = malloc(nx);
	float *sw = malloc(c->N * sizeof(float)), *sx = malloc(c->T * sizeof(float));
	void *wdata, *bdata = NULL;
	struct eng_cpu_fp8_weight fw = { 0, 0, NULL, NULL };
	struct eng_tensor wt, bt = { ENG_DTYPE_F32, 1, c->N, NULL };
	struct eng_error err;
	int bytes_ok = 1, n_bad = 0;
	double worst = 0;

	fill(w, nw, c->w_amp, rng);
	fill(x, nx, c->x_amp, rng);
	fill(bias, c->N, 0.5f, rng);
	memset(x, 0, c->K * sizeof(float));          /* token 0: a zero row */
	memset(w + c->K, 0, c->K * sizeof(float));   /* weight row 1: zeros */
	wdata = store(w, nw, c->dt);
	wt = (struct eng_tensor){ c->dt, c->N, c->K, wdata };
	if (c->bias) {
		bt.dtype = c->bias == 1 ? ENG_DTYPE_F32 : ENG_DTYPE_BF16;
		bdata = store(bias, c->N, bt.dtype);
		bt.data = bdata;
		eng_cpu_row_f32(&bt, 0, bias);   /* the values as stored */
	}
	if (eng_cpu_fp8_quantize_weight(pool, scratch, &wt, &fw, &err)) {
		tap_ok(0, "quantize: %s", err.msg);
		goto out;
	}
	for (int n = 0; n < c->N; n++) {
		eng_cpu_row_f32(&wt, n, row);
		eng_cpu_round_bf16(row, row, c->K);   /* weights too are quantized from bf16 */
		eng_fp8_quantize_row(row, c->K, qw + (size_t)n * c->K, &sw[n]);
		bytes_ok &= !memcmp(qw + (size_t)n * c->K, fw.q + (size_t)n * c->K, c->K) &&
			    sw[n] == fw.scale[n];
	}
	bytes_ok &= fw.scale[1] == ENG_FP8_MIN_SCALE;
	for (int t = 0; t < c->T; t++) {
		/* activations are quantized from their bf16 values */
		eng_cpu_round_bf16(x + (size_t)t * c->K, x + (size_t)t * c->K, c->K);
		eng_fp8_quantize_row(x + (size_t)t * c->K, c->K, qx + (size_t)t * c->K, &sx[t]);
	}
	eng_cpu_matmul_fp8(pool, scratch, xq, sa, out, x, c->T, &fw, c->bias ? &bt : NULL);
	for (int t = 0; t < c->T; t++) {
		bytes_ok &= sa[t] == sx[t];
		for (int n = 0; n < c->N; n++) {
			double s = 0, sabs = 0, want, got = out[(size_t)t * c->N + n], bound;

			for (int k = 0; k < c->K; k++) {
				double p = (double)eng_e4m3_to_f32(qx[(size_t)t * c->K + k]) *
					   eng_e4m3_to_f32(qw[(size_t)n * c->K + k]);

				s += p;
				sabs += fabs(p);
			}
			want = (double)sx[t] * sw[n] * s + (c->bias ? bias[n] : 0);
			bound = c->K * ldexp(1, -23) * sabs * sx[t] * sw[n] +
				ldexp(1, -23) * fabs(want) + 1e-30;
			worst = fmax(worst, fabs(got - want) / bound);
			n_bad += !(fabs(got - want) <= bound);
			if (t == 0)
				n_bad += got != (c->bias ? bias[n] : 0.0f);
		}
	}
	tap_ok(bytes_ok, "quantize %s %dx%d: bytes and scales of eng_fp8_quantize_row, "
	       "a zero row's scale %g", eng_dtype_size(c->dt) == 4 ? "f32" :
	       c->dt == ENG_DTYPE_BF16 ? "bf16" : "f16", c->N, c->K, (double)ENG_FP8_MIN_SCALE);
	tap_ok(n_bad == 0, "matmul_fp8 T=%d K=%d N=%d bias %s: = the double loop over the "
	       "dequantized values within the fp32 sum's bound (worst %.3f of it), zero row = "
	       "bias", c->T, c->K, c->N, c->bias == 0 ? "none" : c->bias == 1 ? "f32" : "bf16",
	       worst);
out:
	eng_cpu_fp8_weight_free(&fw);
	free(w), free(x), free(bias), free(row), free(out), free(xq), free(sa);
	free(scratch), free(qw), free(qx), free(sw), free(sx), free(wdata), free(bdata);
}

/* Against the plain fp32 product: an FP8 product is a few per cent off,
 * not more (a sanity check on the scales' direction and placement). */
static void matmul_vs_f32(struct eng_pool *pool, uint64_t *rng)
{
	int T = 9, K = 320, N = 72;
	float *w = malloc((size_t)N * K * sizeof(float)), *x = malloc((size_t)T * K * 4);
	float *a = malloc((size_t)T * N * 4), *b = malloc((size_t)T * N * 4);
	float *xq = malloc((size_t)T * K * 4), *sa = malloc(T * 4);
	float *scratch = malloc((size_t)eng_pool_n_threads(pool) * ENG_MATMUL_ROWS * K * 4);
	struct eng_tensor wt = { ENG_DTYPE_F32, N, K, w };
	struct eng_cpu_fp8_weight fw = { 0, 0, NULL, NULL };
	struct eng_error err;
	double num = 0, den = 0;

	fill(w, (size_t)N * K, 0.05f, rng);
	fill(x, (size_t)T * K, 3.0f, rng);
	eng_cpu_fp8_quantize_weight(pool, scratch, &wt, &fw, &err);
	eng_cpu_matmul_fp8(pool, scratch, xq, sa, a, x, T, &fw, NULL);
	eng_cpu_matmul(pool, scratch, b, x, T, &wt, NULL);
	for (int i = 0; i < T * N; i++) {
		num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		den += (double)b[i] * b[i];
	}
	tap_ok(sqrt(num / den) < 0.06, "matmul_fp8 vs fp32 matmul: relative error %.4f (bound 0.06)",
	       sqrt(num / den));
	eng_cpu_fp8_weight_free(&fw);
	free(w), free(x), free(a), free(b), free(xq), free(sa), free(scratch);
}

static void test_matmul(void)
{
	static const struct mm_case cases[] = {
		{ 5, 67, 37, ENG_DTYPE_BF16, 1, 1.0f, 0.1f },
		{ 1, 256, 64, ENG_DTYPE_F32, 0, 2.0f, 0.02f },
		{ 33, 128, 19, ENG_DTYPE_F16, 2, 0.5f, 1.0f },
		{ 4, 96, 80, ENG_DTYPE_BF16, 0, 1000.0f, 3e-3f },  /* large inputs, small weights */
	};
	struct eng_pool *pool = eng_pool_create(2);
	uint64_t rng = 0xf8f8ull;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		matmul_case(pool, &cases[i], &rng);
	matmul_vs_f32(pool, &rng);
	eng_pool_free(pool);
}

/* ---------------------------------------------------------------- forward */

struct acc {
	double worst;        /* max ||a - b|| / ||b|| of logits */
	double lp_worst;     /* max |delta log p| of a scored token */
	double lp_sum;       /* sum of |delta log p| */
	int lp_n;
	int agree, steps;    /* greedy tokens equal, compared */
};

static struct eng_backend *backend(struct eng_model *m, int weight_fp8)
{
	struct eng_backend_params p = eng_backend_default_params();
	struct eng_backend *be = NULL;
	struct eng_error err;

	p.n_threads = 2;
	p.n_pages = 64;
	p.weight_fp8 = weight_fp8;
	if (eng_backend_create(&eng_backend_cpu_ops, m, &p, &be, &err))
		tap_diag("backend: %s", err.msg);
	return be;
}

static void acc_add(struct acc *a, const float *x, const float *ref, int V)
{
	a->worst = fmax(a->worst, test_rel_err(x, ref, (size_t)V));
	a->agree += eng_argmax(x, V) == eng_argmax(ref, V);
	a->steps++;
}

/* Score mode: the log-probs of the prompt's own next tokens (a fresh
 * sequence on pages 0.. of each backend: the decode steps below rewrite
 * them). */
static int compare_scores(struct eng_backend *const be[2], const int32_t *ids, int n,
			  struct acc *a)
{
	float *lp[2] = { malloc(n * sizeof(float)), malloc(n * sizeof(float)) };
	int32_t bt[64];
	struct eng_error err;
	int ok = 1;

	for (int i = 0; i < 64; i++)
		bt[i] = i;
	for (int c = 0; ok && c < 2; c++) {
		struct eng_seq_input q = { ids, n - 1, 0, bt, 64, NULL, ids + 1, lp[c] };

		if (eng_backend_forward(be[c], &(struct eng_batch){ 1, &q }, &err)) {
			tap_diag("score: %s", err.msg);
			ok = 0;
		}
	}
	for (int i = 0; ok && i < n - 1; i++) {
		double d = fabs((double)lp[1][i] - lp[0][i]);

		a->lp_worst = fmax(a->lp_worst, d);
		a->lp_sum += d;
		a->lp_n++;
	}
	free(lp[0]);
	free(lp[1]);
	return ok;
}

/* Prompt ids (n), then STEPS greedy decode steps on both backends, both
 * fed the reference's (be[0]) tokens. */
static int compare_prompt(struct eng_backend *const be[2], const int32_t *ids, int n, int V,
			  struct acc *a)
{
	int32_t *t = malloc(((size_t)n + STEPS) * sizeof(int32_t)), bt[64];
	float *lg[2] = { malloc((size_t)V * sizeof(float)), malloc((size_t)V * sizeof(float)) };
	struct eng_error err;
	int ok = n < 2 || compare_scores(be, ids, n, a);

	for (int i = 0; i < 64; i++)
		bt[i] = i;
	memcpy(t, ids, (size_t)n * sizeof(int32_t));
	for (int i = 0; ok && i <= STEPS; i++) {
		for (int c = 0; ok && c < 2; c++) {
			struct eng_seq_input q = { i ? t + n + i - 1 : t, i ? 1 : n,
						   i ? n + i - 1 : 0, bt, 64, lg[c], NULL, NULL };

			if (eng_backend_forward(be[c], &(struct eng_batch){ 1, &q }, &err)) {
				tap_diag("forward: %s", err.msg);
				ok = 0;
			}
		}
		if (!ok)
			break;
		acc_add(a, lg[1], lg[0], V);
		if (i < STEPS)
			t[n + i] = eng_argmax(lg[0], V);
	}
	free(t);
	free(lg[0]);
	free(lg[1]);
	return ok;
}

#define LONG 200

/* One model: its golden prompts (or 3 random ones) and one of LONG
 * tokens, FP8 weights against the weights as loaded. */
static void accuracy_model(const char *name, const char *dir, int realistic, void *ctx)
{
	struct acc *all = ctx;
	struct eng_model *m = NULL;
	struct eng_error err;
	struct eng_backend *be[2] = { NULL, NULL };
	struct acc a = { 0, 0, 0, 0, 0, 0 };
	int32_t ids[8][64], lp[LONG];
	int lens[8], np, V, ok;
	uint64_t rng = 0x5eedull;
	double bound = realistic ? ACC_MAX_REL_ERR : ACC_MAX_REL_ERR_ANY;

	if (eng_model_load(dir, &m, &err)) {
		tap_ok(0, "%s: load: %s", name, err.msg);
		return;
	}
	V = eng_model_config(m)->vocab;
	be[0] = backend(m, 0);
	be[1] = backend(m, 1);
	ok = be[0] && be[1];
	np = tm_accuracy_prompts(name, V, ids, lens, &rng);
	for (int k = 0; ok && k < np; k++)
		ok = compare_prompt(be, ids[k], lens[k], V, &a);
	tm_random_ids(lp, LONG, V, &rng);
	if (ok)
		ok = compare_prompt(be, lp, LONG, V, &a);
	tap_ok(ok && a.worst <= bound && (!realistic || a.lp_worst <= ACC_MAX_LOGPROB),
	       "accuracy %s (%s weights), %d prompts (one of %d tokens) + %d steps: logits rel "
	       "err fp8 vs loaded %.4f (bound %.2f); greedy %d/%d; score log-probs |delta| max "
	       "%.4f%s, mean %.4f over %d tokens", name,
	       eng_model_weights(m)->layers[0].wq.dtype == ENG_DTYPE_BF16 ? "bf16" : "f32",
	       np + 1, LONG, STEPS, a.worst, bound, a.agree, a.steps, a.lp_worst,
	       realistic ? " (bound 2.0)" : "", a.lp_sum / (a.lp_n ? a.lp_n : 1), a.lp_n);
	all->worst = fmax(all->worst, realistic ? a.worst : 0);
	all->lp_worst = fmax(all->lp_worst, realistic ? a.lp_worst : 0);
	all->lp_sum += a.lp_sum;
	all->lp_n += a.lp_n;
	all->agree += a.agree;
	all->steps += a.steps;
	eng_backend_free(be[0]);
	eng_backend_free(be[1]);
	eng_model_free(m);
}

static void test_accuracy(const char *tmp)
{
	struct acc all = { 0, 0, 0, 0, 0, 0 };

	/* the helper's qwen2 and llama have large attention scores (a real
	 * model's logits move far less for the same rounding): a looser bound */
	tm_accuracy_models(tmp, accuracy_model, &all);
	tap_ok(all.steps > 0 && all.agree >= ACC_MIN_AGREE * all.steps &&
	       all.lp_sum <= ACC_MEAN_LOGPROB * all.lp_n,
	       "accuracy over all models: fp8 greedy tokens = loaded weights' %d/%d (%.1f%%, "
	       "bound %.0f%%); on the realistic ones worst logits rel err %.4f, worst |delta "
	       "log p| %.4f; mean |delta log p| over all %.4f (bound %.2f)", all.agree, all.steps,
	       100.0 * all.agree / (all.steps ? all.steps : 1), 100 * ACC_MIN_AGREE, all.worst,
	       all.lp_worst, all.lp_sum / (all.lp_n ? all.lp_n : 1), ACC_MEAN_LOGPROB);
}

int main(void)
{
	char *tmp = tm_mkdtemp("fp8w");

	test_matmul();
	test_accuracy(tmp);
	tm_rmtree(tmp);
	free(tmp);
	return tap_done();
}
