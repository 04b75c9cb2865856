/*
 * backend_cuda.c: the CUDA backend: the same batched, paged forward pass
 * as backend_cpu.c, on one GPU (params->device) or split over the ranks
 * of a tensor-parallel group, with bf16 weights and KV pages and fp32
 * arithmetic.
 *
 * All new tokens of a batch form one (T, hidden) activation matrix, so
 * every projection is one cuBLAS GEMM over the batch (q/k/v fused, gate/up
 * fused).  Per step the host builds one int32 metadata block (token ids,
 * positions, cache slots, block tables, attention tiles, LM-head rows) in
 * pinned memory and sends it with a single copy (one per rank);
 * activations live in device buffers grown to the largest batch seen.
 *
 * Per layer:  xb = rmsnorm(x [+ previous mlp out]);  qkv = xb Wqkv;
 *             q, pages <- rope(qkv + b)  (Qwen3: rope(qk_norm(qkv + b)),
 *             the per-head norm fused into the same kernel);
 *             att = attention(q, pages);
 *             proj = att Wo;  xb = rmsnorm(x += proj + bo);
 *             act = silu(xb Wg) * (xb Wu);  proj = act Wd
 * On one rank, a projection without a bias (o and down of Qwen2 and
 * Llama) adds its product straight into x (GEMM with beta 1), so that
 * proj is neither written nor read back, and the norm after it only
 * normalizes.
 * Attention rows of single-token sequences (decode) go through the
 * split-K kernel; longer chunks through the prefill kernel (on the tensor
 * cores where the head_dim allows: wgmma on Hopper with bf16 pages and
 * head_dim 64 or 128, else mma.sync), which splits its keys too when a
 * step's tiles are too few to fill the GPU and its context is long (a
 * short extend chunk on a long cached prefix: prefill_splits).
 * With params->kv_dtype fp8_e4m3 the pages hold E4M3 bytes: the RoPE
 * kernel rounds K and V into them with each KV head's scale (the
 * checkpoint's k_scale / v_scale, else 1), the attention kernels widen
 * them back on load; the bf16 pages stay the default (and the ablation).
 * The LM head runs only on the rows whose logits or log-probs are wanted,
 * a tile of rows at a time; log-probs and argmax are computed on the
 * device, logits copied back only where a sequence asked for them.
 *
 * Tensor parallelism (params->tp_size N > 1; shards in cuda_weights.h):
 * every rank holds the whole residual stream x and runs the ops above on
 * its heads and its slice of the MLP; the fp32 proj of the row-parallel
 * O and down GEMMs is a partial sum, all-reduced (engine/comm.h) before
 * the add + rmsnorm that consumes it, so the biases bo and bd are added
 * once.  Each rank's KV pool holds its n_kv / N heads.  The LM head is
 * vocab-parallel: each rank reduces its logits slice to (max, argmax,
 * sum exp, target logit) per row (kn_vocab_partial) and the host combines
 * the ranks' parts into the greedy token and the log-prob; the logits a
 * sequence asks for are copied back slice by slice.  One host thread
 * drives all ranks, op by op over the ranks (so the per-op profile is
 * right when they share one device and stream).  CUDA graphs are not
 * used when N > 1: such batches run op by op.
 *
 * Decode-only batches (one token per sequence, no score targets) of up to
 * params->cuda_graph_max_bs sequences replay a CUDA graph of the whole
 * device side of the forward (embedding to argmax), one per batch-size
 * bucket and power-of-two block-table size (16 pages and up): the
 * metadata goes in a fixed layout (every row selected, each sequence's
 * block table padded to the class's length) through the same pinned
 * upload outside the graph, the batch is padded to its bucket with rows
 * at position 0 of a scratch page kept past params->n_pages, and the
 * decode attention sizes its splits per row from a fixed grid.  A graph
 * holds buffer addresses, so growing a buffer drops every graph (captured
 * again on next use); a capture that fails turns graphs off for good.
 * Tokens and the logits asked for are copied back after the replay.
 *
 * Buffers, create and destroy, and the profile are in cuda_setup.c; the
 * graphs' capture and replay in cuda_graph.c.
 *
 * Refuses: head_dim not a multiple of 8 or over 256, more than 32 query
 * heads per KV head (the attention kernel's limits), a tensor-parallel
 * size that does not divide the heads, KV heads and intermediate size,
 * ranks that share some GPUs but not all, at create.
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda_int.h"

/* ---------------------------------------------------------------- metadata */

/* Whether sequence s wants its greedy token: want[s], or every sequence
 * when want is NULL and all is set. */
int eng_cuda_wants_token(const uint8_t *want, int all, int s)
{
	return want ? want[s] != 0 : all;
}

/* Sizes the metadata of batch b; the last row of every sequence that
 * wants logits or its greedy token is selected for the LM head. */
