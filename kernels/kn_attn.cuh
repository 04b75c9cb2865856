/*
 * kn_attn.cuh: what the tensor-core attention kernels share: the
 * m16n8k16 mma's operand packing (the mma is kn_mma.cuh's), K/V tile
 * loads from the paged cache into shared memory, query fragments, the
 * masked online softmax on accumulator fragments, and the reduce of
 * split-K partials (defined in attention.cu).
 *
 * The tile ring takes bf16 pages, or FP8 E4M3 pages (F8): then its slots
 * hold the tiles' bytes as they are in the pages (half the copy), and each
 * step widens the tile it hands out into one f16 tile of the bf16 layout
 * (exact, one cvt for two elements; the scales are the kernels'
 * business); the kernels then run the same code on it with f16 products
 * (mma_t, pack_t): q turned to f16 (kn_fp8.cuh) and the probabilities
 * packed as f16.
 *
 * Fragment layouts (PTX ISA, m16n8k16): lane (g = lane / 4, t = lane % 4)
 * holds rows g and g + 8 of A and C, columns 2t, 2t + 1 (and + 8 for A);
 * B columns n = g, rows 2t, 2t + 1 (and + 8).  Partials of split-K are
 * (n_tiles, n_kv, n_splits, rows, head_dim + 2) fp32: running max (of
 * the scaled scores, natural-log domain), sum, unnormalized output, where
 * rows is KN_ATTN_PARTIAL_ROWS for decode and the prefill kernel's rows
 * per block (PF_ROWS) for its splits; row r of a tile is its token r /
 * group, query head kvh group + r % group.
 */
#ifndef TRAJBENCH_KN_ATTN_CUH
#define TRAJBENCH_KN_ATTN_CUH

#include "kernels/kn_fp8.cuh"
#include "kernels/kn_mma.cuh"

#define KN_ATTN_PARTIAL_ROWS 32

/* Combines the n_splits partials of every (tile, kv head) into bf16 out:
 * partial as above with rows rows a split, tiles of at most tile_tokens
 * tokens (the grid's size).  Every split must have written all rows of
 * its tile (max -inf, sum 0 and zeros where it had no keys). */
int kn_attn_reduce_splits(const struct kn_attn_args *a, int n_splits, int rows, int tile_tokens,
			  const float *partial, cudaStream_t s);

/* The same for decode rows (tiles of one token) split by split_len as
 * the decode kernels took it (kn_launch_split_len): only the splits that
 * hold keys of a row (kn_row_splits) are read, the others having written
 * nothing. */
int kn_attn_reduce_decode(const struct kn_attn_args *a, int n_splits, int split_len, int rows,
			  const float *partial, cudaStream_t s);

#define TC_WARPS 4
#define TC_ROWS (TC_WARPS * 16)
#define TC_KT 64

static __device__ __forceinline__ uint32_t ld32(const uint16_t *p)
{
	return *(const uint32_t *)p;
}

static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
	__nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);

	return *(uint32_t *)&v;
}

static __device__ __forceinline__ uint32_t pack_f16(float lo, float hi)
{
	__half2 v = __floats2half2_rn(lo, hi);

	return *(uint32_t *)&v;
}

/* The packing of probabilities for the tensor-core kernels' products
 * (mma_t): bf16, or f16 (F16: on E4M3 pages). */
template <bool F16>
static __device__ __forceinline__ uint32_t pack_t(float lo, float hi)
{
	if constexpr (F16)
		return pack_f16(lo, hi);
	else
		return pack_bf16(lo, hi);
}

/* 16-byte asynchronous copy global -> shared; src_bytes 0 fills zeros. */
static __device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int src_bytes)
{
	unsigned sa = (unsigned)__cvta_generic_to_shared(smem);

	asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(sa), "l"(gmem),
		     "r"(src_bytes));
}

static __device__ __forceinline__ void cp_async_commit(void)
{
	asm volatile("cp.async.commit_group;\n" ::);
}

