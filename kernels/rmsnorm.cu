/*
 * rmsnorm.cu: the residual add fused with RMSNorm (see kn_add_rmsnorm in
 * kn.h).  One block per row; the row is read once for the add and the sum
 * of squares, and once more for the scaled bf16 output.  The residual
 * stream stays fp32 so that the CPU reference is matched closely.
 */
#include "kernels/kn_check.cuh"

static __global__ void add_rmsnorm_kernel(float *x, const float *y, const float *bias,
					  const float *w, uint16_t *out, const int32_t *rows,
					  int hidden, float eps)
{
	kn_pdl_enter();
	__shared__ float red[32];
	int r = blockIdx.x, src = rows ? rows[r] : r;
	float *xr = x + (size_t)src * hidden;
	float ss = 0.0f;

	for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
		float v = xr[i];

		if (y) {
			v += y[(size_t)src * hidden + i] + (bias ? bias[i] : 0.0f);
			xr[i] = v;
		}
		ss += v * v;
	}
	if (!out)
		return;
	ss = kn_block_sum(ss, red);
	float scale = 1.0f / sqrtf(ss / (float)hidden + eps);
	uint16_t *o = out + (size_t)r * hidden;

	for (int i = threadIdx.x; i < hidden; i += blockDim.x)
		o[i] = kn_f2bf(w[i] * (xr[i] * scale));
}

static int launch_add_rmsnorm(float *x, const float *y, const float *bias, const float *w,
			      uint16_t *out, const int32_t *rows, int n_rows, int hidden,
			      float eps, cudaStream_t s)
{
	int threads = hidden >= 1024 ? 1024 : (hidden + 31) / 32 * 32;

	KN_LAUNCH(add_rmsnorm_kernel, n_rows, threads, 0, s, x, y, bias, w, out, rows, hidden, eps);
	KN_LAUNCHED();
	return 0;
}

extern "C" int kn_add_rmsnorm(float *x, const float *y, const float *bias, const float *w,
			      uint16_t *out, const int32_t *rows, int n_rows, int hidden,
			      float eps, kn_stream s)
{
	KN_REQUIRE(x && n_rows >= 1 && hidden >= 1 && eps >= 0.0f);
	KN_REQUIRE(!out || w);
	KN_REQUIRE(!(rows && y));
	KN_REQUIRE(!bias || y);
	return launch_add_rmsnorm(x, y, bias, w, out, rows, n_rows, hidden, eps, s);
}
