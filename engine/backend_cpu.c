/*
 * backend_cpu.c: the CPU reference backend: a batched, paged forward pass
 * of Qwen2 / Qwen3 (dense) / Llama in fp32.
 *
 * All new tokens of all sequences in a batch are stacked into one
 * (n_tokens, hidden) activation matrix, so every projection is one matmul
 * over the whole batch (weights read once per step, whatever the batch).
 * Only attention is per sequence: each (sequence, head) pair is a task that
 * reads its keys and values from the sequence's pages, after the chunk's own
 * K/V were written there, so prefix and chunk go through the same code.
 *
 * Per layer:  xb = rmsnorm(x); q,k,v = xb Wq,Wk,Wv (+b);
 *             [Qwen3: q,k = rmsnorm of each head, by q_norm, k_norm]; rope(q,k);
 *             pages <- k,v; att = softmax(q K^T / sqrt(d)) V  (causal, GQA);
 *             x += att Wo; xb = rmsnorm(x); x += (silu(xb Wg) * xb Wu) Wd
 * Then final rmsnorm and the LM head, only on the rows whose logits or
 * log-probs were asked for, LM_TILE rows at a time to bound memory.
 *
 * With an FP8 KV cache (params->kv_dtype fp8_e4m3) the chunk's K and V go
 * through the E4M3 rounding the GPU stores (kv_fp8.h: e4m3(x / scale) *
 * scale, per KV head) before they enter the pages, which keep fp32: the
 * same numbers as the GPU's pages, so that the GPU is checked against this
 * emulation.  kv_dtype bf16 likewise rounds them to bf16 (the GPU's
 * default pages), so that fp8 and bf16 caches can be compared on the same
 * reference; auto keeps them in fp32.
 *
 * With FP8 weights (params->weight_fp8) the seven linear layers of every
 * layer are quantized at creation into copies the backend owns (a byte an
 * element and a scale per output row, kv_fp8.h) and run through
 * eng_cpu_matmul_fp8, which quantizes each token's input row as the GPU
 * does (W8A8); the embedding, the LM head and the norms are read as
 * loaded.  The mapped originals of those layers are then never read.
 *
 * Refuses nothing the batch check let through; allocation failure while
 * growing the activation buffers is returned as ENG_E_NOMEM.
 */
#include "engine/backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/cpu_ops.h"
#include "engine/cpu_pool.h"
#include "engine/kv_cpu.h"
#include "engine/kv_fp8.h"
#include "engine/sampler.h"

#define LM_TILE 16

/* The linear layers of a layer, in the order of cpu_state.fp8. */
enum { W_Q, W_K, W_V, W_O, W_GATE, W_UP, W_DOWN, N_LINEAR };

struct cpu_state {
	const struct eng_model_config *cfg;
	const struct eng_model_weights *w;
	struct eng_backend_params params;
	struct eng_pool *pool;
	struct eng_kv_cpu kv;
	int kv_dtype;        /* enum eng_kv_dtype: pages hold fp32, bf16- or e4m3-rounded K, V */
	float *kv_scale;     /* (2, n_layers, n_kv_heads) fp8 only: k scales, then v */
	float *kv_inv;       /* (2, n_layers, n_kv_heads) 1 / kv_scale, in fp32 */
	float *inv_freq;     /* (head_dim / 2) */
	float *mm_scratch;   /* (n_threads, ENG_MATMUL_ROWS, max_cols) */
	int max_cols;        /* the widest input of a matmul */
	struct eng_cpu_fp8_weight *fp8;  /* (n_layers, N_LINEAR) weight_fp8 only, else NULL */
	int cap_tokens;      /* rows the buffers below hold */
	float *x;            /* (T, hidden) residual stream */
	float *xb;           /* (T, hidden) normed input / projection output */
	float *q;            /* (T, q_dim) */
	float *k, *v;        /* (T, kv_dim) the chunk's keys and values */
	float *att;          /* (T, q_dim) attention output */
	float *gate, *up;    /* (T, intermediate) */
	float *act_q;        /* (T, max_cols) fp8 only: a matmul's quantized input */
	float *act_s;        /* (T) fp8 only: its per-token scales */
	int *row_seq;        /* (T) sequence of each row */
	int *row_pos;        /* (T) position of each row */
	int cap_ctx;         /* positions the score scratch holds */
	float *scores;       /* (n_threads, cap_ctx) */
	float *head_x;       /* (LM_TILE, hidden) normed rows for the LM head */
	float *head_out;     /* (LM_TILE, vocab) */
};

