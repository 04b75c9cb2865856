/*
 * argmax.cu: greedy token choice on the GPU, one block per logits row.
 * Ties go to the lowest index, NaNs are never chosen over a number, as in
 * eng_argmax (which keeps the first strict maximum).
 */
#include "kernels/kn_check.cuh"

/* True when (v, i) beats (bv, bi). */
static __device__ __forceinline__ bool better(float v, int i, float bv, int bi)
{
	return v > bv || (v == bv && i < bi) || (bv != bv && v == v);
}

static __global__ void argmax_kernel(int32_t *out, const float *logits, int vocab)
{
	kn_pdl_enter();
	__shared__ float sv[32];
	__shared__ int si[32];
	const float *row = logits + (size_t)blockIdx.x * vocab;
	float bv = -INFINITY;
	int bi = vocab, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

	for (int i = threadIdx.x; i < vocab; i += blockDim.x)
		if (better(row[i], i, bv, bi)) {
			bv = row[i];
			bi = i;
		}
	for (int o = 16; o > 0; o >>= 1) {
		float v = __shfl_xor_sync(0xffffffffu, bv, o);
		int i = __shfl_xor_sync(0xffffffffu, bi, o);

		if (better(v, i, bv, bi)) {
			bv = v;
			bi = i;
		}
	}
	if (lane == 0) {
		sv[warp] = bv;
		si[warp] = bi;
	}
	__syncthreads();
	if (threadIdx.x == 0) {
		for (int w = 1; w < (int)(blockDim.x >> 5); w++)
			if (better(sv[w], si[w], bv, bi)) {
				bv = sv[w];
				bi = si[w];
			}
		out[blockIdx.x] = bi < vocab ? bi : 0;
	}
}

static int launch_argmax(int32_t *out, const float *logits, int n_rows, int vocab,
			 cudaStream_t s)
{
	KN_LAUNCH(argmax_kernel, n_rows, 1024, 0, s, out, logits, vocab);
	KN_LAUNCHED();
	return 0;
}

extern "C" int kn_argmax(int32_t *out, const float *logits, int n_rows, int vocab, kn_stream s)
{
	KN_REQUIRE(out && logits && n_rows >= 1 && vocab >= 1);
	return launch_argmax(out, logits, n_rows, vocab, s);
}
