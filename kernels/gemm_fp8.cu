/*
 * gemm_fp8.cu: products with FP8 E4M3 weights (W8A8, --quantization
 * fp8): the row quantization of weights and activations, and
 * y = x . w^T where w holds E4M3 bytes with one scale per row.
 *
 * A row (n values) is quantized as engine/kv_fp8.c's eng_fp8_quantize_row
 * does, bit for bit: scale = max |x| / 448 (at least 1e-12), bytes
 * e4m3(x * (1 / scale)), 1 / scale in fp32.  The product quantizes each
 * row of x into the caller's scratch (one kernel), multiplies the E4M3
 * values exactly and sums them in fp32, and scales the sums by both rows'
 * scales:
 *
 * - up to KN_FP8_SKINNY_M rows of x (decode): a weight-streaming kernel
 *   of our own on the tensor cores (mma.sync m16n8k32 e4m3, fp32
 *   accumulation).  A block takes 16 weight rows and splits k over its 8
 *   warps; a lane loads 16 contiguous bytes of a weight row and of each
 *   x row per 64-column step and hands them to two mma's as fragments.
 *   The mma's k order is not memory order, but it is the same permutation
 *   for both operands, so the dot products are the same.  The warps' sums
 *   meet in shared memory.  On sm_90 the e4m3 mma is not native: the
 *   compiler emulates it with conversions and f16 mma's.
 * - more rows (prefill, large decode batches): cuBLASLt's FP8 GEMM into
 *   y, then one pass scaling y in place (bf16 y is so rounded twice, the
 *   sum and then the scaled sum: within one bf16 step of rounding once).
 *   cuBLASLt's outer-vector scale modes would fold the pass into its
 *   epilogue; the cuBLASLt of the CUDA 13 H100 machine has no algorithm
 *   for them with these operands.
 *
 * Weights are read once per product at either size: at batch 1 the bytes
 * are half those of bf16, which is what decode speed is made of.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kn_check.cuh"
#include "kernels/kn_fp8.cuh"
#include "kernels/kn_gemm.cuh"

#define Q_THREADS 256
#define F8_WARPS 8
/* 64-column steps in flight a warp: F8_UNROLL, or with kn_skinny_wide
 * F8_UNROLL_WIDE for products of up to F8_WIDE_N rows of w (at 4, maybe
 * too few to keep the HBM's latency covered: the o and qkv projections
 * streamed at 52% and 55% of the copy bandwidth on the H100, gate/up at
 * 93%; not yet measured against 4 on one GPU). */
#define F8_UNROLL 4
#define F8_UNROLL_WIDE 8
#define F8_WIDE_N 16384

static int kn_skinny_wide_on;

extern "C" void kn_skinny_wide(int wide)
{
	kn_skinny_wide_on = wide != 0;
}

/* ---------------------------------------------------------------- quantize */

/* Row blockIdx.x of x (rows, cols) bf16 into q (rows, cols) and scale. */
static __global__ void __launch_bounds__(Q_THREADS)
	quant_rows_kernel(uint8_t *q, float *scale, const uint16_t *x, int cols)
{
	__shared__ float red[32];
	const uint16_t *xr = x + (size_t)blockIdx.x * cols;
	uint8_t *qr = q + (size_t)blockIdx.x * cols;
	float amax = 0.0f, s, inv;

	kn_pdl_enter();
	for (int i = threadIdx.x; i < cols; i += blockDim.x)
		amax = fmaxf(amax, fabsf(kn_bf2f(xr[i])));
	amax = kn_block_max(amax, red);
	s = amax / 448.0f;
	s = s >= 1e-12f ? s : 1e-12f;
	inv = 1.0f / s;
	for (int i = threadIdx.x; i < cols; i += blockDim.x)
		qr[i] = kn_f2e4m3(kn_bf2f(xr[i]) * inv);
	if (threadIdx.x == 0)
		scale[blockIdx.x] = s;
}

extern "C" int kn_quant_rows_e4m3(uint8_t *q, float *scale, const uint16_t *x, int rows,
				  int cols, kn_stream s)
{
	KN_REQUIRE(q && scale && x && rows >= 1 && cols >= 1);
	KN_LAUNCH(quant_rows_kernel, (unsigned)rows, Q_THREADS, 0, s, q, scale, x, cols);
	KN_LAUNCHED();
	return 0;
}

/* ---------------------------------------------------------------- skinny */

/* c += a (16 x 32 E4M3, row) . b (32 x 8 E4M3, col), fp32 c (16 x 8). */
static __device__ __forceinline__ void mma_e4m3(float *c, uint32_t a0, uint32_t a1, uint32_t a2,
						uint32_t a3, uint32_t b0, uint32_t b1)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
	asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
		     "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
		     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
		     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
	__trap();
