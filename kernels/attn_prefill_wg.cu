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
 * The warp-specialized form (kn_attn_prefill_wg2_split, head_dim 128; 64
 * runs the first form), in this file because it is the first form's loop
 * fed another way: it shares every layout, product and softmax helper.  The first form measured 272 TFLOP/s on the H100
 * on a 4k causal prompt of Qwen2.5-7B's shape: every thread copies (16
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
#include "kernels/kn_attn.cuh"

#define WG_ROWS 128     /* query rows a block: the mma.sync kernel's PF_ROWS */
#define WG_KT 128       /* keys a tile: S is m64n128 */
#define WG_STAGES 3
#define WG_THREADS 256  /* two warpgroups */
#define WG_LOG2E 1.4426950408889634f
#define WG_LN2 0.6931471805599453f

/* Bytes of dynamic shared memory: Q, the ring of (K, V) slots, and 1024
 * bytes of slack to align the whole to 1024 (the swizzle's period). */
template <int HD>
static __host__ __device__ constexpr size_t wg_smem_bytes()
{
	return 1024 + (size_t)WG_ROWS * HD * 2 + (size_t)WG_STAGES * 2 * WG_KT * HD * 2;
}

/* 1 where this file's kernels were built with wgmma (sm_90a): the host
 * reads the value of the image loaded for the device. */
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define WG_BUILT 1
#else
#define WG_BUILT 0
#endif
static __device__ int wg_built = WG_BUILT;

static __device__ __forceinline__ uint32_t wg_u32(const void *p)
{
	return (uint32_t)__cvta_generic_to_shared(p);
}

/* Byte offset of the 16-byte chunk c (elements 8c..8c + 7) of row r in a
 * swizzled tile of ROWS rows (the layout above). */
