/*
 * model_config.h: the model hyperparameters read from an HF config.json (plus the
 * eos ids of generation_config.json), and the RoPE frequencies they imply.
 */
#ifndef TRAJBENCH_ENG_MODEL_CONFIG_H
#define TRAJBENCH_ENG_MODEL_CONFIG_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/error.h"

enum eng_arch {
	ENG_ARCH_QWEN2 = 0,  /* Qwen2ForCausalLM: bias on q/k/v */
	ENG_ARCH_LLAMA = 1,  /* LlamaForCausalLM: attention_bias, mlp_bias */
	ENG_ARCH_QWEN3 = 2,  /* Qwen3ForCausalLM (dense): q/k RMSNorm per head,
				attention_bias */
};

enum eng_rope_type {
	ENG_ROPE_DEFAULT = 0, /* inv_freq[i] = theta^(-2i/head_dim) */
	ENG_ROPE_LINEAR = 1,  /* inv_freq / factor */
	ENG_ROPE_LLAMA3 = 2,  /* Llama-3 wavelength-banded scaling */
};

#define ENG_MAX_EOS 8

struct eng_rope_scaling {
	enum eng_rope_type type;
	double factor;                /* linear, llama3 */
	double low_freq_factor;       /* llama3 */
	double high_freq_factor;      /* llama3 */
	int original_max_positions;   /* llama3 */
};

struct eng_model_config {
	enum eng_arch arch;
	int n_layers;        /* num_hidden_layers */
	int hidden;          /* hidden_size */
	int n_heads;         /* num_attention_heads */
	int n_kv_heads;      /* num_key_value_heads (default n_heads) */
	int head_dim;        /* head_dim (default hidden / n_heads; Qwen3: 128),
				even; need not equal hidden / n_heads */
	int intermediate;    /* intermediate_size */
	int vocab;           /* vocab_size */
	int max_positions;   /* max_position_embeddings */
	double rope_theta;   /* rope_theta (default 10000) */
	struct eng_rope_scaling rope_scaling;
	double rms_eps;      /* rms_norm_eps */
	bool tie_embeddings; /* tie_word_embeddings: lm_head = embed_tokens */
	bool qkv_bias;       /* bias on q_proj, k_proj, v_proj */
	bool o_bias;         /* bias on o_proj (Llama attention_bias) */
	bool mlp_bias;       /* bias on gate/up/down_proj (Llama mlp_bias) */
	bool qk_norm;        /* RMSNorm (rms_eps) of each head of q and of k,
				after the projections and before RoPE (Qwen3) */
	int bos_id;          /* -1 when not stated */
	int n_eos;
	int eos_ids[ENG_MAX_EOS]; /* generation_config.json wins over config.json */
};

/* Parses root (the JSON of config.json; path names it in errors) into cfg.
 * Returns 0, ENG_E_FORMAT (a key missing, of the wrong type or out of
 * range: err names the key), or ENG_E_UNSUPPORTED (architecture,
 * activation, rope type, sliding window). */
int eng_config_parse(json_t *root, const char *path,
		     struct eng_model_config *cfg, struct eng_error *err);

/* Reads dir/config.json and, when present, dir/generation_config.json. */
int eng_config_load(const char *dir, struct eng_model_config *cfg,
		    struct eng_error *err);

/* The RoPE inverse frequencies, as HF computes them, rope_scaling applied:
 * out has head_dim / 2 entries. */
void eng_config_rope_inv_freq(const struct eng_model_config *cfg, float *out);

/* The HF class name: "Qwen2ForCausalLM", "Qwen3ForCausalLM", "LlamaForCausalLM". */
const char *eng_arch_name(enum eng_arch arch);

/* What ran, for the run record: {"architecture", "num_hidden_layers",
 * "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim",
 * "intermediate_size", "vocab_size", "tie_word_embeddings"} with HF's key
 * names.  A new reference, or NULL when out of memory. */
json_t *eng_config_json(const struct eng_model_config *cfg);

#endif
