/*
 * backend_cuda.c: the CUDA backend: the same batched, paged forward pass
 * as backend_cpu.c, on one GPU (params->device), with bf16 weights and KV
 * pages and fp32 arithmetic.
 *
 * All new tokens of a batch form one (T, hidden) activation matrix, so
 * every projection is one cuBLAS GEMM over the batch (q/k/v fused, gate/up
 * fused).  Per step the host builds one int32 metadata block (token ids,
 * positions, cache slots, block tables, attention tiles, LM-head rows) in
 * pinned memory and sends it with a single copy; activations live in
 * device buffers grown to the largest batch seen.
 *
 * Per layer:  xb = rmsnorm(x [+ previous mlp out]);  qkv = xb Wqkv;
 *             q, pages <- rope(qkv + b);  att = attention(q, pages);
 *             proj = att Wo;  xb = rmsnorm(x += proj + bo);
 *             act = silu(xb Wg) * (xb Wu);  proj = act Wd
 * Attention rows of single-token sequences (decode) go through the
 * split-K kernel; longer chunks through the prefill kernel (on the tensor
 * cores where the head_dim allows).
 * The LM head runs only on the rows whose logits or log-probs are wanted,
 * a tile of rows at a time; log-probs and argmax are computed on the
 * device, logits copied back only where a sequence asked for them.
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
 * Refuses: head_dim not a multiple of 8 or over 256, more than 32 query
 * heads per KV head (the attention kernel's limits), at create.
 */
#include <config.h>

#include "engine/cuda_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda_weights.h"
#include "kernels/kn.h"

#define LM_TILE_BYTES ((size_t)256 << 20)

/* The per-step int32 metadata, as offsets into one block. */
struct step_meta {
	int T, n_sel, n_pre, n_dec, n_bt;
	int argmax;   /* some sequence wants its greedy token */
	int n_splits, split_len;   /* decode attention (split_len 0: per row) */
	size_t tokens, pos, slot, bt_off, sel_rows, sel_target, pre_row0, pre_n, dec_row0,
		dec_n, bt, total;
};

/* Per-op device time, when asked for (eng_cuda_profile): an event after
 * every op of a forward, summed per class once the forward is done. */
enum {
	PROF_EMBED, PROF_NORM, PROF_QKV, PROF_ROPE, PROF_ATTN, PROF_O, PROF_GU, PROF_SILU,
	PROF_DOWN, PROF_HEAD, PROF_N
};
static const char *const prof_names[PROF_N] = {
	"embedding", "add + rmsnorm", "qkv gemm", "bias + rope + kv write", "attention",
	"o gemm", "gate/up gemm", "silu * up", "down gemm", "lm head, argmax, copies",
};
#define PROF_EVENTS 1024

struct prof {
	int n, n_fwd;
	kn_event ev[PROF_EVENTS];
	int cat[PROF_EVENTS];
	double ms[PROF_N];
};

struct cuda_state {
	struct eng_model_config cfg;
	struct eng_backend_params params;
	struct eng_cuda_weights w;
	char device_name[256];
	int n_sm, lm_tile;
	int tile_rows;      /* rows per prefill attention tile */
	int use_tc;         /* prefill attention on the tensor-core kernel */
	int use_tc_decode;  /* decode attention likewise */
	kn_stream stream;
	struct kn_gemm *gemm;
	float *inv_freq;             /* (head_dim / 2) */
	int pool_pages;              /* n_pages + 1: the last is the graphs' scratch page */
	uint16_t *k_pool, *v_pool;   /* (n_layers, pool_pages * page_size, n_kv, head_dim) bf16 */
	size_t kv_bytes;
	int cap_tokens;
	float *x;          /* (T, hidden) fp32 residual stream */
	uint16_t *xb;      /* (T, hidden) bf16 normed rows; also the LM head's input */
	float *qkv;        /* (T, q_dim + 2 kv_dim) fp32 */
	uint16_t *q;       /* (T, q_dim) bf16, rotated */
	uint16_t *att;     /* (T, q_dim) bf16 */
	float *proj;       /* (T, hidden) fp32: o_proj, then down_proj output */
	uint16_t *gu;      /* (T, 2 intermediate) bf16 */
	uint16_t *act;     /* (T, intermediate) bf16 */
	float *lp;         /* (T) log-probs of the selected rows */
	int32_t *amax;     /* (T) argmax of the selected rows */
	float *logits;     /* (lm_tile, vocab) fp32 */
	size_t cap_partial;
	float *partial;    /* split-K partials of decode attention */
	size_t cap_meta;   /* int32 elements of meta_h / meta_d */
	int32_t *meta_h;   /* pinned */
	int32_t *meta_d;
	struct prof *prof; /* NULL unless profiling */
	int *sel_seq;      /* (cap_tokens) host: sequence of each selected row */
	int *sel_i;        /* (cap_tokens) host: index of the row in its chunk */
	float *lp_h;       /* (cap_tokens) host copy of lp */
	int32_t *amax_h;   /* (cap_tokens) host copy of amax */
	int buf_gen;       /* bumped when a buffer a graph may hold moves */
	struct graph_ent *graphs;   /* (n_graphs) captured decode forwards */
	int n_graphs;
	kn_event ev_t0, ev_t1;      /* around the device work of the last forward */
	int timed;                  /* both were recorded by the last forward */
	int graph_failed;           /* a capture failed: graphs off for good */
};

