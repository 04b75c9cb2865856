/*
 * backend.h: the interface every compute backend (cpu, cuda) implements.
 *
 * A backend owns the KV-cache page pool and computes the model's forward
 * pass for a batch of sequences.  It knows nothing about scheduling: each
 * sequence in a batch brings its chunk of new tokens, the position of the
 * first one, and its block table (the pages holding positions
 * [0, start_pos + n_tokens), in order, page_size tokens per page).  The
 * forward pass writes the chunk's K/V into those pages, attends to the
 * cached prefix plus the chunk (causally), and returns the last token's
 * logits, its greedy token (the argmax of those logits, picked where the
 * logits are, so that they need not travel) and/or the log-probs of given
 * target tokens.
 *
 * Contract on pages: positions [0, start_pos) must already hold K/V
 * computed by earlier forwards (possibly of another sequence, when a prefix
 * is shared); the slots the chunk writes must belong to no other sequence
 * of the same batch.
 *
 *   struct eng_backend_params p = eng_backend_default_params();
 *   struct eng_backend *be;
 *   if (eng_backend_create(&eng_backend_cpu_ops, model, &p, &be, &err)) ...
 *   eng_backend_forward(be, &batch, &err);
 *   eng_backend_free(be);
 */
#ifndef TRAJBENCH_ENG_BACKEND_H
#define TRAJBENCH_ENG_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/kv_fp8.h"
#include "engine/model.h"
#include "engine/roofline.h"

/* Ranks of a tensor-parallel group at most (== KN_TP_MAX). */
#define ENG_TP_MAX 8

struct eng_backend_params {
	int n_threads;   /* CPU threads; 0: the online CPUs */
	int page_size;   /* tokens per KV page */
	int n_pages;     /* pages in the pool */
	int device;      /* GPU ordinal, for device backends */
	/* CUDA graphs (device backends that have them): decode-only batches
	 * (every sequence one new token, no targets) of up to
	 * cuda_graph_max_bs sequences replay a forward captured per batch-size
	 * bucket; larger batches, and all of them when disable_cuda_graph is
	 * set, run op by op.  Same results either way, up to rounding. */
	int cuda_graph_max_bs;
	int disable_cuda_graph;
	/* Tensor parallelism (backends with ops->tensor_parallel): attention
	 * heads, MLP and LM-head vocab split over tp_size ranks, rank r on GPU
	 * tp_devices[r], or device + r where that is negative.  The ranks
	 * either all share one GPU (a test setup: the all-reduce is a kernel)
	 * or each have their own (NCCL).  n_pages is the pool of each rank,
	 * holding its share of the KV heads. */
	int tp_size;
	int tp_devices[ENG_TP_MAX];
	/* How the pages hold K and V (enum eng_kv_dtype, kv_fp8.h): auto is
	 * the backend's own precision, fp32 on the CPU and bf16 on the GPU;
	 * bf16 is bf16 on both (the CPU rounds its fp32 pages' values);
	 * fp8_e4m3 stores e4m3(x / scale) with the model's per-head scales
	 * (1.0 without them), a byte an element on the GPU (half the bytes of
	 * bf16), while the CPU keeps the rounded values in fp32 (the same
	 * numbers, not the memory saving). */
	int kv_dtype;
	/* Weights of the linear layers (q, k, v, o, gate, up, down) in FP8
	 * E4M3 with one scale per output row, and their input activations
	 * quantized per token as the product runs (W8A8, kv_fp8.h's
	 * eng_fp8_quantize_row for both); the embedding, the LM head, norms
	 * and biases keep their precision.  0: the weights as loaded. */
	int weight_fp8;
};

/* n_threads 0, page_size 16, n_pages 256, device 0, cuda_graph_max_bs 64,
 * CUDA graphs on, tp_size 1, tp_devices all -1, kv_dtype auto. */
struct eng_backend_params eng_backend_default_params(void);

