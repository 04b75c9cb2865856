/*
 * test-cuda-kernels.c: every kernel of kernels/ against a plain-C
 * reference written here, on fresh random inputs (never zeros) of several
 * shapes: odd sizes, GQA groups of 1, 2 and 7, page sizes that split
 * sequences mid-page, long contexts, split-K decode; RoPE with and
 * without Qwen3's q/k norm.  The FP8 E4M3 KV cache: the device's
 * conversion byte for byte against the host's (engine/kv_fp8.c), the
 * RoPE kernel's K and V bytes with per-head scales, and every attention
 * case again on E4M3 pages with per-head scales.  The tensor-core
 * prefill split over the keys (extend chunks of 1, 17 and 200 rows on
 * prefixes of up to 9000 tokens, 2 to 7 splits, splits empty for some
 * rows, for whole tiles, and for every tile), against the reference and
 * against the one-pass kernel on the same data.  Decode with its split
 * length read on the device over grids with room to spare and too small.
 *
 * Outputs are poisoned (all bits set: NaN in fp32 and bf16) before each
 * launch, so an unwritten element fails.  Tolerances: bf16 outputs
 * ||gpu - ref|| / ||ref|| < 1e-2; fp32 outputs < 1e-4; gathers, argmax
 * exact; E4M3 bytes exact, except a K element whose value (computed in
 * fp32 by both sides, by different sine routines and sums) lies within
 * 1e-5 of its head's largest of a rounding midpoint, which may go to
 * either neighbour; attention on E4M3 pages (the same bytes on both
 * sides, dequantized exactly) < 1e-2 as bf16; split prefill against
 * one-pass < 1e-3 (the same values up to fp32 rounding, which flips a
 * bf16 rounding, 2^-8 relative, here and there).  Prints "1..0 # SKIP no
 * CUDA device" without a GPU.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu_ops.h"
#include "engine/kv_fp8.h"
#include "engine/rng.h"
#include "engine/sampler.h"
#include "kernels/kn.h"
#include "tests/tap.h"

static uint64_t rng = 0x1234567887654321ull;

static float frand(void)   /* uniform in [-1, 1) */
{
	return (float)(eng_splitmix64(&rng) >> 40) / 8388608.0f - 1.0f;
}

static int irand(int n)
{
	return (int)((frand() + 1.0f) * 0.5f * n) % n;
}

/* ||a - b|| / ||b||; NaN in a gives NaN (and fails every "<" check). */
static double rel_err(const float *a, const double *b, size_t n)
{
	double num = 0, den = 0;

	for (size_t i = 0; i < n; i++) {
		num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		den += b[i] * b[i];
	}
	return sqrt(num / (den > 0 ? den : 1));
}

/* ---------------------------------------------------------------- device helpers */

static int failed;

static void *dev(size_t n)
{
	void *p = NULL;

	if (kn_malloc(&p, n)) {
		tap_diag("kn_malloc: %s", kn_last_error());
		failed = 1;
	}
	return p;
}

static void *up(const void *h, size_t n)
{
	void *p = dev(n);

	if (p && (kn_memcpy_h2d(p, h, n, NULL) || kn_stream_sync(NULL)))
		failed = 1;
	return p;
}

static void poison(void *p, size_t n)
{
	kn_memset(p, 0xff, n, NULL);
}

static void down(void *h, const void *d, size_t n)
{
	if (kn_memcpy_d2h(h, d, n, NULL) || kn_stream_sync(NULL)) {
		tap_diag("copy back: %s", kn_last_error());
		failed = 1;
	}
}

static int ran(int rc, const char *what)
{
	if (rc == 0 && kn_stream_sync(NULL) == 0)
		return 1;
	tap_ok(0, "%s ran: %s", what, kn_last_error());
	return 0;
}

/* n random bf16 values, and their fp32 values in f (may be NULL). */
static uint16_t *rand_bf16(size_t n, float scale, float *f)
{
	uint16_t *h = malloc(n * 2);

	for (size_t i = 0; i < n; i++) {
		h[i] = eng_f32_to_bf16(scale * frand());
		if (f)
			f[i] = eng_bf16_to_f32(h[i]);
	}
	return h;
}

static float *rand_f32(size_t n, float mean, float scale)
{
	float *h = malloc(n * sizeof(float));

	for (size_t i = 0; i < n; i++)
		h[i] = mean + scale * frand();
	return h;
}

/* ---------------------------------------------------------------- elementwise */

static void test_embed(int vocab, int hidden, int n)
{
	float *tf = malloc((size_t)vocab * hidden * sizeof(float));
	uint16_t *th = rand_bf16((size_t)vocab * hidden, 1.0f, tf);
	int32_t *ids = malloc(n * sizeof(int32_t));
	float *out = malloc((size_t)n * hidden * sizeof(float));
	int ok = 1;

	for (int i = 0; i < n; i++)
		ids[i] = irand(vocab);
	uint16_t *dt = up(th, (size_t)vocab * hidden * 2);
	int32_t *di = up(ids, n * 4);
	float *dx = dev((size_t)n * hidden * 4);

	poison(dx, (size_t)n * hidden * 4);
	if (ran(kn_embed(dx, dt, di, n, hidden, vocab, NULL), "kn_embed")) {
		down(out, dx, (size_t)n * hidden * 4);
		for (int i = 0; i < n; i++)
			ok &= !memcmp(out + (size_t)i * hidden, tf + (size_t)ids[i] * hidden,
				      hidden * sizeof(float));
		tap_ok(ok, "embed vocab %d hidden %d rows %d: exact rows", vocab, hidden, n);
	}
	kn_free(dt);
	kn_free(di);
	kn_free(dx);
	free(tf);
	free(th);
	free(ids);
	free(out);
}

