/*
 * fill_random.cu: deterministic random tensors made on the device, for
 * --load-format dummy (weights of a model's shape with no files) and for
 * benchmarks.  Each element is a splitmix64 hash of (seed, index) mapped
 * to a uniform in [-sqrt(3), sqrt(3)) (unit variance), so the values do
 * not depend on the launch shape.
 */
#include "kernels/kn_check.cuh"

template <typename T>
static __global__ void fill_kernel(T *p, size_t n, uint64_t seed, float mean, float std)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float v = mean + std * kn_unit_uniform(seed, i);

		if constexpr (sizeof(T) == 2)
			p[i] = kn_f2bf(v);
		else
			p[i] = v;
	}
}

template <typename T>
static int launch_fill(T *p, size_t n, uint64_t seed, float mean, float std, cudaStream_t s)
{
	size_t blocks = (n + 255) / 256;

	if (blocks > 16384)
		blocks = 16384;
	fill_kernel<T><<<(unsigned)blocks, 256, 0, s>>>(p, n, seed, mean, std);
	KN_LAUNCHED();
	return 0;
}

extern "C" int kn_fill_random_bf16(uint16_t *p, size_t n, uint64_t seed, float mean, float std,
				   kn_stream s)
{
	KN_REQUIRE(p && n >= 1);
	return launch_fill(p, n, seed, mean, std, s);
}

extern "C" int kn_fill_random_f32(float *p, size_t n, uint64_t seed, float mean, float std,
				  kn_stream s)
{
	KN_REQUIRE(p && n >= 1);
	return launch_fill(p, n, seed, mean, std, s);
}
