/*
 * attn_prefill_wg.cu: the prefill / extend attention of attn_prefill_tc.cu
 * on Hopper's warpgroup products (wgmma.mma_async, sm_90a), for bf16
 * pages and head_dim 64 or 128; FP8 pages and other head dims stay on the
 * mma.sync kernel.  Same arguments, tiles (up to 128 rows: (token, q head
 * of the group) pairs), causal early exit, last-tile-first order, split
 * semantics and partial layout (kn_attn_prefill_tc_partial_floats,
 * reduced by kn_attn_reduce_splits) as kn_attn_prefill_tc_split.
 *
 * A block of two warpgroups (256 threads) takes one tile and one KV head;
 * warpgroup w owns rows [64 w, 64 w + 64).  Keys come WG_KT = 128 at a
 * time through a ring of WG_STAGES = 3 slots in shared memory, copied by
 * every thread with cp.async (the pages of a tile are any size, so no
 * TMA), the block table read a tile ahead.  Per tile, per warpgroup:
 *   S = Q K^T   8 (4) wgmma m64n128k16, A and B from shared memory;
 *   softmax     online, in registers on S's fp32 accumulators, log2
 *               domain (log2 e / sqrt(head_dim) folded into the exp2's
 *               fma), the mask applied only on tiles that reach past a
 *               row's last key;
 *   O += P V    8 wgmma m64n{HD}k16, A = P from registers (bf16), B = V
 *               from shared memory.
 * The products of tile j - 1's P V run while tile j's softmax does (the
 * order is S_j, P V_(j-1), wait for S_j, softmax, wait for P V_(j-1),
 * rescale O): the slot of tile j - 1 must then outlive the start of tile
 * j, so with three slots the copy of tile j + 1 flies while tile j is
 * computed.  Registers a thread: S 64, O HD / 2, P 32 (bf16 pairs).
 *
 * Shared-memory layouts (PTX ISA, "Shared Memory Matrix Layout"; the one
 * CUTLASS calls Swizzle<3,4,3> over 128-byte rows): every tile, Q (128
 * rows), K and V (128 keys), is stored as HD / 64 column blocks of 64
 * elements; in a block, row r takes the 128 bytes at r * 128, its 16-byte
 * chunk c at chunk c ^ (r % 8).  Each block starts 1024-byte aligned, so
 * the hardware's swizzle (address bits 4-6 XOR bits 7-9) is that one and
 * the descriptors' base offset is 0.  Descriptors (64 bits): start
 * address >> 4 in bits 0-13, leading byte offset >> 4 in 16-29, stride
 * byte offset >> 4 in 32-45, base offset 49-51, swizzle mode in 62-63
 * (1: 128 bytes).
 *   Q as A, K as B of S = Q K^T: both K-major (the reduced dim, head_dim,
 *     is contiguous): core matrices of 8 rows x 16 bytes, 8-row groups
 *     1024 bytes apart (stride offset); the leading offset is unused with
 *     a 128-byte swizzle (set to 16).  k-step ks (16 dims) starts at
 *     column block ks / 4, byte 32 (ks % 4) of the row: the hardware
 *     swizzles the address it forms, so stepping the start address inside
 *     the 128-byte row is right.
 *   V as B of P V: V is (key, dim) with dims contiguous, i.e. N-major for
 *     B (K = keys): the transpose flag (imm-trans-b 1, bf16 only) with the
 *     MN-major layout: 64 dims (128 bytes) a row, 8 keys (rows) a core
 *     group, groups 1024 bytes apart (stride offset), the next 64 dims
 *     WG_KT * 128 bytes on (leading offset).  k-step kk (16 keys) starts
 *     at key 16 kk.
 * Shared memory written by cp.async (the generic proxy) is read by wgmma
 * through the async proxy: each thread fences (fence.proxy.async) after
 * its copies land and before the barrier that hands the tile over.
 *
 * Fragments (PTX ISA, wgmma m64nNk16 with fp32 accumulators): warp w of a
 * warpgroup holds rows 16 w + g and 16 w + g + 8 (g = lane / 4, t = lane
 * % 4); d[i][0..1] are row 16 w + g, columns 8 i + 2 t, + 1, d[i][2..3]
 * the same columns of row + 8 (the m16n8 accumulator, repeated over N).
 * The bf16 A fragment from registers is the same map on 16 columns: a[0]
 * (row, k 2t..), a[1] (row + 8, k 2t..), a[2] (row, k 2t + 8..), a[3]
 * (row + 8, k 2t + 8..), so S's accumulators of keys 16 kk..16 kk + 15
 * pack straight into the A operand of k-step kk of P V.
 *
 * Synchronization: wgmma.fence before the products of a tile (S's and O's
 * registers were written by the softmax and the rescale), a commit group
 * for S and one for P V, wait_group 1 (S done) before the softmax and 0
 * before O and P are touched again; the ring's barrier (every thread past
 * its wait 0 of the tile before) frees the slot of tile j - 2 for tile j
 * + 1.
 *
 * Resource use (nvcc 13, -Xptxas -v, sm_90a): head_dim 128: 210 registers
 * (204 with splits), head_dim 64: 166 (164), no spills, no wgmma
 * serialization; 225 KiB of shared memory at head_dim 128 (Q 32, three
 * slots of 64, 1 of alignment slack), 113 at 64: one block a
 * multiprocessor.  Built for another arch, the kernel is a trap and
 * kn_attn_prefill_wg_ok says no.
 *
 * The helpers both forms use are in kn_wgmma.cuh; the warp-specialized
 * form, a producer warpgroup feeding two consumers, in attn_prefill_wg2.cu.
 */
