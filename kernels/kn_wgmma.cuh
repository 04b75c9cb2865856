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
#define WG_LOG2E 1.4426950408889634f
#define WG_LN2 0.6931471805599453f

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