#endif
}

/* y (m, n) for m <= 8 NB: block j takes rows [16 j, 16 j + 16) of w; warp
 * v takes the 64-column steps v, v + 8, ... of k (kb = k / 64 steps). */
template <int NB, int U>
static __global__ void __launch_bounds__(F8_WARPS * 32)
	fp8_skinny_kernel(void *y, int y_f32, int ldy, const uint8_t *xq, const float *xs,
			  const uint8_t *w, const float *ws, int m, int n, int k)
{
	__shared__ float red[F8_WARPS][NB][4][32];
	int lane = threadIdx.x & 31, v = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
	int j0 = blockIdx.x * 16, kb = k / 64;
	int r0 = j0 + g, r1 = j0 + g + 8;
	const uint4 *w0 = (const uint4 *)(w + (size_t)(r0 < n ? r0 : 0) * k) + t;
	const uint4 *w1 = (const uint4 *)(w + (size_t)(r1 < n ? r1 : 0) * k) + t;
	float c[NB][4];
	int s = v;

	/* the weights depend on no earlier kernel */
#pragma unroll
	for (int u = 0; u < U; u++)
		if (s + F8_WARPS * u < kb) {
			asm volatile("prefetch.global.L2 [%0];\n" ::"l"(w0 + 4 * (s + F8_WARPS * u)));
			asm volatile("prefetch.global.L2 [%0];\n" ::"l"(w1 + 4 * (s + F8_WARPS * u)));
		}
	kn_pdl_enter();
#pragma unroll
	for (int b = 0; b < NB; b++)
#pragma unroll
		for (int e = 0; e < 4; e++)
			c[b][e] = 0.0f;
	for (; s < kb; s += F8_WARPS * U) {
		uint4 wa[U], wb[U], xv[U][NB];

#pragma unroll
		for (int u = 0; u < U; u++) {
			int st = s + F8_WARPS * u;

			wa[u] = wb[u] = make_uint4(0, 0, 0, 0);
			if (st < kb) {
				if (r0 < n)
					wa[u] = __ldcs(w0 + 4 * st);
				if (r1 < n)
					wb[u] = __ldcs(w1 + 4 * st);
			}
#pragma unroll
			for (int b = 0; b < NB; b++) {
				int tok = 8 * b + g;

				xv[u][b] = make_uint4(0, 0, 0, 0);
				if (st < kb && tok < m)
					xv[u][b] = __ldg((const uint4 *)(xq + (size_t)tok * k) + 4 * st + t);
			}
		}
#pragma unroll
		for (int u = 0; u < U; u++)
#pragma unroll
			for (int b = 0; b < NB; b++) {
				mma_e4m3(c[b], wa[u].x, wb[u].x, wa[u].y, wb[u].y, xv[u][b].x,
					 xv[u][b].y);
				mma_e4m3(c[b], wa[u].z, wb[u].z, wa[u].w, wb[u].w, xv[u][b].z,
					 xv[u][b].w);
			}
	}
#pragma unroll
	for (int b = 0; b < NB; b++)
#pragma unroll
		for (int e = 0; e < 4; e++)
			red[v][b][e][lane] = c[b][e];
	__syncthreads();
	for (int i = threadIdx.x; i < NB * 4 * 32; i += blockDim.x) {
		int b = i / 128, e = (i / 32) & 3, l = i & 31;
		/* c0 c1: row g, tokens 2t, 2t + 1; c2 c3: row g + 8 */
		int row = j0 + (l >> 2) + (e >= 2 ? 8 : 0), tok = 8 * b + 2 * (l & 3) + (e & 1);
		float sum = 0.0f;

		if (row >= n || tok >= m)
			continue;
		for (int q = 0; q < F8_WARPS; q++)
			sum += red[q][b][e][l];
		sum = sum * xs[tok] * ws[row];
		if (y_f32)
			((float *)y)[(size_t)tok * ldy + row] = sum;
		else
			((uint16_t *)y)[(size_t)tok * ldy + row] = kn_f2bf(sum);
	}
}

template <int U>
static int launch_fp8_skinny_u(void *y, int y_f32, int ldy, const uint8_t *xq, const float *xs,
			       const uint8_t *w, const float *ws, int m, int n, int k,
			       cudaStream_t s)
{
	unsigned blocks = (unsigned)((n + 15) / 16);

	if (m <= 8)
		KN_LAUNCH((fp8_skinny_kernel<1, U>), blocks, F8_WARPS * 32, 0, s, y, y_f32, ldy, xq,
			  xs, w, ws, m, n, k);
	else if (m <= 16)
		KN_LAUNCH((fp8_skinny_kernel<2, U>), blocks, F8_WARPS * 32, 0, s, y, y_f32, ldy, xq,
			  xs, w, ws, m, n, k);
	else   /* eight steps in flight spill registers at four token tiles */
		KN_LAUNCH((fp8_skinny_kernel<4, F8_UNROLL>), blocks, F8_WARPS * 32, 0, s, y, y_f32,
			  ldy, xq, xs, w, ws, m, n, k);
	KN_LAUNCHED();
	return 0;
}

