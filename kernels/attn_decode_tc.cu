/*
 * attn_decode_tc.cu: paged GQA attention of single-token rows (decode) on
 * the tensor cores, split-K over the keys.
 *
 * A block takes one token, one KV head and one split of its keys; the
 * token's group of query heads (at most 16) are the rows of one m16n8k16
 * A operand, held by all four warps.  Keys go through shared memory 64 at
 * a time, all 128 threads copying (cp.async, a ring of DEC_STAGES
 * buffers: the next tiles' copies fly while one is computed), and warp w takes
 * keys 16w .. 16w + 15 of each tile with its own online softmax, its K
 * and V operands read with ldmatrix; at the end the four warps' states
 * are merged through shared memory into the output (one split) or a
 * partial that kn_attn_reduce_decode combines; a split past its row's
 * keys exits at once.  Decode is bound by the
 * bytes of the KV pages: the tensor cores only keep the arithmetic off the
 * critical path, which the fp32 kernel of attention.cu could not.
 *
 * Takes head_dim 16, 32, 64, 128 and at most 16 query heads per KV head.
 *
 * FP8 E4M3 pages (F8): the ring copies the pages' bytes (half the bytes
 * of bf16, so DEC_STAGES_F8 slots keep as many bytes in flight at less
 * shared memory: two blocks a multiprocessor still fit at head_dim 128)
 * and widens each tile to f16 (kn_attn.cuh); the products are f16 (q
 * turned to f16 times KN_F8_Q_SCALE once, probabilities packed as f16),
 * the KV head's k_scale (over KN_F8_Q_SCALE) multiplies the softmax
 * scale and its v_scale the output.
 */
#include "kernels/kn_attn.cuh"

#define DEC_ROWS 16
#define DEC_STAGES 3
#define DEC_STAGES_F8 4

/* Scores, softmax and P V of the warp's 16 keys of the tile at k0, in
 * bf16 or (F16) f16. */
template <int HD, bool F16>
static __device__ __forceinline__ void dec_tile(const uint32_t qf[HD / 16][4], const uint16_t *Ks,
						const uint16_t *Vs, int k0, int ke, int pos_lo,
						int pos_hi, float scale, float *m, float *l,
						float o[HD / 8][4])
{
	const int LD = HD + 8;
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, t = lane & 3;
	int kw = 16 * warp;
	float s[2][4];

	const uint16_t *kl = Ks + (kw + (lane & 7)) * LD + (lane >> 3) * 8;
	const uint16_t *vl = Vs + (kw + ((lane >> 3) & 1) * 8 + (lane & 7)) * LD + (lane >> 4) * 8;

#pragma unroll
	for (int nt = 0; nt < 2; nt++) {
		s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
		for (int ks = 0; ks < HD / 16; ks += 2) {
			uint32_t b[4];

			ldsm_x4(b, kl + nt * 8 * LD + ks * 16);
			mma_t<F16>(s[nt], qf[ks], b[0], b[1]);
			if (ks + 1 < HD / 16)
				mma_t<F16>(s[nt], qf[ks + 1], b[2], b[3]);
		}
	}
	float al = tc_softmax<2>(s, 0, pos_lo, k0 + kw, ke, t, scale, m[0], l[0]);
	float ah = tc_softmax<2>(s, 2, pos_hi, k0 + kw, ke, t, scale, m[1], l[1]);
	uint32_t pa[4] = { pack_t<F16>(s[0][0], s[0][1]), pack_t<F16>(s[0][2], s[0][3]),
			   pack_t<F16>(s[1][0], s[1][1]), pack_t<F16>(s[1][2], s[1][3]) };

	tc_rescale<HD / 8>(o, al, ah);
#pragma unroll
	for (int nt = 0; nt < HD / 8; nt += 2) {
		uint32_t b[4];

		ldsm_x4_trans(b, vl + nt * 8);
		mma_t<F16>(o[nt], pa, b[0], b[1]);
		mma_t<F16>(o[nt + 1], pa, b[2], b[3]);
	}
}

/* The four warps' (m, l, o) into shared memory: O (4, 16, HD), ML (4, 16, 2). */
template <int HD>
static __device__ void dec_spill(float *O, float *ML, const float *m, const float *l,
				 const float o[HD / 8][4])
{
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
	float *lo = O + (warp * DEC_ROWS + g) * HD + 2 * t, *hi = lo + 8 * HD;
	float l0 = l[0], l1 = l[1];

	l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
	l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
	l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
	l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
#pragma unroll
	for (int nt = 0; nt < HD / 8; nt++) {
		lo[nt * 8] = o[nt][0];
		lo[nt * 8 + 1] = o[nt][1];
		hi[nt * 8] = o[nt][2];
		hi[nt * 8 + 1] = o[nt][3];
	}
	if (t == 0) {
		ML[(warp * DEC_ROWS + g) * 2] = m[0];
		ML[(warp * DEC_ROWS + g) * 2 + 1] = l0;
		ML[(warp * DEC_ROWS + g + 8) * 2] = m[1];
		ML[(warp * DEC_ROWS + g + 8) * 2 + 1] = l1;
	}
}

