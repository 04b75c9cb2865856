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
 * FP8 weights (W8A8) have their own matmul at the end of the file, over
 * codes quantized once at load.
 *
 * Not here: anything faster than "reasonable" (no packing, no AVX-512
 * dispatch).  This backend is the reference others are checked against.
 */
#include "engine/cpu_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kv_fp8.h"

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

void eng_cpu_round_bf16(float *out, const float *in, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		out[i] = eng_bf16_to_f32(eng_f32_to_bf16(in[i]));
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
};

/* out[:, j0 .. j0 + nr) = x (n_tokens, K) . wb^T, for converted rows wb
 * (nr, K) of a weight of N rows. */
static void matmul_block(float *out, const float *x, int n_tokens, int K, int64_t N,
			 const float *wb, int64_t j0, int nr)
{
	float d[4];
	int t, r;

	for (t = 0; t < n_tokens; t++) {
		const float *xt = x + (int64_t)t * K;
		float *o = out + (int64_t)t * N + j0;

		for (r = 0; r + 4 <= nr; r += 4) {
			dot4(wb + (int64_t)r * K, xt, K, d);
			memcpy(o + r, d, sizeof(d));
		}
		for (; r < nr; r++)
			o[r] = eng_cpu_dot(wb + (int64_t)r * K, xt, K);
	}
}

static float bias_at(const struct eng_tensor *b, int64_t j)
{
	if (b->dtype == ENG_DTYPE_F32)
		return ((const float *)b->data)[j];
	if (b->dtype == ENG_DTYPE_BF16)
		return eng_bf16_to_f32(((const uint16_t *)b->data)[j]);
	return eng_f16_to_f32(((const uint16_t *)b->data)[j]);
}

/* out[:, j0 .. j0 + nr) += bias[j0 ..], when there is a bias. */
static void add_bias(float *out, int n_tokens, int64_t N, const struct eng_tensor *bias,
		     int64_t j0, int nr)
{
	float b[ENG_MATMUL_ROWS];
	int r, t;

	if (!bias || !bias->data)
		return;
	for (r = 0; r < nr; r++)
		b[r] = bias_at(bias, j0 + r);
	for (t = 0; t < n_tokens; t++)
		for (r = 0; r < nr; r++)
			out[(int64_t)t * N + j0 + r] += b[r];
}

/* The output rows [j0, j1) of a task of rows_per_task rows out of n. */
static int64_t task_rows(int task, int rows_per_task, int64_t n, int64_t *j1)
{
	*j1 = (int64_t)(task + 1) * rows_per_task;
	if (*j1 > n)
		*j1 = n;
	return (int64_t)task * rows_per_task;
}

static void matmul_task(void *arg, int task, int thread)
{
	const struct matmul_job *J = arg;
	int64_t K = J->w->cols, N = J->w->rows, j0, j1;
	float *wb = J->scratch + (int64_t)thread * ENG_MATMUL_ROWS * K;
	int r;

	for (j0 = task_rows(task, J->rows_per_task, N, &j1); j0 < j1; j0 += ENG_MATMUL_ROWS) {
		int nr = (int)(j1 - j0 < ENG_MATMUL_ROWS ? j1 - j0 : ENG_MATMUL_ROWS);

		for (r = 0; r < nr; r++)
			eng_cpu_row_f32(J->w, j0 + r, wb + r * K);
		matmul_block(J->out, J->x, J->n_tokens, (int)K, N, wb, j0, nr);
		add_bias(J->out, J->n_tokens, N, J->bias, j0, nr);
	}
}

/* About four tasks per thread, each a multiple of the block size. */
static int rows_per_task(struct eng_pool *pool, int64_t N)
{
	int64_t per = N / ((int64_t)eng_pool_n_threads(pool) * 4);

	per = (per + ENG_MATMUL_ROWS - 1) / ENG_MATMUL_ROWS * ENG_MATMUL_ROWS;
	return (int)(per < ENG_MATMUL_ROWS ? ENG_MATMUL_ROWS : per);
}

