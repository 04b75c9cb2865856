/*
 * model.h: a loaded model: its config and read-only views of its weights,
 * which stay in the mmapped safetensors files.
 *
 *   struct eng_model *m;
 *   struct eng_error err;
 *   if (eng_model_load("path/to/dir", &m, &err)) ... report err ...
 *   const struct eng_model_config *cfg = eng_model_config(m);
 *   ...
 *   eng_model_free(m);
 */
#ifndef TRAJBENCH_ENG_MODEL_H
#define TRAJBENCH_ENG_MODEL_H

#include <stdint.h>

#include "engine/model_config.h"
#include "engine/error.h"
#include "engine/safetensors.h"

/* A weight: a 1-D (n) or 2-D (rows, cols) row-major view into a mapping.
 * data is NULL for a bias the architecture does not have. */
struct eng_tensor {
	enum eng_dtype dtype;
	int64_t rows;        /* 1 for a vector */
	int64_t cols;
	const void *data;
};

/* Shapes with q_dim = n_heads * head_dim, kv_dim = n_kv_heads * head_dim. */
struct eng_layer_weights {
	struct eng_tensor attn_norm;          /* (hidden) */
	struct eng_tensor wq, wk, wv;         /* (q_dim, hidden), (kv_dim, hidden) x2 */
	struct eng_tensor bq, bk, bv;         /* (q_dim), (kv_dim) x2, or absent */
	struct eng_tensor q_norm, k_norm;     /* (head_dim) each, shared by all heads,
						 or absent (cfg.qk_norm) */
	struct eng_tensor wo, bo;             /* (hidden, q_dim), (hidden) or absent */
	struct eng_tensor mlp_norm;           /* (hidden) */
	struct eng_tensor w_gate, w_up;       /* (intermediate, hidden) */
	struct eng_tensor b_gate, b_up;       /* (intermediate) or absent */
	struct eng_tensor w_down, b_down;     /* (hidden, intermediate), (hidden) or absent */
	struct eng_tensor k_scale, v_scale;   /* (1) or (n_kv_heads) dequantization scales
						 of an FP8 KV cache, or absent (kv_fp8.h) */
};

struct eng_model_weights {
	struct eng_tensor embed;              /* (vocab, hidden) */
	struct eng_layer_weights *layers;     /* (n_layers) */
	struct eng_tensor final_norm;         /* (hidden) */
	struct eng_tensor lm_head;            /* (vocab, hidden); == embed when tied */
};

struct eng_model;

/* Loads dir (config.json, generation_config.json when present, and
 * model.safetensors or the shards named by model.safetensors.index.json).
 * Every tensor the architecture needs is checked for presence, dtype and
 * shape.  Returns 0, or a negative ENG_E_* with err naming the file and
 * the key or tensor at fault. */
int eng_model_load(const char *dir, struct eng_model **out, struct eng_error *err);

/* Loads dir's config.json (and generation_config.json) only: the weight
 * views stay empty (data NULL), for backends that make random weights of
 * the config's shape themselves (--load-format dummy).  The CPU backend
 * cannot run such a model. */
int eng_model_load_config(const char *dir, struct eng_model **out, struct eng_error *err);

/* Unmaps and frees.  NULL is allowed. */
void eng_model_free(struct eng_model *m);

const struct eng_model_config *eng_model_config(const struct eng_model *m);
const struct eng_model_weights *eng_model_weights(const struct eng_model *m);
const char *eng_model_dir(const struct eng_model *m);

/* Bytes of weights the model maps (what one forward pass reads). */
uint64_t eng_model_weight_bytes(const struct eng_model *m);

#endif
