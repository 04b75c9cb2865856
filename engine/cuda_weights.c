/*
 * cuda_weights.c: the model's weights onto the GPU (layout in
 * cuda_weights.h), from the mmapped safetensors or made at random, whole
 * or one tensor-parallel rank's shard.
 *
 * One plan assigns every tensor an offset in a single device block, so
 * upload and dummy weights share the layout and one cudaFree releases it.
 * Matrices already in bf16 are copied as they lie in the mapping when the
 * shard takes whole rows; f16 and f32 matrices, and the column slices of
 * a shard (wo, w_down), are gathered and converted on the host, a bounded
 * chunk at a time, so no full converted copy of the model ever sits in
 * host memory.  Norm weights and biases are kept in fp32 (they are small
 * and read once per row).
 *
 * Random weights are blocks of the full random tensors
 * (kn_fill_random_slice_*), each tensor with its own seed in a fixed
 * order, so every rank count gives the same model.
 *
 * Refuses: a tensor the config implies but the model lacks (ENG_E_FORMAT);
 * a shard the config does not divide into (eng_cuda_shard_check).
 */
#include "engine/cuda_weights.h"

#include <stdlib.h>
#include <string.h>

#include "engine/cpu_ops.h"

#define CHUNK_ELEMS ((size_t)1 << 22)

int eng_cuda_error(int rc, struct eng_error *err)
{
	return eng_error_set(err, rc == KN_E_INVALID ? ENG_E_INVALID : ENG_E_DEVICE, "cuda", 0,
			     "%s", kn_last_error());
}

int eng_cuda_shard_check(const struct eng_model_config *c, int size, struct eng_error *err)
{
	if (size < 1 || c->n_heads % size || c->n_kv_heads % size || c->intermediate % size ||
	    c->vocab < size)
		return eng_error_set(err, ENG_E_INVALID, "cuda", 0,
				     "tensor-parallel size %d does not divide the model: %d heads, "
				     "%d kv heads, intermediate %d must all be multiples of it",
				     size, c->n_heads, c->n_kv_heads, c->intermediate);
	return 0;
}

/* FP8 weights are quantized by whole rows, so one shard only; the FP8
 * products take inner dimensions that are multiples of 16. */
static int fp8_check(const struct eng_model_config *c, struct eng_cuda_shard sh, int fp8,
		     struct eng_error *err)
{
	if (!fp8)
		return 0;
	if (sh.size > 1)
		return eng_error_set(err, ENG_E_UNSUPPORTED, "cuda", 0,
				     "FP8 weights (--quantization fp8) do not yet work with "
				     "tensor parallelism (--tp-size %d)", sh.size);
	if (c->hidden % 16 || c->intermediate % 16 || (c->n_heads * c->head_dim) % 16)
		return eng_error_set(err, ENG_E_UNSUPPORTED, "cuda", 0,
				     "FP8 weights need hidden (%d), intermediate (%d) and heads x "
				     "head_dim (%d) to be multiples of 16", c->hidden,
				     c->intermediate, c->n_heads * c->head_dim);
	return 0;
}

/* One rank's sizes and offsets: full q_dim, kv_dim; the rank's q rows
 * [q0, q0 + nq), kv rows [k0, k0 + nk), intermediate rows [i0, i0 + ni),
 * vocab rows [v0, v0 + nv); head_dim hd. */
struct dims {
	size_t H, I, V, qd, kd, q0, nq, k0, nk, i0, ni, v0, nv, hd;
};

static struct dims dims_of(const struct eng_model_config *c, struct eng_cuda_shard sh)
{
	struct dims d;
	size_t n = (size_t)sh.size, r = (size_t)sh.rank;

	d.H = c->hidden;
	d.I = c->intermediate;
	d.V = c->vocab;
	d.hd = (size_t)c->head_dim;
	d.qd = (size_t)c->n_heads * c->head_dim;
	d.kd = (size_t)c->n_kv_heads * c->head_dim;
	d.nq = d.qd / n;
	d.q0 = r * d.nq;
	d.nk = d.kd / n;
	d.k0 = r * d.nk;
	d.ni = d.I / n;
	d.i0 = r * d.ni;
	d.v0 = r * d.V / n;
	d.nv = (r + 1) * d.V / n - d.v0;
	return d;
}