static void ref_rmsnorm(double *out, const float *x, const float *w, int n, float eps)
{
	double ss = 0;

	for (int i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	ss = 1.0 / sqrt(ss / n + eps);
	for (int i = 0; i < n; i++)
		out[i] = w[i] * x[i] * ss;
}

/* Residual add + norm of n rows, then a gather-norm of some rows. */
static void test_add_rmsnorm(int hidden, int n)
{
	size_t N = (size_t)n * hidden;
	float *x = rand_f32(N, 0, 2), *y = rand_f32(N, 0, 1), *b = rand_f32(hidden, 0, 0.5f);
	float *w = rand_f32(hidden, 1, 0.5f), *xo = malloc(N * 4), *of = malloc(N * 4);
	uint16_t *o = malloc(N * 2);
	double *ref = malloc(N * sizeof(double)), *xr = malloc(N * sizeof(double));
	int32_t rows[3] = { n - 1, 0, n / 2 };
	float *dx = up(x, N * 4), *dy = up(y, N * 4), *db = up(b, hidden * 4);
	float *dw = up(w, hidden * 4);
	uint16_t *dout = dev(N * 2);
	int32_t *drows = up(rows, sizeof(rows));

	for (size_t i = 0; i < N; i++) {
		x[i] += y[i] + b[i % hidden];
		xr[i] = x[i];
	}
	for (int r = 0; r < n; r++)
		ref_rmsnorm(ref + (size_t)r * hidden, x + (size_t)r * hidden, w, hidden, 1e-6f);
	poison(dout, N * 2);
	if (ran(kn_add_rmsnorm(dx, dy, db, dw, dout, NULL, n, hidden, 1e-6f, NULL),
		"kn_add_rmsnorm")) {
		down(xo, dx, N * 4);
		down(o, dout, N * 2);
		for (size_t i = 0; i < N; i++)
			of[i] = eng_bf16_to_f32(o[i]);
		tap_ok(rel_err(xo, xr, N) < 1e-6, "add_rmsnorm hidden %d rows %d: residual %.2e",
		       hidden, n, rel_err(xo, xr, N));
		tap_ok(rel_err(of, ref, N) < 1e-2, "add_rmsnorm hidden %d rows %d: norm %.2e",
		       hidden, n, rel_err(of, ref, N));
	}
	poison(dout, N * 2);
	if (ran(kn_add_rmsnorm(dx, NULL, NULL, dw, dout, drows, 3, hidden, 1e-6f, NULL),
		"kn_add_rmsnorm gather")) {
		double e = 0;

		down(o, dout, (size_t)3 * hidden * 2);
		for (int k = 0; k < 3; k++) {
			for (int i = 0; i < hidden; i++)
				of[i] = eng_bf16_to_f32(o[(size_t)k * hidden + i]);
			e = fmax(e, rel_err(of, ref + (size_t)rows[k] * hidden, hidden));
		}
		tap_ok(e < 1e-2, "rmsnorm gather of rows %d, 0, %d: %.2e", n - 1, n / 2, e);
	}
	kn_free(dx), kn_free(dy), kn_free(db), kn_free(dw), kn_free(dout), kn_free(drows);
	free(x), free(y), free(b), free(w), free(xo), free(of), free(o), free(ref), free(xr);
}

static void test_silu_mul(int n, int inter)
{
	size_t N = (size_t)n * inter;
	float *guf = malloc(2 * N * 4), *bias = rand_f32(2 * inter, 0, 0.5f), *of = malloc(N * 4);
	uint16_t *gu = rand_bf16(2 * N, 4.0f, guf), *o = malloc(N * 2);
	double *ref = malloc(N * sizeof(double));
	uint16_t *dgu = up(gu, 2 * N * 2), *dout = dev(N * 2);
	float *db = up(bias, 2 * inter * 4);

	for (int r = 0; r < n; r++)
		for (int i = 0; i < inter; i++) {
			double g = guf[(size_t)r * 2 * inter + i] + bias[i];
			double u = guf[(size_t)r * 2 * inter + inter + i] + bias[inter + i];

			ref[(size_t)r * inter + i] = g / (1 + exp(-g)) * u;
		}
	poison(dout, N * 2);
	if (ran(kn_silu_mul(dout, dgu, db, n, inter, NULL), "kn_silu_mul")) {
		down(o, dout, N * 2);
		for (size_t i = 0; i < N; i++)
			of[i] = eng_bf16_to_f32(o[i]);
		tap_ok(rel_err(of, ref, N) < 1e-2, "silu_mul rows %d inter %d (bias): %.2e", n, inter,
		       rel_err(of, ref, N));
	}
	kn_free(dgu), kn_free(dout), kn_free(db);
	free(guf), free(bias), free(of), free(gu), free(o), free(ref);
}

/* Whether an FP8 producer's bytes (q, qs) on the device equal those of
 * kn_quant_rows_e4m3 over its bf16 twin's output (rq, rs), n rows of k. */
static void same_e4m3(const uint8_t *q, const float *qs, const uint8_t *rq, const float *rs,
		      int n, int k, const char *what)
{
	uint8_t *a = malloc((size_t)n * k), *b = malloc((size_t)n * k);
	float *as = malloc((size_t)n * 4), *bs = malloc((size_t)n * 4);
	size_t bad = 0;

	down(a, q, (size_t)n * k);
	down(b, rq, (size_t)n * k);
	down(as, qs, (size_t)n * 4);
	down(bs, rs, (size_t)n * 4);
	for (size_t i = 0; i < (size_t)n * k; i++)
		bad += a[i] != b[i];
	for (int r = 0; r < n; r++)
		bad += memcmp(&as[r], &bs[r], 4) != 0;
	tap_ok(bad == 0, "%s rows %d x %d: bytes and scales == bf16 out quantized (%zu differ)",
	       what, n, k, bad);
	free(a), free(b), free(as), free(bs);
}

/* kn_add_rmsnorm_e4m3 == kn_add_rmsnorm then kn_quant_rows_e4m3: the same
 * residual and the same bytes and scales (a row of zeros included). */
static void test_add_rmsnorm_e4m3(int hidden, int n)
{
	static const char *const what[3] = { "add_rmsnorm_e4m3", "add_rmsnorm_e4m3 (bias)",
					      "rmsnorm_e4m3 (no add)" };
	size_t N = (size_t)n * hidden;
	float *x = rand_f32(N, 0, 2), *y = rand_f32(N, 0, 1), *b = rand_f32(hidden, 0, 0.5f);
	float *w = rand_f32(hidden, 1, 0.5f), *x1 = malloc(N * 4), *x2 = malloc(N * 4);
	float *dx1, *dx2, *dy, *db, *dw, *ds1 = dev((size_t)n * 4), *ds2 = dev((size_t)n * 4);
	uint16_t *dout = dev(N * 2);
	uint8_t *dq1 = dev(N), *dq2 = dev(N);

	for (int i = 0; i < hidden; i++)
		x[i] = y[i] = 0.0f;
	dx1 = up(x, N * 4), dx2 = up(x, N * 4), dy = up(y, N * 4), db = up(b, hidden * 4);
	dw = up(w, hidden * 4);
	poison(dq2, N);
	/* the add, then the add with a bias, then a norm with no add */
	for (int c = 0; c < 3; c++) {
		const float *yc = c < 2 ? dy : NULL, *bc = c == 1 ? db : NULL;

		if (!ran(kn_add_rmsnorm(dx1, yc, bc, dw, dout, NULL, n, hidden, 1e-6f, NULL),
			 "kn_add_rmsnorm") ||
		    !ran(kn_quant_rows_e4m3(dq1, ds1, dout, n, hidden, NULL), "kn_quant_rows_e4m3") ||
		    !ran(kn_add_rmsnorm_e4m3(dx2, yc, bc, dw, dq2, ds2, n, hidden, 1e-6f, NULL),
			 "kn_add_rmsnorm_e4m3"))
			continue;
		if (c == 0) {
			down(x1, dx1, N * 4);
			down(x2, dx2, N * 4);
			tap_ok(!memcmp(x1, x2, N * 4), "add_rmsnorm_e4m3 hidden %d rows %d: residual",
			       hidden, n);
		}
		same_e4m3(dq2, ds2, dq1, ds1, n, hidden, what[c]);
	}
	kn_free(dx1), kn_free(dx2), kn_free(dy), kn_free(db), kn_free(dw), kn_free(ds1);
	kn_free(ds2), kn_free(dout), kn_free(dq1), kn_free(dq2);
	free(x), free(y), free(b), free(w), free(x1), free(x2);
}

/* kn_silu_mul_e4m3 == kn_silu_mul then kn_quant_rows_e4m3. */
static void test_silu_mul_e4m3(int n, int inter, int bias)
{
	size_t N = (size_t)n * inter;
	float *guf = malloc(2 * N * 4), *b = rand_f32(2 * inter, 0, 0.5f);
	uint16_t *gu = rand_bf16(2 * N, 4.0f, guf), *dgu = up(gu, 2 * N * 2), *dout = dev(N * 2);
	uint16_t *dact = dev(N * 2);
	uint32_t *dsync = dev((size_t)n * 8), *sync = malloc((size_t)n * 8);
	float *db = bias ? up(b, 2 * inter * 4) : NULL, *ds1 = dev((size_t)n * 4);
	float *ds2 = dev((size_t)n * 4);
	uint8_t *dq1 = dev(N), *dq2 = dev(N);
	char what[64];

	snprintf(what, sizeof(what), "silu_mul_e4m3%s", bias ? " (bias)" : "");
	poison(dq2, N);
	kn_memset(dsync, 0, (size_t)n * 8, NULL);
	/* twice: the first launch must leave the row slots zero for the next */
	for (int k = 0; k < 2; k++)
		if (ran(kn_silu_mul(dout, dgu, db, n, inter, NULL), "kn_silu_mul") &&
		    ran(kn_quant_rows_e4m3(dq1, ds1, dout, n, inter, NULL), "kn_quant_rows_e4m3") &&
		    ran(kn_silu_mul_e4m3(dq2, ds2, dgu, db, n, inter, dact, dsync, NULL),
			"kn_silu_mul_e4m3"))
			same_e4m3(dq2, ds2, dq1, ds1, n, inter, what);
	down(sync, dsync, (size_t)n * 8);
	size_t left = 0;

	for (int r = 0; r < 2 * n; r++)
		left += sync[r] != 0;
	tap_ok(left == 0, "%s rows %d: row slots zero after the launch (%zu not)", what, n, left);
	kn_free(dgu), kn_free(dout), kn_free(db), kn_free(ds1), kn_free(ds2), kn_free(dq1);
	kn_free(dq2), kn_free(dact), kn_free(dsync);
	free(guf), free(b), free(gu), free(sync);
}

/* y = x w^T in fp32 and bf16 outputs. */
static void test_gemm(struct kn_gemm *g, int m, int n, int k)
{
	float *xf = malloc((size_t)m * k * 4), *wf = malloc((size_t)n * k * 4);
	uint16_t *x = rand_bf16((size_t)m * k, 1, xf), *w = rand_bf16((size_t)n * k, 1, wf);
	double *ref = malloc((size_t)m * n * sizeof(double));
	float *y = malloc((size_t)m * n * 4);
	uint16_t *yb = malloc((size_t)m * n * 2);
	uint16_t *dx = up(x, (size_t)m * k * 2), *dw = up(w, (size_t)n * k * 2);
	float *dy = dev((size_t)m * n * 4);

	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			double s = 0;

			for (int t = 0; t < k; t++)
				s += (double)xf[(size_t)i * k + t] * wf[(size_t)j * k + t];
			ref[(size_t)i * n + j] = s;
		}
	/* adding first: a shape first seen by an adding product is timed
	 * without disturbing y */
	float *y0 = rand_f32((size_t)m * n, 0, 1);
	double *ref2 = malloc((size_t)m * n * sizeof(double));

	for (size_t i = 0; i < (size_t)m * n; i++)
		ref2[i] = ref[i] + y0[i];
	kn_memcpy_h2d(dy, y0, (size_t)m * n * 4, NULL);
	if (ran(kn_gemm_bf16(g, dy, KN_Y_F32_ADD, n, dx, dw, m, n, k), "kn_gemm_bf16 f32 add")) {
		down(y, dy, (size_t)m * n * 4);
		tap_ok(rel_err(y, ref2, (size_t)m * n) < 1e-4, "gemm %dx%dx%d fp32 added to y: %.2e",
		       m, n, k, rel_err(y, ref2, (size_t)m * n));
	}
	free(y0), free(ref2);
	poison(dy, (size_t)m * n * 4);
	if (ran(kn_gemm_bf16(g, dy, 1, n, dx, dw, m, n, k), "kn_gemm_bf16 f32")) {
		down(y, dy, (size_t)m * n * 4);
		tap_ok(rel_err(y, ref, (size_t)m * n) < 1e-4, "gemm %dx%dx%d fp32 out: %.2e", m, n, k,
		       rel_err(y, ref, (size_t)m * n));
	}
	poison(dy, (size_t)m * n * 4);
	if (ran(kn_gemm_bf16(g, dy, 0, n, dx, dw, m, n, k), "kn_gemm_bf16 bf16")) {
		down(yb, dy, (size_t)m * n * 2);
		for (size_t i = 0; i < (size_t)m * n; i++)
			y[i] = eng_bf16_to_f32(yb[i]);
		tap_ok(rel_err(y, ref, (size_t)m * n) < 1e-2, "gemm %dx%dx%d bf16 out: %.2e", m, n, k,
		       rel_err(y, ref, (size_t)m * n));
	}
	kn_free(dx), kn_free(dw), kn_free(dy);
	free(xf), free(wf), free(x), free(w), free(ref), free(y), free(yb);
}

/* The skinny kernel's paths: 1, 2 and 4 warps a row at 4 loads in
 * flight a lane, then at 8. */
static const int sk_paths[] = { 1, 2, 4, 1 | KN_SKINNY_LOADS8, 2 | KN_SKINNY_LOADS8,
				4 | KN_SKINNY_LOADS8 };
#define N_SK_PATHS ((int)(sizeof(sk_paths) / sizeof(sk_paths[0])))

static const char *path_name(int path)
{
	static char buf[4][40];
	static int next;
	char *b = buf[next++ % 4];

	snprintf(b, sizeof(buf[0]), "%d warps a row, %d loads a lane", path & ~KN_SKINNY_LOADS8,
		 path & KN_SKINNY_LOADS8 ? 8 : 4);
	return b;
}

/* SwiGLU in the skinny kernel (kn_gemm_skinny_glu_bf16 on each path,
 * kn_gemm_glu_bf16 as picked, fused and not): the bits of the gate/up
 * product into bf16 followed by kn_silu_mul, and near the CPU's. */
