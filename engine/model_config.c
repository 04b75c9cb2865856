/*
 * model_config.c: HF config.json -> struct eng_model_config.
 *
 * Keys the forward pass cannot do without (sizes, rms_norm_eps, the
 * architecture) are required; keys HF gives a default are optional with
 * HF's default, and a JSON null counts as absent (configs write
 * "rope_scaling": null).  A key present with the wrong type is an error
 * naming the key, never silently defaulted.
 *
 * Refuses: architectures other than Qwen2ForCausalLM, Qwen3ForCausalLM
 * (dense; the MoE Qwen3MoeForCausalLM is another name) and
 * LlamaForCausalLM, hidden_act other than silu, rope types other than
 * default/linear/llama3, Qwen's use_sliding_window (the forward pass
 * attends to everything), and any quantization_config: the weights are
 * read as F32, F16 or BF16 only, and a quantized checkpoint's tensors
 * would otherwise fail one by one, or load as something they are not
 * (FP8 weights come from --quantization fp8, quantizing at load).
 */
#include "engine/model_config.h"
#include "engine/json_load.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct cfg_ctx {
	const char *path;
	struct eng_error *err;
};

static int bad_key(struct cfg_ctx *c, const char *key, const char *want)
{
	return eng_error_set(c->err, ENG_E_FORMAT, c->path, 0,
			     "key \"%s\": %s", key, want);
}

/* err, filled by a reader that leaves the file to its caller, now names
 * the file; returns rc. */
static int in_file(struct cfg_ctx *c, int rc)
{
	if (c->err)
		snprintf(c->err->file, sizeof(c->err->file), "%s", c->path);
	return rc;
}

/* *out = obj[key], an integer >= min; def when absent and !required. */
static int get_int(struct cfg_ctx *c, json_t *obj, const char *key,
		   bool required, int def, int min, int *out)
{
	json_int_t iv = def;
	int rc = eng_json_get_int_range(obj, key, min, 1 << 30, &iv, c->err);

	if (rc == 1 && required)
		return bad_key(c, key, "missing");
	if (rc < 0)
		return in_file(c, rc);
	*out = (int)iv;
	return 0;
}

/* *out = obj[key], a number > 0 (JSON integer or real). */
static int get_num(struct cfg_ctx *c, json_t *obj, const char *key,
		   bool required, double def, double *out)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		if (required)
			return bad_key(c, key, "missing");
		*out = def;
		return 0;
	}
	if (!json_is_number(v) || !(json_number_value(v) > 0) ||
	    !isfinite(json_number_value(v)))
		return bad_key(c, key, "not a positive number");
	*out = json_number_value(v);
	return 0;
}

static int get_bool(struct cfg_ctx *c, json_t *obj, const char *key,
		    bool def, bool *out)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v))
		return bad_key(c, key, "not a boolean");
	*out = json_is_true(v);
	return 0;
}

static int parse_arch(struct cfg_ctx *c, json_t *root, struct eng_model_config *cfg)
{
	json_t *a = json_object_get(root, "architectures");
	json_t *act = json_object_get(root, "hidden_act");
	const char *name;

	if (!a)
		return bad_key(c, "architectures", "missing");
	if (!json_is_array(a) || json_array_size(a) != 1 ||
	    !json_is_string(json_array_get(a, 0)))
		return bad_key(c, "architectures", "not an array of one string");
	name = json_string_value(json_array_get(a, 0));
	if (!strcmp(name, "Qwen2ForCausalLM"))
		cfg->arch = ENG_ARCH_QWEN2;
	else if (!strcmp(name, "Qwen3ForCausalLM"))
		cfg->arch = ENG_ARCH_QWEN3;
	else if (!strcmp(name, "LlamaForCausalLM"))
		cfg->arch = ENG_ARCH_LLAMA;
	else
		return eng_error_set(c->err, ENG_E_UNSUPPORTED, c->path, 0,
				     "key \"architectures\": %s is not Qwen2ForCausalLM, "
				     "Qwen3ForCausalLM or LlamaForCausalLM", name);
	if (act && !json_is_null(act) &&
	    (!json_is_string(act) || strcmp(json_string_value(act), "silu")))
		return eng_error_set(c->err, ENG_E_UNSUPPORTED, c->path, 0,
				     "key \"hidden_act\": only silu is supported");
	return 0;
}

