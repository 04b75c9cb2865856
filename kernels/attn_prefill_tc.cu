/*
 * attn_prefill_tc.cu: paged causal GQA attention for prefill / extend
 * chunks on the tensor cores (mma.sync m16n8k16, bf16 in, fp32
 * accumulate), flash-style: scores, online softmax and P V stay in
 * registers, keys and values pass through shared memory 64 at a time.
 *
 * A block takes one tile (up to PF_ROWS / group consecutive rows of one
 * sequence) and one KV head; its PF_ROWS query rows are the (token, q
 * head of the group) pairs, PF_MT * 16 per warp, so that each K/V tile
 * loaded serves the whole group and each K/V fragment read serves PF_MT
 * row tiles (shared-memory reads, not the tensor cores, bound the
 * one-tile-per-warp form).  Fragment layouts are those of the PTX ISA for
 * m16n8k16: lane (g = lane / 4, t = lane % 4) holds rows g and g + 8,
 * columns 2t, 2t + 1 (+ 8); a score tile's accumulators are reused
 * directly as the A operand of P V.  The query rows wait in shared memory
 * (in registers they would not leave room for two row tiles); Q's A
 * operands and K's and V's B operands come by ldmatrix (V's transposed);
 * the row padding of 8 bf16 keeps those loads free of bank conflicts.
 * Tiles are copied by cp.async into a ring of buffers, the block table
 * read a tile ahead; the causal mask is applied only on tiles that cross
 * a row's position.
 *
 * Takes head_dim 16, 32, 64 or 128 (a register array per lane of
 * head_dim / 2 fp32 outputs); other shapes use kn_attn_prefill.  At a 4k
 * prompt on the H100 it runs at about 205 TFLOP/s (180 with one row tile
 * a warp); on Hopper, bf16 pages of head_dim 64 and 128 go to the wgmma
 * kernel instead (attn_prefill_wg.cu), FP8 pages and other head dims
 * stay here.
 *
 * FP8 E4M3 pages (F8): the ring copies their bytes and widens each tile
 * to one f16 tile (kn_attn.cuh), a pass over shared memory and one more
 * barrier a tile; the products are f16 (the query rows turned to f16
 * times KN_F8_Q_SCALE in shared memory once, probabilities packed as
 * f16); the KV head's k_scale (over KN_F8_Q_SCALE) goes into the softmax
 * scale and its v_scale into the final normalization.
 *
 * Split-K over the keys (SPLIT, kn_attn_prefill_tc_split): a short
 * extend chunk on a long cached prefix has few tiles, so one block per
 * (tile, KV head) leaves most multiprocessors idle while each block walks
 * the whole prefix (on the H100, 570 new tokens of Qwen2.5-7B on ~10k
 * cached ones: 128 blocks for 132 SMs).  Block z then takes split z of
 * the keys, [z split_len, (z + 1) split_len) (the last split everything
 * after), and leaves each of its rows' running max (natural-log domain,
 * as the decode kernels'), sum and unnormalized output (times the V
 * scale) in a partial; kn_attn_reduce_splits (attention.cu) combines the
 * splits.  A row whose causal range misses the split keeps max -inf, sum
 * 0 and zeros through the masked softmax, and a block with no keys at all
 * writes that directly, so the reduce reads every split without a
 * branch.  Without SPLIT the kernel is the one-pass kernel it was.
 */
#include "kernels/kn_attn.cuh"

/* Warps per block: each warp takes PF_MT m16 row tiles, so that every K/V
 * fragment read from shared memory feeds PF_MT products; PF_ROWS query
 * rows share each K/V tile, which passes through a ring of PF_STAGES
 * shared-memory buffers. */
#define PF_WARPS 4
#define PF_MT 2
#define PF_STAGES 2
#define PF_THREADS (PF_WARPS * 32)
#define PF_ROWS (PF_WARPS * PF_MT * 16)

static_assert(TC_KT == KN_ATTN_TC_SPLIT, "split_len granularity is the key tile");