static void test_gemm_glu(struct kn_gemm *g, int m, int inter, int k, int with_bias)
{
	size_t n = 2 * (size_t)inter, na = (size_t)m * inter;
	float *xf = malloc((size_t)m * k * 4), *wf = malloc(n * k * 4);
	uint16_t *x = rand_bf16((size_t)m * k, 1, xf), *w = rand_bf16(n * k, 1, wf);
	float *bias = with_bias ? rand_f32(n, 0, 1) : NULL, *af = malloc(na * 4);
	uint16_t *want = malloc(na * 2), *got = malloc(na * 2);
	uint16_t *dx = up(x, (size_t)m * k * 2), *dw = up(w, n * k * 2);
	float *db = bias ? up(bias, n * 4) : NULL;
	uint16_t *dgu = dev((size_t)m * n * 2), *dref = dev(na * 2), *dact = dev(na * 2);
	double *ref = malloc(na * sizeof(double));

	for (int i = 0; i < m; i++)
		for (int j = 0; j < inter; j++) {
			double gs = 0, us = 0;

			for (int t = 0; t < k; t++) {
				gs += (double)xf[(size_t)i * k + t] * wf[(size_t)j * k + t];
				us += (double)xf[(size_t)i * k + t] * wf[(size_t)(inter + j) * k + t];
			}
			if (bias) {
				gs += bias[j];
				us += bias[inter + j];
			}
			ref[(size_t)i * inter + j] = gs / (1 + exp(-gs)) * us;
		}
	for (int p = 0; p < N_SK_PATHS && m <= 4; p++) {
		poison(dact, na * 2);
		if (!ran(kn_gemm_skinny_bf16(dgu, 0, (int)n, dx, dw, m, (int)n, k, sk_paths[p], NULL) ||
			 kn_silu_mul(dref, dgu, db, m, inter, NULL),
			 "skinny product and kn_silu_mul") ||
		    !ran(kn_gemm_skinny_glu_bf16(dact, dx, dw, db, m, inter, k, sk_paths[p], NULL),
			 "kn_gemm_skinny_glu_bf16"))
			continue;
		down(want, dref, na * 2);
		down(got, dact, na * 2);
		for (size_t i = 0; i < na; i++)
			af[i] = eng_bf16_to_f32(got[i]);
		tap_ok(!memcmp(want, got, na * 2) && rel_err(af, ref, na) < 1e-2,
		       "skinny swiglu %dx%dx%d%s, %s: the unfused bits, %.2e from the CPU", m, inter,
		       k, bias ? " with bias" : "", path_name(sk_paths[p]), rel_err(af, ref, na));
	}
	for (int fuse = 0; fuse < 2; fuse++) {
		kn_skinny_glu(fuse);
		poison(dact, na * 2);
		if (!ran(kn_gemm_bf16(g, dgu, 0, (int)n, dx, dw, m, (int)n, k) ||
			 kn_silu_mul(dref, dgu, db, m, inter, NULL),
			 "kn_gemm_bf16 and kn_silu_mul") ||
		    !ran(kn_gemm_glu_bf16(g, dact, dgu, dx, dw, db, m, inter, k), "kn_gemm_glu_bf16"))
			continue;
		down(want, dref, na * 2);
		down(got, dact, na * 2);
		tap_ok(!memcmp(want, got, na * 2), "gemm swiglu %dx%dx%d%s, %s: the unfused bits", m,
		       inter, k, bias ? " with bias" : "", fuse ? "fused where skinny" : "unfused");
	}
	kn_skinny_glu(0);
	kn_free(dx), kn_free(dw), kn_free(db), kn_free(dgu), kn_free(dref), kn_free(dact);
	free(xf), free(wf), free(x), free(w), free(bias), free(af), free(want), free(got), free(ref);
}

/* The skinny-x kernel alone on path (kn_gemm_bf16 may pick any path):
 * fp32 out with a row stride past n, the same bits again, then added,
 * then bf16 out. */
static void test_gemm_skinny(int m, int n, int k, int path)
{
	int ldy = n + 5;
	float *xf = malloc((size_t)m * k * 4), *wf = malloc((size_t)n * k * 4);
	uint16_t *x = rand_bf16((size_t)m * k, 1, xf), *w = rand_bf16((size_t)n * k, 1, wf);
	double *ref = malloc((size_t)m * n * sizeof(double));
	float *y = malloc((size_t)m * ldy * 4), *y2 = malloc((size_t)m * ldy * 4);
	float *yc = malloc((size_t)m * n * 4);
	uint16_t *yb = malloc((size_t)m * n * 2);
	uint16_t *dx = up(x, (size_t)m * k * 2), *dw = up(w, (size_t)n * k * 2);
	float *dy = dev((size_t)m * ldy * 4);

	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			double sum = 0;

			for (int t = 0; t < k; t++)
				sum += (double)xf[(size_t)i * k + t] * wf[(size_t)j * k + t];
			ref[(size_t)i * n + j] = sum;
		}
	poison(dy, (size_t)m * ldy * 4);
	if (ran(kn_gemm_skinny_bf16(dy, 1, ldy, dx, dw, m, n, k, path, NULL),
		"kn_gemm_skinny_bf16 f32")) {
		down(y, dy, (size_t)m * ldy * 4);
		for (int i = 0; i < m; i++)
			memcpy(yc + (size_t)i * n, y + (size_t)i * ldy, (size_t)n * 4);
		tap_ok(rel_err(yc, ref, (size_t)m * n) < 1e-4,
		       "skinny gemm %dx%dx%d, %s, fp32 out: %.2e", m, n, k, path_name(path),
		       rel_err(yc, ref, (size_t)m * n));
	}
	if (ran(kn_gemm_skinny_bf16(dy, 1, ldy, dx, dw, m, n, k, path, NULL),
		"kn_gemm_skinny_bf16 f32 again")) {
		down(y2, dy, (size_t)m * ldy * 4);
		tap_ok(!memcmp(y, y2, (size_t)m * ldy * 4),
		       "skinny gemm %dx%dx%d, %s: the same bits twice", m, n, k,
		       path_name(path));
	}
	/* added to what the fp32 product left: twice the product */
	if (ran(kn_gemm_skinny_bf16(dy, KN_Y_F32_ADD, ldy, dx, dw, m, n, k, path, NULL),
		"kn_gemm_skinny_bf16 f32 add")) {
		down(y, dy, (size_t)m * ldy * 4);
		for (int i = 0; i < m; i++)
			for (int j = 0; j < n; j++)
				yc[(size_t)i * n + j] = 0.5f * y[(size_t)i * ldy + j];
		tap_ok(rel_err(yc, ref, (size_t)m * n) < 1e-4, "skinny gemm %dx%dx%d fp32 added: %.2e",
		       m, n, k, rel_err(yc, ref, (size_t)m * n));
	}
	poison(dy, (size_t)m * n * 2);
	if (ran(kn_gemm_skinny_bf16(dy, 0, n, dx, dw, m, n, k, path, NULL),
		"kn_gemm_skinny_bf16 bf16")) {
		down(yb, dy, (size_t)m * n * 2);
		for (size_t i = 0; i < (size_t)m * n; i++)
			yc[i] = eng_bf16_to_f32(yb[i]);
		tap_ok(rel_err(yc, ref, (size_t)m * n) < 1e-2, "skinny gemm %dx%dx%d bf16 out: %.2e",
		       m, n, k, rel_err(yc, ref, (size_t)m * n));
	}
	tap_ok(kn_gemm_skinny_bf16(dy, 1, n, dx, dw, m, n, k + 4, path, NULL) == KN_E_INVALID &&
	       kn_gemm_skinny_bf16(dy, 1, n, dx, dw, 5, n, k, path, NULL) == KN_E_INVALID &&
	       kn_gemm_skinny_bf16(dy, 1, n, dx, dw, m, n, k, 3, NULL) == KN_E_INVALID &&
	       kn_gemm_skinny_bf16(dy, 1, n, dx, dw, m, n, k, KN_SKINNY_LOADS8, NULL) ==
		       KN_E_INVALID &&
	       kn_gemm_skinny_bf16(dy, 1, n, dx, dw, m, n, k, 16 | 1, NULL) == KN_E_INVALID,
	       "skinny gemm refuses k %% 8, m > 4, 3 or no warps a row and unknown paths");
	kn_free(dx), kn_free(dw), kn_free(dy);
	free(xf), free(wf), free(x), free(w), free(ref), free(y), free(y2), free(yc), free(yb);
}

/* ---------------------------------------------------------------- fp8 gemm */

/* kn_quant_rows_e4m3 == eng_fp8_quantize_row byte for byte (rows with a
 * zero row, a tiny one, and a wide range), and kn_gemm_fp8 on the path
 * asked for against the same quantization's product summed in double on
 * the host. */
static void test_gemm_fp8(struct kn_gemm *g, int m, int n, int k, int path)
{
	static const char *names[] = { "auto", "skinny", "cublaslt" };
	float *xf = malloc((size_t)m * k * 4), *wf = malloc((size_t)n * k * 4);
	uint16_t *x = rand_bf16((size_t)m * k, 3, xf), *w = rand_bf16((size_t)n * k, 0.05f, wf);
	uint8_t *wq = malloc((size_t)n * k), *xq = malloc((size_t)m * k);
	size_t rows = (size_t)(n > m ? n : m);
	uint8_t *gq = malloc(rows * k);
	float *ws = malloc((size_t)n * 4), *xs = malloc((size_t)m * 4), *gs = malloc(rows * 4);
	double *ref = malloc((size_t)m * n * sizeof(double));
	float *y = malloc((size_t)m * n * 4);
	uint16_t *yb = malloc((size_t)m * n * 2);
	uint8_t *dwq = dev((size_t)n * k), *dxq = dev((size_t)m * k);
	float *dws = dev((size_t)n * 4), *dxs = dev((size_t)m * 4), *dy = dev((size_t)m * n * 4);
	uint16_t *dx, *dw;
	size_t bad = 0;

	/* row 0 of w all zero, row 1 tiny: the scale's floor and subnormals */
	for (int t = 0; t < k; t++) {
		w[t] = 0;
		wf[t] = 0;
		if (n > 1) {
			w[(size_t)k + t] = eng_f32_to_bf16(1e-6f * frand());
			wf[(size_t)k + t] = eng_bf16_to_f32(w[(size_t)k + t]);
		}
	}
	dx = up(x, (size_t)m * k * 2);
	dw = up(w, (size_t)n * k * 2);
	for (int j = 0; j < n; j++)
		eng_fp8_quantize_row(wf + (size_t)j * k, k, wq + (size_t)j * k, ws + j);
	for (int i = 0; i < m; i++)
		eng_fp8_quantize_row(xf + (size_t)i * k, k, xq + (size_t)i * k, xs + i);
	if (ran(kn_quant_rows_e4m3(dwq, dws, dw, n, k, NULL), "kn_quant_rows_e4m3")) {
		down(gq, dwq, (size_t)n * k);
		down(gs, dws, (size_t)n * 4);
		for (size_t i = 0; i < (size_t)n * k; i++)
			bad += gq[i] != wq[i];
		for (int j = 0; j < n; j++)
			bad += memcmp(&gs[j], &ws[j], 4) != 0;
		tap_ok(bad == 0, "fp8 row quantization %dx%d: device == host (%zu differ)", n, k, bad);
	}
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			double s = 0;

			for (int t = 0; t < k; t++)
				s += (double)eng_e4m3_to_f32(xq[(size_t)i * k + t]) *
				     eng_e4m3_to_f32(wq[(size_t)j * k + t]);
			ref[(size_t)i * n + j] = s * xs[i] * ws[j];
		}
	poison(dy, (size_t)m * n * 4);
	if (ran(kn_gemm_fp8(g, dy, KN_Y_F32, n, dx, dwq, dws, m, n, k, dxq, dxs, path),
		"kn_gemm_fp8 f32")) {
		/* the activations' bytes and scales are exact; the sums are
		 * fp32 (on Hopper the tensor cores keep fewer bits while
		 * summing), and a wrong index or fragment is off by far more */
		down(gq, dxq, (size_t)m * k);
		down(gs, dxs, (size_t)m * 4);
		bad = 0;
		for (size_t i = 0; i < (size_t)m * k; i++)
			bad += gq[i] != xq[i];
		for (int i = 0; i < m; i++)
			bad += memcmp(&gs[i], &xs[i], 4) != 0;
		tap_ok(bad == 0, "fp8 gemm (%s) %dx%dx%d: activations quantized as the host does "
		       "(%zu differ)", names[path], m, n, k, bad);
		down(y, dy, (size_t)m * n * 4);
		tap_ok(rel_err(y, ref, (size_t)m * n) < 5e-4, "fp8 gemm (%s) %dx%dx%d fp32 out: %.2e",
		       names[path], m, n, k, rel_err(y, ref, (size_t)m * n));
	}
	poison(dy, (size_t)m * n * 4);
	if (ran(kn_gemm_fp8(g, dy, 0, n, dx, dwq, dws, m, n, k, dxq, dxs, path),
		"kn_gemm_fp8 bf16")) {
		down(yb, dy, (size_t)m * n * 2);
		for (size_t i = 0; i < (size_t)m * n; i++)
			y[i] = eng_bf16_to_f32(yb[i]);
		tap_ok(rel_err(y, ref, (size_t)m * n) < 1e-2, "fp8 gemm (%s) %dx%dx%d bf16 out: %.2e",
		       names[path], m, n, k, rel_err(y, ref, (size_t)m * n));
	}
	kn_free(dx), kn_free(dw), kn_free(dwq), kn_free(dxq), kn_free(dws), kn_free(dxs);
	kn_free(dy);
	free(xf), free(wf), free(x), free(w), free(wq), free(xq), free(gq), free(ws), free(xs);
	free(gs), free(ref), free(y), free(yb);
}

