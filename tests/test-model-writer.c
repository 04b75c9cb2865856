/*
 * test-model-writer: models written by tools/modelgen/model_writer, read back with
 * a minimal safetensors parser of this file's own (header length, JSON
 * header via jansson, offsets, sizes, dtypes) and values regenerated from
 * the seed and converted here; config.json keys; tokenizer files; sharding;
 * byte-identical output for the same parameters; refusal to clobber.
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "tools/modelgen/model_writer.h"
#include "tests/tap.h"

static char scratch[] = "/tmp/test-model-writer-XXXXXX";

static char *path_of(const char *dir, const char *name)
{
	static char buf[4][4096];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s/%s", scratch, dir, name);
	return buf[k];
}

static unsigned char *slurp(const char *path, size_t *len)
{
	return (unsigned char *)tap_slurp(path, len);
}

static int same_file(const char *a, const char *b)
{
	size_t la = 0, lb = 0;
	unsigned char *x = slurp(a, &la), *y = slurp(b, &lb);
	int same = x && y && la == lb && memcmp(x, y, la) == 0;

	free(x);
	free(y);
	return same;
}

static int write_model(struct mw_params *p, const char *dir)
{
	struct eng_error err;
	char full[4096];
	int rc;

	snprintf(full, sizeof(full), "%s/%s", scratch, dir);
	rc = mw_write(p, full, NULL, &err);
	if (rc < 0)
		tap_diag("%s: %s", err.file, err.msg);
	return rc;
}

/* ---------------------------------------------------------------- safetensors */

struct st_file {
	unsigned char *data;
	size_t len;
	json_t *header;
	size_t data_start;
};

/* Parses the 8-byte length and the JSON header; checks alignment, that the
 * tensors tile the data area exactly, and dtype sizes. */
static int st_open(const char *path, struct st_file *f)
{
	uint64_t hlen = 0, end = 0, sum = 0;
	const char *name;
	json_t *t;

	memset(f, 0, sizeof(*f));
	if (!(f->data = slurp(path, &f->len)) || f->len < 8)
		return -1;
	for (int i = 0; i < 8; i++)
		hlen |= (uint64_t)f->data[i] << (8 * i);
	if (hlen % 8 || 8 + hlen > f->len)
		return -1;
	f->data_start = 8 + hlen;
	if (!(f->header = json_loadb((char *)f->data + 8, hlen, 0, NULL)))
		return -1;
	json_object_foreach(f->header, name, t) {
		json_t *off = json_object_get(t, "data_offsets"), *shape = json_object_get(t, "shape");
		const char *dt = json_string_value(json_object_get(t, "dtype"));
		uint64_t numel = 1, esz;
		size_t i;
		json_t *d;

		if (!strcmp(name, "__metadata__"))
			continue;
		esz = dt && !strcmp(dt, "F32") ? 4 : 2;
		json_array_foreach(shape, i, d)
			numel *= (uint64_t)json_integer_value(d);
		if ((uint64_t)(json_integer_value(json_array_get(off, 1)) -
			       json_integer_value(json_array_get(off, 0))) != numel * esz)
			return -1;
		if ((uint64_t)json_integer_value(json_array_get(off, 1)) > end)
			end = (uint64_t)json_integer_value(json_array_get(off, 1));
		sum += numel * esz;
	}
	return sum == end && f->data_start + end == f->len ? 0 : -1;
}

static void st_close(struct st_file *f)
{
	free(f->data);
	json_decref(f->header);
}

static const unsigned char *st_tensor(const struct st_file *f, const char *name, long long *r,
				      long long *c)
{
	json_t *t = json_object_get(f->header, name), *shape = json_object_get(t, "shape");

	if (!t)
		return NULL;
	*r = json_integer_value(json_array_get(shape, 0));
	*c = json_array_size(shape) == 2 ? json_integer_value(json_array_get(shape, 1)) : 1;
	return f->data + f->data_start +
	       json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 0));
}