struct eng_seq_input {
	const int32_t *tokens;       /* (n_tokens) the chunk's new tokens */
	int n_tokens;                /* >= 1 */
	int start_pos;               /* position of tokens[0]: tokens already cached */
	const int32_t *block_table;  /* (n_blocks) page ids in position order */
	int n_blocks;                /* >= ceil((start_pos + n_tokens) / page_size) */
	float *logits;               /* out (vocab): last token's logits, or NULL */
	const int32_t *targets;      /* (n_tokens) score mode targets, or NULL */
	float *logprobs;             /* out (n_tokens): log p(targets[i]) at token i;
					NULL exactly when targets is NULL */
};

struct eng_batch {
	int n_seqs;
	const struct eng_seq_input *seqs;   /* (n_seqs) */
};

struct eng_backend_ops {
	const char *name;
	/* Builds the state (page pool included).  May resolve defaults in
	 * params (n_threads 0 -> a count).  Returns 0 or ENG_E_*. */
	int (*create)(const struct eng_model *model, struct eng_backend_params *params,
		      void **state, struct eng_error *err);
	void (*destroy)(void *state);
	/* The batch is already checked by eng_backend_forward. */
	int (*forward)(void *state, const struct eng_batch *batch, struct eng_error *err);
	/* forward, plus next[s] = the argmax of sequence s's last-token logits
	 * for every s with want[s], -1 for the others (eng_backend_forward_next). */
	int (*forward_next)(void *state, const struct eng_batch *batch, const uint8_t *want,
			    int32_t *next, struct eng_error *err);
	/* The model's roofline shape with this backend's element sizes, and
	 * the rates measured now on its device; NULL: no roofline. */
	int (*roofline)(void *state, struct eng_roofline *out, struct eng_error *err);
	/* Takes tp_size > 1; eng_backend_create refuses it otherwise. */
	int tensor_parallel;
};

extern const struct eng_backend_ops eng_backend_cpu_ops;

/* The CUDA backend's vtables are in engine/cuda_backend.h; the engine
 * reaches them through the shared object of engine/cuda_plugin.h. */

struct eng_backend;

int eng_backend_create(const struct eng_backend_ops *ops, const struct eng_model *model,
		       const struct eng_backend_params *params, struct eng_backend **out,
		       struct eng_error *err);
void eng_backend_free(struct eng_backend *be);

/* Checks the batch (eng_batch_check), then runs it.  One forward at a time
 * per backend (the backend's scratch and pool are shared).  Returns 0,
 * ENG_E_INVALID (bad token, page id, pointers), ENG_E_RANGE (past the
 * context or the block table), or the backend's error. */
int eng_backend_forward(struct eng_backend *be, const struct eng_batch *batch,
			struct eng_error *err);

/* eng_backend_forward, plus greedy tokens: for every sequence s with
 * want[s] != 0, next[s] (n_seqs) is the argmax of its last token's logits
 * (the lowest index on ties, as eng_argmax), picked where the logits are
 * (on the device for a GPU backend), so a sequence that wants only its
 * token needs no logits buffer; next[s] is -1 where want[s] is 0. */
int eng_backend_forward_next(struct eng_backend *be, const struct eng_batch *batch,
			     const uint8_t *want, int32_t *next, struct eng_error *err);

const char *eng_backend_name(const struct eng_backend *be);
/* The parameters in force, defaults resolved. */
const struct eng_backend_params *eng_backend_params(const struct eng_backend *be);

/* The roofline of the model on this backend (eng_backend_ops.roofline),
 * its rates measured by this call (a fraction of a second); all zero for a
 * backend without one.  Returns 0 or the backend's error. */
int eng_backend_roofline(struct eng_backend *be, struct eng_roofline *out,
			 struct eng_error *err);

/* Validates every sequence of batch against the model and the pool. */
int eng_batch_check(const struct eng_model_config *cfg, const struct eng_backend_params *p,
		    const struct eng_batch *batch, struct eng_error *err);

#endif