/* Places bytes at the cursor (256-byte aligned); base NULL: sizing pass. */
static void *take(char *base, size_t *off, size_t bytes)
{
	void *p = base ? base + *off : NULL;

	*off += (bytes + 255) / 256 * 256;
	return p;
}

/* The four matrices of layer L: in the block, or with FP8 as E4M3 bytes
 * and row scales in the block and bf16 in the one layer's stage. */
static void plan_matrices(struct eng_cuda_weights *w, struct eng_cuda_layer *L,
			  const struct dims *d, char *base, size_t *off, char *stage)
{
	size_t H = d->H, qkv = d->nq + 2 * d->nk, so = 0;
	char *mb = w->fp8 ? stage : base;
	size_t *mo = w->fp8 ? &so : off;

	L->wqkv = take(mb, mo, qkv * H * 2);
	L->wo = take(mb, mo, H * d->nq * 2);
	L->wgu = take(mb, mo, 2 * d->ni * H * 2);
	L->wd = take(mb, mo, H * d->ni * 2);
	if (!w->fp8)
		return;
	w->stage_bytes = so;
	L->wqkv8 = take(base, off, qkv * H);
	L->sqkv = take(base, off, qkv * 4);
	L->wo8 = take(base, off, H * d->nq);
	L->so = take(base, off, H * 4);
	L->wgu8 = take(base, off, 2 * d->ni * H);
	L->sgu = take(base, off, 2 * d->ni * 4);
	L->wd8 = take(base, off, H * d->ni);
	L->sd = take(base, off, H * 4);
}

static size_t plan(struct eng_cuda_weights *w, const struct eng_model_config *c,
		   const struct dims *d, char *base, char *stage)
{
	size_t off = 0, H = d->H, qkv = d->nq + 2 * d->nk;
	int l;

	w->embed = take(base, &off, d->V * H * 2);
	w->lm_head = c->tie_embeddings ? (w->embed ? w->embed + d->v0 * H : NULL)
				       : take(base, &off, d->nv * H * 2);
	w->vocab0 = (int)d->v0;
	w->n_vocab = (int)d->nv;
	w->final_norm = take(base, &off, H * 4);
	for (l = 0; l < c->n_layers; l++) {
		struct eng_cuda_layer *L = &w->layers[l];

		L->attn_norm = take(base, &off, H * 4);
		plan_matrices(w, L, d, base, &off, stage);
		L->bqkv = c->qkv_bias ? take(base, &off, qkv * 4) : NULL;
		L->q_norm = c->qk_norm ? take(base, &off, d->hd * 4) : NULL;
		L->k_norm = c->qk_norm ? take(base, &off, d->hd * 4) : NULL;
		L->bo = c->o_bias ? take(base, &off, H * 4) : NULL;
		L->mlp_norm = take(base, &off, H * 4);
		L->bgu = c->mlp_bias ? take(base, &off, 2 * d->ni * 4) : NULL;
		L->bd = c->mlp_bias ? take(base, &off, H * 4) : NULL;
	}
	return off;
}

static int alloc_block(struct eng_cuda_weights *w, const struct eng_model_config *c,
		       const struct dims *d, int fp8, struct eng_error *err)
{
	size_t bytes;
	int rc;

	memset(w, 0, sizeof(*w));
	w->fp8 = fp8;
	w->layers = calloc((size_t)c->n_layers, sizeof(*w->layers));
	if (!w->layers)
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	bytes = plan(w, c, d, NULL, NULL);
	if ((rc = kn_malloc(&w->block, bytes)) ||
	    (fp8 && (rc = kn_malloc(&w->stage, w->stage_bytes)))) {
		eng_cuda_error(rc, err);
		eng_cuda_weights_free(w);
		return ENG_E_DEVICE;
	}
	w->bytes = bytes;
	plan(w, c, d, w->block, w->stage);
	return 0;
}

