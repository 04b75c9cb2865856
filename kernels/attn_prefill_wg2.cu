/*
 * attn_prefill_wg2.cu: the wgmma prefill / extend attention of
 * attn_prefill_wg.cu in a warp-specialized form.
 *
 * kn_attn_prefill_wg2_split takes head_dim 128 (64 runs the first form);
 * it is the first form's loop fed another way, with every layout, product
 * and softmax helper shared (kn_wgmma.cuh).  The first form measured 272
 * TFLOP/s on the H100 on a 4k causal prompt of Qwen2.5-7B's shape: every thread copies (16
 * cp.async a tile with page-table math) and the block meets at a
 * __syncthreads and cp.async wait each tile, so its warpgroups run in
 * lockstep, stall on the copy of the tile they are about to use, have one
 * tile of copies in flight, and do their softmax at the same time, leaving
 * the tensor cores idle then.  Here a block of three warpgroups (384
 * threads) takes the same tile and KV head, with the same math, layouts,
 * descriptors and fragments as above:
 *   warpgroup 0, the producer (setmaxnreg down to 56 registers): copies K
 *     and V tiles with cp.async into a ring of WG2_STAGES = 3 slots
 *     (each a K and a V tile, swizzled as above; 224 KiB with Q), as far
 *     ahead as the ring allows.  Thread p copies chunk p % 16 of keys
 *     p / 16 + 8 c (a warp copies two whole 256-byte rows at a time); a
 *     lane looks up the cache slot of one key of its warp's 32 a tile, read
 *     a tile ahead, and shuffles it to the lanes that copy that key.  Then
 *     cp.async.mbarrier.arrive.noinc on the slot's full barrier: the
 *     arrival comes when the thread's copies have landed, nothing waits.
 *   warpgroups 1 and 2, the consumers c = 0, 1 (setmaxnreg up to 224):
 *     rows [64 c, 64 c + 64), each loading its own Q rows; the first
 *     form's loop per tile j, with waits on barriers for the ring.
 * 128 x 56 + 256 x 224 = 384 x 168, the registers the launch gives the
 * block (__launch_bounds__(384, 1): 65536 / 384 rounded down to 8): an
 * increase past what the decreases freed would never return.
 *
 * Barriers, per slot s (mbarriers in static shared memory, 8 bytes each):
 *   full_k[s], full_v[s]: count 128, one arrival per producer thread as
 *     its copies of the tile land: K and V apart, so that S = Q K^T starts
 *     before V is in;
 *   empty_k[s], empty_v[s]: count 8, lane 0 of each consumer warp after
 *     the wgmma.wait_group covering the products that read the tile (each
 *     warp's wait covers its own share of its warpgroup's product; K after
 *     S_j's wait, V after P V_j's, one tile later).
 * Tile j takes slot j % 3 in its (j / 3)-th use: the consumers wait on
 * full with parity (j / 3) & 1; the producer, before tile j >= 3, waits on
 * empty for the release of tile j - 3, parity (j / 3 - 1) & 1.  No phase
 * can run two ahead of its waiter: a slot's next fill waits for both
 * consumers' release of the last, and a release follows the wait on full.
 * The copies (generic proxy) reach wgmma (async proxy) through the full
 * barrier (release by the copies' completion, acquire by try_wait), then
 * each consumer thread's fence.proxy.async before the products
 * (wg2_writer_fence: the producer's own fence after waiting for its
 * copies, as the first form does, if that proves needed).
 *
 * Ping-pong: consumer c issues its products (S_j, then P V_(j-1): the
 * first form's order) only in its turn, named barrier WG2_TURN + c (ids 1,
 * 2; 256 threads: the other consumer's bar.arrive and its own bar.sync),
 * and hands the turn over right after issuing, before its waits and
 * softmax; consumer 1 arrives once at the start so that consumer 0 goes
 * first, and skips its last hand-over (consumer 0 has no round left to
 * take it): each barrier sees n_kt syncs and n_kt arrivals.  The tensor
 * cores then run one consumer's products while the other does its
 * softmax.  Q's own landing: named barriers WG2_QREADY + c (3, 4; 128).
 * The producer leaves once its copies have landed; the ring's last
 * arrivals on empty are never waited for.
 *
 * Why 3 slots of 128 keys: Q and three K and V slots fill the 227 KiB a
 * block may have; the producer is then up to two tiles ahead of the
 * products (a tile's 8.4 MFLOP take a multiprocessor ~2.5 us at 450
 * TFLOP/s; its 64 KiB come mostly from L2, where a prompt's K and V stay
 * while its tiles' blocks walk them).
 * Tiles of 64 keys with more slots would halve S's n (m64n64: the same
 * Q read from shared memory for half the product, more barrier traffic
 * per key) and double the softmax's fixed costs per key.
 *
 * Resource use (nvcc 13, -Xptxas -v, sm_90a): 168 registers at launch
 * (ptxas allots the producer's code 56 and the consumers' 224 after
 * setmaxnreg), no spills, with and without splits, no wgmma serialization;
 * 225 KiB of dynamic shared memory and 96 bytes of static (the barriers);
 * "16 barriers" (named barrier ids in registers): one block a
 * multiprocessor either way.
 */