static int q_dim(const struct eng_model_config *c) { return c->n_heads * c->head_dim; }
static int kv_dim(const struct eng_model_config *c) { return c->n_kv_heads * c->head_dim; }

static int grow(float **p, size_t n)
{
	float *np = realloc(*p, n * sizeof(float));

	if (!np)
		return -1;
	*p = np;
	return 0;
}

static int ensure_tokens(struct cpu_state *st, int T, struct eng_error *err)
{
	const struct eng_model_config *c = st->cfg;
	size_t t = (size_t)T;
	int *rs, *rp;

	if (T <= st->cap_tokens)
		return 0;
	if (grow(&st->x, t * c->hidden) || grow(&st->xb, t * c->hidden) ||
	    grow(&st->q, t * q_dim(c)) || grow(&st->k, t * kv_dim(c)) ||
	    grow(&st->v, t * kv_dim(c)) || grow(&st->att, t * q_dim(c)) ||
	    grow(&st->gate, t * c->intermediate) || grow(&st->up, t * c->intermediate))
		goto nomem;
	if (st->fp8 && (grow(&st->act_q, t * st->max_cols) || grow(&st->act_s, t)))
		goto nomem;
	rs = realloc(st->row_seq, t * sizeof(int));
	if (rs)
		st->row_seq = rs;
	rp = realloc(st->row_pos, t * sizeof(int));
	if (rp)
		st->row_pos = rp;
	if (!rs || !rp)
		goto nomem;
	st->cap_tokens = T;
	return 0;
nomem:
	return eng_error_set(err, ENG_E_NOMEM, "cpu", 0,
			     "cannot allocate activations for %d tokens", T);
}

static int ensure_ctx(struct cpu_state *st, int n_ctx, struct eng_error *err)
{
	if (n_ctx <= st->cap_ctx)
		return 0;
	if (grow(&st->scores, (size_t)n_ctx * eng_pool_n_threads(st->pool)))
		return eng_error_set(err, ENG_E_NOMEM, "cpu", 0,
				     "cannot allocate attention scores for %d positions", n_ctx);
	st->cap_ctx = n_ctx;
	return 0;
}

static void cpu_destroy(void *state)
{
	struct cpu_state *st = state;

	if (!st)
		return;
	eng_pool_free(st->pool);
	eng_kv_cpu_free(&st->kv);
	for (size_t i = 0; st->fp8 && i < (size_t)st->cfg->n_layers * N_LINEAR; i++)
		eng_cpu_fp8_weight_free(&st->fp8[i]);
	free(st->fp8);
	free(st->act_q);
	free(st->act_s);
	free(st->kv_scale);
	free(st->kv_inv);
	free(st->inv_freq);
	free(st->mm_scratch);
	free(st->x);
	free(st->xb);
	free(st->q);
	free(st->k);
	free(st->v);
	free(st->att);
	free(st->gate);
	free(st->up);
	free(st->row_seq);
	free(st->row_pos);
	free(st->scores);
	free(st->head_x);
	free(st->head_out);
	free(st);
}

/* The FP8 cache's scales and their fp32 inverses (kv_fp8.h). */
static int kv_fp8_init(struct cpu_state *st, const struct eng_model_config *c,
		       const struct eng_model_weights *w, struct eng_error *err)
{
	size_t n = (size_t)c->n_layers * c->n_kv_heads;
	int rc;

	st->kv_dtype = st->params.kv_dtype;
	if (st->kv_dtype != ENG_KV_DTYPE_FP8_E4M3)
		return 0;
	st->kv_scale = malloc(2 * n * sizeof(float));
	st->kv_inv = malloc(2 * n * sizeof(float));
	if (!st->kv_scale || !st->kv_inv)
		return eng_error_set(err, ENG_E_NOMEM, "cpu", 0, "out of memory");
	if ((rc = eng_kv_scales(c, w, st->kv_scale, st->kv_scale + n, NULL, err)))
		return rc;
	for (size_t i = 0; i < 2 * n; i++)
		st->kv_inv[i] = 1.0f / st->kv_scale[i];
	return 0;
}