/* With FP8, layer L's matrices from the stage into their E4M3 bytes (in
 * stream order, before the next layer reuses the stage). */
static int quantize_layer(const struct eng_cuda_weights *w, const struct eng_cuda_layer *L,
			  const struct dims *d, kn_stream s)
{
	int H = (int)d->H, qkv = (int)(d->nq + 2 * d->nk), nq = (int)d->nq, ni = (int)d->ni;
	int rc;

	if (!w->fp8)
		return 0;
	if ((rc = kn_quant_rows_e4m3(L->wqkv8, L->sqkv, L->wqkv, qkv, H, s)) ||
	    (rc = kn_quant_rows_e4m3(L->wo8, L->so, L->wo, H, nq, s)) ||
	    (rc = kn_quant_rows_e4m3(L->wgu8, L->sgu, L->wgu, 2 * ni, H, s)))
		return rc;
	return kn_quant_rows_e4m3(L->wd8, L->sd, L->wd, H, ni, s);
}

/* After loading: the stage goes, and with it the bf16 matrices. */
static int drop_stage(struct eng_cuda_weights *w, const struct eng_model_config *c,
		      kn_stream s)
{
	int rc;

	if (!w->fp8)
		return 0;
	if ((rc = kn_stream_sync(s)))
		return rc;
	kn_free(w->stage);
	w->stage = NULL;
	for (int l = 0; l < c->n_layers; l++) {
		struct eng_cuda_layer *L = &w->layers[l];

		L->wqkv = L->wo = L->wgu = L->wd = NULL;
	}
	return 0;
}

void eng_cuda_weights_free(struct eng_cuda_weights *w)
{
	kn_free(w->block);
	kn_free(w->stage);
	free(w->layers);
	memset(w, 0, sizeof(*w));
}

/* ---------------------------------------------------------------- upload */

static float elem_f32(const struct eng_tensor *t, size_t i)
{
	if (t->dtype == ENG_DTYPE_F32)
		return ((const float *)t->data)[i];
	if (t->dtype == ENG_DTYPE_BF16)
		return eng_bf16_to_f32(((const uint16_t *)t->data)[i]);
	return eng_f16_to_f32(((const uint16_t *)t->data)[i]);
}

static int need(const struct eng_tensor *t, const char *what, struct eng_error *err)
{
	if (t->data)
		return 0;
	return eng_error_set(err, ENG_E_FORMAT, "cuda", 0, "model has no %s tensor", what);
}

/* The block of rows [row0, row0 + rows) and columns [col0, col0 + cols)
 * of matrix t as bf16 (rows, cols) at dst; scratch holds CHUNK_ELEMS
 * bf16. */
static int put_bf16(uint16_t *dst, const struct eng_tensor *t, size_t row0, size_t rows,
		    size_t col0, size_t cols, uint16_t *scratch, kn_stream s,
		    struct eng_error *err)
{
	size_t tc = (size_t)t->cols, per = CHUNK_ELEMS / cols, i, j, k, m;
	int rc;

	if (t->dtype == ENG_DTYPE_BF16 && col0 == 0 && cols == tc) {
		rc = kn_memcpy_h2d(dst, (const uint16_t *)t->data + row0 * tc, rows * cols * 2, s);
		return rc ? eng_cuda_error(rc, err) : 0;
	}
	if (per == 0)
		return eng_error_set(err, ENG_E_UNSUPPORTED, "cuda", 0,
				     "rows of %zu elements are too long to convert", cols);
	for (i = 0; i < rows; i += m) {
		m = rows - i < per ? rows - i : per;
		for (k = 0; k < m; k++)
			for (j = 0; j < cols; j++)
				scratch[k * cols + j] =
					eng_f32_to_bf16(elem_f32(t, (row0 + i + k) * tc + col0 + j));
		/* the scratch is reused at once: wait for the copy */
		if ((rc = kn_memcpy_h2d(dst + i * cols, scratch, m * cols * 2, s)) ||
		    (rc = kn_stream_sync(s)))
			return eng_cuda_error(rc, err);
	}
	return 0;
}

