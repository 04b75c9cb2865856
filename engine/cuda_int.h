/*
 * cuda_int.h: what the two halves of the CUDA backend share: the state
 * (struct cuda_state and its ranks), the per-step metadata layout, the
 * profile's op classes, captured graphs, and the calls between
 * cuda_setup.c (buffers, create and destroy, profile) and backend_cuda.c
 * (metadata, layers, LM head, forward, graphs).  Not for other callers:
 * they use cuda_backend.h.
 */
#ifndef TRAJBENCH_ENG_CUDA_INT_H
#define TRAJBENCH_ENG_CUDA_INT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/comm.h"
#include "engine/cuda_backend.h"
#include "engine/cuda_weights.h"
#include "engine/splits.h"
#include "kernels/kn.h"

#define LM_TILE_BYTES ((size_t)256 << 20)

/* The per-step int32 metadata, as offsets into one block. */
struct step_meta {
	int T, n_sel, n_pre, n_dec, n_bt;
	int argmax;   /* some sequence wants its greedy token */
	int n_splits, split_len;   /* decode attention (split_len 0: per row) */
	int split_dev;             /* graphs: the decode split length is read at split_at */
	int pre_ctx;               /* longest context of the prefill rows */
	int pre_splits, pre_split_len;   /* prefill attention's key splits (1: none) */
	size_t tokens, pos, slot, bt_off, sel_rows, sel_target, pre_row0, pre_n, dec_row0,
		dec_n, bt, split_at, total;
};

/* Per-op device time, when asked for (eng_cuda_profile): an event after
 * every op of a forward (on rank 0's stream), summed per class once the
 * forward is done. */
enum {
	PROF_EMBED, PROF_NORM, PROF_QKV, PROF_ROPE, PROF_ATTN, PROF_O, PROF_GU, PROF_SILU,
	PROF_DOWN, PROF_ALLREDUCE, PROF_HEAD, PROF_N
};
#define PROF_EVENTS 1024

struct prof {
	int n, n_fwd;
	kn_event ev[PROF_EVENTS];
	int cat[PROF_EVENTS];
	double ms[PROF_N];
};

/* What one tensor-parallel rank holds on its GPU (the whole model when
 * there is one rank).  Sizes are the rank's: nh = n_heads / N query
 * heads, nkv = n_kv / N KV heads, inter = intermediate / N. */
struct rank {
	int dev;
	kn_stream stream;            /* ranks sharing a GPU share rank 0's */
	struct kn_gemm *gemm;
	struct eng_cuda_weights w;
	float *inv_freq;             /* (head_dim / 2) */
	void *k_pool, *v_pool;       /* (n_layers, pool_pages * page_size, nkv, head_dim) bf16,
					or E4M3 bytes with kv_fp8 */
	float *kv_scale;             /* (n_layers, 2, nkv) kv_fp8 only: the rank's heads' k
					scales, then v scales, of each layer */
	float *x;          /* (T, hidden) fp32 residual stream, the same on every rank */
	uint16_t *xb;      /* (T, hidden) bf16 normed rows; also the LM head's input */
	float *qkv;        /* (T, (nh + 2 nkv) head_dim) fp32 */
	uint16_t *q;       /* (T, nh head_dim) bf16, rotated */
	uint16_t *att;     /* (T, nh head_dim) bf16 */
	float *proj;       /* (T, hidden) fp32: o_proj, then down_proj output (partial
			      sums until all-reduced) */
	uint16_t *gu;      /* (T, 2 inter) bf16 */
	uint16_t *act;     /* (T, inter) bf16 */
	uint8_t *xq;       /* weight_fp8: (T, max(hidden, nh head_dim, inter)) a product's
			      input rows as E4M3 */
	float *xs;         /* weight_fp8: (T) their scales */
	uint32_t *qsync;   /* weight_fp8: (2 T) kn_silu_mul_e4m3's row slots, zero
			      between launches */
	float *lp;         /* (T) log-probs of the selected rows (one rank only) */
	int32_t *amax;     /* (T) argmax of the selected rows (one rank only) */
	struct kn_vocab_part *part;   /* (T) this rank's view of the selected rows */
	float *logits;     /* (lm_tile, w.n_vocab) fp32 */
	float *partial;    /* (cap_partial) split-K partials of the attention: prefill's,
			      then (reduced by then) decode's */
	int32_t *meta_d;   /* (cap_meta) the step's metadata */
	kn_event done;     /* end of this rank's work in a step */
};