/* The four warps' states merged, once every warp is done with the K/V
 * ring in smem, into the output (pp NULL: one split) or into the split's
 * partial pp (KN_ATTN_PARTIAL_ROWS rows of max, sum, HD outputs); the
 * outputs times vs (the V scale of an FP8 cache, else 1). */
template <int HD>
static __device__ void dec_combine(const struct kn_attn_args &a, float *smem, int G, int row0,
				   int nq, int kvh, const float *m, const float *l,
				   const float o[HD / 8][4], float vs, float *pp)
{
	float *O = smem, *ML = O + TC_WARPS * DEC_ROWS * HD;

	__syncthreads();
	dec_spill<HD>(O, ML, m, l, o);
	__syncthreads();
	for (int idx = threadIdx.x; idx < nq * HD; idx += blockDim.x) {
		int r = idx / HD, d = idx - r * HD;
		float M = -INFINITY, L = 0.0f, acc = 0.0f;

		for (int w = 0; w < TC_WARPS; w++)
			M = fmaxf(M, ML[(w * DEC_ROWS + r) * 2]);
		for (int w = 0; w < TC_WARPS; w++) {
			float mw = ML[(w * DEC_ROWS + r) * 2];

			if (mw == -INFINITY)
				continue;
			float e = expf(mw - M);

			L += ML[(w * DEC_ROWS + r) * 2 + 1] * e;
			acc += O[(w * DEC_ROWS + r) * HD + d] * e;
		}
		if (!pp) {
			a.out[(size_t)(row0 + r / G) * a.n_heads * HD + (size_t)(kvh * G + r % G) * HD + d] =
				kn_f2bf(L > 0.0f ? acc / L * vs : 0.0f);
			continue;
		}
		if (d == 0) {
			pp[r * (HD + 2)] = M;
			pp[r * (HD + 2) + 1] = L;
		}
		pp[r * (HD + 2) + 2 + d] = acc * vs;
	}
}

template <int HD, bool F8>
static __global__ void __launch_bounds__(TC_WARPS * 32)
	attn_dec_tc_kernel(const struct kn_attn_args a, int G, int n_splits, int split_len,
			   float *partial)
{
	const int STAGES = F8 ? DEC_STAGES_F8 : DEC_STAGES;
	kn_pdl_enter();
	extern __shared__ __align__(16) uint16_t dec_smem[];
	int tile = blockIdx.x, kvh = blockIdx.y, sp = blockIdx.z, lane = threadIdx.x & 31;
	int g = lane >> 2, t = lane & 3, row0 = a.tile_row0[tile], nq = a.tile_n[tile] * G;
	int ctx = a.pos[row0 + a.tile_n[tile] - 1] + 1;
	int kb, ke;
	int pos_lo = g < nq ? a.pos[row0 + g / G] : -1;
	int pos_hi = g + 8 < nq ? a.pos[row0 + (g + 8) / G] : -1;
	const int32_t *bt = a.block_tables + a.bt_off[row0];
	float m[2] = { -INFINITY, -INFINITY }, l[2] = { 0.0f, 0.0f }, o[HD / 8][4];
	uint32_t qf[HD / 16][4];
	int shift = tc_page_shift(a.page_size), pg[tc_chunks<HD, TC_WARPS * 32, F8>()];
	/* scores of f16 q (times KN_F8_Q_SCALE) need k_scale / KN_F8_Q_SCALE */
	float ks = F8 ? a.k_scale[kvh] / KN_F8_Q_SCALE : 1.0f, vs = F8 ? a.v_scale[kvh] : 1.0f;

	split_len = kn_launch_split_len(a, split_len);
	kn_split_range(split_len, ctx, n_splits, sp, kb, ke);
	if (kb >= ke)   /* past the row's keys (never split 0): no partial */
		return;
	tc_ring_prime<HD, TC_WARPS * 32, STAGES, F8>(a, bt, shift, kvh, kb, ke, dec_smem, pg);
	tc_load_q<HD>(a, G, row0, nq, kvh, g, t, qf);
	if constexpr (F8) {
#pragma unroll
		for (int ks = 0; ks < HD / 16; ks++)
#pragma unroll
			for (int e = 0; e < 4; e++)
				qf[ks][e] = kn_q_bf16x2_to_f16x2(qf[ks][e]);
	}
#pragma unroll
	for (int nt = 0; nt < HD / 8; nt++)
		o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.0f;
	for (int k0 = kb, i = 0; k0 < ke; k0 += TC_KT, i++) {
		uint16_t *Ks = tc_ring_step<HD, TC_WARPS * 32, STAGES, F8>(a, bt, shift, kvh, i, k0,
									   ke, dec_smem, pg);
		uint16_t *Vs = Ks + TC_KT * (HD + 8);

		dec_tile<HD, F8>(qf, Ks, Vs, k0, ke, pos_lo, pos_hi, ks / sqrtf((float)HD), m, l, o);
	}
	dec_combine<HD>(a, (float *)dec_smem, G, row0, nq, kvh, m, l, o, vs,
			n_splits == 1 ? NULL
				      : partial + ((size_t)(tile * a.n_kv + kvh) * n_splits + sp) *
							  KN_ATTN_PARTIAL_ROWS * (HD + 2));
}

