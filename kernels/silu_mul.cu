/*
 * silu_mul.cu: the SwiGLU activation, silu(gate) * up, over the fused
 * gate/up projection (see kn_silu_mul), gate/up biases fused in.
 * Memory-bound, no reuse: a grid of (row, piece of the row), each thread
 * taking V consecutive elements, 8 through 16-byte loads and stores when
 * the row length and the buffers allow it, else 1.
 */
#include <stdint.h>

#include "kernels/kn_check.cuh"

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
		ov[e] = kn_f2bf(a / (1.0f + expf(-a)) * b);
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

extern "C" int kn_silu_mul(uint16_t *out, const uint16_t *gu, const float *bias, int n_rows,
			   int inter, kn_stream s)
{
	KN_REQUIRE(out && gu && n_rows >= 1 && inter >= 1);
	KN_REQUIRE((inter + SM_THREADS - 1) / SM_THREADS <= 65535);
	return launch_silu_mul(out, gu, bias, n_rows, inter, s);
}