static int parse_rope_scaling(struct cfg_ctx *c, json_t *root, struct eng_model_config *cfg)
{
	json_t *rs = json_object_get(root, "rope_scaling"), *t;
	struct eng_rope_scaling *s = &cfg->rope_scaling;
	const char *type;
	struct cfg_ctx sub = { c->path, c->err };
	int rc;

	memset(s, 0, sizeof(*s));
	s->type = ENG_ROPE_DEFAULT;
	s->factor = 1.0;
	if (!rs || json_is_null(rs))
		return 0;
	if (!json_is_object(rs))
		return bad_key(c, "rope_scaling", "not an object");
	t = json_object_get(rs, "rope_type");
	if (!t)
		t = json_object_get(rs, "type");
	if (!json_is_string(t))
		return bad_key(c, "rope_scaling.rope_type", "missing or not a string");
	type = json_string_value(t);
	if (!strcmp(type, "default"))
		return 0;
	if (!strcmp(type, "linear"))
		s->type = ENG_ROPE_LINEAR;
	else if (!strcmp(type, "llama3"))
		s->type = ENG_ROPE_LLAMA3;
	else
		return eng_error_set(c->err, ENG_E_UNSUPPORTED, c->path, 0,
				     "key \"rope_scaling.rope_type\": %s is not default, linear or llama3",
				     type);
	if ((rc = get_num(&sub, rs, "factor", true, 1, &s->factor)))
		return bad_key(c, "rope_scaling.factor", "missing or not a positive number");
	if (s->type == ENG_ROPE_LINEAR)
		return 0;
	if (get_num(&sub, rs, "low_freq_factor", true, 1, &s->low_freq_factor))
		return bad_key(c, "rope_scaling.low_freq_factor", "missing or not a positive number");
	if (get_num(&sub, rs, "high_freq_factor", true, 1, &s->high_freq_factor) ||
	    s->high_freq_factor <= s->low_freq_factor)
		return bad_key(c, "rope_scaling.high_freq_factor",
			       "missing, not a number or not above low_freq_factor");
	if (get_int(&sub, rs, "original_max_position_embeddings", true, 0, 1,
		    &s->original_max_positions))
		return bad_key(c, "rope_scaling.original_max_position_embeddings",
			       "missing or not a positive integer");
	return 0;
}

/* eos_token_id: an integer or an array of integers. */
static int parse_eos(struct cfg_ctx *c, json_t *root, struct eng_model_config *cfg)
{
	json_t *v = json_object_get(root, "eos_token_id");
	json_int_t id;
	size_t i;
	int rc;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v)) {
		if ((rc = eng_json_int_range(v, "eos_token_id", 0, 1 << 30, &id, c->err)) != 0)
			return in_file(c, rc);
		cfg->n_eos = 1;
		cfg->eos_ids[0] = (int)id;
		return 0;
	}
	if (json_array_size(v) > ENG_MAX_EOS)
		return bad_key(c, "eos_token_id", "an array of more than 8");
	for (i = 0; i < json_array_size(v); i++) {
		char name[48];

		snprintf(name, sizeof(name), "eos_token_id[%zu]", i);
		if ((rc = eng_json_int_range(json_array_get(v, i), name, 0, 1 << 30, &id, c->err)) != 0)
			return in_file(c, rc);
		cfg->eos_ids[i] = (int)id;
	}
	cfg->n_eos = (int)json_array_size(v);
	return 0;
}

/* head_dim: HF's Qwen3Config defaults it to 128; Qwen2 and Llama derive
 * it from hidden_size / num_attention_heads. */
