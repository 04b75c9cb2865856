/*
 * cuda_backend.h: the CUDA backend's own entry points, beyond the
 * eng_backend_ops vtable (engine/backend.h), for callers that hold its
 * state directly: benchmarks, tests, and tools that want random weights
 * (--load-format dummy) or greedy tokens picked on the GPU.
 *
 *   struct eng_backend_params p = eng_backend_default_params();
 *   void *st;
 *   eng_cuda_create(cfg, NULL, 1234, &p, &st, &err);     random weights
 *   eng_cuda_forward(st, &batch, next_tokens, &err);     argmax on device
 *   eng_cuda_step_device_ms(st, &ms);                     its device time
 *   eng_cuda_destroy(st);
 *
 * Through the vtable, eng_backend_cuda_ops uploads the model's weights and
 * eng_backend_cuda_dummy_ops makes random ones from the model's config
 * alone (its weight views are never read).
 */
#ifndef TRAJBENCH_ENG_CUDA_BACKEND_H
#define TRAJBENCH_ENG_CUDA_BACKEND_H

#include <stdint.h>
#include <stdio.h>

#include "engine/backend.h"

/* The CUDA backend as a vtable: bf16 weights and KV pages (or FP8 E4M3
 * pages: params->kv_dtype) on GPU params->device, fp32 arithmetic.  The dummy variant makes random bf16
 * weights of the model config's shape on the GPU and never reads the
 * model's weight views (--load-format dummy).  Programs linked with the
 * backend (tests, benchmarks) use them directly; the engine gets them
 * from libtrajbench-cuda.so (cuda_plugin.h). */
extern const struct eng_backend_ops eng_backend_cuda_ops;
extern const struct eng_backend_ops eng_backend_cuda_dummy_ops;

/* Builds the backend on params->device: weights from w (converted to
 * bf16 on upload), or, when w is NULL, random bf16 weights of cfg's shape
 * made on the GPU from seed; a KV pool of params->n_pages pages of
 * params->page_size tokens, bf16, or FP8 E4M3 when params->kv_dtype says
 * so (with w's k_scale / v_scale, else 1.0; random pages for random
 * weights either way).  cfg is copied.
 * With params->tp_size N > 1, the model is split over N tensor-parallel
 * ranks on the GPUs params->tp_devices (default device, device + 1, ...):
 * all the same GPU (ranks summed by a kernel: a way to test on one GPU)
 * or all different (NCCL, loaded at run time from $TRAJBENCH_NCCL or
 * libnccl.so.2).  Random weights are the same model for every N.
 * Returns 0, ENG_E_DEVICE (no device, out of device memory, NCCL missing
 * or failing; err says which call), ENG_E_INVALID (a shape the kernels do
 * not take: head_dim not a multiple of 8 or over 256, more than 32 query
 * heads per KV head; N not dividing the heads, KV heads or intermediate
 * size; ranks sharing some GPUs but not all), ENG_E_NOMEM. */
int eng_cuda_create(const struct eng_model_config *cfg, const struct eng_model_weights *w,
		    uint64_t seed, struct eng_backend_params *params, void **state,
		    struct eng_error *err);
void eng_cuda_destroy(void *state);

/* The forward pass of a batch already checked by eng_batch_check.  When
 * next is not NULL, next[s] (n_seqs) is the argmax of the last token's
 * logits of every sequence, computed on the GPU; logits are copied to the
 * host only for sequences whose logits pointer is set. */
int eng_cuda_forward(void *state, const struct eng_batch *batch, int32_t *next,
		     struct eng_error *err);
/* As eng_cuda_forward, tokens only for the sequences s with want[s] (the
 * backend's forward_next: next[s] is left alone where want[s] is 0);
 * want NULL: none. */
int eng_cuda_forward_next(void *state, const struct eng_batch *batch, const uint8_t *want,
			  int32_t *next, struct eng_error *err);

/* Decode-only batches (one token per sequence, no targets) of up to
 * params->cuda_graph_max_bs sequences replay a CUDA graph of the whole
 * forward, captured per batch-size bucket (1, 2, 4, 8, 16, 24, 32, 48,
 * 64, ... ) and per power-of-two size of the block table (16 pages and
 * up), the batch padded to its bucket with rows that write into a
 * scratch page the pool keeps past params->n_pages.  Results match the
 * op-by-op path up to rounding (the GEMMs may pick other kernels for the
 * padded row count).  Not with tensor parallelism (tp_size > 1): those
 * batches run op by op.  eng_cuda_use_graphs turns that on or off for later
 * forwards (params->disable_cuda_graph at create); eng_cuda_graph_count
 * says how many graphs are held (-1: a capture failed, graphs are off). */
void eng_cuda_use_graphs(void *state, int on);
int eng_cuda_graph_count(const void *state);

/* With FP8 weights: whether the norms and SiLU write their outputs as the
 * FP8 products' quantized inputs (on, the default) or in bf16, each
 * product then quantizing its input in a launch of its own (off: the
 * ablation).  The results are the same bytes either way.  Drops the
 * graphs held. */