#include "kernels/kn_wgmma.cuh"

#define WG_STAGES 3
#define WG_THREADS 256  /* two warpgroups */

/* Bytes of dynamic shared memory: Q, the ring of (K, V) slots, and 1024
 * bytes of slack to align the whole to 1024 (the swizzle's period). */
template <int HD>
static __host__ __device__ constexpr size_t wg_smem_bytes()
{
	return 1024 + (size_t)WG_ROWS * HD * 2 + (size_t)WG_STAGES * 2 * WG_KT * HD * 2;
}

/* The value of WG_BUILT in the image loaded for the device, read by the
 * host (kn_attn_prefill_wg_ok). */
static __device__ int wg_built = WG_BUILT;

/* 16-byte chunks of a K (or V) tile each thread copies. */
template <int HD>
static __host__ __device__ constexpr int wg_chunks()
{
	return WG_KT * (HD / 8) / WG_THREADS;
}

/* The pages of the keys whose chunks this thread copies of the tile at
 * k0 (-1 past ke), read a tile ahead of the copy. */
template <int HD>
static __device__ __forceinline__ void wg_pages(const struct kn_attn_args &a, const int32_t *bt,
						int shift, int k0, int ke, int (&pg)[wg_chunks<HD>()])
{
#pragma unroll
	for (int c = 0; c < wg_chunks<HD>(); c++) {
		int key = k0 + (threadIdx.x + c * WG_THREADS) / (HD / 8);

		pg[c] = key < ke ? bt[tc_page(key, shift, a.page_size)] : -1;
	}
}

/* Starts the copy of keys [k0, k0 + WG_KT) of KV head kvh from pages pg
 * into the slot at Ks (K, then V WG_KT HD bf16 later), swizzled; zeros
 * where pg is -1.  The caller commits. */
template <int HD>
static __device__ __forceinline__ void wg_kv_issue(const struct kn_attn_args &a,
						   const int (&pg)[wg_chunks<HD>()], int shift,
						   int kvh, int k0, uint8_t *Ks)
{
	const int CH = HD / 8;
	uint8_t *Vs = Ks + WG_KT * HD * 2;

#pragma unroll
	for (int c = 0; c < wg_chunks<HD>(); c++) {
		int idx = threadIdx.x + c * WG_THREADS, j = idx / CH, ch = idx - j * CH, key = k0 + j;
		int in_page = key - tc_page(key, shift, a.page_size) * a.page_size;
		size_t slot = pg[c] >= 0 ? (size_t)pg[c] * a.page_size + in_page : 0;
		size_t off = ((slot * a.n_kv + kvh) * HD + ch * 8) * 2;
		uint32_t so = wg_sw<WG_KT>(j, ch);

		cp_async16(Ks + so, (const char *)a.k_cache + off, pg[c] >= 0 ? 16 : 0);
		cp_async16(Vs + so, (const char *)a.v_cache + off, pg[c] >= 0 ? 16 : 0);
	}
}

