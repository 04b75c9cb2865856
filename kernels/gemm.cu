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
 * byte: one, two or four warps per row of w (an output column), 16-byte
 * loads, four or eight in flight per lane, the m rows
 * of x read alongside (they stay in L1).  More warps a row put more loads
 * in flight where rows are few and long (the o and down projections).
 * The first weights of each warp are prefetched into L2 before the
 * kernel waits for its predecessor (programmatic dependent launch).
 * Which path is faster depends on the shape and the GPU, so the first
 * skinny product of each shape on a device (outside a stream capture)
 * times cuBLAS and the kernel at 1, 2 and 4 warps a row by 4 and 8 loads
 * (1 and 4 only without kn_skinny_splits), each run with L2 flushed
 * first (the weights come from memory in a forward pass), and remembers
 * the fastest for the whole process (every handle then computes a shape
 * the same way, bit for bit); a capture uses what was picked (cuBLAS if
 * the shape was never timed).  Two processes may pick differently for a
 * shape where both paths are about as fast, so their outputs may differ
 * in the last bits.  Refuses nothing: shapes the
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
/* Loads in flight a lane: SK_UNROLL, or SK_UNROLL_WIDE where the path
 * has KN_SKINNY_LOADS8.  A warp a row caps the bytes in flight at rows x
 * 32 lanes x unroll x 16: at 4 a lane, the 3584 rows of Qwen2.5-7B's o
 * and down projections keep ~7 MB in flight, about what the HBM's loaded
 * latency asks for (bandwidth x ~2 us).  On one H100 at one warp a row
 * and 4 loads they streamed at 79% and 88% of the copy bandwidth, qkv at
 * 65%, gate/up's 37888 rows at 100%; 4 warps a row and 8 loads took qkv
 * to 90% and o to 84%, 4 warps and 4 loads down to 94%.  So each shape's
 * pick times them all. */
#define SK_UNROLL 4
#define SK_UNROLL_WIDE 8

/* The path chosen for one skinny shape on one device, with the splits
 * allowed or not (kn_skinny_splits): skinny 0 for cuBLAS, else the
 * kernel's path (warps a row | KN_SKINNY_LOADS8). */