/* The skinny kernel forced takes m <= 32 and k a multiple of 64 only
 * (the buffers are large enough either way). */
static void test_gemm_fp8_refuses(struct kn_gemm *g)
{
	uint8_t *q = dev(64 * 128);
	float *s = dev(64 * 4), *y = dev(64 * 64 * 4);

	tap_ok(kn_gemm_fp8_q(g, y, KN_Y_F32, 64, q, s, q, s, 1, 64, 96, KN_FP8_SKINNY) ==
	       KN_E_INVALID && kn_gemm_fp8_q(g, y, KN_Y_F32, 64, q, s, q, s, 33, 64, 64,
					     KN_FP8_SKINNY) == KN_E_INVALID,
	       "fp8 gemm (skinny) refuses k %% 64 and m > 32");
	kn_free(q), kn_free(s), kn_free(y);
}

/* ---------------------------------------------------------------- e4m3 */

/* kn_f32_to_e4m3 == eng_f32_to_e4m3, byte for byte, on every midpoint of
 * adjacent codes and one fp32 ulp either side, specials (zeros, 448 and
 * past it, infinities, fp32 subnormals) and random magnitudes, with
 * inverse scale 1 and 1 / 0.37 (formed in fp32 as the kernels form it).
 * NaN must give a NaN code (0x7f or 0xff; the host says 0x7f). */
static void test_e4m3_convert(void)
{
	static const float specials[] = { 0.0f, -0.0f, 448.0f, -448.0f, 449.0f, 464.0f, 465.0f,
					  1e30f, -1e30f, INFINITY, -INFINITY, 1e-40f, -1e-40f,
					  0.0009765625f, 0.0146484375f, 1.0625f, 1.1875f, 3.875f };
	size_t n = 0, cap = 6 * 126 + 64 + 100000;
	float *x = malloc(cap * sizeof(float));
	uint8_t *got = malloc(cap);
	int bad = 0, nan_ok;

	for (int b = 0; b < 0x7e; b++) {
		float lo = eng_e4m3_to_f32((uint8_t)b), hi = eng_e4m3_to_f32((uint8_t)(b + 1));
		float mid = (float)(((double)lo + hi) / 2);

		x[n++] = mid, x[n++] = -mid;
		x[n++] = nextafterf(mid, 0.0f), x[n++] = nextafterf(mid, 1000.0f);
		x[n++] = -nextafterf(mid, 0.0f), x[n++] = -nextafterf(mid, 1000.0f);
	}
	for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++)
		x[n++] = specials[i];
	while (n < cap - 2)
		x[n++] = frand() * exp2f(24.0f * (frand() + 1.0f) * 0.5f - 14.0f);
	x[n++] = NAN;
	x[n++] = -NAN;
	float *dx = up(x, n * 4);
	uint8_t *dy = dev(n);

	for (int k = 0; k < 2; k++) {
		float inv = k ? 1.0f / 0.37f : 1.0f;

		poison(dy, n);
		if (!ran(kn_f32_to_e4m3(dy, dx, n, inv, NULL), "kn_f32_to_e4m3"))
			break;
		down(got, dy, n);
		bad = 0;
		for (size_t i = 0; i < n - 2; i++)
			if (got[i] != eng_f32_to_e4m3(x[i] * inv)) {
				if (bad++ < 5)
					tap_diag("e4m3 of %a * %a: device 0x%02x, host 0x%02x", (double)x[i],
						 (double)inv, got[i], eng_f32_to_e4m3(x[i] * inv));
			}
		nan_ok = (got[n - 2] & 0x7f) == 0x7f && (got[n - 1] & 0x7f) == 0x7f;
		tap_ok(bad == 0 && nan_ok, "e4m3 device conversion == host's on %zu values (midpoints "
		       "+- 1 ulp, saturation, infinities, subnormals, random), inverse scale %g: %d "
		       "differ; NaN -> 0x%02x, -NaN -> 0x%02x", n - 2, (double)inv, bad, got[n - 2],
		       got[n - 1]);
	}
	kn_free(dx), kn_free(dy);
	free(x), free(got);
}

/* Random E4M3 pages are the random fp32 values rounded. */
static void test_fill_e4m3(void)
{
	size_t rows = 37, cols = 24, full = 40, n = rows * cols;
	uint8_t *d8 = dev(n), *dr = dev(n), *h8 = malloc(n), *hr = malloc(n);
	float *df = dev(n * 4);

	if (ran(kn_fill_random_slice_e4m3(d8, rows, cols, full, 3, 16, 99, 0.0f, 1.0f, NULL),
		"kn_fill_random_slice_e4m3") &&
	    ran(kn_fill_random_slice_f32(df, rows, cols, full, 3, 16, 99, 0.0f, 1.0f, NULL),
		"kn_fill_random_slice_f32") &&
	    ran(kn_f32_to_e4m3(dr, df, n, 1.0f, NULL), "kn_f32_to_e4m3")) {
		down(h8, d8, n);
		down(hr, dr, n);
		tap_ok(!memcmp(h8, hr, n), "fill_random_slice_e4m3 == the fp32 slice rounded");
	}
	kn_free(d8), kn_free(dr), kn_free(df);
	free(h8), free(hr);
}

/* ---------------------------------------------------------------- rope + cache */

/* Each (hd) head of the row x (n_heads heads) normalized by the shared w. */
static void norm_heads_ref(float *x, int n_heads, int hd, const float *w, float eps)
{
	struct eng_tensor t = { ENG_DTYPE_F32, 1, hd, w };

	for (int h = 0; h < n_heads; h++)
		eng_cpu_rmsnorm(x + (size_t)h * hd, x + (size_t)h * hd, &t, hd, eps);
}

/* The E4M3 bytes got (n rows of kd) of the rows' reference values ref in
 * their slots: each exact, or (near only) one code off where the scaled
 * value y lies within 1e-5 of its head's largest |y| of the midpoint of
 * the two codes (both sides compute y in fp32 by different routines).
 * Returns the count of differing bytes, or -1 for one not allowed. */
static int e4m3_check(const uint8_t *got, const double *ref, const int32_t *slot, int n, int nkv,
		      int hd, const float *inv, int near)
{
	int kd = nkv * hd, differ = 0;

	for (int r = 0; r < n; r++)
		for (int h = 0; h < nkv; h++) {
			const double *rh = ref + (size_t)r * kd + (size_t)h * hd;
			const uint8_t *gh = got + (size_t)slot[r] * kd + (size_t)h * hd;
			double big = 0;

			for (int i = 0; i < hd; i++)
				big = fmax(big, fabs((float)rh[i] * inv[h]));
			for (int i = 0; i < hd; i++) {
				float y = (float)rh[i] * inv[h];
				uint8_t want = eng_f32_to_e4m3(y);
				double a = eng_e4m3_to_f32(gh[i]), b = eng_e4m3_to_f32(want);

				if (gh[i] == want)
					continue;
				differ++;
				if (!near || fabs(y - (a + b) / 2) > 1e-5 * big ||
				    fabs(a - b) > 0.13 * fmax(fabs(a), fabs(b)) + 0.002) {
					tap_diag("e4m3 byte of row %d head %d dim %d: 0x%02x, want 0x%02x "
						 "(of %.9g)", r, h, i, gh[i], want, (double)y);
					return -1;
				}
			}
		}
	return differ;
}

/* With norm (Qwen3): q/k heads RMSNorm'ed by weights far from 1 before the
 * rotation; the q/k/v rows are given another scale than unit so that a
 * kernel that skipped the norm could not pass.  With fp8: K and V into
 * E4M3 pages with per-head scales in [0.3, 3]. */