struct cuda_state {
	struct eng_model_config cfg;
	struct eng_backend_params params;
	char device_name[256];
	int n_sm, lm_tile;
	int tile_rows;      /* rows per prefill attention tile */
	int use_tc;         /* prefill attention on the tensor-core kernel */
	int wg_ok;          /* ... which has a wgmma form for this model and KV dtype */
	int use_wg;         /* wg_ok and wanted (eng_cuda_prefill_wgmma): the wgmma form,
			     * ENG_CUDA_WGMMA_WS or ENG_CUDA_WGMMA_FIRST; 0 none */
	int use_tc_decode;  /* decode attention likewise */
	int kv_fp8;         /* KV pages in FP8 E4M3 (params.kv_dtype), else bf16 */
	int w_fp8;          /* linear layers in FP8 E4M3 (params.weight_fp8) */
	int fuse_quant;     /* w_fp8: products' inputs quantized by their producers */
	int splits_by_work; /* decode splits sized by the batch's keys (decode_splits) */
	int decode_blocks_per_sm;   /* eng_cuda_decode_want's aim; 0: DECODE_BLOCKS_PER_SM */
	int prefill_split;  /* prefill attention may split its keys (use_tc only) */
	int n_ranks;        /* params.tp_size */
	int shared;         /* n_ranks > 1 on one GPU and one stream */
	int nh, nkv, inter; /* per rank */
	struct rank rk[ENG_TP_MAX];
	struct eng_comm *comm;
	struct eng_error comm_err;   /* the last all-reduce failure */
	int comm_failed;
	int pool_pages;              /* n_pages + 1: the last is the graphs' scratch page */
	size_t cap_partial;          /* floats of each rank's partial */
	int cap_tokens;
	size_t cap_meta;   /* int32 elements of meta_h / meta_d */
	int32_t *meta_h;   /* pinned */
	struct prof *prof; /* NULL unless profiling */
	int *sel_seq;      /* (cap_tokens) host: sequence of each selected row */
	int *sel_i;        /* (cap_tokens) host: index of the row in its chunk */
	float *lp_h;       /* (cap_tokens) host copy of lp */
	int32_t *amax_h;   /* (cap_tokens) host copy of amax */
	struct kn_vocab_part *part_h;   /* (n_ranks, cap_tokens) host copies of part */
	int buf_gen;       /* bumped when a buffer a graph may hold moves */
	struct graph_ent *graphs;   /* (n_graphs) captured decode forwards */
	int n_graphs;
	kn_event ev_t0, ev_t1;      /* around the device work of the last forward */
	int timed;                  /* both were recorded by the last forward */
	int graph_failed;           /* a capture failed: graphs off for good */
};

/* One captured decode forward: batch bucket bs, pages block-table
 * entries per sequence, valid while the buffers are those of gen. */
struct graph_ent {
	int bs, pages, gen;
	kn_graph g;
};

#define MAX_GRAPHS 64

/* Columns of a rank's fused q/k/v rows. */
static inline int qkv_dim(const struct cuda_state *st)
{
	return (st->nh + 2 * st->nkv) * st->cfg.head_dim;
}

/* Bytes of one layer's K (or V) pages on a rank: 2 an element in bf16,
 * 1 in FP8. */
static inline size_t kv_layer_bytes(const struct cuda_state *st)
{
	return (size_t)st->pool_pages * st->params.page_size * st->nkv * st->cfg.head_dim *
	       (st->kv_fp8 ? 1 : 2);
}

/* Layer l's K and V pages on rank R. */
static inline void *kv_k(const struct cuda_state *st, const struct rank *R, int l)
{
	return (char *)R->k_pool + (size_t)l * kv_layer_bytes(st);
}

static inline void *kv_v(const struct cuda_state *st, const struct rank *R, int l)
{
	return (char *)R->v_pool + (size_t)l * kv_layer_bytes(st);
}

/* Makes rank r's GPU current; nothing to do with a single rank. */
static inline int use_rank(const struct cuda_state *st, int r)
{
	return st->n_ranks > 1 ? kn_set_device(st->rk[r].dev) : 0;
}

/* Whether rank r has a stream of its own (not rank 0's, shared). */
static inline int own_stream(const struct cuda_state *st, int r)
{
	return r == 0 || !st->shared;
}

/* backend_cuda.c, for cuda_graph.c */
/* Whether sequence s wants its greedy token: want[s], or every sequence
 * when want is NULL and all is set. */
int eng_cuda_wants_token(const uint8_t *want, int all, int s);
/* Decode splits that fill the GPU for n_dec rows. */
int eng_cuda_decode_want(const struct cuda_state *st, int n_dec);
/* A captured decode step's grid of splits for bs rows, and the split
 * length (0: per row) of batch b's step, padded to bs rows, over it. */
int eng_cuda_graph_splits(const struct cuda_state *st, int bs);
int eng_cuda_graph_split_len(const struct cuda_state *st, const struct eng_batch *b, int bs,
			     int n_splits);
/* Embedding, the layers, the last MLP output into x: all but the LM head. */
int eng_cuda_forward_body(struct cuda_state *st, const struct step_meta *m);
/* A forward op by op: any batch. */
int eng_cuda_plain_forward(struct cuda_state *st, const struct eng_batch *b, const uint8_t *want,
			   int32_t *next, struct eng_error *err);

/* cuda_graph.c */
/* Whether batch b can replay a graph (decode only, small enough, not
 * profiled, one rank). */
int eng_cuda_graph_fits(const struct cuda_state *st, const struct eng_batch *b);
/* b's step through the graph of its bucket (captured first if new). */
int eng_cuda_graph_forward(struct cuda_state *st, const struct eng_batch *b, const uint8_t *want,
			   int32_t *next, struct eng_error *err);

/* cuda_setup.c */
void eng_cuda_graphs_drop(struct cuda_state *st);
/* Activations for T tokens, metadata of n int32, n floats of attention
 * partials: grown (graphs dropped) when short. */
int eng_cuda_ensure_tokens(struct cuda_state *st, int T, struct eng_error *err);
int eng_cuda_ensure_meta(struct cuda_state *st, size_t n, struct eng_error *err);
int eng_cuda_ensure_partial(struct cuda_state *st, size_t n, struct eng_error *err);
/* Marks the end of an op of class cat (-1: the start of a forward) when
 * profiling; eng_cuda_prof_collect adds a finished forward's op times. */
void eng_cuda_prof_mark(struct cuda_state *st, int cat);
void eng_cuda_prof_collect(struct cuda_state *st);

#endif
