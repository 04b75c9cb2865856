/*
 * kn_wgmma.cuh: what the wgmma prefill attention kernels share
 * (attn_prefill_wg.cu, the first form; attn_prefill_wg2.cu, the
 * warp-specialized one): the tile sizes, the 128-byte swizzle, matrix
 * descriptors, the wgmma products of S = Q K^T and O += P V, the online
 * softmax, the stores, and the checks of the shapes and arguments both
 * take.  The layouts, fragments and synchronization are described in
 * attn_prefill_wg.cu's head comment.
 */
#ifndef TRAJBENCH_KN_WGMMA_CUH
#define TRAJBENCH_KN_WGMMA_CUH

#include "kernels/kn_attn.cuh"

#define WG_ROWS 128     /* query rows a block: the mma.sync kernel's PF_ROWS */
#define WG_KT 128       /* keys a tile: S is m64n128 */

/* 1 where this file's kernels were built with wgmma (sm_90a): the host
 * reads the value of the image loaded for the device. */
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define WG_BUILT 1
#else
#define WG_BUILT 0
#endif

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

/* The accumulator operands of a wgmma, d[i][0..3] for i < 8 (32 of
 * them, m64n64) or i < 16 (64, m64n128), as "+f" constraints, and their
 * %-numbers in the instruction's list. */
#define WG_D4(d, i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])
#define WG_D32(d) \
	WG_D4(d, 0), WG_D4(d, 1), WG_D4(d, 2), WG_D4(d, 3), \
	WG_D4(d, 4), WG_D4(d, 5), WG_D4(d, 6), WG_D4(d, 7)
#define WG_D64(d) \
	WG_D32(d), WG_D4(d, 8), WG_D4(d, 9), WG_D4(d, 10), WG_D4(d, 11), \
	WG_D4(d, 12), WG_D4(d, 13), WG_D4(d, 14), WG_D4(d, 15)
#define WG_R32 \
	"%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
	"%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define WG_R64 \
	WG_R32 ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, " \
	"%45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, " \
	"%60, %61, %62, %63"

/* d (64 x 128) = (acc ? d : 0) + A B: A and B by descriptor, both K-major. */
static __device__ __forceinline__ void wg_mma_qk(float (&d)[16][4], uint64_t da, uint64_t db,
						int acc)
{
	asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
		     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
		     WG_R64
		     "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
		     : WG_D64(d)
		     : "l"(da), "l"(db), "r"(acc));
}

/* d (64 x 128) += A B: A from registers, B by descriptor, N-major. */
static __device__ __forceinline__ void wg_mma_pv128(float (&d)[16][4], const uint32_t (&a)[4],
						uint64_t db)
{
	asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
		     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
		     WG_R64
		     "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
		     : WG_D64(d)
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

/* d (64 x 64) += A B, likewise. */
static __device__ __forceinline__ void wg_mma_pv64(float (&d)[8][4], const uint32_t (&a)[4],
						uint64_t db)
{
	asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
		     "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
		     WG_R32
		     "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
		     : WG_D32(d)
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

/* A computing thread's two rows (r_lo and r_lo + 8 of the block's nq)
 * before the first tile: each row's last key (its position, or the
 * split's last key ke - 1; -1 past nq), running max and sum, and O and P
 * zeroed. */
template <int HD>
static __device__ __forceinline__ void wg_rows_begin(const struct kn_attn_args &a, int G,
						     int row0, int nq, int r_lo, int ke,
						     int (&lim)[2], float (&m)[2], float (&l)[2],
						     float (&o)[HD / 8][4],
						     uint32_t (&p)[WG_KT / 16][4])
{
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
}

/* The two rows' O after the last tile: the split's partial at pp
 * (SPLIT), else the rows' output. */
template <int HD, bool SPLIT>
static __device__ __forceinline__ void wg_rows_store(const struct kn_attn_args &a, int G,
						     int row0, int nq, int kvh, int r_lo, int t,
						     const float (&m)[2], const float (&l)[2],
						     float (&o)[HD / 8][4], float *pp)
{
#pragma unroll
	for (int e = 0; e < 2; e++) {
		if constexpr (SPLIT)
			tc_store_partial<HD>(pp, nq, r_lo + 8 * e, t, m[e], l[e], o, 2 * e, 1.0f);
		else
			tc_store_rows<HD>(a, G, row0, nq, kvh, r_lo + 8 * e, t, l[e], o, 2 * e,
					  1.0f);
	}
}

/* The shapes the kernel takes: those of the mma.sync kernel's tiles (at
 * most WG_ROWS rows), bf16 pages, head_dim 64 or 128. */
static int wg_shape_ok(int n_heads, int n_kv, int head_dim, int kv_dtype)
{
	return kv_dtype == KN_KV_BF16 && (head_dim == 64 || head_dim == 128) &&
	       kn_attn_tc_tile_rows(n_heads, n_kv, head_dim) >= 1;
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

#endif
