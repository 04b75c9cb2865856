/*
 * kv_fp8.c: FP8 E4M3 on the host (see kv_fp8.h): the conversions the CPU
 * reference emulates the GPU's KV cache with, and the KV scales of a model.
 *
 * The encoder works on the fp32 bits, so that its rounding does not
 * depend on the floating-point environment: the 3 kept mantissa bits are
 * rounded to nearest even from the bits below them (normals), or the
 * significand is shifted to units of 2^-9 and rounded the same way
 * (subnormals; a carry into 8 units is the smallest normal, 0x08, which
 * the encoding makes right by itself).  This is the algorithm of
 * cuda_fp8.hpp's host path (there in double) and what cvt.rn.satfinite
 * does on the device; the tests check it against a table of known values.
 */
#include "engine/kv_fp8.h"

#include <math.h>
#include <string.h>

#include "engine/cpu_ops.h"

int eng_kv_dtype_from_name(const char *name, enum eng_kv_dtype *dt, struct eng_error *err)
{
	if (!strcmp(name, "auto"))
		*dt = ENG_KV_DTYPE_AUTO;
	else if (!strcmp(name, "bf16") || !strcmp(name, "bfloat16"))
		*dt = ENG_KV_DTYPE_BF16;
	else if (!strcmp(name, "fp8_e4m3") || !strcmp(name, "fp8"))
		*dt = ENG_KV_DTYPE_FP8_E4M3;
	else
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "kv cache dtype \"%s\": must be auto, bf16 or fp8_e4m3", name);
	return 0;
}

/* The rounded units of m >> s (s >= 1), ties to even. */
static uint32_t round_shift(uint32_t m, int s)
{
	uint32_t r = m >> s, rem = m & ((1u << s) - 1), half = 1u << (s - 1);

	return r + (rem > half || (rem == half && (r & 1)));
}

uint8_t eng_f32_to_e4m3(float x)
{
	uint32_t u, a, m;
	uint8_t sign;
	int e;

	memcpy(&u, &x, sizeof(u));
	sign = (uint8_t)((u >> 24) & 0x80);
	a = u & 0x7fffffffu;
	if (a > 0x7f800000u)
		return 0x7f;                    /* NaN */
	if (a > 0x43e00000u)
		return sign | 0x7e;             /* past 448, infinities: saturate */
	e = (int)(a >> 23) - 127;
	if (e >= -6) {                          /* normal: exponent field e + 7 */
		uint32_t t = ((uint32_t)(e + 7) << 3) | ((a >> 20) & 7);
		uint32_t rem = a & 0xfffffu;

		t += rem > 0x80000u || (rem == 0x80000u && (t & 1));
		return sign | (uint8_t)t;
	}
	if (e < -10)                            /* below 2^-10: rounds to zero */
		return sign;
	m = (a & 0x7fffffu) | 0x800000u;        /* x = m 2^(e - 23) = (m >> (14 - e)) 2^-9 */
	return sign | (uint8_t)round_shift(m, 14 - e);
}

float eng_e4m3_to_f32(uint8_t b)
{
	int e = (b >> 3) & 15, m = b & 7;
	float v;

	if (e == 15 && m == 7)
		return NAN;
	v = e ? ldexpf((float)(8 + m), e - 10) : ldexpf((float)m, -9);
	return b & 0x80 ? -v : v;
}

/* Scale tensor t (1 or n values) into out (n); 1.0 when t is absent. */
static int read_scales(const struct eng_tensor *t, int n, float *out, int layer,
		       const char *what, int *found, struct eng_error *err)
{
	int i;

	if (!t->data) {
		for (i = 0; i < n; i++)
			out[i] = 1.0f;
		return 0;
	}
	*found = 1;
	eng_cpu_row_f32(t, 0, out);   /* t->cols is 1 or n (model.c checks) */
	for (i = 1; t->cols == 1 && i < n; i++)
		out[i] = out[0];
	for (i = 0; i < n; i++)
		if (!(out[i] > 0.0f) || !isfinite(out[i]))
			return eng_error_set(err, ENG_E_FORMAT, NULL, 0,
					     "layer %d: %s %g of kv head %d: a kv cache scale must "
					     "be positive and finite", layer, what, (double)out[i], i);
	return 0;
}

int eng_kv_scales(const struct eng_model_config *c, const struct eng_model_weights *w,
		  float *k, float *v, int *from_checkpoint, struct eng_error *err)
{
	int n = c->n_kv_heads, found = 0, rc, l;
	struct eng_tensor none = { ENG_DTYPE_F32, 1, 1, NULL };

	for (l = 0; l < c->n_layers; l++) {
		const struct eng_tensor *kt = w ? &w->layers[l].k_scale : &none;
		const struct eng_tensor *vt = w ? &w->layers[l].v_scale : &none;

		if ((rc = read_scales(kt, n, k + (size_t)l * n, l, "k_scale", &found, err)) ||
		    (rc = read_scales(vt, n, v + (size_t)l * n, l, "v_scale", &found, err)))
			return rc;
	}
	if (from_checkpoint)
		*from_checkpoint = found;
	return 0;
}

float eng_fp8_row_scale(float amax)
{
	float s = amax / 448.0f;

	return s >= ENG_FP8_MIN_SCALE ? s : ENG_FP8_MIN_SCALE;   /* NaN too */
}

void eng_fp8_quantize_row(const float *x, int n, uint8_t *q, float *scale)
{
	float amax = 0.0f, inv;
	int i;

	for (i = 0; i < n; i++)
		amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
	*scale = eng_fp8_row_scale(amax);
	inv = 1.0f / *scale;
	for (i = 0; i < n; i++)
		q[i] = eng_f32_to_e4m3(x[i] * inv);
}
