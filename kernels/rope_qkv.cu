/*
 * rope_qkv.cu: bias add + RoPE (rotate-half) on the fused QKV projection,
 * with K and V written straight into the paged cache (see kn_rope_qkv);
 * for Qwen3, an RMSNorm of each q and k head between the two.
 *
 * Each thread takes one item of a token row: a (head, i) pair, i < half,
 * rotating elements i and i + half together, or one element of V.  The angle is formed in fp32
 * as inv_freq[i] * pos, as the CPU reference does, and its cosine and
 * sine taken by sincosf (within 2 ulp of the reference's correctly
 * rounded values; double precision cost 10 us a layer at batch 1).
 *
 * With q/k norms a rotation needs its whole head's sum of squares first,
 * so that variant (rope_qkv_norm_kernel) works a warp at a time: one warp
 * a head, each lane holding the pairs (i, i + half) for i = lane, lane +
 * 32, ... in registers (head_dim <= 256: at most RT_PAIRS pairs a lane),
 * one shuffle reduction, then scale, weight and rotate; the warps left
 * after the heads copy V, 32 elements each.  Models without norms keep
 * the thread-per-pair kernel, unchanged.
 *
 * Both kernels are templates over the cache's element type KV: bf16
 * (uint16_t), or E4M3 bytes (uint8_t) written as e4m3(x * (1 / scale))
 * with the KV head's scale (kn_rope_qkv_e4m3); q is bf16 either way.
 */
#include "kernels/kn_fp8.cuh"

/* One cache (or q) element: bf16, or E4M3 of x times the head's inverse
 * scale inv. */
static __device__ __forceinline__ void kv_put(uint16_t *p, float x, float)
{
	*p = kn_f2bf(x);
}

static __device__ __forceinline__ void kv_put(uint8_t *p, float x, float inv)
{
	*p = kn_f2e4m3(x * inv);
}

/* 1 / scale[h] in fp32 (as the host forms it) for E4M3 caches; unused
 * for bf16. */
template <typename KV>
static __device__ __forceinline__ float kv_inv(const float *scale, int h)
{
	if constexpr (sizeof(KV) == 1)
		return 1.0f / scale[h];
	else
		return 1.0f;
}

template <typename KV>
static __global__ void rope_qkv_kernel(const float *qkv, const float *bias, const int32_t *pos,
				       const int32_t *slot, const float *inv_freq,
				       const float *k_scale, const float *v_scale,
				       uint16_t *q_out, KV *k_cache, KV *v_cache,
				       int n_heads, int n_kv, int hd)
{
	kn_pdl_enter();
	int r = blockIdx.x, half = hd / 2, p = pos[r];
	int qd = n_heads * hd, kd = n_kv * hd, n_rot = (n_heads + n_kv) * half;
	const float *row = qkv + (size_t)r * (qd + 2 * kd);
	size_t kv_row = (size_t)slot[r] * kd;

	for (int t = blockIdx.y * blockDim.x + threadIdx.x; t < n_rot + kd;
	     t += gridDim.y * blockDim.x) {
		if (t < n_rot) {
			int h = t / half, i = t % half;
			int off = h * hd + i;   /* q heads then k heads: contiguous in row */
			float a = row[off], b = row[off + half];
			float ang = inv_freq[i] * (float)p;
			float c, sn;

			sincosf(ang, &sn, &c);
			if (bias) {
				a += bias[off];
				b += bias[off + half];
			}
			float ra = a * c - b * sn, rb = b * c + a * sn;

			if (h < n_heads) {
				q_out[(size_t)r * qd + off] = kn_f2bf(ra);
				q_out[(size_t)r * qd + off + half] = kn_f2bf(rb);
			} else {
				float inv = kv_inv<KV>(k_scale, h - n_heads);

				kv_put(k_cache + kv_row + off - qd, ra, inv);
				kv_put(k_cache + kv_row + off - qd + half, rb, inv);
			}
		} else {
			float v = row[qd + kd + t - n_rot];

			if (bias)
				v += bias[qd + kd + t - n_rot];
			kv_put(v_cache + kv_row + t - n_rot, v, kv_inv<KV>(v_scale, (t - n_rot) / hd));
		}
	}
}

#define RT_PAIRS 4   /* pairs a lane holds in the norm kernel: head_dim <= 256 */

/* One warp-item of the norm kernel: the (hd) head at row + off, bias
 * added, RMSNorm'ed by w (hd), rotated, written to dst (hd) by kv_put
 * (inv: the head's inverse scale for an E4M3 cache). */