struct gemm_pick {
	int dev, m, n, k, y_f32, splits, skinny;
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

/* y (M, n) = x (M, k) . w (n, k)^T: S warps a row of w (SK_WARPS / S rows
 * a block), warp s of a row taking the 16-byte chunks s, s + S, ... of
 * each lane's share (kv = k / 8 chunks a row), U of them in flight a
 * lane, the last round predicated rather than one load at a time.  The
 * S warps' sums are added in warp order through shared memory, so every
 * split gives the same bits run after run; S = 1 is one warp a row, with
 * each lane's sums in the order of the chunks.
 * With R = 2 (SwiGLU) w holds 2 n rows, gates then ups: the warps of
 * output j take rows j and n + j together, and y (bf16) gets
 * silu(gate + bias) * (up + bias) of the two sums rounded to bf16 first,
 * the bits of the plain product followed by kn_silu_mul. */
template <int M, int U, int S, int R>
static __global__ void __launch_bounds__(SK_WARPS * 32)
	skinny_kernel(void *y, int y_f32, int ldy, const uint16_t *x, const uint16_t *w,
		      const float *bias, int n, int kv)
{
	__shared__ float red[S > 1 ? SK_WARPS : 1][R][M];
	int wp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	int j = blockIdx.x * (SK_WARPS / S) + wp / S, s = wp % S;
	bool live = j < n;
	const uint4 *wr[R], *xr = (const uint4 *)x;
	const uint4 zero = make_uint4(0, 0, 0, 0);
	float acc[R][M];
	int i = lane + 32 * s;

#pragma unroll
	for (int q = 0; q < R; q++)
		wr[q] = (const uint4 *)w + ((size_t)q * n + (live ? j : 0)) * kv;
	/* the weights depend on no earlier kernel: the first of them start
	 * towards L2 while the kernel before (norm, SiLU, attention) ends */
#pragma unroll
	for (int q = 0; q < R; q++)
#pragma unroll
		for (int u = 0; u < U; u++)
			if (live && i + 32 * S * u < kv)
				asm volatile("prefetch.global.L2 [%0];\n" ::"l"(wr[q] + i + 32 * S * u));
	kn_pdl_enter();
	if (S == 1 && !live)
		return;
#pragma unroll
	for (int q = 0; q < R; q++)
#pragma unroll
		for (int r = 0; r < M; r++)
			acc[q][r] = 0.0f;
	for (; i < kv; i += 32 * S * U) {
		uint4 wv[R][U];

#pragma unroll
		for (int q = 0; q < R; q++)
#pragma unroll
			for (int u = 0; u < U; u++)
				wv[q][u] = live && i + 32 * S * u < kv ? __ldcs(wr[q] + i + 32 * S * u)
								       : zero;
#pragma unroll
		for (int u = 0; u < U; u++)
			if (i + 32 * S * u < kv)
#pragma unroll
				for (int r = 0; r < M; r++) {
					uint4 xv = __ldg(xr + (size_t)r * kv + i + 32 * S * u);

#pragma unroll
					for (int q = 0; q < R; q++)
						acc[q][r] = sk_dot8(wv[q][u], xv, acc[q][r]);
				}
	}
#pragma unroll
	for (int q = 0; q < R; q++)
#pragma unroll
		for (int r = 0; r < M; r++) {
			acc[q][r] = kn_warp_sum(acc[q][r]);
			if (S > 1 && lane == 0)
				red[wp][q][r] = acc[q][r];
		}
	if (S > 1) {
		__syncthreads();
		if (s != 0 || !live)
			return;
#pragma unroll
		for (int q = 0; q < R; q++)
#pragma unroll
			for (int r = 0; r < M; r++) {
				acc[q][r] = red[wp][q][r];
#pragma unroll
				for (int t = 1; t < S; t++)
					acc[q][r] += red[wp + t][q][r];
			}
	}
#pragma unroll
	for (int r = 0; r < M; r++) {
		if (lane != r)
			continue;
		if (R == 2) {
			float a = kn_bf2f(kn_f2bf(acc[0][r])), b = kn_bf2f(kn_f2bf(acc[R - 1][r]));

			if (bias) {
				a += bias[j];
				b += bias[n + j];
			}
			((uint16_t *)y)[(size_t)r * ldy + j] = kn_silu_mul_bf(a, b);
		} else if (y_f32 == KN_Y_F32_ADD)
			((float *)y)[(size_t)r * ldy + j] += acc[0][r];
		else if (y_f32)
			((float *)y)[(size_t)r * ldy + j] = acc[0][r];
		else
			((uint16_t *)y)[(size_t)r * ldy + j] = kn_f2bf(acc[0][r]);
	}
}

template <int U, int S, int R>
static int launch_skinny_us(void *y, int y_f32, int ldy, const uint16_t *x, const uint16_t *w,
			    const float *bias, int m, int n, int k, cudaStream_t s)
{
	const int rows = SK_WARPS / S;
	unsigned blocks = (unsigned)((n + rows - 1) / rows);

	switch (m) {
	case 1:
		KN_LAUNCH((skinny_kernel<1, U, S, R>), blocks, SK_WARPS * 32, 0, s, y, y_f32, ldy,
			  x, w, bias, n, k / 8);
		break;
	case 2:
		KN_LAUNCH((skinny_kernel<2, U, S, R>), blocks, SK_WARPS * 32, 0, s, y, y_f32, ldy,
			  x, w, bias, n, k / 8);
		break;
	case 3:
		KN_LAUNCH((skinny_kernel<3, U, S, R>), blocks, SK_WARPS * 32, 0, s, y, y_f32, ldy,
			  x, w, bias, n, k / 8);
		break;
	default:
		KN_LAUNCH((skinny_kernel<4, U, S, R>), blocks, SK_WARPS * 32, 0, s, y, y_f32, ldy,
			  x, w, bias, n, k / 8);
		break;
	}
	KN_LAUNCHED();
	return 0;
}

/* The kernel at split warps a row (1, 2 or 4), R weight rows a warp. */
template <int U, int R>
static int launch_skinny_u(void *y, int y_f32, int ldy, const uint16_t *x, const uint16_t *w,
			   const float *bias, int m, int n, int k, int split, cudaStream_t s)
{
	if (split == 4)
		return launch_skinny_us<U, 4, R>(y, y_f32, ldy, x, w, bias, m, n, k, s);
	if (split == 2)
		return launch_skinny_us<U, 2, R>(y, y_f32, ldy, x, w, bias, m, n, k, s);
	return launch_skinny_us<U, 1, R>(y, y_f32, ldy, x, w, bias, m, n, k, s);
}

int kn_skinny_splits_on = 1, kn_skinny_glu_on;

extern "C" void kn_skinny_glu(int on)
{
	kn_skinny_glu_on = on != 0;
}

extern "C" void kn_skinny_splits(int on)
{
	kn_skinny_splits_on = on != 0;
}

/* Whether path is one of the kernel's: 1, 2 or 4 warps a row, with or
 * without KN_SKINNY_LOADS8. */
static int path_ok(int path)
{
	int split = path & ~KN_SKINNY_LOADS8;

	return split == 1 || split == 2 || split == 4;
}

/* The kernel on path (split warps a row, | KN_SKINNY_LOADS8 for 8 loads
 * in flight a lane), R weight rows a warp: with SwiGLU's two, each row
 * keeps half the loads, so that a warp has the path's in flight. */
template <int R>
static int launch_skinny_path(void *y, int y_f32, int ldy, const uint16_t *x, const uint16_t *w,
			      const float *bias, int m, int n, int k, int path, cudaStream_t s)
{
	int split = path & ~KN_SKINNY_LOADS8;

	if (path & KN_SKINNY_LOADS8)
		return launch_skinny_u<SK_UNROLL_WIDE / R, R>(y, y_f32, ldy, x, w, bias, m, n, k,
							     split, s);
	return launch_skinny_u<SK_UNROLL / R, R>(y, y_f32, ldy, x, w, bias, m, n, k, split, s);
}

static int launch_skinny(void *y, int y_f32, int ldy, const uint16_t *x, const uint16_t *w,
			 int m, int n, int k, int path, cudaStream_t s)
{
	return launch_skinny_path<1>(y, y_f32, ldy, x, w, NULL, m, n, k, path, s);
}

static int launch_skinny_glu(uint16_t *act, const uint16_t *x, const uint16_t *w,
			     const float *bias, int m, int inter, int k, int path, cudaStream_t s)
{
	return launch_skinny_path<2>(act, 0, inter, x, w, bias, m, inter, k, path, s);
}

static int skinny_ok(const void *y, int y_f32, int ldy, const uint16_t *x, const uint16_t *w,
		     int m, int k)
{
	return m >= 1 && m <= KN_SKINNY_M && k % 8 == 0 &&
	       !(((uintptr_t)x | (uintptr_t)w) & 15) && !((uintptr_t)y & (y_f32 ? 3 : 1)) &&
	       ldy >= 1;
}

extern "C" int kn_gemm_skinny_bf16(void *y, int y_f32, int ldy, const uint16_t *x,
				   const uint16_t *w, int m, int n, int k, int path, kn_stream s)
{
	KN_REQUIRE(y && x && w);
	KN_REQUIRE(m >= 1 && m <= KN_SKINNY_M && n >= 1 && k >= 8 && ldy >= n);
	KN_REQUIRE(y_f32 >= 0 && y_f32 <= KN_Y_F32_ADD);
	KN_REQUIRE(skinny_ok(y, y_f32, ldy, x, w, m, k));
	KN_REQUIRE(n <= 65535 * SK_WARPS);
	KN_REQUIRE(path_ok(path));
	return launch_skinny(y, y_f32, ldy, x, w, m, n, k, path, s);
}

extern "C" int kn_gemm_skinny_glu_bf16(uint16_t *act, const uint16_t *x, const uint16_t *w,
					const float *bias, int m, int inter, int k, int path,
					kn_stream s)
{
	KN_REQUIRE(act && x && w);
	KN_REQUIRE(m >= 1 && m <= KN_SKINNY_M && inter >= 1 && k >= 8);
	KN_REQUIRE(skinny_ok(act, 0, inter, x, w, m, k));
	KN_REQUIRE(2 * inter <= 65535 * SK_WARPS);
	KN_REQUIRE(path_ok(path));
	return launch_skinny_glu(act, x, w, bias, m, inter, k, path, s);
}

/* ---------------------------------------------------------------- picking */

/* One run of a path (skinny 0: cuBLAS, else the kernel's path). */
static int run_path(struct kn_gemm *g, int skinny, void *y, int y_f32, int ldy,
		    const uint16_t *x, const uint16_t *w, int m, int n, int k)
{
	return skinny ? launch_skinny(y, y_f32, ldy, x, w, m, n, k, skinny, g->s)
		      : launch_gemm(g->h, y, y_f32, ldy, x, w, m, n, k);
}

/* Device milliseconds of 3 runs of one path, after one untimed run; each
 * timed run after flush (when not NULL) is written, so that the weights
 * come from memory as they do in a forward pass (whose other layers pass
 * through L2 in between), not from L2 as they would in back-to-back runs
 * of one shape. */
static int time_path(struct kn_gemm *g, int skinny, void *y, int y_f32, int ldy,
		     const uint16_t *x, const uint16_t *w, int m, int n, int k, void *flush,
		     size_t flush_bytes, float *ms)
{
	float t;
	int rc;

	*ms = 0.0f;
	if ((rc = run_path(g, skinny, y, y_f32, ldy, x, w, m, n, k)))
		return rc;
	for (int i = 1; i <= 3; i++) {
		if (flush)
			KN_CHECK(cudaMemsetAsync(flush, i, flush_bytes, g->s));
		KN_CHECK(cudaEventRecord(g->e0, g->s));
		if ((rc = run_path(g, skinny, y, y_f32, ldy, x, w, m, n, k)))
			return rc;
		KN_CHECK(cudaEventRecord(g->e1, g->s));
		KN_CHECK(cudaEventSynchronize(g->e1));
		KN_CHECK(cudaEventElapsedTime(&t, g->e0, g->e1));
		*ms += t;
	}
	return 0;
}

/* The remembered pick of a shape (-1: none); with add >= 0, remembers
 * add first unless the shape is there already or the table is full. */
static int pick_find(int dev, int m, int n, int k, int y_f32, int add)
{
	int r = -1, sp = kn_skinny_splits_on;

	pthread_mutex_lock(&pick_lock);
	for (int i = 0; i < n_picks && r < 0; i++)
		if (picks[i].dev == dev && picks[i].m == m && picks[i].n == n && picks[i].k == k &&
		    picks[i].y_f32 == y_f32 && picks[i].splits == sp)
			r = picks[i].skinny;
	if (r < 0 && add >= 0 && n_picks < KN_GEMM_PICKS) {
		struct gemm_pick p = { dev, m, n, k, y_f32, sp, add };

		picks[n_picks++] = p;
		r = add;
	}
	pthread_mutex_unlock(&pick_lock);
	return r;
}

/* The fastest path (0: cuBLAS, else the skinny kernel's warps a row,
 * with KN_SKINNY_LOADS8 for 8 loads a lane; one warp and 4 loads only
 * unless kn_skinny_splits), each timed into y, or for an adding
 * product (whose y must not be disturbed) as a plain fp32 product into a
 * scratch buffer, with L2 flushed by a buffer twice its size before each
 * timed run (not flushed where that buffer cannot be had).  A tie keeps
 * the earlier path. */
static int time_paths(struct kn_gemm *g, int dev, void *y, int y_f32, int ldy,
		      const uint16_t *x, const uint16_t *w, int m, int n, int k, int *best)
{
	static const int paths[] = { 0, 1, 2, 4, 1 | KN_SKINNY_LOADS8, 2 | KN_SKINNY_LOADS8,
				     4 | KN_SKINNY_LOADS8 };
	int n_paths = kn_skinny_splits_on ? 7 : 2, rc = 0, l2 = 0;
	void *scratch = NULL, *flush = NULL;
	size_t flush_bytes;
	float t, t_best = 0.0f;

	KN_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
	flush_bytes = 2 * (size_t)l2;
	if (flush_bytes && cudaMalloc(&flush, flush_bytes) != cudaSuccess) {
		(void)cudaGetLastError();
		flush = NULL;
	}
	if (y_f32 == KN_Y_F32_ADD) {
		if ((rc = kn_status(cudaMalloc(&scratch, (size_t)m * ldy * sizeof(float)),
				    "cudaMalloc", __FILE__, __LINE__)))
			goto out;
		y = scratch;
		y_f32 = KN_Y_F32;
	}
	for (int p = 0; p < n_paths && !rc; p++)
		if (!(rc = time_path(g, paths[p], y, y_f32, ldy, x, w, m, n, k, flush,
				     flush_bytes, &t)) &&
		    (!p || t < t_best)) {
			t_best = t;
			*best = paths[p];
		}
out:
	if (scratch)
		cudaFree(scratch);
	if (flush)
		cudaFree(flush);
	return rc;
}

/* The path of a skinny shape: the remembered pick, else (when s is not
 * capturing) both timed now; cuBLAS while capturing an untimed shape.
 * An adding product shares the pick of the plain fp32 one. */
static int pick_path(struct kn_gemm *g, void *y, int y_f32, int ldy, const uint16_t *x,
		     const uint16_t *w, int m, int n, int k, int *skinny)
{
	cudaStreamCaptureStatus cs;
	int dev, rc, best = 0, key = y_f32 ? KN_Y_F32 : 0;

	KN_CHECK(cudaGetDevice(&dev));
	*skinny = pick_find(dev, m, n, k, key, -1);
	if (*skinny >= 0)
		return 0;
	*skinny = 0;
	KN_CHECK(cudaStreamIsCapturing(g->s, &cs));
	if (cs != cudaStreamCaptureStatusNone)
		return 0;
	if ((rc = time_paths(g, dev, y, y_f32, ldy, x, w, m, n, k, &best)))
		return rc;
	rc = pick_find(dev, m, n, k, key, best);
	*skinny = rc > 0 ? rc : 0;
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
		return launch_skinny(y, y_f32, ldy, x, w, m, n, k, skinny, g->s);
	return launch_gemm(g->h, y, y_f32, ldy, x, w, m, n, k);
}

extern "C" int kn_gemm_glu_bf16(struct kn_gemm *g, uint16_t *act, uint16_t *gu,
				const uint16_t *x, const uint16_t *w, const float *bias, int m,
				int inter, int k)
{
	int n = 2 * inter, skinny = 0, rc;

	KN_REQUIRE(g && act && gu && x && w);
	KN_REQUIRE(m >= 1 && inter >= 1 && k >= 1);
	if (skinny_ok(gu, 0, n, x, w, m, k) && n <= 65535 * SK_WARPS &&
	    (rc = pick_path(g, gu, 0, n, x, w, m, n, k, &skinny)))
		return rc;
	if (skinny && kn_skinny_glu_on)
		return launch_skinny_glu(act, x, w, bias, m, inter, k, skinny, g->s);
	if ((rc = kn_gemm_bf16(g, gu, 0, n, x, w, m, n, k)))
		return rc;
	return kn_silu_mul(act, gu, bias, m, inter, g->s);
}