static const struct eng_tensor *linear_weight(const struct eng_layer_weights *L, int i)
{
	const struct eng_tensor *w[N_LINEAR] = { &L->wq, &L->wk, &L->wv, &L->wo,
						 &L->w_gate, &L->w_up, &L->w_down };

	return w[i];
}

/* The FP8 copies of every layer's linear weights (weight_fp8). */
static int weight_fp8_init(struct cpu_state *st, struct eng_error *err)
{
	size_t n = (size_t)st->cfg->n_layers * N_LINEAR;
	int rc;

	if (!st->params.weight_fp8)
		return 0;
	st->fp8 = calloc(n, sizeof(*st->fp8));
	if (!st->fp8)
		return eng_error_set(err, ENG_E_NOMEM, "cpu", 0, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const struct eng_tensor *w = linear_weight(&st->w->layers[i / N_LINEAR],
							   (int)(i % N_LINEAR));

		if ((rc = eng_cpu_fp8_quantize_weight(st->pool, st->mm_scratch, w, &st->fp8[i],
						      err)))
			return rc;
	}
	return 0;
}

static int cpu_create(const struct eng_model *model, struct eng_backend_params *params,
		      void **state, struct eng_error *err)
{
	struct cpu_state *st = calloc(1, sizeof(*st));
	const struct eng_model_config *c = eng_model_config(model);
	int rc, max_cols;

	*state = NULL;
	if (!st)
		return eng_error_set(err, ENG_E_NOMEM, "cpu", 0, "out of memory");
	if (params->n_threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		params->n_threads = n > 0 ? (int)(n > 256 ? 256 : n) : 1;
	}
	st->cfg = c;
	st->w = eng_model_weights(model);
	st->params = *params;
	max_cols = c->hidden > q_dim(c) ? c->hidden : q_dim(c);
	if (c->intermediate > max_cols)
		max_cols = c->intermediate;
	st->max_cols = max_cols;
	rc = eng_kv_cpu_init(&st->kv, c->n_layers, params->n_pages, params->page_size,
			     c->n_kv_heads, c->head_dim, err);
	if (rc) {
		cpu_destroy(st);
		return rc;
	}
	if ((rc = kv_fp8_init(st, c, st->w, err))) {
		cpu_destroy(st);
		return rc;
	}
	st->pool = eng_pool_create(params->n_threads);
	st->inv_freq = malloc((size_t)c->head_dim / 2 * sizeof(float));
	st->mm_scratch = malloc((size_t)params->n_threads * ENG_MATMUL_ROWS * max_cols *
				sizeof(float));
	st->head_x = malloc((size_t)LM_TILE * c->hidden * sizeof(float));
	st->head_out = malloc((size_t)LM_TILE * c->vocab * sizeof(float));
	if (!st->pool || !st->inv_freq || !st->mm_scratch || !st->head_x || !st->head_out) {
		cpu_destroy(st);
		return eng_error_set(err, ENG_E_NOMEM, "cpu", 0,
				     "cannot create %d threads and their scratch", params->n_threads);
	}
	if ((rc = weight_fp8_init(st, err))) {
		cpu_destroy(st);
		return rc;
	}
	eng_config_rope_inv_freq(c, st->inv_freq);
	*state = st;
	return 0;
}

/* ---------------------------------------------------------------- attention */

struct attn_job {
	struct cpu_state *st;
	const struct eng_batch *batch;
	const int *seq_row0;   /* (n_seqs) first row of each sequence */
	int layer;
};

