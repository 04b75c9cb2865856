/*
 * cuda_weights.h: the model's weights on one GPU, in the layout the CUDA
 * forward pass wants: bf16 matrices (q/k/v and gate/up fused by
 * concatenating rows), fp32 norm weights and biases, all in one device
 * allocation.
 */
#ifndef TRAJBENCH_ENG_CUDA_WEIGHTS_H
#define TRAJBENCH_ENG_CUDA_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "kernels/kn.h"

struct eng_cuda_layer {
	float *attn_norm;    /* (hidden) */
	uint16_t *wqkv;      /* (q_dim + 2 kv_dim, hidden) bf16: [wq; wk; wv] */
	float *bqkv;         /* (q_dim + 2 kv_dim) or NULL */
	uint16_t *wo;        /* (hidden, q_dim) bf16 */
	float *bo;           /* (hidden) or NULL */
	float *mlp_norm;     /* (hidden) */
	uint16_t *wgu;       /* (2 intermediate, hidden) bf16: [w_gate; w_up] */
	float *bgu;          /* (2 intermediate) or NULL */
	uint16_t *wd;        /* (hidden, intermediate) bf16 */
	float *bd;           /* (hidden) or NULL */
};

struct eng_cuda_weights {
	void *block;                   /* the one device allocation */
	size_t bytes;
	uint16_t *embed;               /* (vocab, hidden) bf16 */
	uint16_t *lm_head;             /* (vocab, hidden) bf16; == embed when tied */
	float *final_norm;             /* (hidden) */
	struct eng_cuda_layer *layers; /* (n_layers) host array of device pointers */
};

/* Uploads mw (any stored dtype) to the current device.  Returns 0,
 * ENG_E_DEVICE, ENG_E_NOMEM, ENG_E_FORMAT (a tensor the config implies
 * is missing). */
int eng_cuda_weights_upload(struct eng_cuda_weights *w, const struct eng_model_config *c,
			    const struct eng_model_weights *mw, kn_stream s,
			    struct eng_error *err);

/* Random weights of c's shape from seed (matrices std 0.02, norms near
 * 1, biases std 0.02), made on the device. */
int eng_cuda_weights_dummy(struct eng_cuda_weights *w, const struct eng_model_config *c,
			   uint64_t seed, kn_stream s, struct eng_error *err);

void eng_cuda_weights_free(struct eng_cuda_weights *w);

/* ENG_E_* error from a failed kn_* call (code rc), text kn_last_error(). */
int eng_cuda_error(int rc, struct eng_error *err);

#endif