/* The warp's PF_MT x 16 x TC_KT scores S = Q K^T (unscaled); Q's A
 * operands and K's B operands come from shared memory by ldmatrix, K's
 * two k-steps at a time (lane: key row lane % 8, dims 8 (lane / 8) on
 * from the k-step pair), Q's (lane: row lane % 16, dims 8 (lane / 16) on). */
template <int HD, bool F16>
static __device__ __forceinline__ void pf_scores(float s[PF_MT][TC_KT / 8][4], const uint16_t *Qw,
						 const uint16_t *Ks, int lane)
{
	const int LD = HD + 8;
	const uint16_t *kl = Ks + (lane & 7) * LD + (lane >> 3) * 8;
	const uint16_t *ql = Qw + (lane & 15) * LD + (lane >> 4) * 8;

#pragma unroll
	for (int mt = 0; mt < PF_MT; mt++)
#pragma unroll
		for (int nt = 0; nt < TC_KT / 8; nt++)
			s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
	/* k-steps outside: consecutive mmas feed independent accumulators */
#pragma unroll
	for (int ks = 0; ks < HD / 16; ks += 2) {
		uint32_t qa[PF_MT][2][4];

#pragma unroll
		for (int mt = 0; mt < PF_MT; mt++) {
			ldsm_x4(qa[mt][0], ql + mt * 16 * LD + ks * 16);
			if (ks + 1 < HD / 16)
				ldsm_x4(qa[mt][1], ql + mt * 16 * LD + ks * 16 + 16);
		}
#pragma unroll
		for (int nt = 0; nt < TC_KT / 8; nt++) {
			uint32_t b[4];

			ldsm_x4(b, kl + nt * 8 * LD + ks * 16);
#pragma unroll
			for (int mt = 0; mt < PF_MT; mt++) {
				mma_t<F16>(s[mt][nt], qa[mt][0], b[0], b[1]);
				if (ks + 1 < HD / 16)
					mma_t<F16>(s[mt][nt], qa[mt][1], b[2], b[3]);
			}
		}
	}
}

/* o += P V; V's B operands from ldmatrix.trans, two 8-dim tiles per
 * load (lane: key row 8 (lane / 8 % 2) + lane % 8, dims 8 (lane / 16) on). */
template <int HD, bool F16>
static __device__ __forceinline__ void pf_pv(float o[PF_MT][HD / 8][4],
					     const float s[PF_MT][TC_KT / 8][4], const uint16_t *Vs,
					     int lane)
{
	const int LD = HD + 8;
	const uint16_t *vl = Vs + (((lane >> 3) & 1) * 8 + (lane & 7)) * LD + (lane >> 4) * 8;

#pragma unroll
	for (int j = 0; j < TC_KT / 16; j++) {
		uint32_t pa[PF_MT][4];

#pragma unroll
		for (int mt = 0; mt < PF_MT; mt++) {
			pa[mt][0] = pack_t<F16>(s[mt][2 * j][0], s[mt][2 * j][1]);
			pa[mt][1] = pack_t<F16>(s[mt][2 * j][2], s[mt][2 * j][3]);
			pa[mt][2] = pack_t<F16>(s[mt][2 * j + 1][0], s[mt][2 * j + 1][1]);
			pa[mt][3] = pack_t<F16>(s[mt][2 * j + 1][2], s[mt][2 * j + 1][3]);
		}
#pragma unroll
		for (int nt = 0; nt < HD / 8; nt += 2) {
			uint32_t b[4];

			ldsm_x4_trans(b, vl + 16 * j * LD + nt * 8);
#pragma unroll
			for (int mt = 0; mt < PF_MT; mt++) {
				mma_t<F16>(o[mt][nt], pa[mt], b[0], b[1]);
				mma_t<F16>(o[mt][nt + 1], pa[mt], b[2], b[3]);
			}
		}
	}
}

/* Starts the copy of the block's query rows into Qs (PF_ROWS, HD + 8)
 * bf16, zeros past nq; the caller commits and waits. */
