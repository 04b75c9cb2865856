/*
 * test-model-config.c: config.json parsing (required keys, types, defaults,
 * rope scaling, eos ids), RoPE llama3 frequencies against hand-computed
 * values, and model loading: single file, shards, tied embeddings, and the
 * errors for a missing tensor, a wrong shape, a bad index, an unknown
 * architecture, each naming the file and the key or tensor.  Qwen3: its
 * defaults (head_dim 128 whatever hidden / heads), Qwen3-8B's config, the
 * q/k norm weights bound and checked like any other tensor.  Integers too
 * large for 64 bits (transformers' model_max_length "no limit") do not stop
 * a load where we do not read them, and name the key where we do.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model_config.h"
#include "engine/model.h"
#include "engine/chat.h"
#include "tests/tap.h"
#include "tests/test-model-helper.h"

static const char *const base_cfg =
	"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,"
	"\"intermediate_size\":96,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
	"\"vocab_size\":100,\"rms_norm_eps\":1e-5}";

/* Parses base_cfg with key set to json_value (NULL: key removed). */
static int parse_with(const char *key, const char *json_value, struct eng_model_config *c,
		      struct eng_error *err)
{
	json_t *root = json_loads(base_cfg, 0, NULL);
	int rc;

	if (json_value)
		json_object_set_new(root, key, json_loads(json_value, JSON_DECODE_ANY, NULL));
	else
		json_object_del(root, key);
	rc = eng_config_parse(root, "dir/config.json", c, err);
	json_decref(root);
	return rc;
}

static void check_parse(void)
{
	struct eng_model_config c;
	struct eng_error err;
	static const struct { const char *key, *val; int code; const char *want; } bad[] = {
		{ "hidden_size", NULL, ENG_E_FORMAT, "\"hidden_size\": missing" },
		{ "hidden_size", "\"64\"", ENG_E_FORMAT,
		  "\"hidden_size\" must be an integer in [1, 1073741824], not a string" },
		{ "hidden_size", "4294967360", ENG_E_FORMAT,
		  "\"hidden_size\" must be an integer in [1, 1073741824], not 4294967360" },
		{ "num_hidden_layers", "0", ENG_E_FORMAT, "\"num_hidden_layers\"" },
		{ "rms_norm_eps", NULL, ENG_E_FORMAT, "\"rms_norm_eps\": missing" },
		{ "rms_norm_eps", "true", ENG_E_FORMAT, "\"rms_norm_eps\"" },
		{ "num_key_value_heads", "3", ENG_E_FORMAT, "does not divide" },
		{ "tie_word_embeddings", "1", ENG_E_FORMAT, "\"tie_word_embeddings\": not a boolean" },
		{ "architectures", "[\"GPT2LMHeadModel\"]", ENG_E_UNSUPPORTED, "GPT2LMHeadModel" },
		{ "architectures", "\"LlamaForCausalLM\"", ENG_E_FORMAT, "\"architectures\"" },
		{ "hidden_act", "\"gelu\"", ENG_E_UNSUPPORTED, "silu" },
		{ "rope_scaling", "{\"rope_type\":\"yarn\",\"factor\":4}", ENG_E_UNSUPPORTED, "yarn" },
		{ "rope_scaling", "{\"rope_type\":\"llama3\",\"factor\":8}", ENG_E_FORMAT,
		  "rope_scaling.low_freq_factor" },
		{ "eos_token_id", "\"x\"", ENG_E_FORMAT, "\"eos_token_id\"" },
		{ "eos_token_id", "1099511627776", ENG_E_FORMAT,
		  "\"eos_token_id\" must be an integer in [0, 1073741824], not 1099511627776" },
		{ "eos_token_id", "-1", ENG_E_FORMAT, "\"eos_token_id\" must be an integer" },
		{ "eos_token_id", "[2, 1099511627776]", ENG_E_FORMAT,
		  "\"eos_token_id[1]\" must be an integer in [0, 1073741824], not 1099511627776" },
		{ "eos_token_id", "[1,2,3,4,5,6,7,8,9]", ENG_E_FORMAT, "more than 8" },
		{ "head_dim", "7", ENG_E_FORMAT, "\"head_dim\": not even" },
	};
	size_t i;

	tap_ok(parse_with("x", "null", &c, &err) == 0 && c.arch == ENG_ARCH_LLAMA &&
	       c.n_kv_heads == 4 && c.head_dim == 16 && c.rope_theta == 10000 &&
	       c.max_positions == 2048 && !c.tie_embeddings && !c.qkv_bias &&
	       c.rope_scaling.type == ENG_ROPE_DEFAULT && c.n_eos == 0 && c.bos_id == -1,
	       "a minimal llama config gets HF's defaults");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse_with(bad[i].key, bad[i].val, &c, &err);

		tap_ok(rc == bad[i].code && strstr(err.msg, bad[i].want) &&
		       !strcmp(err.file, "dir/config.json"),
		       "%s = %s is refused: %s: %s", bad[i].key, bad[i].val ? bad[i].val : "(absent)",
		       err.file, err.msg);
	}
	tap_ok(parse_with("rope_scaling", "null", &c, &err) == 0 &&
	       c.rope_scaling.type == ENG_ROPE_DEFAULT, "rope_scaling null is no scaling");
	tap_ok(parse_with("eos_token_id", "[128001, 128009]", &c, &err) == 0 && c.n_eos == 2 &&
	       c.eos_ids[1] == 128009, "eos_token_id may be a list");
	tap_ok(parse_with("architectures", "[\"Qwen2ForCausalLM\"]", &c, &err) == 0 && c.qkv_bias &&
	       !c.o_bias && c.max_positions == 32768, "qwen2 has q/k/v bias, no o bias");
}