static void meta_plan(const struct cuda_state *st, const struct eng_batch *b,
		      const uint8_t *want, int all, struct step_meta *m)
{
	int s, ps = st->params.page_size;
	size_t o = 0;

	memset(m, 0, sizeof(*m));
	for (s = 0; s < b->n_seqs; s++) {
		const struct eng_seq_input *q = &b->seqs[s];

		m->T += q->n_tokens;
		m->n_bt += (q->start_pos + q->n_tokens + ps - 1) / ps;
		if (q->n_tokens == 1) {
			m->n_dec++;
		} else {
			m->n_pre += (q->n_tokens + st->tile_rows - 1) / st->tile_rows;
			if (q->start_pos + q->n_tokens > m->pre_ctx)
				m->pre_ctx = q->start_pos + q->n_tokens;
		}
		if (q->logprobs)
			m->n_sel += q->n_tokens;
		else if (q->logits || eng_cuda_wants_token(want, all, s))
			m->n_sel++;
		m->argmax |= eng_cuda_wants_token(want, all, s);
	}
	m->tokens = o, o += m->T;
	m->pos = o, o += m->T;
	m->slot = o, o += m->T;
	m->bt_off = o, o += m->T;
	m->sel_rows = o, o += m->n_sel;
	m->sel_target = o, o += m->n_sel;
	m->pre_row0 = o, o += m->n_pre;
	m->pre_n = o, o += m->n_pre;
	m->dec_row0 = o, o += m->n_dec;
	m->dec_n = o, o += m->n_dec;
	m->bt = o, o += m->n_bt;
	m->total = o;
}

/* Rows, LM-head selection and attention tiles of sequence s. */
static void meta_seq(struct cuda_state *st, const struct eng_seq_input *q, int s, int greedy,
		     const struct step_meta *m, int *row, int *sel, int *pre, int *dec, int *bt)
{
	int32_t *h = st->meta_h;
	int ps = st->params.page_size, nb = (q->start_pos + q->n_tokens + ps - 1) / ps, i;

	memcpy(h + m->bt + *bt, q->block_table, (size_t)nb * sizeof(int32_t));
	for (i = 0; i < q->n_tokens; i++) {
		int r = *row + i, pos = q->start_pos + i;

		h[m->tokens + r] = q->tokens[i];
		h[m->pos + r] = pos;
		h[m->slot + r] = q->block_table[pos / ps] * ps + pos % ps;
		h[m->bt_off + r] = *bt;
		if (q->logprobs || ((q->logits || greedy) && i == q->n_tokens - 1)) {
			h[m->sel_rows + *sel] = r;
			h[m->sel_target + *sel] = q->targets ? q->targets[i] : -1;
			st->sel_seq[*sel] = s;
			st->sel_i[*sel] = i;
			(*sel)++;
		}
	}
	if (q->n_tokens == 1) {
		h[m->dec_row0 + *dec] = *row;
		h[m->dec_n + (*dec)++] = 1;
	}
	for (i = 0; q->n_tokens > 1 && i < q->n_tokens; i += st->tile_rows) {
		h[m->pre_row0 + *pre] = *row + i;
		h[m->pre_n + (*pre)++] = q->n_tokens - i < st->tile_rows ? q->n_tokens - i
									  : st->tile_rows;
	}
	*row += q->n_tokens;
	*bt += nb;
}

/* The metadata of batch b into meta_h, then to every rank's meta_d. */
static int meta_build(struct cuda_state *st, const struct eng_batch *b, const uint8_t *want,
		      int all, struct step_meta *m, struct eng_error *err)
{
	int s, row = 0, sel = 0, pre = 0, dec = 0, bt = 0, rc;

	meta_plan(st, b, want, all, m);
	if ((rc = eng_cuda_ensure_tokens(st, m->T, err)) ||
	    (rc = eng_cuda_ensure_meta(st, m->total, err)))
		return rc;
	for (s = 0; s < b->n_seqs; s++)
		meta_seq(st, &b->seqs[s], s, eng_cuda_wants_token(want, all, s), m, &row, &sel, &pre, &dec,
			 &bt);
	if ((rc = use_rank(st, 0)) || (rc = kn_event_record(st->ev_t0, st->rk[0].stream)))
		return eng_cuda_error(rc, err);
	for (int r = 0; r < st->n_ranks; r++)
		if ((rc = use_rank(st, r)) ||
		    (rc = kn_memcpy_h2d(st->rk[r].meta_d, st->meta_h, m->total * 4,
					st->rk[r].stream)))
			return eng_cuda_error(rc, err);
	return 0;
}

/* ---------------------------------------------------------------- layers */

/* Splits of the decode rows' keys that fill the GPU: about
 * DECODE_BLOCKS_PER_SM blocks per multiprocessor.  One wave is enough:
 * the decode kernel keeps two blocks a multiprocessor, each with tiles in
 * flight, and every extra split costs a partial and its reduce (on the
 * H100 at batch 64, 2k context: 9.05 ms a step with 1, 9.39 with 4). */
#define DECODE_BLOCKS_PER_SM 1

int eng_cuda_decode_want(const struct cuda_state *st, int n_dec)
{
	int per = st->decode_blocks_per_sm > 0 ? st->decode_blocks_per_sm : DECODE_BLOCKS_PER_SM;
	int want = (per * st->n_sm + n_dec * st->nkv - 1) / (n_dec * st->nkv);

	return want < 1 ? 1 : want;
}

/* Split-K shape for the decode rows: by count (the ablation), enough
 * splits of the longest row to fill the GPU, every row cut at the same
 * keys, so in a ragged batch (agents' conversations, 1k to 30k keys) a
 * long row's blocks are the long pole of the launch; by work (the
 * default), eng_decode_split_by_work (engine/splits.c).  At most
 * max_splits splits (0: any, by work); pad more rows of one key each (a
 * graph's padding). */
