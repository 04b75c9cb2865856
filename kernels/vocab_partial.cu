/*
 * vocab_partial.cu: what one tensor-parallel rank knows about a row of
 * logits when it holds only the vocab slice [vocab0, vocab0 + n_vocab)
 * (vocab-parallel LM head): the slice's maximum and its first index, the
 * sum of exp(x - max) over the slice, and the target's logit when the
 * target falls in the slice.  The engine combines the ranks' parts into
 * the argmax and log p(target) of the whole row (backend_cuda.c), so
 * that only four numbers per row and rank leave the device.
 * One block per row; ties go to the lowest index, NaNs are never chosen
 * over a number (as argmax.cu).
 */
#include "kernels/kn_check.cuh"

static __device__ __forceinline__ bool better(float v, int i, float bv, int bi)
{
	return v > bv || (v == bv && i < bi) || (bv != bv && v == v);
}

/* The block's best (value, index) into thread 0's bv, bi. */
static __device__ void block_argmax(float *bv, int *bi, float *sv, int *si)
{
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

	for (int o = 16; o > 0; o >>= 1) {
		float v = __shfl_xor_sync(0xffffffffu, *bv, o);
		int i = __shfl_xor_sync(0xffffffffu, *bi, o);

		if (better(v, i, *bv, *bi)) {
			*bv = v;
			*bi = i;
		}
	}
	if (lane == 0) {
		sv[warp] = *bv;
		si[warp] = *bi;
	}
	__syncthreads();
	if (threadIdx.x == 0)
		for (int w = 1; w < (int)(blockDim.x >> 5); w++)
			if (better(sv[w], si[w], *bv, *bi)) {
				*bv = sv[w];
				*bi = si[w];
			}
}

static __global__ void partial_kernel(struct kn_vocab_part *out, const float *logits,
				      const int32_t *targets, int n_vocab, int vocab0)
{
	__shared__ float sv[32], red[32];
	__shared__ int si[32];
	__shared__ float row_max;
	const float *row = logits + (size_t)blockIdx.x * n_vocab;
	float bv = -INFINITY, sum = 0.0f;
	int bi = n_vocab;

	for (int i = threadIdx.x; i < n_vocab; i += blockDim.x)
		if (better(row[i], i, bv, bi)) {
			bv = row[i];
			bi = i;
		}
	block_argmax(&bv, &bi, sv, si);
	if (threadIdx.x == 0)
		row_max = bv;
	__syncthreads();
	for (int i = threadIdx.x; i < n_vocab; i += blockDim.x)
		sum += expf(row[i] - row_max);
	sum = kn_block_sum(sum, red);
	if (threadIdx.x == 0) {
		struct kn_vocab_part p;
		int t = targets ? targets[blockIdx.x] : -1;

		p.max = bv;
		p.sum_exp = sum;
		p.target = t >= vocab0 && t - vocab0 < n_vocab ? row[t - vocab0] : 0.0f;
		p.argmax = vocab0 + (bi < n_vocab ? bi : 0);
		out[blockIdx.x] = p;
	}
}

static int launch_partial(struct kn_vocab_part *out, const float *logits,
			  const int32_t *targets, int n_rows, int n_vocab, int vocab0,
			  cudaStream_t s)
{
	partial_kernel<<<n_rows, 1024, 0, s>>>(out, logits, targets, n_vocab, vocab0);
	KN_LAUNCHED();
	return 0;
}

extern "C" int kn_vocab_partial(struct kn_vocab_part *out, const float *logits,
				const int32_t *targets, int n_rows, int n_vocab, int vocab0,
				kn_stream s)
{
	KN_REQUIRE(out && logits && n_rows >= 1 && n_vocab >= 1 && vocab0 >= 0);
	return launch_partial(out, logits, targets, n_rows, n_vocab, vocab0, s);
}