/* Attention of one head of one sequence, for every token of its chunk. */
static void attn_task(void *arg, int task, int thread)
{
	const struct attn_job *J = arg;
	struct cpu_state *st = J->st;
	const struct eng_model_config *c = st->cfg;
	int s = task / c->n_heads, h = task % c->n_heads;
	const struct eng_seq_input *q = &J->batch->seqs[s];
	int hd = c->head_dim, kvh = h / (c->n_heads / c->n_kv_heads);
	int ps = st->kv.page_size, i, t, d;
	float *sc = st->scores + (size_t)thread * st->cap_ctx;
	float scale = 1.0f / sqrtf((float)hd);

	for (i = 0; i < q->n_tokens; i++) {
		int row = J->seq_row0[s] + i, pos = q->start_pos + i;
		const float *qv = st->q + (size_t)row * q_dim(c) + (size_t)h * hd;
		float *out = st->att + (size_t)row * q_dim(c) + (size_t)h * hd;
		float mx = -INFINITY;
		double sum = 0;

		for (t = 0; t <= pos; t++) {
			const float *kv = eng_kv_cpu_k(&st->kv, J->layer, q->block_table[t / ps],
						       t % ps) + (size_t)kvh * hd;

			sc[t] = eng_cpu_dot(qv, kv, hd) * scale;
			if (sc[t] > mx)
				mx = sc[t];
		}
		for (t = 0; t <= pos; t++) {
			sc[t] = expf(sc[t] - mx);
			sum += sc[t];
		}
		memset(out, 0, (size_t)hd * sizeof(float));
		for (t = 0; t <= pos; t++) {
			const float *vv = eng_kv_cpu_v(&st->kv, J->layer, q->block_table[t / ps],
						       t % ps) + (size_t)kvh * hd;
			float wt = (float)(sc[t] / sum);

			for (d = 0; d < hd; d++)
				out[d] += wt * vv[d];
		}
	}
}

/* RMSNorm of each of the n_heads (head_dim) vectors of x, in place, by
 * the one (head_dim) weight w they share. */
static void norm_heads(float *x, int n_heads, int head_dim, const struct eng_tensor *w,
		       float eps)
{
	int h;

	for (h = 0; h < n_heads; h++)
		eng_cpu_rmsnorm(x + (size_t)h * head_dim, x + (size_t)h * head_dim, w, head_dim, eps);
}

/* A token's k and v rows (kv_dim) of layer l, rounded in place as the FP8
 * cache stores them: per KV head h, e4m3(x * (1 / scale)) * scale. */
static void fp8_round_row(const struct cpu_state *st, int l, float *k, float *v)
{
	const struct eng_model_config *c = st->cfg;
	size_t n = (size_t)c->n_layers * c->n_kv_heads, o = (size_t)l * c->n_kv_heads;

	for (int h = 0; h < c->n_kv_heads; h++)
		for (int d = 0; d < c->head_dim; d++) {
			size_t i = (size_t)h * c->head_dim + d;

			k[i] = eng_kv_fp8_round(k[i], st->kv_inv[o + h], st->kv_scale[o + h]);
			v[i] = eng_kv_fp8_round(v[i], st->kv_inv[n + o + h], st->kv_scale[n + o + h]);
		}
}

/* The same for a bf16 cache: round to nearest even. */
static void bf16_round_row(float *k, float *v, int n)
{
	eng_cpu_round_bf16(k, k, n);
	eng_cpu_round_bf16(v, v, n);
}

/* The per-head q/k norm when the model has one, RoPE on the chunk's q and
 * k, then k and v into the pages (through the E4M3 or bf16 rounding of
 * those caches). */
static void rope_and_store(struct cpu_state *st, const struct eng_batch *b, int layer, int T)
{
	const struct eng_model_config *c = st->cfg;
	const struct eng_layer_weights *L = &st->w->layers[layer];
	int r, ps = st->kv.page_size, kd = kv_dim(c);

	for (r = 0; r < T; r++) {
		const struct eng_seq_input *q = &b->seqs[st->row_seq[r]];
		int pos = st->row_pos[r], page = q->block_table[pos / ps];

		if (c->qk_norm) {
			norm_heads(st->q + (size_t)r * q_dim(c), c->n_heads, c->head_dim,
				   &L->q_norm, (float)c->rms_eps);
			norm_heads(st->k + (size_t)r * kd, c->n_kv_heads, c->head_dim,
				   &L->k_norm, (float)c->rms_eps);
		}
		eng_cpu_rope(st->q + (size_t)r * q_dim(c), c->n_heads, c->head_dim, pos,
			     st->inv_freq);
		eng_cpu_rope(st->k + (size_t)r * kd, c->n_kv_heads, c->head_dim, pos,
			     st->inv_freq);
		if (st->kv_dtype == ENG_KV_DTYPE_FP8_E4M3)
			fp8_round_row(st, layer, st->k + (size_t)r * kd, st->v + (size_t)r * kd);
		else if (st->kv_dtype == ENG_KV_DTYPE_BF16)
			bf16_round_row(st->k + (size_t)r * kd, st->v + (size_t)r * kd, kd);
		memcpy(eng_kv_cpu_k(&st->kv, layer, page, pos % ps), st->k + (size_t)r * kd,
		       (size_t)kd * sizeof(float));
		memcpy(eng_kv_cpu_v(&st->kv, layer, page, pos % ps), st->v + (size_t)r * kd,
		       (size_t)kd * sizeof(float));
	}
}