/* Waits until at most N committed groups of this thread are in flight. */
template <int N>
static __device__ __forceinline__ void cp_async_wait(void)
{
	asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* Four 8x8 bf16 matrices from shared memory: lane L gives the address of
 * row L % 8 of matrix L / 8; r[i] is this lane's fragment of matrix i
 * (row lane / 4, columns 2 (lane % 4), + 1; transposed with .trans). */
static __device__ __forceinline__ void ldsm_x4(uint32_t r[4], const uint16_t *p)
{
	unsigned sa = (unsigned)__cvta_generic_to_shared(p);

	asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
		     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
		     : "r"(sa));
}

static __device__ __forceinline__ void ldsm_x4_trans(uint32_t r[4], const uint16_t *p)
{
	unsigned sa = (unsigned)__cvta_generic_to_shared(p);

	asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
		     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
		     : "r"(sa));
}

/* 16-byte chunks of a K (or V) tile that each of NT threads copies:
 * 8 bf16 or 16 E4M3 elements a chunk. */
#define TC_CHUNKS(HD, NT) ((TC_KT * ((HD) / 8) + (NT) - 1) / (NT))
#define TC_CHUNKS_F8(HD, NT) ((TC_KT * ((HD) / 16 > 0 ? (HD) / 16 : 1) + (NT) - 1) / (NT))

template <int HD, int NT, bool F8>
static __host__ __device__ constexpr int tc_chunks()
{
	return F8 ? TC_CHUNKS_F8(HD, NT) : TC_CHUNKS(HD, NT);
}

/* uint16 units of one ring slot (K then V): bf16 tiles padded to HD + 8,
 * or E4M3 tiles of TC_KT x HD bytes unpadded (each thread widens pieces
 * of its own choosing, in order, so no padding is needed against bank
 * conflicts). */
template <int HD, bool F8>
static __host__ __device__ constexpr int tc_slot_u16()
{
	return F8 ? TC_KT * HD : 2 * TC_KT * (HD + 8);
}

/* uint16 units of a ring of STAGES slots, plus (F8) the bf16 tile the
 * steps widen into: where what a kernel keeps after the ring starts. */
template <int HD, int STAGES, bool F8>
static __host__ __device__ constexpr int tc_ring_u16()
{
	return STAGES * tc_slot_u16<HD, F8>() + (F8 ? 2 * TC_KT * (HD + 8) : 0);
}

/* key / page_size, by a shift when the page size is a power of two
 * (shift >= 0, from tc_page_shift). */
static __device__ __forceinline__ int tc_page(int key, int shift, int page_size)
{
	return shift >= 0 ? key >> shift : key / page_size;
}

static __device__ __forceinline__ int tc_page_shift(int page_size)
{
	return page_size & (page_size - 1) ? -1 : __ffs(page_size) - 1;
}

/* The pages holding the keys whose chunks this thread copies of the tile
 * at k0 (-1 past ke): loaded a tile ahead, so that the block-table reads
 * are not waited for when the copy is issued. */
template <int HD, int NT, bool F8>
static __device__ __forceinline__ void tc_kv_pages(const struct kn_attn_args &a,
						   const int32_t *bt, int shift, int k0, int ke,
						   int pg[tc_chunks<HD, NT, F8>()])
{
	const int CH = F8 ? (HD / 16 > 0 ? HD / 16 : 1) : HD / 8;

#pragma unroll
	for (int c = 0; c < tc_chunks<HD, NT, F8>(); c++) {
		int idx = threadIdx.x + c * NT, key = k0 + idx / CH;

		pg[c] = idx < TC_KT * CH && key < ke ? bt[tc_page(key, shift, a.page_size)] : -1;
	}
}

/* Starts the copy of keys [k0, k0 + TC_KT) of KV head kvh from pages pg
 * into Ks, Vs (TC_KT, HD + 8) bf16, or (F8) (TC_KT, HD) bytes, zeros where
 * pg is -1; the caller commits and waits. */
