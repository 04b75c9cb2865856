/*
 * roofline.c: per-step ceilings (see roofline.h).
 */
#include "engine/roofline.h"

void eng_roofline_shape_of(const struct eng_model_config *c, int weight_elem_bytes,
			   int kv_elem_bytes, struct eng_roofline_shape *out)
{
	double H = c->hidden, I = c->intermediate, L = c->n_layers, hd = c->head_dim;
	double qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
	double proj = H * (qd + 2 * kvd) + qd * H + 3 * H * I;
	double bias = (c->qkv_bias ? qd + 2 * kvd : 0) + (c->o_bias ? H : 0) +
		      (c->mlp_bias ? 2 * I + H : 0);
	double norms = 2 * H;

	out->weight_bytes = weight_elem_bytes * (L * (proj + bias + norms) + H + (double)c->vocab * H);
	out->kv_token_bytes = 2.0 * L * kvd * kv_elem_bytes;
	out->linear_flops = 2 * L * proj;
	out->head_flops = 2.0 * c->vocab * H;
	out->attn_flops = 4 * L * c->n_heads * hd;
}

void eng_roofline_shape_fp8(const struct eng_model_config *c, int weight_elem_bytes,
			    int kv_elem_bytes, struct eng_roofline_shape *out)
{
	double H = c->hidden, I = c->intermediate, L = c->n_layers, hd = c->head_dim;
	double qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
	double proj = H * (qd + 2 * kvd) + qd * H + 3 * H * I;
	double out_rows = qd + 2 * kvd + H + 2 * I + H;   /* q, k, v, o, gate, up, down */

	eng_roofline_shape_of(c, weight_elem_bytes, kv_elem_bytes, out);
	out->weight_bytes -= L * proj * (weight_elem_bytes - 1);
	out->weight_bytes += L * out_rows * sizeof(float);
}

void eng_roofline_step(const struct eng_roofline *rl, const struct eng_roofline_seq *seqs,
		       int32_t n_seqs, struct eng_roofline_cost *out)
{
	const struct eng_roofline_shape *m = &rl->shape;
	double tokens = 0, heads = 0, pairs = 0, kv_read = 0, t_bytes = 0, t_flops = 0;

	*out = (struct eng_roofline_cost){ 0, 0, 0 };
	if (n_seqs <= 0)
		return;
	for (int32_t i = 0; i < n_seqs; i++) {
		double p0 = seqs[i].start_pos, n = seqs[i].n_tokens;

		tokens += n;
		heads += seqs[i].head_rows;
		pairs += n * p0 + n * (n + 1) / 2; /* token j sees p0 + j + 1 keys */
		kv_read += p0 + n;
	}
	out->bytes = m->weight_bytes + (kv_read + tokens) * m->kv_token_bytes;
	out->flops = tokens * m->linear_flops + heads * m->head_flops + pairs * m->attn_flops;
	if (rl->rates.bandwidth_bytes_s > 0)
		t_bytes = out->bytes / rl->rates.bandwidth_bytes_s;
	if (rl->rates.gemm_flops_s > 0)
		t_flops = out->flops / rl->rates.gemm_flops_s;
	if (rl->rates.bandwidth_bytes_s > 0 && rl->rates.gemm_flops_s > 0)
		out->seconds = t_bytes > t_flops ? t_bytes : t_flops;
}