template <int HD>
static __device__ __forceinline__ void pf_q_issue(const struct kn_attn_args &a, int G, int row0,
						  int nq, int kvh, uint16_t *Qs)
{
	const int CH = HD / 8;

#pragma unroll
	for (int c = 0; c < PF_ROWS * CH / PF_THREADS; c++) {
		int idx = threadIdx.x + c * PF_THREADS, r = idx / CH, d = (idx - r * CH) * 8;
		const uint16_t *src = a.q + (size_t)(row0 + r / G) * a.n_heads * HD +
				      (size_t)(kvh * G + r % G) * HD + d;

		cp_async16(Qs + r * (HD + 8) + d, r < nq ? src : a.q, r < nq ? 16 : 0);
	}
}

/* The query rows in Qs (PF_ROWS, HD + 8), bf16, turned in place to f16
 * times KN_F8_Q_SCALE for the products with E4M3 pages: once every
 * thread's copies of them are in (waited for, then a barrier); the first
 * ring step's barrier orders the writes before any warp reads them. */
template <int HD>
static __device__ __forceinline__ void pf_q_to_f16(uint16_t *Qs)
{
	const int W = HD / 2;   /* words of a row */

	cp_async_wait<0>();
	__syncthreads();
#pragma unroll
	for (int c = 0; c < PF_ROWS * W / PF_THREADS; c++) {
		int idx = threadIdx.x + c * PF_THREADS, r = idx / W, w = idx - r * W;
		uint32_t *p = (uint32_t *)(Qs + r * (HD + 8)) + w;

		*p = kn_q_bf16x2_to_f16x2(*p);
	}
}

/* Online softmax of the warp's rows over one tile, the outputs rescaled
 * where a running max moved (seldom, once the first keys are in). */
template <int HD>
static __device__ __forceinline__ void pf_update(float s[PF_MT][TC_KT / 8][4],
						 float o[PF_MT][HD / 8][4], const int pos[PF_MT][2],
						 int k0, int t, float s2, float m[PF_MT][2],
						 float l[PF_MT][2])
{
#pragma unroll
	for (int mt = 0; mt < PF_MT; mt++) {
		float al = tc_softmax_log2<TC_KT>(s[mt], 0, pos[mt][0], k0, t, s2, m[mt][0], l[mt][0]);
		float ah = tc_softmax_log2<TC_KT>(s[mt], 2, pos[mt][1], k0, t, s2, m[mt][1], l[mt][1]);

		if (al != 1.0f || ah != 1.0f)
			tc_rescale<HD / 8>(o[mt], al, ah);
	}
}

/* Tiles run last first: the causally longest ones start in the first wave.
 * The query rows and K/V tile 0 arrive in the first copy group; K/V tiles
 * go through a ring of PF_STAGES buffers (tc_ring_step): the copies of the
 * next PF_STAGES - 1 tiles fly while one is computed.  SPLIT: block z
 * takes split z of the keys (gridDim.z splits of split_len) and writes
 * partials (tile, KV head, split) into partial. */