void eng_cpu_matmul(struct eng_pool *pool, float *scratch, float *out,
		    const float *x, int n_tokens, const struct eng_tensor *w,
		    const struct eng_tensor *bias)
{
	struct matmul_job J = { scratch, out, x, n_tokens, rows_per_task(pool, w->rows), w, bias };

	eng_pool_run(pool, (int)((w->rows + J.rows_per_task - 1) / J.rows_per_task),
		     matmul_task, &J);
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

/* ---------------------------------------------------------------- W8A8 */

/*
 * FP8 weights (eng_backend_params.weight_fp8): the codes are expanded to
 * their exact fp32 values through a 256-entry table, a block of weight
 * rows at a time as the matmul above converts bf16, and every activation
 * row is quantized once per product, before any weight row is read; the
 * dot products of those values are then the fp32 sums the format defines,
 * up to summation order, and the two scales are applied to each sum.
 */

struct fp8_quant_job {
	float *scratch;
	const struct eng_tensor *w;
	struct eng_cpu_fp8_weight *out;
	int rows_per_task;
};

/* A row of weights or activations quantized from its bf16 values, as the
 * GPU quantizes them (it holds both in bf16); x may equal xb, which holds
 * the rounded row afterwards. */
static void fp8_quantize_bf16_row(float *xb, const float *x, int64_t K, uint8_t *q,
				  float *scale)
{
	eng_cpu_round_bf16(xb, x, K);
	eng_fp8_quantize_row(xb, (int)K, q, scale);
}

static void fp8_quant_task(void *arg, int task, int thread)
{
	const struct fp8_quant_job *J = arg;
	int64_t K = J->w->cols, j, j1;
	float *row = J->scratch + (int64_t)thread * ENG_MATMUL_ROWS * K;

	for (j = task_rows(task, J->rows_per_task, J->w->rows, &j1); j < j1; j++) {
		eng_cpu_row_f32(J->w, j, row);
		fp8_quantize_bf16_row(row, row, K, J->out->q + j * K, &J->out->scale[j]);
	}
}

int eng_cpu_fp8_quantize_weight(struct eng_pool *pool, float *scratch,
				const struct eng_tensor *w, struct eng_cpu_fp8_weight *out,
				struct eng_error *err)
{
	struct fp8_quant_job J = { scratch, w, out, rows_per_task(pool, w->rows) };

	out->rows = w->rows;
	out->cols = w->cols;
	out->q = malloc((size_t)(w->rows * w->cols));
	out->scale = malloc((size_t)w->rows * sizeof(float));
	if (!out->q || !out->scale) {
		eng_cpu_fp8_weight_free(out);
		return eng_error_set(err, ENG_E_NOMEM, "cpu", 0,
				     "cannot allocate an fp8 copy of a %lld x %lld weight",
				     (long long)w->rows, (long long)w->cols);
	}
	eng_pool_run(pool, (int)((w->rows + J.rows_per_task - 1) / J.rows_per_task),
		     fp8_quant_task, &J);
	return 0;
}

void eng_cpu_fp8_weight_free(struct eng_cpu_fp8_weight *w)
{
	free(w->q);
	free(w->scale);
	w->q = NULL;
	w->scale = NULL;
}

struct fp8_matmul_job {
	float *scratch, *out, *xq, *sa;
	const float *x;
	int n_tokens, rows_per_task;
	const struct eng_cpu_fp8_weight *w;
	const struct eng_tensor *bias;
	float lut[256];      /* the value of every E4M3 code */
};

/* Token t's activation row quantized (fp8_quantize_bf16_row): the
 * rounded row and its codes go through the thread's scratch (K floats,
 * then K bytes), their values into xq[t], its scale into sa[t]. */
static void fp8_act_task(void *arg, int t, int thread)
{
	const struct fp8_matmul_job *J = arg;
	int64_t K = J->w->cols, k;
	float *xb = J->scratch + (int64_t)thread * ENG_MATMUL_ROWS * K;
	uint8_t *codes = (uint8_t *)(xb + K);
	const float *x = J->x + (int64_t)t * K;
	float *xq = J->xq + (int64_t)t * K;

	fp8_quantize_bf16_row(xb, x, K, codes, &J->sa[t]);
	for (k = 0; k < K; k++)
		xq[k] = J->lut[codes[k]];
}

static void fp8_matmul_task(void *arg, int task, int thread)
{
	const struct fp8_matmul_job *J = arg;
	int64_t K = J->w->cols, N = J->w->rows, j0, j1, k;
	float *wb = J->scratch + (int64_t)thread * ENG_MATMUL_ROWS * K;
	int r, t;

	for (j0 = task_rows(task, J->rows_per_task, N, &j1); j0 < j1; j0 += ENG_MATMUL_ROWS) {
		int nr = (int)(j1 - j0 < ENG_MATMUL_ROWS ? j1 - j0 : ENG_MATMUL_ROWS);

		for (r = 0; r < nr; r++) {
			const uint8_t *q = J->w->q + (j0 + r) * K;
			float *d = wb + r * K;

			for (k = 0; k < K; k++)
				d[k] = J->lut[q[k]];
		}
		matmul_block(J->out, J->xq, J->n_tokens, (int)K, N, wb, j0, nr);
		for (t = 0; t < J->n_tokens; t++) {
			float *o = J->out + (int64_t)t * N + j0;

			for (r = 0; r < nr; r++)
				o[r] = J->sa[t] * J->w->scale[j0 + r] * o[r];
		}
		add_bias(J->out, J->n_tokens, N, J->bias, j0, nr);
	}
}

void eng_cpu_matmul_fp8(struct eng_pool *pool, float *scratch, float *xq, float *sa,
			float *out, const float *x, int n_tokens,
			const struct eng_cpu_fp8_weight *w, const struct eng_tensor *bias)
{
	struct fp8_matmul_job J = { scratch, out, xq, sa, x, n_tokens,
				    rows_per_task(pool, w->rows), w, bias, { 0 } };

	for (int i = 0; i < 256; i++)
		J.lut[i] = eng_e4m3_to_f32((uint8_t)i);
	eng_pool_run(pool, n_tokens, fp8_act_task, &J);
	eng_pool_run(pool, (int)((w->rows + J.rows_per_task - 1) / J.rows_per_task),
		     fp8_matmul_task, &J);
}