template <int ROWS>
static __device__ __forceinline__ uint32_t wg_sw(int r, int c)
{
	return (uint32_t)((c >> 3) * ROWS * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

/* A matrix descriptor with the 128-byte swizzle: shared address sa,
 * leading and stride byte offsets, base offset 0. */
static __device__ __forceinline__ uint64_t wg_desc(uint32_t sa, uint32_t lbo, uint32_t sbo)
{
	return (uint64_t)((sa & 0x3ffff) >> 4) | (uint64_t)((lbo >> 4) & 0x3fff) << 16 |
	       (uint64_t)((sbo >> 4) & 0x3fff) << 32 | 1ull << 62;
}

static __device__ __forceinline__ void wg_fence(void)
{
	asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}

static __device__ __forceinline__ void wg_commit(void)
{
	asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

/* Waits until at most N of this warpgroup's committed groups are pending. */
template <int N>
static __device__ __forceinline__ void wg_wait(void)
{
	asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

/* The compiler must neither read nor move registers that an issued wgmma
 * still writes or reads: these empty asm statements pin them at the
 * points where the products are issued and waited for. */
template <int N>
static __device__ __forceinline__ void wg_hold(float (&d)[N][4])
{
#pragma unroll
	for (int i = 0; i < N; i++)
		asm volatile("" : "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])::"memory");
}

template <int N>
static __device__ __forceinline__ void wg_hold(uint32_t (&p)[N][4])
{
#pragma unroll
	for (int i = 0; i < N; i++)
		asm volatile("" : "+r"(p[i][0]), "+r"(p[i][1]), "+r"(p[i][2]), "+r"(p[i][3])::"memory");
}

/* Copies by cp.async (the generic proxy) made visible to wgmma's reads
 * (the async proxy); each thread after its own copies landed, before the
 * barrier. */
static __device__ __forceinline__ void wg_fence_proxy(void)
{
	asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

/* d (64 x 128) = (acc ? d : 0) + A B: A and B by descriptor, both K-major. */
static __device__ __forceinline__ void wg_mma_qk(float (&d)[16][4], uint64_t da, uint64_t db,
						int acc)
{
	asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
		     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
		     "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
		     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
		     "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
		     "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
		     "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
		     : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
		       "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
		       "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
		       "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
		       "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
		       "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
		       "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
		       "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]),
		       "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
		       "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]),
		       "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]),
		       "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
		       "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]),
		       "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]),
		       "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]),
		       "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
		     : "l"(da), "l"(db), "r"(acc));
}

/* d (64 x 128) += A B: A from registers, B by descriptor, N-major. */
static __device__ __forceinline__ void wg_mma_pv128(float (&d)[16][4], const uint32_t (&a)[4],
						uint64_t db)
{
	asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
		     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
		     "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
		     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
		     "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
		     "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
		     "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
		     : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
		       "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
		       "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
		       "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
		       "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
		       "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
		       "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
		       "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]),
		       "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
		       "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]),
		       "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]),
		       "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
		       "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]),
		       "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]),
		       "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]),
		       "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

/* d (64 x 64) += A B, likewise. */
static __device__ __forceinline__ void wg_mma_pv64(float (&d)[8][4], const uint32_t (&a)[4],
						uint64_t db)
{
	asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
		     "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
		     "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
		     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
		     "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
		     : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
		       "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
		       "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
		       "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
		       "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
		       "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
		       "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
		       "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

/* S = Q K^T of the warpgroup's 64 rows and the tile's 128 keys: qa, ka the
 * shared addresses of the warpgroup's first Q row and of the K tile. */
template <int HD>
static __device__ __forceinline__ void wg_scores(float (&s)[WG_KT / 8][4], uint32_t qa, uint32_t ka)
{
#pragma unroll
	for (int ks = 0; ks < HD / 16; ks++) {
		uint32_t off = (ks & 3) * 32;
		uint64_t da = wg_desc(qa + (ks >> 2) * (WG_ROWS * 128) + off, 16, 1024);
		uint64_t db = wg_desc(ka + (ks >> 2) * (WG_KT * 128) + off, 16, 1024);

		wg_mma_qk(s, da, db, ks > 0);
	}
}

/* o += P V: p the bf16 A fragments of the 8 k-steps of 16 keys, va the
 * shared address of the V tile. */
template <int HD>
static __device__ __forceinline__ void wg_pv(float (&o)[HD / 8][4],
					     const uint32_t (&p)[WG_KT / 16][4], uint32_t va)
{
#pragma unroll
	for (int kk = 0; kk < WG_KT / 16; kk++) {
		uint64_t db = wg_desc(va + kk * 16 * 128, WG_KT * 128, 1024);

		if constexpr (HD == 128)
			wg_mma_pv128(o, p[kk], db);
		else
			wg_mma_pv64(o, p[kk], db);
	}
}

/* Online softmax of one row half (e = 0: row g, e = 2: row g + 8) over the
 * tile at k0, in the log2 domain (s2 = log2(e) / sqrt(head_dim)); keys
 * past lim (the row's position, or the split's last key) are masked only
 * on tiles that reach past it.  Leaves the probabilities in s, returns
 * the rescale factor of the row's outputs. */
static __device__ __forceinline__ float wg_softmax(float (&s)[WG_KT / 8][4], int e, int lim,
						   int k0, int t, float s2, float &m, float &l)
{
	float mx = -INFINITY, sum = 0.0f;

	if (k0 + WG_KT - 1 > lim) {
#pragma unroll
		for (int nt = 0; nt < WG_KT / 8; nt++)
#pragma unroll
			for (int c = 0; c < 2; c++)
				if (k0 + nt * 8 + 2 * t + c > lim)
					s[nt][e + c] = -INFINITY;
	}
#pragma unroll
	for (int nt = 0; nt < WG_KT / 8; nt++)
		mx = fmaxf(mx, fmaxf(s[nt][e], s[nt][e + 1]));
	mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
	mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
	float mn = fmaxf(m, mx * s2), base = mn == -INFINITY ? 0.0f : mn;
	float alpha = exp2f(m - base);

#pragma unroll
	for (int nt = 0; nt < WG_KT / 8; nt++)
#pragma unroll
		for (int c = 0; c < 2; c++) {
			float p = exp2f(fmaf(s[nt][e + c], s2, -base));

			s[nt][e + c] = p;
			sum += p;
		}
	m = mn;
	l = l * alpha + sum;
	return alpha;
}

/* The probabilities of s packed as the bf16 A fragments of P V. */
static __device__ __forceinline__ void wg_pack_p(uint32_t (&p)[WG_KT / 16][4],
						 const float (&s)[WG_KT / 8][4])
{
#pragma unroll
	for (int kk = 0; kk < WG_KT / 16; kk++) {
		p[kk][0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
		p[kk][1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
		p[kk][2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
		p[kk][3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
	}
}

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

/* Normalized bf16 row r out (e = 0: the row's g half, 2: g + 8); lanes of
 * a quad first pool their sums. */
template <int HD>
static __device__ __forceinline__ void wg_store(const struct kn_attn_args &a, int G, int row0,
						int nq, int kvh, int r, int t, float l,
						const float (&o)[HD / 8][4], int e)
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

/* Partial row r of a split at pp (WG_ROWS, HD + 2) fp32, as the mma.sync
 * kernel leaves it: max in the natural-log domain, sum, unnormalized
 * outputs. */
template <int HD>
static __device__ __forceinline__ void wg_store_partial(float *pp, int nq, int r, int t, float m,
							float l, const float (&o)[HD / 8][4], int e)
{
	l += __shfl_xor_sync(0xffffffffu, l, 1);
	l += __shfl_xor_sync(0xffffffffu, l, 2);
	if (r >= nq)
		return;
	float *row = pp + (size_t)r * (HD + 2);

	if (t == 0) {
		row[0] = m * WG_LN2;
		row[1] = l;
	}
#pragma unroll
	for (int nt = 0; nt < HD / 8; nt++)
		*(float2 *)(row + 2 + nt * 8 + 2 * t) = make_float2(o[nt][e], o[nt][e + 1]);
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
	float s2 = WG_LOG2E / sqrtf((float)HD), m[2], l[2];
	float o[HD / 8][4], s[WG_KT / 8][4];
	uint32_t p[WG_KT / 16][4];
	int n_kt = (ke - kb + WG_KT - 1) / WG_KT, lim[2];
	int shift = tc_page_shift(a.page_size), pg[wg_chunks<HD>()];
	uint32_t qa = wg_u32(Qs) + wg * 64 * 128, ra = wg_u32(ring);

	if (SPLIT && kb >= ke) {   /* block-uniform: no barrier is skipped by part of it */
		for (int idx = threadIdx.x; idx < nq * (HD + 2); idx += WG_THREADS)
			pp[idx] = idx % (HD + 2) ? 0.0f : -INFINITY;
		return;
	}
	wg_q_issue<HD>(a, G, row0, nq, kvh, Qs);
	wg_pages<HD>(a, bt, shift, kb, ke, pg);
	wg_kv_issue<HD>(a, pg, shift, kvh, kb, ring);
	cp_async_commit();
	if (n_kt > 1)
		wg_pages<HD>(a, bt, shift, kb + WG_KT, ke, pg);
	/* a row's last key: its position, or the split's end; -1 past nq */
#pragma unroll
	for (int e = 0; e < 2; e++) {
		int r = r_lo + 8 * e;

		lim[e] = r < nq ? min(a.pos[row0 + r / G], ke - 1) : -1;
		m[e] = -INFINITY;
		l[e] = 0.0f;
	}
#pragma unroll
	for (int nt = 0; nt < HD / 8; nt++)
		o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.0f;
#pragma unroll
	for (int kk = 0; kk < WG_KT / 16; kk++)
		p[kk][0] = p[kk][1] = p[kk][2] = p[kk][3] = 0u;
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
		float al = wg_softmax(s, 0, lim[0], k0, t, s2, m[0], l[0]);
		float ah = wg_softmax(s, 2, lim[1], k0, t, s2, m[1], l[1]);

		wg_wait<0>();
		wg_hold(o);
		wg_hold(p);
#pragma unroll
		for (int nt = 0; nt < HD / 8; nt++) {
			o[nt][0] *= al;
			o[nt][1] *= al;
			o[nt][2] *= ah;
			o[nt][3] *= ah;
		}
		wg_pack_p(p, s);
	}
	wg_hold(o);
	wg_hold(p);
	wg_fence();
	wg_pv<HD>(o, p, ra + (n_kt - 1) % WG_STAGES * SLOT + WG_KT * HD * 2);
	wg_commit();
	wg_wait<0>();
	wg_hold(o);
#pragma unroll
	for (int e = 0; e < 2; e++) {
		if constexpr (SPLIT)
			wg_store_partial<HD>(pp, nq, r_lo + 8 * e, t, m[e], l[e], o, 2 * e);
		else
			wg_store<HD>(a, G, row0, nq, kvh, r_lo + 8 * e, t, l[e], o, 2 * e);
	}
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

/* ------------------------------------------------ the warp-specialized form */

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
	float s2 = WG_LOG2E / sqrtf((float)HD), m[2], l[2];
	float o[HD / 8][4], s[WG_KT / 8][4];
	uint32_t p[WG_KT / 16][4];
	uint32_t qa = wg_u32(Qs) + c * 64 * 128, ra = wg_u32(ring);
	const uint32_t SLOT = 2 * WG2_TILE_BYTES;
	int lim[2];

	wg2_load_q(a, G, row0, nq, kvh, c, Qs);
#pragma unroll
	for (int e = 0; e < 2; e++) {
		int r = r_lo + 8 * e;

		lim[e] = r < nq ? min(a.pos[row0 + r / G], ke - 1) : -1;
		m[e] = -INFINITY;
		l[e] = 0.0f;
	}
#pragma unroll
	for (int nt = 0; nt < HD / 8; nt++)
		o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.0f;
#pragma unroll
	for (int kk = 0; kk < WG_KT / 16; kk++)
		p[kk][0] = p[kk][1] = p[kk][2] = p[kk][3] = 0u;
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
		float al = wg_softmax(s, 0, lim[0], k0, t, s2, m[0], l[0]);
		float ah = wg_softmax(s, 2, lim[1], k0, t, s2, m[1], l[1]);

		wg_wait<0>();
		wg_hold(o);
		wg_hold(p);
		if (j > 0)
			wg2_release(bars + (WG2_EMPTY_V * WG2_STAGES + sv) * 8);
#pragma unroll
		for (int nt = 0; nt < HD / 8; nt++) {
			o[nt][0] *= al;
			o[nt][1] *= al;
			o[nt][2] *= ah;
			o[nt][3] *= ah;
		}
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
#pragma unroll
	for (int e = 0; e < 2; e++) {
		if constexpr (SPLIT)
			wg_store_partial<HD>(pp, nq, r_lo + 8 * e, t, m[e], l[e], o, 2 * e);
		else
			wg_store<HD>(a, G, row0, nq, kvh, r_lo + 8 * e, t, l[e], o, 2 * e);
	}
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
		for (int idx = threadIdx.x; idx < nq * (WG2_HD + 2); idx += WG2_THREADS)
			pp[idx] = idx % (WG2_HD + 2) ? 0.0f : -INFINITY;
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

/* The shapes the kernel takes: those of the mma.sync kernel's tiles (at
 * most WG_ROWS rows), bf16 pages, head_dim 64 or 128. */
static int wg_shape_ok(int n_heads, int n_kv, int head_dim, int kv_dtype)
{
	return kv_dtype == KN_KV_BF16 && (head_dim == 64 || head_dim == 128) &&
	       kn_attn_tc_tile_rows(n_heads, n_kv, head_dim) >= 1;
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

/* The arguments both forms take: 0, or KN_E_INVALID (reported). */
static int wg_args_ok(const struct kn_attn_args *a, int n_splits, int split_len,
		      const float *partial)
{
	KN_REQUIRE(a && a->out && a->q && a->k_cache && a->v_cache && a->block_tables);
	KN_REQUIRE(a->pos && a->bt_off && a->tile_row0 && a->tile_n);
	KN_REQUIRE(a->n_tiles >= 1 && a->n_tiles <= 0x7fffffff && a->page_size >= 1);
	KN_REQUIRE(a->n_kv <= 65535);
	KN_REQUIRE(wg_shape_ok(a->n_heads, a->n_kv, a->head_dim, a->kv_dtype));
	KN_REQUIRE(n_splits >= 1 && n_splits <= 65535);
	KN_REQUIRE(n_splits == 1 ||
		   (partial && split_len >= KN_ATTN_TC_SPLIT && split_len % KN_ATTN_TC_SPLIT == 0 &&
		    (size_t)a->n_tiles * a->n_kv <= 0x7fffffff));
	return 0;
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