#include "kernels/kn_wgmma.cuh"


#define WG2_THREADS 384      /* a producer warpgroup, two consumer warpgroups */
#define WG2_STAGES 3
#define WG2_PRODUCER_REGS 56
#define WG2_CONSUMER_REGS 224   /* 128 x 56 + 256 x 224 = 384 x 168, the launch's */
#define WG2_HD 128
#define WG2_TILE_BYTES (WG_KT * WG2_HD * 2)   /* a K or a V tile */
#define WG2_EMPTY_ARRIVALS 8 /* lane 0 of each consumer warp */

/* The block's mbarriers, WG2_STAGES each: the K and V tiles of a slot
 * landed (full, 128 arrivals: every producer thread's copies), and the
 * products reading them done (empty, WG2_EMPTY_ARRIVALS). */
enum { WG2_FULL_K, WG2_FULL_V, WG2_EMPTY_K, WG2_EMPTY_V, WG2_N_BARS };

/* Named barriers (0 is __syncthreads): the turn of consumer c to issue
 * its products is WG2_TURN + c, its own Q load's WG2_QREADY + c. */
#define WG2_TURN 1
#define WG2_QREADY 3

static __device__ __forceinline__ void wg2_bar_init(uint32_t bar, int count)
{
	asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

/* Arrives (release, CTA scope) on bar. */
static __device__ __forceinline__ void wg2_bar_arrive(uint32_t bar)
{
	asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

/* Arrives on bar once every cp.async this thread issued so far landed;
 * .noinc: the arrival is one of the count bar was made with. */
static __device__ __forceinline__ void wg2_bar_arrive_copies(uint32_t bar)
{
	asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar)
		     : "memory");
}

/* Waits (acquire, CTA scope) until the phase of bar of this parity has
 * completed. */
static __device__ __forceinline__ void wg2_bar_wait(uint32_t bar, uint32_t parity)
{
	uint32_t done;

	do {
		asm volatile("{\n.reg .pred p;\n"
			     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
			     "selp.u32 %0, 1, 0, p;\n}\n"
			     : "=r"(done)
			     : "r"(bar), "r"(parity)
			     : "memory");
	} while (!done);
}

static __device__ __forceinline__ void wg2_named_sync(int id, int n)
{
	asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}

static __device__ __forceinline__ void wg2_named_arrive(int id, int n)
{
	asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}

/* The cache slot of key (page slot * page_size + offset), -1 past ke. */
static __device__ __forceinline__ int wg2_slot(const struct kn_attn_args &a, const int32_t *bt,
					       int shift, int key, int ke)
{
	if (key >= ke)
		return -1;
	int pg = tc_page(key, shift, a.page_size);

	return bt[pg] * a.page_size + key - pg * a.page_size;
}

/* Starts the copy of one K or V tile (cache at src) into dst, swizzled:
 * thread p of the producer warpgroup copies chunk p % 16 of the tile's
 * keys p / 16 + 8 c (c < 16), so that a warp's copy c reads two whole
 * 256-byte rows; the cache slots of the warp's 32 keys are one a lane
 * (slot: lane L holds key 2 w + L % 2 + 8 (L / 2) of warp w), shuffled to
 * the lanes that copy them.  Zeros past ke (slot -1). */
static __device__ __forceinline__ void wg2_issue(const void *src, int n_kv, int kvh, int slot,
						 uint8_t *dst)
{
	int lane = threadIdx.x & 31, h = lane >> 4, ch = lane & 15;
	int j0 = ((threadIdx.x >> 5) << 1) + h;

#pragma unroll
	for (int c = 0; c < 16; c++) {
		int sl = __shfl_sync(0xffffffffu, slot, h + 2 * c);
		size_t off = (((size_t)(sl >= 0 ? sl : 0) * n_kv + kvh) * WG2_HD + ch * 8) * 2;

		cp_async16(dst + wg_sw<WG_KT>(j0 + 8 * c, ch), (const char *)src + off,
			   sl >= 0 ? 16 : 0);
	}
}