/* Independent conversions: bf16 is the top half of the rounded f32. */
static uint16_t to_bf16(float x)
{
	uint32_t u;

	memcpy(&u, &x, 4);
	return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static float from_f16(uint16_t h)
{
	int e = (h >> 10) & 31, m = h & 1023;
	float v = e ? ldexpf(1.0f + m / 1024.0f, e - 15) : ldexpf((float)m, -24);

	return h & 0x8000 ? -v : v;
}

/* ---------------------------------------------------------------- checks */

static const char *layer_names[] = {
	"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.q_proj.bias",
	"self_attn.k_proj.weight", "self_attn.k_proj.bias", "self_attn.v_proj.weight",
	"self_attn.v_proj.bias", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
	"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
};
/* shapes for hidden 64, q_dim 64, kv_dim 32, intermediate 128 */
static const long long layer_shapes[][2] = {
	{ 64, 1 }, { 64, 64 }, { 64, 1 }, { 32, 64 }, { 32, 1 }, { 32, 64 }, { 32, 1 },
	{ 64, 64 }, { 64, 1 }, { 128, 64 }, { 128, 64 }, { 64, 128 },
};

/* Every tensor of the tiny shape is there with its HF shape; biases only
 * when has_bias. */
static int check_names(const struct st_file *f, long vocab, int has_bias, int tied)
{
	int ok = 1, n = 3 - tied;
	long long r, c;
	char name[128];

	ok &= st_tensor(f, "model.embed_tokens.weight", &r, &c) && r == vocab && c == 64;
	ok &= st_tensor(f, "model.norm.weight", &r, &c) && r == 64 && c == 1;
	ok &= tied ? !st_tensor(f, "lm_head.weight", &r, &c)
		   : st_tensor(f, "lm_head.weight", &r, &c) && r == vocab && c == 64;
	for (int l = 0; l < 2; l++)
		for (int i = 0; i < 12; i++) {
			int bias = strstr(layer_names[i], "bias") != NULL;

			snprintf(name, sizeof(name), "model.layers.%d.%s", l, layer_names[i]);
			if (bias && !has_bias) {
				ok &= !st_tensor(f, name, &r, &c);
				continue;
			}
			ok &= st_tensor(f, name, &r, &c) && r == layer_shapes[i][0] &&
			      c == layer_shapes[i][1];
			n++;
		}
	return ok && json_object_size(f->header) == (size_t)n + 1;
}

/* The stored values of every tensor equal the regenerated ones, converted
 * by this test; also returns the std of one tensor for a sanity check. */
static int check_values(const struct st_file *f, const struct mw_params *p,
			const char *dtype)
{
	const char *name;
	json_t *t;
	int ok = 1;

	json_object_foreach(f->header, name, t) {
		struct mw_init init;
		long long r, c;
		const unsigned char *d;
		float *v;

		if (!strcmp(name, "__metadata__"))
			continue;
		d = st_tensor(f, name, &r, &c);
		ok &= !strcmp(json_string_value(json_object_get(t, "dtype")), dtype);
		if (mw_tensor_init(p, name, &init) < 0 || !(v = malloc(r * c * sizeof(float))))
			return 0;
		mw_tensor_values(p->seed, name, init, v, (size_t)(r * c));
		for (long long i = 0; ok && i < r * c; i++) {
			uint16_t h;
			float x;

			memcpy(&h, d + 2 * i, 2);
			if (!strcmp(dtype, "F32")) {
				memcpy(&x, d + 4 * i, 4);
				ok = x == v[i];
			} else if (!strcmp(dtype, "F16")) {
				ok = fabsf(from_f16(h) - v[i]) <= fabsf(v[i]) * 1e-3f + 1e-7f;
			} else {
				ok = h == to_bf16(v[i]);
			}
			if (!ok)
				tap_diag("%s[%lld] differs", name, i);
		}
		free(v);
	}
	return ok;
}

/* Standard deviation of a bf16 tensor. */
static double bf16_std(const struct st_file *f, const char *name, double *mean)
{
	long long r, c;
	const unsigned char *d = st_tensor(f, name, &r, &c);
	double s = 0, s2 = 0;

	for (long long i = 0; d && i < r * c; i++) {
		uint16_t h;
		uint32_t u;
		float x;

		memcpy(&h, d + 2 * i, 2);
		u = (uint32_t)h << 16;
		memcpy(&x, &u, 4);
		s += x;
		s2 += (double)x * x;
	}
	*mean = s / (double)(r * c);
	return sqrt(s2 / (double)(r * c) - *mean * *mean);
}

static json_t *load_json(const char *dir, const char *name)
{
	return json_load_file(path_of(dir, name), 0, NULL);
}

static int has_keys(json_t *o, const char *const *keys)
{
	for (; *keys; keys++)
		if (!json_object_get(o, *keys)) {
			tap_diag("missing key %s", *keys);
			return 0;
		}
	return 1;
}

static const char *const common_keys[] = {
	"architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
	"num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta",
	"rope_scaling", "max_position_embeddings", "vocab_size", "tie_word_embeddings",
	"torch_dtype", "bos_token_id", "eos_token_id", "hidden_act", NULL,
};
static const char *const files[] = {
	"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
	"tokenizer_config.json", NULL,
};

/* ---------------------------------------------------------------- tests */

static void test_tiny_qwen2(void)
{
	struct mw_params p = mw_default_params();
	struct st_file f;
	json_t *cfg, *tok, *tc;
	double mean, sd;
	int same = 1;

	tap_ok(write_model(&p, "q1") == 0, "tiny qwen2 written");
	tap_ok(st_open(path_of("q1", "model.safetensors"), &f) == 0,
	       "model.safetensors: aligned header, tensors tile the data exactly");
	tap_ok(check_names(&f, 640, 1, 0), "27 tensors with HF names and [out, in] shapes");
	tap_ok(!strcmp(json_string_value(json_object_get(json_object_get(f.header, "__metadata__"),
							 "format")) ?: "", "pt"), "metadata format pt");
	tap_ok(check_values(&f, &p, "BF16"), "every bf16 value regenerates from the seed");
	sd = bf16_std(&f, "model.embed_tokens.weight", &mean);
	tap_ok(fabs(sd - 0.5) < 0.05 && fabs(mean) < 0.02, "embedding std %.3f (4/sqrt(64))", sd);
	sd = bf16_std(&f, "model.layers.1.self_attn.q_proj.weight", &mean);
	tap_ok(fabs(sd - 0.125) < 0.015, "q_proj std %.4f (1/sqrt(64))", sd);
	sd = bf16_std(&f, "model.layers.0.post_attention_layernorm.weight", &mean);
	tap_ok(fabs(mean - 1) < 0.01 && sd < 0.04, "norm weights near 1 (mean %.4f)", mean);
	st_close(&f);

	cfg = load_json("q1", "config.json");
	tap_ok(cfg && has_keys(cfg, common_keys) && json_is_false(json_object_get(cfg, "use_sliding_window")),
	       "config.json has Qwen2Config's keys");
	tap_ok(json_integer_value(json_object_get(cfg, "vocab_size")) == 640 &&
	       json_integer_value(json_object_get(cfg, "bos_token_id")) == 512 &&
	       json_integer_value(json_object_get(cfg, "eos_token_id")) == 514 &&
	       !strcmp(json_string_value(json_object_get(cfg, "model_type")) ?: "", "qwen2"),
	       "vocab 640 (515 ids rounded up to 128), bos <|endoftext|>, eos <|im_end|>");
	tok = load_json("q1", "tokenizer.json");
	tap_ok(json_object_size(json_object_get(json_object_get(tok, "model"), "vocab")) == 512 &&
	       json_array_size(json_object_get(tok, "added_tokens")) == 3,
	       "tokenizer.json: 512 BPE tokens and 3 special tokens");
	tc = load_json("q1", "tokenizer_config.json");
	tap_ok(strstr(json_string_value(json_object_get(tc, "chat_template")) ?: "", "<|im_start|>") &&
	       !strcmp(json_string_value(json_object_get(tc, "eos_token")) ?: "", "<|im_end|>") &&
	       json_object_get(json_object_get(tc, "added_tokens_decoder"), "514"),
	       "tokenizer_config.json: ChatML template, eos, added_tokens_decoder");
	json_decref(cfg);
	json_decref(tok);
	json_decref(tc);

	tap_ok(write_model(&p, "q2") == 0, "written again");
	for (int i = 0; files[i]; i++)
		same &= same_file(path_of("q1", files[i]), path_of("q2", files[i]));
	tap_ok(same, "the same parameters give byte-identical files");
	p.seed = 1;
	write_model(&p, "q3");
	tap_ok(!same_file(path_of("q1", "model.safetensors"), path_of("q3", "model.safetensors")) &&
	       same_file(path_of("q1", "tokenizer.json"), path_of("q3", "tokenizer.json")),
	       "another seed changes the weights, not the tokenizer");
}

static void test_tiny_llama(void)
{
	struct mw_params p = mw_default_params();
	struct st_file f;
	json_t *cfg, *tc;

	mw_preset("tiny-llama", &p);
	p.dtype = MW_DTYPE_F32;
	tap_ok(write_model(&p, "l1") == 0, "tiny llama (f32) written");
	tap_ok(st_open(path_of("l1", "model.safetensors"), &f) == 0, "its safetensors parse");
	tap_ok(check_names(&f, 640, 0, 1), "no biases, no lm_head (tied)");
	tap_ok(check_values(&f, &p, "F32"), "f32 values equal the regenerated ones");
	st_close(&f);
	cfg = load_json("l1", "config.json");
	tap_ok(cfg && has_keys(cfg, common_keys) &&
	       json_is_false(json_object_get(cfg, "attention_bias")) &&
	       json_is_true(json_object_get(cfg, "tie_word_embeddings")) &&
	       !strcmp(json_string_value(json_object_get(json_object_get(cfg, "rope_scaling"),
							 "rope_type")) ?: "", "llama3") &&
	       !strcmp(json_string_value(json_object_get(cfg, "torch_dtype")) ?: "", "float32"),
	       "config.json: LlamaConfig keys, llama3 rope scaling, tied, float32");
	tap_ok(json_integer_value(json_object_get(cfg, "bos_token_id")) == 512 &&
	       json_integer_value(json_object_get(cfg, "eos_token_id")) == 516,
	       "bos <|begin_of_text|> 512, eos <|eot_id|> 516");
	tc = load_json("l1", "tokenizer_config.json");
	tap_ok(strstr(json_string_value(json_object_get(tc, "chat_template")) ?: "",
		      "<|start_header_id|>") &&
	       !strcmp(json_string_value(json_object_get(tc, "bos_token")) ?: "", "<|begin_of_text|>"),
	       "Llama 3 chat template and bos token");
	json_decref(cfg);
	json_decref(tc);
}

/* The tensors of qwen3-tiny: hidden 64, 4 heads of 32 (q_dim 128), 2 kv
 * heads (kv_dim 64), intermediate 128; no biases; tied. */
static int check_qwen3_names(const struct st_file *f, long vocab)
{
	static const struct { const char *sfx; long long r, c; } t[] = {
		{ "input_layernorm.weight", 64, 1 }, { "self_attn.q_proj.weight", 128, 64 },
		{ "self_attn.k_proj.weight", 64, 64 }, { "self_attn.v_proj.weight", 64, 64 },
		{ "self_attn.o_proj.weight", 64, 128 }, { "self_attn.q_norm.weight", 32, 1 },
		{ "self_attn.k_norm.weight", 32, 1 }, { "post_attention_layernorm.weight", 64, 1 },
		{ "mlp.gate_proj.weight", 128, 64 }, { "mlp.up_proj.weight", 128, 64 },
		{ "mlp.down_proj.weight", 64, 128 },
	};
	int ok = 1, n = 2;
	long long r, c;
	char name[128];

	ok &= st_tensor(f, "model.embed_tokens.weight", &r, &c) && r == vocab && c == 64;
	ok &= !st_tensor(f, "lm_head.weight", &r, &c);
	for (int l = 0; l < 2; l++)
		for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++, n++) {
			snprintf(name, sizeof(name), "model.layers.%d.%s", l, t[i].sfx);
			if (!st_tensor(f, name, &r, &c) || r != t[i].r || c != t[i].c) {
				tap_diag("%s: missing or [%lld, %lld]", name, r, c);
				ok = 0;
			}
		}
	return ok && json_object_size(f->header) == (size_t)n + 1;
}

