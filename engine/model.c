/*
 * model.c: an HF model directory -> config + weight views.
 *
 * Weights are never copied: each struct eng_tensor points into a
 * read-only mapping owned by one of the model's safetensors files, and the
 * forward pass converts bf16/f16 rows to fp32 as it reads them.  Loading a
 * 15 GB checkpoint therefore costs address space and a header parse.
 *
 * The architecture decides which tensors must exist (HF names); each is
 * checked for shape against the config before any pointer is handed out.
 * Tensors the file has and the architecture does not use (a tied model's
 * lm_head.weight, old rotary_emb.inv_freq buffers) are ignored.  The
 * scales of an FP8 KV cache (self_attn.k_scale / v_scale, as vLLM writes
 * them) are optional: bound when present, 1.0 otherwise (kv_fp8.h).
 *
 * Refuses: shard names in the index that leave the directory ("/" or a
 * leading "."), a tensor the index places in a shard that lacks it.
 */
#include "engine/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct eng_model {
	char *dir;
	struct eng_model_config cfg;
	struct eng_model_weights w;
	struct eng_st_file **files;   /* (n_files) */
	char **file_names;            /* (n_files) shard names as in the index */
	int n_files;
	json_t *weight_map;           /* index's {tensor: shard}, or NULL */
	uint64_t weight_bytes;
};

static int add_file(struct eng_model *m, const char *name, struct eng_error *err)
{
	char path[4096];
	struct eng_st_file **nf;
	char **nn;
	int rc;

	nf = realloc(m->files, (size_t)(m->n_files + 1) * sizeof(*nf));
	if (nf)
		m->files = nf;
	nn = realloc(m->file_names, (size_t)(m->n_files + 1) * sizeof(*nn));
	if (nn)
		m->file_names = nn;
	if (!nf || !nn || !(m->file_names[m->n_files] = strdup(name)))
		return eng_error_set(err, ENG_E_NOMEM, m->dir, 0, "out of memory");
	snprintf(path, sizeof(path), "%s/%s", m->dir, name);
	rc = eng_st_open(path, &m->files[m->n_files], err);
	if (rc) {
		free(m->file_names[m->n_files]);
		return rc;
	}
	m->n_files++;
	return 0;
}

static int find_file(const struct eng_model *m, const char *name)
{
	int i;

	for (i = 0; i < m->n_files; i++)
		if (!strcmp(m->file_names[i], name))
			return i;
	return -1;
}

static int open_index(struct eng_model *m, const char *path, struct eng_error *err)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr), *v;
	const char *key;
	int rc = 0;

	if (!root)
		return eng_error_set(err, ENG_E_FORMAT, path, jerr.line > 0 ? jerr.line : 0,
				     "%s", jerr.text);
	m->weight_map = json_incref(json_object_get(root, "weight_map"));
	json_decref(root);
	if (!json_is_object(m->weight_map))
		return eng_error_set(err, ENG_E_FORMAT, path, 0,
				     "key \"weight_map\": missing or not an object");
	json_object_foreach(m->weight_map, key, v) {
		const char *f = json_string_value(v);

		if (!f || !*f || strchr(f, '/') || f[0] == '.')
			return eng_error_set(err, ENG_E_FORMAT, path, 0,
					     "key \"weight_map.%s\": not a file name in the directory",
					     key);
		if (find_file(m, f) < 0 && (rc = add_file(m, f, err)))
			return rc;
	}
	return 0;
}

static int open_files(struct eng_model *m, struct eng_error *err)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/model.safetensors.index.json", m->dir);
	if (!access(path, F_OK))
		return open_index(m, path, err);
	return add_file(m, "model.safetensors", err);
}

/* The tensor called name, or NULL with *file set to the file it should be
 * in (for the error message). */
static const struct eng_st_tensor *lookup(const struct eng_model *m, const char *name,
					  const char **file)
{
	int i = 0;

	if (m->weight_map) {
		const char *f = json_string_value(json_object_get(m->weight_map, name));

		*file = f ? f : "model.safetensors.index.json";
		if (!f)
			return NULL;
		i = find_file(m, f);
	} else {
		*file = "model.safetensors";
	}
	return eng_st_find(m->files[i], name);
}

/* "[]", "[a]" or "[a, b]" (more dimensions than two shown as two). */
static const char *shape_str(char *buf, size_t n, int ndim, int64_t a, int64_t b)
{
	if (ndim == 0)
		snprintf(buf, n, "[]");
	else if (ndim > 1)
		snprintf(buf, n, "[%lld, %lld]", (long long)a, (long long)b);
	else
		snprintf(buf, n, "[%lld]", (long long)a);
	return buf;
}

