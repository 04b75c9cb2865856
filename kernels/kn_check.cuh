/*
 * kn_check.cuh: what every kernel source shares: the one check macro for
 * CUDA and cuBLAS calls, argument checks, and bf16 conversions.
 *
 * KN_CHECK(call) evaluates a cudaError_t or cublasStatus_t call; on
 * failure it records "call: message (file:line)" as this thread's last
 * error and returns KN_E_DEVICE from the enclosing function.  KN_LAUNCHED()
 * goes after every kernel launch (cudaGetLastError).  KN_REQUIRE(cond)
 * returns KN_E_INVALID naming the failed condition.
 */
#ifndef TRAJBENCH_KN_CHECK_CUH
#define TRAJBENCH_KN_CHECK_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/kn.h"

/* Records the failure; returns code. */
int kn_fail(int code, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static inline int kn_status(cudaError_t e, const char *call, const char *file, int line)
{
	if (e == cudaSuccess)
		return 0;
	return kn_fail(KN_E_DEVICE, file, line, "%s: %s (%s)", call, cudaGetErrorString(e),
		       cudaGetErrorName(e));
}

static inline int kn_status(cublasStatus_t e, const char *call, const char *file, int line)
{
	if (e == CUBLAS_STATUS_SUCCESS)
		return 0;
	return kn_fail(KN_E_DEVICE, file, line, "%s: %s", call, cublasGetStatusString(e));
}

#define KN_CHECK(call)                                                           \
	do {                                                                     \
		int kn_rc_ = kn_status((call), #call, __FILE__, __LINE__);       \
		if (kn_rc_)                                                      \
			return kn_rc_;                                           \
	} while (0)

#define KN_LAUNCHED() KN_CHECK(cudaGetLastError())

#define KN_REQUIRE(cond)                                                         \
	do {                                                                     \
		if (!(cond))                                                     \
			return kn_fail(KN_E_INVALID, __FILE__, __LINE__,         \
				       "invalid argument: %s", #cond);           \
	} while (0)

/* Kernel launch with programmatic dependent launch allowed (kn_set_pdl):
 * every kernel launched so starts with kn_pdl_enter(), which waits until
 * the previous kernel of the stream has finished and its writes are
 * visible, then lets the next kernel be scheduled.  Waiting first in
 * every block of every such kernel keeps the order transitive: a kernel
 * cannot finish before its predecessor has. */
template <typename... KArgs, typename... Args>
static inline cudaError_t kn_launch(void (*kernel)(KArgs...), dim3 grid, dim3 block,
				    size_t smem, cudaStream_t s, Args... args)
{
	cudaLaunchConfig_t cfg = {};
	cudaLaunchAttribute at[1];

	cfg.gridDim = grid;
	cfg.blockDim = block;
	cfg.dynamicSmemBytes = smem;
	cfg.stream = s;
	at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
	at[0].val.programmaticStreamSerializationAllowed = kn_pdl();
	cfg.attrs = at;
	cfg.numAttrs = 1;
	return cudaLaunchKernelEx(&cfg, kernel, ((KArgs)args)...);
}

static __device__ __forceinline__ void kn_pdl_enter(void)
{
	asm volatile("griddepcontrol.wait;\n" ::: "memory");
	asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
}

#define KN_LAUNCH(kernel, grid, block, smem, s, ...) \
	KN_CHECK(kn_launch(kernel, grid, block, smem, s, __VA_ARGS__))

static __device__ __forceinline__ float kn_bf2f(uint16_t h)
{
	return __uint_as_float((unsigned)h << 16);
}

/* Round to nearest even, NaN kept quiet: matches eng_f32_to_bf16. */
static __device__ __forceinline__ uint16_t kn_f2bf(float f)
{
	return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

/* silu(a) * b in bf16 (SwiGLU), as engine/backend_cpu.c computes it. */
static __device__ __forceinline__ uint16_t kn_silu_mul_bf(float a, float b)
{
	return kn_f2bf(a / (1.0f + expf(-a)) * b);
}

static __device__ __forceinline__ float kn_warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

static __device__ __forceinline__ float kn_warp_max(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

/* Element i of the random tensor of seed: a splitmix64 hash of (seed,
 * i) mapped to a uniform in [-sqrt(3), sqrt(3)) (unit variance), so that
 * the value does not depend on the launch shape (kn_fill_random_* and the
 * sharded slices of kn_fill_slice_* agree element for element). */
static __device__ __forceinline__ float kn_unit_uniform(uint64_t seed, size_t i)
{
	uint64_t z = seed + 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return ((float)(z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * 1.7320508f;
}

/* Sum over a block of blockDim.x (a multiple of 32, <= 1024) threads;
 * every thread gets the total.  red: 32 floats of shared memory. */
static __device__ __forceinline__ float kn_block_sum(float v, float *red)
{
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;

	v = kn_warp_sum(v);
	__syncthreads();
	if (lane == 0)
		red[warp] = v;
	__syncthreads();
	v = lane < nw ? red[lane] : 0.0f;
	return kn_warp_sum(v);
}

static __device__ __forceinline__ float kn_block_max(float v, float *red)
{
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;

	v = kn_warp_max(v);
	__syncthreads();
	if (lane == 0)
		red[warp] = v;
	__syncthreads();
	v = lane < nw ? red[lane] : -INFINITY;
	return kn_warp_max(v);
}

#endif
