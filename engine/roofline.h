/*
 * roofline.h: the time a forward step cannot beat on given hardware.
 *
 * A step moves bytes (the weights once, every sequence's K and V read
 * once, the new tokens' K and V written) and does FLOPs (the projections
 * of every new token, the LM head of every row whose logits are needed,
 * causal attention of every new token over its context).  Its ceiling is
 * max(bytes / bandwidth, FLOPs / GEMM rate), with the bandwidth counting
 * bytes read plus bytes written, as a device-to-device copy measures it,
 * and the GEMM rate of the backend's best matrix product.  Summed over
 * the steps of a run, against the run's time in those steps, it says how
 * close to the hardware the run came.
 *
 * What it leaves out, on purpose: activations (small next to the weights
 * at decode, hidden behind the FLOPs at prefill), element-wise ops, the
 * embedding rows read, and attention that reads a tile of K/V more than
 * once.  It is a floor, not a model of any one kernel.
 */
#ifndef TRAJBENCH_ENG_ROOFLINE_H
#define TRAJBENCH_ENG_ROOFLINE_H

#include <stdint.h>

#include "engine/model_config.h"

/* What a model costs, per step and per token. */
struct eng_roofline_shape {
	double weight_bytes;    /* weights one step reads: all but the embedding
				 * table (an LM head tied to it is read whole) */
	double kv_token_bytes;  /* K and V of one token, all layers */
	double linear_flops;    /* per new token: the projections of all layers */
	double head_flops;      /* per LM-head row */
	double attn_flops;      /* per (query, key) pair: QK and PV of every head
				 * of every layer */
};

/* Measured rates; 0 when not measured (then no ceiling is computed). */
struct eng_roofline_rates {
	double bandwidth_bytes_s; /* bytes read + written per second */
	double gemm_flops_s;      /* FLOP per second of a large matrix product */
};

struct eng_roofline {
	struct eng_roofline_shape shape;
	struct eng_roofline_rates rates;
};

/* The shape of a model config whose weights take weight_elem_bytes and
 * whose KV cache takes kv_elem_bytes per element. */
void eng_roofline_shape_of(const struct eng_model_config *c, int weight_elem_bytes,
			   int kv_elem_bytes, struct eng_roofline_shape *out);

/* The same with the linear layers (q, k, v, o, gate, up, down) in FP8
 * (eng_backend_params.weight_fp8): a byte an element plus an fp32 scale
 * per output row; the LM head, norms and biases keep weight_elem_bytes.
 * The FLOPs are the same: the rates measured say what they cost. */
void eng_roofline_shape_fp8(const struct eng_model_config *c, int weight_elem_bytes,
			    int kv_elem_bytes, struct eng_roofline_shape *out);

/* One sequence of a step: n_tokens new tokens after start_pos cached ones,
 * head_rows of them through the LM head. */
struct eng_roofline_seq {
	int32_t start_pos;
	int32_t n_tokens;
	int32_t head_rows;
};

struct eng_roofline_cost {
	double bytes, flops;
	double seconds;          /* max(bytes / bandwidth, flops / GEMM rate);
				  * 0 when the rates are not measured */
};

/* The ceiling of one step of n_seqs sequences (n_seqs 0: no step, all 0). */
void eng_roofline_step(const struct eng_roofline *rl, const struct eng_roofline_seq *seqs,
		       int32_t n_seqs, struct eng_roofline_cost *out);

#endif