template <int HD, int NT, bool F8>
static __device__ __forceinline__ void tc_kv_issue(const struct kn_attn_args &a,
						   const int pg[tc_chunks<HD, NT, F8>()], int shift,
						   int kvh, int k0, uint16_t *Ks, uint16_t *Vs)
{
	/* F8 with HD 16: one 16-byte chunk is a whole row */
	const int EPC = F8 ? 16 : 8, CH = HD / EPC > 0 ? HD / EPC : 1;
	const int LD = F8 ? HD : HD + 8, EB = F8 ? 1 : 2;   /* row stride, element bytes */

#pragma unroll
	for (int c = 0; c < tc_chunks<HD, NT, F8>(); c++) {
		int idx = threadIdx.x + c * NT, j = idx / CH, d = (idx - j * CH) * EPC, key = k0 + j;

		if (TC_KT * CH % NT && idx >= TC_KT * CH)
			break;
		int in_page = key - tc_page(key, shift, a.page_size) * a.page_size;
		size_t slot = pg[c] >= 0 ? (size_t)pg[c] * a.page_size + in_page : 0;
		size_t off = ((slot * a.n_kv + kvh) * HD + d) * EB;

		cp_async16((char *)Ks + (j * LD + d) * EB, (const char *)a.k_cache + off,
			   pg[c] >= 0 ? 16 : 0);
		cp_async16((char *)Vs + (j * LD + d) * EB, (const char *)a.v_cache + off,
			   pg[c] >= 0 ? 16 : 0);
	}
}

/* The E4M3 tiles K8, V8 (TC_KT, HD) bytes widened into Kb, Vb (TC_KT,
 * HD + 8) f16, 8 elements a piece: a warp reads 256 consecutive bytes
 * and writes 16-byte pieces in row order, free of bank conflicts.  Every
 * thread's part of the copies must be in (waited for and synchronized). */
template <int HD, int NT>
static __device__ __forceinline__ void tc_widen(const uint16_t *K8, const uint16_t *V8,
						uint16_t *Kb, uint16_t *Vb)
{
	const int P = HD / 8, LD = HD + 8;

#pragma unroll
	for (int c = 0; c < (TC_KT * P + NT - 1) / NT; c++) {
		int idx = threadIdx.x + c * NT, j = idx / P, d = (idx - j * P) * 8;

		if (TC_KT * P % NT && idx >= TC_KT * P)
			break;
		uint2 k = *(const uint2 *)((const uint8_t *)K8 + j * HD + d);
		uint2 v = *(const uint2 *)((const uint8_t *)V8 + j * HD + d);

		*(uint4 *)(Kb + j * LD + d) = kn_e4m3x8_to_f16x8(k);
		*(uint4 *)(Vb + j * LD + d) = kn_e4m3x8_to_f16x8(v);
	}
}

/* The ring of STAGES K/V tile buffers at smem (K then V per slot) that
 * the tensor-core kernels walk keys [kb, ke) through, TC_KT at a time.
 * Primed: the copies of the first STAGES - 1 tiles start, one commit
 * group per slot (empty past ke, so that the wait counts stay fixed), and
 * the pages of the tile after them are read. */
template <int HD, int NT, int STAGES, bool F8>
static __device__ __forceinline__ void tc_ring_prime(const struct kn_attn_args &a,
						     const int32_t *bt, int shift, int kvh, int kb,
						     int ke, uint16_t *smem,
						     int pg[tc_chunks<HD, NT, F8>()])
{
	const int SLOT = tc_slot_u16<HD, F8>();

#pragma unroll
	for (int i = 0; i < STAGES - 1; i++) {
		if (kb + i * TC_KT < ke) {
			tc_kv_pages<HD, NT, F8>(a, bt, shift, kb + i * TC_KT, ke, pg);
			tc_kv_issue<HD, NT, F8>(a, pg, shift, kvh, kb + i * TC_KT, smem + i * SLOT,
						smem + i * SLOT + SLOT / 2);
		}
		cp_async_commit();
	}
	if (kb + (STAGES - 1) * TC_KT < ke)
		tc_kv_pages<HD, NT, F8>(a, bt, shift, kb + (STAGES - 1) * TC_KT, ke, pg);
}