/* Qwen3-8B's config.json as published (keys the engine reads, and some it
 * does not). */
static const char *const qwen3_8b_cfg =
	"{\"architectures\":[\"Qwen3ForCausalLM\"],\"attention_bias\":false,"
	"\"attention_dropout\":0.0,\"bos_token_id\":151643,\"eos_token_id\":151645,"
	"\"head_dim\":128,\"hidden_act\":\"silu\",\"hidden_size\":4096,"
	"\"initializer_range\":0.02,\"intermediate_size\":12288,"
	"\"max_position_embeddings\":40960,\"max_window_layers\":36,\"model_type\":\"qwen3\","
	"\"num_attention_heads\":32,\"num_hidden_layers\":36,\"num_key_value_heads\":8,"
	"\"rms_norm_eps\":1e-06,\"rope_scaling\":null,\"rope_theta\":1000000,"
	"\"sliding_window\":null,\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\","
	"\"transformers_version\":\"4.51.0\",\"use_cache\":true,\"use_sliding_window\":false,"
	"\"vocab_size\":151936}";

static void check_parse_qwen3(void)
{
	json_t *root = json_loads(qwen3_8b_cfg, 0, NULL);
	struct eng_model_config c;
	struct eng_error err;
	int rc = eng_config_parse(root, "dir/config.json", &c, &err);

	tap_ok(rc == 0 && c.arch == ENG_ARCH_QWEN3 && c.n_layers == 36 && c.hidden == 4096 &&
	       c.n_heads == 32 && c.n_kv_heads == 8 && c.head_dim == 128 &&
	       c.intermediate == 12288 && c.vocab == 151936 && c.max_positions == 40960 &&
	       c.rope_theta == 1e6 && c.rms_eps == 1e-6 && !c.tie_embeddings && c.qk_norm &&
	       !c.qkv_bias && !c.o_bias && !c.mlp_bias && c.bos_id == 151643 &&
	       c.n_eos == 1 && c.eos_ids[0] == 151645 &&
	       !strcmp(eng_arch_name(c.arch), "Qwen3ForCausalLM"),
	       "Qwen3-8B's config.json: sizes, q/k norm, no biases");
	json_decref(root);
	root = json_loads(base_cfg, 0, NULL);
	json_object_set_new(root, "architectures", json_pack("[s]", "Qwen3ForCausalLM"));
	json_object_set_new(root, "mlp_bias", json_true());
	json_object_set_new(root, "attention_bias", json_true());
	rc = eng_config_parse(root, "dir/config.json", &c, &err);
	tap_ok(rc == 0 && c.head_dim == 128 && c.hidden / c.n_heads == 16 && c.qkv_bias &&
	       c.o_bias && !c.mlp_bias && c.max_positions == 32768 && c.qk_norm,
	       "qwen3 without head_dim gets HF's 128 (not hidden / heads); attention_bias "
	       "covers q, k, v, o; no mlp bias");
	json_object_set_new(root, "hidden_size", json_integer(66));
	json_object_set_new(root, "use_sliding_window", json_true());
	rc = eng_config_parse(root, "dir/config.json", &c, &err);
	tap_ok(rc == ENG_E_UNSUPPORTED && strstr(err.msg, "use_sliding_window"),
	       "qwen3 with use_sliding_window is refused: %s", err.msg);
	json_object_set_new(root, "use_sliding_window", json_false());
	json_object_set_new(root, "head_dim", json_integer(9));
	rc = eng_config_parse(root, "dir/config.json", &c, &err);
	tap_ok(rc == ENG_E_FORMAT && strstr(err.msg, "\"head_dim\": not even"),
	       "qwen3 with an odd head_dim is refused: %s", err.msg);
	json_decref(root);
}