static int parse_head_dim(struct cfg_ctx *c, json_t *root, struct eng_model_config *cfg)
{
	bool given = json_object_get(root, "head_dim") &&
		     !json_is_null(json_object_get(root, "head_dim"));
	int def = cfg->arch == ENG_ARCH_QWEN3 ? 128 : cfg->hidden / cfg->n_heads;
	int rc;

	if ((rc = get_int(c, root, "head_dim", false, def, 1, &cfg->head_dim)))
		return rc;
	if (cfg->head_dim % 2)
		return bad_key(c, "head_dim", "not even");
	if (!given && cfg->arch != ENG_ARCH_QWEN3 && cfg->hidden % cfg->n_heads)
		return bad_key(c, "num_attention_heads", "does not divide hidden_size");
	return 0;
}

static int parse_sizes(struct cfg_ctx *c, json_t *root, struct eng_model_config *cfg)
{
	int rc;
	bool llama = cfg->arch == ENG_ARCH_LLAMA;

	if ((rc = get_int(c, root, "num_hidden_layers", true, 0, 1, &cfg->n_layers)) ||
	    (rc = get_int(c, root, "hidden_size", true, 0, 1, &cfg->hidden)) ||
	    (rc = get_int(c, root, "num_attention_heads", true, 0, 1, &cfg->n_heads)) ||
	    (rc = get_int(c, root, "num_key_value_heads", false, cfg->n_heads, 1,
			  &cfg->n_kv_heads)) ||
	    (rc = get_int(c, root, "intermediate_size", true, 0, 1, &cfg->intermediate)) ||
	    (rc = get_int(c, root, "vocab_size", true, 0, 1, &cfg->vocab)) ||
	    (rc = get_int(c, root, "max_position_embeddings", false,
			  llama ? 2048 : 32768, 1, &cfg->max_positions)) ||
	    (rc = get_num(c, root, "rms_norm_eps", true, 0, &cfg->rms_eps)) ||
	    (rc = get_num(c, root, "rope_theta", false, 10000.0, &cfg->rope_theta)))
		return rc;
	if (cfg->n_heads % cfg->n_kv_heads)
		return bad_key(c, "num_key_value_heads", "does not divide num_attention_heads");
	return parse_head_dim(c, root, cfg);
}

static int parse_flags(struct cfg_ctx *c, json_t *root, struct eng_model_config *cfg)
{
	bool attn_bias = false, sliding = false;
	int rc;

	if ((rc = get_bool(c, root, "tie_word_embeddings", false, &cfg->tie_embeddings)) ||
	    (rc = get_bool(c, root, "use_sliding_window", false, &sliding)))
		return rc;
	if (sliding)
		return eng_error_set(c->err, ENG_E_UNSUPPORTED, c->path, 0,
				     "key \"use_sliding_window\": sliding-window attention is not supported");
	if (cfg->arch == ENG_ARCH_QWEN2) {
		cfg->qkv_bias = true;
		return 0;
	}
	/* Qwen3's attention_bias covers q, k, v and o as Llama's does; its
	 * MLP has no bias whatever the config says */
	if ((rc = get_bool(c, root, "attention_bias", false, &attn_bias)) ||
	    (cfg->arch == ENG_ARCH_LLAMA &&
	     (rc = get_bool(c, root, "mlp_bias", false, &cfg->mlp_bias))))
		return rc;
	cfg->qkv_bias = cfg->o_bias = attn_bias;
	cfg->qk_norm = cfg->arch == ENG_ARCH_QWEN3;
	return 0;
}

/* A quantized checkpoint, named by its quant_method where it has one. */
static int refuse_quantized(struct cfg_ctx *c, json_t *root)
{
	json_t *q = json_object_get(root, "quantization_config");
	const char *m;

	if (!q || json_is_null(q))
		return 0;
	m = json_string_value(json_object_get(q, "quant_method"));
	return eng_error_set(c->err, ENG_E_UNSUPPORTED, c->path, 0,
			     "key \"quantization_config\": %s%s%s checkpoints are not supported "
			     "(weights must be F32, F16 or BF16; --quantization fp8 quantizes "
			     "those at load)", m ? "quant_method \"" : "quantized", m ? m : "",
			     m ? "\"" : "");
}