/* A whole matrix as bf16 at dst. */
static int put_all(uint16_t *dst, const struct eng_tensor *t, uint16_t *scratch, kn_stream s,
		   struct eng_error *err)
{
	return put_bf16(dst, t, 0, (size_t)t->rows, 0, (size_t)t->cols, scratch, s, err);
}

/* Elements [off, off + n) of a vector as fp32 at dst; n 0: all of it. */
static int put_f32(float *dst, const struct eng_tensor *t, size_t off, size_t n, kn_stream s,
		   struct eng_error *err)
{
	float *h;
	size_t i;
	int rc;

	if (n == 0)
		n = (size_t)t->rows * (size_t)t->cols;
	if (!(h = malloc(n * sizeof(float))))
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	for (i = 0; i < n; i++)
		h[i] = elem_f32(t, off + i);
	rc = kn_memcpy_h2d(dst, h, n * sizeof(float), s);
	if (!rc)
		rc = kn_stream_sync(s);
	free(h);
	return rc ? eng_cuda_error(rc, err) : 0;
}

static int put_biases(const struct eng_cuda_layer *L, const struct eng_layer_weights *m,
		      const struct eng_model_config *c, const struct dims *d, kn_stream s,
		      struct eng_error *err)
{
	int rc;

	if (c->qkv_bias &&
	    ((rc = need(&m->bq, "q bias", err)) || (rc = need(&m->bk, "k bias", err)) ||
	     (rc = need(&m->bv, "v bias", err)) || (rc = put_f32(L->bqkv, &m->bq, d->q0, d->nq, s, err)) ||
	     (rc = put_f32(L->bqkv + d->nq, &m->bk, d->k0, d->nk, s, err)) ||
	     (rc = put_f32(L->bqkv + d->nq + d->nk, &m->bv, d->k0, d->nk, s, err))))
		return rc;
	if (c->o_bias &&
	    ((rc = need(&m->bo, "o bias", err)) || (rc = put_f32(L->bo, &m->bo, 0, 0, s, err))))
		return rc;
	if (c->mlp_bias &&
	    ((rc = need(&m->b_gate, "gate bias", err)) || (rc = need(&m->b_up, "up bias", err)) ||
	     (rc = need(&m->b_down, "down bias", err)) ||
	     (rc = put_f32(L->bgu, &m->b_gate, d->i0, d->ni, s, err)) ||
	     (rc = put_f32(L->bgu + d->ni, &m->b_up, d->i0, d->ni, s, err)) ||
	     (rc = put_f32(L->bd, &m->b_down, 0, 0, s, err))))
		return rc;
	return 0;
}

/* Qwen3's q/k norms: whole on every rank. */
static int put_qk_norms(const struct eng_cuda_layer *L, const struct eng_layer_weights *m,
			const struct eng_model_config *c, kn_stream s, struct eng_error *err)
{
	int rc;

	if (!c->qk_norm)
		return 0;
	if ((rc = need(&m->q_norm, "q_norm", err)) || (rc = need(&m->k_norm, "k_norm", err)) ||
	    (rc = put_f32(L->q_norm, &m->q_norm, 0, 0, s, err)))
		return rc;
	return put_f32(L->k_norm, &m->k_norm, 0, 0, s, err);
}

static int put_layer(const struct eng_cuda_layer *L, const struct eng_layer_weights *m,
		     const struct eng_model_config *c, const struct dims *d, uint16_t *sc,
		     kn_stream s, struct eng_error *err)
{
	size_t H = d->H;
	int rc;

	if ((rc = put_f32(L->attn_norm, &m->attn_norm, 0, 0, s, err)) ||
	    (rc = put_bf16(L->wqkv, &m->wq, d->q0, d->nq, 0, H, sc, s, err)) ||
	    (rc = put_bf16(L->wqkv + d->nq * H, &m->wk, d->k0, d->nk, 0, H, sc, s, err)) ||
	    (rc = put_bf16(L->wqkv + (d->nq + d->nk) * H, &m->wv, d->k0, d->nk, 0, H, sc, s, err)) ||
	    (rc = put_bf16(L->wo, &m->wo, 0, H, d->q0, d->nq, sc, s, err)) ||
	    (rc = put_f32(L->mlp_norm, &m->mlp_norm, 0, 0, s, err)) ||
	    (rc = put_bf16(L->wgu, &m->w_gate, d->i0, d->ni, 0, H, sc, s, err)) ||
	    (rc = put_bf16(L->wgu + d->ni * H, &m->w_up, d->i0, d->ni, 0, H, sc, s, err)) ||
	    (rc = put_bf16(L->wd, &m->w_down, 0, H, d->i0, d->ni, sc, s, err)))
		return rc;
	if ((rc = put_biases(L, m, c, d, s, err)))
		return rc;
	return put_qk_norms(L, m, c, s, err);
}

