/*
 * attention.cu: paged causal attention with grouped KV heads, for prefill
 * / extend chunks and for decode (see kn_attn_* in kn.h).
 *
 * One kernel serves both.  A block takes one tile (up to TOKS consecutive
 * rows of one sequence), one KV head and one split of the key range; its
 * query rows are every (token, q head of the group) pair, at most 32, so
 * each K/V tile loaded into shared memory serves the whole GQA group.
 * Keys go in tiles of 32 through shared memory (bf16 pages -> fp32), with
 * the flash-style online softmax: lane j scores key j for each of its
 * warp's 8 query rows, the running max is a warp max, and each lane keeps
 * its own share of the denominator and the output dims d = lane + 32 i.
 *
 * Prefill runs with one split and writes bf16 rows directly.  Decode runs
 * n_splits splits of the keys (to fill the machine when there are few
 * sequences), each writing (max, sum, unnormalized output) partials that
 * a second kernel combines; that reduce also serves the tensor-core
 * kernels' splits (kn_attn_reduce_splits, kn_attn_reduce_decode), whose
 * tiles hold other numbers of rows: the partials' rows per split are a
 * parameter.  A decode split past its row's keys writes nothing, and the
 * reduce of decode rows reads only the splits that hold keys: a captured
 * graph's grid has room for a ragged batch's longest row, most of it
 * empty in an even batch.
 *
 * fp32 CUDA-core math throughout: correct and simple, not tensor-core
 * fast (prefill attention is a small share of a 7B model's FLOPs below
 * 8k tokens).  Needs head_dim % 8 == 0 (16-byte page reads, 8-byte ones
 * from FP8 pages), <= 256.  FP8 E4M3 pages are widened to fp32 and
 * multiplied by the KV head's scale as they enter shared memory.
 */
#include "kernels/kn_attn.cuh"

#define KT 32       /* keys per shared-memory tile */
#define NWARP 4
#define RPW 8       /* query rows per warp */
#define QROWS (NWARP * RPW)   /* == KN_ATTN_PARTIAL_ROWS */

struct attn_params {
	struct kn_attn_args a;
	int group, n_splits, split_len;
	int rows;         /* partial rows per (tile, kv head, split): QROWS here */
	int decode;       /* tiles of one token split by split_len (kn_row_splits) */
	float *partial;   /* (n_tiles, n_kv, n_splits, rows, head_dim + 2) */
};

static size_t attn_smem(int hd)
{
	return sizeof(float) * ((size_t)QROWS * hd + (size_t)KT * (hd + 1) + (size_t)KT * hd +
				(size_t)QROWS * KT);
}

static __device__ __forceinline__ void unpack8(uint4 u, float *f)
{
	unsigned w[4] = { u.x, u.y, u.z, u.w };

#pragma unroll
	for (int e = 0; e < 4; e++) {
		f[2 * e] = __uint_as_float(w[e] << 16);
		f[2 * e + 1] = __uint_as_float(w[e] & 0xffff0000u);
	}
}

/* Eight E4M3 values (the low 8 bytes of u) times scale. */
static __device__ __forceinline__ void unpack8_e4m3(uint4 u, float scale, float *f)
{
	unsigned w[2] = { u.x, u.y };

#pragma unroll
	for (int e = 0; e < 2; e++) {
		float2 lo = kn_e4m3x2_to_f2((uint16_t)w[e]), hi = kn_e4m3x2_to_f2((uint16_t)(w[e] >> 16));

		f[4 * e] = lo.x * scale;
		f[4 * e + 1] = lo.y * scale;
		f[4 * e + 2] = hi.x * scale;
		f[4 * e + 3] = hi.y * scale;
	}
}

/* Keys [k0, k0 + KT) of one KV head into Ks (KT, hd + 1) and Vs (KT, hd);
 * keys at or past ke become zeros.  FP8 pages (a.kv_dtype) are read 8
 * bytes a chunk and scaled by ks, vs. */