/* ---------------------------------------------------------------- layers */

static void norm_rows(struct cpu_state *st, float *out, const float *x,
		      const struct eng_tensor *w, int T)
{
	int r, n = st->cfg->hidden;

	for (r = 0; r < T; r++)
		eng_cpu_rmsnorm(out + (size_t)r * n, x + (size_t)r * n, w, n,
				(float)st->cfg->rms_eps);
}

static void add_rows(float *x, const float *y, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		x[i] += y[i];
}

/* out (T, rows) = x (T, cols) . W^T (+ bias) for linear layer `which` of
 * layer l, in FP8 when the backend quantized its weights. */
static void linear(struct cpu_state *st, float *out, const float *x, int T, int l, int which,
		   const struct eng_tensor *bias)
{
	if (st->fp8)
		eng_cpu_matmul_fp8(st->pool, st->mm_scratch, st->act_q, st->act_s, out, x, T,
				   &st->fp8[(size_t)l * N_LINEAR + which], bias);
	else
		eng_cpu_matmul(st->pool, st->mm_scratch, out, x, T,
			       linear_weight(&st->w->layers[l], which), bias);
}

static void layer_forward(struct cpu_state *st, const struct eng_batch *b,
			  const int *seq_row0, int l, int T)
{
	const struct eng_layer_weights *L = &st->w->layers[l];
	const struct eng_model_config *c = st->cfg;
	struct attn_job aj = { st, b, seq_row0, l };
	size_t i, n_mlp = (size_t)T * c->intermediate;

	norm_rows(st, st->xb, st->x, &L->attn_norm, T);
	linear(st, st->q, st->xb, T, l, W_Q, &L->bq);
	linear(st, st->k, st->xb, T, l, W_K, &L->bk);
	linear(st, st->v, st->xb, T, l, W_V, &L->bv);
	rope_and_store(st, b, l, T);
	eng_pool_run(st->pool, b->n_seqs * c->n_heads, attn_task, &aj);
	linear(st, st->xb, st->att, T, l, W_O, &L->bo);
	add_rows(st->x, st->xb, (size_t)T * c->hidden);

	norm_rows(st, st->xb, st->x, &L->mlp_norm, T);
	linear(st, st->gate, st->xb, T, l, W_GATE, &L->b_gate);
	linear(st, st->up, st->xb, T, l, W_UP, &L->b_up);
	for (i = 0; i < n_mlp; i++) {
		float g = st->gate[i];

		st->gate[i] = g / (1.0f + expf(-g)) * st->up[i];
	}
	linear(st, st->xb, st->gate, T, l, W_DOWN, &L->b_down);
	add_rows(st->x, st->xb, (size_t)T * c->hidden);
}

/* ---------------------------------------------------------------- LM head */

/* Row r of the tile: logits out; writes what sequence s asked for. */
static void emit_row(const struct eng_seq_input *q, int i, const float *logits, int vocab,
		     int32_t *next)
{
	if (next && i == q->n_tokens - 1)
		*next = eng_argmax(logits, vocab);
	if (q->logits && i == q->n_tokens - 1)
		memcpy(q->logits, logits, (size_t)vocab * sizeof(float));

	if (q->logprobs) {
		float mx = -INFINITY;
		double sum = 0;
		int j;

		for (j = 0; j < vocab; j++)
			if (logits[j] > mx)
				mx = logits[j];
		for (j = 0; j < vocab; j++)
			sum += exp((double)logits[j] - mx);
		q->logprobs[i] = (float)((double)logits[q->targets[i]] - mx - log(sum));
	}
}