static void test_rope(int nh, int nkv, int hd, int n, int norm, int fp8)
{
	int qd = nh * hd, kd = nkv * hd, w = qd + 2 * kd, n_slots = 4 * n + 3, half = hd / 2;
	float eps = 1e-6f;
	float *qkv = rand_f32((size_t)n * w, 0, norm ? 7 : 2), *bias = rand_f32(w, 0, 0.5f);
	float *qn = rand_f32(hd, 1, 0.8f), *kn = rand_f32(hd, 1, 0.8f);
	float *ksc = rand_f32(nkv, 1.65f, 1.35f), *vsc = rand_f32(nkv, 1.65f, 1.35f);
	float *kinv = malloc(nkv * 4), *vinv = malloc(nkv * 4);
	float *inv = malloc(half * 4), *q = malloc((size_t)n * w * 4);
	int32_t *pos = malloc(n * 4), *slot = malloc(n * 4), *perm = malloc(n_slots * 4);
	uint16_t *qo = malloc((size_t)n * qd * 2), *kc = malloc((size_t)n_slots * kd * 2);
	uint16_t *vc = malloc((size_t)n_slots * kd * 2);
	double *rq = malloc((size_t)n * qd * 8), *rk = malloc((size_t)n * kd * 8);
	double *rv = malloc((size_t)n * kd * 8);
	float *gq = malloc((size_t)n * qd * 4), *gk = malloc((size_t)n * kd * 4);
	float *gv = malloc((size_t)n * kd * 4);
	size_t cb = (size_t)n_slots * kd * (fp8 ? 1 : 2);   /* bytes of one cache */

	for (int h = 0; h < nkv; h++) {
		kinv[h] = 1.0f / ksc[h];
		vinv[h] = 1.0f / vsc[h];
	}
	for (int i = 0; i < half; i++)
		inv[i] = 1.0f / (float)pow(1e6, (double)(2 * i) / hd);
	for (int i = 0; i < n_slots; i++)
		perm[i] = i;
	for (int i = n_slots - 1; i > 0; i--) {
		int j = irand(i + 1), t = perm[i];

		perm[i] = perm[j], perm[j] = t;
	}
	for (int r = 0; r < n; r++) {
		float *row = q + (size_t)r * w;

		pos[r] = irand(9000);
		slot[r] = perm[r];
		for (int i = 0; i < w; i++)
			row[i] = qkv[(size_t)r * w + i] + bias[i];
		if (norm) {
			norm_heads_ref(row, nh, hd, qn, eps);
			norm_heads_ref(row + qd, nkv, hd, kn, eps);
		}
		eng_cpu_rope(row, nh, hd, pos[r], inv);
		eng_cpu_rope(row + qd, nkv, hd, pos[r], inv);
		for (int i = 0; i < qd; i++)
			rq[(size_t)r * qd + i] = row[i];
		for (int i = 0; i < kd; i++) {
			rk[(size_t)r * kd + i] = row[qd + i];
			rv[(size_t)r * kd + i] = row[qd + kd + i];
		}
	}
	float *dqkv = up(qkv, (size_t)n * w * 4), *db = up(bias, w * 4), *dinv = up(inv, half * 4);
	float *dqn = up(qn, hd * 4), *dkn = up(kn, hd * 4);
	float *dks = up(ksc, nkv * 4), *dvs = up(vsc, nkv * 4);
	int32_t *dpos = up(pos, n * 4), *dslot = up(slot, n * 4);
	uint16_t *dq = dev((size_t)n * qd * 2);
	void *dk = dev(cb), *dv = dev(cb);
	int rc;

	poison(dq, (size_t)n * qd * 2);
	poison(dk, cb);
	poison(dv, cb);
	rc = fp8 ? kn_rope_qkv_e4m3(dqkv, db, norm ? dqn : NULL, norm ? dkn : NULL, eps, dpos, dslot,
				    dinv, dks, dvs, dq, dk, dv, n, nh, nkv, hd, NULL)
		 : kn_rope_qkv(dqkv, db, norm ? dqn : NULL, norm ? dkn : NULL, eps, dpos, dslot, dinv,
			       dq, dk, dv, n, nh, nkv, hd, NULL);
	if (ran(rc, fp8 ? "kn_rope_qkv_e4m3" : "kn_rope_qkv")) {
		down(qo, dq, (size_t)n * qd * 2);
		down(kc, dk, cb);
		down(vc, dv, cb);
		for (size_t i = 0; i < (size_t)n * qd; i++)
			gq[i] = eng_bf16_to_f32(qo[i]);
		for (int r = 0; !fp8 && r < n; r++)
			for (int i = 0; i < kd; i++) {
				gk[(size_t)r * kd + i] = eng_bf16_to_f32(kc[(size_t)slot[r] * kd + i]);
				gv[(size_t)r * kd + i] = eng_bf16_to_f32(vc[(size_t)slot[r] * kd + i]);
			}
		if (!fp8) {
			tap_ok(rel_err(gq, rq, (size_t)n * qd) < 1e-2 &&
			       rel_err(gk, rk, (size_t)n * kd) < 1e-2 &&
			       rel_err(gv, rv, (size_t)n * kd) < 1e-2,
			       "rope+cache%s heads %d/%d dim %d rows %d: q %.2e k %.2e v %.2e",
			       norm ? " with q/k norm" : "", nh, nkv, hd, n,
			       rel_err(gq, rq, (size_t)n * qd), rel_err(gk, rk, (size_t)n * kd),
			       rel_err(gv, rv, (size_t)n * kd));
		} else {
			int dk_n = e4m3_check((uint8_t *)kc, rk, slot, n, nkv, hd, kinv, 1);
			int dv_n = e4m3_check((uint8_t *)vc, rv, slot, n, nkv, hd, vinv, 0);

			tap_ok(rel_err(gq, rq, (size_t)n * qd) < 1e-2 && dk_n >= 0 &&
			       dk_n <= n * kd / 100 + 1 && dv_n == 0,
			       "rope+cache e4m3%s heads %d/%d dim %d rows %d, per-head scales: q %.2e, "
			       "k bytes %d of %d off by one code at a midpoint, v bytes exact",
			       norm ? " with q/k norm" : "", nh, nkv, hd, n,
			       rel_err(gq, rq, (size_t)n * qd), dk_n, n * kd);
		}
	}
	if (norm && !fp8)
		tap_ok(kn_rope_qkv(dqkv, db, dqn, NULL, eps, dpos, dslot, dinv, dq, dk, dv, n, nh, nkv,
				   hd, NULL) == KN_E_INVALID &&
		       kn_rope_qkv(dqkv, db, dqn, dkn, eps, dpos, dslot, dinv, dq, dk, dv, n, nh, nkv,
				   264, NULL) == KN_E_INVALID,
		       "rope+cache refuses a q norm without a k norm, and head_dim 264 with norms");
	if (fp8 && !norm)
		tap_ok(kn_rope_qkv_e4m3(dqkv, db, NULL, NULL, eps, dpos, dslot, dinv, NULL, dvs, dq, dk,
					dv, n, nh, nkv, hd, NULL) == KN_E_INVALID,
		       "rope+cache e4m3 refuses missing scales");
	kn_free(dqkv), kn_free(db), kn_free(dinv), kn_free(dpos), kn_free(dslot);
	kn_free(dqn), kn_free(dkn), kn_free(dks), kn_free(dvs);
	kn_free(dq), kn_free(dk), kn_free(dv);
	free(qkv), free(bias), free(qn), free(kn), free(inv), free(q), free(pos), free(slot);
	free(perm), free(ksc), free(vsc), free(kinv), free(vinv);
	free(qo), free(kc), free(vc), free(rq), free(rk), free(rv), free(gq), free(gk), free(gv);
}

/* ---------------------------------------------------------------- attention */

struct attn_case {
	int nh, nkv, hd, ps, n_seqs;
	int start[8], ntok[8];
	int split_len;   /* 0: prefill kernel; else decode with this split */
	int tc;          /* on the tensor-core kernel */
	int pf_splits, pf_split_len;   /* tensor-core prefill split over the keys */
	int wg;          /* prefill on a wgmma kernel (tc set too: the same tiles):
			  * WG_FIRST or WG_WS (the warp-specialized one) */
	int grid;        /* decode: this many splits, split_len read on the device */
};

#define WG_FIRST 1
#define WG_WS 2

struct attn_data {
	int T, n_slots, n_bt, n_tiles;
	int32_t *bt, *pos, *bt_off, *tile_row0, *tile_n;
	float *k, *v, *q;          /* fp32 values of the bf16 data (or of E4M3 * scale) */
	uint16_t *kb, *vb, *qb;
	int fp8;                   /* pages of E4M3 bytes k8, v8 with scales ks, vs */
	uint8_t *k8, *v8;          /* (n_slots, nkv, hd) */
	float *ks, *vs;            /* (nkv) */
};

/* E4M3 pages: random codes (|value| < 2, subnormals included) and per-head
 * scales in [0.5, 2]; k, v get their exact values times the scales. */
static void attn_build_e4m3(const struct attn_case *c, struct attn_data *d)
{
	size_t n = (size_t)d->n_slots * c->nkv * c->hd;

	d->fp8 = 1;
	d->k8 = malloc(n), d->v8 = malloc(n);
	d->ks = rand_f32(c->nkv, 1.25f, 0.75f), d->vs = rand_f32(c->nkv, 1.25f, 0.75f);
	for (size_t i = 0; i < n; i++) {
		int h = (int)(i / c->hd % c->nkv);

		d->k8[i] = eng_f32_to_e4m3(2.0f * frand());
		d->v8[i] = eng_f32_to_e4m3(2.0f * frand());
		d->k[i] = eng_e4m3_to_f32(d->k8[i]) * d->ks[h];
		d->v[i] = eng_e4m3_to_f32(d->v8[i]) * d->vs[h];
	}
}

static void attn_build(const struct attn_case *c, int fp8, struct attn_data *d)
{
	int n_pages = 5, s, i, row = 0, b = 0;
	int tr = c->tc ? kn_attn_tc_tile_rows(c->nh, c->nkv, c->hd) : kn_attn_tile_rows(c->nh, c->nkv);
	int32_t *perm;
	size_t kd = (size_t)c->nkv * c->hd;

	memset(d, 0, sizeof(*d));
	for (s = 0; s < c->n_seqs; s++) {
		n_pages += (c->start[s] + c->ntok[s] + c->ps - 1) / c->ps;
		d->T += c->ntok[s];
		d->n_tiles += c->split_len ? c->ntok[s] : (c->ntok[s] + tr - 1) / tr;
	}
	d->n_slots = n_pages * c->ps;
	perm = malloc(n_pages * 4);
	for (i = 0; i < n_pages; i++)
		perm[i] = i;
	for (i = n_pages - 1; i > 0; i--) {
		int j = irand(i + 1), t = perm[i];

		perm[i] = perm[j], perm[j] = t;
	}
	d->bt = perm;
	d->pos = malloc(d->T * 4), d->bt_off = malloc(d->T * 4);
	d->tile_row0 = malloc(d->n_tiles * 4), d->tile_n = malloc(d->n_tiles * 4);
	d->n_tiles = 0;
	for (s = 0; s < c->n_seqs; s++) {
		int step = c->split_len ? 1 : tr;

		for (i = 0; i < c->ntok[s]; i++) {
			d->pos[row + i] = c->start[s] + i;
			d->bt_off[row + i] = b;
		}
		for (i = 0; i < c->ntok[s]; i += step) {
			d->tile_row0[d->n_tiles] = row + i;
			d->tile_n[d->n_tiles++] = c->ntok[s] - i < step ? c->ntok[s] - i : step;
		}
		row += c->ntok[s];
		b += (c->start[s] + c->ntok[s] + c->ps - 1) / c->ps;
	}
	d->n_bt = b;
	d->k = malloc(d->n_slots * kd * 4), d->v = malloc(d->n_slots * kd * 4);
	d->q = malloc((size_t)d->T * c->nh * c->hd * 4);
	d->kb = rand_bf16(d->n_slots * kd, 1, d->k);
	d->vb = rand_bf16(d->n_slots * kd, 1, d->v);
	d->qb = rand_bf16((size_t)d->T * c->nh * c->hd, 3, d->q);
	if (fp8)
		attn_build_e4m3(c, d);
}

static void attn_free(struct attn_data *d)
{
	free(d->bt), free(d->pos), free(d->bt_off), free(d->tile_row0), free(d->tile_n);
	free(d->k), free(d->v), free(d->q), free(d->kb), free(d->vb), free(d->qb);
	free(d->k8), free(d->v8), free(d->ks), free(d->vs);
}