template <int DPL>
static __device__ void load_kv(const struct kn_attn_args &a, const int32_t *bt, int kvh,
			       int k0, int ke, float ks, float vs, float *Ks, float *Vs)
{
	int hd = a.head_dim, chunks = hd / 8, f8 = a.kv_dtype == KN_KV_FP8_E4M3;
	uint4 kr[DPL], vr[DPL];

#pragma unroll
	for (int c = 0; c < DPL; c++) {
		int idx = threadIdx.x + c * NWARP * 32, j = idx / chunks, key = k0 + j;

		kr[c] = vr[c] = make_uint4(0, 0, 0, 0);
		if (idx < KT * chunks && key < ke) {
			size_t slot = (size_t)bt[key / a.page_size] * a.page_size + key % a.page_size;
			size_t off = (slot * a.n_kv + kvh) * hd + (idx - j * chunks) * 8;

			if (f8) {
				uint2 k = *(const uint2 *)((const uint8_t *)a.k_cache + off);
				uint2 v = *(const uint2 *)((const uint8_t *)a.v_cache + off);

				kr[c] = make_uint4(k.x, k.y, 0, 0);
				vr[c] = make_uint4(v.x, v.y, 0, 0);
			} else {
				kr[c] = *(const uint4 *)((const uint16_t *)a.k_cache + off);
				vr[c] = *(const uint4 *)((const uint16_t *)a.v_cache + off);
			}
		}
	}
#pragma unroll
	for (int c = 0; c < DPL; c++) {
		int idx = threadIdx.x + c * NWARP * 32, j = idx / chunks, d = (idx - j * chunks) * 8;
		float f[8];

		if (idx >= KT * chunks)
			continue;
		if (f8)
			unpack8_e4m3(kr[c], ks, f);
		else
			unpack8(kr[c], f);
#pragma unroll
		for (int e = 0; e < 8; e++)
			Ks[j * (hd + 1) + d + e] = f[e];
		if (f8)
			unpack8_e4m3(vr[c], vs, f);
		else
			unpack8(vr[c], f);
#pragma unroll
		for (int e = 0; e < 8; e++)
			Vs[j * hd + d + e] = f[e];
	}
}

/* Online-softmax state of a warp's query rows. */
template <int DPL>
struct rows_state {
	float m[RPW], l[RPW], acc[RPW][DPL];
	int pos[RPW];
};

/* One key tile for the warp's rows: scores, softmax update, P V. */
template <int DPL>
static __device__ void attend_tile(rows_state<DPL> &st, const float *Qs, const float *Ks,
				   const float *Vs, float *Ps, int hd, int nq, int k0, int ke,
				   float scale)
{
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, key = k0 + lane;
	const float *kk = Ks + lane * (hd + 1);
	float s[RPW];

#pragma unroll
	for (int i = 0; i < RPW; i++)
		s[i] = 0.0f;
	for (int d = 0; d < hd; d += 4) {
		float k0v = kk[d], k1v = kk[d + 1], k2v = kk[d + 2], k3v = kk[d + 3];

#pragma unroll
		for (int i = 0; i < RPW; i++) {
			int r = warp + NWARP * i;

			if (r < nq) {
				float4 qv = *(const float4 *)(Qs + r * hd + d);

				s[i] += qv.x * k0v + qv.y * k1v + qv.z * k2v + qv.w * k3v;
			}
		}
	}
#pragma unroll
	for (int i = 0; i < RPW; i++) {
		int r = warp + NWARP * i;

		if (r >= nq)
			continue;
		bool ok = key < ke && key <= st.pos[i];
		float sc = ok ? s[i] * scale : -INFINITY;
		float mn = fmaxf(st.m[i], kn_warp_max(sc));
		float p = ok ? expf(sc - mn) : 0.0f;
		float alpha = mn == -INFINITY ? 1.0f : expf(st.m[i] - mn);

		st.l[i] = st.l[i] * alpha + p;
#pragma unroll
		for (int dd = 0; dd < DPL; dd++)
			st.acc[i][dd] *= alpha;
		st.m[i] = mn;
		Ps[r * KT + lane] = p;
	}
	__syncwarp();
	int nk = min(KT, ke - k0);

	for (int j = 0; j < nk; j++) {
		float v[DPL];

#pragma unroll
		for (int dd = 0; dd < DPL; dd++) {
			int d = lane + 32 * dd;

			v[dd] = d < hd ? Vs[j * hd + d] : 0.0f;
		}
#pragma unroll
		for (int i = 0; i < RPW; i++) {
			int r = warp + NWARP * i;

			if (r < nq) {
				float p = Ps[r * KT + j];

#pragma unroll
				for (int dd = 0; dd < DPL; dd++)
					st.acc[i][dd] += p * v[dd];
			}
		}
	}
}

