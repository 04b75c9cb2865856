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
#include "kernels/kn_check.cuh"

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

static __device__ __forceinline__ uint32_t pack_u16(uint16_t lo, uint16_t hi)
{
	return (uint32_t)lo | ((uint32_t)hi << 16);
}

static __device__ __forceinline__ void mma16816(float *d, const uint32_t *a, uint32_t b0,
						uint32_t b1)
{
	asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
		     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
		     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Keys [k0, k0 + TC_KT) of KV head kvh into Ks, Vs (TC_KT, HD + 8) bf16. */
template <int HD>
static __device__ void tc_load_kv(const struct kn_attn_args &a, const int32_t *bt, int kvh,
				  int k0, int ke, uint16_t *Ks, uint16_t *Vs)
{
	const int LD = HD + 8, CH = HD / 8, PER = TC_KT * CH / (TC_WARPS * 32);
	uint4 kr[PER], vr[PER];

#pragma unroll
	for (int c = 0; c < PER; c++) {
		int idx = threadIdx.x + c * TC_WARPS * 32, j = idx / CH, key = k0 + j;

		kr[c] = vr[c] = make_uint4(0, 0, 0, 0);
		if (key < ke) {
			size_t slot = (size_t)bt[key / a.page_size] * a.page_size + key % a.page_size;
			size_t off = (slot * a.n_kv + kvh) * HD + (idx - j * CH) * 8;

			kr[c] = *(const uint4 *)(a.k_cache + off);
			vr[c] = *(const uint4 *)(a.v_cache + off);
		}
	}
#pragma unroll
	for (int c = 0; c < PER; c++) {
		int idx = threadIdx.x + c * TC_WARPS * 32, j = idx / CH, d = (idx - j * CH) * 8;

		*(uint4 *)(Ks + j * LD + d) = kr[c];
		*(uint4 *)(Vs + j * LD + d) = vr[c];
	}
}

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

/* Masked online-softmax update of one row half (lo: e = 0, hi: e = 2);
 * turns s into probabilities, returns the rescale factor of the row. */
static __device__ __forceinline__ float tc_softmax(float s[TC_KT / 8][4], int e, int pos,
						   int k0, int ke, int t, float scale, float &m,
						   float &l)
{
	float mx = -INFINITY, sum = 0.0f;

#pragma unroll
	for (int nt = 0; nt < TC_KT / 8; nt++)
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
	for (int nt = 0; nt < TC_KT / 8; nt++)
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

/* The rows' query fragments (zeros for rows past the tile). */
template <int HD>
static __device__ void tc_load_q(const struct kn_attn_args &a, int G, int row0, int nq, int kvh,
				 int r_lo, int g, int t, uint32_t qf[HD / 16][4])
{
	int qd = a.n_heads * HD, r_hi = r_lo + 8;
	const uint16_t *ql = a.q + (size_t)(row0 + r_lo / G) * qd + (size_t)(kvh * G + r_lo % G) * HD;
	const uint16_t *qh = a.q + (size_t)(row0 + r_hi / G) * qd + (size_t)(kvh * G + r_hi % G) * HD;

	(void)g;
#pragma unroll
	for (int ks = 0; ks < HD / 16; ks++) {
		int c = ks * 16 + 2 * t;

		qf[ks][0] = r_lo < nq ? ld32(ql + c) : 0u;
		qf[ks][1] = r_hi < nq ? ld32(qh + c) : 0u;
		qf[ks][2] = r_lo < nq ? ld32(ql + c + 8) : 0u;
		qf[ks][3] = r_hi < nq ? ld32(qh + c + 8) : 0u;
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
		float al = tc_softmax(s, 0, pos_lo, k0, ctx, t, scale, m_lo, l_lo);
		float ah = tc_softmax(s, 2, pos_hi, k0, ctx, t, scale, m_hi, l_hi);

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