/* Step i of the ring (the tile at k0 in slot i % STAGES): once that tile
 * is in and every warp is done with the slot before it, that slot takes
 * the tile STAGES - 1 ahead (its pages were read a step ago) and the
 * pages of the tile after it are read.  Returns the tile's K buffer (V
 * follows it, TC_KT (HD + 8) later): the slot itself (bf16), or (F8) the
 * f16 widening tile after the ring, filled from the slot once every warp
 * is done with the tile before (the same barrier) and synchronized
 * again. */
template <int HD, int NT, int STAGES, bool F8>
static __device__ __forceinline__ uint16_t *tc_ring_step(const struct kn_attn_args &a,
							 const int32_t *bt, int shift, int kvh,
							 int i, int k0, int ke, uint16_t *smem,
							 int pg[tc_chunks<HD, NT, F8>()])
{
	const int SLOT = tc_slot_u16<HD, F8>();
	int nx = k0 + (STAGES - 1) * TC_KT;

	cp_async_wait<STAGES - 2>();
	__syncthreads();
	if (nx < ke) {
		uint16_t *Kn = smem + ((i + STAGES - 1) % STAGES) * SLOT;

		tc_kv_issue<HD, NT, F8>(a, pg, shift, kvh, nx, Kn, Kn + SLOT / 2);
	}
	cp_async_commit();
	if (nx + TC_KT < ke)
		tc_kv_pages<HD, NT, F8>(a, bt, shift, nx + TC_KT, ke, pg);
	if constexpr (F8) {
		uint16_t *Kb = smem + STAGES * SLOT, *S8 = smem + (i % STAGES) * SLOT;

		tc_widen<HD, NT>(S8, S8 + SLOT / 2, Kb, Kb + TC_KT * (HD + 8));
		__syncthreads();
		return Kb;
	}
	return smem + (i % STAGES) * SLOT;
}

/* The rows' query fragments (zeros for rows past the tile). */
template <int HD>
static __device__ void tc_load_q(const struct kn_attn_args &a, int G, int row0, int nq, int kvh,
				 int r_lo, int t, uint32_t qf[HD / 16][4])
{
	int qd = a.n_heads * HD, r_hi = r_lo + 8;
	const uint16_t *ql = a.q + (size_t)(row0 + r_lo / G) * qd + (size_t)(kvh * G + r_lo % G) * HD;
	const uint16_t *qh = a.q + (size_t)(row0 + r_hi / G) * qd + (size_t)(kvh * G + r_hi % G) * HD;

#pragma unroll
	for (int ks = 0; ks < HD / 16; ks++) {
		int c = ks * 16 + 2 * t;

		qf[ks][0] = r_lo < nq ? ld32(ql + c) : 0u;
		qf[ks][1] = r_hi < nq ? ld32(qh + c) : 0u;
		qf[ks][2] = r_lo < nq ? ld32(ql + c + 8) : 0u;
		qf[ks][3] = r_hi < nq ? ld32(qh + c + 8) : 0u;
	}
}

/* Masked online-softmax update of one row half (lo: e = 0, hi: e = 2) over
 * NT score tiles of 8 keys from key k0; turns s into probabilities, returns
 * the rescale factor of the row. */