int eng_cuda_weights_upload(struct eng_cuda_weights *w, const struct eng_model_config *c,
			    struct eng_cuda_shard sh, const struct eng_model_weights *mw, int fp8,
			    kn_stream s, struct eng_error *err)
{
	struct dims d = dims_of(c, sh);
	uint16_t *sc;
	int rc, l;

	if ((rc = eng_cuda_shard_check(c, sh.size, err)) || (rc = fp8_check(c, sh, fp8, err)) ||
	    (rc = alloc_block(w, c, &d, fp8, err)))
		return rc;
	sc = malloc(CHUNK_ELEMS * sizeof(uint16_t));
	if (!sc) {
		eng_cuda_weights_free(w);
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	}
	rc = put_all(w->embed, &mw->embed, sc, s, err);
	if (!rc && !c->tie_embeddings)
		rc = put_bf16(w->lm_head, &mw->lm_head, d.v0, d.nv, 0, d.H, sc, s, err);
	if (!rc)
		rc = put_f32(w->final_norm, &mw->final_norm, 0, 0, s, err);
	for (l = 0; !rc && l < c->n_layers; l++)
		if (!(rc = put_layer(&w->layers[l], &mw->layers[l], c, &d, sc, s, err)) &&
		    (rc = quantize_layer(w, &w->layers[l], &d, s)))
			rc = eng_cuda_error(rc, err);
	if (!rc && ((rc = kn_stream_sync(s)) || (rc = drop_stage(w, c, s))))
		rc = eng_cuda_error(rc, err);
	free(sc);
	if (rc)
		eng_cuda_weights_free(w);
	return rc;
}

/* ---------------------------------------------------------------- dummy */

struct filler {
	uint64_t seed;
	uint64_t n;   /* tensors begun so far: each gets its own stream */
	kn_stream s;
};

/* The seed of the next full tensor. */
static uint64_t next_seed(struct filler *f)
{
	return f->seed + 0x632be59bd9b4e019ull * ++f->n;
}

/* The block (row0, col0) + (rows, cols) of a (., full_cols) tensor. */
static int block16(struct filler *f, uint64_t seed, uint16_t *p, size_t rows, size_t cols,
		   size_t full_cols, size_t row0, size_t col0, float std)
{
	return kn_fill_random_slice_bf16(p, rows, cols, full_cols, row0, col0, seed, 0.0f, std,
					 f->s);
}

static int block32(struct filler *f, uint64_t seed, float *p, size_t n, size_t full_n,
		   size_t off, float mean, float std)
{
	return kn_fill_random_slice_f32(p, 1, n, full_n, 0, off, seed, mean, std, f->s);
}

/* A whole vector, or nothing (and no seed taken) when p is NULL. */
static int vec32(struct filler *f, float *p, size_t n, float mean, float std)
{
	return p ? block32(f, next_seed(f), p, n, n, 0, mean, std) : 0;
}

