/*
 * rope_qkv.cu: bias add + RoPE (rotate-half) on the fused QKV projection,
 * with K and V written straight into the paged cache (see kn_rope_qkv).
 *
 * One block per token row; each thread takes (head, i) pairs, i < half,
 * rotating elements i and i + half together.  The angle is formed in fp32
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
	int r = blockIdx.x, half = hd / 2, p = pos[r];
	int qd = n_heads * hd, kd = n_kv * hd;
	const float *row = qkv + (size_t)r * (qd + 2 * kd);
	size_t kv_row = (size_t)slot[r] * kd;

	for (int t = threadIdx.x; t < (n_heads + n_kv) * half; t += blockDim.x) {
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
	}
	for (int t = threadIdx.x; t < kd; t += blockDim.x) {
		float v = row[qd + kd + t];

		if (bias)
			v += bias[qd + kd + t];
		v_cache[kv_row + t] = kn_f2bf(v);
	}
}

static int launch_rope_qkv(const float *qkv, const float *bias, const int32_t *pos,
			   const int32_t *slot, const float *inv_freq, uint16_t *q_out,
			   uint16_t *k_cache, uint16_t *v_cache, int n_rows, int n_heads,
			   int n_kv, int hd, cudaStream_t s)
{
	rope_qkv_kernel<<<n_rows, 256, 0, s>>>(qkv, bias, pos, slot, inv_freq, q_out, k_cache,
					       v_cache, n_heads, n_kv, hd);
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
	return launch_rope_qkv(qkv, bias, pos, slot, inv_freq, q_out, k_cache, v_cache, n_rows,
			       n_heads, n_kv, head_dim, s);
}