static void decode_splits(const struct cuda_state *st, const struct eng_batch *b, int n_dec,
			  int pad, int max_splits, int *n_splits, int *split_len)
{
	int max_ctx = 1;

	if (st->splits_by_work) {
		eng_decode_split_by_work(b, pad, st->n_sm, st->nkv, max_splits, n_splits,
					 split_len);
		return;
	}
	for (int s = 0; s < b->n_seqs; s++)
		if (b->seqs[s].n_tokens == 1 && b->seqs[s].start_pos + 1 > max_ctx)
			max_ctx = b->seqs[s].start_pos + 1;
	eng_split_keys(max_ctx, eng_cuda_decode_want(st, n_dec), 32, n_splits, split_len);
}

/* How much longer than the mean a captured decode step's longest row may
 * be and still get its share of the splits by work: 16 conversations of
 * 2k to 30k keys, the agents' spread, have their longest ~3.4 times the
 * mean.  A row longer still takes longer splits (the longest row over the
 * grid's splits). */
#define GRAPH_RAGGED 4

/* The grid of splits a captured decode step of bs rows launches.  By
 * count, eng_cuda_decode_want's, each row cut in as many.  By work, room
 * for the splits of a row GRAPH_RAGGED times the mean (or of one row
 * holding all keys, when bs is smaller): the mean row takes about
 * ENG_DECODE_BLOCKS_PER_SM n_sm / (bs nkv) of them; each step's length
 * comes with its metadata (eng_cuda_graph_split_len) and the splits past a
 * row's keys exit at once. */
int eng_cuda_graph_splits(const struct cuda_state *st, int bs)
{
	int want = eng_cuda_decode_want(st, bs), even, n;

	if (!st->splits_by_work)
		return want;
	even = (ENG_DECODE_BLOCKS_PER_SM * st->n_sm + bs * st->nkv - 1) / (bs * st->nkv);
	n = even * (bs < GRAPH_RAGGED ? bs : GRAPH_RAGGED);
	return n > want ? n : want;
}

/* The split length of a captured decode step of batch b padded to bs
 * rows over its grid of n_splits: decode_splits' by work, within the
 * grid; 0 (per row) by count. */
int eng_cuda_graph_split_len(const struct cuda_state *st, const struct eng_batch *b, int bs,
			     int n_splits)
{
	int ns, len;

	if (!st->splits_by_work)
		return 0;
	decode_splits(st, b, bs, bs - b->n_seqs, n_splits, &ns, &len);
	return len;
}

/* Splits of the prefill rows' keys (the tensor-core kernel's).  A short
 * extend chunk on a long cached prefix has few tiles: on the H100, 570
 * new tokens of Qwen2.5-7B on ~10k cached ones make 32 tiles x 4 KV
 * heads = 128 blocks for 132 SMs, each walking ~10k keys, and took ~30 ms
 * a step where ~12 were expected.  The keys are then split until the
 * blocks reach about the number that fits a multiprocessor (by shared
 * memory and registers at head_dim 128: one wave): PREFILL_BLOCKS_PER_SM
 * of the mma.sync kernel, the nearest whole number of splits to that, and
 * one of the wgmma kernels (either form: one block a multiprocessor),
 * whose splits stay within the wave (on the H100
 * the wgmma kernel's 1 x 512 extend on 10k keys, 112 blocks, took 8.70 ms
 * in 2 splits, 7.88 in one).  Each split keeps at least
 * PREFILL_SPLIT_MIN_KEYS keys of the longest row, so that the partials
 * and their reduce stay small next to the keys walked.  A prompt whose
 * tiles fill the GPU already (a 4k prompt of that model: 912 blocks) is
 * not split.  bench-cuda prints the steps with splits on and off. */
#define PREFILL_BLOCKS_PER_SM 2
#define PREFILL_SPLIT_MIN_KEYS 1024

static void prefill_splits(const struct cuda_state *st, struct step_meta *m)
{
	int blocks = m->n_pre * st->nkv, want, most = m->pre_ctx / PREFILL_SPLIT_MIN_KEYS;

	m->pre_splits = 1;
	m->pre_split_len = 0;
	if (!m->n_pre || !st->use_tc || !st->prefill_split)
		return;
	if (st->use_wg)
		want = st->n_sm / blocks;
	else
		want = (PREFILL_BLOCKS_PER_SM * st->n_sm + blocks / 2) / blocks;
	want = want < most ? want : most;
	if (want >= 2)
		eng_split_keys(m->pre_ctx, want, KN_ATTN_TC_SPLIT, &m->pre_splits, &m->pre_split_len);
}

int eng_cuda_prefill_splits(const void *state, const struct eng_batch *b)
{
	const struct cuda_state *st = state;
	struct step_meta m;

	meta_plan(st, b, NULL, 0, &m);
	prefill_splits(st, &m);
	return m.pre_splits;
}

/* The prefill rows' attention: on a wgmma kernel (use_wg: the
 * warp-specialized one or the first), the mma.sync one (use_tc), else the
 * CUDA-core one; all but the last with the step's key splits. */
