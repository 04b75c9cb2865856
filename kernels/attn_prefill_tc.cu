/*
 * attn_prefill_tc.cu: paged causal GQA attention for prefill / extend
 * chunks on the tensor cores (mma.sync m16n8k16, bf16 in, fp32
 * accumulate), flash-style: scores, online softmax and P V stay in
 * registers, keys and values pass through shared memory 64 at a time.
 *
 * A block takes one tile (up to 64 / group consecutive rows of one
 * sequence) and one KV head; its 64 query rows are the (token, q head of
 * the group) pairs, 16 per warp, so each K/V tile loaded serves the whole
 * group.  Fragment layouts are those of the PTX ISA for m16n8k16: lane
 * (g = lane / 4, t = lane % 4) holds rows g and g + 8, columns 2t, 2t + 1
 * (+ 8); a score tile's accumulators are reused directly as the A operand
 * of P V.  V's B operand is gathered from shared memory with 16-bit
 * loads (rows 2t, 2t + 1 of a key block); the row padding of 8 bf16 keeps
 * those loads and the K loads free of bank conflicts.
 *
 * Takes head_dim 16, 32, 64 or 128 (a register array per lane of
 * head_dim / 2 fp32 outputs); other shapes use kn_attn_prefill.  Single
 * stage, no cp.async pipelining or wgmma yet.
 */
#include "kernels/kn_attn.cuh"

/* The warp's 16 x TC_KT scores S = Q K^T (unscaled). */
template <int HD>
static __device__ __forceinline__ void tc_scores(float s[TC_KT / 8][4],
						 const uint32_t qf[HD / 16][4], const uint16_t *Ks,
						 int g, int t)
{
	const int LD = HD + 8;

#pragma unroll
	for (int nt = 0; nt < TC_KT / 8; nt++) {
		s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
		for (int ks = 0; ks < HD / 16; ks++) {
			const uint16_t *kp = Ks + (nt * 8 + g) * LD + ks * 16 + 2 * t;

			mma16816(s[nt], qf[ks], ld32(kp), ld32(kp + 8));
		}
	}
}

/* o += P V for the warp's 16 rows. */
template <int HD>
static __device__ __forceinline__ void tc_pv(float o[HD / 8][4], const float s[TC_KT / 8][4],
					     const uint16_t *Vs, int g, int t)
{
	const int LD = HD + 8;

#pragma unroll
	for (int j = 0; j < TC_KT / 16; j++) {
		uint32_t pa[4] = {
			pack_bf16(s[2 * j][0], s[2 * j][1]), pack_bf16(s[2 * j][2], s[2 * j][3]),
			pack_bf16(s[2 * j + 1][0], s[2 * j + 1][1]),
			pack_bf16(s[2 * j + 1][2], s[2 * j + 1][3]),
		};
		const uint16_t *v0 = Vs + (16 * j + 2 * t) * LD + g;

#pragma unroll
		for (int nt = 0; nt < HD / 8; nt++) {
			const uint16_t *v = v0 + nt * 8;

			mma16816(o[nt], pa, pack_u16(v[0], v[LD]), pack_u16(v[8 * LD], v[9 * LD]));
		}
	}
}

/* Normalized bf16 rows out; lanes of a quad first pool their sums. */
template <int HD>
static __device__ void tc_store(const struct kn_attn_args &a, int G, int row0, int nq, int kvh,
				int r, int t, float l, const float o[HD / 8][4], int e)
{
	l += __shfl_xor_sync(0xffffffffu, l, 1);
	l += __shfl_xor_sync(0xffffffffu, l, 2);
	if (r >= nq)
		return;
	float inv = l > 0.0f ? 1.0f / l : 0.0f;
	uint16_t *out = a.out + (size_t)(row0 + r / G) * a.n_heads * HD +
			(size_t)(kvh * G + r % G) * HD + 2 * t;

#pragma unroll
	for (int nt = 0; nt < HD / 8; nt++)
		*(uint32_t *)(out + nt * 8) = pack_bf16(o[nt][e] * inv, o[nt][e + 1] * inv);
}

