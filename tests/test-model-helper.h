/*
 * test-model-helper.h: small random HF model directories for the engine's
 * tests and benchmark, written by the test itself (config.json and
 * safetensors, single file or sharded), with the weights kept as fp32 (after
 * rounding to the stored dtype) so that a test can compute the model its own
 * way and compare.
 */
#ifndef TRAJBENCH_TESTS_MODEL_HELPER_H
#define TRAJBENCH_TESTS_MODEL_HELPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model_config.h"
#include "engine/safetensors.h"
#include "tools/modelgen/model_writer.h"

struct tm_spec {
	enum eng_arch arch;
	int n_layers, hidden, n_heads, n_kv_heads, head_dim, intermediate, vocab;
	int max_positions;
	double rope_theta, rms_eps;
	bool tie;              /* tie_word_embeddings, no lm_head.weight written */
	bool attention_bias;   /* llama, qwen3: q/k/v/o biases */
	bool mlp_bias;         /* llama: gate/up/down biases */
	bool llama3_rope;      /* rope_scaling llama3 (factor 8, 1, 4, 64) */
	bool head_dim_key;     /* write "head_dim" into config.json */
	enum eng_dtype dtype;
	int n_shards;          /* 0 or 1: model.safetensors; else sharded + index */
	uint64_t seed;
};

/* A small Qwen2 shape (GQA 4:2, head_dim 8). */
struct tm_spec tm_spec_qwen2(void);
/* A small Llama shape (GQA 4:1, head_dim 16). */
struct tm_spec tm_spec_llama(void);
/* A small Qwen3 shape (GQA 4:2, head_dim 12 while hidden / heads is 10),
 * q/k norms, no biases. */
struct tm_spec tm_spec_qwen3(void);

/* Weights as fp32 values of what was stored.  Layouts as in HF:
 * matrices (out_features, in_features) row-major.  Absent biases NULL. */
struct tm_layer {
	float *attn_norm, *wq, *wk, *wv, *bq, *bk, *bv, *wo, *bo;
	float *q_norm, *k_norm;   /* (head_dim) qwen3 */
	float *mlp_norm, *wg, *wu, *wd, *bg, *bu, *bd;
};

struct tm_weights {
	int n_layers;
	float *embed;        /* (vocab, hidden) */
	struct tm_layer *layers;
	float *final_norm;   /* (hidden) */
	float *lm_head;      /* (vocab, hidden); == embed when tied */
};

/* Writes spec's model into dir (which must exist).  w may be NULL.
 * Returns 0 or -1 (message on stderr). */
int tm_write_model(const char *dir, const struct tm_spec *spec, struct tm_weights *w);
void tm_weights_free(struct tm_weights *w);

/* Writes config.json for spec into dir.  Returns 0 or -1. */
int tm_write_config(const char *dir, const struct tm_spec *spec);

/* A safetensors file built tensor by tensor. */
struct tm_st;
struct tm_st *tm_st_new(void);
/* values (prod(shape)) are converted to dtype when written. */
void tm_st_add(struct tm_st *st, const char *name, enum eng_dtype dtype, int ndim,
	       const int64_t *shape, const float *values);
int tm_st_write(struct tm_st *st, const char *path);
void tm_st_free(struct tm_st *st);

/* Writes st as the shard `file` of the sharded model in dir and maps
 * each of its tensors to it in dir's model.safetensors.index.json.
 * Returns 0 or -1. */
int tm_add_shard(const char *dir, const char *file, struct tm_st *st);

/* Adds per-head FP8 KV cache scales to the sharded model in dir: for
 * every layer l, model.layers.l.self_attn.k_scale = k + l n_kv and
 * v_scale = v + l n_kv (n_kv values each), F32, in the shard
 * model-kv-scales.safetensors.  Returns 0 or -1. */
int tm_add_kv_scales(const char *dir, int n_layers, int n_kv, const float *k, const float *v);

/* Whole-file helpers. */
int tm_write_file(const char *path, const void *data, size_t n);
int tm_write_text(const char *dir, const char *name, const char *text);

/* A fresh directory under $TMPDIR (or /tmp); free() the result. */
char *tm_mkdtemp(const char *tag);
/* Removes dir and everything in it (one level of files plus subdirs). */
void tm_rmtree(const char *dir);

/* Uniform in [-1, 1) from a splitmix64 state. */
float tm_uniform(uint64_t *state);

/* n random ids of a vocabulary of V from a splitmix64 state. */
void tm_random_ids(int32_t *ids, int n, int V, uint64_t *state);

/* The first prompts (at most 8, of at most 64 tokens) of the golden file
 * of name ($top_srcdir/tests/data/golden/NAME.json) into ids / lens; the
 * number read, 0 when there is no such file. */
int tm_golden_prompts(const char *name, int32_t ids[8][64], int lens[8]);

/* The prompts an accuracy test runs on a model: its golden ones
 * (tm_golden_prompts) or, without a golden file, 3 random ones of 7, 20
 * and 33 ids of a vocabulary of V (from rng); their number. */
int tm_accuracy_prompts(const char *name, int V, int32_t ids[8][64], int lens[8], uint64_t *rng);

/* Model-writer parameters of a small model with a real head shape, 512
 * wide, 3 layers, a vocabulary of 5000, untied: Qwen2.5-7B's (head_dim
 * 128, 7 query heads per KV head), or with qwen3 a Qwen3 (q/k norms, 8
 * heads over 2 KV heads, head_dim 128 != 512 / 8).  The seed is the
 * caller's. */
void tm_mw_mid(struct mw_params *p, int qwen3);

/* The models the FP8 accuracy tests run over, each written under tmp and
 * then given to fn with its name, directory and whether it is realistic
 * (the helper's qwen2 and llama have large attention scores, so their
 * logits move far more for the same rounding than a trained model's):
 * the model writer's tiny, tiny-llama and qwen3-tiny presets, the
 * helper's qwen2, llama (bf16, MLP biases, as the golden llama-bf16) and
 * qwen3, and tm_mw_mid's Qwen2 (seed 5).  A model that cannot be written
 * is told on stderr and skipped; returns how many were. */
typedef void (*tm_model_fn)(const char *name, const char *dir, int realistic, void *ctx);
int tm_accuracy_models(const char *tmp, tm_model_fn fn, void *ctx);

#endif
