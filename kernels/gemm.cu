/*
 * gemm.cu: bf16 matrix products, fp32 accumulation, for the projections
 * and the LM head: through cuBLAS (cublasGemmEx), or for skinny products
 * (m <= KN_SKINNY_M rows of x: decode at batch 1 to 4) through a
 * weight-streaming kernel of our own.
 *
 * Row-major y = x . w^T is column-major y^T = w^T(op T) . x^T, so the
 * cuBLAS call passes w as the transposed first operand: no copy, no
 * layout change of the weights as they come from HF files ((out, in)
 * row-major).
 *
 * Skinny products read every weight once and do almost no arithmetic per
 * byte: one warp per row of w (an output column), 16-byte loads, four in
 * flight per lane (eight with kn_skinny_wide), the m rows of x read alongside (they stay in L1).  The
 * first weights of each warp are prefetched into L2 before the kernel
 * waits for its predecessor (programmatic dependent launch).
 * Which path is faster depends on the shape and the GPU, so the first
 * skinny product of each shape on a device (outside a stream capture)
 * times both and remembers the faster for the whole process (every handle
 * then computes a shape the same way, bit for bit); a capture uses what
 * was picked (cuBLAS if the shape was never timed).  Two processes may
 * pick differently for a shape where both paths are about as fast, so
 * their outputs may differ in the last bits.  Refuses nothing: shapes the
 * kernel does not take (k not a multiple of 8, unaligned operands) go to
 * cuBLAS.
 * The handle owns a 32 MiB workspace and is bound to one stream.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels/kn_check.cuh"
#include "kernels/kn_gemm.cuh"

#define KN_SKINNY_M 4
#define KN_GEMM_PICKS 256
#define SK_WARPS 8
/* Loads in flight a lane: SK_UNROLL, or with kn_skinny_wide
 * SK_UNROLL_WIDE for products of up to SK_WIDE_N rows of w.  A warp a row
 * caps the bytes in flight at rows x 32 lanes x unroll x 16: at 4 a lane,
 * the 3584 rows of Qwen2.5-7B's o and down projections keep ~7 MB in
 * flight, about what the HBM's loaded latency asks for (bandwidth x ~2
 * us), and streamed at 72% and 78% of the copy bandwidth on the H100
 * where gate/up's 37888 rows reach 100%.  Not yet measured against 4 on
 * one GPU, so 4 stays the default.  The order of each lane's sums is the
 * same either way. */
#define SK_UNROLL 4
#define SK_UNROLL_WIDE 8
#define SK_WIDE_N 16384

/* The path chosen for one skinny shape on one device. */
struct gemm_pick {
	int dev, m, n, k, y_f32, skinny;
};

/* The process's picks, under pick_lock. */
static pthread_mutex_t pick_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gemm_pick picks[KN_GEMM_PICKS];
static int n_picks;


static int gemm_init(struct kn_gemm *g, kn_stream s)
{
	g->s = s;
	KN_CHECK(cublasCreate(&g->h));
	KN_CHECK(cublasLtCreate(&g->lt));
	KN_CHECK(cublasSetStream(g->h, s));
	KN_CHECK(cudaMalloc(&g->ws, KN_GEMM_WORKSPACE));
	KN_CHECK(cublasSetWorkspace(g->h, g->ws, KN_GEMM_WORKSPACE));
	KN_CHECK(cublasSetMathMode(g->h, CUBLAS_DEFAULT_MATH));
	KN_CHECK(cudaEventCreate(&g->e0));
	KN_CHECK(cudaEventCreate(&g->e1));
	return 0;
}