static int prefill_attention(const struct cuda_state *st, const struct rank *R,
			     const struct step_meta *m, const struct kn_attn_args *a)
{
	if (st->use_wg == ENG_CUDA_WGMMA_WS)
		return kn_attn_prefill_wg2_split(a, m->pre_splits, m->pre_split_len, R->partial,
						 R->stream);
	if (st->use_wg)
		return kn_attn_prefill_wg_split(a, m->pre_splits, m->pre_split_len, R->partial,
						R->stream);
	if (st->use_tc)
		return kn_attn_prefill_tc_split(a, m->pre_splits, m->pre_split_len, R->partial,
						R->stream);
	return kn_attn_prefill(a, R->stream);
}

static int attention(const struct cuda_state *st, const struct rank *R, const struct step_meta *m,
		     int l)
{
	const struct eng_model_config *c = &st->cfg;
	const int32_t *d = R->meta_d;
	const float *ks = st->kv_fp8 ? R->kv_scale + (size_t)l * 2 * st->nkv : NULL;
	struct kn_attn_args a = {
		R->att, R->q, kv_k(st, R, l), kv_v(st, R, l), d + m->bt,
		d + m->pos, d + m->bt_off, d + m->pre_row0, d + m->pre_n, m->n_pre,
		st->nh, st->nkv, c->head_dim, st->params.page_size,
		st->kv_fp8 ? KN_KV_FP8_E4M3 : KN_KV_BF16, ks, ks ? ks + st->nkv : NULL, NULL,
	};
	int rc = 0;

	/* Split prefill rows leave partials in R->partial and reduce them
	 * before the decode kernels below reuse it: one stream, in order
	 * (with programmatic dependent launch too: every kernel waits for
	 * the one before it to finish first, kn_pdl_enter). */
	if (m->n_pre && (rc = prefill_attention(st, R, m, &a)))
		return rc;
	if (!m->n_dec)
		return 0;
	a.tile_row0 = d + m->dec_row0;
	a.tile_n = d + m->dec_n;
	a.n_tiles = m->n_dec;
	a.split_len_at = m->split_dev ? d + m->split_at : NULL;
	return st->use_tc_decode
		       ? kn_attn_decode_tc(&a, m->n_splits, m->split_len, R->partial, R->stream)
		       : kn_attn_decode(&a, m->n_splits, m->split_len, R->partial, R->stream);
}

/* Whether a projection with this bias (NULL: none) adds its product
 * straight into the residual stream x: on one rank, without a bias (the
 * norm after it then only normalizes).  With several ranks the partial
 * products go through proj and its all-reduce. */
static int adds(const struct cuda_state *st, const float *bias)
{
	return st->n_ranks == 1 && !bias && !st->w_fp8;
}

/* Whether the FP8 products' inputs come quantized from the ops that make
 * them (the norms, SiLU) instead of from a quantization of their own. */
static int fused_quant(const struct cuda_state *st)
{
	return st->w_fp8 && st->fuse_quant;
}

/* y (T, n) = in (T, k) . the layer matrix w or its FP8 form (w8, row
 * scales ws) ^T; y fp32 (KN_Y_F32) or bf16 (0).  in NULL: the rows are
 * quantized in R->xq, R->xs already (fused_quant). */
static int linear(const struct cuda_state *st, const struct rank *R, void *y, int y_f32,
		  const uint16_t *in, const uint16_t *w, const uint8_t *w8, const float *ws,
		  int T, int n, int k)
{
	if (st->w_fp8 && !in)
		return kn_gemm_fp8_q(R->gemm, y, y_f32, n, R->xq, R->xs, w8, ws, T, n, k,
				     KN_FP8_AUTO);
	if (st->w_fp8)
		return kn_gemm_fp8(R->gemm, y, y_f32, n, in, w8, ws, T, n, k, R->xq, R->xs,
				   KN_FP8_AUTO);
	return kn_gemm_bf16(R->gemm, y, y_f32, n, in, w, T, n, k);
}

/* RMSNorm (after the add of y, bias) of x into a product's input: R->xb
 * bf16, or R->xq and R->xs under fused_quant. */
static int norm_in(const struct cuda_state *st, const struct rank *R, const float *y,
		   const float *bias, const float *w, int T)
{
	const struct eng_model_config *c = &st->cfg;

	if (fused_quant(st))
		return kn_add_rmsnorm_e4m3(R->x, y, bias, w, R->xq, R->xs, T, c->hidden,
					   (float)c->rms_eps, R->stream);
	return kn_add_rmsnorm(R->x, y, bias, w, R->xb, NULL, T, c->hidden, (float)c->rms_eps,
			      R->stream);
}

/* A row-parallel projection (o, down) of in (T, k) by w (hidden, k) (or
 * w8, ws): added into x when adds(), else into proj for the add + rmsnorm
 * after it (and the all-reduce before that). */
static int project(const struct cuda_state *st, const struct rank *R, const float *bias,
		   const uint16_t *in, const uint16_t *w, const uint8_t *w8, const float *ws,
		   int T, int k)
{
	int H = st->cfg.hidden;

	return adds(st, bias) ? kn_gemm_bf16(R->gemm, R->x, KN_Y_F32_ADD, H, in, w, T, H, k)
			      : linear(st, R, R->proj, KN_Y_F32, in, w, w8, ws, T, H, k);
}

/* Sums the ranks' proj (T rows); nothing with one rank.  A failure is
 * kept in comm_err (see fail()). */