template <typename T>
static __device__ __forceinline__ void norm_rope_head(const float *row, const float *bias,
						      const float *w, float eps, float p,
						      const float *inv_freq, T *dst, float inv,
						      int off, int hd, int lane)
{
	int half = hd / 2;
	float a[RT_PAIRS], b[RT_PAIRS], ss = 0.0f;

#pragma unroll
	for (int k = 0; k < RT_PAIRS; k++) {
		int i = lane + 32 * k;

		a[k] = b[k] = 0.0f;
		if (i < half) {
			a[k] = row[off + i] + (bias ? bias[off + i] : 0.0f);
			b[k] = row[off + i + half] + (bias ? bias[off + i + half] : 0.0f);
		}
		ss += a[k] * a[k] + b[k] * b[k];
	}
	ss = kn_warp_sum(ss);
	float scale = 1.0f / sqrtf(ss / (float)hd + eps);

#pragma unroll
	for (int k = 0; k < RT_PAIRS; k++) {
		int i = lane + 32 * k;
		float c, sn;

		if (i >= half)
			continue;
		float x0 = w[i] * (a[k] * scale), x1 = w[i + half] * (b[k] * scale);

		sincosf(inv_freq[i] * p, &sn, &c);
		kv_put(dst + i, x0 * c - x1 * sn, inv);
		kv_put(dst + i + half, x1 * c + x0 * sn, inv);
	}
}

/* Items of a row: the n_heads + n_kv heads, then V in pieces of 32.  The
 * item loop is uniform over a warp, so the shuffles see all 32 lanes. */
template <typename KV>
static __global__ void rope_qkv_norm_kernel(const float *qkv, const float *bias,
					    const float *q_norm, const float *k_norm, float eps,
					    const int32_t *pos, const int32_t *slot,
					    const float *inv_freq, const float *k_scale,
					    const float *v_scale, uint16_t *q_out, KV *k_cache,
					    KV *v_cache, int n_heads, int n_kv, int hd)
{
	kn_pdl_enter();
	int r = blockIdx.x, lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
	int qd = n_heads * hd, kd = n_kv * hd, n_hk = n_heads + n_kv;
	int n_items = n_hk + (kd + 31) / 32;
	const float *row = qkv + (size_t)r * (qd + 2 * kd);
	size_t kv_row = (size_t)slot[r] * kd;
	float p = (float)pos[r];

	for (int it = blockIdx.y * wpb + (threadIdx.x >> 5); it < n_items; it += gridDim.y * wpb) {
		if (it < n_heads) {
			norm_rope_head(row, bias, q_norm, eps, p, inv_freq,
				       q_out + (size_t)r * qd + (size_t)it * hd, 1.0f, it * hd, hd,
				       lane);
		} else if (it < n_hk) {
			norm_rope_head(row, bias, k_norm, eps, p, inv_freq,
				       k_cache + kv_row + (size_t)(it - n_heads) * hd,
				       kv_inv<KV>(k_scale, it - n_heads), it * hd, hd, lane);
		} else {
			int e = (it - n_hk) * 32 + lane;

			if (e < kd)
				kv_put(v_cache + kv_row + e,
				       row[qd + kd + e] + (bias ? bias[qd + kd + e] : 0.0f),
				       kv_inv<KV>(v_scale, e / hd));
		}
	}
}

/* A grid of (row, piece of the row's items): a decode step of a few
 * tokens spreads each token's rotations and V copies over several
 * blocks, so that it is not one block's serial loop; a long prefill
 * chunk takes one block a row, its threads looping over the items, so
 * that the blocks are not too small to schedule quickly. */
#define RT_THREADS 128
#define RT_MANY_ROWS 256

template <typename KV>
static int launch_rope_qkv(const float *qkv, const float *bias, const int32_t *pos,
			   const int32_t *slot, const float *inv_freq, const float *k_scale,
			   const float *v_scale, uint16_t *q_out, KV *k_cache, KV *v_cache,
			   int n_rows, int n_heads, int n_kv, int hd, cudaStream_t s)
{
	int items = (n_heads + n_kv) * (hd / 2) + n_kv * hd;
	int pieces = (items + RT_THREADS - 1) / RT_THREADS;
	dim3 grid(n_rows, n_rows >= RT_MANY_ROWS ? 1 : pieces);

	KN_LAUNCH(rope_qkv_kernel<KV>, grid, n_rows >= RT_MANY_ROWS ? 2 * RT_THREADS : RT_THREADS,
		  0, s, qkv, bias, pos, slot, inv_freq, k_scale, v_scale, q_out, k_cache, v_cache,
		  n_heads, n_kv, hd);
	KN_LAUNCHED();
	return 0;
}

