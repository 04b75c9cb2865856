/*
 * cuda_weights.c: the model's weights onto the GPU (layout in
 * cuda_weights.h), from the mmapped safetensors or made at random.
 *
 * One plan assigns every tensor an offset in a single device block, so
 * upload and dummy weights share the layout and one cudaFree releases it.
 * Matrices already in bf16 are copied as they lie in the mapping; f16 and
 * f32 are converted on the host, a bounded chunk at a time, so no full
 * converted copy of the model ever sits in host memory.  Norm weights and
 * biases are kept in fp32 (they are small and read once per row).
 *
 * Refuses: a tensor the config implies but the model lacks (ENG_E_FORMAT).
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

/* Places bytes at the cursor (256-byte aligned); base NULL: sizing pass. */
static void *take(char *base, size_t *off, size_t bytes)
{
	void *p = base ? base + *off : NULL;

	*off += (bytes + 255) / 256 * 256;
	return p;
}

static size_t plan(struct eng_cuda_weights *w, const struct eng_model_config *c, char *base)
{
	size_t off = 0, H = c->hidden, I = c->intermediate, V = c->vocab;
	size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
	size_t qkv = qd + 2 * kd;
	int l;

	w->embed = take(base, &off, V * H * 2);
	w->lm_head = c->tie_embeddings ? w->embed : take(base, &off, V * H * 2);
	w->final_norm = take(base, &off, H * 4);
	for (l = 0; l < c->n_layers; l++) {
		struct eng_cuda_layer *L = &w->layers[l];

		L->attn_norm = take(base, &off, H * 4);
		L->wqkv = take(base, &off, qkv * H * 2);
		L->bqkv = c->qkv_bias ? take(base, &off, qkv * 4) : NULL;
		L->wo = take(base, &off, H * qd * 2);
		L->bo = c->o_bias ? take(base, &off, H * 4) : NULL;
		L->mlp_norm = take(base, &off, H * 4);
		L->wgu = take(base, &off, 2 * I * H * 2);
		L->bgu = c->mlp_bias ? take(base, &off, 2 * I * 4) : NULL;
		L->wd = take(base, &off, H * I * 2);
		L->bd = c->mlp_bias ? take(base, &off, H * 4) : NULL;
	}
	return off;
}

static int alloc_block(struct eng_cuda_weights *w, const struct eng_model_config *c,
		       struct eng_error *err)
{
	size_t bytes;
	int rc;

	memset(w, 0, sizeof(*w));
	w->layers = calloc((size_t)c->n_layers, sizeof(*w->layers));
	if (!w->layers)
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	bytes = plan(w, c, NULL);
	if ((rc = kn_malloc(&w->block, bytes))) {
		eng_cuda_error(rc, err);
		eng_cuda_weights_free(w);
		return ENG_E_DEVICE;
	}
	w->bytes = bytes;
	plan(w, c, w->block);
	return 0;
}