/* The chat template is Qwen3's own: the shared data's copy when there is
 * one, else its markers. */
static int is_qwen3_template(const char *tpl)
{
	const char *top = getenv("top_srcdir");
	char path[4096];
	size_t len;
	char *want;
	int ok;

	snprintf(path, sizeof(path), "%s/../shared/data/chat-templates/qwen3.jinja",
		 top ? top : "..");
	if (!(want = (char *)slurp(path, &len)))
		return strstr(tpl, "reasoning_content") && strstr(tpl, "enable_thinking") &&
		       strstr(tpl, "<tool_response>");
	ok = strlen(tpl) == len && !memcmp(tpl, want, len);
	free(want);
	return ok;
}

static void test_tiny_qwen3(void)
{
	struct mw_params p = mw_default_params();
	struct st_file f;
	json_t *cfg, *tok, *tc, *dec, *added, *last;
	double mean, sd;

	mw_preset("qwen3-tiny", &p);
	p.seed = 3;
	tap_ok(write_model(&p, "w1") == 0, "qwen3-tiny written");
	tap_ok(st_open(path_of("w1", "model.safetensors"), &f) == 0, "its safetensors parse");
	tap_ok(check_qwen3_names(&f, 640),
	       "24 tensors: q/k norms of head_dim 32, q/o of 4 x 32, no biases, no lm_head");
	tap_ok(check_values(&f, &p, "BF16"), "every value, q/k norms included, regenerates");
	sd = bf16_std(&f, "model.layers.1.self_attn.k_norm.weight", &mean);
	tap_ok(fabs(mean - 1) < 0.2 && sd > 0.15 && sd < 0.45,
	       "k_norm weights 1 +- 0.3 (mean %.3f, std %.3f)", mean, sd);
	st_close(&f);
	cfg = load_json("w1", "config.json");
	tap_ok(cfg && has_keys(cfg, common_keys) &&
	       !strcmp(json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0))
		       ?: "", "Qwen3ForCausalLM") &&
	       !strcmp(json_string_value(json_object_get(cfg, "model_type")) ?: "", "qwen3") &&
	       json_integer_value(json_object_get(cfg, "head_dim")) == 32 &&
	       json_integer_value(json_object_get(cfg, "hidden_size")) == 64 &&
	       json_is_false(json_object_get(cfg, "attention_bias")) &&
	       json_is_null(json_object_get(cfg, "sliding_window")) &&
	       json_is_false(json_object_get(cfg, "use_sliding_window")) &&
	       !json_object_get(cfg, "mlp_bias") &&
	       json_is_true(json_object_get(cfg, "tie_word_embeddings")),
	       "config.json: Qwen3Config's keys, head_dim 32 != 64 / 4, no attention bias");
	tap_ok(json_integer_value(json_object_get(cfg, "bos_token_id")) == 512 &&
	       json_integer_value(json_object_get(cfg, "eos_token_id")) == 514,
	       "bos <|endoftext|> 512, eos <|im_end|> 514");
	tok = load_json("w1", "tokenizer.json");
	added = json_object_get(tok, "added_tokens");
	last = json_array_get(added, 8);
	tap_ok(json_array_size(added) == 9 &&
	       !strcmp(json_string_value(json_object_get(last, "content")) ?: "", "</think>") &&
	       json_is_false(json_object_get(last, "special")),
	       "tokenizer.json: 3 special tokens, then <tool_call> .. </think> not special");
	tc = load_json("w1", "tokenizer_config.json");
	dec = json_object_get(tc, "added_tokens_decoder");
	tap_ok(is_qwen3_template(json_string_value(json_object_get(tc, "chat_template")) ?: "") &&
	       json_is_false(json_object_get(json_object_get(dec, "519"), "special")) &&
	       json_is_true(json_object_get(json_object_get(dec, "514"), "special")),
	       "tokenizer_config.json: Qwen3's chat template verbatim, <think> not special");
	json_decref(cfg);
	json_decref(tok);
	json_decref(tc);
	p.attention_bias = true;
	tap_ok(write_model(&p, "w2") == 0 && st_open(path_of("w2", "model.safetensors"), &f) == 0,
	       "qwen3 with attention bias written");
	{
		long long r, c;

		tap_ok(st_tensor(&f, "model.layers.0.self_attn.q_proj.bias", &r, &c) && r == 128 &&
		       st_tensor(&f, "model.layers.0.self_attn.o_proj.bias", &r, &c) && r == 64 &&
		       !st_tensor(&f, "model.layers.0.mlp.up_proj.bias", &r, &c),
		       "attention bias: q, k, v and o biases, none on the mlp");
	}
	st_close(&f);
}

