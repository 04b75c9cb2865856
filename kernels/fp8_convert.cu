/*
 * fp8_convert.cu: fp32 -> FP8 E4M3 bytes on the device (kn_f32_to_e4m3),
 * with the rounding the FP8 KV cache is written with (kn_fp8.cuh), so that
 * tests can hold the device's conversion against the host's
 * (engine/kv_fp8.c) value by value: ties, subnormals, saturation, NaN.
 */
#include "kernels/kn_fp8.cuh"

static __global__ void to_e4m3_kernel(uint8_t *out, const float *in, size_t n, float inv_scale)
{
	kn_pdl_enter();
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		out[i] = kn_f2e4m3(in[i] * inv_scale);
}

extern "C" int kn_f32_to_e4m3(uint8_t *out, const float *in, size_t n, float inv_scale,
			      kn_stream s)
{
	size_t blocks = (n + 255) / 256;

	KN_REQUIRE(out && in && n >= 1);
	KN_LAUNCH(to_e4m3_kernel, dim3(blocks > 4096 ? 4096 : (unsigned)blocks), 256, 0, s, out,
		  in, n, inv_scale);
	KN_LAUNCHED();
	return 0;
}