extern "C" int kn_gemm_create(struct kn_gemm **out, kn_stream s)
{
	struct kn_gemm *g = (struct kn_gemm *)calloc(1, sizeof(*g));
	int rc;

	*out = NULL;
	if (!g)
		return kn_fail(KN_E_DEVICE, __FILE__, __LINE__, "out of host memory");
	rc = gemm_init(g, s);
	if (rc) {
		kn_gemm_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

extern "C" void kn_gemm_free(struct kn_gemm *g)
{
	if (!g)
		return;
	if (g->h)
		cublasDestroy(g->h);
	kn_gemm_fp8_forget(g);
	if (g->lt)
		cublasLtDestroy(g->lt);
	if (g->ws)
		cudaFree(g->ws);
	if (g->e0)
		cudaEventDestroy(g->e0);
	if (g->e1)
		cudaEventDestroy(g->e1);
	free(g);
}

static int launch_gemm(cublasHandle_t h, void *y, int y_f32, int ldy, const uint16_t *x,
		       const uint16_t *w, int m, int n, int k)
{
	const float one = 1.0f, zero = 0.0f;

	KN_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w, CUDA_R_16BF, k,
			      x, CUDA_R_16BF, k, y_f32 == KN_Y_F32_ADD ? &one : &zero, y,
			      y_f32 ? CUDA_R_32F : CUDA_R_16BF, ldy, CUBLAS_COMPUTE_32F,
			      CUBLAS_GEMM_DEFAULT));
	return 0;
}

/* ---------------------------------------------------------------- skinny */

/* acc += the dot product of 8 bf16 pairs packed in a and b. */
static __device__ __forceinline__ float sk_dot8(uint4 a, uint4 b, float acc)
{
	const uint32_t *pa = (const uint32_t *)&a, *pb = (const uint32_t *)&b;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		acc = fmaf(__uint_as_float(pa[i] << 16), __uint_as_float(pb[i] << 16), acc);
		acc = fmaf(__uint_as_float(pa[i] & 0xffff0000u), __uint_as_float(pb[i] & 0xffff0000u),
			   acc);
	}
	return acc;
}

/* y (M, n) = x (M, k) . w (n, k)^T: warp j of the grid takes row j of w;
 * kv = k / 8 16-byte chunks per row, U of them in flight a lane. */
template <int M, int U>
static __global__ void __launch_bounds__(SK_WARPS * 32)
	skinny_kernel(void *y, int y_f32, int ldy, const uint16_t *x, const uint16_t *w, int n,
		      int kv)
{
	int j = blockIdx.x * SK_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
	const uint4 *wr = (const uint4 *)w + (size_t)j * kv, *xr = (const uint4 *)x;
	float acc[M];
	int i = lane;

	/* the weights depend on no earlier kernel: the first of them start
	 * towards L2 while the kernel before (norm, SiLU, attention) ends */
#pragma unroll
	for (int u = 0; u < U; u++)
		if (j < n && i + 32 * u < kv)
			asm volatile("prefetch.global.L2 [%0];\n" ::"l"(wr + i + 32 * u));
	kn_pdl_enter();
	if (j >= n)
		return;
#pragma unroll
	for (int r = 0; r < M; r++)
		acc[r] = 0.0f;
	for (; i + 32 * (U - 1) < kv; i += 32 * U) {
		uint4 wv[U];

#pragma unroll
		for (int u = 0; u < U; u++)
			wv[u] = __ldcs(wr + i + 32 * u);
#pragma unroll
		for (int u = 0; u < U; u++)
#pragma unroll
			for (int r = 0; r < M; r++)
				acc[r] = sk_dot8(wv[u], __ldg(xr + (size_t)r * kv + i + 32 * u), acc[r]);
	}
	for (; i < kv; i += 32) {
		uint4 wv = __ldcs(wr + i);

#pragma unroll
		for (int r = 0; r < M; r++)
			acc[r] = sk_dot8(wv, __ldg(xr + (size_t)r * kv + i), acc[r]);
	}
#pragma unroll
	for (int r = 0; r < M; r++) {
		float v = kn_warp_sum(acc[r]);

		if (lane != r)
			continue;
		if (y_f32 == KN_Y_F32_ADD)
			((float *)y)[(size_t)r * ldy + j] += v;
		else if (y_f32)
			((float *)y)[(size_t)r * ldy + j] = v;
		else
			((uint16_t *)y)[(size_t)r * ldy + j] = kn_f2bf(v);
	}
}