static void check_llama3_inv_freq(void)
{
	struct eng_model_config c;
	struct eng_error err;
	static const struct { int i; double want; } hand[] = {
		{ 0, 1.0 },                       /* high frequency: unchanged */
		{ 20, 0.016560440080994446 },     /* wavelength 379 < 2048: unchanged */
		{ 30, 0.0013718935677611381 },    /* wavelength 2948: smoothed */
		{ 40, 3.428102195952591e-05 },    /* wavelength 22911 > 8192: / 8 */
		{ 63, 3.068925988914511e-07 },
	};
	float inv[64];
	double worst = 0;
	size_t k;
	int rc = parse_with("rope_scaling",
			    "{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,"
			    "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}",
			    &c, &err);

	c.rope_theta = 500000;
	c.head_dim = 128;
	if (!rc)
		eng_config_rope_inv_freq(&c, inv);
	for (k = 0; !rc && k < sizeof(hand) / sizeof(hand[0]); k++) {
		double e = fabs(inv[hand[k].i] - hand[k].want) / hand[k].want;

		worst = e > worst ? e : worst;
	}
	tap_ok(!rc && c.rope_scaling.type == ENG_ROPE_LLAMA3 && worst < 1e-6,
	       "llama3 inv_freq (theta 5e5, d 128, factor 8, 1, 4, 8192) matches hand values (rel err %.2g)",
	       worst);
	c.rope_scaling.type = ENG_ROPE_DEFAULT;
	eng_config_rope_inv_freq(&c, inv);
	tap_ok(fabs(inv[30] - 0.0021311195369119653) / 0.0021311195369119653 < 1e-6,
	       "default inv_freq[30] = theta^(-60/128)");
}

