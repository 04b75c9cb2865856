/*
 * kn_fp8.cuh: FP8 E4M3 on the device, for the KV cache: the rounding the
 * pages are written with (cvt.rn.satfinite: nearest even, saturating to
 * +-448, NaN to 0x7f: engine/kv_fp8.c computes the same on the host) and
 * the exact widening of stored bytes to f16 or fp32 (every E4M3 value is
 * an f16 and an fp32 value: cvt to f16x2, then to fp32 where wanted), and
 * q for the f16 products with them.
 */
#ifndef TRAJBENCH_KN_FP8_CUH
#define TRAJBENCH_KN_FP8_CUH

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "kernels/kn_check.cuh"

static __device__ __forceinline__ uint8_t kn_f2e4m3(float f)
{
	return (uint8_t)__nv_cvt_float_to_fp8(f, __NV_SATFINITE, __NV_E4M3);
}

/* Two E4M3 values (the lower byte first, as in memory) as fp32. */
static __device__ __forceinline__ float2 kn_e4m3x2_to_f2(uint16_t v)
{
	__half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)v, __NV_E4M3);

	return __half22float2(__half2(h));
}

/* Two E4M3 values as an f16x2 word (the lower half first), exactly: one
 * cvt, where bf16 would take three more (through fp32). */
static __device__ __forceinline__ uint32_t kn_e4m3x2_to_f16x2(uint16_t v)
{
	__half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)v, __NV_E4M3);

	return (uint32_t)h.x | ((uint32_t)h.y << 16);
}

/* Eight E4M3 values (8 bytes) as eight f16 (16 bytes). */
static __device__ __forceinline__ uint4 kn_e4m3x8_to_f16x8(uint2 v)
{
	return make_uint4(kn_e4m3x2_to_f16x2((uint16_t)v.x), kn_e4m3x2_to_f16x2((uint16_t)(v.x >> 16)),
			  kn_e4m3x2_to_f16x2((uint16_t)v.y), kn_e4m3x2_to_f16x2((uint16_t)(v.y >> 16)));
}

/* The tensor-core kernels multiply q by KN_F8_Q_SCALE as they turn it
 * from bf16 into f16 for the f16 products with E4M3 pages (and divide
 * the scores by it): f16 then holds |q| up to 2^24, exactly from 2^-6. */
#define KN_F8_Q_SCALE 0.00390625f

/* A bf16x2 word of q as f16x2 times KN_F8_Q_SCALE. */
static __device__ __forceinline__ uint32_t kn_q_bf16x2_to_f16x2(uint32_t w)
{
	__half2 h = __floats2half2_rn(__uint_as_float(w << 16) * KN_F8_Q_SCALE,
				      __uint_as_float(w & 0xffff0000u) * KN_F8_Q_SCALE);

	return *(uint32_t *)&h;
}

#endif