template <int HD>
static __global__ void __launch_bounds__(TC_WARPS * 32) attn_tc_kernel(const struct kn_attn_args a,
								       int G)
{
	extern __shared__ __align__(16) uint16_t tc_smem[];
	uint16_t *Ks = tc_smem, *Vs = tc_smem + TC_KT * (HD + 8);
	int tile = blockIdx.x, kvh = blockIdx.y, lane = threadIdx.x & 31;
	int g = lane >> 2, t = lane & 3, r_lo = (threadIdx.x >> 5) * 16 + g;
	int row0 = a.tile_row0[tile], nq = a.tile_n[tile] * G;
	int ctx = a.pos[row0 + a.tile_n[tile] - 1] + 1;
	int pos_lo = r_lo < nq ? a.pos[row0 + r_lo / G] : -1;
	int pos_hi = r_lo + 8 < nq ? a.pos[row0 + (r_lo + 8) / G] : -1;
	const int32_t *bt = a.block_tables + a.bt_off[row0];
	float scale = 1.0f / sqrtf((float)HD), m_lo = -INFINITY, m_hi = -INFINITY;
	float l_lo = 0.0f, l_hi = 0.0f, o[HD / 8][4], s[TC_KT / 8][4];
	uint32_t qf[HD / 16][4];

	tc_load_q<HD>(a, G, row0, nq, kvh, r_lo, g, t, qf);
#pragma unroll
	for (int nt = 0; nt < HD / 8; nt++)
		o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.0f;
	for (int k0 = 0; k0 < ctx; k0 += TC_KT) {
		__syncthreads();
		tc_load_kv<HD>(a, bt, kvh, k0, ctx, Ks, Vs);
		__syncthreads();
		tc_scores<HD>(s, qf, Ks, g, t);
		float al = tc_softmax<TC_KT / 8>(s, 0, pos_lo, k0, ctx, t, scale, m_lo, l_lo);
		float ah = tc_softmax<TC_KT / 8>(s, 2, pos_hi, k0, ctx, t, scale, m_hi, l_hi);

#pragma unroll
		for (int nt = 0; nt < HD / 8; nt++) {
			o[nt][0] *= al;
			o[nt][1] *= al;
			o[nt][2] *= ah;
			o[nt][3] *= ah;
		}
		tc_pv<HD>(o, s, Vs, g, t);
	}
	tc_store<HD>(a, G, row0, nq, kvh, r_lo, t, l_lo, o, 0);
	tc_store<HD>(a, G, row0, nq, kvh, r_lo + 8, t, l_hi, o, 2);
}

template <int HD>
static int launch_tc(const struct kn_attn_args *a, cudaStream_t s)
{
	size_t smem = 2 * (size_t)TC_KT * (HD + 8) * sizeof(uint16_t);
	dim3 grid(a->n_tiles, a->n_kv);

	if (smem > 48 * 1024)
		KN_CHECK(cudaFuncSetAttribute(attn_tc_kernel<HD>,
					      cudaFuncAttributeMaxDynamicSharedMemorySize,
					      (int)smem));
	attn_tc_kernel<HD><<<grid, TC_WARPS * 32, smem, s>>>(*a, a->n_heads / a->n_kv);
	KN_LAUNCHED();
	return 0;
}

extern "C" int kn_attn_tc_tile_rows(int n_heads, int n_kv, int head_dim)
{
	if (head_dim != 16 && head_dim != 32 && head_dim != 64 && head_dim != 128)
		return 0;
	if (n_kv < 1 || n_heads < n_kv || n_heads % n_kv || n_heads / n_kv > TC_ROWS)
		return 0;
	return TC_ROWS / (n_heads / n_kv);
}

extern "C" int kn_attn_prefill_tc(const struct kn_attn_args *a, kn_stream s)
{
	KN_REQUIRE(a && a->out && a->q && a->k_cache && a->v_cache && a->block_tables);
	KN_REQUIRE(a->pos && a->bt_off && a->tile_row0 && a->tile_n);
	KN_REQUIRE(a->n_tiles >= 1 && a->n_tiles <= 0x7fffffff && a->page_size >= 1);
	KN_REQUIRE(a->n_kv <= 65535);
	KN_REQUIRE(kn_attn_tc_tile_rows(a->n_heads, a->n_kv, a->head_dim) >= 1);
	switch (a->head_dim) {
	case 16:
		return launch_tc<16>(a, s);
	case 32:
		return launch_tc<32>(a, s);
	case 64:
		return launch_tc<64>(a, s);
	default:
		return launch_tc<128>(a, s);
	}
}