/* Whether the producer fences its own copies (waits for them, then
 * fence.proxy.async, then arrives) instead of arriving as they land and
 * leaving the proxy fence to the consumers after their wait.  The copies
 * of one tile at a time then fly, as in the first form; kept as the
 * ordering the first form proved on the device, should the consumers'
 * fence not order the copies before wgmma's reads there. */
static constexpr bool wg2_writer_fence = false;

/* Hands the tile just issued to the consumers through its full barrier. */
static __device__ __forceinline__ void wg2_issued(uint32_t full)
{
	if constexpr (wg2_writer_fence) {
		asm volatile("cp.async.wait_all;\n" ::: "memory");
		wg_fence_proxy();
		wg2_bar_arrive(full);
	} else {
		wg2_bar_arrive_copies(full);
	}
}

/* The producer warpgroup: the K and V tiles of the block's keys [kb, ke)
 * into the ring, each after the consumers freed its slot; the block table
 * read a tile ahead.  bars: the shared address of the mbarriers. */
static __device__ __forceinline__ void wg2_produce(const struct kn_attn_args &a, const int32_t *bt,
						   int kvh, int kb, int ke, int n_kt, uint8_t *ring,
						   uint32_t bars)
{
	int lane = threadIdx.x & 31, shift = tc_page_shift(a.page_size);
	int mine = ((threadIdx.x >> 5) << 1) + (lane & 1) + 8 * (lane >> 1);
	int next = wg2_slot(a, bt, shift, kb + mine, ke);

	for (int j = 0; j < n_kt; j++) {
		int s = j % WG2_STAGES, slot = next;
		/* the phase of the slot's empty barriers that tile j - STAGES completed */
		uint32_t ph = (j / WG2_STAGES - 1) & 1;
		uint8_t *Ks = ring + s * 2 * WG2_TILE_BYTES;

		if (j + 1 < n_kt)
			next = wg2_slot(a, bt, shift, kb + (j + 1) * WG_KT + mine, ke);
		if (j >= WG2_STAGES)
			wg2_bar_wait(bars + (WG2_EMPTY_K * WG2_STAGES + s) * 8, ph);
		wg2_issue(a.k_cache, a.n_kv, kvh, slot, Ks);
		wg2_issued(bars + (WG2_FULL_K * WG2_STAGES + s) * 8);
		if (j >= WG2_STAGES)
			wg2_bar_wait(bars + (WG2_EMPTY_V * WG2_STAGES + s) * 8, ph);
		wg2_issue(a.v_cache, a.n_kv, kvh, slot, Ks + WG2_TILE_BYTES);
		wg2_issued(bars + (WG2_FULL_V * WG2_STAGES + s) * 8);
	}
	/* no copy outlives its thread */
	asm volatile("cp.async.wait_all;\n" ::: "memory");
}

/* Consumer c's 64 query rows into Qs (rows 64 c.., swizzled), zeros past
 * nq; landed and visible to wgmma when it returns. */
static __device__ __forceinline__ void wg2_load_q(const struct kn_attn_args &a, int G, int row0,
						  int nq, int kvh, int c, uint8_t *Qs)
{
	const int CH = WG2_HD / 8;
	int tid = threadIdx.x & 127;

#pragma unroll
	for (int i = 0; i < 64 * CH / 128; i++) {
		int idx = tid + i * 128, r = 64 * c + idx / CH, ch = idx % CH;
		const uint16_t *src = a.q + (size_t)(row0 + r / G) * a.n_heads * WG2_HD +
				      (size_t)(kvh * G + r % G) * WG2_HD + ch * 8;

		cp_async16(Qs + wg_sw<WG_ROWS>(r, ch), r < nq ? src : a.q, r < nq ? 16 : 0);
	}
	asm volatile("cp.async.wait_all;\n" ::: "memory");
	wg_fence_proxy();
	wg2_named_sync(WG2_QREADY + c, 128);
}

/* Lane 0 of each warp of a consumer frees its part of a slot's tile
 * (after the wait_group that covers the products reading it: a warp's
 * wait covers its own share of the warpgroup's product). */