template <int NT>
static __device__ __forceinline__ float tc_softmax(float s[NT][4], int e, int pos, int k0,
						   int ke, int t, float scale, float &m, float &l)
{
	float mx = -INFINITY, sum = 0.0f;

#pragma unroll
	for (int nt = 0; nt < NT; nt++)
#pragma unroll
		for (int c = 0; c < 2; c++) {
			int key = k0 + nt * 8 + 2 * t + c;
			bool ok = key < ke && key <= pos;

			s[nt][e + c] = ok ? s[nt][e + c] * scale : -INFINITY;
			mx = fmaxf(mx, s[nt][e + c]);
		}
	mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
	mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
	float mn = fmaxf(m, mx);
	float alpha = mn == -INFINITY ? 1.0f : expf(m - mn);

#pragma unroll
	for (int nt = 0; nt < NT; nt++)
#pragma unroll
		for (int c = 0; c < 2; c++) {
			float p = s[nt][e + c] == -INFINITY ? 0.0f : expf(s[nt][e + c] - mn);

			s[nt][e + c] = p;
			sum += p;
		}
	m = mn;
	l = l * alpha + sum;
	return alpha;
}

/* Keys per split of a decode row of context ctx: split_len when it is
 * positive; 0 asks for splits sized to the row itself, ceil(ctx /
 * n_splits) rounded up to a multiple of 32, at least 64 (a fixed grid of
 * n_splits splits then fits any context: a CUDA graph replays it as the
 * contexts grow; splits past the context stay empty). */
static __device__ __forceinline__ int kn_row_split_len(int split_len, int ctx, int n_splits)
{
	int len;

	if (split_len > 0)
		return split_len;
	len = (ctx + n_splits - 1) / n_splits;
	len = (len + 31) / 32 * 32;
	return len < 64 ? 64 : len;
}

/* The split length of a decode launch: the one read at a.split_len_at
 * when the caller gave it there (a captured graph's step writes it with
 * the metadata, the launch's argument being fixed at capture), else the
 * argument. */
static __device__ __forceinline__ int kn_launch_split_len(const struct kn_attn_args &a,
							  int split_len)
{
	return a.split_len_at ? *a.split_len_at : split_len;
}

/* Keys [kb, ke) of split sp of a decode row of ctx keys, split_len as
 * the launch gave it; the last split takes every key after, so that a
 * length read on the device that leaves keys past the grid loses none. */
static __device__ __forceinline__ void kn_split_range(int split_len, int ctx, int n_splits,
						      int sp, int &kb, int &ke)
{
	int sl = kn_row_split_len(split_len, ctx, n_splits);

	kb = sp * sl;
	ke = sp == n_splits - 1 ? ctx : min(ctx, kb + sl);
}

/* The splits of that row that hold keys (split 0 always does): the
 * decode kernels write no partial for the others and the reduce reads
 * only these. */
static __device__ __forceinline__ int kn_row_splits(int split_len, int ctx, int n_splits)
{
	int sl = kn_row_split_len(split_len, ctx, n_splits), n = (ctx + sl - 1) / sl;

	return n < 1 ? 1 : n < n_splits ? n : n_splits;
}

/* The outputs of a fragment's row halves (o[nt][0..1]: row g, [2..3]: row
 * g + 8, N column tiles) times the rescale factors of their softmax. */
template <int N>
static __device__ __forceinline__ void tc_rescale(float (*o)[4], float al, float ah)
{
#pragma unroll
	for (int nt = 0; nt < N; nt++) {
		o[nt][0] *= al;
		o[nt][1] *= al;
		o[nt][2] *= ah;
		o[nt][3] *= ah;
	}
}

/* ------------------------------------------------ prefill tiles, log2 domain */
/* What the tensor-core prefill kernels (attn_prefill_tc.cu, mma.sync;
 * attn_prefill_wg.cu, wgmma) share: their fragments of S and O have the
 * same map (rows g and g + 8 of a lane, columns 2t, 2t + 1 of each 8). */

#define KN_LOG2E 1.4426950408889634f
#define KN_LN2 0.6931471805599453f