/* Starts the copy of the block's query rows into Qs (WG_ROWS rows,
 * swizzled), zeros past nq.  The caller commits. */
template <int HD>
static __device__ __forceinline__ void wg_q_issue(const struct kn_attn_args &a, int G, int row0,
						  int nq, int kvh, uint8_t *Qs)
{
	const int CH = HD / 8;

#pragma unroll
	for (int c = 0; c < WG_ROWS * CH / WG_THREADS; c++) {
		int idx = threadIdx.x + c * WG_THREADS, r = idx / CH, ch = idx - r * CH;
		const uint16_t *src = a.q + (size_t)(row0 + r / G) * a.n_heads * HD +
				      (size_t)(kvh * G + r % G) * HD + ch * 8;

		cp_async16(Qs + wg_sw<WG_ROWS>(r, ch), r < nq ? src : a.q, r < nq ? 16 : 0);
	}
}

/* Tiles run last first: the causally longest ones start in the first wave.
 * SPLIT: block z takes split z of the keys (gridDim.z splits of
 * split_len, a multiple of 64, so a split's last tile may reach past its
 * end: those keys are masked as the causal ones are) and writes partials
 * (tile, KV head, split) into partial. */
template <int HD, bool SPLIT>
static __global__ void __launch_bounds__(WG_THREADS, 1)
	attn_wg_kernel(const struct kn_attn_args a, int G, int split_len, float *partial)
{
	kn_pdl_enter();
#if WG_BUILT
	extern __shared__ __align__(16) uint8_t wg_raw[];
	uint8_t *Qs = wg_raw + ((1024 - (wg_u32(wg_raw) & 1023)) & 1023);
	uint8_t *ring = Qs + WG_ROWS * HD * 2;
	const int SLOT = 2 * WG_KT * HD * 2;   /* bytes: K, then V */
	int tile = gridDim.x - 1 - blockIdx.x, kvh = blockIdx.y, sp = blockIdx.z;
	int wg = threadIdx.x >> 7, lane = threadIdx.x & 31, t = lane & 3;
	int r_lo = wg * 64 + ((threadIdx.x >> 5) & 3) * 16 + (lane >> 2);
	int row0 = a.tile_row0[tile], nq = a.tile_n[tile] * G;
	int ctx = a.pos[row0 + a.tile_n[tile] - 1] + 1;
	int kb = SPLIT ? sp * split_len : 0;
	int ke = SPLIT && sp < (int)gridDim.z - 1 ? min(ctx, kb + split_len) : ctx;
	float *pp = SPLIT ? partial + (((size_t)tile * a.n_kv + kvh) * gridDim.z + sp) *
					      WG_ROWS * (HD + 2)
			  : NULL;
	const int32_t *bt = a.block_tables + a.bt_off[row0];
	float s2 = KN_LOG2E / sqrtf((float)HD), m[2], l[2];
	float o[HD / 8][4], s[WG_KT / 8][4];
	uint32_t p[WG_KT / 16][4];
	int n_kt = (ke - kb + WG_KT - 1) / WG_KT, lim[2];
	int shift = tc_page_shift(a.page_size), pg[wg_chunks<HD>()];
	uint32_t qa = wg_u32(Qs) + wg * 64 * 128, ra = wg_u32(ring);

	if (SPLIT && kb >= ke) {   /* block-uniform: no barrier is skipped by part of it */
		tc_store_empty<HD, WG_THREADS>(pp, nq);
		return;
	}
	wg_q_issue<HD>(a, G, row0, nq, kvh, Qs);
	wg_pages<HD>(a, bt, shift, kb, ke, pg);
	wg_kv_issue<HD>(a, pg, shift, kvh, kb, ring);
	cp_async_commit();
	if (n_kt > 1)
		wg_pages<HD>(a, bt, shift, kb + WG_KT, ke, pg);
	wg_rows_begin<HD>(a, G, row0, nq, r_lo, ke, lim, m, l, o, p);
	for (int j = 0; j < n_kt; j++) {
		int k0 = kb + j * WG_KT;

		/* tile j in and every warpgroup past P V of tile j - 2 */
		cp_async_wait<0>();
		wg_fence_proxy();
		__syncthreads();
		if (j + 1 < n_kt)
			wg_kv_issue<HD>(a, pg, shift, kvh, k0 + WG_KT,
					ring + (j + 1) % WG_STAGES * SLOT);
		cp_async_commit();
		if (j + 2 < n_kt)
			wg_pages<HD>(a, bt, shift, k0 + 2 * WG_KT, ke, pg);
		wg_hold(s);
		wg_hold(o);
		wg_hold(p);
		wg_fence();
		wg_scores<HD>(s, qa, ra + j % WG_STAGES * SLOT);
		wg_commit();
		if (j > 0) {
			/* in its own block: ptxas wants the fence again */
			wg_fence();
			wg_pv<HD>(o, p, ra + (j - 1) % WG_STAGES * SLOT + WG_KT * HD * 2);
			wg_commit();
			wg_wait<1>();
		} else {
			wg_wait<0>();
		}
		wg_hold(s);
		float al = tc_softmax_log2<WG_KT>(s, 0, lim[0], k0, t, s2, m[0], l[0]);
		float ah = tc_softmax_log2<WG_KT>(s, 2, lim[1], k0, t, s2, m[1], l[1]);

		wg_wait<0>();
		wg_hold(o);
		wg_hold(p);
		tc_rescale<HD / 8>(o, al, ah);
		wg_pack_p(p, s);
	}
	wg_hold(o);
	wg_hold(p);
	wg_fence();
	wg_pv<HD>(o, p, ra + (n_kt - 1) % WG_STAGES * SLOT + WG_KT * HD * 2);
	wg_commit();
	wg_wait<0>();
	wg_hold(o);
	wg_rows_store<HD, SPLIT>(a, G, row0, nq, kvh, r_lo, t, m, l, o, pp);
#else
	__trap();   /* not built for sm_90a: kn_attn_prefill_wg_ok said no */
#endif
}