template <int HD, bool F8>
static int launch_dec_tc(const struct kn_attn_args *a, int n_splits, int split_len,
			 float *partial, cudaStream_t s)
{
	size_t kv = sizeof(uint16_t) * tc_ring_u16<HD, F8 ? DEC_STAGES_F8 : DEC_STAGES, F8>();
	size_t merge = sizeof(float) * TC_WARPS * DEC_ROWS * (HD + 2);
	size_t smem = kv > merge ? kv : merge;
	dim3 grid(a->n_tiles, a->n_kv, n_splits);

	if (smem > 48 * 1024)
		KN_CHECK(cudaFuncSetAttribute(attn_dec_tc_kernel<HD, F8>,
					      cudaFuncAttributeMaxDynamicSharedMemorySize,
					      (int)smem));
	KN_LAUNCH(attn_dec_tc_kernel<HD, F8>, grid, TC_WARPS * 32, smem, s, *a,
		  a->n_heads / a->n_kv, n_splits, split_len, partial);
	KN_LAUNCHED();
	return n_splits == 1 ? 0 : kn_attn_reduce_decode(a, n_splits, split_len,
							 KN_ATTN_PARTIAL_ROWS, partial, s);
}

template <int HD>
static int launch_dec_tc_kv(const struct kn_attn_args *a, int n_splits, int split_len,
			    float *partial, cudaStream_t s)
{
	return a->kv_dtype == KN_KV_FP8_E4M3
		       ? launch_dec_tc<HD, true>(a, n_splits, split_len, partial, s)
		       : launch_dec_tc<HD, false>(a, n_splits, split_len, partial, s);
}

extern "C" int kn_attn_decode_tc_ok(int n_heads, int n_kv, int head_dim)
{
	return (head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128) &&
	       n_kv >= 1 && n_heads >= n_kv && n_heads % n_kv == 0 && n_heads / n_kv <= DEC_ROWS;
}

extern "C" int kn_attn_decode_tc(const struct kn_attn_args *a, int n_splits, int split_len,
				 float *partial, kn_stream s)
{
	KN_REQUIRE(a && a->out && a->q && a->k_cache && a->v_cache && a->block_tables);
	KN_REQUIRE(a->pos && a->bt_off && a->tile_row0 && a->tile_n);
	KN_REQUIRE(a->n_tiles >= 1 && a->page_size >= 1 && a->n_kv <= 65535);
	KN_REQUIRE(kn_attn_decode_tc_ok(a->n_heads, a->n_kv, a->head_dim));
	KN_REQUIRE(n_splits >= 1 && n_splits <= 65535 &&
		   (split_len == 0 || (split_len >= 32 && split_len % 32 == 0)));
	KN_REQUIRE(n_splits == 1 || partial);
	KN_REQUIRE(a->kv_dtype == KN_KV_BF16 ||
		   (a->kv_dtype == KN_KV_FP8_E4M3 && a->k_scale && a->v_scale));
	switch (a->head_dim) {
	case 16:
		return launch_dec_tc_kv<16>(a, n_splits, split_len, partial, s);
	case 32:
		return launch_dec_tc_kv<32>(a, n_splits, split_len, partial, s);
	case 64:
		return launch_dec_tc_kv<64>(a, n_splits, split_len, partial, s);
	default:
		return launch_dec_tc_kv<128>(a, n_splits, split_len, partial, s);
	}
}