static void test_presets(void)
{
	struct mw_params p = mw_default_params();
	int n = 0;

	for (int i = 0; mw_preset_names[i]; i++)
		n += mw_preset(mw_preset_names[i], &p) == 0;
	tap_ok(n == 6 && mw_preset("qwen3-7b", &p) == ENG_E_INVALID,
	       "every listed preset exists, an unknown one is refused");
	mw_preset("qwen3-8b", &p);
	tap_ok(p.arch == MW_ARCH_QWEN3 && p.hidden_size == 4096 && p.num_layers == 36 &&
	       p.num_heads == 32 && p.num_kv_heads == 8 && p.head_dim == 128 &&
	       p.intermediate_size == 12288 && p.vocab_size == 151936 &&
	       p.max_position_embeddings == 40960 && p.rope_theta == 1e6 &&
	       p.rms_norm_eps == 1e-6 && !p.tie_word_embeddings && !p.attention_bias,
	       "qwen3-8b is Qwen3-8B's shape");
	mw_preset("qwen2.5-7b", &p);
	tap_ok(p.arch == MW_ARCH_QWEN2 && p.hidden_size == 3584 && p.vocab_size == 152064 &&
	       !p.rope_scaling_llama3, "qwen2.5-7b unchanged");
	mw_preset("llama3-8b", &p);
	tap_ok(p.arch == MW_ARCH_LLAMA && p.rope_theta == 500000 && p.rope_scaling_llama3 &&
	       p.rms_norm_eps == 1e-5, "llama3-8b unchanged");
}