void eng_cuda_fuse_quant(void *state, int on);
/* The FP8 skinny products' loads in flight a lane below 16384 rows of
 * weights (kn_skinny_wide): 8 (on) or 4 (off, the default), for
 * measuring.  Process-wide; drops this state's graphs, which hold the
 * kernels launched. */
void eng_cuda_skinny_wide(void *state, int on);
/* Whether the skinny bf16 products may split a row of weights over 2 or
 * 4 warps and keep 8 loads in flight a lane, as timed per shape
 * (kn_skinny_splits; on, the default), or keep one warp a row at 4 loads
 * (off: the ablation).  Process-wide; drops this state's graphs. */
void eng_cuda_skinny_splits(void *state, int on);
/* With bf16 weights, whether SwiGLU runs in the skinny gate/up product's
 * kernel (kn_skinny_glu; on) or in a launch of its own after it (off,
 * the default: on one H100 the fused form was no faster); the same bits.
 * Process-wide; drops this state's graphs. */
void eng_cuda_skinny_glu(void *state, int on);

/* How decode batches split their keys: by work (on, the default: one
 * split length over all rows, sized by the batch's keys, so ragged
 * contexts balance; a captured graph's step writes it beside its
 * metadata) or by count (off: the ablation, every row in as many splits
 * as fill the GPU at the longest one; graphs cut each row in their
 * grid's splits).  Drops the graphs held when it changes. */
void eng_cuda_splits_by_work(void *state, int on);

/* The blocks a multiprocessor that the splits by count (op by op and in
 * graphs) aim at, and the least splits a graph's grid holds; 0: the
 * default (1).  For measuring ragged batches; drops the graphs held. */
void eng_cuda_decode_blocks(void *state, int per_sm);

/* Prefill / extend attention on the tensor cores splits each tile's keys
 * over several blocks, then reduces them, when a step's tiles are too few
 * to fill the GPU and its longest context is long (an extend chunk on a
 * long cached prefix): on, the default, or off (one block per tile and
 * KV head: the ablation).  Drops the graphs held.
 * eng_cuda_prefill_splits says how many splits batch b's prefill rows
 * would take (1: none), as the forward picks them. */
void eng_cuda_prefill_split(void *state, int on);
int eng_cuda_prefill_splits(const void *state, const struct eng_batch *b);

/* Prefill / extend attention on Hopper's warpgroup products (wgmma) where
 * the kernels take the model and KV dtype (bf16 pages, head_dim 64 or
 * 128, an sm_90a device), in one of these forms:
 *   ENG_CUDA_WGMMA_WS     the warp-specialized kernel (a producer
 *                         warpgroup, two consumers taking turns), the
 *                         default (at head_dim 64 it runs the first form);
 *   ENG_CUDA_WGMMA_FIRST  the first wgmma kernel, every thread copying and
 *                         computing in lockstep: the ablation of the first;
 *   0                     off: the mma.sync kernel, the ablation of both.
 * Another value means ENG_CUDA_WGMMA_WS.  Prefill runs outside the captured
 * graphs; set like the settings they depend on all the same.
 * eng_cuda_prefill_wgmma_used says which form the next prefill would take
 * (0 where the model or device has none). */
#define ENG_CUDA_WGMMA_FIRST 1
#define ENG_CUDA_WGMMA_WS 2
void eng_cuda_prefill_wgmma(void *state, int form);
int eng_cuda_prefill_wgmma_used(const void *state);

/* Device time of the last forward, from the metadata upload to the last
 * copy back (events on the stream): 0, or -1 when it has none. */
int eng_cuda_step_device_ms(void *state, double *ms);

/* Device time per op class (the all-reduce of tensor-parallel ranks one
 * of them; events on rank 0's stream): with on, every later forward
 * records an event after each op (a little slower); eng_cuda_profile_print writes the mean
 * milliseconds per forward of each class to f and starts over.  Returns 0,
 * ENG_E_DEVICE, ENG_E_NOMEM. */
int eng_cuda_profile(void *state, int on, struct eng_error *err);
void eng_cuda_profile_print(void *state, FILE *f);
/* The mean milliseconds per forward of the class printed as name (e.g.
 * "all-reduce") and its share of the total, so far: 0, or -1 when not
 * profiling, nothing timed yet, or no such class. */
int eng_cuda_profile_class(const void *state, const char *name, double *ms, double *share);

/* The device's name ("NVIDIA H100 80GB HBM3"; rank 0's), and the bytes
 * of the weights held (all ranks' together). */
const char *eng_cuda_device_name(const void *state);
size_t eng_cuda_weight_bytes(const void *state);

/* Measures device's copy bandwidth (bytes read + written per second) and
 * cuBLAS bf16 GEMM rate (rates_cuda.c; about 30 ms, up to 640 MiB of
 * device memory for the time of the call).  Leaves device current.
 * Returns 0 or ENG_E_DEVICE. */
int eng_cuda_measure_rates(int device, struct eng_roofline_rates *out, struct eng_error *err);

#endif