/* The same grid, counted in warp-items (heads and 32-element V pieces). */
template <typename KV>
static int launch_rope_qkv_norm(const float *qkv, const float *bias, const float *q_norm,
				const float *k_norm, float eps, const int32_t *pos,
				const int32_t *slot, const float *inv_freq, const float *k_scale,
				const float *v_scale, uint16_t *q_out, KV *k_cache, KV *v_cache,
				int n_rows, int n_heads, int n_kv, int hd, cudaStream_t s)
{
	int items = n_heads + n_kv + (n_kv * hd + 31) / 32;
	int pieces = (items + RT_THREADS / 32 - 1) / (RT_THREADS / 32);
	dim3 grid(n_rows, n_rows >= RT_MANY_ROWS ? 1 : pieces);

	KN_LAUNCH(rope_qkv_norm_kernel<KV>, grid,
		  n_rows >= RT_MANY_ROWS ? 2 * RT_THREADS : RT_THREADS, 0, s, qkv, bias, q_norm,
		  k_norm, eps, pos, slot, inv_freq, k_scale, v_scale, q_out, k_cache, v_cache,
		  n_heads, n_kv, hd);
	KN_LAUNCHED();
	return 0;
}

/* The checks and the pick of kernel, for either cache type. */
template <typename KV>
static int rope_qkv(const float *qkv, const float *bias, const float *q_norm,
		    const float *k_norm, float eps, const int32_t *pos, const int32_t *slot,
		    const float *inv_freq, const float *k_scale, const float *v_scale,
		    uint16_t *q_out, KV *k_cache, KV *v_cache, int n_rows, int n_heads, int n_kv,
		    int head_dim, cudaStream_t s)
{
	KN_REQUIRE(qkv && pos && slot && inv_freq && q_out && k_cache && v_cache);
	KN_REQUIRE(n_rows >= 1 && n_heads >= 1 && n_kv >= 1);
	KN_REQUIRE(head_dim >= 2 && head_dim % 2 == 0);
	KN_REQUIRE((n_heads + n_kv) * (head_dim / 2) + n_kv * head_dim <= 65535 * RT_THREADS);
	KN_REQUIRE(!q_norm == !k_norm);
	if (!q_norm)
		return launch_rope_qkv(qkv, bias, pos, slot, inv_freq, k_scale, v_scale, q_out,
				       k_cache, v_cache, n_rows, n_heads, n_kv, head_dim, s);
	KN_REQUIRE(head_dim <= 64 * RT_PAIRS && eps > 0.0f);
	return launch_rope_qkv_norm(qkv, bias, q_norm, k_norm, eps, pos, slot, inv_freq, k_scale,
				    v_scale, q_out, k_cache, v_cache, n_rows, n_heads, n_kv,
				    head_dim, s);
}

extern "C" int kn_rope_qkv(const float *qkv, const float *bias, const float *q_norm,
			   const float *k_norm, float eps, const int32_t *pos,
			   const int32_t *slot, const float *inv_freq, uint16_t *q_out,
			   uint16_t *k_cache, uint16_t *v_cache, int n_rows, int n_heads,
			   int n_kv, int head_dim, kn_stream s)
{
	return rope_qkv(qkv, bias, q_norm, k_norm, eps, pos, slot, inv_freq, NULL, NULL, q_out,
			k_cache, v_cache, n_rows, n_heads, n_kv, head_dim, s);
}

extern "C" int kn_rope_qkv_e4m3(const float *qkv, const float *bias, const float *q_norm,
				const float *k_norm, float eps, const int32_t *pos,
				const int32_t *slot, const float *inv_freq, const float *k_scale,
				const float *v_scale, uint16_t *q_out, uint8_t *k_cache,
				uint8_t *v_cache, int n_rows, int n_heads, int n_kv, int head_dim,
				kn_stream s)
{
	KN_REQUIRE(k_scale && v_scale);
	return rope_qkv(qkv, bias, q_norm, k_norm, eps, pos, slot, inv_freq, k_scale, v_scale,
			q_out, k_cache, v_cache, n_rows, n_heads, n_kv, head_dim, s);
}
