/*
 * cpu_ops.c: fp32 kernels for the CPU reference backend.
 *
 * The matmul reads weights as stored (bf16, f16 or f32) and converts a
 * block of ENG_MATMUL_ROWS rows at a time into per-thread fp32 scratch, then
 * multiplies that block with every token: the conversion is paid once per
 * row per call, not once per token, and no fp32 copy of the model exists.
 * Threads split the output rows.  Dot products use GCC/Clang vector
 * extensions (4 lanes, two accumulators) so that -O2 without -march gives SIMD code; the
 * summation order therefore differs from a plain loop by rounding only.
 *
 * Not here: anything faster than "reasonable" (no packing, no AVX-512
 * dispatch).  This backend is the reference others are checked against.
 */
#include "engine/cpu_ops.h"

#include <math.h>
#include <string.h>

typedef float v4f __attribute__((vector_size(16)));

float eng_bf16_to_f32(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

float eng_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
	float f;

	if (exp == 0x1f) {
		u = sign | 0x7f800000u | (man << 13);
	} else if (exp == 0) {
		/* zero or subnormal: man * 2^-24 exactly */
		f = ldexpf((float)man, -24);
		return sign ? -f : f;
	} else {
		u = sign | ((exp + 112) << 23) | (man << 13);
	}
	memcpy(&f, &u, sizeof(f));
	return f;
}

uint16_t eng_f32_to_bf16(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40);   /* quiet NaN */
	u += 0x7fffu + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

void eng_cpu_row_f32(const struct eng_tensor *t, int64_t row, float *out)
{
	int64_t j, n = t->cols;

	if (t->dtype == ENG_DTYPE_F32) {
		memcpy(out, (const float *)t->data + row * n, (size_t)n * sizeof(float));
	} else if (t->dtype == ENG_DTYPE_BF16) {
		const uint16_t *s = (const uint16_t *)t->data + row * n;

		for (j = 0; j < n; j++) {
			uint32_t u = (uint32_t)s[j] << 16;

			memcpy(&out[j], &u, sizeof(u));
		}
	} else {
		const uint16_t *s = (const uint16_t *)t->data + row * n;

		for (j = 0; j < n; j++)
			out[j] = eng_f16_to_f32(s[j]);
	}
}

