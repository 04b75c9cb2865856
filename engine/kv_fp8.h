/*
 * kv_fp8.h: the FP8 E4M3 KV cache on the host side: the format's
 * conversions (what the GPU's __nv_cvt_float_to_fp8 with __NV_SATFINITE
 * and __NV_E4M3 computes, bit for bit), the dtype names, and the per-head
 * dequantization scales of a model.
 *
 * E4M3 ("e4m3fn"): 1 sign, 4 exponent (bias 7), 3 mantissa bits; no
 * infinities; 0x7f and 0xff are NaN; largest finite 448 (0x7e); smallest
 * subnormal 2^-9, smallest normal 2^-6.  A cached element x of KV head h in
 * layer l is stored as e4m3(x * (1 / scale[l][h])) and read back as
 * e4m3 * scale[l][h]; 1 / scale is formed in fp32 on both the CPU and the
 * GPU so that both quantize the same fp32 value the same way.
 */
#ifndef TRAJBENCH_ENG_KV_FP8_H
#define TRAJBENCH_ENG_KV_FP8_H

#include <stdint.h>

#include "engine/error.h"
#include "engine/model.h"

/* How a backend stores K and V. */
enum eng_kv_dtype {
	ENG_KV_DTYPE_AUTO = 0,   /* the backend's own: fp32 on the CPU, bf16 on the GPU */
	ENG_KV_DTYPE_BF16 = 1,   /* bf16 (on the CPU: fp32 pages holding bf16 values) */
	ENG_KV_DTYPE_FP8_E4M3 = 2,
};

/* "auto", "bf16", "fp8_e4m3" (also "fp8", as vLLM spells the same) ->
 * dtype.  ENG_E_INVALID for other names. */
int eng_kv_dtype_from_name(const char *name, enum eng_kv_dtype *dt, struct eng_error *err);

/* Round to nearest, ties to even; |x| > 448 and infinities saturate to
 * +-448 (0x7e / 0xfe); NaN gives 0x7f; the sign of zero is kept. */
uint8_t eng_f32_to_e4m3(float x);

/* Exact: every E4M3 value is an fp32 value; 0x7f and 0xff give NaN. */
float eng_e4m3_to_f32(uint8_t b);

/* The round trip x -> e4m3(x * inv_scale) -> e4m3 value * scale, as the
 * pages of an FP8 cache hold x. */
static inline float eng_kv_fp8_round(float x, float inv_scale, float scale)
{
	return eng_e4m3_to_f32(eng_f32_to_e4m3(x * inv_scale)) * scale;
}

/* FP8 weights and activations (eng_backend_params.weight_fp8): a row x
 * (n) is stored as q[i] = e4m3(x[i] * (1 / scale)) with one scale for the
 * row, scale = max_i |x[i]| / 448, at least ENG_FP8_MIN_SCALE (so an
 * all-zero row gets zeros, and 1 / scale stays finite); 1 / scale is
 * formed in fp32, as for the KV cache, so the GPU's quantization gives the
 * same bytes.  Activation rows are quantized from their bf16 values.  A
 * product of a quantized activation row a (scale sa) and a
 * quantized weight row w (scale sw) is sa * sw * sum_i a[i] w[i], the sum
 * over the exact E4M3 values in fp32. */
#define ENG_FP8_MIN_SCALE 1e-12f
float eng_fp8_row_scale(float amax);
void eng_fp8_quantize_row(const float *x, int n, uint8_t *q, float *scale);

/* The dequantization scales of every (layer, KV head): k and v (n_layers,
 * n_kv_heads) from the layers' k_scale / v_scale tensors where the model
 * has them (one value for all heads of a layer, or one per head), 1.0
 * elsewhere and everywhere when w is NULL (random weights).  Returns 0, or
 * ENG_E_FORMAT (err names the layer) for a scale that is not positive and
 * finite.  *from_checkpoint (may be NULL) tells whether any was read. */
int eng_kv_scales(const struct eng_model_config *c, const struct eng_model_weights *w,
		  float *k, float *v, int *from_checkpoint, struct eng_error *err);

#endif
