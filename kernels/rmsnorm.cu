/*
 * rmsnorm.cu: the residual add fused with RMSNorm (see kn_add_rmsnorm in
 * kn.h).  One block per row.  Rows of a multiple of 4 floats (every real
 * model's) are held in registers, float4 a piece, between the add and
 * the output: read once, written once.  Other rows are read once for the
 * add and the sum of squares, and once more for the scaled bf16 output.
 * The residual stream stays fp32 so that the CPU reference is matched
 * closely.
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

/* The same for rows of hidden % 4 == 0 floats, at most 4 float4 a thread
 * (hidden <= 16384): each thread keeps its float4s of the row in
 * registers between the add and the scaled output, so the row is read
 * once and written once, with 16-byte accesses. */
#define RN_VEC 4

static __global__ void add_rmsnorm_vec_kernel(float *x, const float *y, const float *bias,
					      const float *w, uint16_t *out,
					      const int32_t *rows, int hidden, float eps)
{
	kn_pdl_enter();
	__shared__ float red[32];
	int r = blockIdx.x, src = rows ? rows[r] : r, n4 = hidden / 4;
	float4 *xr = (float4 *)(x + (size_t)src * hidden);
	const float4 *yr = y ? (const float4 *)(y + (size_t)src * hidden) : NULL;
	float4 v[RN_VEC];
	float ss = 0.0f;

#pragma unroll
	for (int k = 0; k < RN_VEC; k++) {
		int i = threadIdx.x + k * blockDim.x;

		v[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
		if (i >= n4)
			continue;
		v[k] = xr[i];
		if (yr) {
			float4 a = yr[i], b = bias ? ((const float4 *)bias)[i]
						    : make_float4(0.0f, 0.0f, 0.0f, 0.0f);

			v[k].x += a.x + b.x;
			v[k].y += a.y + b.y;
			v[k].z += a.z + b.z;
			v[k].w += a.w + b.w;
			xr[i] = v[k];
		}
		ss += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
	}
	if (!out)
		return;
	ss = kn_block_sum(ss, red);
	float scale = 1.0f / sqrtf(ss / (float)hidden + eps);
	uint2 *o = (uint2 *)(out + (size_t)r * hidden);

#pragma unroll
	for (int k = 0; k < RN_VEC; k++) {
		int i = threadIdx.x + k * blockDim.x;

		if (i >= n4)
			continue;
		float4 g = ((const float4 *)w)[i];
		uint2 pk;

		pk.x = (uint32_t)kn_f2bf(g.x * (v[k].x * scale)) |
		       ((uint32_t)kn_f2bf(g.y * (v[k].y * scale)) << 16);
		pk.y = (uint32_t)kn_f2bf(g.z * (v[k].z * scale)) |
		       ((uint32_t)kn_f2bf(g.w * (v[k].w * scale)) << 16);
		o[i] = pk;
	}
}

static int launch_add_rmsnorm(float *x, const float *y, const float *bias, const float *w,
			      uint16_t *out, const int32_t *rows, int n_rows, int hidden,
			      float eps, cudaStream_t s)
{
	int n4 = hidden / 4;
	int threads = ((n4 + RN_VEC - 1) / RN_VEC + 31) / 32 * 32;
	int aligned = !(((uintptr_t)x | (uintptr_t)y | (uintptr_t)bias | (uintptr_t)w |
			 (uintptr_t)out) & 15);

	if (hidden % 4 == 0 && threads <= 1024 && aligned) {
		KN_LAUNCH(add_rmsnorm_vec_kernel, n_rows, threads, 0, s, x, y, bias, w, out, rows,
			  hidden, eps);
		KN_LAUNCHED();
		return 0;
	}
	threads = hidden >= 1024 ? 1024 : (hidden + 31) / 32 * 32;
	KN_LAUNCH(add_rmsnorm_kernel, n_rows, threads, 0, s, x, y, bias, w, out, rows, hidden,
		  eps);
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