static int launch_fp8_skinny(void *y, int y_f32, int ldy, const uint8_t *xq, const float *xs,
			     const uint8_t *w, const float *ws, int m, int n, int k,
			     cudaStream_t s)
{
	if (kn_skinny_wide_on && n <= F8_WIDE_N)
		return launch_fp8_skinny_u<F8_UNROLL_WIDE>(y, y_f32, ldy, xq, xs, w, ws, m, n, k, s);
	return launch_fp8_skinny_u<F8_UNROLL>(y, y_f32, ldy, xq, xs, w, ws, m, n, k, s);
}

/* ---------------------------------------------------------------- cuBLASLt */

static void plan_free(struct kn_lt_plan *p)
{
	if (p->op)
		cublasLtMatmulDescDestroy(p->op);
	if (p->a)
		cublasLtMatrixLayoutDestroy(p->a);
	if (p->b)
		cublasLtMatrixLayoutDestroy(p->b);
	if (p->d)
		cublasLtMatrixLayoutDestroy(p->d);
	memset(p, 0, sizeof(*p));
}

extern "C" void kn_gemm_fp8_forget(struct kn_gemm *g)
{
	for (int i = 0; i < g->n_plans; i++)
		plan_free(&g->plans[i]);
	g->n_plans = g->next_plan = 0;
}

/* Column-major as cuBLASLt sees it: y^T (n, m) = w (k, n)^T . xq (k, m). */
static int plan_make(struct kn_gemm *g, struct kn_lt_plan *p, int m, int n, int k, int ldy,
		     int y_f32)
{
	cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
	cudaDataType_t yt = y_f32 ? CUDA_R_32F : CUDA_R_16BF;
	cublasLtMatmulPreference_t pref = NULL;
	cublasLtMatmulHeuristicResult_t hr;
	size_t wsb = KN_GEMM_WORKSPACE;
	int found = 0, rc = 0;

	memset(p, 0, sizeof(*p));
	p->m = m;
	p->n = n;
	p->k = k;
	p->ldy = ldy;
	p->y_f32 = y_f32;
#define LT(call)                                                                          \
	do {                                                                              \
		if ((rc = kn_status((call), #call, __FILE__, __LINE__)))                  \
			goto out;                                                         \
	} while (0)
	LT(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
	LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
	LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
	LT(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_8F_E4M3, k, n, k));
	LT(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_8F_E4M3, k, m, k));
	LT(cublasLtMatrixLayoutCreate(&p->d, yt, n, m, ldy));
	LT(cublasLtMatmulPreferenceCreate(&pref));
	LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
						&wsb, sizeof(wsb)));
	LT(cublasLtMatmulAlgoGetHeuristic(g->lt, p->op, p->a, p->b, p->d, p->d, pref, 1, &hr,
					  &found));
	if (!found) {
		rc = kn_fail(KN_E_DEVICE, __FILE__, __LINE__,
			     "cuBLASLt has no FP8 algorithm for %d x %d x %d", m, n, k);
		goto out;
	}
	p->algo = hr.algo;
#undef LT
out:
	if (pref)
		cublasLtMatmulPreferenceDestroy(pref);
	if (rc)
		plan_free(p);
	return rc;
}

/* The plan of a shape, made (in place of the oldest when all are taken)
 * if it is not there. */
static int plan_get(struct kn_gemm *g, int m, int n, int k, int ldy, int y_f32,
		    struct kn_lt_plan **out)
{
	struct kn_lt_plan *p;
	int rc;

	for (int i = 0; i < g->n_plans; i++) {
		p = &g->plans[i];
		if (p->m == m && p->n == n && p->k == k && p->ldy == ldy && p->y_f32 == y_f32) {
			*out = p;
			return 0;
		}
	}
	if (g->n_plans < KN_LT_PLANS) {
		p = &g->plans[g->n_plans++];
	} else {
		p = &g->plans[g->next_plan];
		g->next_plan = (g->next_plan + 1) % KN_LT_PLANS;
		plan_free(p);
	}
	if ((rc = plan_make(g, p, m, n, k, ldy, y_f32))) {
		/* keep the table dense: move the last plan into the hole */
		*p = g->plans[--g->n_plans];
		memset(&g->plans[g->n_plans], 0, sizeof(*p));
		if (g->next_plan >= g->n_plans)
			g->next_plan = 0;
		return rc;
	}
	*out = p;
	return 0;
}