static int dummy_attn(struct filler *f, const struct eng_cuda_layer *L, const struct dims *d)
{
	size_t H = d->H, qkv = d->qd + 2 * d->kd;
	uint64_t sd = next_seed(f);
	int rc;

	if ((rc = block16(f, sd, L->wqkv, d->nq, H, H, d->q0, 0, 0.02f)) ||
	    (rc = block16(f, sd, L->wqkv + d->nq * H, d->nk, H, H, d->qd + d->k0, 0, 0.02f)) ||
	    (rc = block16(f, sd, L->wqkv + (d->nq + d->nk) * H, d->nk, H, H,
			  d->qd + d->kd + d->k0, 0, 0.02f)))
		return rc;
	if (L->bqkv) {
		sd = next_seed(f);
		if ((rc = block32(f, sd, L->bqkv, d->nq, qkv, d->q0, 0.0f, 0.02f)) ||
		    (rc = block32(f, sd, L->bqkv + d->nq, d->nk, qkv, d->qd + d->k0, 0.0f, 0.02f)) ||
		    (rc = block32(f, sd, L->bqkv + d->nq + d->nk, d->nk, qkv, d->qd + d->kd + d->k0,
				  0.0f, 0.02f)))
			return rc;
	}
	if ((rc = block16(f, next_seed(f), L->wo, H, d->nq, d->qd, 0, d->q0, 0.02f)) ||
	    (rc = vec32(f, L->bo, H, 0.0f, 0.02f)))
		return rc;
	/* whole on every rank, like the other norms */
	if ((rc = vec32(f, L->q_norm, d->hd, 1.0f, 0.05f)))
		return rc;
	return vec32(f, L->k_norm, d->hd, 1.0f, 0.05f);
}

static int dummy_mlp(struct filler *f, const struct eng_cuda_layer *L, const struct dims *d)
{
	size_t H = d->H;
	uint64_t sd = next_seed(f);
	int rc;

	if ((rc = block16(f, sd, L->wgu, d->ni, H, H, d->i0, 0, 0.02f)) ||
	    (rc = block16(f, sd, L->wgu + d->ni * H, d->ni, H, H, d->I + d->i0, 0, 0.02f)))
		return rc;
	if (L->bgu) {
		sd = next_seed(f);
		if ((rc = block32(f, sd, L->bgu, d->ni, 2 * d->I, d->i0, 0.0f, 0.02f)) ||
		    (rc = block32(f, sd, L->bgu + d->ni, d->ni, 2 * d->I, d->I + d->i0, 0.0f, 0.02f)))
			return rc;
	}
	if ((rc = block16(f, next_seed(f), L->wd, H, d->ni, d->I, 0, d->i0, 0.02f)))
		return rc;
	return vec32(f, L->bd, H, 0.0f, 0.02f);
}

int eng_cuda_weights_dummy(struct eng_cuda_weights *w, const struct eng_model_config *c,
			   struct eng_cuda_shard sh, uint64_t seed, int fp8, kn_stream s,
			   struct eng_error *err)
{
	struct dims d = dims_of(c, sh);
	struct filler f = { seed, 0, s };
	int rc, l;

	if ((rc = eng_cuda_shard_check(c, sh.size, err)) || (rc = fp8_check(c, sh, fp8, err)) ||
	    (rc = alloc_block(w, c, &d, fp8, err)))
		return rc;
	rc = block16(&f, next_seed(&f), w->embed, d.V, d.H, d.H, 0, 0, 0.02f);
	if (!rc && !c->tie_embeddings)
		rc = block16(&f, next_seed(&f), w->lm_head, d.nv, d.H, d.H, d.v0, 0, 0.02f);
	if (!rc)
		rc = vec32(&f, w->final_norm, d.H, 1.0f, 0.05f);
	for (l = 0; !rc && l < c->n_layers; l++) {
		const struct eng_cuda_layer *L = &w->layers[l];

		if ((rc = vec32(&f, L->attn_norm, d.H, 1.0f, 0.05f)) ||
		    (rc = dummy_attn(&f, L, &d)) ||
		    (rc = vec32(&f, L->mlp_norm, d.H, 1.0f, 0.05f)) || (rc = dummy_mlp(&f, L, &d)) ||
		    (rc = quantize_layer(w, L, &d, s)))
			break;
	}
	if (!rc && !(rc = kn_stream_sync(s)))
		rc = drop_stage(w, c, s);
	if (rc) {
		eng_cuda_error(rc, err);
		eng_cuda_weights_free(w);
		return ENG_E_DEVICE;
	}
	return 0;
}