void eng_cuda_weights_free(struct eng_cuda_weights *w)
{
	kn_free(w->block);
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

/* A whole tensor as bf16 at dst; scratch holds CHUNK_ELEMS bf16. */
static int put_bf16(uint16_t *dst, const struct eng_tensor *t, uint16_t *scratch, kn_stream s,
		    struct eng_error *err)
{
	size_t n = (size_t)t->rows * (size_t)t->cols, i, j, m;
	int rc;

	if (t->dtype == ENG_DTYPE_BF16) {
		rc = kn_memcpy_h2d(dst, t->data, n * 2, s);
		return rc ? eng_cuda_error(rc, err) : 0;
	}
	for (i = 0; i < n; i += m) {
		m = n - i < CHUNK_ELEMS ? n - i : CHUNK_ELEMS;
		for (j = 0; j < m; j++)
			scratch[j] = eng_f32_to_bf16(elem_f32(t, i + j));
		/* the scratch is reused at once: wait for the copy */
		if ((rc = kn_memcpy_h2d(dst + i, scratch, m * 2, s)) || (rc = kn_stream_sync(s)))
			return eng_cuda_error(rc, err);
	}
	return 0;
}

/* A vector as fp32 at dst. */
static int put_f32(float *dst, const struct eng_tensor *t, kn_stream s, struct eng_error *err)
{
	size_t n = (size_t)t->rows * (size_t)t->cols, i;
	float *h = malloc(n * sizeof(float));
	int rc;

	if (!h)
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	for (i = 0; i < n; i++)
		h[i] = elem_f32(t, i);
	rc = kn_memcpy_h2d(dst, h, n * sizeof(float), s);
	if (!rc)
		rc = kn_stream_sync(s);
	free(h);
	return rc ? eng_cuda_error(rc, err) : 0;
}

static size_t numel(const struct eng_tensor *t)
{
	return (size_t)t->rows * (size_t)t->cols;
}

static int put_layer(const struct eng_cuda_layer *L, const struct eng_layer_weights *m,
		     const struct eng_model_config *c, uint16_t *sc, kn_stream s,
		     struct eng_error *err)
{
	size_t qn = numel(&m->wq), kn = numel(&m->wk), in = numel(&m->w_gate);
	int rc;

	if ((rc = put_f32(L->attn_norm, &m->attn_norm, s, err)) ||
	    (rc = put_bf16(L->wqkv, &m->wq, sc, s, err)) ||
	    (rc = put_bf16(L->wqkv + qn, &m->wk, sc, s, err)) ||
	    (rc = put_bf16(L->wqkv + qn + kn, &m->wv, sc, s, err)) ||
	    (rc = put_bf16(L->wo, &m->wo, sc, s, err)) ||
	    (rc = put_f32(L->mlp_norm, &m->mlp_norm, s, err)) ||
	    (rc = put_bf16(L->wgu, &m->w_gate, sc, s, err)) ||
	    (rc = put_bf16(L->wgu + in, &m->w_up, sc, s, err)) ||
	    (rc = put_bf16(L->wd, &m->w_down, sc, s, err)))
		return rc;
	if (c->qkv_bias &&
	    ((rc = need(&m->bq, "q bias", err)) || (rc = need(&m->bk, "k bias", err)) ||
	     (rc = need(&m->bv, "v bias", err)) || (rc = put_f32(L->bqkv, &m->bq, s, err)) ||
	     (rc = put_f32(L->bqkv + numel(&m->bq), &m->bk, s, err)) ||
	     (rc = put_f32(L->bqkv + numel(&m->bq) + numel(&m->bk), &m->bv, s, err))))
		return rc;
	if (c->o_bias && ((rc = need(&m->bo, "o bias", err)) || (rc = put_f32(L->bo, &m->bo, s, err))))
		return rc;
	if (c->mlp_bias &&
	    ((rc = need(&m->b_gate, "gate bias", err)) || (rc = need(&m->b_up, "up bias", err)) ||
	     (rc = need(&m->b_down, "down bias", err)) ||
	     (rc = put_f32(L->bgu, &m->b_gate, s, err)) ||
	     (rc = put_f32(L->bgu + numel(&m->b_gate), &m->b_up, s, err)) ||
	     (rc = put_f32(L->bd, &m->b_down, s, err))))
		return rc;
	return 0;
}

int eng_cuda_weights_upload(struct eng_cuda_weights *w, const struct eng_model_config *c,
			    const struct eng_model_weights *mw, kn_stream s,
			    struct eng_error *err)
{
	uint16_t *sc;
	int rc, l;

	if ((rc = alloc_block(w, c, err)))
		return rc;
	sc = malloc(CHUNK_ELEMS * sizeof(uint16_t));
	if (!sc) {
		eng_cuda_weights_free(w);
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	}
	rc = put_bf16(w->embed, &mw->embed, sc, s, err);
	if (!rc && !c->tie_embeddings)
		rc = put_bf16(w->lm_head, &mw->lm_head, sc, s, err);
	if (!rc)
		rc = put_f32(w->final_norm, &mw->final_norm, s, err);
	for (l = 0; !rc && l < c->n_layers; l++)
		rc = put_layer(&w->layers[l], &mw->layers[l], c, sc, s, err);
	if (!rc && (rc = kn_stream_sync(s)))
		rc = eng_cuda_error(rc, err);
	free(sc);
	if (rc)
		eng_cuda_weights_free(w);
	return rc;
}

/* ---------------------------------------------------------------- dummy */

struct filler {
	uint64_t seed;
	uint64_t n;   /* tensors filled so far: each gets its own stream */
	kn_stream s;
};

static int fill16(struct filler *f, uint16_t *p, size_t n, float mean, float std)
{
	return kn_fill_random_bf16(p, n, f->seed + 0x632be59bd9b4e019ull * ++f->n, mean, std, f->s);
}

static int fill32(struct filler *f, float *p, size_t n, float mean, float std)
{
	return p ? kn_fill_random_f32(p, n, f->seed + 0x632be59bd9b4e019ull * ++f->n, mean, std,
				      f->s) : 0;
}

int eng_cuda_weights_dummy(struct eng_cuda_weights *w, const struct eng_model_config *c,
			   uint64_t seed, kn_stream s, struct eng_error *err)
{
	size_t H = c->hidden, I = c->intermediate, V = c->vocab;
	size_t qkv = (size_t)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
	size_t qd = (size_t)c->n_heads * c->head_dim;
	struct filler f = { seed, 0, s };
	int rc, l;

	if ((rc = alloc_block(w, c, err)))
		return rc;
	rc = fill16(&f, w->embed, V * H, 0.0f, 0.02f);
	if (!rc && !c->tie_embeddings)
		rc = fill16(&f, w->lm_head, V * H, 0.0f, 0.02f);
	if (!rc)
		rc = fill32(&f, w->final_norm, H, 1.0f, 0.05f);
	for (l = 0; !rc && l < c->n_layers; l++) {
		const struct eng_cuda_layer *L = &w->layers[l];

		if ((rc = fill32(&f, L->attn_norm, H, 1.0f, 0.05f)) ||
		    (rc = fill16(&f, L->wqkv, qkv * H, 0.0f, 0.02f)) ||
		    (rc = fill32(&f, L->bqkv, qkv, 0.0f, 0.02f)) ||
		    (rc = fill16(&f, L->wo, H * qd, 0.0f, 0.02f)) ||
		    (rc = fill32(&f, L->bo, H, 0.0f, 0.02f)) ||
		    (rc = fill32(&f, L->mlp_norm, H, 1.0f, 0.05f)) ||
		    (rc = fill16(&f, L->wgu, 2 * I * H, 0.0f, 0.02f)) ||
		    (rc = fill32(&f, L->bgu, 2 * I, 0.0f, 0.02f)) ||
		    (rc = fill16(&f, L->wd, H * I, 0.0f, 0.02f)) ||
		    (rc = fill32(&f, L->bd, H, 0.0f, 0.02f)))
			break;
	}
	if (!rc)
		rc = kn_stream_sync(s);
	if (rc) {
		eng_cuda_error(rc, err);
		eng_cuda_weights_free(w);
		return ENG_E_DEVICE;
	}
	return 0;
}