/* Binds *t to name, which must have shape (rows, cols), or (cols) when
 * rows == 0.  A missing tensor is an error only when required. */
static int bind(struct eng_model *m, struct eng_tensor *t, const char *name,
		int64_t rows, int64_t cols, int required, struct eng_error *err)
{
	const struct eng_st_tensor *st;
	const char *file;
	char path[4096], has[48], want[48];
	int ndim = rows ? 2 : 1;

	memset(t, 0, sizeof(*t));
	st = lookup(m, name, &file);
	snprintf(path, sizeof(path), "%s/%s", m->dir, file);
	if (!st)
		return required ? eng_error_set(err, ENG_E_FORMAT, path, 0,
						"tensor \"%s\": missing", name) : 0;
	if (st->ndim != ndim || (ndim == 2 && (st->shape[0] != rows || st->shape[1] != cols)) ||
	    (ndim == 1 && st->shape[0] != cols))
		return eng_error_set(err, ENG_E_FORMAT, path, 0,
				     "tensor \"%s\": shape %s but the config implies %s", name,
				     shape_str(has, sizeof(has), st->ndim, st->shape[0],
					       st->ndim > 1 ? st->shape[1] : 0),
				     shape_str(want, sizeof(want), ndim, rows ? rows : cols, cols));
	t->dtype = st->dtype;
	t->rows = rows ? rows : 1;
	t->cols = cols;
	t->data = st->data;
	m->weight_bytes += st->n_bytes;
	return 0;
}

/* One layer's tensors: which the architecture wants, under which HF name
 * and shape (rows 0: a vector), in the order they are checked. */
static int bind_layer(struct eng_model *m, int l, struct eng_error *err)
{
	const struct eng_model_config *c = &m->cfg;
	struct eng_layer_weights *L = &m->w.layers[l];
	int64_t h = c->hidden, q = (int64_t)c->n_heads * c->head_dim, hd = c->head_dim;
	int64_t kv = (int64_t)c->n_kv_heads * c->head_dim, in = c->intermediate;
	const struct {
		struct eng_tensor *t;
		const char *sfx;
		int64_t rows, cols;
		bool want;
	} tab[] = {
		{ &L->attn_norm, "input_layernorm.weight", 0, h, true },
		{ &L->wq, "self_attn.q_proj.weight", q, h, true },
		{ &L->wk, "self_attn.k_proj.weight", kv, h, true },
		{ &L->wv, "self_attn.v_proj.weight", kv, h, true },
		{ &L->bq, "self_attn.q_proj.bias", 0, q, c->qkv_bias },
		{ &L->bk, "self_attn.k_proj.bias", 0, kv, c->qkv_bias },
		{ &L->bv, "self_attn.v_proj.bias", 0, kv, c->qkv_bias },
		{ &L->q_norm, "self_attn.q_norm.weight", 0, hd, c->qk_norm },
		{ &L->k_norm, "self_attn.k_norm.weight", 0, hd, c->qk_norm },
		{ &L->wo, "self_attn.o_proj.weight", h, q, true },
		{ &L->bo, "self_attn.o_proj.bias", 0, h, c->o_bias },
		{ &L->mlp_norm, "post_attention_layernorm.weight", 0, h, true },
		{ &L->w_gate, "mlp.gate_proj.weight", in, h, true },
		{ &L->w_up, "mlp.up_proj.weight", in, h, true },
		{ &L->b_gate, "mlp.gate_proj.bias", 0, in, c->mlp_bias },
		{ &L->b_up, "mlp.up_proj.bias", 0, in, c->mlp_bias },
		{ &L->w_down, "mlp.down_proj.weight", h, in, true },
		{ &L->b_down, "mlp.down_proj.bias", 0, h, c->mlp_bias },
	};
	char name[96];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		if (!tab[i].want)
			continue;
		snprintf(name, sizeof(name), "model.layers.%d.%s", l, tab[i].sfx);
		if ((rc = bind(m, tab[i].t, name, tab[i].rows, tab[i].cols, 1, err)))
			return rc;
	}
	return 0;
}

/* Binds *t to the first of names present, a tensor of 1 or n values
 * whatever its shape (a scalar, [n], [n, 1]), as (1, 1) or (1, n);
 * nothing when none is (the scale is then 1). */
