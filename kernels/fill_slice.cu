/*
 * fill_slice.cu: a block of a random tensor made on the device, for the
 * tensor-parallel dummy loader: rank r of a sharded model holds rows or
 * columns of the SAME full random tensor that one GPU would hold, so
 * that --tp-size N gives the logits of --tp-size 1 with random weights.
 *
 * Element (i, j) of the block is element (row0 + i, col0 + j) of a full
 * (., full_cols) tensor filled by kn_fill_random_*: kn_unit_uniform of
 * (seed, full index), as in fill_random.cu, so a block of the whole
 * tensor (row0 = col0 = 0, cols = full_cols) is exactly what
 * kn_fill_random_* makes.  The E4M3 variant rounds the same values to
 * bytes (random FP8 KV pages).
 */
#include "kernels/kn_fp8.cuh"

template <typename T>
static __global__ void slice_kernel(T *p, size_t rows, size_t cols, size_t full_cols,
				    size_t row0, size_t col0, uint64_t seed, float mean, float std)
{
	size_t n = rows * cols;

	for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
	     e += (size_t)gridDim.x * blockDim.x) {
		size_t i = e / cols, j = e - i * cols;
		float v = mean + std * kn_unit_uniform(seed, (row0 + i) * full_cols + col0 + j);

		if constexpr (sizeof(T) == 1)
			p[e] = kn_f2e4m3(v);
		else if constexpr (sizeof(T) == 2)
			p[e] = kn_f2bf(v);
		else
			p[e] = v;
	}
}

template <typename T>
static int launch_slice(T *p, size_t rows, size_t cols, size_t full_cols, size_t row0,
			size_t col0, uint64_t seed, float mean, float std, cudaStream_t s)
{
	size_t blocks = (rows * cols + 255) / 256;

	if (blocks > 16384)
		blocks = 16384;
	slice_kernel<T><<<(unsigned)blocks, 256, 0, s>>>(p, rows, cols, full_cols, row0, col0,
							  seed, mean, std);
	KN_LAUNCHED();
	return 0;
}

extern "C" int kn_fill_random_slice_bf16(uint16_t *p, size_t rows, size_t cols,
					 size_t full_cols, size_t row0, size_t col0,
					 uint64_t seed, float mean, float std, kn_stream s)
{
	KN_REQUIRE(p && rows >= 1 && cols >= 1 && col0 + cols <= full_cols);
	return launch_slice(p, rows, cols, full_cols, row0, col0, seed, mean, std, s);
}

extern "C" int kn_fill_random_slice_f32(float *p, size_t rows, size_t cols, size_t full_cols,
					size_t row0, size_t col0, uint64_t seed, float mean,
					float std, kn_stream s)
{
	KN_REQUIRE(p && rows >= 1 && cols >= 1 && col0 + cols <= full_cols);
	return launch_slice(p, rows, cols, full_cols, row0, col0, seed, mean, std, s);
}

extern "C" int kn_fill_random_slice_e4m3(uint8_t *p, size_t rows, size_t cols,
					 size_t full_cols, size_t row0, size_t col0,
					 uint64_t seed, float mean, float std, kn_stream s)
{
	KN_REQUIRE(p && rows >= 1 && cols >= 1 && col0 + cols <= full_cols);
	return launch_slice(p, rows, cols, full_cols, row0, col0, seed, mean, std, s);
}