/* Dense softmax attention of every row and head, in double. */
static void attn_ref(const struct attn_case *c, const struct attn_data *d, double *out)
{
	int hd = c->hd, G = c->nh / c->nkv, max_pos = 0;

	for (int r = 0; r < d->T; r++)
		max_pos = d->pos[r] > max_pos ? d->pos[r] : max_pos;
	double *sc = malloc(sizeof(double) * (max_pos + 1));

	for (int r = 0; r < d->T; r++)
		for (int h = 0; h < c->nh; h++) {
			const float *q = d->q + ((size_t)r * c->nh + h) * hd;
			double *o = out + ((size_t)r * c->nh + h) * hd, mx = -1e300, sum = 0;

			for (int t = 0; t <= d->pos[r]; t++) {
				size_t slot = (size_t)d->bt[d->bt_off[r] + t / c->ps] * c->ps + t % c->ps;
				const float *k = d->k + (slot * c->nkv + h / G) * hd;
				double s = 0;

				for (int i = 0; i < hd; i++)
					s += (double)q[i] * k[i];
				sc[t] = s / sqrt((double)hd);
				mx = fmax(mx, sc[t]);
			}
			memset(o, 0, hd * sizeof(double));
			for (int t = 0; t <= d->pos[r]; t++) {
				size_t slot = (size_t)d->bt[d->bt_off[r] + t / c->ps] * c->ps + t % c->ps;
				const float *v = d->v + (slot * c->nkv + h / G) * hd;
				double p = exp(sc[t] - mx);

				sum += p;
				for (int i = 0; i < hd; i++)
					o[i] += p * v[i];
			}
			for (int i = 0; i < hd; i++)
				o[i] /= sum;
		}
	free(sc);
}

static const char *wg_name(int wg)
{
	return wg == WG_WS ? "wgmma ws" : wg ? "wgmma" : "mma.sync";
}

/* The wgmma kernel of case c's form. */
static int wg_split(const struct attn_case *c, const struct kn_attn_args *a, int n_splits,
		    int split_len, float *partial)
{
	if (c->wg == WG_WS)
		return kn_attn_prefill_wg2_split(a, n_splits, split_len, partial, NULL);
	return kn_attn_prefill_wg_split(a, n_splits, split_len, partial, NULL);
}

static int attn_run(const struct attn_case *c, const struct attn_data *d, float *got)
{
	size_t kd = (size_t)c->nkv * c->hd, qn = (size_t)d->T * c->nh * c->hd;
	int max_ctx = 0, n_splits = 1, rc;
	float *partial = NULL;

	for (int r = 0; r < d->T; r++)
		max_ctx = d->pos[r] + 1 > max_ctx ? d->pos[r] + 1 : max_ctx;
	struct kn_attn_args a = {
		dev(qn * 2), up(d->qb, qn * 2),
		d->fp8 ? up(d->k8, d->n_slots * kd) : up(d->kb, d->n_slots * kd * 2),
		d->fp8 ? up(d->v8, d->n_slots * kd) : up(d->vb, d->n_slots * kd * 2),
		up(d->bt, d->n_bt * 4), up(d->pos, d->T * 4),
		up(d->bt_off, d->T * 4), up(d->tile_row0, d->n_tiles * 4),
		up(d->tile_n, d->n_tiles * 4), d->n_tiles, c->nh, c->nkv, c->hd, c->ps,
		d->fp8 ? KN_KV_FP8_E4M3 : KN_KV_BF16,
		d->fp8 ? up(d->ks, c->nkv * 4) : NULL, d->fp8 ? up(d->vs, c->nkv * 4) : NULL, NULL,
	};
	poison(a.out, qn * 2);
	if (c->pf_splits) {
		size_t np = kn_attn_prefill_tc_partial_floats(d->n_tiles, c->nkv, c->hd,
							      c->pf_splits);

		/* NaN where a split leaves a row unwritten: the reduce reads them all */
		partial = dev(np * 4);
		poison(partial, np * 4);
		if (c->wg)
			rc = wg_split(c, &a, c->pf_splits, c->pf_split_len, partial);
		else
			rc = kn_attn_prefill_tc_split(&a, c->pf_splits, c->pf_split_len, partial,
						      NULL);
	} else if (c->split_len) {
		int sl = c->grid ? 0 : c->split_len;
		size_t np;

		n_splits = c->grid ? c->grid : (max_ctx + c->split_len - 1) / c->split_len;
		np = kn_attn_partial_floats(d->n_tiles, c->nh, c->nkv, c->hd, n_splits);
		/* NaN: the splits past a row's keys write nothing, and the
		 * reduce must not read them */
		partial = dev(np * 4);
		poison(partial, np * 4);
		if (c->grid)
			a.split_len_at = up(&c->split_len, 4);
		rc = c->tc ? kn_attn_decode_tc(&a, n_splits, sl, partial, NULL)
			   : kn_attn_decode(&a, n_splits, sl, partial, NULL);
	} else if (c->wg) {
		rc = wg_split(c, &a, 1, 0, NULL);
	} else {
		rc = c->tc ? kn_attn_prefill_tc(&a, NULL) : kn_attn_prefill(&a, NULL);
	}
	rc = ran(rc, "attention kernel");
	if (rc) {
		uint16_t *o = malloc(qn * 2);

		down(o, a.out, qn * 2);
		for (size_t i = 0; i < qn; i++)
			got[i] = eng_bf16_to_f32(o[i]);
		free(o);
	}
	kn_free(a.out), kn_free((void *)a.q), kn_free((void *)a.k_cache);
	kn_free((void *)a.v_cache), kn_free((void *)a.block_tables), kn_free((void *)a.pos);
	kn_free((void *)a.bt_off), kn_free((void *)a.tile_row0), kn_free((void *)a.tile_n);
	kn_free((void *)a.k_scale), kn_free((void *)a.v_scale);
	kn_free((void *)a.split_len_at), kn_free(partial);
	return rc;
}

/* Case other's output on data d, widened into ref: 0 where it did not
 * run (reported by attn_run). */
static int attn_run_ref(const struct attn_case *other, const struct attn_data *d, double *ref)
{
	size_t qn = (size_t)d->T * other->nh * other->hd;
	float *f = malloc(qn * sizeof(float));
	int rc = attn_run(other, d, f);

	for (size_t i = 0; rc && i < qn; i++)
		ref[i] = f[i];
	free(f);
	return rc;
}

/* A split prefill's output got against the one-pass kernel's on the
 * same data d.  Both round the probabilities to bf16 for P V, each split
 * against its own running max, and the outputs to bf16, so they differ
 * by about a bf16 step (2^-8) spread over the rows: 2.2e-3 measured on
 * the H100.  A wrong split or merge is off by far more. */
static void same_as_unsplit(const struct attn_case *c, const struct attn_data *d,
			    const float *got)
{
	struct attn_case one = *c;
	size_t qn = (size_t)d->T * c->nh * c->hd;
	double *ref = malloc(qn * sizeof(double));

	one.pf_splits = 0;
	if (attn_run_ref(&one, d, ref))
		tap_ok(rel_err(got, ref, qn) < 5e-3,
		       "attention split in %d of %d keys%s == one pass: heads %d/%d dim %d "
		       "page %d: %.2e", c->pf_splits, c->pf_split_len, d->fp8 ? ", e4m3 pages" : "",
		       c->nh, c->nkv, c->hd, c->ps, rel_err(got, ref, qn));
	free(ref);
}

/* Where a failed attention check is off: the worst (row, head) by
 * relative error, its first element off by more than 5%, and how many
 * (row, head) pairs are off by over 1e-2, so that a device run names the
 * rows (tile edges, masked keys, a warpgroup's half) a bug hits. */
static void attn_where(const struct attn_case *c, const struct attn_data *d, const float *got,
		       const double *ref)
{
	int hd = c->hd, worst_r = 0, worst_h = 0, n_bad = 0;
	double worst = -1;

	for (int r = 0; r < d->T; r++)
		for (int h = 0; h < c->nh; h++) {
			size_t o = ((size_t)r * c->nh + h) * hd;
			double e = rel_err(got + o, ref + o, hd);

			n_bad += e > 1e-2;
			if (e > worst || e != e) {
				worst = e;
				worst_r = r, worst_h = h;
			}
		}
	size_t o = ((size_t)worst_r * c->nh + worst_h) * hd;
	int i = 0;

	while (i < hd - 1 && fabs(got[o + i] - ref[o + i]) <= 0.05 * fabs(ref[o + i]) + 1e-3)
		i++;
	tap_diag("%d of %d (row, head) pairs off; worst row %d (position %d) head %d: %.2e, "
		 "dim %d: %g for %g", n_bad, d->T * c->nh, worst_r, d->pos[worst_r], worst_h, worst,
		 i, got[o + i], ref[o + i]);
}

/* A wgmma kernel's output got against another kernel's on the same data
 * d (both split alike, or both not): the mma.sync kernel's (wg 0) or the
 * first wgmma kernel's (WG_FIRST), within tol.  Against the mma.sync
 * kernel: they round the same probabilities to bf16 but against running
 * maxes of 128 and of 64 keys, and add in other orders: about a bf16 step
 * apart, as a split and the one pass are (same_as_unsplit).  The two
 * wgmma forms run the same products and softmax on the same tiles in the
 * same order: alike but for the compiler's choices (fused multiply-adds),
 * a bf16 step on a few elements at most; a wrong tile, slot or phase is
 * off by far more. */
static void same_as_other(const struct attn_case *c, const struct attn_data *d,
			  const float *got, int wg, double tol)
{
	struct attn_case other = *c;
	size_t qn = (size_t)d->T * c->nh * c->hd;
	double *ref = malloc(qn * sizeof(double));

	other.wg = wg;
	if (attn_run_ref(&other, d, ref)) {
		double e = rel_err(got, ref, qn);

		tap_ok(e < tol,
		       "attention prefill, %s == %s%s: heads %d/%d dim %d page %d, %d rows: "
		       "%.2e", wg_name(c->wg), wg_name(wg), c->pf_splits ? ", split" : "", c->nh,
		       c->nkv, c->hd, c->ps, d->T, e);
		if (e >= tol)
			attn_where(c, d, got, ref);
	}
	free(ref);
}

static void test_attn(const struct attn_case *c, int fp8, const char *what)
{
	struct attn_data d;
	int max_pos = 0;

	attn_build(c, fp8, &d);
	for (int r = 0; r < d.T; r++)
		max_pos = d.pos[r] > max_pos ? d.pos[r] : max_pos;
	size_t qn = (size_t)d.T * c->nh * c->hd;
	double *ref = malloc(qn * sizeof(double));
	float *got = malloc(qn * sizeof(float));

	attn_ref(c, &d, ref);
	if (attn_run(c, &d, got)) {
		int ok = rel_err(got, ref, qn) < 1e-2;

		tap_ok(ok, "attention %s%s: heads %d/%d dim %d page %d, %d rows, ctx up to %d: %.2e",
		       what, fp8 ? ", e4m3 pages" : "", c->nh, c->nkv, c->hd, c->ps, d.T, max_pos + 1,
		       rel_err(got, ref, qn));
		if (!ok)
			attn_where(c, &d, got, ref);
		if (c->pf_splits)
			same_as_unsplit(c, &d, got);
		if (c->wg)
			same_as_other(c, &d, got, 0, 5e-3);
		if (c->wg == WG_WS)
			same_as_other(c, &d, got, WG_FIRST, 1e-3);
	}
	free(ref);
	free(got);
	attn_free(&d);
}

/* Whether the wgmma prefill kernel takes case c on this device (an
 * sm_90a device, bf16 pages, head_dim 64 or 128). */
static int wg_takes(const struct attn_case *c, int fp8)
{
	return !c->split_len && kn_attn_prefill_wg_ok(c->nh, c->nkv, c->hd,
						      fp8 ? KN_KV_FP8_E4M3 : KN_KV_BF16);
}

