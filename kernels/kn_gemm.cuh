/*
 * kn_gemm.cuh: the GEMM handle, shared by the bf16 products (gemm.cu) and
 * the FP8 ones (gemm_fp8.cu).
 */
#ifndef TRAJBENCH_KN_GEMM_CUH
#define TRAJBENCH_KN_GEMM_CUH

#include <cublasLt.h>

#include "kernels/kn_check.cuh"

#define KN_GEMM_WORKSPACE (32u << 20)

#define KN_LT_PLANS 16

/* One FP8 product shape as cuBLASLt runs it: its descriptors and the
 * algorithm the heuristic picked. */
struct kn_lt_plan {
	int m, n, k, ldy, y_f32;
	cublasLtMatmulDesc_t op;
	cublasLtMatrixLayout_t a, b, d;
	cublasLtMatmulAlgo_t algo;
};

struct kn_gemm {
	cublasHandle_t h;
	cublasLtHandle_t lt;
	void *ws;   /* KN_GEMM_WORKSPACE bytes, both libraries' */
	cudaStream_t s;
	cudaEvent_t e0, e1;
	struct kn_lt_plan plans[KN_LT_PLANS];
	int n_plans, next_plan;
	int fp8_ok;   /* the device does FP8 products: 0 not asked yet, 1 yes, -1 no */
};

/* Frees g's cuBLASLt plans (gemm_fp8.cu). */
extern "C" void kn_gemm_fp8_forget(struct kn_gemm *g);

#endif
