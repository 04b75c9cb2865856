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
 * - the same rows, by a second kernel (KN_FP8_SKINNY2, chosen only when
 *   asked for): the bytes are widened to f16 by shifts and masks (exact,
 *   each value times 2^-8) for f16 mma's with fp32 accumulation, and the
 *   sums scaled by 2^16.  A block takes 32 weight rows (two m16 tiles a
 *   warp, so a lane's x fragments serve 32 rows) and a share of k over
 *   its 8 warps; where there are fewer tiles than SMs (n = 3584 on an
 *   H100), k is further split over a cluster of 2 or 4 blocks, whose sums
 *   meet in distributed shared memory, in a fixed order.  A lane has 4 x
 *   16-byte loads of weights in flight a step, 2 steps at a time (1 for
 *   m > 16): 32 KiB a block.  E4M3 NaN bytes (which the quantizers write
 *   only for NaN input) read as +-480 here.
 * - more rows (prefill, large decode batches): cuBLASLt's FP8 GEMM with
 *   the row and column scales as its outer-vector scale modes, so that the
 *   scaled sums are rounded once, in its epilogue.  Where cuBLASLt has no
 *   such algorithm (older libraries), the plain FP8 GEMM into y, then a
 *   pass of our own scaling y in place (bf16 y then rounded twice, the sum
 *   and the scaled sum: within one bf16 step of rounding once).
 *
 * Weights are read once per product at either size: at batch 1 the bytes
 * are half those of bf16, which is what decode speed is made of.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cooperative_groups.h>

#include "kernels/kn_check.cuh"
#include "kernels/kn_fp8.cuh"
#include "kernels/kn_gemm.cuh"
#include "kernels/kn_mma.cuh"

namespace cg = cooperative_groups;

#define Q_THREADS 256
#define F8_WARPS 8
#define F8_UNROLL 4
#define F2_WARPS 8
#define F2_ROWS 32        /* weight rows of a block: two m16 tiles */
#define F2_PREFETCH 4     /* steps of a warp's weights sent towards L2 before the wait */
#define F2_SPLIT_MAX 4    /* blocks of a cluster */
#define F2_RESIDENT 2     /* blocks an SM holds at least, for every m */

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
template <int NB>
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
	for (int u = 0; u < F8_UNROLL; u++)
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
	for (; s < kb; s += F8_WARPS * F8_UNROLL) {
		uint4 wa[F8_UNROLL], wb[F8_UNROLL], xv[F8_UNROLL][NB];

#pragma unroll
		for (int u = 0; u < F8_UNROLL; u++) {
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
		for (int u = 0; u < F8_UNROLL; u++)
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

static int launch_fp8_skinny(void *y, int y_f32, int ldy, const uint8_t *xq, const float *xs,
			     const uint8_t *w, const float *ws, int m, int n, int k,
			     cudaStream_t s)
{
	unsigned blocks = (unsigned)((n + 15) / 16);

	if (m <= 8)
		KN_LAUNCH(fp8_skinny_kernel<1>, blocks, F8_WARPS * 32, 0, s, y, y_f32, ldy, xq, xs,
			  w, ws, m, n, k);
	else if (m <= 16)
		KN_LAUNCH(fp8_skinny_kernel<2>, blocks, F8_WARPS * 32, 0, s, y, y_f32, ldy, xq, xs,
			  w, ws, m, n, k);
	else
		KN_LAUNCH(fp8_skinny_kernel<4>, blocks, F8_WARPS * 32, 0, s, y, y_f32, ldy, xq, xs,
			  w, ws, m, n, k);
	KN_LAUNCHED();
	return 0;
}

/* ---------------------------------------------------------------- skinny2 */

/* The four E4M3 bytes b0 b1 b2 b3 of v (b0 lowest) as the f16x2 words
 * lo = (b0, b2) and hi = (b1, b3), each value times 2^-8, exactly: the
 * byte s.eeee.mmm is the f16 s.0eeee.mmm0000000 (the exponent biases
 * differ by 15 - 7 = 8), subnormals included.  Shifts and masks on the
 * whole word, six integer operations for four values. */
static __device__ __forceinline__ void e4m3x4_to_f16x4(uint32_t v, uint32_t *lo, uint32_t *hi)
{
	const uint32_t mag = 0x3f803f80u;   /* exponent and mantissa bits the bytes fill */
	uint32_t sign = v & 0x80808080u;

	*lo = ((v << 7) & mag) | ((sign << 8) & ~mag);
	*hi = ((v >> 1) & mag) | (sign & ~mag);
}

/* c[tt][b] += one 64-column step of the products: w[r] holds 16 bytes of
 * row g + 8 r of the block (r = 2 tt: tile tt's row g, 2 tt + 1: its row
 * g + 8), x[b] the same 16 columns of token 8 b + g.  Word i of them makes
 * mma i, each word's pairs (b0, b2) and (b1, b3) the fragments' columns
 * 2t, 2t + 1 and 2t + 8, 2t + 9: the k order the tensor cores see is a
 * permutation of memory order, the same for both operands. */
template <int NB>
static __device__ __forceinline__ void f2_step(float (*c)[NB][4], const uint4 *w, const uint4 *x)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		uint32_t a[4][2], b[NB][2];

#pragma unroll
		for (int r = 0; r < 4; r++)
			e4m3x4_to_f16x4(((const uint32_t *)&w[r])[i], &a[r][0], &a[r][1]);
#pragma unroll
		for (int nb = 0; nb < NB; nb++)
			e4m3x4_to_f16x4(((const uint32_t *)&x[nb])[i], &b[nb][0], &b[nb][1]);
#pragma unroll
		for (int tt = 0; tt < 2; tt++) {
			const uint32_t af[4] = { a[2 * tt][0], a[2 * tt + 1][0], a[2 * tt][1],
						 a[2 * tt + 1][1] };

#pragma unroll
			for (int nb = 0; nb < NB; nb++)
				mma_t<true>(c[tt][nb], af, b[nb][0], b[nb][1]);
		}
	}
}

/* Sum o of a block (o = ((tt NB + nb) 4 + e) 32 + lane, e the accumulator
 * of the fragment) scaled into y: 2^16 undoes the widening's 2^-8 twice. */
static __device__ __forceinline__ void f2_store(void *y, int y_f32, int ldy, const float *xs,
						const float *ws, int m, int n, int j0, int nbs,
						int o, float sum)
{
	int lane = o & 31, e = (o >> 5) & 3, tt = (o >> 7) / nbs, nb = (o >> 7) % nbs;
	/* c0 c1: row g, tokens 2t, 2t + 1; c2 c3: row g + 8 */
	int row = j0 + 16 * tt + (lane >> 2) + 4 * (e & 2), tok = 8 * nb + 2 * (lane & 3) + (e & 1);

	if (row >= n || tok >= m)
		return;
	sum = sum * 65536.0f * xs[tok] * ws[row];
	if (y_f32)
		((float *)y)[(size_t)tok * ldy + row] = sum;
	else
		((uint16_t *)y)[(size_t)tok * ldy + row] = kn_f2bf(sum);
}

/* y (m, n) for m <= 8 NB.  The blocks of a cluster of split blocks take
 * rows [32 j, 32 j + 32) of w (j = blockIdx.x / split); the k / 64 steps
 * of 64 columns are cut into split * F2_WARPS contiguous ranges, one a
 * warp, in the order (block rank, warp).  A warp's sums meet the block's
 * in shared memory, then the cluster's blocks add the blocks' sums through
 * distributed shared memory, each block a share of the outputs: always in
 * the same order, so the result does not depend on timing.  Registers:
 * every form holds F2_RESIDENT blocks an SM, the m <= 8 one 3 (80 a
 * thread, no spills with CUDA 13): more loads in flight where the blocks
 * outnumber the SMs' room (gate/up). */
template <int NB>
static __global__ void __launch_bounds__(F2_WARPS * 32, NB == 1 ? 3 : F2_RESIDENT)
	fp8_skinny2_kernel(void *y, int y_f32, int ldy, const uint8_t *xq, const float *xs,
			   const uint8_t *w, const float *ws, int m, int n, int k, int split)
{
	constexpr int U = NB >= 4 ? 1 : 2;       /* steps loaded at once: registers */
	constexpr int O = 2 * NB * 4 * 32;       /* a block's sums */
	__shared__ float red[F2_WARPS][O];
	int lane = threadIdx.x & 31, v = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
	int rank = blockIdx.x % split, j0 = blockIdx.x / split * F2_ROWS, kb = k / 64;
	int part = rank * F2_WARPS + v, parts = split * F2_WARPS;
	int s0 = kb * part / parts, s1 = kb * (part + 1) / parts;
	/* rows g + 8 r for r < rows (those below n), 8 k / 16 chunks apart;
	 * tokens past m: no pointer; both read as zeros */
	int rows = j0 + g < n ? (n - j0 - g + 7) / 8 : 0;
	const uint4 *wr = (const uint4 *)(w + (size_t)(rows ? j0 + g : 0) * k) + t, *xr[NB];
	size_t rs = (size_t)k / 2;
	float c[2][NB][4] = {};

	/* the weights depend on no earlier kernel */
#pragma unroll
	for (int u = 0; u < F2_PREFETCH; u++)
#pragma unroll
		for (int r = 0; r < 4; r++)
			if (r < rows && s0 + u < s1)
				asm volatile("prefetch.global.L2 [%0];\n"
					     ::"l"(wr + r * rs + 4 * (s0 + u)));
	kn_pdl_enter();
#pragma unroll
	for (int nb = 0; nb < NB; nb++) {
		int tok = 8 * nb + g;

		xr[nb] = tok < m ? (const uint4 *)(xq + (size_t)tok * k) + t : NULL;
	}
	for (int s = s0; s < s1; s += U) {
		uint4 wv[U][4], xv[U][NB];

#pragma unroll
		for (int u = 0; u < U; u++) {
			int st = s + u;

#pragma unroll
			for (int r = 0; r < 4; r++)
				wv[u][r] = st < s1 && r < rows ? __ldcs(wr + r * rs + 4 * st)
							       : make_uint4(0, 0, 0, 0);
#pragma unroll
			for (int nb = 0; nb < NB; nb++)
				xv[u][nb] = st < s1 && xr[nb] ? __ldg(xr[nb] + 4 * st)
							      : make_uint4(0, 0, 0, 0);
		}
#pragma unroll
		for (int u = 0; u < U; u++)
			if (s + u < s1)
				f2_step<NB>(c, wv[u], xv[u]);
	}

#pragma unroll
	for (int tt = 0; tt < 2; tt++)
#pragma unroll
		for (int nb = 0; nb < NB; nb++)
#pragma unroll
			for (int e = 0; e < 4; e++)
				red[v][((tt * NB + nb) * 4 + e) * 32 + lane] = c[tt][nb][e];
	__syncthreads();
	for (int o = threadIdx.x; o < O; o += blockDim.x) {
		float sum = 0.0f;

		for (int q = 0; q < F2_WARPS; q++)
			sum += red[q][o];
		if (split == 1)
			f2_store(y, y_f32, ldy, xs, ws, m, n, j0, NB, o, sum);
		else
			red[0][o] = sum;   /* only this thread reads column o */
	}
	if (split == 1)
		return;

	cg::cluster_group cl = cg::this_cluster();

	cl.sync();
	for (int o = O * rank / split + threadIdx.x; o < O * (rank + 1) / split; o += blockDim.x) {
		float sum = 0.0f;

		for (int q = 0; q < split; q++)
			sum += cl.map_shared_rank(red[0], q)[o];
		f2_store(y, y_f32, ldy, xs, ws, m, n, j0, NB, o, sum);
	}
	/* a block's shared memory must outlive the others' reads of it */
	cl.sync();
}

/* Blocks a tile's k is split over: the most (a power of two up to
 * F2_SPLIT_MAX) with which all blocks fit on the device at once
 * (F2_RESIDENT an SM, whatever m: then the split, and so every row's sums,
 * do not depend on the batch), each warp keeping two steps or more; 1 when
 * the tiles alone fill it (the scheduler then balances blocks as they
 * finish). */
static int f2_split(int n_sm, int tiles, int kb)
{
	int s = 1;

	while (2 * s <= F2_SPLIT_MAX && (long)tiles * 2 * s <= (long)n_sm * F2_RESIDENT &&
	       kb >= 2 * F2_WARPS * 2 * s)
		s *= 2;
	return s;
}

static int launch_fp8_skinny2(struct kn_gemm *g, void *y, int y_f32, int ldy, const uint8_t *xq,
			      const float *xs, const uint8_t *w, const float *ws, int m, int n,
			      int k)
{
	int tiles = (n + F2_ROWS - 1) / F2_ROWS, split, dev;
	unsigned blocks;

	if (!g->n_sm) {
		KN_CHECK(cudaGetDevice(&dev));
		KN_CHECK(cudaDeviceGetAttribute(&g->n_sm, cudaDevAttrMultiProcessorCount, dev));
	}
	split = f2_split(g->n_sm, tiles, k / 64);
	blocks = (unsigned)tiles * split;
	if (m <= 8)
		KN_LAUNCH_CLUSTER(fp8_skinny2_kernel<1>, blocks, split, F2_WARPS * 32, 0, g->s, y,
				  y_f32, ldy, xq, xs, w, ws, m, n, k, split);
	else if (m <= 16)
		KN_LAUNCH_CLUSTER(fp8_skinny2_kernel<2>, blocks, split, F2_WARPS * 32, 0, g->s, y,
				  y_f32, ldy, xq, xs, w, ws, m, n, k, split);
	else
		KN_LAUNCH_CLUSTER(fp8_skinny2_kernel<4>, blocks, split, F2_WARPS * 32, 0, g->s, y,
				  y_f32, ldy, xq, xs, w, ws, m, n, k, split);
	KN_LAUNCHED();
	return 0;
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

/* Column-major as cuBLASLt sees it: y^T (n, m) = w (k, n)^T . xq (k, m).
 * outer: A's scales (ws, one per weight row: op(A)'s n rows) and B's (xs,
 * one per token) applied by cuBLASLt. */
static int plan_make(struct kn_gemm *g, struct kn_lt_plan *p, int m, int n, int k, int ldy,
		     int y_f32, int outer)
{
	cublasLtMatmulMatrixScale_t vec = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
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
	p->outer = outer;
#define LT(call)                                                                          \
	do {                                                                              \
		if ((rc = kn_status((call), #call, __FILE__, __LINE__)))                  \
			goto out;                                                         \
	} while (0)
	LT(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
	LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
	LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
	if (outer) {
		LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &vec,
						  sizeof(vec)));
		LT(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &vec,
						  sizeof(vec)));
	}
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
static int plan_get(struct kn_gemm *g, int m, int n, int k, int ldy, int y_f32, int outer,
		    struct kn_lt_plan **out)
{
	struct kn_lt_plan *p;
	int rc;

	for (int i = 0; i < g->n_plans; i++) {
		p = &g->plans[i];
		if (p->m == m && p->n == n && p->k == k && p->ldy == ldy && p->y_f32 == y_f32 &&
		    p->outer == outer) {
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
	if ((rc = plan_make(g, p, m, n, k, ldy, y_f32, outer))) {
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

/* The scales through cuBLASLt's outer-vector modes when it takes them
 * (tried on the handle's first product; a refusal is remembered), else a
 * scale pass after a plain FP8 product. */
static int launch_lt(struct kn_gemm *g, void *y, int y_f32, int ldy, const uint8_t *xq,
		     const float *xs, const uint8_t *w, const float *ws, int m, int n, int k)
{
	const float one = 1.0f, zero = 0.0f;
	struct kn_lt_plan *p;
	size_t total = (size_t)m * n;
	unsigned blocks;
	int rc;

	if (g->fp8_outer >= 0) {
		rc = plan_get(g, m, n, k, ldy, y_f32, 1, &p);
		if (!rc) {
			g->fp8_outer = 1;
			KN_CHECK(cublasLtMatmulDescSetAttribute(
				p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &ws, sizeof(ws)));
			KN_CHECK(cublasLtMatmulDescSetAttribute(
				p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &xs, sizeof(xs)));
			KN_CHECK(cublasLtMatmul(g->lt, p->op, &one, w, p->a, xq, p->b, &zero, y,
						p->d, y, p->d, &p->algo, g->ws, KN_GEMM_WORKSPACE,
						g->s));
			return 0;
		}
		/* a library without them refuses the first; a shape refused
		 * after others were taken goes the other way alone */
		if (g->fp8_outer == 0)
			g->fp8_outer = -1;
	}
	if ((rc = plan_get(g, m, n, k, ldy, y_f32, 0, &p)))
		return rc;
	KN_CHECK(cublasLtMatmul(g->lt, p->op, &one, w, p->a, xq, p->b, &zero, y, p->d, y, p->d,
				&p->algo, g->ws, KN_GEMM_WORKSPACE, g->s));
	blocks = (unsigned)((total + 255) / 256 < 8192 ? (total + 255) / 256 : 8192);
	KN_LAUNCH(scale_rows_cols_kernel, blocks, 256, 0, g->s, y, y_f32, ldy, xs, ws, m, n);
	KN_LAUNCHED();
	return 0;
}

extern "C" int kn_gemm_fp8_outer(const struct kn_gemm *g)
{
	return g->fp8_outer;
}

extern "C" void kn_gemm_fp8_use_outer(struct kn_gemm *g, int on)
{
	g->fp8_outer = on ? 0 : -1;
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
	KN_REQUIRE(path >= KN_FP8_AUTO && path <= KN_FP8_SKINNY2);
	skinny = path == KN_FP8_SKINNY || path == KN_FP8_SKINNY2 ||
		 (path == KN_FP8_AUTO && m <= KN_FP8_SKINNY_M && k % 64 == 0);
	KN_REQUIRE(!skinny || (m <= KN_FP8_SKINNY_M && k % 64 == 0));
	KN_REQUIRE(path != KN_FP8_SKINNY2 || !((uintptr_t)y & (y_f32 ? 3 : 1)));
	if (!g->fp8_ok) {
		if ((rc = fp8_capable()) < 0)
			return rc;
		g->fp8_ok = rc ? 1 : -1;
	}
	if (g->fp8_ok < 0)
		return kn_fail(KN_E_INVALID, __FILE__, __LINE__,
			       "FP8 products need a GPU of compute capability 8.9 or newer");
	if (path == KN_FP8_SKINNY2)
		return launch_fp8_skinny2(g, y, y_f32, ldy, xq, xs, w, ws, m, n, k);
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
