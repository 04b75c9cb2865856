/*
 * rmsnorm.cu: the residual add fused with RMSNorm (see kn_add_rmsnorm in
 * kn.h).  One block per row.  Rows of a multiple of 4 floats (every real
 * model's) are held in registers, float4 a piece, between the add and
 * the output: read once, written once.  Other rows are read once for the
 * add and the sum of squares, and once more for the scaled bf16 output.
 * The residual stream stays fp32 so that the CPU reference is matched
 * closely.
 *
 * With q (kn_add_rmsnorm_e4m3) the row goes out as an FP8 product's
 * input instead: its bf16 values quantized as kn_quant_rows_e4m3 does
 * (the same bytes and scale), the block's max |value| taken between the
 * two, so the bf16 row is never written.
 */
#include "kernels/kn_check.cuh"
#include "kernels/kn_fp8.cuh"

/* Row scale of an FP8 row of max |value| amax, as kn_quant_rows_e4m3. */
static __device__ __forceinline__ float e4m3_row_scale(float amax)
{
	float s = amax / 448.0f;

	return s >= 1e-12f ? s : 1e-12f;
}

static __global__ void add_rmsnorm_kernel(float *x, const float *y, const float *bias,
					  const float *w, uint16_t *out, uint8_t *q, float *qs,
					  const int32_t *rows, int hidden, float eps)
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
	if (!out && !q)
		return;
	ss = kn_block_sum(ss, red);
	float scale = 1.0f / sqrtf(ss / (float)hidden + eps);

	if (out) {
		uint16_t *o = out + (size_t)r * hidden;

		for (int i = threadIdx.x; i < hidden; i += blockDim.x)
			o[i] = kn_f2bf(w[i] * (xr[i] * scale));
		return;
	}
	float amax = 0.0f, inv;

	for (int i = threadIdx.x; i < hidden; i += blockDim.x)
		amax = fmaxf(amax, fabsf(kn_bf2f(kn_f2bf(w[i] * (xr[i] * scale)))));
	amax = e4m3_row_scale(kn_block_max(amax, red));
	inv = 1.0f / amax;
	for (int i = threadIdx.x; i < hidden; i += blockDim.x)
		q[(size_t)r * hidden + i] = kn_f2e4m3(kn_bf2f(kn_f2bf(w[i] * (xr[i] * scale))) * inv);
	if (threadIdx.x == 0)
		qs[r] = amax;
}

/* The same for rows of hidden % 4 == 0 floats, at most 4 float4 a thread
 * (hidden <= 16384): each thread keeps its float4s of the row in
 * registers between the add and the scaled output, so the row is read
 * once and written once, with 16-byte accesses. */
#define RN_VEC 4

static __global__ void add_rmsnorm_vec_kernel(float *x, const float *y, const float *bias,
					      const float *w, uint16_t *out, uint8_t *q, float *qs,
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
	if (!out && !q)
		return;
	ss = kn_block_sum(ss, red);
	float scale = 1.0f / sqrtf(ss / (float)hidden + eps), amax = 0.0f;
	uint2 pk[RN_VEC];

#pragma unroll
	for (int k = 0; k < RN_VEC; k++) {
		int i = threadIdx.x + k * blockDim.x;

		pk[k] = make_uint2(0, 0);
		if (i >= n4)
			continue;
		float4 g = ((const float4 *)w)[i];

		pk[k].x = (uint32_t)kn_f2bf(g.x * (v[k].x * scale)) |
			  ((uint32_t)kn_f2bf(g.y * (v[k].y * scale)) << 16);
		pk[k].y = (uint32_t)kn_f2bf(g.z * (v[k].z * scale)) |
			  ((uint32_t)kn_f2bf(g.w * (v[k].w * scale)) << 16);
		if (out)
			((uint2 *)(out + (size_t)r * hidden))[i] = pk[k];
		else
			amax = fmaxf(amax, fmaxf(fmaxf(fabsf(kn_bf2f((uint16_t)pk[k].x)),
						       fabsf(kn_bf2f((uint16_t)(pk[k].x >> 16)))),
						 fmaxf(fabsf(kn_bf2f((uint16_t)pk[k].y)),
						       fabsf(kn_bf2f((uint16_t)(pk[k].y >> 16))))));
	}
	if (out)
		return;
	amax = e4m3_row_scale(kn_block_max(amax, red));
	float inv = 1.0f / amax;

#pragma unroll
	for (int k = 0; k < RN_VEC; k++) {
		int i = threadIdx.x + k * blockDim.x;

		if (i >= n4)
			continue;
		((uint32_t *)(q + (size_t)r * hidden))[i] =
			(uint32_t)kn_f2e4m3(kn_bf2f((uint16_t)pk[k].x) * inv) |
			((uint32_t)kn_f2e4m3(kn_bf2f((uint16_t)(pk[k].x >> 16)) * inv) << 8) |
			((uint32_t)kn_f2e4m3(kn_bf2f((uint16_t)pk[k].y) * inv) << 16) |
			((uint32_t)kn_f2e4m3(kn_bf2f((uint16_t)(pk[k].y >> 16)) * inv) << 24);
	}
	if (threadIdx.x == 0)
		qs[r] = amax;
}

static int launch_add_rmsnorm(float *x, const float *y, const float *bias, const float *w,
			      uint16_t *out, uint8_t *q, float *qs, const int32_t *rows,
			      int n_rows, int hidden, float eps, cudaStream_t s)
{
	int n4 = hidden / 4;
	int threads = ((n4 + RN_VEC - 1) / RN_VEC + 31) / 32 * 32;
	int aligned = !(((uintptr_t)x | (uintptr_t)y | (uintptr_t)bias | (uintptr_t)w |
			 (uintptr_t)out) & 15) && !((uintptr_t)q & 3);

	if (hidden % 4 == 0 && threads <= 1024 && aligned) {
		KN_LAUNCH(add_rmsnorm_vec_kernel, n_rows, threads, 0, s, x, y, bias, w, out, q, qs,
			  rows, hidden, eps);
		KN_LAUNCHED();
		return 0;
	}
	threads = hidden >= 1024 ? 1024 : (hidden + 31) / 32 * 32;
	KN_LAUNCH(add_rmsnorm_kernel, n_rows, threads, 0, s, x, y, bias, w, out, q, qs, rows,
		  hidden, eps);
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
	return launch_add_rmsnorm(x, y, bias, w, out, NULL, NULL, rows, n_rows, hidden, eps, s);
}

extern "C" int kn_add_rmsnorm_e4m3(float *x, const float *y, const float *bias, const float *w,
				   uint8_t *q, float *qs, int n_rows, int hidden, float eps,
				   kn_stream s)
{
	KN_REQUIRE(x && w && q && qs && n_rows >= 1 && hidden >= 1 && eps >= 0.0f);
	KN_REQUIRE(!bias || y);
	return launch_add_rmsnorm(x, y, bias, w, NULL, q, qs, NULL, n_rows, hidden, eps, s);
}