static int bind_scale(struct eng_model *m, struct eng_tensor *t, const char *const *names,
		      int l, int64_t n, struct eng_error *err)
{
	const struct eng_st_tensor *st = NULL;
	const char *file;
	char name[96], path[4096];

	memset(t, 0, sizeof(*t));
	for (; *names && !st; names++) {
		snprintf(name, sizeof(name), "model.layers.%d.%s", l, *names);
		st = lookup(m, name, &file);
	}
	if (!st)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", m->dir, file);
	if (st->n_elems != 1 && st->n_elems != (uint64_t)n)
		return eng_error_set(err, ENG_E_FORMAT, path, 0,
				     "tensor \"%s\": a kv cache scale must have 1 or %lld "
				     "(num_key_value_heads) values", name, (long long)n);
	t->dtype = st->dtype;
	t->rows = 1;
	t->cols = (int64_t)st->n_elems;
	t->data = st->data;
	return 0;
}

/* The FP8 KV cache scales of layer l, as vLLM reads them: k_scale and
 * v_scale of self_attn, else the older output_scale of k_proj and v_proj,
 * else one kv_scale for both. */
static int bind_kv_scales(struct eng_model *m, int l, struct eng_error *err)
{
	static const char *const k_names[] = { "self_attn.k_scale", "self_attn.k_proj.output_scale",
					       "self_attn.kv_scale", NULL };
	static const char *const v_names[] = { "self_attn.v_scale", "self_attn.v_proj.output_scale",
					       "self_attn.kv_scale", NULL };
	struct eng_layer_weights *L = &m->w.layers[l];
	int rc = bind_scale(m, &L->k_scale, k_names, l, m->cfg.n_kv_heads, err);

	return rc ? rc : bind_scale(m, &L->v_scale, v_names, l, m->cfg.n_kv_heads, err);
}

static int bind_all(struct eng_model *m, struct eng_error *err)
{
	const struct eng_model_config *c = &m->cfg;
	int l, rc;

	m->w.layers = calloc((size_t)c->n_layers, sizeof(*m->w.layers));
	if (!m->w.layers)
		return eng_error_set(err, ENG_E_NOMEM, m->dir, 0, "out of memory");
	if ((rc = bind(m, &m->w.embed, "model.embed_tokens.weight", c->vocab,
		       c->hidden, 1, err)))
		return rc;
	for (l = 0; l < c->n_layers; l++)
		if ((rc = bind_layer(m, l, err)) || (rc = bind_kv_scales(m, l, err)))
			return rc;
	if ((rc = bind(m, &m->w.final_norm, "model.norm.weight", 0, c->hidden, 1, err)))
		return rc;
	if (c->tie_embeddings) {
		m->w.lm_head = m->w.embed;
		return 0;
	}
	return bind(m, &m->w.lm_head, "lm_head.weight", c->vocab, c->hidden, 1, err);
}

/* A model of dir with its config read, no weights yet. */
static int model_new(const char *dir, struct eng_model **out, struct eng_error *err)
{
	struct eng_model *m = calloc(1, sizeof(*m));
	int rc;

	*out = NULL;
	eng_error_clear(err);
	if (!m || !(m->dir = strdup(dir))) {
		free(m);
		return eng_error_set(err, ENG_E_NOMEM, dir, 0, "out of memory");
	}
	if ((rc = eng_config_load(dir, &m->cfg, err)) != 0) {
		eng_model_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

int eng_model_load(const char *dir, struct eng_model **out, struct eng_error *err)
{
	struct eng_model *m;
	int rc = model_new(dir, &m, err);

	if (rc != 0)
		return rc;
	*out = NULL; /* until the weights are bound */
	if ((rc = open_files(m, err)) || (rc = bind_all(m, err))) {
		eng_model_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

int eng_model_load_config(const char *dir, struct eng_model **out, struct eng_error *err)
{
	struct eng_model *m;
	int rc = model_new(dir, &m, err);

	if (rc != 0)
		return rc;
	*out = NULL; /* until the weights are bound */
	m->w.layers = calloc((size_t)m->cfg.n_layers, sizeof(*m->w.layers));
	if (!m->w.layers) {
		eng_model_free(m);
		return eng_error_set(err, ENG_E_NOMEM, dir, 0, "out of memory");
	}
	*out = m;
	return 0;
}

void eng_model_free(struct eng_model *m)
{
	int i;

	if (!m)
		return;
	for (i = 0; i < m->n_files; i++) {
		eng_st_close(m->files[i]);
		free(m->file_names[i]);
	}
	free(m->files);
	free(m->file_names);
	json_decref(m->weight_map);
	free(m->w.layers);
	free(m->dir);
	free(m);
}

const struct eng_model_config *eng_model_config(const struct eng_model *m)
{
	return &m->cfg;
}

const struct eng_model_weights *eng_model_weights(const struct eng_model *m)
{
	return &m->w;
}

const char *eng_model_dir(const struct eng_model *m)
{
	return m->dir;
}

uint64_t eng_model_weight_bytes(const struct eng_model *m)
{
	return m->weight_bytes;
}
