/*
 * test-model-helper.c: writes small random HF model directories for tests.
 *
 * Written independently of the engine's loader on purpose (own JSON
 * building, own dtype rounding through the compiler's _Float16), so that a
 * loader bug cannot cancel out against the same bug in the writer.  Weights
 * are uniform and scaled by 1/sqrt(fan_in) so that activations keep their
 * size through the layers and attention is far from uniform.
 */
#include "tests/test-model-helper.h"

#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/rng.h"

float tm_uniform(uint64_t *state)
{
	return (float)((double)(eng_splitmix64(state) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

void tm_random_ids(int32_t *ids, int n, int V, uint64_t *state)
{
	for (int i = 0; i < n; i++)
		ids[i] = (int32_t)((tm_uniform(state) + 1.0f) * 0.5f * (V - 1));
}

int tm_golden_prompts(const char *name, int32_t ids[8][64], int lens[8])
{
	const char *top = getenv("top_srcdir");
	char path[4096];
	json_t *g, *p;
	size_t k;
	int n = 0;

	snprintf(path, sizeof(path), "%s/tests/data/golden/%s.json", top ? top : ".", name);
	if (!(g = json_load_file(path, 0, NULL)))
		return 0;
	json_array_foreach(json_object_get(g, "prompts"), k, p) {
		json_t *t = json_object_get(p, "tokens");

		if (n == 8 || json_array_size(t) > 64)
			break;
		lens[n] = (int)json_array_size(t);
		for (int i = 0; i < lens[n]; i++)
			ids[n][i] = (int32_t)json_integer_value(json_array_get(t, i));
		n++;
	}
	json_decref(g);
	return n;
}

struct tm_spec tm_spec_qwen2(void)
{
	struct tm_spec s = {
		.arch = ENG_ARCH_QWEN2, .n_layers = 2, .hidden = 32, .n_heads = 4,
		.n_kv_heads = 2, .head_dim = 8, .intermediate = 48, .vocab = 97,
		.max_positions = 256, .rope_theta = 1000000.0, .rms_eps = 1e-6,
		.dtype = ENG_DTYPE_F32, .seed = 1,
	};
	return s;
}

struct tm_spec tm_spec_llama(void)
{
	struct tm_spec s = {
		.arch = ENG_ARCH_LLAMA, .n_layers = 3, .hidden = 48, .n_heads = 4,
		.n_kv_heads = 1, .head_dim = 16, .intermediate = 80, .vocab = 131,
		.max_positions = 512, .rope_theta = 500000.0, .rms_eps = 1e-5,
		.dtype = ENG_DTYPE_F32, .seed = 2,
	};
	return s;
}

struct tm_spec tm_spec_qwen3(void)
{
	struct tm_spec s = {
		.arch = ENG_ARCH_QWEN3, .n_layers = 2, .hidden = 40, .n_heads = 4,
		.n_kv_heads = 2, .head_dim = 12, .intermediate = 56, .vocab = 103,
		.max_positions = 256, .rope_theta = 1000000.0, .rms_eps = 1e-6,
		.head_dim_key = true, .dtype = ENG_DTYPE_F32, .seed = 3,
	};
	return s;
}

static const char *arch_name(enum eng_arch a)
{
	return a == ENG_ARCH_QWEN2 ? "Qwen2ForCausalLM"
	     : a == ENG_ARCH_QWEN3 ? "Qwen3ForCausalLM" : "LlamaForCausalLM";
}

static const char *model_type(enum eng_arch a)
{
	return a == ENG_ARCH_QWEN2 ? "qwen2" : a == ENG_ARCH_QWEN3 ? "qwen3" : "llama";
}

/* ---------------------------------------------------------------- safetensors */

struct tm_tensor {
	char name[128];
	enum eng_dtype dtype;
	int ndim;
	int64_t shape[4];
	size_t n;
	const float *values;
};

struct tm_st {
	int n, cap;
	struct tm_tensor *t;
};

struct tm_st *tm_st_new(void)
{
	return calloc(1, sizeof(struct tm_st));
}

int tm_add_shard(const char *dir, const char *file, struct tm_st *st)
{
	char path[4096];
	json_t *idx, *map;
	int rc;

	snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
	if (!(idx = json_load_file(path, 0, NULL)) ||
	    !json_is_object(map = json_object_get(idx, "weight_map"))) {
		fprintf(stderr, "%s: not a sharded model\n", dir);
		json_decref(idx);
		return -1;
	}
	for (int k = 0; k < st->n; k++)
		json_object_set_new(map, st->t[k].name, json_string(file));
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	rc = tm_st_write(st, path);
	snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
	if (!rc)
		rc = json_dump_file(idx, path, JSON_INDENT(2));
	json_decref(idx);
	return rc ? -1 : 0;
}

int tm_add_kv_scales(const char *dir, int n_layers, int n_kv, const float *k, const float *v)
{
	struct tm_st *st = tm_st_new();
	int64_t shape[1] = { n_kv };
	char name[128];
	int rc;

	for (int l = 0; l < n_layers; l++) {
		snprintf(name, sizeof(name), "model.layers.%d.self_attn.k_scale", l);
		tm_st_add(st, name, ENG_DTYPE_F32, 1, shape, k + (size_t)l * n_kv);
		snprintf(name, sizeof(name), "model.layers.%d.self_attn.v_scale", l);
		tm_st_add(st, name, ENG_DTYPE_F32, 1, shape, v + (size_t)l * n_kv);
	}
	rc = tm_add_shard(dir, "model-kv-scales.safetensors", st);
	tm_st_free(st);
	return rc;
}

void tm_st_free(struct tm_st *st)
{
	if (st)
		free(st->t);
	free(st);
}

void tm_st_add(struct tm_st *st, const char *name, enum eng_dtype dtype, int ndim,
	       const int64_t *shape, const float *values)
{
	struct tm_tensor *t;
	int i;

	if (st->n == st->cap) {
		st->cap = st->cap ? 2 * st->cap : 16;
		st->t = realloc(st->t, (size_t)st->cap * sizeof(*st->t));
	}
	t = &st->t[st->n++];
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->dtype = dtype;
	t->ndim = ndim;
	t->n = 1;
	for (i = 0; i < ndim; i++) {
		t->shape[i] = shape[i];
		t->n *= (size_t)shape[i];
	}
	t->values = values;
}

static size_t dt_size(enum eng_dtype d)
{
	return d == ENG_DTYPE_F32 ? 4 : 2;
}

static void put_value(unsigned char *p, enum eng_dtype d, float f)
{
	if (d == ENG_DTYPE_F32) {
		memcpy(p, &f, 4);
	} else if (d == ENG_DTYPE_F16) {
		_Float16 h = (_Float16)f;

		memcpy(p, &h, 2);
	} else {
		uint32_t u;
		uint16_t b;

		memcpy(&u, &f, 4);
		b = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
		memcpy(p, &b, 2);
	}
}

int tm_st_write(struct tm_st *st, const char *path)
{
	json_t *h = json_object();
	size_t off = 0, hlen, i, j;
	char *hs;
	FILE *f;
	int k;

	for (k = 0; k < st->n; k++) {
		struct tm_tensor *t = &st->t[k];
		json_t *shape = json_array();
		static const char *const dn[] = { "F32", "F16", "BF16" };

		for (i = 0; i < (size_t)t->ndim; i++)
			json_array_append_new(shape, json_integer(t->shape[i]));
		json_object_set_new(h, t->name,
				    json_pack("{s:s, s:o, s:[I, I]}", "dtype", dn[t->dtype],
					      "shape", shape, "data_offsets", (json_int_t)off,
					      (json_int_t)(off + t->n * dt_size(t->dtype))));
		off += t->n * dt_size(t->dtype);
	}
	json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
	hs = json_dumps(h, JSON_COMPACT);
	json_decref(h);
	hlen = (strlen(hs) + 7) / 8 * 8;
	if (!(f = fopen(path, "wb"))) {
		free(hs);
		perror(path);
		return -1;
	}
	for (i = 0; i < 8; i++)
		fputc((int)((hlen >> (8 * i)) & 0xff), f);
	fputs(hs, f);
	for (i = strlen(hs); i < hlen; i++)
		fputc(' ', f);
	free(hs);
	for (k = 0; k < st->n; k++) {
		unsigned char b[4];

		for (j = 0; j < st->t[k].n; j++) {
			put_value(b, st->t[k].dtype, st->t[k].values[j]);
			fwrite(b, dt_size(st->t[k].dtype), 1, f);
		}
	}
	return fclose(f) ? -1 : 0;
}

/* ---------------------------------------------------------------- files */

int tm_write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (!f) {
		perror(path);
		return -1;
	}
	if (n && fwrite(data, n, 1, f) != 1) {
		fclose(f);
		return -1;
	}
	return fclose(f) ? -1 : 0;
}

int tm_write_text(const char *dir, const char *name, const char *text)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return tm_write_file(path, text, strlen(text));
}

char *tm_mkdtemp(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *p = malloc(4096);

	snprintf(p, 4096, "%s/trajbench-%s-XXXXXX", base && *base ? base : "/tmp", tag);
	if (!mkdtemp(p)) {
		perror(p);
		free(p);
		return NULL;
	}
	return p;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void tm_rmtree(const char *dir)
{
	if (dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---------------------------------------------------------------- models */

int tm_write_config(const char *dir, const struct tm_spec *s)
{
	json_t *c = json_object();
	char path[4096];
	int rc;

	json_object_set_new(c, "architectures", json_pack("[s]", arch_name(s->arch)));
	json_object_set_new(c, "model_type", json_string(model_type(s->arch)));
	json_object_set_new(c, "hidden_act", json_string("silu"));
	json_object_set_new(c, "hidden_size", json_integer(s->hidden));
	json_object_set_new(c, "intermediate_size", json_integer(s->intermediate));
	json_object_set_new(c, "num_hidden_layers", json_integer(s->n_layers));
	json_object_set_new(c, "num_attention_heads", json_integer(s->n_heads));
	json_object_set_new(c, "num_key_value_heads", json_integer(s->n_kv_heads));
	if (s->head_dim_key || s->head_dim * s->n_heads != s->hidden)
		json_object_set_new(c, "head_dim", json_integer(s->head_dim));
	json_object_set_new(c, "vocab_size", json_integer(s->vocab));
	json_object_set_new(c, "max_position_embeddings", json_integer(s->max_positions));
	json_object_set_new(c, "rope_theta", json_real(s->rope_theta));
	json_object_set_new(c, "rms_norm_eps", json_real(s->rms_eps));
	json_object_set_new(c, "tie_word_embeddings", json_boolean(s->tie));
	json_object_set_new(c, "bos_token_id", json_integer(1));
	json_object_set_new(c, "eos_token_id", json_integer(2));
	json_object_set_new(c, "torch_dtype", json_string(s->dtype == ENG_DTYPE_F32 ? "float32"
						: s->dtype == ENG_DTYPE_F16 ? "float16" : "bfloat16"));
	if (s->arch != ENG_ARCH_LLAMA)
		json_object_set_new(c, "use_sliding_window", json_false());
	if (s->arch != ENG_ARCH_QWEN2)
		json_object_set_new(c, "attention_bias", json_boolean(s->attention_bias));
	if (s->arch == ENG_ARCH_LLAMA)
		json_object_set_new(c, "mlp_bias", json_boolean(s->mlp_bias));
	json_object_set_new(c, "rope_scaling", s->llama3_rope
			    ? json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3",
					"factor", 8.0, "low_freq_factor", 1.0,
					"high_freq_factor", 4.0,
					"original_max_position_embeddings", 64)
			    : json_null());
	snprintf(path, sizeof(path), "%s/config.json", dir);
	rc = json_dump_file(c, path, JSON_INDENT(2));
	json_decref(c);
	return rc;
}

/* Rounds values to what dtype stores. */
static void round_to(float *v, size_t n, enum eng_dtype d)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char b[4];
		uint16_t u;
		uint32_t w;

		if (d == ENG_DTYPE_F32)
			return;
		put_value(b, d, v[i]);
		memcpy(&u, b, 2);
		if (d == ENG_DTYPE_F16) {
			_Float16 h;

			memcpy(&h, &u, 2);
			v[i] = (float)h;
		} else {
			w = (uint32_t)u << 16;
			memcpy(&v[i], &w, 4);
		}
	}
}

struct gen {
	const struct tm_spec *s;
	uint64_t rng;
	struct tm_st *files[8];
	int n_files, next;
	json_t *map;
};

/* Makes one tensor: values center + scale * U(-1, 1), rounded. */
static float *gen(struct gen *g, const char *name, int64_t rows, int64_t cols,
		  float center, float scale)
{
	size_t n = (size_t)(rows ? rows : 1) * (size_t)cols, i;
	float *v = malloc(n * sizeof(float));
	int64_t shape[2] = { rows, cols };
	int f = g->next++ % g->n_files;
	char fname[64];

	for (i = 0; i < n; i++)
		v[i] = center + scale * tm_uniform(&g->rng);
	round_to(v, n, g->s->dtype);
	if (rows)
		tm_st_add(g->files[f], name, g->s->dtype, 2, shape, v);
	else
		tm_st_add(g->files[f], name, g->s->dtype, 1, shape + 1, v);
	snprintf(fname, sizeof(fname), "model-%05d-of-%05d.safetensors", f + 1, g->n_files);
	json_object_set_new(g->map, name, json_string(fname));
	return v;
}

static void gen_layer(struct gen *g, int l, struct tm_layer *L)
{
	const struct tm_spec *s = g->s;
	int64_t h = s->hidden, q = (int64_t)s->n_heads * s->head_dim;
	int64_t kv = (int64_t)s->n_kv_heads * s->head_dim, in = s->intermediate;
	float a_h = 1.7f / sqrtf((float)h), a_q = 1.7f / sqrtf((float)q);
	float a_in = 1.7f / sqrtf((float)in);
	bool qkvb = s->arch == ENG_ARCH_QWEN2 || s->attention_bias;
	bool ob = s->arch != ENG_ARCH_QWEN2 && s->attention_bias;
	bool mb = s->arch == ENG_ARCH_LLAMA && s->mlp_bias;
	char n[128];

#define NAME(sfx) (snprintf(n, sizeof(n), "model.layers.%d.%s", l, sfx), n)
	memset(L, 0, sizeof(*L));
	L->attn_norm = gen(g, NAME("input_layernorm.weight"), 0, h, 1.0f, 0.2f);
	L->wq = gen(g, NAME("self_attn.q_proj.weight"), q, h, 0, 2.5f * a_h);
	L->wk = gen(g, NAME("self_attn.k_proj.weight"), kv, h, 0, 2.5f * a_h);
	L->wv = gen(g, NAME("self_attn.v_proj.weight"), kv, h, 0, a_h);
	if (qkvb) {
		L->bq = gen(g, NAME("self_attn.q_proj.bias"), 0, q, 0, 0.3f);
		L->bk = gen(g, NAME("self_attn.k_proj.bias"), 0, kv, 0, 0.3f);
		L->bv = gen(g, NAME("self_attn.v_proj.bias"), 0, kv, 0, 0.3f);
	}
	if (s->arch == ENG_ARCH_QWEN3) {
		/* spread well away from 1, so that a missing or misplaced
		 * norm weight shows in the logits */
		L->q_norm = gen(g, NAME("self_attn.q_norm.weight"), 0, s->head_dim, 1.0f, 0.6f);
		L->k_norm = gen(g, NAME("self_attn.k_norm.weight"), 0, s->head_dim, 1.0f, 0.6f);
	}
	L->wo = gen(g, NAME("self_attn.o_proj.weight"), h, q, 0, a_q);
	if (ob)
		L->bo = gen(g, NAME("self_attn.o_proj.bias"), 0, h, 0, 0.1f);
	L->mlp_norm = gen(g, NAME("post_attention_layernorm.weight"), 0, h, 1.0f, 0.2f);
	L->wg = gen(g, NAME("mlp.gate_proj.weight"), in, h, 0, a_h);
	L->wu = gen(g, NAME("mlp.up_proj.weight"), in, h, 0, a_h);
	L->wd = gen(g, NAME("mlp.down_proj.weight"), h, in, 0, a_in);
	if (mb) {
		L->bg = gen(g, NAME("mlp.gate_proj.bias"), 0, in, 0, 0.1f);
		L->bu = gen(g, NAME("mlp.up_proj.bias"), 0, in, 0, 0.1f);
		L->bd = gen(g, NAME("mlp.down_proj.bias"), 0, h, 0, 0.1f);
	}
#undef NAME
}

static int write_files(struct gen *g, const char *dir)
{
	char path[4096];
	int f, rc = 0;

	if (g->n_files == 1) {
		snprintf(path, sizeof(path), "%s/model.safetensors", dir);
		return tm_st_write(g->files[0], path);
	}
	for (f = 0; f < g->n_files && !rc; f++) {
		snprintf(path, sizeof(path), "%s/model-%05d-of-%05d.safetensors", dir, f + 1,
			 g->n_files);
		rc = tm_st_write(g->files[f], path);
	}
	if (!rc) {
		json_t *idx = json_pack("{s:{s:i}, s:O}", "metadata", "total_size", 0,
					"weight_map", g->map);

		snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
		rc = json_dump_file(idx, path, JSON_INDENT(2));
		json_decref(idx);
	}
	return rc;
}

int tm_write_model(const char *dir, const struct tm_spec *s, struct tm_weights *out)
{
	struct gen g = { s, s->seed * 0x51ed270b7d4e3f13ull + 7, { 0 }, 0, 0, json_object() };
	struct tm_weights w = { 0 };
	int64_t h = s->hidden, v = s->vocab;
	int l, f, rc;

	g.n_files = s->n_shards > 1 ? (s->n_shards > 8 ? 8 : s->n_shards) : 1;
	for (f = 0; f < g.n_files; f++)
		g.files[f] = tm_st_new();
	w.n_layers = s->n_layers;
	w.embed = gen(&g, "model.embed_tokens.weight", v, h, 0, 1.0f);
	w.layers = calloc((size_t)s->n_layers, sizeof(*w.layers));
	for (l = 0; l < s->n_layers; l++)
		gen_layer(&g, l, &w.layers[l]);
	w.final_norm = gen(&g, "model.norm.weight", 0, h, 1.0f, 0.2f);
	w.lm_head = s->tie ? w.embed
		  : gen(&g, "lm_head.weight", v, h, 0, 2.0f / sqrtf((float)h));
	rc = tm_write_config(dir, s);
	if (!rc)
		rc = write_files(&g, dir);
	for (f = 0; f < g.n_files; f++)
		tm_st_free(g.files[f]);
	json_decref(g.map);
	if (out)
		*out = w;
	else
		tm_weights_free(&w);
	return rc ? -1 : 0;
}

void tm_weights_free(struct tm_weights *w)
{
	int l;

	for (l = 0; l < w->n_layers && w->layers; l++) {
		struct tm_layer *L = &w->layers[l];
		float *all[] = { L->attn_norm, L->wq, L->wk, L->wv, L->bq, L->bk, L->bv,
				 L->q_norm, L->k_norm, L->wo, L->bo, L->mlp_norm, L->wg, L->wu,
				 L->wd, L->bg, L->bu, L->bd };
		size_t i;

		for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
			free(all[i]);
	}
	if (w->lm_head != w->embed)
		free(w->lm_head);
	free(w->embed);
	free(w->final_norm);
	free(w->layers);
	memset(w, 0, sizeof(*w));
}

int tm_accuracy_prompts(const char *name, int V, int32_t ids[8][64], int lens[8], uint64_t *rng)
{
	int np = tm_golden_prompts(name, ids, lens);

	if (np)
		return np;
	for (np = 0; np < 3; np++) {
		lens[np] = 7 + 13 * np;
		tm_random_ids(ids[np], lens[np], V, rng);
	}
	return np;
}

void tm_mw_mid(struct mw_params *p, int qwen3)
{
	*p = mw_default_params();
	if (qwen3)
		mw_preset("qwen3-tiny", p);
	p->hidden_size = 512;
	p->intermediate_size = 1024;
	p->num_layers = 3;
	p->num_heads = qwen3 ? 8 : 7;
	p->num_kv_heads = qwen3 ? 2 : 1;
	p->head_dim = 128;
	p->vocab_size = 5000;
	p->tie_word_embeddings = false;
}

/* The model writer's model of p (preset first when not NULL) in dir. */
static int write_mw(const char *dir, const char *preset, struct mw_params *p)
{
	struct eng_error err;

	if (preset)
		mw_preset(preset, p);
	if (mw_write(p, dir, NULL, &err)) {
		fprintf(stderr, "%s: %s\n", dir, err.msg);
		return -1;
	}
	return 0;
}

int tm_accuracy_models(const char *tmp, tm_model_fn fn, void *ctx)
{
	static const char *const presets[][2] = {
		{ "mw-tiny", "tiny" }, { "mw-tiny-llama", "tiny-llama" },
		{ "mw-qwen3-tiny", "qwen3-tiny" },
	};
	struct { const char *name; struct tm_spec spec; int realistic; } specs[3] = {
		{ "qwen2-tiny", tm_spec_qwen2(), 0 }, { "llama-bf16", tm_spec_llama(), 0 },
		{ "qwen3-tiny", tm_spec_qwen3(), 1 },
	};
	struct mw_params p;
	char dir[4096];
	int failed = 0;

	specs[1].spec.dtype = ENG_DTYPE_BF16;   /* as the golden llama-bf16 */
	specs[1].spec.mlp_bias = true;
	for (size_t i = 0; i < 3; i++) {
		p = mw_default_params();
		snprintf(dir, sizeof(dir), "%s/%s", tmp, presets[i][0]);
		if (write_mw(dir, presets[i][1], &p))
			failed++;
		else
			fn(presets[i][0], dir, 1, ctx);
	}
	for (size_t i = 0; i < 3; i++) {
		snprintf(dir, sizeof(dir), "%s/%s", tmp, specs[i].name);
		mkdir(dir, 0777);
		if (tm_write_model(dir, &specs[i].spec, NULL))
			failed++;
		else
			fn(specs[i].name, dir, specs[i].realistic, ctx);
	}
	tm_mw_mid(&p, 0);
	p.seed = 5;
	snprintf(dir, sizeof(dir), "%s/mid", tmp);
	if (write_mw(dir, NULL, &p))
		failed++;
	else
		fn("mid (head_dim 128, 7 heads per kv head)", dir, 1, ctx);
	return failed;
}