static int all_reduce(struct cuda_state *st, int T)
{
	float *bufs[ENG_TP_MAX];

	if (st->n_ranks == 1)
		return 0;
	for (int r = 0; r < st->n_ranks; r++)
		bufs[r] = st->rk[r].proj;
	if (eng_comm_allreduce_f32(st->comm, bufs, (size_t)T * st->cfg.hidden, &st->comm_err)) {
		st->comm_failed = 1;
		return KN_E_DEVICE;
	}
	eng_cuda_prof_mark(st, PROF_ALLREDUCE);
	return 0;
}

/* The ops of a layer, in order, each run on every rank before the next. */
enum layer_op {
	OP_ATTN_NORM, OP_QKV, OP_ROPE, OP_ATTN, OP_O, OP_MLP_NORM, OP_GU, OP_SILU, OP_DOWN,
	N_LAYER_OPS
};

static const int layer_op_prof[N_LAYER_OPS] = {
	PROF_NORM, PROF_QKV, PROF_ROPE, PROF_ATTN, PROF_O, PROF_NORM, PROF_GU, PROF_SILU, PROF_DOWN
};

/* Bias, q/k norm and RoPE of layer l's q/k/v rows, K and V into the
 * pages (rounded to E4M3 with the layer's scales when they are FP8). */
static int rope(const struct cuda_state *st, const struct rank *R, const struct eng_cuda_layer *L,
		const struct step_meta *m, int l)
{
	const struct eng_model_config *c = &st->cfg;
	const int32_t *pos = R->meta_d + m->pos, *slot = R->meta_d + m->slot;
	const float *ks;
	float eps = (float)c->rms_eps;

	if (!st->kv_fp8)
		return kn_rope_qkv(R->qkv, L->bqkv, L->q_norm, L->k_norm, eps, pos, slot,
				   R->inv_freq, R->q, kv_k(st, R, l), kv_v(st, R, l), m->T, st->nh,
				   st->nkv, c->head_dim, R->stream);
	ks = R->kv_scale + (size_t)l * 2 * st->nkv;
	return kn_rope_qkv_e4m3(R->qkv, L->bqkv, L->q_norm, L->k_norm, eps, pos, slot,
				R->inv_freq, ks, ks + st->nkv, R->q, kv_k(st, R, l),
				kv_v(st, R, l), m->T, st->nh, st->nkv, c->head_dim, R->stream);
}

/* Op op of layer l on rank R. */
static int layer_op(const struct cuda_state *st, const struct rank *R, const struct step_meta *m,
		    int l, enum layer_op op)
{
	const struct eng_model_config *c = &st->cfg;
	const struct eng_cuda_layer *L = &R->w.layers[l], *P = l ? L - 1 : NULL;
	int T = m->T, H = c->hidden, I = st->inter, qkv = qkv_dim(st), fq = fused_quant(st);
	const uint16_t *xb = fq ? NULL : R->xb;

	switch (op) {
	case OP_ATTN_NORM:
		/* adds the last down projection unless it was added already
		 * (a bias is never: adds() wants none) */
		return norm_in(st, R, P && !adds(st, P->bd) ? R->proj : NULL, P ? P->bd : NULL,
			       L->attn_norm, T);
	case OP_QKV:
		return linear(st, R, R->qkv, KN_Y_F32, xb, L->wqkv, L->wqkv8, L->sqkv, T, qkv, H);
	case OP_ROPE:
		return rope(st, R, L, m, l);
	case OP_ATTN:
		return attention(st, R, m, l);
	case OP_O:
		return project(st, R, L->bo, R->att, L->wo, L->wo8, L->so, T, st->nh * c->head_dim);
	case OP_MLP_NORM:
		return norm_in(st, R, adds(st, L->bo) ? NULL : R->proj, L->bo, L->mlp_norm, T);
	case OP_GU:
		/* bf16 weights: SwiGLU too (in the product's kernel where it
		 * is the skinny one and eng_cuda_skinny_glu is on) */
		if (!st->w_fp8)
			return kn_gemm_glu_bf16(R->gemm, R->act, R->gu, R->xb, L->wgu, L->bgu, T, I,
						H);
		return linear(st, R, R->gu, 0, xb, L->wgu, L->wgu8, L->sgu, T, 2 * I, H);
	case OP_SILU:
		if (!st->w_fp8)
			return 0;
		if (fq)
			return kn_silu_mul_e4m3(R->xq, R->xs, R->gu, L->bgu, T, I, R->act, R->qsync,
						R->stream);
		return kn_silu_mul(R->act, R->gu, L->bgu, T, I, R->stream);
	case OP_DOWN:
		return project(st, R, L->bd, fq ? NULL : R->act, L->wd, L->wd8, L->sd, T, I);
	default:
		return KN_E_INVALID;
	}
}

/* Layer l: each op over the ranks, the row-parallel projections' partial
 * sums all-reduced before the norm that consumes them. */