static void test_shards_f16(void)
{
	struct mw_params p = mw_default_params();
	json_t *idx, *map, *v, *seen = json_object();
	const char *name;
	int ok = 1;
	long long total = 0, sum = 0;

	p.dtype = MW_DTYPE_F16;
	p.shard_size = 100000;
	tap_ok(write_model(&p, "s1") == 0, "sharded f16 model written");
	idx = load_json("s1", "model.safetensors.index.json");
	map = json_object_get(idx, "weight_map");
	tap_ok(json_object_size(map) == 27 && access(path_of("s1", "model.safetensors"), F_OK) != 0,
	       "index maps 27 tensors; no single model.safetensors");
	json_object_foreach(map, name, v)
		json_object_set_new(seen, json_string_value(v), json_true());
	json_object_foreach(seen, name, v) {
		struct st_file f;

		if (st_open(path_of("s1", name), &f) < 0 || !check_values(&f, &p, "F16") ||
		    !strstr(name, "-of-0000"))
			ok = 0;
		else
			total += (long long)(f.len - f.data_start);
		sum += f.header ? (long long)json_object_size(f.header) - 1 : 0;
		st_close(&f);
	}
	tap_ok(ok && json_object_size(seen) >= 3 && sum == 27,
	       "%zu shards parse, hold the 27 tensors once, with f16 values", json_object_size(seen));
	tap_ok(json_integer_value(json_object_get(json_object_get(idx, "metadata"), "total_size")) ==
	       total, "total_size is the sum of the data areas");
	json_decref(seen);
	json_decref(idx);
}