template <int HD, bool F8, bool SPLIT>
static __global__ void __launch_bounds__(PF_THREADS)
	attn_tc_kernel(const struct kn_attn_args a, int G, int split_len, float *partial)
{
	kn_pdl_enter();
	extern __shared__ __align__(16) uint16_t tc_smem[];
	const int TILE = TC_KT * (HD + 8);
	uint16_t *Qs = tc_smem + tc_ring_u16<HD, PF_STAGES, F8>();
	int tile = gridDim.x - 1 - blockIdx.x, kvh = blockIdx.y, sp = blockIdx.z;
	int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
	int w_row = (threadIdx.x >> 5) * PF_MT * 16;
	int row0 = a.tile_row0[tile], nq = a.tile_n[tile] * G;
	int ctx = a.pos[row0 + a.tile_n[tile] - 1] + 1, pos[PF_MT][2];
	/* the split's keys [kb, ke): multiples of TC_KT apart, so a tile
	 * never reaches past ke but at ctx, where the causal mask covers it */
	int kb = SPLIT ? sp * split_len : 0;
	int ke = SPLIT && sp < (int)gridDim.z - 1 ? min(ctx, kb + split_len) : ctx;
	float *pp = SPLIT ? partial + (((size_t)tile * a.n_kv + kvh) * gridDim.z + sp) *
					      PF_ROWS * (HD + 2)
			  : NULL;
	const int32_t *bt = a.block_tables + a.bt_off[row0];
	/* scores of f16 q (times KN_F8_Q_SCALE) need k_scale / KN_F8_Q_SCALE */
	float ks = F8 ? a.k_scale[kvh] / KN_F8_Q_SCALE : 1.0f, vs = F8 ? a.v_scale[kvh] : 1.0f;
	float s2 = KN_LOG2E * ks / sqrtf((float)HD), m[PF_MT][2], l[PF_MT][2];
	float o[PF_MT][HD / 8][4], s[PF_MT][TC_KT / 8][4];
	int n_kt = (ke - kb + TC_KT - 1) / TC_KT;
	int shift = tc_page_shift(a.page_size), pg[tc_chunks<HD, PF_THREADS, F8>()];

	if (SPLIT && kb >= ke) {   /* block-uniform: no barrier is skipped by part of it */
		tc_store_empty<HD, PF_THREADS>(pp, nq);
		return;
	}
	pf_q_issue<HD>(a, G, row0, nq, kvh, Qs);
	tc_ring_prime<HD, PF_THREADS, PF_STAGES, F8>(a, bt, shift, kvh, kb, ke, tc_smem, pg);
#pragma unroll
	for (int mt = 0; mt < PF_MT; mt++) {
#pragma unroll
		for (int e = 0; e < 2; e++) {
			int r = w_row + mt * 16 + g + 8 * e;

			pos[mt][e] = r < nq ? a.pos[row0 + r / G] : -1;
			m[mt][e] = -INFINITY;
			l[mt][e] = 0.0f;
		}
#pragma unroll
		for (int nt = 0; nt < HD / 8; nt++)
			o[mt][nt][0] = o[mt][nt][1] = o[mt][nt][2] = o[mt][nt][3] = 0.0f;
	}
	if constexpr (F8)
		pf_q_to_f16<HD>(Qs);
	for (int i = 0; i < n_kt; i++) {
		int k0 = kb + i * TC_KT;
		uint16_t *Ks = tc_ring_step<HD, PF_THREADS, PF_STAGES, F8>(a, bt, shift, kvh, i, k0,
									 ke, tc_smem, pg);
		uint16_t *Vs = Ks + TILE;

		pf_scores<HD, F8>(s, Qs + w_row * (HD + 8), Ks, lane);
		pf_update<HD>(s, o, pos, k0, t, s2, m, l);
		pf_pv<HD, F8>(o, s, Vs, lane);
	}
#pragma unroll
	for (int mt = 0; mt < PF_MT; mt++) {
		int r = w_row + mt * 16 + g;

		if constexpr (SPLIT) {
			tc_store_partial<HD>(pp, nq, r, t, m[mt][0], l[mt][0], o[mt], 0, vs);
			tc_store_partial<HD>(pp, nq, r + 8, t, m[mt][1], l[mt][1], o[mt], 2, vs);
		} else {
			tc_store_rows<HD>(a, G, row0, nq, kvh, r, t, l[mt][0], o[mt], 0, vs);
			tc_store_rows<HD>(a, G, row0, nq, kvh, r + 8, t, l[mt][1], o[mt], 2, vs);
		}
	}
}

/* The kernel over (tiles, KV heads, splits), then (SPLIT) the reduce of
 * the splits into out. */
