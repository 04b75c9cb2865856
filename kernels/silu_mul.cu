/*
 * silu_mul.cu: the SwiGLU activation, silu(gate) * up, over the fused
 * gate/up projection (see kn_silu_mul), gate/up biases fused in.
 * Memory-bound, no reuse: a grid of (row, piece of the row), each thread
 * taking V consecutive elements, 8 through 16-byte loads and stores when
 * the row length and the buffers allow it, else 1.
 *
 * kn_silu_mul_e4m3 writes the row as an FP8 product's input instead, the
 * bytes and scale kn_quant_rows_e4m3 would give for the bf16 row.  The
 * same grid writes the bf16 values into a scratch row and folds each
 * piece's max |value| into the row's slot (atomicMax on the bits, which
 * order as the values do for non-negative floats); the last block of the
 * row to finish (a counter per row) quantizes the row from the scratch
 * (in L2) with the final max and clears the slot and the counter for the
 * next launch.  So a decode row, too short to fill the GPU as one block,
 * is spread over as many blocks as kn_silu_mul's, in one launch.
 */
#include <stdint.h>

#include "kernels/kn_check.cuh"
#include "kernels/kn_fp8.cuh"

#define SM_THREADS 256

template <int V>
static __global__ void silu_mul_kernel(uint16_t *out, const uint16_t *gu, const float *bias,
				       int inter)
{
	kn_pdl_enter();
	int r = blockIdx.x, i = (blockIdx.y * SM_THREADS + threadIdx.x) * V;
	const uint16_t *g = gu + (size_t)r * 2 * inter + i, *u = g + inter;
	uint16_t gv[V], uv[V], ov[V];

	if (i >= inter)
		return;
	if (V == 8) {
		*(uint4 *)gv = *(const uint4 *)g;
		*(uint4 *)uv = *(const uint4 *)u;
	} else {
		gv[0] = g[0];
		uv[0] = u[0];
	}
#pragma unroll
	for (int e = 0; e < V; e++) {
		float a = kn_bf2f(gv[e]), b = kn_bf2f(uv[e]);

		if (bias) {
			a += bias[i + e];
			b += bias[inter + i + e];
		}
		ov[e] = kn_silu_mul_bf(a, b);
	}
	if (V == 8)
		*(uint4 *)(out + (size_t)r * inter + i) = *(const uint4 *)ov;
	else
		out[(size_t)r * inter + i] = ov[0];
}

static int launch_silu_mul(uint16_t *out, const uint16_t *gu, const float *bias, int n_rows,
			   int inter, cudaStream_t s)
{
	int vec = inter % 8 == 0 && !(((uintptr_t)out | (uintptr_t)gu) & 15);
	int per = vec ? 8 : 1;
	dim3 grid(n_rows, (inter / per + SM_THREADS - 1) / SM_THREADS);

	if (vec)
		KN_LAUNCH(silu_mul_kernel<8>, grid, SM_THREADS, 0, s, out, gu, bias, inter);
	else
		KN_LAUNCH(silu_mul_kernel<1>, grid, SM_THREADS, 0, s, out, gu, bias, inter);
	KN_LAUNCHED();
	return 0;
}

/* The bf16 outputs [i, i + 8) of a row (row: gu's), into ov. */
static __device__ __forceinline__ void silu_mul_8(uint16_t *ov, const uint16_t *row,
						  const float *bias, int inter, int i)
{
	uint16_t gv[8], uv[8];

	*(uint4 *)gv = *(const uint4 *)(row + i);
	*(uint4 *)uv = *(const uint4 *)(row + inter + i);
#pragma unroll
	for (int e = 0; e < 8; e++) {
		float a = kn_bf2f(gv[e]), b = kn_bf2f(uv[e]);

		if (bias) {
			a += bias[i + e];
			b += bias[inter + i + e];
		}
		ov[e] = kn_silu_mul_bf(a, b);
	}
}