template <int U>
static int launch_skinny_u(void *y, int y_f32, int ldy, const uint16_t *x, const uint16_t *w,
			   int m, int n, int k, cudaStream_t s)
{
	unsigned blocks = (unsigned)((n + SK_WARPS - 1) / SK_WARPS);

	switch (m) {
	case 1:
		KN_LAUNCH((skinny_kernel<1, U>), blocks, SK_WARPS * 32, 0, s, y, y_f32, ldy, x, w, n,
			  k / 8);
		break;
	case 2:
		KN_LAUNCH((skinny_kernel<2, U>), blocks, SK_WARPS * 32, 0, s, y, y_f32, ldy, x, w, n,
			  k / 8);
		break;
	case 3:
		KN_LAUNCH((skinny_kernel<3, U>), blocks, SK_WARPS * 32, 0, s, y, y_f32, ldy, x, w, n,
			  k / 8);
		break;
	default:
		KN_LAUNCH((skinny_kernel<4, U>), blocks, SK_WARPS * 32, 0, s, y, y_f32, ldy, x, w, n,
			  k / 8);
		break;
	}
	KN_LAUNCHED();
	return 0;
}

int kn_skinny_wide_on;

extern "C" void kn_skinny_wide(int wide)
{
	kn_skinny_wide_on = wide != 0;
}

static int launch_skinny(void *y, int y_f32, int ldy, const uint16_t *x, const uint16_t *w,
			 int m, int n, int k, cudaStream_t s)
{
	if (kn_skinny_wide_on && n <= SK_WIDE_N)
		return launch_skinny_u<SK_UNROLL_WIDE>(y, y_f32, ldy, x, w, m, n, k, s);
	return launch_skinny_u<SK_UNROLL>(y, y_f32, ldy, x, w, m, n, k, s);
}

static int skinny_ok(const void *y, int y_f32, int ldy, const uint16_t *x, const uint16_t *w,
		     int m, int k)
{
	return m >= 1 && m <= KN_SKINNY_M && k % 8 == 0 &&
	       !(((uintptr_t)x | (uintptr_t)w) & 15) && !((uintptr_t)y & (y_f32 ? 3 : 1)) &&
	       ldy >= 1;
}

extern "C" int kn_gemm_skinny_bf16(void *y, int y_f32, int ldy, const uint16_t *x,
				   const uint16_t *w, int m, int n, int k, kn_stream s)
{
	KN_REQUIRE(y && x && w);
	KN_REQUIRE(m >= 1 && m <= KN_SKINNY_M && n >= 1 && k >= 8 && ldy >= n);
	KN_REQUIRE(y_f32 >= 0 && y_f32 <= KN_Y_F32_ADD);
	KN_REQUIRE(skinny_ok(y, y_f32, ldy, x, w, m, k));
	KN_REQUIRE(n <= 65535 * SK_WARPS);
	return launch_skinny(y, y_f32, ldy, x, w, m, n, k, s);
}

/* ---------------------------------------------------------------- picking */

/* Device milliseconds of 3 runs of one path (after one untimed run). */
static int time_path(struct kn_gemm *g, int skinny, void *y, int y_f32, int ldy,
		     const uint16_t *x, const uint16_t *w, int m, int n, int k, float *ms)
{
	int rc;

	for (int i = 0; i < 4; i++) {
		if (i == 1)
			KN_CHECK(cudaEventRecord(g->e0, g->s));
		rc = skinny ? launch_skinny(y, y_f32, ldy, x, w, m, n, k, g->s)
			    : launch_gemm(g->h, y, y_f32, ldy, x, w, m, n, k);
		if (rc)
			return rc;
	}
	KN_CHECK(cudaEventRecord(g->e1, g->s));
	KN_CHECK(cudaEventSynchronize(g->e1));
	KN_CHECK(cudaEventElapsedTime(ms, g->e0, g->e1));
	return 0;
}