/* Case c on both wgmma kernels, the first and the warp-specialized one
 * (each against the CPU, the mma.sync kernel and, the second, the first):
 * what names the case, split names its splits (pf_splits) or not. */
static void test_attn_wg(const struct attn_case *c, int fp8)
{
	char what[80];
	struct attn_case w = *c;

	for (w.wg = WG_FIRST; w.wg <= WG_WS; w.wg++) {
		if (w.pf_splits)
			snprintf(what, sizeof(what), "prefill, %s, %d splits of %d",
				 wg_name(w.wg), w.pf_splits, w.pf_split_len);
		else
			snprintf(what, sizeof(what), "prefill, %s", wg_name(w.wg));
		test_attn(&w, fp8, what);
	}
}

static void test_attention(void)
{
	static const struct attn_case cases[] = {
		/* prefill / extend: fresh prompts, cached prefixes, mid-page starts */
		{ 4, 2, 16, 16, 3, { 0, 20, 5 }, { 37, 13, 2 }, 0, 0, 0, 0, 0, 0 },
		{ 28, 4, 128, 16, 3, { 3000, 0, 15 }, { 37, 50, 2 }, 0, 0, 0, 0, 0, 0 },
		{ 8, 8, 64, 7, 2, { 100, 0 }, { 65, 33 }, 0, 0, 0, 0, 0, 0 },
		{ 14, 2, 128, 5, 2, { 1, 0 }, { 1, 9 }, 0, 0, 0, 0, 0, 0 },
		{ 32, 1, 8, 3, 1, { 11 }, { 40 }, 0, 0, 0, 0, 0, 0 },
		{ 4, 4, 32, 16, 2, { 200, 0 }, { 130, 64 }, 0, 0, 0, 0, 0, 0 },
		{ 64, 1, 64, 16, 1, { 70 }, { 3 }, 0, 0, 0, 0, 0, 0 },
		/* decode: one token per sequence, split-K */
		{ 28, 4, 128, 16, 6, { 0, 16, 32, 999, 4096, 63 }, { 1, 1, 1, 1, 1, 1 }, 64, 0, 0, 0, 0, 0 },
		{ 28, 4, 128, 16, 4, { 5, 300, 2047, 1 }, { 1, 1, 1, 1 }, 128, 0, 0, 0, 0, 0 },
		{ 4, 2, 16, 7, 3, { 70, 3, 200 }, { 1, 1, 1 }, 4096, 0, 0, 0, 0, 0 },
		{ 8, 1, 256, 16, 2, { 500, 77 }, { 1, 1 }, 96, 0, 0, 0, 0, 0 },
		{ 16, 1, 64, 16, 3, { 9000, 40, 130 }, { 1, 1, 1 }, 1024, 0, 0, 0, 0, 0 },
		{ 8, 8, 32, 7, 2, { 3, 64 }, { 1, 1 }, 32, 0, 0, 0, 0, 0 },
		/* several tiles per split (prefetch of the next), odd pages */
		{ 28, 4, 128, 7, 3, { 5000, 1023, 64 }, { 1, 1, 1 }, 448, 0, 0, 0, 0, 0 },
		{ 16, 2, 64, 16, 2, { 2049, 127 }, { 1, 1 }, 192, 0, 0, 0, 0, 0 },
		{ 4, 1, 16, 5, 2, { 700, 63 }, { 1, 1 }, 320, 0, 0, 0, 0, 0 },
	};

	for (int fp8 = 0; fp8 < 2; fp8++)
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct attn_case c = cases[i];

			if (c.split_len || kn_attn_tile_rows(c.nh, c.nkv))
				test_attn(&c, fp8, c.split_len ? "decode, cuda cores"
							       : "prefill, cuda cores");
			c.tc = 1;
			if (!c.split_len && kn_attn_tc_tile_rows(c.nh, c.nkv, c.hd))
				test_attn(&c, fp8, "prefill, tensor cores");
			if (wg_takes(&c, fp8))
				test_attn_wg(&c, fp8);
			if (c.split_len && kn_attn_decode_tc_ok(c.nh, c.nkv, c.hd))
				test_attn(&c, fp8, "decode, tensor cores");
		}
}

/* The tensor-core prefill split over the keys: extend chunks of 1, 17
 * and 200 rows at positions 0, 3000 and 9000, in 2 to 7 splits.  Splits
 * of 3072 keys over contexts of 200 and 3017 leave whole tiles without
 * keys; a split_len past every context leaves every tile's later splits
 * empty; splits of 64 keys over a prompt from position 0 leave the first
 * rows of a tile without keys in a split its later rows have, and give
 * the last split nearly all keys of a long context. */
static void test_attention_split(void)
{
	static const struct attn_case cases[] = {
		{ 28, 4, 128, 16, 3, { 0, 3000, 9000 }, { 200, 17, 1 }, 0, 1, 3, 3072, 0, 0 },
		{ 28, 4, 128, 7, 2, { 3000, 9000 }, { 200, 17 }, 0, 1, 7, 1344, 0, 0 },
		{ 28, 4, 128, 16, 2, { 3000, 0 }, { 17, 1 }, 0, 1, 2, 1536, 0, 0 },
		{ 28, 4, 128, 7, 2, { 3000, 0 }, { 1, 200 }, 0, 1, 3, 4096, 0, 0 },
		{ 8, 2, 64, 7, 3, { 9000, 0, 3000 }, { 17, 200, 1 }, 0, 1, 7, 1344, 0, 0 },
		{ 8, 2, 64, 16, 1, { 9000 }, { 200 }, 0, 1, 2, 4608, 0, 0 },
		{ 4, 4, 32, 16, 2, { 0, 3000 }, { 200, 17 }, 0, 1, 3, 64, 0, 0 },
		{ 28, 4, 128, 16, 3, { 0, 9000, 0 }, { 200, 1, 17 }, 0, 1, 4, 64, 0, 0 },
		{ 16, 2, 16, 7, 2, { 9000, 3000 }, { 17, 200 }, 0, 1, 3, 8192, 0, 0 },
	};
	char what[64];

	for (int fp8 = 0; fp8 < 2; fp8++)
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct attn_case c = cases[i];

			snprintf(what, sizeof(what), "prefill, tensor cores, %d splits of %d",
				 c.pf_splits, c.pf_split_len);
			test_attn(&c, fp8, what);
			if (wg_takes(&c, fp8))
				test_attn_wg(&c, fp8);
		}
}

/* Decode with the split length read on the device (a captured graph's
 * steps): a grid with room to spare (rows of 1 to 5000 keys, most of
 * their splits past their keys), a grid too small for the length (the
 * last split takes the rest of a 5000-key row), and length 0 there (per
 * row over the grid). */
static void test_attention_dev_split(void)
{
	static const struct attn_case cases[] = {
		{ 28, 4, 128, 16, 5, { 0, 16, 4999, 299, 63 }, { 1, 1, 1, 1, 1 }, 256, 0, 0, 0, 0, 40 },
		{ 28, 4, 128, 7, 3, { 4999, 2, 1000 }, { 1, 1, 1 }, 64, 0, 0, 0, 0, 3 },
		{ 16, 2, 64, 16, 3, { 4999, 40, 130 }, { 1, 1, 1 }, 0, 0, 0, 0, 0, 7 },
		{ 4, 1, 16, 5, 2, { 700, 63 }, { 1, 1 }, 128, 0, 0, 0, 0, 9 },
	};
	char what[80];

	for (int fp8 = 0; fp8 < 2; fp8++)
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct attn_case c = cases[i];

			/* split_len 0 marks decode in attn_build: a tile a row */
			snprintf(what, sizeof(what), "decode, cuda cores, %d splits of %d read on the device",
				 c.grid, c.split_len);
			test_attn(&c, fp8, what);
			c.tc = 1;
			snprintf(what, sizeof(what), "decode, tensor cores, %d splits of %d read on the device",
				 c.grid, c.split_len);
			if (kn_attn_decode_tc_ok(c.nh, c.nkv, c.hd))
				test_attn(&c, fp8, what);
		}}

/* The wgmma prefill kernels on the shapes their layout makes risky: tiles
 * of 128 keys against splits of multiples of 64 (a split's last tile half
 * past its end), tiles of 1 to 128 tokens (group sizes 1 to 128, the
 * ragged last tile of a prompt, rows past nq in either warpgroup), the
 * diagonal inside one key tile (group 1: 128 tokens a tile), fresh
 * prompts and extends from mid-page and mid-tile positions, pages of 1,
 * 3, 5, 7 and 16 slots; for the warp-specialized one's ring of three
 * slots, blocks of 1 to 4 key tiles and of 12 and 32 (its barriers' phases
 * turned over several times); each against the CPU and the mma.sync
 * kernel, the warp-specialized one against the first too. */
