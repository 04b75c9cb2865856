/*
 * model_writer.h: write a deterministic random-weight model in HF layout.
 *
 * No real weights can be downloaded here, so every model the project runs is
 * made by this module: config.json, generation_config.json, model.safetensors
 * (or shards plus model.safetensors.index.json), tokenizer.json and
 * tokenizer_config.json, with HF tensor names and shapes, for the Qwen2 and
 * Llama architectures.  The same parameters give byte-identical files.
 * ("mw" in names stands for model writer.)
 *
 * Weights come from a per-tensor xoshiro256** stream seeded from the seed
 * and the tensor's name, so any tensor can be regenerated on its own
 * (mw_tensor_values), and are streamed to disk through a fixed buffer:
 * a 15 GB model never sits in memory.
 */
#ifndef TRAJBENCH_MODEL_WRITER_H
#define TRAJBENCH_MODEL_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

enum mw_arch {
	MW_ARCH_QWEN2,
	MW_ARCH_LLAMA,
	MW_ARCH_QWEN3,   /* dense: q_norm / k_norm per layer, Qwen3's chat template */
};

enum mw_dtype {
	MW_DTYPE_BF16,
	MW_DTYPE_F16,
	MW_DTYPE_F32,
};

struct mw_params {
	enum mw_arch arch;
	int hidden_size;
	int intermediate_size;
	int num_layers;
	int num_heads;
	int num_kv_heads;
	int head_dim;
	long vocab_size;            /* 0: the tokenizer's size rounded up to 128 */
	long max_position_embeddings;
	double rope_theta;
	double rms_norm_eps;
	bool tie_word_embeddings;
	bool attention_bias;        /* llama, qwen3: q/k/v/o biases; qwen2 always has
				     * q/k/v bias */
	bool rope_scaling_llama3;   /* llama: rope_scaling {rope_type llama3, factor 8, ...} */
	enum mw_dtype dtype;
	uint64_t seed;
	long long shard_size;       /* bytes per shard; 0: one model.safetensors */
	const char *tokenizer_dir;  /* copy this HF tokenizer; NULL: train a BPE */
	const char *const *train_text; /* (n_train_text) files for the BPE; none: built-in text */
	int n_train_text;
	int tokenizer_vocab;        /* BPE size incl. 256 byte tokens, before specials */
	bool force;                 /* replace an existing output directory */
	bool no_weights;            /* config and tokenizer only: for engines that
				     * make their own random weights of the
				     * config's shape (--load-format dummy) */
	/* Called now and then while weights are written (may be NULL). */
	void (*progress)(void *ud, long long bytes_done, long long bytes_total);
	void *progress_ud;
};

/* The "tiny" preset, seed 0, bf16, a trained 512-token BPE. */
struct mw_params mw_default_params(void);

/* Sets the shape fields of p (arch, sizes, rope, eps, tying, vocab) from a
 * preset: "tiny", "tiny-llama", "qwen3-tiny", "qwen2.5-7b", "qwen3-8b",
 * "llama3-8b".  Other fields are left alone.  Returns 0, or ENG_E_INVALID
 * for an unknown name. */
int mw_preset(const char *name, struct mw_params *p);

/* Names of the presets, NULL-terminated. */
extern const char *const mw_preset_names[];

/* What a write did. */
struct mw_stats {
	long long n_params;       /* weights written */
	long long weight_bytes;   /* tensor data bytes over all shards */
	int n_shards;             /* 0 when one model.safetensors */
	long vocab_size;          /* as written to config.json */
	int tokenizer_size;       /* ids the tokenizer uses (max id + 1) */
	double write_s;           /* wall time spent writing the weights */
};

/* Writes the model into dir, which must not exist (unless p->force).  Files
 * go to a sibling temporary directory that is renamed to dir at the end, so
 * an interrupted run never leaves a complete-looking model; one stopped by
 * mw_request_stop, or failing, leaves no temporary directory.  Returns 0 or
 * ENG_E_INVALID (bad shape or options), ENG_E_IO, ENG_E_FORMAT (tokenizer
 * files), ENG_E_NOMEM, filling err; st may be NULL. */
int mw_write(const struct mw_params *p, const char *dir, struct mw_stats *st,
		 struct eng_error *err);

/* Asks mw_write to stop: the one in progress (or the next to start)
 * removes its temporary directory and returns ENG_E_IO ("interrupted").
 * Async-signal-safe, for a SIGINT or SIGTERM handler. */
void mw_request_stop(void);

/* Checks the shape fields; 0 or ENG_E_INVALID with a message. */
int mw_check(const struct mw_params *p, struct eng_error *err);

/* How a tensor is initialised: value = mean + std * z, z approximately
 * standard normal (sum of four uniforms, so |z| < 3.47). */
struct mw_init {
	float mean;
	float std;
};

/* The init of a tensor named as in HF ("model.layers.0.mlp.up_proj.weight").
 * Returns 0, or ENG_E_INVALID for a name the model does not have. */
int mw_tensor_init(const struct mw_params *p, const char *name,
		       struct mw_init *init);

/* The first n values of a tensor, in f32 before conversion to the dtype:
 * regenerates what mw_write wrote, for tests and tools. */
void mw_tensor_values(uint64_t seed, const char *name, struct mw_init init,
			  float *out, size_t n);

/* Round to nearest even conversions used for the weights. */
uint16_t mw_f32_to_bf16(float f);
uint16_t mw_f32_to_f16(float f);

const char *mw_arch_name(enum mw_arch a);   /* "qwen2", "qwen3", "llama" */

#endif
