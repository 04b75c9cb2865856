/*
 * embed.cu: token embedding gather, bf16 table rows into the fp32
 * residual stream.  One block per row; ids out of range give zero rows
 * (the batch check upstream makes that unreachable from the engine).
 */
#include "kernels/kn_check.cuh"

static __global__ void embed_kernel(float *x, const uint16_t *table, const int32_t *ids,
				    int hidden, int vocab)
{
	kn_pdl_enter();
	int r = blockIdx.x, id = ids[r];
	float *xr = x + (size_t)r * hidden;
	const uint16_t *tr = table + (size_t)id * hidden;

	for (int i = threadIdx.x; i < hidden; i += blockDim.x)
		xr[i] = (id >= 0 && id < vocab) ? kn_bf2f(tr[i]) : 0.0f;
}

static int launch_embed(float *x, const uint16_t *table, const int32_t *ids, int n_rows,
			int hidden, int vocab, cudaStream_t s)
{
	KN_LAUNCH(embed_kernel, n_rows, 256, 0, s, x, table, ids, hidden, vocab);
	KN_LAUNCHED();
	return 0;
}

extern "C" int kn_embed(float *x, const uint16_t *table, const int32_t *ids, int n_rows,
			int hidden, int vocab, kn_stream s)
{
	KN_REQUIRE(x && table && ids);
	KN_REQUIRE(n_rows >= 1 && hidden >= 1 && vocab >= 1);
	return launch_embed(x, table, ids, n_rows, hidden, vocab, s);
}