/* Rows whose logits, log-probs or greedy token (want, next) are asked for. */
static void lm_head(struct cpu_state *st, const struct eng_batch *b, int T, const uint8_t *want,
		    int32_t *next)
{
	const struct eng_model_config *c = st->cfg;
	int rows[LM_TILE], n = 0, r, k;

	for (r = 0; r <= T; r++) {
		if (r < T) {
			const struct eng_seq_input *q = &b->seqs[st->row_seq[r]];
			int i = st->row_pos[r] - q->start_pos;

			if (!q->logprobs &&
			    !((q->logits || (want && want[st->row_seq[r]])) && i == q->n_tokens - 1))
				continue;
			rows[n++] = r;
		}
		if (n == 0 || (n < LM_TILE && r < T))
			continue;
		for (k = 0; k < n; k++)
			eng_cpu_rmsnorm(st->head_x + (size_t)k * c->hidden,
					st->x + (size_t)rows[k] * c->hidden, &st->w->final_norm,
					c->hidden, (float)c->rms_eps);
		eng_cpu_matmul(st->pool, st->mm_scratch, st->head_out, st->head_x, n,
			       &st->w->lm_head, NULL);
		for (k = 0; k < n; k++) {
			int sq = st->row_seq[rows[k]];
			const struct eng_seq_input *q = &b->seqs[sq];

			emit_row(q, st->row_pos[rows[k]] - q->start_pos,
				 st->head_out + (size_t)k * c->vocab, c->vocab,
				 want && want[sq] ? &next[sq] : NULL);
		}
		n = 0;
	}
}

/* ---------------------------------------------------------------- forward */

static int cpu_forward_next(void *state, const struct eng_batch *b, const uint8_t *want,
			    int32_t *next, struct eng_error *err)
{
	struct cpu_state *st = state;
	const struct eng_model_config *c = st->cfg;
	int *seq_row0, T = 0, max_ctx = 0, s, i, l, rc;

	seq_row0 = malloc((size_t)b->n_seqs * sizeof(int));
	if (!seq_row0)
		return eng_error_set(err, ENG_E_NOMEM, "cpu", 0, "out of memory");
	for (s = 0; s < b->n_seqs; s++) {
		seq_row0[s] = T;
		T += b->seqs[s].n_tokens;
		if (b->seqs[s].start_pos + b->seqs[s].n_tokens > max_ctx)
			max_ctx = b->seqs[s].start_pos + b->seqs[s].n_tokens;
	}
	if ((rc = ensure_tokens(st, T, err)) || (rc = ensure_ctx(st, max_ctx, err))) {
		free(seq_row0);
		return rc;
	}
	for (s = 0; s < b->n_seqs; s++) {
		const struct eng_seq_input *q = &b->seqs[s];

		for (i = 0; i < q->n_tokens; i++) {
			int r = seq_row0[s] + i;

			st->row_seq[r] = s;
			st->row_pos[r] = q->start_pos + i;
			eng_cpu_row_f32(&st->w->embed, q->tokens[i], st->x + (size_t)r * c->hidden);
		}
	}
	for (l = 0; l < c->n_layers; l++)
		layer_forward(st, b, seq_row0, l, T);
	lm_head(st, b, T, want, next);
	free(seq_row0);
	return 0;
}

static int cpu_forward(void *state, const struct eng_batch *b, struct eng_error *err)
{
	return cpu_forward_next(state, b, NULL, NULL, err);
}

/* Weights are read in their stored dtype and converted row by row, the
 * linear layers' FP8 copies a byte an element when weight_fp8; K and V
 * are kept in fp32. */
static int cpu_roofline(void *state, struct eng_roofline *out, struct eng_error *err)
{
	struct cpu_state *st = state;
	enum eng_dtype wt = st->w->layers[0].wq.dtype;

	if (st->fp8)
		eng_roofline_shape_fp8(st->cfg, (int)eng_dtype_size(wt), (int)sizeof(float),
				       &out->shape);
	else
		eng_roofline_shape_of(st->cfg, (int)eng_dtype_size(wt), (int)sizeof(float),
				      &out->shape);
	return eng_cpu_measure_rates(st->pool, wt, st->fp8 != NULL, &out->rates, err);
}

const struct eng_backend_ops eng_backend_cpu_ops = {
	.name = "cpu",
	.create = cpu_create,
	.destroy = cpu_destroy,
	.forward = cpu_forward,
	.forward_next = cpu_forward_next,
	.roofline = cpu_roofline,
};