/* Online softmax of one row half (e = 0: row g, e = 2: row g + 8) of a
 * tile of KT keys at k0 in the log2 domain (s2 = log2(e) / sqrt(head_dim),
 * folded into the exponent's fma); keys past lim (the row's position, or
 * a split's last key) are masked only on tiles that reach past it.  Leaves
 * the probabilities in s, returns the rescale factor of the row's
 * outputs. */
template <int KT>
static __device__ __forceinline__ float tc_softmax_log2(float (&s)[KT / 8][4], int e, int lim,
							int k0, int t, float s2, float &m, float &l)
{
	float mx = -INFINITY, sum = 0.0f;

	if (k0 + KT - 1 > lim) {
#pragma unroll
		for (int nt = 0; nt < KT / 8; nt++)
#pragma unroll
			for (int c = 0; c < 2; c++)
				if (k0 + nt * 8 + 2 * t + c > lim)
					s[nt][e + c] = -INFINITY;
	}
#pragma unroll
	for (int nt = 0; nt < KT / 8; nt++)
		mx = fmaxf(mx, fmaxf(s[nt][e], s[nt][e + 1]));
	mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
	mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
	float mn = fmaxf(m, mx * s2), base = mn == -INFINITY ? 0.0f : mn;
	float alpha = exp2f(m - base);

#pragma unroll
	for (int nt = 0; nt < KT / 8; nt++)
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

/* Normalized bf16 row r out (e = 0: the row of the fragment's g half, 2:
 * g + 8), times vs (an FP8 cache's V scale, else 1); lanes of a quad
 * first pool their sums. */
template <int HD>
static __device__ void tc_store_rows(const struct kn_attn_args &a, int G, int row0, int nq, int kvh,
				int r, int t, float l, const float o[HD / 8][4], int e, float vs)
{
	l += __shfl_xor_sync(0xffffffffu, l, 1);
	l += __shfl_xor_sync(0xffffffffu, l, 2);
	if (r >= nq)
		return;
	float inv = l > 0.0f ? vs / l : 0.0f;
	uint16_t *out = a.out + (size_t)(row0 + r / G) * a.n_heads * HD +
			(size_t)(kvh * G + r % G) * HD + 2 * t;

#pragma unroll
	for (int nt = 0; nt < HD / 8; nt++)
		*(uint32_t *)(out + nt * 8) = pack_bf16(o[nt][e] * inv, o[nt][e + 1] * inv);
}

/* Partial row r of a split at pp (the tile's rows, HD + 2) fp32: the max
 * in the natural-log domain (the softmax runs in log2 units), the sum the
 * quad's lanes pool, the outputs times vs unnormalized. */
template <int HD>
static __device__ void tc_store_partial(float *pp, int nq, int r, int t, float m, float l,
					const float o[HD / 8][4], int e, float vs)
{
	l += __shfl_xor_sync(0xffffffffu, l, 1);
	l += __shfl_xor_sync(0xffffffffu, l, 2);
	if (r >= nq)
		return;
	/* (HD + 2) and the split's offset are even: 8-byte aligned pairs */
	float *row = pp + (size_t)r * (HD + 2);

	if (t == 0) {
		row[0] = m * KN_LN2;
		row[1] = l;
	}
#pragma unroll
	for (int nt = 0; nt < HD / 8; nt++)
		*(float2 *)(row + 2 + nt * 8 + 2 * t) =
			make_float2(o[nt][e] * vs, o[nt][e + 1] * vs);
}

/* The partial rows of a split with no keys for the tile, as the reduce
 * weighs them out: max -inf, sum 0, zeros; by a block of THREADS. */
template <int HD, int THREADS>
static __device__ void tc_store_empty(float *pp, int nq)
{
	for (int idx = threadIdx.x; idx < nq * (HD + 2); idx += THREADS)
		pp[idx] = idx % (HD + 2) ? 0.0f : -INFINITY;
}

#endif
