/*
 * cpu_ops.h: the fp32 kernels of the CPU backend: weight-row conversion,
 * dot products, matmul against a (possibly bf16/f16) weight or an FP8 one
 * (W8A8), RMSNorm, RoPE.
 */
#ifndef TRAJBENCH_ENG_CPU_OPS_H
#define TRAJBENCH_ENG_CPU_OPS_H

#include <stdint.h>

#include "engine/cpu_pool.h"
#include "engine/model.h"
#include "engine/roofline.h"

/* Rows of W converted per block in eng_cpu_matmul: the per-thread scratch
 * it needs is ENG_MATMUL_ROWS * W.cols floats. */
#define ENG_MATMUL_ROWS 8

float eng_bf16_to_f32(uint16_t h);
float eng_f16_to_f32(uint16_t h);
uint16_t eng_f32_to_bf16(float f);   /* round to nearest even */

/* out (n) = in (n) rounded to bf16 values; out may equal in. */
void eng_cpu_round_bf16(float *out, const float *in, int64_t n);

/* out (n) = row `row` of t as fp32, for n = t->cols. */
void eng_cpu_row_f32(const struct eng_tensor *t, int64_t row, float *out);

float eng_cpu_dot(const float *a, const float *b, int n);

/* out (n_tokens, W->rows) = x (n_tokens, W->cols) . W^T (+ bias (W->rows)).
 * scratch: (n_threads, ENG_MATMUL_ROWS, W->cols) fp32.  bias may be NULL
 * or have data NULL. */
void eng_cpu_matmul(struct eng_pool *pool, float *scratch, float *out,
		    const float *x, int n_tokens, const struct eng_tensor *w,
		    const struct eng_tensor *bias);

/* A weight in FP8 E4M3 with one scale per output row, as
 * eng_fp8_quantize_row (kv_fp8.h) makes it: element (n, k) stands for
 * eng_e4m3_to_f32(q[n][k]) * scale[n].  Owns its arrays. */
struct eng_cpu_fp8_weight {
	int64_t rows, cols;
	uint8_t *q;        /* (rows, cols) e4m3 codes */
	float *scale;      /* (rows) fp32 */
};

/* out = w (bf16, f16 or f32) rounded to bf16 and quantized row by row
 * (as the GPU quantizes it) over the pool's threads; scratch as eng_cpu_matmul's.  Returns 0, or ENG_E_NOMEM with
 * out left empty. */
int eng_cpu_fp8_quantize_weight(struct eng_pool *pool, float *scratch,
				const struct eng_tensor *w, struct eng_cpu_fp8_weight *out,
				struct eng_error *err);

/* Frees w's arrays (NULL ones too) and leaves them NULL. */
void eng_cpu_fp8_weight_free(struct eng_cpu_fp8_weight *w);

/* The W8A8 product: row t of x (n_tokens, w->cols), rounded to bf16 (the
 * GPU's products take bf16 activations), is quantized with
 * eng_fp8_quantize_row (codes xq_t, scale sa[t]), then
 *   out[t][n] = sa[t] * w->scale[n] * sum_k e4m3(xq_t[k]) * e4m3(w->q[n][k])
 * summed in fp32, plus bias[n] (bias as eng_cpu_matmul's).  scratch as
 * eng_cpu_matmul's; xq (n_tokens, w->cols) and sa (n_tokens) fp32 are the
 * caller's scratch too, and hold the activations' E4M3 values and scales
 * on return. */
void eng_cpu_matmul_fp8(struct eng_pool *pool, float *scratch, float *xq, float *sa,
			float *out, const float *x, int n_tokens,
			const struct eng_cpu_fp8_weight *w, const struct eng_tensor *bias);

/* out (n) = x (n) / rms(x) * weight (n).  out may equal x. */
void eng_cpu_rmsnorm(float *out, const float *x, const struct eng_tensor *weight,
		     int n, float eps);

/* Rotates each of the n_heads (head_dim) vectors of x in place by position
 * pos, rotate-half convention: pairs (i, i + head_dim/2). inv_freq has
 * head_dim / 2 entries. */
void eng_cpu_rope(float *x, int n_heads, int head_dim, int pos, const float *inv_freq);

/* Measures the copy bandwidth and the matmul rate (weights of
 * weight_dtype, or the W8A8 matmul's when weight_fp8) of the pool's
 * threads (rates_cpu.c).  Returns 0 or ENG_E_NOMEM. */
int eng_cpu_measure_rates(struct eng_pool *pool, enum eng_dtype weight_dtype, int weight_fp8,
			  struct eng_roofline_rates *out, struct eng_error *err);

#endif