/* The remembered pick of a shape (-1: none); with add >= 0, remembers
 * add first unless the shape is there already or the table is full. */
static int pick_find(int dev, int m, int n, int k, int y_f32, int add)
{
	int r = -1;

	pthread_mutex_lock(&pick_lock);
	for (int i = 0; i < n_picks && r < 0; i++)
		if (picks[i].dev == dev && picks[i].m == m && picks[i].n == n && picks[i].k == k &&
		    picks[i].y_f32 == y_f32)
			r = picks[i].skinny;
	if (r < 0 && add >= 0 && n_picks < KN_GEMM_PICKS) {
		struct gemm_pick p = { dev, m, n, k, y_f32, add };

		picks[n_picks++] = p;
		r = add;
	}
	pthread_mutex_unlock(&pick_lock);
	return r;
}

/* Both paths timed into y, or for an adding product (whose y must not be
 * disturbed) as plain fp32 products into a scratch buffer. */
static int time_paths(struct kn_gemm *g, void *y, int y_f32, int ldy, const uint16_t *x,
		      const uint16_t *w, int m, int n, int k, float *t_blas, float *t_sk)
{
	void *scratch = NULL;
	int rc;

	if (y_f32 == KN_Y_F32_ADD) {
		KN_CHECK(cudaMalloc(&scratch, (size_t)m * ldy * sizeof(float)));
		y = scratch;
		y_f32 = KN_Y_F32;
	}
	if (!(rc = time_path(g, 0, y, y_f32, ldy, x, w, m, n, k, t_blas)))
		rc = time_path(g, 1, y, y_f32, ldy, x, w, m, n, k, t_sk);
	if (scratch)
		cudaFree(scratch);
	return rc;
}

/* The path of a skinny shape: the remembered pick, else (when s is not
 * capturing) both timed now; cuBLAS while capturing an untimed shape.
 * An adding product shares the pick of the plain fp32 one. */
static int pick_path(struct kn_gemm *g, void *y, int y_f32, int ldy, const uint16_t *x,
		     const uint16_t *w, int m, int n, int k, int *skinny)
{
	cudaStreamCaptureStatus cs;
	float t_blas, t_sk;
	int dev, rc, key = y_f32 ? KN_Y_F32 : 0;

	KN_CHECK(cudaGetDevice(&dev));
	*skinny = pick_find(dev, m, n, k, key, -1);
	if (*skinny >= 0)
		return 0;
	*skinny = 0;
	KN_CHECK(cudaStreamIsCapturing(g->s, &cs));
	if (cs != cudaStreamCaptureStatusNone)
		return 0;
	if ((rc = time_paths(g, y, y_f32, ldy, x, w, m, n, k, &t_blas, &t_sk)))
		return rc;
	rc = pick_find(dev, m, n, k, key, t_sk < t_blas);
	*skinny = rc > 0;
	return 0;
}

extern "C" int kn_gemm_bf16(struct kn_gemm *g, void *y, int y_f32, int ldy, const uint16_t *x,
			    const uint16_t *w, int m, int n, int k)
{
	int skinny = 0, rc;

	KN_REQUIRE(g && y && x && w);
	KN_REQUIRE(m >= 1 && n >= 1 && k >= 1 && ldy >= n);
	KN_REQUIRE(y_f32 >= 0 && y_f32 <= KN_Y_F32_ADD);
	if (skinny_ok(y, y_f32, ldy, x, w, m, k) && n <= 65535 * SK_WARPS &&
	    (rc = pick_path(g, y, y_f32, ldy, x, w, m, n, k, &skinny)))
		return rc;
	if (skinny)
		return launch_skinny(y, y_f32, ldy, x, w, m, n, k, g->s);
	return launch_gemm(g->h, y, y_f32, ldy, x, w, m, n, k);
}