/* Piece blockIdx.y of row blockIdx.x: its bf16 values into act, its max
 * into sync[2 r] (bits), then the row's last piece quantizes it; sync[2 r
 * + 1] counts the pieces done.  inter % 8 == 0. */
static __global__ void __launch_bounds__(SM_THREADS)
	silu_mul_e4m3_kernel(uint8_t *q, float *qs, const uint16_t *gu, const float *bias,
			     int inter, uint16_t *act, uint32_t *sync)
{
	__shared__ float red[32];
	__shared__ int last;
	int r = blockIdx.x, i = (blockIdx.y * SM_THREADS + threadIdx.x) * 8;
	uint16_t *ar = act + (size_t)r * inter;
	uint16_t ov[8];
	float amax = 0.0f, sc, inv;

	kn_pdl_enter();
	if (i < inter) {
		silu_mul_8(ov, gu + (size_t)r * 2 * inter, bias, inter, i);
		*(uint4 *)(ar + i) = *(const uint4 *)ov;
#pragma unroll
		for (int e = 0; e < 8; e++)
			amax = fmaxf(amax, fabsf(kn_bf2f(ov[e])));
	}
	/* each thread's values reach L2 before the counter moves */
	__threadfence();
	amax = kn_block_max(amax, red);
	if (threadIdx.x == 0) {
		atomicMax(&sync[2 * r], __float_as_uint(amax));
		__threadfence();
		last = atomicAdd(&sync[2 * r + 1], 1u) == gridDim.y - 1;
	}
	__syncthreads();
	if (!last)
		return;
	__threadfence();
	sc = __uint_as_float(atomicAdd(&sync[2 * r], 0u)) / 448.0f;
	sc = sc >= 1e-12f ? sc : 1e-12f;
	inv = 1.0f / sc;
	for (int j = threadIdx.x * 8; j < inter; j += SM_THREADS * 8) {
		uint4 v = __ldcg((const uint4 *)(ar + j));
		const uint16_t *h = (const uint16_t *)&v;
		uint32_t pk[2] = {0, 0};

#pragma unroll
		for (int e = 0; e < 8; e++)
			pk[e >> 2] |= (uint32_t)kn_f2e4m3(kn_bf2f(h[e]) * inv) << (8 * (e & 3));
		*(uint2 *)(q + (size_t)r * inter + j) = make_uint2(pk[0], pk[1]);
	}
	if (threadIdx.x == 0) {
		qs[r] = sc;
		sync[2 * r] = 0;
		sync[2 * r + 1] = 0;
	}
}

extern "C" int kn_silu_mul_e4m3(uint8_t *q, float *qs, const uint16_t *gu, const float *bias,
				int n_rows, int inter, uint16_t *act, uint32_t *sync,
				kn_stream s)
{
	dim3 grid(n_rows, (inter / 8 + SM_THREADS - 1) / SM_THREADS);

	KN_REQUIRE(q && qs && gu && act && sync && n_rows >= 1 && inter >= 8 && inter % 8 == 0);
	KN_REQUIRE(!(((uintptr_t)q & 7) | (((uintptr_t)gu | (uintptr_t)act) & 15)));
	KN_REQUIRE(grid.y <= 65535);
	KN_LAUNCH(silu_mul_e4m3_kernel, grid, SM_THREADS, 0, s, q, qs, gu, bias, inter, act,
		  sync);
	KN_LAUNCHED();
	return 0;
}

extern "C" int kn_silu_mul(uint16_t *out, const uint16_t *gu, const float *bias, int n_rows,
			   int inter, kn_stream s)
{
	KN_REQUIRE(out && gu && n_rows >= 1 && inter >= 1);
	KN_REQUIRE((inter + SM_THREADS - 1) / SM_THREADS <= 65535);
	return launch_silu_mul(out, gu, bias, n_rows, inter, s);
}
