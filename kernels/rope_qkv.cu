/*
 * rope_qkv.cu: bias add + RoPE (rotate-half) on the fused QKV projection,
 * with K and V written straight into the paged cache (see kn_rope_qkv).
 *
 * Each thread takes one item of a token row: a (head, i) pair, i < half,
 * rotating elements i and i + half together, or one element of V.  The angle is formed in fp32
 * as inv_freq[i] * pos, as the CPU reference does, and its cosine and
 * sine taken by sincosf (within 2 ulp of the reference's correctly
 * rounded values; double precision cost 10 us a layer at batch 1).
 */
#include "kernels/kn_check.cuh"

static __global__ void rope_qkv_kernel(const float *qkv, const float *bias, const int32_t *pos,
				       const int32_t *slot, const float *inv_freq,
				       uint16_t *q_out, uint16_t *k_cache, uint16_t *v_cache,
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
				k_cache[kv_row + off - qd] = kn_f2bf(ra);
				k_cache[kv_row + off - qd + half] = kn_f2bf(rb);
			}
		} else {
			float v = row[qd + kd + t - n_rot];

			if (bias)
				v += bias[qd + kd + t - n_rot];
			v_cache[kv_row + t - n_rot] = kn_f2bf(v);
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

static int launch_rope_qkv(const float *qkv, const float *bias, const int32_t *pos,
			   const int32_t *slot, const float *inv_freq, uint16_t *q_out,
			   uint16_t *k_cache, uint16_t *v_cache, int n_rows, int n_heads,
			   int n_kv, int hd, cudaStream_t s)
{
	int items = (n_heads + n_kv) * (hd / 2) + n_kv * hd;
	int pieces = (items + RT_THREADS - 1) / RT_THREADS;
	dim3 grid(n_rows, n_rows >= RT_MANY_ROWS ? 1 : pieces);

	KN_LAUNCH(rope_qkv_kernel, grid, n_rows >= RT_MANY_ROWS ? 2 * RT_THREADS : RT_THREADS, 0,
		  s, qkv, bias, pos, slot, inv_freq, q_out, k_cache, v_cache, n_heads, n_kv, hd);
	KN_LAUNCHED();
	return 0;
}

extern "C" int kn_rope_qkv(const float *qkv, const float *bias, const int32_t *pos,
			   const int32_t *slot, const float *inv_freq, uint16_t *q_out,
			   uint16_t *k_cache, uint16_t *v_cache, int n_rows, int n_heads,
			   int n_kv, int head_dim, kn_stream s)
{
	KN_REQUIRE(qkv && pos && slot && inv_freq && q_out && k_cache && v_cache);
	KN_REQUIRE(n_rows >= 1 && n_heads >= 1 && n_kv >= 1);
	KN_REQUIRE(head_dim >= 2 && head_dim % 2 == 0);
	KN_REQUIRE((n_heads + n_kv) * (head_dim / 2) + n_kv * head_dim <= 65535 * RT_THREADS);
	return launch_rope_qkv(qkv, bias, pos, slot, inv_freq, q_out, k_cache, v_cache, n_rows,
			       n_heads, n_kv, head_dim, s);
}