/* Final output (one split) or partials (several) of the warp's rows. */
template <int DPL>
static __device__ void attn_finish(const struct attn_params &P, rows_state<DPL> &st, int tile,
				   int kvh, int sp, int row0, int nq)
{
	const struct kn_attn_args &a = P.a;
	int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, hd = a.head_dim;

#pragma unroll
	for (int i = 0; i < RPW; i++) {
		int r = warp + NWARP * i;

		if (r >= nq)
			continue;
		float lt = kn_warp_sum(st.l[i]);
		int t = r / P.group, h = kvh * P.group + (r - t * P.group);

		if (P.n_splits == 1) {
			float inv = lt > 0.0f ? 1.0f / lt : 0.0f;
			uint16_t *o = a.out + (size_t)(row0 + t) * a.n_heads * hd + (size_t)h * hd;

#pragma unroll
			for (int dd = 0; dd < DPL; dd++)
				if (lane + 32 * dd < hd)
					o[lane + 32 * dd] = kn_f2bf(st.acc[i][dd] * inv);
		} else {
			float *pp = P.partial + (((size_t)(tile * a.n_kv + kvh) * P.n_splits + sp) *
						 QROWS + r) * (hd + 2);

			if (lane == 0) {
				pp[0] = st.m[i];
				pp[1] = lt;
			}
#pragma unroll
			for (int dd = 0; dd < DPL; dd++)
				if (lane + 32 * dd < hd)
					pp[2 + lane + 32 * dd] = st.acc[i][dd];
		}
	}
}

template <int DPL>
static __global__ void __launch_bounds__(NWARP * 32) attn_kernel(const struct attn_params P)
{
	kn_pdl_enter();
	extern __shared__ float sm[];
	const struct kn_attn_args &a = P.a;
	int hd = a.head_dim, G = P.group, qd = a.n_heads * hd;
	int tile = blockIdx.x, kvh = blockIdx.y, sp = blockIdx.z;
	int row0 = a.tile_row0[tile], nq = a.tile_n[tile] * G, warp = threadIdx.x >> 5;
	float *Qs = sm, *Ks = Qs + QROWS * hd, *Vs = Ks + KT * (hd + 1), *Ps = Vs + KT * hd;
	int ctx = a.pos[row0 + a.tile_n[tile] - 1] + 1;
	int kb, ke;
	const int32_t *bt = a.block_tables + a.bt_off[row0];
	float scale = 1.0f / sqrtf((float)hd);
	int f8 = a.kv_dtype == KN_KV_FP8_E4M3;
	float ks = f8 ? a.k_scale[kvh] : 1.0f, vs = f8 ? a.v_scale[kvh] : 1.0f;
	rows_state<DPL> st;

	kn_split_range(kn_launch_split_len(a, P.split_len), ctx, P.n_splits, sp, kb, ke);
	if (kb >= ke)   /* past the row's keys (never split 0): no partial */
		return;
	for (int idx = threadIdx.x; idx < nq * hd; idx += blockDim.x) {
		int r = idx / hd, d = idx - r * hd, t = r / G;

		Qs[idx] = kn_bf2f(a.q[(size_t)(row0 + t) * qd + (size_t)(kvh * G + r - t * G) * hd + d]);
	}
#pragma unroll
	for (int i = 0; i < RPW; i++) {
		int r = warp + NWARP * i;

		st.m[i] = -INFINITY;
		st.l[i] = 0.0f;
#pragma unroll
		for (int dd = 0; dd < DPL; dd++)
			st.acc[i][dd] = 0.0f;
		st.pos[i] = r < nq ? a.pos[row0 + r / G] : -1;
	}
	for (int k0 = kb; k0 < ke; k0 += KT) {
		__syncthreads();
		load_kv<DPL>(a, bt, kvh, k0, ke, ks, vs, Ks, Vs);
		__syncthreads();
		attend_tile<DPL>(st, Qs, Ks, Vs, Ps, hd, nq, k0, ke, scale);
	}
	attn_finish<DPL>(P, st, tile, kvh, sp, row0, nq);
}