static int leftovers(void)
{
	DIR *d = opendir(scratch);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += strstr(e->d_name, ".tmp-") || strstr(e->d_name, ".old-");
	if (d)
		closedir(d);
	return n;
}

static void test_refusals(void)
{
	struct mw_params p = mw_default_params();
	struct eng_error err;
	char full[4096];

	snprintf(full, sizeof(full), "%s/q1", scratch);
	tap_ok(mw_write(&p, full, NULL, &err) == ENG_E_INVALID && strstr(err.msg, "exists"),
	       "an existing directory is not overwritten");
	p.force = true;
	p.seed = 5;
	tap_ok(mw_write(&p, full, NULL, &err) == 0 &&
	       !same_file(path_of("q1", "model.safetensors"), path_of("q2", "model.safetensors")),
	       "--force replaces it");
	snprintf(full, sizeof(full), "%s/v1", scratch);
	p.vocab_size = 100;
	tap_ok(mw_write(&p, full, NULL, &err) == ENG_E_INVALID && access(full, F_OK) != 0 &&
	       leftovers() == 0, "vocab below the tokenizer's size: error, nothing left behind");
	p.vocab_size = 0;
	p.num_kv_heads = 3;
	tap_ok(mw_write(&p, full, NULL, &err) == ENG_E_INVALID, "heads not a multiple of kv heads");
}