int eng_config_parse(json_t *root, const char *path,
		     struct eng_model_config *cfg, struct eng_error *err)
{
	struct cfg_ctx c = { path, err };
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	cfg->bos_id = -1;
	if (!json_is_object(root))
		return eng_error_set(err, ENG_E_FORMAT, path, 0, "not a json object");
	if ((rc = parse_arch(&c, root, cfg)) || (rc = refuse_quantized(&c, root)) ||
	    (rc = parse_sizes(&c, root, cfg)) ||
	    (rc = parse_flags(&c, root, cfg)) ||
	    (rc = parse_rope_scaling(&c, root, cfg)) ||
	    (rc = get_int(&c, root, "bos_token_id", false, -1, 0, &cfg->bos_id)) ||
	    (rc = parse_eos(&c, root, cfg)))
		return rc;
	return 0;
}

/* Integers beyond 64 bits, in keys we do not read, do not stop a load
 * (json_load.h). */
static json_t *load_json(const char *path, struct eng_error *err, int *rc)
{
	json_t *root = NULL;

	*rc = eng_json_load_file(path, JSON_REJECT_DUPLICATES, &root, err);
	return root;
}

int eng_config_load(const char *dir, struct eng_model_config *cfg,
		    struct eng_error *err)
{
	char path[4096];
	json_t *root;
	int rc;

	snprintf(path, sizeof(path), "%s/config.json", dir);
	if (!(root = load_json(path, err, &rc)))
		return rc;
	rc = eng_config_parse(root, path, cfg, err);
	json_decref(root);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/generation_config.json", dir);
	if (access(path, F_OK))
		return 0;
	if (!(root = load_json(path, err, &rc)))
		return rc;
	if (json_is_object(root) && json_object_get(root, "eos_token_id")) {
		struct cfg_ctx c = { path, err };

		cfg->n_eos = 0;
		rc = parse_eos(&c, root, cfg);
	} else if (!json_is_object(root)) {
		rc = eng_error_set(err, ENG_E_FORMAT, path, 0, "not a json object");
	}
	json_decref(root);
	return rc;
}

/* HF computes these in float32; so do we, so that goldens match. */
void eng_config_rope_inv_freq(const struct eng_model_config *cfg, float *out)
{
	const struct eng_rope_scaling *s = &cfg->rope_scaling;
	int i, half = cfg->head_dim / 2;

	for (i = 0; i < half; i++) {
		float e = (float)(2 * i) / (float)cfg->head_dim;
		float inv = 1.0f / (float)pow(cfg->rope_theta, (double)e);

		if (s->type == ENG_ROPE_LINEAR) {
			inv = inv / (float)s->factor;
		} else if (s->type == ENG_ROPE_LLAMA3) {
			float old = (float)s->original_max_positions;
			float low_wl = old / (float)s->low_freq_factor;
			float high_wl = old / (float)s->high_freq_factor;
			float wl = (float)(2.0 * M_PI) / inv;

			if (wl > low_wl) {
				inv = inv / (float)s->factor;
			} else if (wl >= high_wl) {
				float sm = (old / wl - (float)s->low_freq_factor) /
					   (float)(s->high_freq_factor - s->low_freq_factor);
				inv = (1.0f - sm) * inv / (float)s->factor + sm * inv;
			}
		}
		out[i] = inv;
	}
}

const char *eng_arch_name(enum eng_arch arch)
{
	switch (arch) {
	case ENG_ARCH_QWEN2: return "Qwen2ForCausalLM";
	case ENG_ARCH_QWEN3: return "Qwen3ForCausalLM";
	case ENG_ARCH_LLAMA: return "LlamaForCausalLM";
	}
	return "unknown";
}

json_t *eng_config_json(const struct eng_model_config *c)
{
	return json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:b}",
			 "architecture", eng_arch_name(c->arch), "num_hidden_layers", c->n_layers,
			 "hidden_size", c->hidden, "num_attention_heads", c->n_heads,
			 "num_key_value_heads", c->n_kv_heads, "head_dim", c->head_dim,
			 "intermediate_size", c->intermediate, "vocab_size", c->vocab,
			 "tie_word_embeddings", c->tie_embeddings);
}
