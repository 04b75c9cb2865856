/*
 * logprob.cu: log p(target) of each scored row, straight from the fp32
 * logits on the device (score mode never copies logits to the host).
 * One block per row: max, then sum of exp(x - max), then the difference.
 */
#include "kernels/kn_check.cuh"

static __global__ void logprob_kernel(float *out, const float *logits, const int32_t *targets,
				      int vocab)
{
	kn_pdl_enter();
	__shared__ float red[32];
	int r = blockIdx.x, t = targets[r];
	const float *row = logits + (size_t)r * vocab;
	float mx = -INFINITY, sum = 0.0f;

	if (t < 0 || t >= vocab)
		return;
	for (int i = threadIdx.x; i < vocab; i += blockDim.x)
		mx = fmaxf(mx, row[i]);
	mx = kn_block_max(mx, red);
	for (int i = threadIdx.x; i < vocab; i += blockDim.x)
		sum += expf(row[i] - mx);
	sum = kn_block_sum(sum, red);
	if (threadIdx.x == 0)
		out[r] = row[t] - mx - logf(sum);
}

static int launch_logprob(float *out, const float *logits, const int32_t *targets, int n_rows,
			  int vocab, cudaStream_t s)
{
	KN_LAUNCH(logprob_kernel, n_rows, 1024, 0, s, out, logits, targets, vocab);
	KN_LAUNCHED();
	return 0;
}

extern "C" int kn_logprob(float *out, const float *logits, const int32_t *targets, int n_rows,
			  int vocab, kn_stream s)
{
	KN_REQUIRE(out && logits && targets && n_rows >= 1 && vocab >= 1);
	return launch_logprob(out, logits, targets, n_rows, vocab, s);
}
