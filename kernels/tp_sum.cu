/*
 * tp_sum.cu: the all-reduce of tensor-parallel ranks that share one
 * device (engine/comm.c, kind "local"): every element of every rank's
 * buffer becomes the sum over the ranks, added in rank order, so the
 * result is the same on every rank and from run to run.
 *
 * This is what makes tp > 1 testable on one GPU (NCCL refuses two ranks
 * on one device); it does not model the cost of a real all-reduce.
 */
#include "kernels/kn_check.cuh"

struct bufs {
	float *p[KN_TP_MAX];
};

static __global__ void sum4_kernel(struct bufs b, int n_bufs, size_t n4)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4;
	     i += (size_t)gridDim.x * blockDim.x) {
		float4 s = reinterpret_cast<const float4 *>(b.p[0])[i];

		for (int k = 1; k < n_bufs; k++) {
			float4 v = reinterpret_cast<const float4 *>(b.p[k])[i];

			s.x += v.x;
			s.y += v.y;
			s.z += v.z;
			s.w += v.w;
		}
		for (int k = 0; k < n_bufs; k++)
			reinterpret_cast<float4 *>(b.p[k])[i] = s;
	}
}

static __global__ void sum_kernel(struct bufs b, int n_bufs, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float s = b.p[0][i];

		for (int k = 1; k < n_bufs; k++)
			s += b.p[k][i];
		for (int k = 0; k < n_bufs; k++)
			b.p[k][i] = s;
	}
}

static int launch_sum(const struct bufs *b, int n_bufs, size_t n, cudaStream_t s)
{
	int vec = n % 4 == 0;
	size_t m, blocks;

	for (int k = 0; k < n_bufs; k++)
		vec &= ((uintptr_t)b->p[k] & 15) == 0;
	m = vec ? n / 4 : n;
	blocks = (m + 255) / 256;
	if (blocks > 4096)
		blocks = 4096;
	if (vec)
		sum4_kernel<<<(unsigned)blocks, 256, 0, s>>>(*b, n_bufs, m);
	else
		sum_kernel<<<(unsigned)blocks, 256, 0, s>>>(*b, n_bufs, m);
	KN_LAUNCHED();
	return 0;
}

extern "C" int kn_tp_sum_f32(float *const *bufs, int n_bufs, size_t n, kn_stream s)
{
	struct bufs b;

	KN_REQUIRE(bufs && n_bufs >= 1 && n_bufs <= KN_TP_MAX && n >= 1);
	for (int k = 0; k < n_bufs; k++) {
		KN_REQUIRE(bufs[k]);
		b.p[k] = bufs[k];
	}
	for (int k = n_bufs; k < KN_TP_MAX; k++)
		b.p[k] = NULL;
	return launch_sum(&b, n_bufs, n, s);
}