/* y (m, n) *= xs (m) ws (n), in place. */
static __global__ void scale_rows_cols_kernel(void *y, int y_f32, int ldy, const float *xs,
					      const float *ws, int m, int n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, total = (size_t)m * n;

	kn_pdl_enter();
	for (; i < total; i += (size_t)gridDim.x * blockDim.x) {
		int r = (int)(i / n), c = (int)(i % n);
		size_t at = (size_t)r * ldy + c;

		if (y_f32)
			((float *)y)[at] = ((float *)y)[at] * xs[r] * ws[c];
		else
			((uint16_t *)y)[at] = kn_f2bf(kn_bf2f(((uint16_t *)y)[at]) * xs[r] * ws[c]);
	}
}

static int launch_lt(struct kn_gemm *g, void *y, int y_f32, int ldy, const uint8_t *xq,
		     const float *xs, const uint8_t *w, const float *ws, int m, int n, int k)
{
	const float one = 1.0f, zero = 0.0f;
	struct kn_lt_plan *p;
	size_t total = (size_t)m * n;
	unsigned blocks;
	int rc;

	if ((rc = plan_get(g, m, n, k, ldy, y_f32, &p)))
		return rc;
	KN_CHECK(cublasLtMatmul(g->lt, p->op, &one, w, p->a, xq, p->b, &zero, y, p->d, y, p->d,
				&p->algo, g->ws, KN_GEMM_WORKSPACE, g->s));
	blocks = (unsigned)((total + 255) / 256 < 8192 ? (total + 255) / 256 : 8192);
	KN_LAUNCH(scale_rows_cols_kernel, blocks, 256, 0, g->s, y, y_f32, ldy, xs, ws, m, n);
	KN_LAUNCHED();
	return 0;
}

/* FP8 tensor-core products need compute capability 8.9 or newer: 1 when
 * the current device has it, 0 when not, negative on an error. */
static int fp8_capable(void)
{
	int dev, major, minor;

	KN_CHECK(cudaGetDevice(&dev));
	KN_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
	KN_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
	return major > 8 || (major == 8 && minor >= 9);
}

/* ---------------------------------------------------------------- entry */

extern "C" int kn_gemm_fp8_q(struct kn_gemm *g, void *y, int y_f32, int ldy, const uint8_t *xq,
			     const float *xs, const uint8_t *w, const float *ws, int m, int n,
			     int k, int path)
{
	int rc, skinny;

	KN_REQUIRE(g && y && xq && xs && w && ws);
	KN_REQUIRE(m >= 1 && n >= 1 && k >= 16 && k % 16 == 0 && ldy >= n);
	KN_REQUIRE(y_f32 == 0 || y_f32 == KN_Y_F32);
	KN_REQUIRE(!(((uintptr_t)w | (uintptr_t)xq) & 15));
	KN_REQUIRE(path >= KN_FP8_AUTO && path <= KN_FP8_CUBLASLT);
	skinny = path == KN_FP8_SKINNY ||
		 (path == KN_FP8_AUTO && m <= KN_FP8_SKINNY_M && k % 64 == 0);
	KN_REQUIRE(!skinny || (m <= KN_FP8_SKINNY_M && k % 64 == 0));
	if (!g->fp8_ok) {
		if ((rc = fp8_capable()) < 0)
			return rc;
		g->fp8_ok = rc ? 1 : -1;
	}
	if (g->fp8_ok < 0)
		return kn_fail(KN_E_INVALID, __FILE__, __LINE__,
			       "FP8 products need a GPU of compute capability 8.9 or newer");
	if (skinny)
		return launch_fp8_skinny(y, y_f32, ldy, xq, xs, w, ws, m, n, k, g->s);
	return launch_lt(g, y, y_f32, ldy, xq, xs, w, ws, m, n, k);
}

extern "C" int kn_gemm_fp8(struct kn_gemm *g, void *y, int y_f32, int ldy, const uint16_t *x,
			   const uint8_t *w, const float *ws, int m, int n, int k, uint8_t *xq,
			   float *xs, int path)
{
	int rc;

	KN_REQUIRE(g && x && xq && xs && m >= 1 && k >= 16 && k % 16 == 0);
	if ((rc = kn_quant_rows_e4m3(xq, xs, x, m, k, g->s)))
		return rc;
	return kn_gemm_fp8_q(g, y, y_f32, ldy, xq, xs, w, ws, m, n, k, path);
}