/* Combines the splits of the rows of each (tile, kv head): blockIdx.x;
 * the rows' elements are spread over the gridDim.y blocks of it (one
 * element a thread for tiles of the most tokens), so that the chain of
 * loads over the splits is not repeated within a thread.  Every split it
 * reads wrote all of its rows (max -inf, sum 0, zeros when it had no keys
 * for some), so the loop weighs those by 0, with no branch in the way of
 * the loads; of decode rows it reads the splits that hold keys. */
static __global__ void attn_reduce_kernel(const struct attn_params P)
{
	kn_pdl_enter();
	const struct kn_attn_args &a = P.a;
	int hd = a.head_dim, G = P.group, n_kv = a.n_kv;
	int tile = blockIdx.x / n_kv, kvh = blockIdx.x % n_kv;
	int row0 = a.tile_row0[tile], nq = a.tile_n[tile] * G, n = P.n_splits;
	size_t split_stride = (size_t)P.rows * (hd + 2);
	const float *base = P.partial + (size_t)(tile * n_kv + kvh) * P.n_splits * split_stride;

	if (P.decode)
		n = kn_row_splits(kn_launch_split_len(a, P.split_len), a.pos[row0] + 1, n);

	for (int idx = blockIdx.y * blockDim.x + threadIdx.x; idx < nq * hd;
	     idx += gridDim.y * blockDim.x) {
		int r = idx / hd, d = idx - r * hd, t = r / G, h = kvh * G + (r - t * G);
		const float *pr = base + (size_t)r * (hd + 2);
		float M = -INFINITY, L = 0.0f, o = 0.0f;

		for (int sp = 0; sp < n; sp++)
			M = fmaxf(M, pr[sp * split_stride]);
		for (int sp = 0; sp < n; sp++) {
			const float *q = pr + sp * split_stride;
			float w = q[0] == -INFINITY ? 0.0f : expf(q[0] - M);

			L += q[1] * w;
			o += q[2 + d] * w;
		}
		a.out[(size_t)(row0 + t) * a.n_heads * hd + (size_t)h * hd + d] =
			kn_f2bf(L > 0.0f ? o / L : 0.0f);
	}
}

template <int DPL>
static int launch_attn_dpl(const struct attn_params &P, dim3 grid, cudaStream_t s)
{
	size_t smem = attn_smem(P.a.head_dim);

	if (smem > 48 * 1024)
		KN_CHECK(cudaFuncSetAttribute(attn_kernel<DPL>,
					      cudaFuncAttributeMaxDynamicSharedMemorySize,
					      (int)smem));
	KN_LAUNCH(attn_kernel<DPL>, grid, NWARP * 32, smem, s, P);
	KN_LAUNCHED();
	return 0;
}

static int launch_attn(const struct attn_params &P, cudaStream_t s)
{
	dim3 grid(P.a.n_tiles, P.a.n_kv, P.n_splits);
	int hd = P.a.head_dim;

	if (hd <= 32)
		return launch_attn_dpl<1>(P, grid, s);
	if (hd <= 64)
		return launch_attn_dpl<2>(P, grid, s);
	if (hd <= 128)
		return launch_attn_dpl<4>(P, grid, s);
	return launch_attn_dpl<8>(P, grid, s);
}

/* tile_tokens: the most tokens a tile holds (1 in decode). */
static int launch_attn_reduce(const struct attn_params &P, int tile_tokens, cudaStream_t s)
{
	dim3 grid(P.a.n_tiles * P.a.n_kv, (tile_tokens * P.group * P.a.head_dim + 255) / 256);

	KN_LAUNCH(attn_reduce_kernel, grid, 256, 0, s, P);
	KN_LAUNCHED();
	return 0;
}

