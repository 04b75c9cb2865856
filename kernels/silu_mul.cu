/*
 * silu_mul.cu: the SwiGLU activation, silu(gate) * up, over the fused
 * gate/up projection (see kn_silu_mul), gate/up biases fused in.
 * A grid-stride loop over all elements: memory-bound, no reuse.
 */
#include "kernels/kn_check.cuh"

static __global__ void silu_mul_kernel(uint16_t *out, const uint16_t *gu, const float *bias,
				       size_t n, int inter)
{
	for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
	     e += (size_t)gridDim.x * blockDim.x) {
		size_t r = e / inter;
		int i = (int)(e % inter);
		const uint16_t *row = gu + r * 2 * inter;
		float g = kn_bf2f(row[i]), u = kn_bf2f(row[inter + i]);

		if (bias) {
			g += bias[i];
			u += bias[inter + i];
		}
		out[e] = kn_f2bf(g / (1.0f + expf(-g)) * u);
	}
}

static int launch_silu_mul(uint16_t *out, const uint16_t *gu, const float *bias, int n_rows,
			   int inter, cudaStream_t s)
{
	size_t n = (size_t)n_rows * inter;
	size_t blocks = (n + 255) / 256;

	if (blocks > 65536)
		blocks = 65536;
	silu_mul_kernel<<<(unsigned)blocks, 256, 0, s>>>(out, gu, bias, n, inter);
	KN_LAUNCHED();
	return 0;
}

extern "C" int kn_silu_mul(uint16_t *out, const uint16_t *gu, const float *bias, int n_rows,
			   int inter, kn_stream s)
{
	KN_REQUIRE(out && gu && n_rows >= 1 && inter >= 1);
	return launch_silu_mul(out, gu, bias, n_rows, inter, s);
}
