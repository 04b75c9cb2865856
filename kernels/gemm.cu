/*
 * gemm.cu: bf16 matrix products through cuBLAS (cublasGemmEx), fp32
 * accumulation, for the projections and the LM head.
 *
 * Row-major y = x . w^T is column-major y^T = w^T(op T) . x^T, so the call
 * passes w as the transposed first operand: no copy, no layout change of
 * the weights as they come from HF files ((out, in) row-major).
 * The handle owns a 32 MiB workspace and is bound to one stream.
 */
#include <stdlib.h>

#include "kernels/kn_check.cuh"

#define KN_GEMM_WORKSPACE (32u << 20)

struct kn_gemm {
	cublasHandle_t h;
	void *ws;
};

static int gemm_init(struct kn_gemm *g, kn_stream s)
{
	KN_CHECK(cublasCreate(&g->h));
	KN_CHECK(cublasSetStream(g->h, s));
	KN_CHECK(cudaMalloc(&g->ws, KN_GEMM_WORKSPACE));
	KN_CHECK(cublasSetWorkspace(g->h, g->ws, KN_GEMM_WORKSPACE));
	KN_CHECK(cublasSetMathMode(g->h, CUBLAS_DEFAULT_MATH));
	return 0;
}

extern "C" int kn_gemm_create(struct kn_gemm **out, kn_stream s)
{
	struct kn_gemm *g = (struct kn_gemm *)calloc(1, sizeof(*g));
	int rc;

	*out = NULL;
	if (!g)
		return kn_fail(KN_E_DEVICE, __FILE__, __LINE__, "out of host memory");
	rc = gemm_init(g, s);
	if (rc) {
		kn_gemm_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

extern "C" void kn_gemm_free(struct kn_gemm *g)
{
	if (!g)
		return;
	if (g->h)
		cublasDestroy(g->h);
	if (g->ws)
		cudaFree(g->ws);
	free(g);
}

static int launch_gemm(cublasHandle_t h, void *y, cudaDataType_t yt, int ldy,
		       const uint16_t *x, const uint16_t *w, int m, int n, int k)
{
	const float one = 1.0f, zero = 0.0f;

	KN_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w, CUDA_R_16BF, k,
			      x, CUDA_R_16BF, k, &zero, y, yt, ldy, CUBLAS_COMPUTE_32F,
			      CUBLAS_GEMM_DEFAULT));
	return 0;
}

extern "C" int kn_gemm_bf16(struct kn_gemm *g, void *y, int y_f32, int ldy, const uint16_t *x,
			    const uint16_t *w, int m, int n, int k)
{
	KN_REQUIRE(g && y && x && w);
	KN_REQUIRE(m >= 1 && n >= 1 && k >= 1 && ldy >= n);
	return launch_gemm(g->h, y, y_f32 ? CUDA_R_32F : CUDA_R_16BF, ldy, x, w, m, n, k);
}