static void test_attention_wg(void)
{
	static const struct attn_case cases[] = {
		{ 28, 4, 128, 16, 2, { 0, 300 }, { 300, 77 }, 0, 1, 0, 0, 1, 0 },
		{ 28, 4, 128, 7, 3, { 0, 129, 4000 }, { 19, 250, 40 }, 0, 1, 0, 0, 1, 0 },
		{ 14, 2, 128, 5, 1, { 0 }, { 400 }, 0, 1, 0, 0, 1, 0 },
		{ 32, 8, 128, 16, 2, { 1000, 0 }, { 33, 257 }, 0, 1, 0, 0, 1, 0 },
		{ 16, 16, 64, 16, 2, { 0, 127 }, { 260, 130 }, 0, 1, 0, 0, 1, 0 },
		{ 16, 16, 128, 7, 1, { 1 }, { 383 }, 0, 1, 0, 0, 1, 0 },
		{ 8, 1, 64, 3, 1, { 5 }, { 70 }, 0, 1, 0, 0, 1, 0 },
		{ 64, 1, 128, 16, 1, { 0 }, { 5 }, 0, 1, 0, 0, 1, 0 },
		{ 12, 2, 128, 1, 1, { 200 }, { 12 }, 0, 1, 0, 0, 1, 0 },
		{ 128, 1, 64, 16, 2, { 0, 90 }, { 3, 1 }, 0, 1, 0, 0, 1, 0 },
		{ 8, 2, 128, 3, 1, { 1500 }, { 10 }, 0, 1, 0, 0, 1, 0 },
		/* splits: of 192 and 320 keys (tiles half past a split's end), of 64 */
		{ 28, 4, 128, 16, 2, { 0, 500 }, { 300, 30 }, 0, 1, 4, 192, 1, 0 },
		{ 16, 16, 64, 7, 2, { 2000, 0 }, { 130, 200 }, 0, 1, 5, 320, 1, 0 },
		{ 28, 4, 128, 5, 1, { 3000 }, { 40 }, 0, 1, 9, 64, 1, 0 },
	};
	struct kn_attn_args a = { 0 };

	if (!kn_attn_prefill_wg_ok(28, 4, 128, KN_KV_BF16)) {
		tap_diag("no sm_90a image of the wgmma prefill kernel for this device: its cases "
			 "are skipped");
		return;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		test_attn_wg(&cases[i], 0);
	/* refused before anything is read: the pointers are never used */
	a.out = (uint16_t *)16, a.q = (const uint16_t *)16;
	a.k_cache = a.v_cache = (const void *)16;
	a.block_tables = a.pos = a.bt_off = a.tile_row0 = a.tile_n = (const int32_t *)16;
	a.n_tiles = 1, a.n_heads = 28, a.n_kv = 4, a.head_dim = 128, a.page_size = 16;
	a.kv_dtype = KN_KV_FP8_E4M3;
	a.k_scale = a.v_scale = (const float *)16;
	int fp8 = kn_attn_prefill_wg_split(&a, 1, 0, NULL, NULL);
	int fp8_ws = kn_attn_prefill_wg2_split(&a, 1, 0, NULL, NULL);

	a.kv_dtype = KN_KV_BF16, a.head_dim = 96;
	int hd96 = kn_attn_prefill_wg_split(&a, 1, 0, NULL, NULL);
	int hd96_ws = kn_attn_prefill_wg2_split(&a, 1, 0, NULL, NULL);

	tap_ok(fp8 == KN_E_INVALID && hd96 == KN_E_INVALID && fp8_ws == KN_E_INVALID &&
	       hd96_ws == KN_E_INVALID && !kn_attn_prefill_wg_ok(28, 4, 128, KN_KV_FP8_E4M3) &&
	       !kn_attn_prefill_wg_ok(28, 4, 96, KN_KV_BF16),
	       "prefill, wgmma and wgmma ws: refuse FP8 pages and head_dim 96 (the mma.sync "
	       "kernel's)");
}

/* ---------------------------------------------------------------- LM head ops */

static void test_argmax_logprob(int n, int vocab)
{
	size_t N = (size_t)n * vocab;
	float *lg = rand_f32(N, 0, 8), *lp = malloc(n * 4);
	int32_t *tg = malloc(n * 4), *am = malloc(n * 4), want[64];
	double ref[64];
	int ok = 1;

	for (int r = 0; r < n; r++) {
		float *row = lg + (size_t)r * vocab;

		if (r % 2) {   /* a tie at the top: the lower index wins */
			int a = irand(vocab), b = irand(vocab);

			row[a] = row[b] = 9.0f;
		}
		want[r] = eng_argmax(row, vocab);
		tg[r] = r == 1 ? -1 : irand(vocab);
		double mx = -1e300, sum = 0;

		for (int i = 0; i < vocab; i++)
			mx = fmax(mx, row[i]);
		for (int i = 0; i < vocab; i++)
			sum += exp(row[i] - mx);
		ref[r] = tg[r] < 0 ? 0 : row[tg[r]] - mx - log(sum);
	}
	float *dlg = up(lg, N * 4), *dlp = dev(n * 4);
	int32_t *dtg = up(tg, n * 4), *dam = dev(n * 4);

	poison(dam, n * 4);
	poison(dlp, n * 4);
	kn_memset(dlp + 1, 0, 4, NULL);   /* the row without a target keeps this */
	if (ran(kn_argmax(dam, dlg, n, vocab, NULL), "kn_argmax")) {
		down(am, dam, n * 4);
		for (int r = 0; r < n; r++)
			ok &= am[r] == want[r];
		tap_ok(ok, "argmax %d rows of %d (ties on odd rows): exact", n, vocab);
	}
	if (ran(kn_logprob(dlp, dlg, dtg, n, vocab, NULL), "kn_logprob")) {
		float *got = lp;

		down(got, dlp, n * 4);
		tap_ok(rel_err(got, ref, n) < 1e-5 && got[1] == 0.0f,
		       "logprob %d rows of %d: %.2e, untargeted row untouched", n, vocab,
		       rel_err(got, ref, n));
	}
	kn_free(dlg), kn_free(dlp), kn_free(dtg), kn_free(dam);
	free(lg), free(lp), free(tg), free(am);
}

static void test_fill(void)
{
	size_t n = 1000003;
	uint16_t *d1 = dev(n * 2), *d2 = dev(n * 2), *h1 = malloc(n * 2), *h2 = malloc(n * 2);
	double s = 0, s2 = 0;

	if (ran(kn_fill_random_bf16(d1, n, 42, 0.5f, 0.02f, NULL), "kn_fill_random_bf16") &&
	    ran(kn_fill_random_bf16(d2, n, 42, 0.5f, 0.02f, NULL), "kn_fill_random_bf16")) {
		down(h1, d1, n * 2);
		down(h2, d2, n * 2);
		for (size_t i = 0; i < n; i++) {
			double x = eng_bf16_to_f32(h1[i]);

			s += x;
			s2 += x * x;
		}
		s /= n;
		s2 = sqrt(s2 / n - s * s);
		tap_ok(!memcmp(h1, h2, n * 2) && fabs(s - 0.5) < 1e-3 && fabs(s2 - 0.02) < 1e-3,
		       "fill_random: same seed same values, mean %.4f std %.4f", s, s2);
	}
	kn_free(d1), kn_free(d2);
	free(h1), free(h2);
}

int main(void)
{
	struct kn_gemm *g;
	int n = 0;

	if (kn_device_count(&n) || n == 0)
		return tap_skip_all("no CUDA device");
	if (kn_gemm_create(&g, NULL)) {
		tap_ok(0, "cuBLAS handle: %s", kn_last_error());
		return tap_done();
	}
	test_embed(1000, 67, 13);
	test_embed(152064, 64, 5);
	test_add_rmsnorm(67, 5);
	test_add_rmsnorm(3584, 9);
	test_add_rmsnorm(20, 3);      /* rows in registers, one warp */
	test_add_rmsnorm(8192, 4);
	test_add_rmsnorm(16388, 3);   /* too long for registers: two passes */
	test_silu_mul(7, 333);
	test_silu_mul(3, 18944);
	test_silu_mul(5, 1000);
	test_silu_mul(2, 8);
	test_add_rmsnorm_e4m3(3584, 9);
	test_add_rmsnorm_e4m3(64, 3);
	test_add_rmsnorm_e4m3(16388, 2);   /* two passes */
	test_add_rmsnorm_e4m3(40, 2);      /* not a multiple of 16: still quantizes */
	test_silu_mul_e4m3(3, 18944, 1);
	test_silu_mul_e4m3(33, 18944, 0);
	test_silu_mul_e4m3(2, 8, 1);
	test_silu_mul_e4m3(4, 40000, 0);   /* longer than a block's threads * 8 */
	test_gemm(g, 1, 333, 520);
	test_gemm(g, 7, 1000, 67);
	test_gemm(g, 64, 4608, 3584);
	test_gemm(g, 1, 1001, 3584);   /* timed against cuBLAS: either path */
	test_gemm(g, 1, 1001, 3584);   /* the remembered pick */
	test_gemm(g, 3, 517, 18944);
	test_gemm_glu(g, 1, 1000, 520, 0);
	test_gemm_glu(g, 2, 517, 3584, 1);
	test_gemm_glu(g, 3, 37, 8, 1);
	test_gemm_glu(g, 4, 2051, 1032, 0);
	test_gemm_glu(g, 1, 18944, 3584, 0);   /* Qwen2.5-7B's gate/up */
	test_gemm_glu(g, 16, 1000, 520, 1);    /* cuBLAS and kn_silu_mul */
	/* without the splits, the shape picked again with them */
	kn_skinny_splits(0);
	test_gemm(g, 1, 1001, 3584);
	kn_skinny_splits(1);
	test_gemm(g, 1, 1001, 3584);
	test_gemm(g, 1, 3584, 18944);
	test_gemm(g, 2, 3584, 18944);
	/* 1, 2 and 4 warps a row at 4 and 8 loads a lane */
	for (int p = 0; p < N_SK_PATHS; p++) {
		test_gemm_skinny(1, 333, 520, sk_paths[p]);
		test_gemm_skinny(2, 1001, 8, sk_paths[p]);
		test_gemm_skinny(3, 37, 3584, sk_paths[p]);
		test_gemm_skinny(4, 517, 18944, sk_paths[p]);
		test_gemm_skinny(1, 4099, 1032, sk_paths[p]);
		test_gemm_skinny(1, 16411, 520, sk_paths[p]);
		test_gemm_skinny(1, 3583, 3584, sk_paths[p]);
	}
	/* the FP8 kernel at 4 loads in flight a lane, then 8 (kn_skinny_wide)
	 * below 16384 rows */
	for (int wide = 0; wide < 2; wide++) {
		kn_skinny_wide(wide);
		test_gemm_fp8(g, 1, 333, 512, KN_FP8_SKINNY);
		test_gemm_fp8(g, 3, 4608, 3584, KN_FP8_SKINNY);
		test_gemm_fp8(g, 8, 1000, 1024, KN_FP8_SKINNY);
		test_gemm_fp8(g, 13, 517, 18944, KN_FP8_SKINNY);
		test_gemm_fp8(g, 32, 2051, 640, KN_FP8_SKINNY);
		/* the Qwen2.5-7B layers */
		test_gemm_fp8(g, 1, 3584, 3584, KN_FP8_SKINNY);
		test_gemm_fp8(g, 16, 3584, 3584, KN_FP8_SKINNY);
		test_gemm_fp8(g, 1, 37888, 3584, KN_FP8_SKINNY);
		test_gemm_fp8(g, 1, 3584, 18944, KN_FP8_SKINNY);
	}
	kn_skinny_wide(0);
	test_gemm_fp8_refuses(g);
	test_gemm_fp8(g, 2, 1000, 3584, KN_FP8_CUBLASLT);
	test_gemm_fp8(g, 64, 4608, 3584, KN_FP8_CUBLASLT);
	test_gemm_fp8(g, 300, 1000, 528, KN_FP8_AUTO);   /* k not a multiple of 64 */
	test_gemm_fp8(g, 5, 1000, 528, KN_FP8_AUTO);
	for (int fp8 = 0; fp8 < 2; fp8++) {   /* bf16 pages, then E4M3 */
		test_rope(4, 2, 16, 9, 0, fp8);
		test_rope(28, 4, 128, 33, 0, fp8);
		test_rope(28, 4, 128, 300, 0, fp8);   /* prefill chunks: one block a row */
		test_rope(4, 2, 16, 9, 1, fp8);       /* qwen3: q/k norm, fewer pairs than lanes */
		test_rope(32, 8, 128, 3, 1, fp8);     /* Qwen3-8B's heads, decode */
		test_rope(32, 8, 128, 300, 1, fp8);   /* prefill */
		test_rope(5, 1, 256, 7, 1, fp8);      /* 4 pairs a lane, the most */
		test_rope(3, 3, 40, 5, 1, fp8);       /* V 120 wide: a partial V piece */
	}
	test_e4m3_convert();
	test_fill_e4m3();
	test_attention();
	test_attention_split();
	test_attention_wg();
	test_attention_dev_split();
	test_argmax_logprob(5, 1001);
	test_argmax_logprob(4, 152064);
	test_fill();
	tap_ok(!failed, "every allocation and copy succeeded");
	kn_gemm_free(g);
	return tap_done();
}