/* The kernel over (tiles, KV heads, splits), then (SPLIT) the reduce of
 * the splits into out. */
template <int HD, bool SPLIT>
static int launch_wg(const struct kn_attn_args *a, int n_splits, int split_len, float *partial,
		     cudaStream_t s)
{
	size_t smem = wg_smem_bytes<HD>();
	dim3 grid(a->n_tiles, a->n_kv, n_splits);
	int G = a->n_heads / a->n_kv;

	KN_CHECK(cudaFuncSetAttribute(attn_wg_kernel<HD, SPLIT>,
				      cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
	KN_LAUNCH(attn_wg_kernel<HD, SPLIT>, grid, WG_THREADS, smem, s, *a, G, split_len, partial);
	KN_LAUNCHED();
	return SPLIT ? kn_attn_reduce_splits(a, n_splits, WG_ROWS, WG_ROWS / G, partial, s) : 0;
}

/* Reads the device once (a synchronous copy): for setup, not per launch. */
extern "C" int kn_attn_prefill_wg_ok(int n_heads, int n_kv, int head_dim, int kv_dtype)
{
	int built = 0;

	if (!wg_shape_ok(n_heads, n_kv, head_dim, kv_dtype))
		return 0;
	/* fails where the device cannot load this image (not an sm_90):
	 * the error is cleared, so that no later check reports it */
	if (cudaMemcpyFromSymbol(&built, wg_built, sizeof(built)) != cudaSuccess) {
		(void)cudaGetLastError();
		return 0;
	}
	return built;
}

extern "C" int kn_attn_prefill_wg_split(const struct kn_attn_args *a, int n_splits, int split_len,
				       float *partial, kn_stream s)
{
	int rc = wg_args_ok(a, n_splits, split_len, partial);

	if (rc)
		return rc;
	if (a->head_dim == 64)
		return n_splits == 1 ? launch_wg<64, false>(a, 1, 0, NULL, s)
				     : launch_wg<64, true>(a, n_splits, split_len, partial, s);
	return n_splits == 1 ? launch_wg<128, false>(a, 1, 0, NULL, s)
			     : launch_wg<128, true>(a, n_splits, split_len, partial, s);
}