static __device__ __forceinline__ void wg2_release(uint32_t bar)
{
	if ((threadIdx.x & 31) == 0)
		wg2_bar_arrive(bar);
}

/* A consumer warpgroup (c = 0, 1: rows [64 c, 64 c + 64)): the loop of
 * the first form, its tiles taken from the ring by the full barriers and
 * handed back by the empty ones, its products issued in turns with the
 * other consumer's. */
template <bool SPLIT>
static __device__ __forceinline__ void wg2_consume(const struct kn_attn_args &a, int G, int tile,
						   int kvh, int kb, int ke, int n_kt, float *pp,
						   uint8_t *Qs, uint8_t *ring, uint32_t bars)
{
	const int HD = WG2_HD;
	int c = (threadIdx.x >> 7) - 1, lane = threadIdx.x & 31, t = lane & 3;
	int r_lo = c * 64 + ((threadIdx.x >> 5) & 3) * 16 + (lane >> 2);
	int row0 = a.tile_row0[tile], nq = a.tile_n[tile] * G;
	float s2 = KN_LOG2E / sqrtf((float)HD), m[2], l[2];
	float o[HD / 8][4], s[WG_KT / 8][4];
	uint32_t p[WG_KT / 16][4];
	uint32_t qa = wg_u32(Qs) + c * 64 * 128, ra = wg_u32(ring);
	const uint32_t SLOT = 2 * WG2_TILE_BYTES;
	int lim[2];

	wg2_load_q(a, G, row0, nq, kvh, c, Qs);
	wg_rows_begin<HD>(a, G, row0, nq, r_lo, ke, lim, m, l, o, p);
	/* consumer 0 issues first: its turn barrier gets consumer 1's arrival */
	if (c == 1)
		wg2_named_arrive(WG2_TURN + 0, 256);
	for (int j = 0; j < n_kt; j++) {
		int k0 = kb + j * WG_KT, sj = j % WG2_STAGES, sv = (j + WG2_STAGES - 1) % WG2_STAGES;

		wg2_bar_wait(bars + (WG2_FULL_K * WG2_STAGES + sj) * 8, (j / WG2_STAGES) & 1);
		if (j > 0)
			wg2_bar_wait(bars + (WG2_FULL_V * WG2_STAGES + sv) * 8,
				     ((j - 1) / WG2_STAGES) & 1);
		/* the copies (generic proxy) seen through the barriers, before
		 * wgmma reads them (async proxy) */
		wg_fence_proxy();
		wg2_named_sync(WG2_TURN + c, 256);
		wg_hold(s);
		wg_hold(o);
		wg_hold(p);
		wg_fence();
		wg_scores<HD>(s, qa, ra + sj * SLOT);
		wg_commit();
		/* the other consumer's turn; consumer 1's last arrival would
		 * have no round of consumer 0 to meet */
		if (j > 0) {
			wg_fence();
			wg_pv<HD>(o, p, ra + sv * SLOT + WG2_TILE_BYTES);
			wg_commit();
			if (c == 0 || j + 1 < n_kt)
				wg2_named_arrive(WG2_TURN + 1 - c, 256);
			wg_wait<1>();
		} else {
			if (c == 0 || j + 1 < n_kt)
				wg2_named_arrive(WG2_TURN + 1 - c, 256);
			wg_wait<0>();
		}
		wg_hold(s);
		wg2_release(bars + (WG2_EMPTY_K * WG2_STAGES + sj) * 8);
		float al = tc_softmax_log2<WG_KT>(s, 0, lim[0], k0, t, s2, m[0], l[0]);
		float ah = tc_softmax_log2<WG_KT>(s, 2, lim[1], k0, t, s2, m[1], l[1]);

		wg_wait<0>();
		wg_hold(o);
		wg_hold(p);
		if (j > 0)
			wg2_release(bars + (WG2_EMPTY_V * WG2_STAGES + sv) * 8);
		tc_rescale<HD / 8>(o, al, ah);
		wg_pack_p(p, s);
	}
	int sl = (n_kt - 1) % WG2_STAGES;

	wg2_bar_wait(bars + (WG2_FULL_V * WG2_STAGES + sl) * 8, ((n_kt - 1) / WG2_STAGES) & 1);
	wg_fence_proxy();
	wg_hold(o);
	wg_hold(p);
	wg_fence();
	wg_pv<HD>(o, p, ra + sl * SLOT + WG2_TILE_BYTES);
	wg_commit();
	wg_wait<0>();
	wg_hold(o);
	wg_rows_store<HD, SPLIT>(a, G, row0, nq, kvh, r_lo, t, m, l, o, pp);
}