/* The reduce of n_splits partials of rows rows a split (decode: tiles of
 * one token split by split_len, reading only their splits with keys). */
static int reduce(const struct kn_attn_args *a, int n_splits, int split_len, int rows,
		  int tile_tokens, int decode, const float *partial, cudaStream_t s)
{
	struct attn_params P;

	P.a = *a;
	P.group = a->n_heads / a->n_kv;
	P.n_splits = n_splits;
	P.split_len = split_len;
	P.rows = rows;
	P.decode = decode;
	P.partial = (float *)partial;
	return launch_attn_reduce(P, tile_tokens, s);
}

int kn_attn_reduce_splits(const struct kn_attn_args *a, int n_splits, int rows, int tile_tokens,
			  const float *partial, cudaStream_t s)
{
	return reduce(a, n_splits, 0, rows, tile_tokens, 0, partial, s);
}

int kn_attn_reduce_decode(const struct kn_attn_args *a, int n_splits, int split_len, int rows,
			  const float *partial, cudaStream_t s)
{
	return reduce(a, n_splits, split_len, rows, 1, 1, partial, s);
}

extern "C" int kn_attn_tile_rows(int n_heads, int n_kv)
{
	if (n_kv < 1 || n_heads < n_kv || n_heads % n_kv || n_heads / n_kv > QROWS)
		return 0;
	return QROWS / (n_heads / n_kv);
}

static int check_args(const struct kn_attn_args *a)
{
	KN_REQUIRE(a && a->out && a->q && a->k_cache && a->v_cache && a->block_tables);
	KN_REQUIRE(a->pos && a->bt_off && a->tile_row0 && a->tile_n);
	KN_REQUIRE(a->n_tiles >= 1 && a->page_size >= 1);
	KN_REQUIRE(kn_attn_tile_rows(a->n_heads, a->n_kv) >= 1);
	KN_REQUIRE(a->head_dim >= 8 && a->head_dim <= 256 && a->head_dim % 8 == 0);
	KN_REQUIRE(a->n_tiles <= 65535 * 1024);
	KN_REQUIRE(a->kv_dtype == KN_KV_BF16 ||
		   (a->kv_dtype == KN_KV_FP8_E4M3 && a->k_scale && a->v_scale));
	return 0;
}

extern "C" int kn_attn_prefill(const struct kn_attn_args *a, kn_stream s)
{
	struct attn_params P;
	int rc = check_args(a);

	if (rc)
		return rc;
	P.a = *a;
	P.group = a->n_heads / a->n_kv;
	P.n_splits = 1;
	P.a.split_len_at = NULL;
	P.split_len = 1 << 30;
	P.rows = QROWS;
	P.decode = 0;
	P.partial = NULL;
	return launch_attn(P, s);
}

extern "C" size_t kn_attn_partial_floats(int n_tiles, int n_heads, int n_kv, int head_dim,
					 int n_splits)
{
	(void)n_heads;
	return (size_t)n_tiles * n_kv * n_splits * QROWS * (head_dim + 2);
}

extern "C" int kn_attn_decode(const struct kn_attn_args *a, int n_splits, int split_len,
			      float *partial, kn_stream s)
{
	struct attn_params P;
	int rc = check_args(a);

	if (rc)
		return rc;
	KN_REQUIRE(n_splits >= 1 && n_splits <= 65535 &&
		   (split_len == 0 || (split_len >= KT && split_len % KT == 0)));
	KN_REQUIRE(a->n_kv <= 65535);
	KN_REQUIRE(n_splits == 1 || partial);
	P.a = *a;
	P.group = a->n_heads / a->n_kv;
	P.n_splits = n_splits;
	P.split_len = split_len;
	P.rows = QROWS;
	P.decode = 1;
	P.partial = partial;
	if ((rc = launch_attn(P, s)))
		return rc;
	return n_splits == 1 ? 0 : launch_attn_reduce(P, 1, s);
}
