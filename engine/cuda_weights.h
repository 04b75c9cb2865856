/*
 * cuda_weights.h: the model's weights on one GPU, in the layout the CUDA
 * forward pass wants: bf16 matrices (q/k/v and gate/up fused by
 * concatenating rows), fp32 norm weights and biases, all in one device
 * allocation.
 *
 * Under tensor parallelism a GPU holds the shard of one rank (struct
 * eng_cuda_shard; {0, 1} is the whole model).  With N ranks, rank r
 * holds the q heads [r nh/N, (r+1) nh/N) and the kv heads [r nkv/N, ...)
 * of wq/wk/wv and their biases (column-parallel), the rows [r I/N, ...)
 * of w_gate and w_up (column-parallel), the matching columns of wo and
 * w_down (row-parallel: each rank's product is a partial sum of the
 * output), and the vocab rows [r V/N, (r+1) V/N) of the LM head (uneven
 * when N does not divide V).  The embedding, the norms (Qwen3's per-head
 * q/k norms included: every head of every rank uses the same head_dim
 * vector) and the biases of o_proj and down_proj are whole on every rank
 * (those biases are added once, after the all-reduce).  Sizes below are those of one rank:
 * q_dim_r = q_dim / N, kv_dim_r = kv_dim / N, inter_r = intermediate / N.
 */
#ifndef TRAJBENCH_ENG_CUDA_WEIGHTS_H
#define TRAJBENCH_ENG_CUDA_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "kernels/kn.h"

struct eng_cuda_layer {
	float *attn_norm;    /* (hidden) */
	uint16_t *wqkv;      /* (q_dim_r + 2 kv_dim_r, hidden) bf16: [wq; wk; wv] */
	float *bqkv;         /* (q_dim_r + 2 kv_dim_r) or NULL */
	float *q_norm;       /* (head_dim) or NULL: Qwen3's per-head RMSNorm of q */
	float *k_norm;       /* (head_dim) or NULL: the same of k */
	uint16_t *wo;        /* (hidden, q_dim_r) bf16 */
	float *bo;           /* (hidden) or NULL */
	float *mlp_norm;     /* (hidden) */
	uint16_t *wgu;       /* (2 inter_r, hidden) bf16: [w_gate; w_up] */
	float *bgu;          /* (2 inter_r) or NULL */
	uint16_t *wd;        /* (hidden, inter_r) bf16 */
	float *bd;           /* (hidden) or NULL */
	/* FP8 weights (params.weight_fp8): the four matrices above as E4M3
	 * bytes of the same shapes with one scale per row, quantized on the
	 * device from the bf16 ones (kn_quant_rows_e4m3), which are then
	 * gone (NULL). */
	uint8_t *wqkv8, *wo8, *wgu8, *wd8;
	float *sqkv, *so, *sgu, *sd;
};

struct eng_cuda_weights {
	void *block;                   /* the one device allocation */
	size_t bytes;
	uint16_t *embed;               /* (vocab, hidden) bf16 */
	uint16_t *lm_head;             /* (n_vocab, hidden) bf16: vocab rows
					  [vocab0, vocab0 + n_vocab); inside
					  embed when tied */
	int vocab0, n_vocab;
	float *final_norm;             /* (hidden) */
	struct eng_cuda_layer *layers; /* (n_layers) host array of device pointers */
	int fp8;                       /* the layers' matrices are E4M3 */
	void *stage;                   /* while loading FP8: one layer's bf16 matrices */
	size_t stage_bytes;
};

/* Rank `rank` of a tensor-parallel group of `size`. */
struct eng_cuda_shard {
	int rank, size;
};

/* 0 when c can be split over size ranks: n_heads, n_kv_heads and
 * intermediate multiples of size, vocab >= size; else ENG_E_INVALID
 * saying which. */
int eng_cuda_shard_check(const struct eng_model_config *c, int size, struct eng_error *err);

/* Uploads sh's shard of mw (any stored dtype) to the current device,
 * the linear layers' matrices quantized to FP8 when fp8 (one shard only:
 * sh.size 1).
 * Returns 0, ENG_E_DEVICE, ENG_E_NOMEM, ENG_E_FORMAT (a tensor the config
 * implies is missing). */
int eng_cuda_weights_upload(struct eng_cuda_weights *w, const struct eng_model_config *c,
			    struct eng_cuda_shard sh, const struct eng_model_weights *mw, int fp8,
			    kn_stream s, struct eng_error *err);

/* Random weights of c's shape from seed (matrices std 0.02, norms near
 * 1, biases std 0.02), made on the device: sh's shard of the one random
 * model that seed gives, whatever the number of ranks; with fp8, that
 * model's matrices quantized as the upload quantizes them. */
int eng_cuda_weights_dummy(struct eng_cuda_weights *w, const struct eng_model_config *c,
			   struct eng_cuda_shard sh, uint64_t seed, int fp8, kn_stream s,
			   struct eng_error *err);

void eng_cuda_weights_free(struct eng_cuda_weights *w);

/* ENG_E_* error from a failed kn_* call (code rc), text kn_last_error(). */
int eng_cuda_error(int rc, struct eng_error *err);

#endif