static int layer_forward(struct cuda_state *st, const struct step_meta *m, int l)
{
	for (int op = 0; op < N_LAYER_OPS; op++) {
		for (int r = 0; r < st->n_ranks; r++) {
			int rc = use_rank(st, r);

			if (!rc)
				rc = layer_op(st, &st->rk[r], m, l, (enum layer_op)op);
			if (rc)
				return rc;
		}
		eng_cuda_prof_mark(st, layer_op_prof[op]);
		if (op == OP_O || op == OP_DOWN) {
			int rc = all_reduce(st, m->T);

			if (rc)
				return rc;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- LM head */

/* Logits of selected rows [r0, r0 + n): log-probs, argmax, copies. */
static int head_tile(struct cuda_state *st, const struct eng_batch *b, const struct step_meta *m,
		     int r0, int n)
{
	const struct eng_model_config *c = &st->cfg;
	const struct rank *R = &st->rk[0];
	size_t V = c->vocab;
	int rc, k;

	if ((rc = kn_gemm_bf16(R->gemm, R->logits, KN_Y_F32, c->vocab,
			       R->xb + (size_t)r0 * c->hidden, R->w.lm_head, n, c->vocab,
			       c->hidden)) ||
	    (rc = kn_logprob(R->lp + r0, R->logits, R->meta_d + m->sel_target + r0, n, c->vocab,
			     R->stream)) ||
	    (m->argmax && (rc = kn_argmax(R->amax + r0, R->logits, n, c->vocab, R->stream))))
		return rc;
	for (k = 0; k < n; k++) {
		const struct eng_seq_input *q = &b->seqs[st->sel_seq[r0 + k]];

		if (q->logits && st->sel_i[r0 + k] == q->n_tokens - 1 &&
		    (rc = kn_memcpy_d2h(q->logits, R->logits + k * V, V * 4, R->stream)))
			return rc;
	}
	return 0;
}

/* The same on every rank's vocab slice: the rank's parts of the rows,
 * and its slice of the logits a sequence asked for. */
static int head_tile_tp(struct cuda_state *st, const struct eng_batch *b,
			const struct step_meta *m, int r0, int n)
{
	size_t H = st->cfg.hidden;
	int rc;

	for (int r = 0; r < st->n_ranks; r++) {
		const struct rank *R = &st->rk[r];
		size_t nv = R->w.n_vocab;

		if ((rc = use_rank(st, r)) ||
		    (rc = kn_gemm_bf16(R->gemm, R->logits, 1, (int)nv, R->xb + (size_t)r0 * H,
				       R->w.lm_head, n, (int)nv, (int)H)) ||
		    (rc = kn_vocab_partial(R->part + r0, R->logits, R->meta_d + m->sel_target + r0, n,
					   (int)nv, R->w.vocab0, R->stream)))
			return rc;
		for (int k = 0; k < n; k++) {
			const struct eng_seq_input *q = &b->seqs[st->sel_seq[r0 + k]];

			if (q->logits && st->sel_i[r0 + k] == q->n_tokens - 1 &&
			    (rc = kn_memcpy_d2h(q->logits + R->w.vocab0, R->logits + k * nv, nv * 4,
						R->stream)))
				return rc;
		}
	}
	return 0;
}

/* Rank 0's stream waits for the others' work, then ev_t1 marks the end
 * of the step's device work. */
static int end_mark(struct cuda_state *st)
{
	int rc;

	for (int r = 1; !st->shared && r < st->n_ranks; r++)
		if ((rc = use_rank(st, r)) || (rc = kn_event_record(st->rk[r].done, st->rk[r].stream)) ||
		    (rc = use_rank(st, 0)) || (rc = kn_stream_wait_event(st->rk[0].stream, st->rk[r].done)))
			return rc;
	if ((rc = use_rank(st, 0)))
		return rc;
	return kn_event_record(st->ev_t1, st->rk[0].stream);
}

/* Waits for every rank's stream. */
static int sync_ranks(struct cuda_state *st)
{
	int rc;

	for (int r = st->n_ranks - 1; r >= 0; r--)
		if (own_stream(st, r) &&
		    ((rc = use_rank(st, r)) || (rc = kn_stream_sync(st->rk[r].stream))))
			return rc;
	return 0;
}

/* Row k's log-prob and greedy token from the ranks' parts (after the
 * copies): the log-sum-exp over all slices, the first maximum. */
static void combine_row(struct cuda_state *st, const struct eng_batch *b, int k, int n_sel)
{
	const struct eng_seq_input *q = &b->seqs[st->sel_seq[k]];
	const struct kn_vocab_part *p = st->part_h + k;
	size_t stride = (size_t)n_sel;
	double M = p->max, S = 0;
	int best = 0;

	for (int r = 1; r < st->n_ranks; r++)
		if (p[r * stride].max > M) {
			M = p[r * stride].max;
			best = r;
		}
	st->amax_h[k] = p[best * stride].argmax;
	if (!q->logprobs)
		return;
	for (int r = 0; r < st->n_ranks; r++)
		S += p[r * stride].sum_exp * exp(p[r * stride].max - M);
	for (int r = 0; r < st->n_ranks; r++) {
		const struct eng_cuda_weights *w = &st->rk[r].w;
		int t = q->targets[st->sel_i[k]];

		if (t >= w->vocab0 && t < w->vocab0 + w->n_vocab)
			st->lp_h[k] = (float)(p[r * stride].target - M - log(S));
	}
}

/* The results of the selected rows to the sequences. */
static void head_results(struct cuda_state *st, const struct eng_batch *b,
			 const struct step_meta *m, const uint8_t *want, int32_t *next)
{
	for (int k = 0; k < m->n_sel; k++) {
		const struct eng_seq_input *q = &b->seqs[st->sel_seq[k]];

		if (q->logprobs)
			q->logprobs[st->sel_i[k]] = st->lp_h[k];
		if (st->sel_i[k] != q->n_tokens - 1 || !m->argmax)
			continue;
		if (next && eng_cuda_wants_token(want, 1, st->sel_seq[k]))
			next[st->sel_seq[k]] = st->amax_h[k];
	}
}

/* Final norm of the selected rows (into xb), the head, results to host. */
static int lm_head(struct cuda_state *st, const struct eng_batch *b, const struct step_meta *m,
		   const uint8_t *want, int32_t *next)
{
	const struct eng_model_config *c = &st->cfg;
	const struct rank *R = &st->rk[0];
	int r0, rc;

	if ((rc = kn_add_rmsnorm(R->x, NULL, NULL, R->w.final_norm, R->xb,
				 R->meta_d + m->sel_rows, m->n_sel, c->hidden, (float)c->rms_eps,
				 R->stream)))
		return rc;
	for (r0 = 0; r0 < m->n_sel; r0 += st->lm_tile)
		if ((rc = head_tile(st, b, m, r0, m->n_sel - r0 < st->lm_tile ? m->n_sel - r0
						  : st->lm_tile)))
			return rc;
	if ((rc = kn_memcpy_d2h(st->lp_h, R->lp, (size_t)m->n_sel * 4, R->stream)) ||
	    (m->argmax &&
	     (rc = kn_memcpy_d2h(st->amax_h, R->amax, (size_t)m->n_sel * 4, R->stream))) ||
	    (rc = kn_event_record(st->ev_t1, R->stream)) || (rc = kn_stream_sync(R->stream)))
		return rc;
	head_results(st, b, m, want, next);
	return 0;
}

/* lm_head over the ranks' vocab slices. */
static int lm_head_tp(struct cuda_state *st, const struct eng_batch *b, const struct step_meta *m,
		      const uint8_t *want, int32_t *next)
{
	const struct eng_model_config *c = &st->cfg;
	int r0, rc, r;

	for (r = 0; r < st->n_ranks; r++) {
		const struct rank *R = &st->rk[r];

		if ((rc = use_rank(st, r)) ||
		    (rc = kn_add_rmsnorm(R->x, NULL, NULL, R->w.final_norm, R->xb,
					 R->meta_d + m->sel_rows, m->n_sel, c->hidden,
					 (float)c->rms_eps, R->stream)))
			return rc;
	}
	for (r0 = 0; r0 < m->n_sel; r0 += st->lm_tile)
		if ((rc = head_tile_tp(st, b, m, r0, m->n_sel - r0 < st->lm_tile ? m->n_sel - r0
						     : st->lm_tile)))
			return rc;
	for (r = 0; r < st->n_ranks; r++)
		if ((rc = use_rank(st, r)) ||
		    (rc = kn_memcpy_d2h(st->part_h + (size_t)r * m->n_sel, st->rk[r].part,
					(size_t)m->n_sel * sizeof(*st->part_h), st->rk[r].stream)))
			return rc;
	if ((rc = end_mark(st)) || (rc = sync_ranks(st)))
		return rc;
	for (int k = 0; k < m->n_sel; k++)
		combine_row(st, b, k, m->n_sel);
	head_results(st, b, m, want, next);
	return 0;
}

/* ---------------------------------------------------------------- forward */

/* Embedding, the layers, and the last MLP output into the residual stream:
 * all of a forward but the LM head. */
int eng_cuda_forward_body(struct cuda_state *st, const struct step_meta *m)
{
	const struct eng_model_config *c = &st->cfg;
	int rc = 0, l;

	eng_cuda_prof_mark(st, -1);
	for (int r = 0; !rc && r < st->n_ranks; r++) {
		const struct rank *R = &st->rk[r];

		if (!(rc = use_rank(st, r)))
			rc = kn_embed(R->x, R->w.embed, R->meta_d + m->tokens, m->T, c->hidden,
				      c->vocab, R->stream);
	}
	eng_cuda_prof_mark(st, PROF_EMBED);
	for (l = 0; !rc && l < c->n_layers; l++)
		rc = layer_forward(st, m, l);
	for (int r = 0; !rc && r < st->n_ranks; r++) {
		const struct rank *R = &st->rk[r];

		const float *bd = R->w.layers[c->n_layers - 1].bd;

		if (!adds(st, bd) && !(rc = use_rank(st, r)))
			rc = kn_add_rmsnorm(R->x, R->proj, bd, NULL, NULL, NULL, m->T, c->hidden,
					    (float)c->rms_eps, R->stream);
	}
	eng_cuda_prof_mark(st, PROF_NORM);
	return rc;
}

/* The partials of m's decode splits and of its prefill splits: the two
 * attentions of a step use the buffer one after the other. */
static int ensure_splits(struct cuda_state *st, const struct step_meta *m, struct eng_error *err)
{
	int hd = st->cfg.head_dim;
	size_t dec = 0, pre = 0;

	if (m->n_dec && m->n_splits > 1)
		dec = kn_attn_partial_floats(m->n_dec, st->nh, st->nkv, hd, m->n_splits);
	if (m->n_pre && m->pre_splits > 1)
		pre = kn_attn_prefill_tc_partial_floats(m->n_pre, st->nkv, hd, m->pre_splits);
	return eng_cuda_ensure_partial(st, dec > pre ? dec : pre, err);
}

/* The error of a failed forward step: the all-reduce's own, or the
 * kernels' last. */
static int fail(struct cuda_state *st, int rc, struct eng_error *err)
{
	if (!st->comm_failed)
		return eng_cuda_error(rc, err);
	st->comm_failed = 0;
	if (err)
		*err = st->comm_err;
	return st->comm_err.code;
}

/* Op by op: any batch. */
int eng_cuda_plain_forward(struct cuda_state *st, const struct eng_batch *b, const uint8_t *want,
			 int32_t *next, struct eng_error *err)
{
	struct step_meta m;
	int rc;

	if ((rc = meta_build(st, b, want, next != NULL, &m, err)))
		return rc;
	m.n_splits = 1;
	m.split_len = 64;
	if (m.n_dec)
		decode_splits(st, b, m.n_dec, 0, 0, &m.n_splits, &m.split_len);
	prefill_splits(st, &m);
	if ((rc = ensure_splits(st, &m, err)))
		return rc;
	rc = eng_cuda_forward_body(st, &m);
	if (!rc && m.n_sel)
		rc = st->n_ranks > 1 ? lm_head_tp(st, b, &m, want, next)
				     : lm_head(st, b, &m, want, next);
	eng_cuda_prof_mark(st, PROF_HEAD);
	if (!rc && !m.n_sel)
		rc = end_mark(st);
	if (!rc)
		rc = sync_ranks(st);
	if (!rc)
		eng_cuda_prof_collect(st);
	st->timed = !rc;
	return rc ? fail(st, rc, err) : 0;
}

int eng_cuda_forward_next(void *state, const struct eng_batch *b, const uint8_t *want,
			  int32_t *next, struct eng_error *err)
{
	struct cuda_state *st = state;
	int rc;

	st->timed = 0;
	if (b->n_seqs == 0)
		return 0;
	if ((rc = kn_set_device(st->rk[0].dev)))
		return eng_cuda_error(rc, err);
	if (!st->graph_failed && eng_cuda_graph_fits(st, b))
		return eng_cuda_graph_forward(st, b, want, next, err);
	return eng_cuda_plain_forward(st, b, want, next, err);
}

int eng_cuda_step_device_ms(void *state, double *ms)
{
	struct cuda_state *st = state;
	float f;

	if (!st->timed || kn_event_elapsed_ms(st->ev_t0, st->ev_t1, &f))
		return -1;
	*ms = f;
	return 0;
}

int eng_cuda_forward(void *state, const struct eng_batch *b, int32_t *next,
		     struct eng_error *err)
{
	return eng_cuda_forward_next(state, b, NULL, next, err);
}

/* ---------------------------------------------------------------- vtable */

static int cuda_create(const struct eng_model *model, struct eng_backend_params *params,
		       void **state, struct eng_error *err)
{
	return eng_cuda_create(eng_model_config(model), eng_model_weights(model), 0, params,
			       state, err);
}

static int cuda_create_dummy(const struct eng_model *model, struct eng_backend_params *params,
			     void **state, struct eng_error *err)
{
	return eng_cuda_create(eng_model_config(model), NULL, 0, params, state, err);
}

static int cuda_forward(void *state, const struct eng_batch *batch, struct eng_error *err)
{
	return eng_cuda_forward(state, batch, NULL, err);
}

/* bf16 weights (the linear layers a byte an element with w_fp8), KV in
 * bf16 or (kv_fp8) one byte an element; with w_fp8 the GEMM rate is
 * still the bf16 one, so a compute-bound step's ceiling is the bf16
 * GEMM's.  The ranks
 * of a tensor-parallel group each read and compute their share on a GPU
 * of their own: the rates of rank 0's GPU times the ranks (ranks sharing
 * one GPU do not add up, but that is a test setup). */
static int cuda_roofline(void *state, struct eng_roofline *out, struct eng_error *err)
{
	struct cuda_state *st = state;
	int n = st->shared ? 1 : st->n_ranks;
	int rc;

	if (st->w_fp8)
		eng_roofline_shape_fp8(&st->cfg, 2, st->kv_fp8 ? 1 : 2, &out->shape);
	else
		eng_roofline_shape_of(&st->cfg, 2, st->kv_fp8 ? 1 : 2, &out->shape);
	rc = eng_cuda_measure_rates(st->rk[0].dev, &out->rates, err);
	out->rates.bandwidth_bytes_s *= n;
	out->rates.gemm_flops_s *= n;
	return rc;
}

const struct eng_backend_ops eng_backend_cuda_ops = {
	.name = "cuda",
	.create = cuda_create,
	.destroy = eng_cuda_destroy,
	.forward = cuda_forward,
	.forward_next = eng_cuda_forward_next,
	.roofline = cuda_roofline,
	.tensor_parallel = 1,
};

const struct eng_backend_ops eng_backend_cuda_dummy_ops = {
	.name = "cuda",
	.create = cuda_create_dummy,
	.destroy = eng_cuda_destroy,
	.forward = cuda_forward,
	.forward_next = eng_cuda_forward_next,
	.roofline = cuda_roofline,
	.tensor_parallel = 1,
};