static void prof_free(struct prof *p);

static int qkv_dim(const struct eng_model_config *c)
{
	return (c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
}

/* Elements of one layer's K (or V) pages before layer l's. */
static size_t kv_layer(const struct cuda_state *st, int l)
{
	return (size_t)l * st->pool_pages * st->params.page_size * st->cfg.n_kv_heads *
	       st->cfg.head_dim;
}

/* ---------------------------------------------------------------- graphs */

/* One captured decode forward: batch bucket bs, pages block-table
 * entries per sequence, valid while the buffers are those of gen. */
struct graph_ent {
	int bs, pages, gen;
	kn_graph g;
};

#define MAX_GRAPHS 64

static void graphs_drop(struct cuda_state *st)
{
	for (int i = 0; i < st->n_graphs; i++)
		kn_graph_destroy(st->graphs[i].g);
	st->n_graphs = 0;
}

/* ---------------------------------------------------------------- buffers */

static void free_acts(struct cuda_state *st)
{
	kn_free(st->x);
	kn_free(st->xb);
	kn_free(st->qkv);
	kn_free(st->q);
	kn_free(st->att);
	kn_free(st->proj);
	kn_free(st->gu);
	kn_free(st->act);
	kn_free(st->lp);
	kn_free(st->amax);
	free(st->sel_seq);
	free(st->sel_i);
	free(st->lp_h);
	free(st->amax_h);
	st->x = st->proj = st->qkv = st->lp = NULL;
	st->xb = st->q = st->att = st->gu = st->act = NULL;
	st->amax = NULL;
	st->sel_seq = st->sel_i = NULL;
	st->lp_h = NULL;
	st->amax_h = NULL;
	st->cap_tokens = 0;
}

static int ensure_tokens(struct cuda_state *st, int T, struct eng_error *err)
{
	const struct eng_model_config *c = &st->cfg;
	size_t t = (size_t)T, H = c->hidden, qd = (size_t)c->n_heads * c->head_dim;
	int rc;

	if (T <= st->cap_tokens)
		return 0;
	free_acts(st);
	st->buf_gen++;
	t = t < 64 ? 64 : t + t / 4;
	if ((rc = kn_malloc((void **)&st->x, t * H * 4)) ||
	    (rc = kn_malloc((void **)&st->xb, t * H * 2)) ||
	    (rc = kn_malloc((void **)&st->qkv, t * qkv_dim(c) * 4)) ||
	    (rc = kn_malloc((void **)&st->q, t * qd * 2)) ||
	    (rc = kn_malloc((void **)&st->att, t * qd * 2)) ||
	    (rc = kn_malloc((void **)&st->proj, t * H * 4)) ||
	    (rc = kn_malloc((void **)&st->gu, t * 2 * c->intermediate * 2)) ||
	    (rc = kn_malloc((void **)&st->act, t * c->intermediate * 2)) ||
	    (rc = kn_malloc((void **)&st->lp, t * 4)) ||
	    (rc = kn_malloc((void **)&st->amax, t * 4))) {
		eng_cuda_error(rc, err);
		free_acts(st);
		return ENG_E_DEVICE;
	}
	st->sel_seq = malloc(t * sizeof(int));
	st->sel_i = malloc(t * sizeof(int));
	st->lp_h = malloc(t * sizeof(float));
	st->amax_h = malloc(t * sizeof(int32_t));
	if (!st->sel_seq || !st->sel_i || !st->lp_h || !st->amax_h) {
		free_acts(st);
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	}
	st->cap_tokens = (int)t;
	return 0;
}

static int ensure_meta(struct cuda_state *st, size_t n, struct eng_error *err)
{
	int rc;

	if (n <= st->cap_meta)
		return 0;
	kn_host_free(st->meta_h);
	kn_free(st->meta_d);
	st->meta_h = NULL;
	st->meta_d = NULL;
	st->cap_meta = 0;
	st->buf_gen++;
	n += n / 4 + 1024;
	if ((rc = kn_host_alloc((void **)&st->meta_h, n * 4)) ||
	    (rc = kn_malloc((void **)&st->meta_d, n * 4)))
		return eng_cuda_error(rc, err);
	st->cap_meta = n;
	return 0;
}

static int ensure_partial(struct cuda_state *st, size_t n, struct eng_error *err)
{
	int rc;

	if (n <= st->cap_partial)
		return 0;
	kn_free(st->partial);
	st->partial = NULL;
	st->cap_partial = 0;
	st->buf_gen++;
	n += n / 4;
	if ((rc = kn_malloc((void **)&st->partial, n * 4)))
		return eng_cuda_error(rc, err);
	st->cap_partial = n;
	return 0;
}

/* ---------------------------------------------------------------- create */

void eng_cuda_destroy(void *state)
{
	struct cuda_state *st = state;

	if (!st)
		return;
	kn_set_device(st->params.device);
	if (st->stream)
		kn_stream_sync(st->stream);
	graphs_drop(st);
	free(st->graphs);
	kn_event_destroy(st->ev_t0);
	kn_event_destroy(st->ev_t1);
	free_acts(st);
	prof_free(st->prof);
	kn_free(st->partial);
	kn_free(st->logits);
	kn_host_free(st->meta_h);
	kn_free(st->meta_d);
	kn_free(st->inv_freq);
	kn_free(st->k_pool);
	kn_free(st->v_pool);
	eng_cuda_weights_free(&st->w);
	kn_gemm_free(st->gemm);
	kn_stream_destroy(st->stream);
	free(st);
}

static int check_shape(const struct eng_model_config *c, struct eng_error *err)
{
	if (c->head_dim % 8 || c->head_dim > 256 || c->head_dim < 8 ||
	    kn_attn_tile_rows(c->n_heads, c->n_kv_heads) < 1)
		return eng_error_set(err, ENG_E_INVALID, "cuda", 0,
				     "head_dim %d with %d heads over %d kv heads: the kernels need "
				     "head_dim a multiple of 8 up to 256 and at most 32 heads per kv head",
				     c->head_dim, c->n_heads, c->n_kv_heads);
	return 0;
}

static int open_device(struct cuda_state *st, struct eng_error *err)
{
	int n = 0, rc;

	if ((rc = kn_device_count(&n)) || n == 0)
		return eng_error_set(err, ENG_E_DEVICE, "cuda", 0, "no CUDA device%s%s",
				     rc ? ": " : "", rc ? kn_last_error() : "");
	if (st->params.device < 0 || st->params.device >= n)
		return eng_error_set(err, ENG_E_DEVICE, "cuda", 0,
				     "device %d requested, %d present", st->params.device, n);
	if ((rc = kn_set_device(st->params.device)) ||
	    (rc = kn_device_info(st->params.device, st->device_name, sizeof(st->device_name),
				 &st->n_sm, NULL)) ||
	    (rc = kn_stream_create(&st->stream)) || (rc = kn_gemm_create(&st->gemm, st->stream)))
		return eng_cuda_error(rc, err);
	return 0;
}

/* The KV pool (zeroed), the RoPE table and the LM-head logits tile. */
static int alloc_fixed(struct cuda_state *st, struct eng_error *err)
{
	const struct eng_model_config *c = &st->cfg;
	size_t half = (size_t)c->head_dim / 2;
	size_t per = (size_t)c->n_layers * st->pool_pages * st->params.page_size *
		     c->n_kv_heads * c->head_dim * 2;
	float *h = malloc(half * sizeof(float));
	int rc;

	if (!h)
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	eng_config_rope_inv_freq(c, h);
	st->lm_tile = (int)(LM_TILE_BYTES / ((size_t)c->vocab * 4));
	st->lm_tile = st->lm_tile < 1 ? 1 : st->lm_tile > 4096 ? 4096 : st->lm_tile;
	rc = kn_malloc((void **)&st->inv_freq, half * 4);
	if (!rc)
		rc = kn_memcpy_h2d(st->inv_freq, h, half * 4, st->stream);
	if (!rc)
		rc = kn_stream_sync(st->stream);
	free(h);
	if (rc || (rc = kn_malloc((void **)&st->k_pool, per)) ||
	    (rc = kn_malloc((void **)&st->v_pool, per)) ||
	    (rc = kn_memset(st->k_pool, 0, per, st->stream)) ||
	    (rc = kn_memset(st->v_pool, 0, per, st->stream)) ||
	    (rc = kn_malloc((void **)&st->logits, (size_t)st->lm_tile * c->vocab * 4)) ||
	    (rc = kn_stream_sync(st->stream)))
		return eng_cuda_error(rc, err);
	st->kv_bytes = 2 * per;
	return 0;
}

/* Random K/V in every page, so that benchmarks can time decode at any
 * context without a prefill (and never on zeros). */
static int dummy_pages(struct cuda_state *st, uint64_t seed, struct eng_error *err)
{
	size_t n = st->kv_bytes / 4;
	int rc;

	if ((rc = kn_fill_random_bf16(st->k_pool, n, seed ^ 0x4b56ull, 0.0f, 1.0f, st->stream)) ||
	    (rc = kn_fill_random_bf16(st->v_pool, n, seed ^ 0x5646ull, 0.0f, 1.0f, st->stream)) ||
	    (rc = kn_stream_sync(st->stream)))
		return eng_cuda_error(rc, err);
	return 0;
}

static int make_events(struct cuda_state *st, struct eng_error *err)
{
	int rc;

	if ((rc = kn_event_create(&st->ev_t0)) || (rc = kn_event_create(&st->ev_t1)))
		return eng_cuda_error(rc, err);
	return 0;
}

int eng_cuda_create(const struct eng_model_config *cfg, const struct eng_model_weights *w,
		    uint64_t seed, struct eng_backend_params *params, void **state,
		    struct eng_error *err)
{
	struct cuda_state *st;
	int rc;

	*state = NULL;
	if ((rc = check_shape(cfg, err)))
		return rc;
	if (!(st = calloc(1, sizeof(*st))))
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	st->cfg = *cfg;
	if (params->cuda_graph_max_bs < 0)
		params->cuda_graph_max_bs = 0;
	st->params = *params;
	st->pool_pages = params->n_pages + 1;
	st->tile_rows = kn_attn_tc_tile_rows(cfg->n_heads, cfg->n_kv_heads, cfg->head_dim);
	st->use_tc = st->tile_rows > 0;
	if (!st->use_tc)
		st->tile_rows = kn_attn_tile_rows(cfg->n_heads, cfg->n_kv_heads);
	st->use_tc_decode = kn_attn_decode_tc_ok(cfg->n_heads, cfg->n_kv_heads, cfg->head_dim);
	if ((rc = open_device(st, err)) || (rc = alloc_fixed(st, err)) ||
	    (rc = make_events(st, err)) ||
	    (rc = w ? eng_cuda_weights_upload(&st->w, cfg, w, st->stream, err)
		    : eng_cuda_weights_dummy(&st->w, cfg, seed, st->stream, err)) ||
	    (rc = w ? 0 : dummy_pages(st, seed, err))) {
		eng_cuda_destroy(st);
		return rc;
	}
	*state = st;
	return 0;
}

const char *eng_cuda_device_name(const void *state)
{
	return ((const struct cuda_state *)state)->device_name;
}

size_t eng_cuda_weight_bytes(const void *state)
{
	return ((const struct cuda_state *)state)->w.bytes;
}

/* ---------------------------------------------------------------- profile */

static void prof_mark(struct cuda_state *st, int cat)
{
	struct prof *p = st->prof;

	if (!p || p->n >= PROF_EVENTS || kn_event_record(p->ev[p->n], st->stream))
		return;
	p->cat[p->n++] = cat;
}

/* After a synchronized forward: event gaps into the per-class sums. */
static void prof_collect(struct cuda_state *st)
{
	struct prof *p = st->prof;
	float ms;

	if (!p)
		return;
	for (int i = 1; i < p->n; i++)
		if (p->cat[i] >= 0 && kn_event_elapsed_ms(p->ev[i - 1], p->ev[i], &ms) == 0)
			p->ms[p->cat[i]] += ms;
	p->n_fwd++;
	p->n = 0;
}

static void prof_free(struct prof *p)
{
	if (!p)
		return;
	for (int i = 0; i < PROF_EVENTS; i++)
		kn_event_destroy(p->ev[i]);
	free(p);
}

int eng_cuda_profile(void *state, int on, struct eng_error *err)
{
	struct cuda_state *st = state;
	int rc;

	prof_free(st->prof);
	st->prof = NULL;
	if (!on)
		return 0;
	if (!(st->prof = calloc(1, sizeof(*st->prof))))
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	for (int i = 0; i < PROF_EVENTS; i++)
		if ((rc = kn_event_create(&st->prof->ev[i]))) {
			prof_free(st->prof);
			st->prof = NULL;
			return eng_cuda_error(rc, err);
		}
	return 0;
}

void eng_cuda_profile_print(void *state, FILE *f)
{
	struct prof *p = ((struct cuda_state *)state)->prof;
	double total = 0;

	if (!p || !p->n_fwd)
		return;
	for (int c = 0; c < PROF_N; c++)
		total += p->ms[c];
	for (int c = 0; c < PROF_N; c++)
		fprintf(f, "  %-26s %9.3f ms %5.1f%%\n", prof_names[c], p->ms[c] / p->n_fwd,
			total > 0 ? 100 * p->ms[c] / total : 0.0);
	fprintf(f, "  %-26s %9.3f ms (device time between ops, per forward)\n", "total",
		total / p->n_fwd);
	memset(p->ms, 0, sizeof(p->ms));
	p->n_fwd = 0;
}

/* ---------------------------------------------------------------- metadata */

/* Whether sequence s wants its greedy token: want[s], or every sequence
 * when want is NULL and all is set. */
static int wants_token(const uint8_t *want, int all, int s)
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
		if (q->n_tokens == 1)
			m->n_dec++;
		else
			m->n_pre += (q->n_tokens + st->tile_rows - 1) / st->tile_rows;
		if (q->logprobs)
			m->n_sel += q->n_tokens;
		else if (q->logits || wants_token(want, all, s))
			m->n_sel++;
		m->argmax |= wants_token(want, all, s);
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

static int meta_build(struct cuda_state *st, const struct eng_batch *b, const uint8_t *want,
		      int all, struct step_meta *m, struct eng_error *err)
{
	int s, row = 0, sel = 0, pre = 0, dec = 0, bt = 0, rc;

	meta_plan(st, b, want, all, m);
	if ((rc = ensure_tokens(st, m->T, err)) || (rc = ensure_meta(st, m->total, err)))
		return rc;
	for (s = 0; s < b->n_seqs; s++)
		meta_seq(st, &b->seqs[s], s, wants_token(want, all, s), m, &row, &sel, &pre, &dec,
			 &bt);
	if ((rc = kn_event_record(st->ev_t0, st->stream)) ||
	    (rc = kn_memcpy_h2d(st->meta_d, st->meta_h, m->total * 4, st->stream)))
		return eng_cuda_error(rc, err);
	return 0;
}

/* ---------------------------------------------------------------- layers */

/* Splits of the decode rows' keys that fill the GPU: about 4 blocks per
 * multiprocessor. */
static int decode_want(const struct cuda_state *st, int n_dec)
{
	int want = (4 * st->n_sm + n_dec * st->cfg.n_kv_heads - 1) / (n_dec * st->cfg.n_kv_heads);

	return want < 1 ? 1 : want;
}

/* Split-K shape for the decode rows: enough blocks to fill the GPU. */
static void decode_splits(const struct cuda_state *st, const struct eng_batch *b, int n_dec,
			  int *n_splits, int *split_len)
{
	int s, max_ctx = 1, want, len;

	for (s = 0; s < b->n_seqs; s++)
		if (b->seqs[s].n_tokens == 1 && b->seqs[s].start_pos + 1 > max_ctx)
			max_ctx = b->seqs[s].start_pos + 1;
	want = decode_want(st, n_dec);
	len = (max_ctx + want - 1) / want;
	len = (len + 31) / 32 * 32;
	len = len < 64 ? 64 : len;
	*split_len = len;
	*n_splits = (max_ctx + len - 1) / len;
}

static int attention(struct cuda_state *st, const struct step_meta *m, int l)
{
	const struct eng_model_config *c = &st->cfg;
	size_t layer = kv_layer(st, l);
	const int32_t *d = st->meta_d;
	struct kn_attn_args a = {
		st->att, st->q, st->k_pool + layer, st->v_pool + layer, d + m->bt,
		d + m->pos, d + m->bt_off, d + m->pre_row0, d + m->pre_n, m->n_pre,
		c->n_heads, c->n_kv_heads, c->head_dim, st->params.page_size,
	};
	int rc = 0;

	if (m->n_pre && (rc = st->use_tc ? kn_attn_prefill_tc(&a, st->stream)
					 : kn_attn_prefill(&a, st->stream)))
		return rc;
	if (!m->n_dec)
		return 0;
	a.tile_row0 = d + m->dec_row0;
	a.tile_n = d + m->dec_n;
	a.n_tiles = m->n_dec;
	return st->use_tc_decode
		       ? kn_attn_decode_tc(&a, m->n_splits, m->split_len, st->partial, st->stream)
		       : kn_attn_decode(&a, m->n_splits, m->split_len, st->partial, st->stream);
}

/* Runs call; on success marks the end of an op of class cat. */
#define RUN_OP(cat, call)                          \
	do {                                       \
		if ((rc = (call)))                 \
			return rc;                 \
		prof_mark(st, cat);                \
	} while (0)

static int layer_forward(struct cuda_state *st, const struct step_meta *m, int l)
{
	const struct eng_model_config *c = &st->cfg;
	const struct eng_cuda_layer *L = &st->w.layers[l], *P = l ? &st->w.layers[l - 1] : NULL;
	const int32_t *d = st->meta_d;
	int T = m->T, H = c->hidden, I = c->intermediate, qd = c->n_heads * c->head_dim;
	size_t layer = kv_layer(st, l);
	float eps = (float)c->rms_eps;
	int rc;

	RUN_OP(PROF_NORM, kn_add_rmsnorm(st->x, P ? st->proj : NULL, P ? P->bd : NULL,
					 L->attn_norm, st->xb, NULL, T, H, eps, st->stream));
	RUN_OP(PROF_QKV, kn_gemm_bf16(st->gemm, st->qkv, 1, qkv_dim(c), st->xb, L->wqkv, T,
				      qkv_dim(c), H));
	RUN_OP(PROF_ROPE, kn_rope_qkv(st->qkv, L->bqkv, d + m->pos, d + m->slot, st->inv_freq,
				      st->q, st->k_pool + layer, st->v_pool + layer, T, c->n_heads,
				      c->n_kv_heads, c->head_dim, st->stream));
	RUN_OP(PROF_ATTN, attention(st, m, l));
	RUN_OP(PROF_O, kn_gemm_bf16(st->gemm, st->proj, 1, H, st->att, L->wo, T, H, qd));
	RUN_OP(PROF_NORM, kn_add_rmsnorm(st->x, st->proj, L->bo, L->mlp_norm, st->xb, NULL, T, H,
					 eps, st->stream));
	RUN_OP(PROF_GU, kn_gemm_bf16(st->gemm, st->gu, 0, 2 * I, st->xb, L->wgu, T, 2 * I, H));
	RUN_OP(PROF_SILU, kn_silu_mul(st->act, st->gu, L->bgu, T, I, st->stream));
	RUN_OP(PROF_DOWN, kn_gemm_bf16(st->gemm, st->proj, 1, H, st->act, L->wd, T, H, I));
	return 0;
}

/* ---------------------------------------------------------------- LM head */

/* Logits of selected rows [r0, r0 + n): log-probs, argmax, copies. */
static int head_tile(struct cuda_state *st, const struct eng_batch *b, const struct step_meta *m,
		     int r0, int n)
{
	const struct eng_model_config *c = &st->cfg;
	size_t V = c->vocab;
	int rc, k;

	if ((rc = kn_gemm_bf16(st->gemm, st->logits, 1, c->vocab, st->xb + (size_t)r0 * c->hidden,
			       st->w.lm_head, n, c->vocab, c->hidden)) ||
	    (rc = kn_logprob(st->lp + r0, st->logits, st->meta_d + m->sel_target + r0, n, c->vocab,
			     st->stream)) ||
	    (m->argmax && (rc = kn_argmax(st->amax + r0, st->logits, n, c->vocab, st->stream))))
		return rc;
	for (k = 0; k < n; k++) {
		const struct eng_seq_input *q = &b->seqs[st->sel_seq[r0 + k]];

		if (q->logits && st->sel_i[r0 + k] == q->n_tokens - 1 &&
		    (rc = kn_memcpy_d2h(q->logits, st->logits + k * V, V * 4, st->stream)))
			return rc;
	}
	return 0;
}

/* Final norm of the selected rows (into xb), the head, results to host. */
static int lm_head(struct cuda_state *st, const struct eng_batch *b, const struct step_meta *m,
		   const uint8_t *want, int32_t *next)
{
	const struct eng_model_config *c = &st->cfg;
	int r0, rc, k;

	if ((rc = kn_add_rmsnorm(st->x, NULL, NULL, st->w.final_norm, st->xb,
				 st->meta_d + m->sel_rows, m->n_sel, c->hidden, (float)c->rms_eps,
				 st->stream)))
		return rc;
	for (r0 = 0; r0 < m->n_sel; r0 += st->lm_tile)
		if ((rc = head_tile(st, b, m, r0, m->n_sel - r0 < st->lm_tile ? m->n_sel - r0
						  : st->lm_tile)))
			return rc;
	if ((rc = kn_memcpy_d2h(st->lp_h, st->lp, (size_t)m->n_sel * 4, st->stream)) ||
	    (m->argmax &&
	     (rc = kn_memcpy_d2h(st->amax_h, st->amax, (size_t)m->n_sel * 4, st->stream))) ||
	    (rc = kn_event_record(st->ev_t1, st->stream)) || (rc = kn_stream_sync(st->stream)))
		return rc;
	for (k = 0; k < m->n_sel; k++) {
		const struct eng_seq_input *q = &b->seqs[st->sel_seq[k]];

		if (q->logprobs)
			q->logprobs[st->sel_i[k]] = st->lp_h[k];
		if (st->sel_i[k] != q->n_tokens - 1 || !m->argmax)
			continue;
		if (next && wants_token(want, 1, st->sel_seq[k]))
			next[st->sel_seq[k]] = st->amax_h[k];
	}
	return 0;
}

/* ---------------------------------------------------------------- forward */

/* Embedding, the layers, and the last MLP output into the residual stream:
 * all of a forward but the LM head. */
static int forward_body(struct cuda_state *st, const struct step_meta *m)
{
	const struct eng_model_config *c = &st->cfg;
	int rc, l;

	prof_mark(st, -1);
	rc = kn_embed(st->x, st->w.embed, st->meta_d + m->tokens, m->T, c->hidden, c->vocab,
		      st->stream);
	prof_mark(st, PROF_EMBED);
	for (l = 0; !rc && l < c->n_layers; l++)
		rc = layer_forward(st, m, l);
	if (!rc)
		rc = kn_add_rmsnorm(st->x, st->proj, st->w.layers[c->n_layers - 1].bd, NULL, NULL,
				    NULL, m->T, c->hidden, (float)c->rms_eps, st->stream);
	prof_mark(st, PROF_NORM);
	return rc;
}

/* The partials of m's decode splits. */
static int ensure_splits(struct cuda_state *st, const struct step_meta *m, struct eng_error *err)
{
	const struct eng_model_config *c = &st->cfg;

	if (!m->n_dec || m->n_splits < 2)
		return 0;
	return ensure_partial(st, kn_attn_partial_floats(m->n_dec, c->n_heads, c->n_kv_heads,
							 c->head_dim, m->n_splits), err);
}

/* Op by op: any batch. */
static int plain_forward(struct cuda_state *st, const struct eng_batch *b, const uint8_t *want,
			 int32_t *next, struct eng_error *err)
{
	struct step_meta m;
	int rc;

	if ((rc = meta_build(st, b, want, next != NULL, &m, err)))
		return rc;
	m.n_splits = 1;
	m.split_len = 64;
	if (m.n_dec)
		decode_splits(st, b, m.n_dec, &m.n_splits, &m.split_len);
	if ((rc = ensure_splits(st, &m, err)))
		return rc;
	rc = forward_body(st, &m);
	if (!rc && m.n_sel)
		rc = lm_head(st, b, &m, want, next);
	prof_mark(st, PROF_HEAD);
	if (!rc && !m.n_sel)
		rc = kn_event_record(st->ev_t1, st->stream);
	if (!rc)
		rc = kn_stream_sync(st->stream);
	if (!rc)
		prof_collect(st);
	st->timed = !rc;
	return rc ? eng_cuda_error(rc, err) : 0;
}

/* The bucket of a decode batch of n: 1, 2, 4, 8, then multiples of 8 up to
 * 32, then of 16, never over cuda_graph_max_bs (itself the last bucket). */
static int graph_bucket(const struct cuda_state *st, int n)
{
	int b = n <= 1 ? 1 : n <= 2 ? 2 : n <= 4 ? 4 : n <= 8 ? 8 : n <= 32 ? (n + 7) / 8 * 8
											  : (n + 15) / 16 * 16;

	return b > st->params.cuda_graph_max_bs ? st->params.cuda_graph_max_bs : b;
}

/* Decode-only (one token each, no targets), small enough, not profiled. */
static int graph_fits(const struct cuda_state *st, const struct eng_batch *b)
{
	if (st->params.disable_cuda_graph || st->prof || b->n_seqs > st->params.cuda_graph_max_bs ||
	    graph_bucket(st, b->n_seqs) > st->lm_tile)
		return 0;
	for (int s = 0; s < b->n_seqs; s++)
		if (b->seqs[s].n_tokens != 1 || b->seqs[s].targets)
			return 0;
	return 1;
}

/* The fixed layout of a captured decode batch of bs rows with pages
 * block-table entries each: every row selected, decode splits sized per
 * row (split_len 0) over a grid that fills the GPU at the longest
 * context the table holds. */
static void graph_plan(const struct cuda_state *st, int bs, int pages, struct step_meta *m)
{
	int max_split = pages * st->params.page_size / 64, want = decode_want(st, bs);
	size_t o = 0;

	memset(m, 0, sizeof(*m));
	m->T = m->n_sel = m->n_dec = bs;
	m->n_bt = bs * pages;
	m->argmax = 1;
	m->n_splits = want < max_split ? want : max_split < 1 ? 1 : max_split;
	m->split_len = 0;
	m->tokens = o, o += bs;
	m->pos = o, o += bs;
	m->slot = o, o += bs;
	m->bt_off = o, o += bs;
	m->sel_rows = o, o += bs;
	m->sel_target = o, o += bs;
	m->pre_row0 = m->pre_n = o;
	m->dec_row0 = o, o += bs;
	m->dec_n = o, o += bs;
	m->bt = o, o += (size_t)m->n_bt;
	m->total = o;
}

/* Row r of the graph's metadata: sequence q, or (q NULL) a padding row at
 * position 0 of the scratch page. */
static void graph_row(struct cuda_state *st, const struct step_meta *m, int pages, int r,
		      const struct eng_seq_input *q)
{
	int32_t *h = st->meta_h, *bt = h + m->bt + (size_t)r * pages;
	int ps = st->params.page_size, scratch = st->params.n_pages, pos = q ? q->start_pos : 0;
	int nb = q ? pos / ps + 1 : 0, i;

	for (i = 0; i < nb; i++)
		bt[i] = q->block_table[i];
	for (; i < pages; i++)
		bt[i] = scratch;
	h[m->tokens + r] = q ? q->tokens[0] : 0;
	h[m->pos + r] = pos;
	h[m->slot + r] = bt[pos / ps] * ps + pos % ps;
	h[m->bt_off + r] = r * pages;
	h[m->sel_rows + r] = r;
	h[m->sel_target + r] = -1;
	h[m->dec_row0 + r] = r;
	h[m->dec_n + r] = 1;
}

/* What a graph holds: the forward of the bs rows of layout m, the LM head
 * on every row, the argmax of each. */
static int graph_ops(struct cuda_state *st, const struct step_meta *m)
{
	const struct eng_model_config *c = &st->cfg;
	int rc = forward_body(st, m);

	if (!rc)
		rc = kn_add_rmsnorm(st->x, NULL, NULL, st->w.final_norm, st->xb, NULL, m->T,
				    c->hidden, (float)c->rms_eps, st->stream);
	if (!rc)
		rc = kn_gemm_bf16(st->gemm, st->logits, 1, c->vocab, st->xb, st->w.lm_head, m->T,
				  c->vocab, c->hidden);
	if (!rc)
		rc = kn_argmax(st->amax, st->logits, m->T, c->vocab, st->stream);
	return rc;
}

/* The captured forward of layout m (bs rows, pages entries), captured on
 * first use after one run of the same ops outside the capture (module
 * loads and library setup stay out of it; the run computes what the
 * replay will); NULL with err set when that fails. */
static kn_graph graph_get(struct cuda_state *st, const struct step_meta *m, int pages,
			  struct eng_error *err)
{
	struct graph_ent *e;
	kn_graph g = NULL;
	int rc, i;

	for (i = 0; i < st->n_graphs; i++)
		if (st->graphs[i].bs == m->T && st->graphs[i].pages == pages)
			return st->graphs[i].g;
	if (st->n_graphs == MAX_GRAPHS)
		graphs_drop(st);
	if ((rc = graph_ops(st, m)) || (rc = kn_stream_sync(st->stream)) ||
	    (rc = kn_capture_begin(st->stream))) {
		eng_cuda_error(rc, err);
		return NULL;
	}
	rc = graph_ops(st, m);
	i = kn_capture_end(st->stream, rc == 0, &g);
	if (rc || i) {
		eng_cuda_error(rc ? rc : i, err);
		return NULL;
	}
	e = &st->graphs[st->n_graphs++];
	e->bs = m->T;
	e->pages = pages;
	e->gen = st->buf_gen;
	e->g = g;
	return g;
}

/* Results of a replayed graph to the host: tokens, and logits where asked. */
static int graph_results(struct cuda_state *st, const struct eng_batch *b, const uint8_t *want,
			 int32_t *next)
{
	size_t V = st->cfg.vocab;
	int rc, s;

	if ((rc = kn_memcpy_d2h(st->amax_h, st->amax, (size_t)b->n_seqs * 4, st->stream)))
		return rc;
	for (s = 0; s < b->n_seqs; s++)
		if (b->seqs[s].logits &&
		    (rc = kn_memcpy_d2h(b->seqs[s].logits, st->logits + s * V, V * 4, st->stream)))
			return rc;
	if ((rc = kn_event_record(st->ev_t1, st->stream)) || (rc = kn_stream_sync(st->stream)))
		return rc;
	for (s = 0; next && s < b->n_seqs; s++)
		if (wants_token(want, 1, s))
			next[s] = st->amax_h[s];
	return 0;
}

/* A decode batch through the graph of its bucket: metadata padded to the
 * bucket and uploaded, the graph replayed (captured first if new). */
static int graph_forward(struct cuda_state *st, const struct eng_batch *b, const uint8_t *want,
			 int32_t *next, struct eng_error *err)
{
	int bs = graph_bucket(st, b->n_seqs), ps = st->params.page_size, need = 1, pages = 16, rc;
	struct step_meta m;
	kn_graph g;

	for (int s = 0; s < b->n_seqs; s++)
		need = b->seqs[s].start_pos / ps + 1 > need ? b->seqs[s].start_pos / ps + 1 : need;
	while (pages < need)
		pages *= 2;
	graph_plan(st, bs, pages, &m);
	if (!st->graphs && !(st->graphs = calloc(MAX_GRAPHS, sizeof(*st->graphs))))
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	/* room for the next block-table class and for the most splits any
	 * class of this bucket takes: fewer recaptures */
	if ((rc = ensure_tokens(st, bs, err)) || (rc = ensure_meta(st, 2 * m.total, err)) ||
	    (rc = ensure_partial(st, kn_attn_partial_floats(bs, st->cfg.n_heads, st->cfg.n_kv_heads,
							     st->cfg.head_dim, decode_want(st, bs)),
				 err)))
		return rc;
	if (st->n_graphs && st->graphs[0].gen != st->buf_gen)
		graphs_drop(st);
	for (int r = 0; r < bs; r++)
		graph_row(st, &m, pages, r, r < b->n_seqs ? &b->seqs[r] : NULL);
	if ((rc = kn_event_record(st->ev_t0, st->stream)) ||
	    (rc = kn_memcpy_h2d(st->meta_d, st->meta_h, m.total * 4, st->stream)))
		return eng_cuda_error(rc, err);
	if (!(g = graph_get(st, &m, pages, err))) {
		/* an op that cannot be captured: op by op from now on */
		st->graph_failed = 1;
		return plain_forward(st, b, want, next, err);
	}
	if ((rc = kn_graph_launch(g, st->stream)) || (rc = graph_results(st, b, want, next)))
		return eng_cuda_error(rc, err);
	st->timed = 1;
	return 0;
}

int eng_cuda_forward_next(void *state, const struct eng_batch *b, const uint8_t *want,
			  int32_t *next, struct eng_error *err)
{
	struct cuda_state *st = state;
	int rc;

	st->timed = 0;
	if (b->n_seqs == 0)
		return 0;
	if ((rc = kn_set_device(st->params.device)))
		return eng_cuda_error(rc, err);
	if (!st->graph_failed && graph_fits(st, b))
		return graph_forward(st, b, want, next, err);
	return plain_forward(st, b, want, next, err);
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

void eng_cuda_use_graphs(void *state, int on)
{
	((struct cuda_state *)state)->params.disable_cuda_graph = !on;
}

int eng_cuda_graph_count(const void *state)
{
	const struct cuda_state *st = state;

	return st->graph_failed ? -1 : st->n_graphs;
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

static size_t cuda_kv_bytes(const void *state)
{
	return ((const struct cuda_state *)state)->kv_bytes;
}

const struct eng_backend_ops eng_backend_cuda_ops = {
	.name = "cuda",
	.create = cuda_create,
	.destroy = eng_cuda_destroy,
	.forward = cuda_forward,
	.forward_next = eng_cuda_forward_next,
	.kv_bytes = cuda_kv_bytes,
};

const struct eng_backend_ops eng_backend_cuda_dummy_ops = {
	.name = "cuda",
	.create = cuda_create_dummy,
	.destroy = eng_cuda_destroy,
	.forward = cuda_forward,
	.forward_next = eng_cuda_forward_next,
	.kv_bytes = cuda_kv_bytes,
};