static const char *path_in(const char *dir, const char *name)
{
	static char p[4096];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

/* Writes spec into a fresh dir; returns it (free + rmtree by caller). */
static char *model_dir(struct tm_spec s)
{
	char *d = tm_mkdtemp("cfg");

	if (d && tm_write_model(d, &s, NULL)) {
		tm_rmtree(d);
		free(d);
		return NULL;
	}
	return d;
}

static void expect_load_error(const char *dir, int code, const char *file, const char *want,
			      const char *what)
{
	struct eng_model *m = NULL;
	struct eng_error err;
	int rc = eng_model_load(dir, &m, &err);

	tap_ok(rc == code && !m && strstr(err.file, file) && strstr(err.msg, want),
	       "%s: %s: %s", what, err.file, err.msg);
	eng_model_free(m);
}

static void check_load_ok(void)
{
	struct tm_spec s = tm_spec_qwen2();
	struct eng_model *m = NULL;
	struct eng_error err;
	char *d;

	s.tie = true;
	s.n_shards = 3;
	s.dtype = ENG_DTYPE_BF16;
	d = model_dir(s);
	tm_write_text(d, "generation_config.json", "{\"eos_token_id\":[2,5]}");
	tap_ok(d && eng_model_load(d, &m, &err) == 0, "a sharded, tied bf16 qwen2 loads");
	if (m) {
		const struct eng_model_config *c = eng_model_config(m);
		const struct eng_model_weights *w = eng_model_weights(m);

		tap_ok(c->n_layers == 2 && c->hidden == 32 && c->n_kv_heads == 2 && c->head_dim == 8 &&
		       c->vocab == 97 && c->qkv_bias && c->tie_embeddings && c->n_eos == 2 &&
		       c->eos_ids[1] == 5 && c->bos_id == 1,
		       "config accessors (eos ids from generation_config.json)");
		tap_ok(w->lm_head.data == w->embed.data && w->layers[1].bq.data &&
		       !w->layers[1].bo.data && w->layers[0].wk.rows == 16 &&
		       w->layers[0].wk.cols == 32 && w->embed.dtype == ENG_DTYPE_BF16,
		       "weights: tied lm_head, q bias, no o bias, shapes");
		tap_ok(eng_model_weight_bytes(m) > 0 && !strcmp(eng_model_dir(m), d),
		       "weight bytes and dir");
	}
	eng_model_free(m);
	tm_rmtree(d);
	free(d);
}

static void check_load_qwen3(void)
{
	struct tm_spec s = tm_spec_qwen3();
	struct eng_model *m = NULL;
	struct eng_error err;
	char *d = model_dir(s), *t;

	tap_ok(d && eng_model_load(d, &m, &err) == 0, "a qwen3 model loads");
	if (m) {
		const struct eng_model_config *c = eng_model_config(m);
		const struct eng_layer_weights *L = &eng_model_weights(m)->layers[1];

		tap_ok(c->arch == ENG_ARCH_QWEN3 && c->head_dim == 12 && c->hidden == 40 &&
		       c->qk_norm && L->q_norm.data && L->k_norm.data && L->q_norm.rows == 1 &&
		       L->q_norm.cols == 12 && L->k_norm.cols == 12 && L->wq.rows == 48 &&
		       L->wk.rows == 24 && L->wo.cols == 48 && !L->bq.data && !L->bo.data,
		       "qwen3 weights: q/k norms of head_dim, q/k/o of heads x head_dim, no biases");
	}
	eng_model_free(m);
	/* Qwen3 config over weights without norms: a Llama of the same shape */
	s.arch = ENG_ARCH_LLAMA;
	t = model_dir(s);
	s.arch = ENG_ARCH_QWEN3;
	tm_write_config(t, &s);
	expect_load_error(t, ENG_E_FORMAT, "model.safetensors",
			  "\"model.layers.0.self_attn.q_norm.weight\": missing",
			  "qwen3 weights without q_norm");
	/* the same q and kv widths with another head_dim: only the norms differ */
	s = tm_spec_qwen3();
	s.head_dim = 8;
	s.n_heads = 6;
	s.n_kv_heads = 3;
	tm_write_config(d, &s);
	expect_load_error(d, ENG_E_FORMAT, "model.safetensors",
			  "\"model.layers.0.self_attn.q_norm.weight\": shape [12] but the config implies [8]",
			  "a q_norm of the wrong head_dim");
	tm_rmtree(t);
	free(t);
	tm_rmtree(d);
	free(d);
}

static void check_load_errors(void)
{
	struct tm_spec s = tm_spec_llama();
	char *d = model_dir(s);

	if (!d) {
		tap_ok(0, "write a model");
		return;
	}
	/* lm_head missing: write the tied model's files under an untied config */
	s.tie = true;
	{
		char *t = model_dir(s);

		s.tie = false;
		tm_write_config(t, &s);
		expect_load_error(t, ENG_E_FORMAT, "model.safetensors", "\"lm_head.weight\": missing",
				  "a missing tensor");
		/* wrong shape: a config that wants more layers' intermediate */
		s.intermediate = 81;
		tm_write_config(t, &s);
		expect_load_error(t, ENG_E_FORMAT, "model.safetensors",
				  "\"model.layers.0.mlp.gate_proj.weight\": shape [80, 48]",
				  "a wrong shape");
		s = tm_spec_llama();
		tm_rmtree(t);
		free(t);
	}
	tm_write_text(d, "config.json", "{\"architectures\":[\"MistralForCausalLM\"]}");
	expect_load_error(d, ENG_E_UNSUPPORTED, "config.json", "MistralForCausalLM",
			  "an unknown architecture");
	tm_write_text(d, "config.json", "{\"architectures\":[\"LlamaForCausalLM\"], \"hidden_size\":");
	expect_load_error(d, ENG_E_FORMAT, "config.json", "", "a config that is not json");
	remove(path_in(d, "config.json"));
	expect_load_error(d, ENG_E_IO, "config.json", "", "a missing config.json");
	tm_write_config(d, &s);
	tm_write_text(d, "model.safetensors.index.json",
		      "{\"weight_map\":{\"model.norm.weight\":\"../x.safetensors\"}}");
	expect_load_error(d, ENG_E_FORMAT, "index.json", "not a file name", "an index escaping the dir");
	tm_write_text(d, "model.safetensors.index.json",
		      "{\"weight_map\":{\"model.norm.weight\":\"model-00009-of-00009.safetensors\"}}");
	expect_load_error(d, ENG_E_IO, "model-00009-of-00009.safetensors", "cannot open",
			  "an index naming an absent shard");
	tm_write_text(d, "model.safetensors.index.json",
		      "{\"weight_map\":{\"model.norm.weight\":\"model.safetensors\"}}");
	expect_load_error(d, ENG_E_FORMAT, "index.json", "\"model.embed_tokens.weight\": missing",
			  "a tensor the index does not place");
	remove(path_in(d, "model.safetensors.index.json"));
	tm_write_file(path_in(d, "model.safetensors"), "\x10\0\0\0\0\0\0\0{}", 10);
	expect_load_error(d, ENG_E_FORMAT, "model.safetensors", "past the end", "a truncated weights file");
	tm_rmtree(d);
	free(d);
}

#define HUGE_INT "1000000000000000019884624838656"

/* config.json, generation_config.json and tokenizer_config.json as real
 * model directories write them, with numbers beyond 64 bits. */
static void check_huge_ints(void)
{
	struct tm_spec s = tm_spec_llama();
	char *d = model_dir(s);
	struct eng_model_config c;
	struct eng_chat_spec spec;
	struct eng_error err;
	char cfg[1024];

	if (!d) {
		tap_ok(0, "write a model");
		return;
	}
	snprintf(cfg, sizeof(cfg), "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,"
		 "\"intermediate_size\":96,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
		 "\"vocab_size\":100,\"rms_norm_eps\":1e-5,\"eos_token_id\":[7,9],"
		 "\"max_length_unused\":%s}", HUGE_INT);
	tm_write_text(d, "config.json", cfg);
	tm_write_text(d, "generation_config.json", "{\"eos_token_id\":3,\"max_new\":" HUGE_INT "}");
	tm_write_text(d, "tokenizer_config.json",
		      "{\"model_max_length\":" HUGE_INT ",\"chat_template\":"
		      "\"{{'<|im_start|>' + message['role'] + '\\\\n'}}\"}");
	tap_ok(eng_config_load(d, &c, &err) == 0 && c.hidden == 64 && c.n_eos == 1 &&
	       c.eos_ids[0] == 3, "config.json and generation_config.json with a 1e30 integer load");
	tap_ok(eng_chat_spec_from_dir(d, NULL, &spec, &err) == 0 && spec.kind == ENG_CHAT_CHATML,
	       "tokenizer_config.json with model_max_length 1e30 loads");
	snprintf(cfg, sizeof(cfg), "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":%s,"
		 "\"intermediate_size\":96,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
		 "\"vocab_size\":100,\"rms_norm_eps\":1e-5}", HUGE_INT);
	tm_write_text(d, "config.json", cfg);
	tap_ok(eng_config_load(d, &c, &err) == ENG_E_FORMAT && strstr(err.msg, "\"hidden_size\""),
	       "a 1e30 integer where we read one names the key: %s", err.msg);
	tm_rmtree(d);
	free(d);
}

int main(void)
{
	check_parse();
	check_parse_qwen3();
	check_llama3_inv_freq();
	check_load_ok();
	check_load_qwen3();
	check_load_errors();
	check_huge_ints();
	return tap_done();
}