static inline v4f load4(const float *p)
{
	v4f v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline float hsum(v4f a, v4f b)
{
	v4f v = a + b;

	return (v[0] + v[2]) + (v[1] + v[3]);
}

float eng_cpu_dot(const float *a, const float *b, int n)
{
	v4f acc0 = { 0 }, acc1 = { 0 };
	float s;
	int i = 0;

	for (; i + 8 <= n; i += 8) {
		acc0 += load4(a + i) * load4(b + i);
		acc1 += load4(a + i + 4) * load4(b + i + 4);
	}
	s = hsum(acc0, acc1);
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

/* out[r] = dot(w + r * n, x) for r < 4: x is loaded once for four rows. */
static void dot4(const float *w, const float *x, int n, float *out)
{
	v4f a0 = { 0 }, a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
	v4f b0 = { 0 }, b1 = { 0 }, b2 = { 0 }, b3 = { 0 };
	int i = 0, r;

	for (; i + 8 <= n; i += 8) {
		v4f x0 = load4(x + i), x1 = load4(x + i + 4);

		a0 += load4(w + i) * x0;
		b0 += load4(w + i + 4) * x1;
		a1 += load4(w + n + i) * x0;
		b1 += load4(w + n + i + 4) * x1;
		a2 += load4(w + 2 * n + i) * x0;
		b2 += load4(w + 2 * n + i + 4) * x1;
		a3 += load4(w + 3 * n + i) * x0;
		b3 += load4(w + 3 * n + i + 4) * x1;
	}
	out[0] = hsum(a0, b0);
	out[1] = hsum(a1, b1);
	out[2] = hsum(a2, b2);
	out[3] = hsum(a3, b3);
	for (; i < n; i++)
		for (r = 0; r < 4; r++)
			out[r] += w[r * n + i] * x[i];
}

struct matmul_job {
	float *scratch, *out;
	const float *x;
	int n_tokens, rows_per_task;
	const struct eng_tensor *w, *bias;
	const float *bias_f32;   /* bias when it is f32, else NULL */
};

/* Multiplies converted rows wb (nr, K) with every token into out[:, j0..]. */
static void matmul_block(const struct matmul_job *J, const float *wb, int64_t j0, int nr)
{
	int K = (int)J->w->cols, N = (int)J->w->rows, t, r;
	float d[4];

	for (t = 0; t < J->n_tokens; t++) {
		const float *xt = J->x + (int64_t)t * K;
		float *o = J->out + (int64_t)t * N + j0;

		for (r = 0; r + 4 <= nr; r += 4) {
			dot4(wb + (int64_t)r * K, xt, K, d);
			memcpy(o + r, d, sizeof(d));
		}
		for (; r < nr; r++)
			o[r] = eng_cpu_dot(wb + (int64_t)r * K, xt, K);
	}
}

static void matmul_task(void *arg, int task, int thread)
{
	const struct matmul_job *J = arg;
	int64_t K = J->w->cols, N = J->w->rows, j0, j1, j;
	float *wb = J->scratch + (int64_t)thread * ENG_MATMUL_ROWS * K;
	float bias_row[ENG_MATMUL_ROWS];
	int r, t;

	j1 = (int64_t)(task + 1) * J->rows_per_task;
	if (j1 > N)
		j1 = N;
	for (j0 = (int64_t)task * J->rows_per_task; j0 < j1; j0 += ENG_MATMUL_ROWS) {
		int nr = (int)(j1 - j0 < ENG_MATMUL_ROWS ? j1 - j0 : ENG_MATMUL_ROWS);

		for (r = 0; r < nr; r++)
			eng_cpu_row_f32(J->w, j0 + r, wb + r * K);
		matmul_block(J, wb, j0, nr);
		if (!J->bias || !J->bias->data)
			continue;
		for (r = 0; r < nr; r++) {
			j = j0 + r;
			bias_row[r] = J->bias->dtype == ENG_DTYPE_F32 ? ((const float *)J->bias->data)[j]
				    : J->bias->dtype == ENG_DTYPE_BF16
				    ? eng_bf16_to_f32(((const uint16_t *)J->bias->data)[j])
				    : eng_f16_to_f32(((const uint16_t *)J->bias->data)[j]);
		}
		for (t = 0; t < J->n_tokens; t++)
			for (r = 0; r < nr; r++)
				J->out[(int64_t)t * N + j0 + r] += bias_row[r];
	}
}

void eng_cpu_matmul(struct eng_pool *pool, float *scratch, float *out,
		    const float *x, int n_tokens, const struct eng_tensor *w,
		    const struct eng_tensor *bias)
{
	struct matmul_job J = { scratch, out, x, n_tokens, 0, w, bias, NULL };
	int64_t N = w->rows, per;
	int n_threads = eng_pool_n_threads(pool);

	/* about four tasks per thread, each a multiple of the block size */
	per = N / ((int64_t)n_threads * 4);
	per = (per + ENG_MATMUL_ROWS - 1) / ENG_MATMUL_ROWS * ENG_MATMUL_ROWS;
	if (per < ENG_MATMUL_ROWS)
		per = ENG_MATMUL_ROWS;
	J.rows_per_task = (int)per;
	eng_pool_run(pool, (int)((N + per - 1) / per), matmul_task, &J);
}

void eng_cpu_rmsnorm(float *out, const float *x, const struct eng_tensor *weight,
		     int n, float eps)
{
	double ss = 0;
	float scale, w;
	int i;

	for (i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	scale = 1.0f / sqrtf((float)(ss / n) + eps);
	for (i = 0; i < n; i++) {
		w = weight->dtype == ENG_DTYPE_F32 ? ((const float *)weight->data)[i]
		  : weight->dtype == ENG_DTYPE_BF16
		  ? eng_bf16_to_f32(((const uint16_t *)weight->data)[i])
		  : eng_f16_to_f32(((const uint16_t *)weight->data)[i]);
		out[i] = w * (x[i] * scale);
	}
}

void eng_cpu_rope(float *x, int n_heads, int head_dim, int pos, const float *inv_freq)
{
	int half = head_dim / 2, h, i;

	for (i = 0; i < half; i++) {
		/* HF forms the angle in fp32: inv_freq * position */
		float ang = inv_freq[i] * (float)pos;
		float c = (float)cos((double)ang), s = (float)sin((double)ang);

		for (h = 0; h < n_heads; h++) {
			float *v = x + (int64_t)h * head_dim;
			float a = v[i], b = v[i + half];

			v[i] = a * c - b * s;
			v[i + half] = b * c + a * s;
		}
	}
}