template <bool SPLIT>
static __global__ void __launch_bounds__(WG2_THREADS, 1)
	attn_wg2_kernel(const struct kn_attn_args a, int G, int split_len, float *partial)
{
	kn_pdl_enter();
#if WG_BUILT
	extern __shared__ __align__(16) uint8_t wg_raw[];
	__shared__ __align__(8) uint64_t wg2_bars[WG2_N_BARS * WG2_STAGES];
	uint8_t *Qs = wg_raw + ((1024 - (wg_u32(wg_raw) & 1023)) & 1023);
	uint8_t *ring = Qs + WG_ROWS * WG2_HD * 2;
	uint32_t bars = wg_u32(wg2_bars);
	int tile = gridDim.x - 1 - blockIdx.x, kvh = blockIdx.y, sp = blockIdx.z;
	int row0 = a.tile_row0[tile], nq = a.tile_n[tile] * G;
	int ctx = a.pos[row0 + a.tile_n[tile] - 1] + 1;
	int kb = SPLIT ? sp * split_len : 0;
	int ke = SPLIT && sp < (int)gridDim.z - 1 ? min(ctx, kb + split_len) : ctx;
	int n_kt = (ke - kb + WG_KT - 1) / WG_KT;
	float *pp = SPLIT ? partial + (((size_t)tile * a.n_kv + kvh) * gridDim.z + sp) *
					      WG_ROWS * (WG2_HD + 2)
			  : NULL;

	if (SPLIT && kb >= ke) {   /* block-uniform, before any barrier */
		tc_store_empty<WG2_HD, WG2_THREADS>(pp, nq);
		return;
	}
	if (threadIdx.x < WG2_N_BARS * WG2_STAGES)
		wg2_bar_init(bars + threadIdx.x * 8,
			     threadIdx.x < WG2_EMPTY_K * WG2_STAGES ? 128 : WG2_EMPTY_ARRIVALS);
	__syncthreads();
	/* warpgroup-uniform branches: setmaxnreg is .sync.aligned */
	if (threadIdx.x < 128) {
		asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(WG2_PRODUCER_REGS));
		wg2_produce(a, a.block_tables + a.bt_off[row0], kvh, kb, ke, n_kt, ring, bars);
	} else {
		asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(WG2_CONSUMER_REGS));
		wg2_consume<SPLIT>(a, G, tile, kvh, kb, ke, n_kt, pp, Qs, ring, bars);
	}
#else
	__trap();   /* not built for sm_90a: kn_attn_prefill_wg_ok said no */
#endif
}

static __host__ constexpr size_t wg2_smem_bytes()
{
	return 1024 + (size_t)WG_ROWS * WG2_HD * 2 + (size_t)WG2_STAGES * 2 * WG2_TILE_BYTES;
}

template <bool SPLIT>
static int launch_wg2(const struct kn_attn_args *a, int n_splits, int split_len, float *partial,
		      cudaStream_t s)
{
	size_t smem = wg2_smem_bytes();
	dim3 grid(a->n_tiles, a->n_kv, n_splits);
	int G = a->n_heads / a->n_kv;

	KN_CHECK(cudaFuncSetAttribute(attn_wg2_kernel<SPLIT>,
				      cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
	KN_LAUNCH(attn_wg2_kernel<SPLIT>, grid, WG2_THREADS, smem, s, *a, G, split_len, partial);
	KN_LAUNCHED();
	return SPLIT ? kn_attn_reduce_splits(a, n_splits, WG_ROWS, WG_ROWS / G, partial, s) : 0;
}

/* The warp-specialized form at head_dim 128; head_dim 64 stays on the
 * first one (its ring of 64-dim tiles is half the size, the copies half
 * the work: the first form's lockstep costs it less). */
extern "C" int kn_attn_prefill_wg2_split(const struct kn_attn_args *a, int n_splits,
					 int split_len, float *partial, kn_stream s)
{
	int rc = wg_args_ok(a, n_splits, split_len, partial);

	if (rc)
		return rc;
	if (a->head_dim != WG2_HD)
		return kn_attn_prefill_wg_split(a, n_splits, split_len, partial, s);
	return n_splits == 1 ? launch_wg2<false>(a, 1, 0, NULL, s)
			     : launch_wg2<true>(a, n_splits, split_len, partial, s);
}