template <int HD, bool F8, bool SPLIT>
static int launch_tc(const struct kn_attn_args *a, int n_splits, int split_len, float *partial,
		     cudaStream_t s)
{
	size_t smem = (tc_ring_u16<HD, PF_STAGES, F8>() + (size_t)PF_ROWS * (HD + 8)) *
		      sizeof(uint16_t);
	dim3 grid(a->n_tiles, a->n_kv, n_splits);
	int G = a->n_heads / a->n_kv;

	if (smem > 48 * 1024)
		KN_CHECK(cudaFuncSetAttribute(attn_tc_kernel<HD, F8, SPLIT>,
					      cudaFuncAttributeMaxDynamicSharedMemorySize,
					      (int)smem));
	KN_LAUNCH(attn_tc_kernel<HD, F8, SPLIT>, grid, PF_THREADS, smem, s, *a, G, split_len,
		  partial);
	KN_LAUNCHED();
	return SPLIT ? kn_attn_reduce_splits(a, n_splits, PF_ROWS, PF_ROWS / G, partial, s) : 0;
}

template <int HD>
static int launch_tc_kv(const struct kn_attn_args *a, int n_splits, int split_len,
			float *partial, cudaStream_t s)
{
	bool f8 = a->kv_dtype == KN_KV_FP8_E4M3;

	if (n_splits == 1)
		return f8 ? launch_tc<HD, true, false>(a, 1, 0, NULL, s)
			  : launch_tc<HD, false, false>(a, 1, 0, NULL, s);
	return f8 ? launch_tc<HD, true, true>(a, n_splits, split_len, partial, s)
		  : launch_tc<HD, false, true>(a, n_splits, split_len, partial, s);
}

extern "C" int kn_attn_tc_tile_rows(int n_heads, int n_kv, int head_dim)
{
	if (head_dim != 16 && head_dim != 32 && head_dim != 64 && head_dim != 128)
		return 0;
	if (n_kv < 1 || n_heads < n_kv || n_heads % n_kv || n_heads / n_kv > PF_ROWS)
		return 0;
	return PF_ROWS / (n_heads / n_kv);
}

extern "C" size_t kn_attn_prefill_tc_partial_floats(int n_tiles, int n_kv, int head_dim,
						    int n_splits)
{
	return (size_t)n_tiles * n_kv * n_splits * PF_ROWS * (head_dim + 2);
}

extern "C" int kn_attn_prefill_tc_split(const struct kn_attn_args *a, int n_splits, int split_len,
				       float *partial, kn_stream s)
{
	KN_REQUIRE(a && a->out && a->q && a->k_cache && a->v_cache && a->block_tables);
	KN_REQUIRE(a->pos && a->bt_off && a->tile_row0 && a->tile_n);
	KN_REQUIRE(a->n_tiles >= 1 && a->n_tiles <= 0x7fffffff && a->page_size >= 1);
	KN_REQUIRE(a->n_kv <= 65535);
	KN_REQUIRE(kn_attn_tc_tile_rows(a->n_heads, a->n_kv, a->head_dim) >= 1);
	KN_REQUIRE(a->kv_dtype == KN_KV_BF16 ||
		   (a->kv_dtype == KN_KV_FP8_E4M3 && a->k_scale && a->v_scale));
	KN_REQUIRE(n_splits >= 1 && n_splits <= 65535);
	/* the reduce's grid: a block column per (tile, KV head) */
	KN_REQUIRE(n_splits == 1 ||
		   (partial && split_len >= TC_KT && split_len % TC_KT == 0 &&
		    (size_t)a->n_tiles * a->n_kv <= 0x7fffffff));
	switch (a->head_dim) {
	case 16:
		return launch_tc_kv<16>(a, n_splits, split_len, partial, s);
	case 32:
		return launch_tc_kv<32>(a, n_splits, split_len, partial, s);
	case 64:
		return launch_tc_kv<64>(a, n_splits, split_len, partial, s);
	default:
		return launch_tc_kv<128>(a, n_splits, split_len, partial, s);
	}
}

extern "C" int kn_attn_prefill_tc(const struct kn_attn_args *a, kn_stream s)
{
	return kn_attn_prefill_tc_split(a, 1, 0, NULL, s);
}