static void test_conversions(void)
{
	tap_ok(mw_f32_to_f16(1.0f) == 0x3c00 && mw_f32_to_f16(-2.0f) == 0xc000 &&
	       mw_f32_to_f16(65504.0f) == 0x7bff && mw_f32_to_f16(65520.0f) == 0x7c00,
	       "f16: normal values and overflow");
	tap_ok(mw_f32_to_f16(ldexpf(1, -24)) == 1 && mw_f32_to_f16(ldexpf(1, -25)) == 0 &&
	       mw_f32_to_f16(ldexpf(3, -26)) == 1 && mw_f32_to_f16(ldexpf(3, -25)) == 2 &&
	       mw_f32_to_f16(ldexpf(1, -14)) == 0x0400,
	       "f16: subnormals round to nearest even");
	tap_ok(mw_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00 &&
	       mw_f32_to_f16(1.0f + ldexpf(3, -11)) == 0x3c02, "f16: ties to even");
	tap_ok(mw_f32_to_bf16(1.0f) == 0x3f80 && mw_f32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80 &&
	       mw_f32_to_bf16(1.0f + ldexpf(3, -8)) == 0x3f82, "bf16: ties to even");
}

/* With ../shared: copy Qwen's tokenizer; vocab rounds up to 151680. */
static void test_qwen_tokenizer(void)
{
	struct mw_params p = mw_default_params();
	const char *top = getenv("top_srcdir");
	char src[4096], srcfile[4200];
	json_t *cfg, *tc;

	snprintf(src, sizeof(src), "%s/../shared/data/qwen2-tokenizer", top ? top : "..");
	snprintf(srcfile, sizeof(srcfile), "%s/tokenizer.json", src);
	if (access(srcfile, R_OK) != 0) {
		tap_ok(1, "# SKIP no ../shared/data/qwen2-tokenizer");
		return;
	}
	p.tokenizer_dir = src;
	p.hidden_size = 16;
	p.num_layers = 1;
	p.head_dim = 8;
	p.intermediate_size = 32;
	p.tie_word_embeddings = true;
	tap_ok(write_model(&p, "t1") == 0, "model with Qwen's tokenizer written");
	tap_ok(same_file(srcfile, path_of("t1", "tokenizer.json")), "tokenizer.json copied byte for byte");
	cfg = load_json("t1", "config.json");
	tap_ok(json_integer_value(json_object_get(cfg, "vocab_size")) == 151680 &&
	       json_integer_value(json_object_get(cfg, "bos_token_id")) == 151643 &&
	       json_integer_value(json_object_get(cfg, "eos_token_id")) == 151645,
	       "vocab 151680 (151669 ids rounded up), bos 151643, eos 151645");
	tc = load_json("t1", "tokenizer_config.json");
	tap_ok(tc && !strstr(json_string_value(json_object_get(tc, "chat_template")) ?: "<think>",
			     "<think>"), "the chat template is ChatML, not Qwen3's");
	json_decref(cfg);
	json_decref(tc);
	p.arch = MW_ARCH_QWEN3;
	tap_ok(write_model(&p, "t3") == 0, "qwen3 with Qwen's tokenizer written");
	cfg = load_json("t3", "config.json");
	tc = load_json("t3", "tokenizer_config.json");
	tap_ok(tc && is_qwen3_template(json_string_value(json_object_get(tc, "chat_template"))
				       ?: "") &&
	       json_integer_value(json_object_get(cfg, "eos_token_id")) == 151645,
	       "qwen3 keeps Qwen3's chat template; eos 151645");
	json_decref(cfg);
	json_decref(tc);
	p.arch = MW_ARCH_LLAMA;
	tap_ok(write_model(&p, "t2") == ENG_E_FORMAT, "llama refuses a tokenizer without its specials");
}

static void remove_scratch(void)
{
	tap_remove_dir(scratch);
}

int main(void)
{
	if (!mkdtemp(scratch))
		return tap_skip_all("cannot make a scratch directory");
	test_conversions();
	test_tiny_qwen2();
	test_tiny_llama();
	test_tiny_qwen3();
	test_presets();
	test_shards_f16();
	test_refusals();
	test_qwen_tokenizer();
	remove_scratch();
	return tap_done();
}
