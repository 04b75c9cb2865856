/*
 * model_writer.c: a deterministic random-weight model in HF layout (see
 * model_writer.h for the contract).
 *
 * Layout of the work: the tensor list is derived from the shape (HF names,
 * [out, in] row-major shapes, HF's sharding rule: start a new shard when the
 * next tensor would overflow the current one); each tensor is generated from
 * its own xoshiro256** stream (seeded by splitmix64 from seed ^ hash(name))
 * in chunks of CHUNK values, converted to the dtype with round-to-nearest-
 * even, and written with write(2).  Everything lands in "DIR.tmp-PID" which is
 * renamed to DIR only when every file is complete.
 *
 * Initialisation, chosen so that a random model still computes something
 * sharp enough to compare backends by greedy tokens: input projections
 * (q, k, v, gate, up) have std 1/sqrt(fan_in), so activations keep unit
 * scale; projections into the residual stream (o, down) are further divided
 * by sqrt(2 * layers) so the residual grows slowly; embeddings and lm_head
 * have std 4/sqrt(hidden), which gives logits of std about 4 and clear
 * top-1/top-2 margins; RMSNorm weights are 1 +- 0.02 (Qwen3's q/k norms
 * 1 +- 0.3, see QK_NORM_STD), biases +- 0.02.
 * For the 7B shape the input projections come out at std 0.017.
 *
 * The tokenizer files (trained or copied) and chat templates are written by
 * model_writer_tok.c.  It refuses to overwrite anything but a directory of
 * plain files (with force), and writes no optimizer state, no safetensors
 * metadata beyond {"format":"pt"}, and no timestamps, so the output is
 * reproducible.
 */
#include "tools/modelgen/model_writer.h"
#include "tools/modelgen/model_writer_int.h"
#include "engine/engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#define CHUNK (1u << 20) /* values generated and written per step */

/* Qwen3's q/k norm weights spread wider than the other norms', so that
 * the weights themselves show in the logits: on qwen3-tiny (CPU, a
 * 20-token prompt) a backend that normalized the heads but ignored these
 * weights would be off by 1.6e-2 relative at 1 +- 0.02, next to the 1e-2
 * bf16 tolerance of the GPU tests, and is off by 27% at 1 +- 0.3;
 * dropping the norm altogether is off by 30%. */
#define QK_NORM_STD 0.3

/* ---------------------------------------------------------------- presets */

const char *const mw_preset_names[] = {
	"tiny", "tiny-llama", "qwen3-tiny", "qwen2.5-7b", "qwen3-8b", "llama3-8b", NULL,
};

/* The shapes of the presets; vocab 0: the tokenizer's size rounded up.
 * The real ones are the published configs (Qwen2.5-7B, Qwen3-8B,
 * Llama-3-8B); qwen3-tiny's head_dim is not hidden / heads, as in the
 * small Qwen3 models, and its embeddings are tied, as theirs are. */
static const struct preset {
	const char *name;
	enum mw_arch arch;
	int hidden, inter, layers, heads, kv_heads, head_dim;
	long vocab, max_pos;
	bool tie;
} presets[] = {
	{ "tiny", MW_ARCH_QWEN2, 64, 128, 2, 4, 2, 16, 0, 4096, false },
	{ "tiny-llama", MW_ARCH_LLAMA, 64, 128, 2, 4, 2, 16, 0, 4096, true },
	{ "qwen3-tiny", MW_ARCH_QWEN3, 64, 128, 2, 4, 2, 32, 0, 4096, true },
	{ "qwen2.5-7b", MW_ARCH_QWEN2, 3584, 18944, 28, 28, 4, 128, 152064, 32768, false },
	{ "qwen3-8b", MW_ARCH_QWEN3, 4096, 12288, 36, 32, 8, 128, 151936, 40960, false },
	{ "llama3-8b", MW_ARCH_LLAMA, 4096, 14336, 32, 32, 8, 128, 128256, 131072, false },
};

struct mw_params mw_default_params(void)
{
	struct mw_params p;

	memset(&p, 0, sizeof(p));
	mw_preset("tiny", &p);
	p.dtype = MW_DTYPE_BF16;
	p.tokenizer_vocab = 512;
	return p;
}

int mw_preset(const char *name, struct mw_params *p)
{
	const struct preset *q = NULL;
	bool llama;

	for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++)
		if (!strcmp(name, presets[i].name))
			q = &presets[i];
	if (!q)
		return ENG_E_INVALID;
	llama = q->arch == MW_ARCH_LLAMA;
	p->arch = q->arch;
	p->hidden_size = q->hidden;
	p->intermediate_size = q->inter;
	p->num_layers = q->layers;
	p->num_heads = q->heads;
	p->num_kv_heads = q->kv_heads;
	p->head_dim = q->head_dim;
	p->vocab_size = q->vocab;
	p->max_position_embeddings = q->max_pos;
	p->rope_theta = llama ? 500000.0 : 1000000.0;
	p->rms_norm_eps = llama ? 1e-5 : 1e-6;
	p->tie_word_embeddings = q->tie;
	p->attention_bias = false;
	p->rope_scaling_llama3 = llama;
	return 0;
}

int mw_check(const struct mw_params *p, struct eng_error *err)
{
	const char *why = NULL;

	if (p->hidden_size < 1 || p->intermediate_size < 1 || p->num_layers < 1 ||
	    p->num_heads < 1 || p->num_kv_heads < 1 || p->head_dim < 1)
		why = "sizes must be positive";
	else if (p->num_heads % p->num_kv_heads)
		why = "the number of heads must be a multiple of the number of kv heads";
	else if (p->head_dim % 2)
		why = "head_dim must be even (rotary embedding)";
	else if (p->vocab_size < 0 || p->max_position_embeddings < 1)
		why = "vocab size and max position embeddings must be positive";
	else if (!(p->rope_theta > 0) || !(p->rms_norm_eps > 0))
		why = "rope theta and rms norm eps must be positive";
	else if (p->shard_size < 0)
		why = "shard size must not be negative";
	else if (!p->tokenizer_dir && p->tokenizer_vocab < 256)
		why = "tokenizer vocabulary must be at least 256";
	if (why)
		return eng_error_set(err, ENG_E_INVALID, NULL, 0, "%s", why);
	return 0;
}

const char *mw_arch_name(enum mw_arch a)
{
	return a == MW_ARCH_LLAMA ? "llama" : a == MW_ARCH_QWEN3 ? "qwen3" : "qwen2";
}

static size_t dtype_size(enum mw_dtype d)
{
	return d == MW_DTYPE_F32 ? 4 : 2;
}

/* ---------------------------------------------------------------- random values */

static void stream_seed(uint64_t s[4], uint64_t seed, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull, x;

	for (const char *c = name; *c; c++)
		h = (h ^ (unsigned char)*c) * 0x100000001b3ull;
	x = seed ^ h;
	eng_xoshiro_seed(s, x);
}

/* Sum of four 16-bit uniforms, centred and scaled to unit variance. */
static float approx_normal(uint64_t s[4])
{
	uint64_t r = eng_xoshiro_next(s);
	int32_t sum = (int32_t)(r & 0xffff) + (int32_t)(r >> 16 & 0xffff) +
		      (int32_t)(r >> 32 & 0xffff) + (int32_t)(r >> 48);

	return (float)(sum - 131070) * (1.7320508f / 65536.0f);
}

/* The one expression every weight goes through (writer and regeneration). */
static float next_value(uint64_t s[4], struct mw_init init)
{
	return init.mean + init.std * approx_normal(s);
}

void mw_tensor_values(uint64_t seed, const char *name, struct mw_init init,
			  float *out, size_t n)
{
	uint64_t s[4];

	stream_seed(s, seed, name);
	for (size_t i = 0; i < n; i++)
		out[i] = next_value(s, init);
}

uint16_t mw_f32_to_bf16(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	if ((u & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((u >> 16) | 0x40);
	u += 0x7fff + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

uint16_t mw_f32_to_f16(float f)
{
	uint32_t x, sign;

	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000;
	x &= 0x7fffffff;
	if (x >= 0x7f800000)
		return (uint16_t)(sign | (x > 0x7f800000 ? 0x7e00 : 0x7c00));
	if (x >= 0x477ff000) /* 65520 and up round to infinity */
		return (uint16_t)(sign | 0x7c00);
	if (x < 0x38800000) { /* below 2^-14: subnormal or zero */
		uint32_t m = (x & 0x7fffff) | 0x800000, shift, k, rem, half;

		if (x < 0x33000000)
			return (uint16_t)sign;
		shift = 126 - (x >> 23);
		k = m >> shift;
		rem = m & ((1u << shift) - 1);
		half = 1u << (shift - 1);
		if (rem > half || (rem == half && (k & 1)))
			k++;
		return (uint16_t)(sign | k);
	}
	x -= 0x38000000; /* rebias the exponent from 127 to 15 */
	x += 0xfff + ((x >> 13) & 1);
	return (uint16_t)(sign | (x >> 13));
}

/* ---------------------------------------------------------------- tensors */

struct tensor {
	char name[80];
	int ndim;
	long long shape[2];    /* [out, in] for matrices, [n] for vectors */
	struct mw_init init;
	int shard;             /* 0-based shard index */
	long long offset;      /* data offset inside its shard */
};

struct tensor_list {
	struct tensor *t;
	int n, cap;
};

static long long tensor_numel(const struct tensor *t)
{
	return t->ndim == 1 ? t->shape[0] : t->shape[0] * t->shape[1];
}

static int push_tensor(struct tensor_list *l, const char *name, long long out, long long in,
		       struct mw_init init)
{
	struct tensor *t;

	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 64;
		struct tensor *nt = realloc(l->t, cap * sizeof(*nt));

		if (!nt)
			return -1;
		l->t = nt;
		l->cap = cap;
	}
	t = &l->t[l->n++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->ndim = in ? 2 : 1;
	t->shape[0] = out;
	t->shape[1] = in;
	t->init = init;
	return 0;
}

static struct mw_init init_of(float mean, double std)
{
	struct mw_init i = { mean, (float)std };

	return i;
}

/* One decoder layer's tensors, in the order they are written. */
static int push_layer(struct tensor_list *l, const struct mw_params *p, int i)
{
	long long h = p->hidden_size, q = (long long)p->num_heads * p->head_dim;
	long long kv = (long long)p->num_kv_heads * p->head_dim, f = p->intermediate_size;
	double in_std = 1.0 / sqrt((double)h), res = sqrt(2.0 * p->num_layers);
	bool bias = p->arch == MW_ARCH_QWEN2 || p->attention_bias;
	bool o_bias = p->arch != MW_ARCH_QWEN2 && p->attention_bias;
	const char *proj[3] = { "q", "k", "v" };
	long long outs[3] = { q, kv, kv };
	char name[80];
	int rc = 0;

#define PUSH(out, in, init, ...) \
	(snprintf(name, sizeof(name), __VA_ARGS__), rc |= push_tensor(l, name, out, in, init))
	PUSH(h, 0, init_of(1, 0.02), "model.layers.%d.input_layernorm.weight", i);
	for (int j = 0; j < 3; j++) {
		PUSH(outs[j], h, init_of(0, in_std), "model.layers.%d.self_attn.%s_proj.weight", i, proj[j]);
		if (bias)
			PUSH(outs[j], 0, init_of(0, 0.02), "model.layers.%d.self_attn.%s_proj.bias", i, proj[j]);
	}
	PUSH(h, q, init_of(0, 1.0 / sqrt((double)q) / res), "model.layers.%d.self_attn.o_proj.weight", i);
	if (o_bias)
		PUSH(h, 0, init_of(0, 0.02), "model.layers.%d.self_attn.o_proj.bias", i);
	if (p->arch == MW_ARCH_QWEN3) {
		PUSH(p->head_dim, 0, init_of(1, QK_NORM_STD), "model.layers.%d.self_attn.q_norm.weight", i);
		PUSH(p->head_dim, 0, init_of(1, QK_NORM_STD), "model.layers.%d.self_attn.k_norm.weight", i);
	}
	PUSH(h, 0, init_of(1, 0.02), "model.layers.%d.post_attention_layernorm.weight", i);
	PUSH(f, h, init_of(0, in_std), "model.layers.%d.mlp.gate_proj.weight", i);
	PUSH(f, h, init_of(0, in_std), "model.layers.%d.mlp.up_proj.weight", i);
	PUSH(h, f, init_of(0, 1.0 / sqrt((double)f) / res), "model.layers.%d.mlp.down_proj.weight", i);
#undef PUSH
	return rc;
}

/* All tensors of the model, with shards and offsets assigned. */
static int build_tensors(struct tensor_list *l, const struct mw_params *p, long vocab)
{
	double emb_std = 4.0 / sqrt((double)p->hidden_size);
	size_t esz = dtype_size(p->dtype);
	long long used = 0;
	int shard = 0;

	if (push_tensor(l, "model.embed_tokens.weight", vocab, p->hidden_size,
			init_of(0, emb_std)) < 0)
		return -1;
	for (int i = 0; i < p->num_layers; i++)
		if (push_layer(l, p, i) < 0)
			return -1;
	if (push_tensor(l, "model.norm.weight", p->hidden_size, 0, init_of(1, 0.02)) < 0)
		return -1;
	if (!p->tie_word_embeddings &&
	    push_tensor(l, "lm_head.weight", vocab, p->hidden_size, init_of(0, emb_std)) < 0)
		return -1;
	for (int i = 0; i < l->n; i++) {
		long long bytes = tensor_numel(&l->t[i]) * (long long)esz;

		if (p->shard_size > 0 && used > 0 && used + bytes > p->shard_size) {
			shard++;
			used = 0;
		}
		l->t[i].shard = shard;
		l->t[i].offset = used;
		used += bytes;
	}
	return 0;
}

int mw_tensor_init(const struct mw_params *p, const char *name,
		       struct mw_init *init)
{
	struct tensor_list l = { 0 };
	int rc = ENG_E_INVALID;

	if (build_tensors(&l, p, 1) < 0) {
		free(l.t);
		return ENG_E_NOMEM;
	}
	for (int i = 0; i < l.n; i++)
		if (!strcmp(l.t[i].name, name)) {
			*init = l.t[i].init;
			rc = 0;
		}
	free(l.t);
	return rc;
}

static const char *st_dtype(enum mw_dtype d)
{
	return d == MW_DTYPE_F32 ? "F32" : d == MW_DTYPE_F16 ? "F16" : "BF16";
}

static void shard_name(char *buf, size_t n, int shard, int n_shards)
{
	if (n_shards == 1)
		snprintf(buf, n, "model.safetensors");
	else
		snprintf(buf, n, "model-%05d-of-%05d.safetensors", shard + 1, n_shards);
}

/* The safetensors header of one shard: 8-byte little-endian length, then
 * compact JSON padded with spaces to a multiple of 8.  Caller frees. */
static char *st_header(const struct tensor_list *l, int shard, enum mw_dtype d,
		       size_t *len)
{
	size_t esz = dtype_size(d), n, padded;
	json_t *h = json_pack("{s:{s:s}}", "__metadata__", "format", "pt");
	char *js, *out;

	for (int i = 0; h && i < l->n; i++) {
		const struct tensor *t = &l->t[i];
		long long end = t->offset + tensor_numel(t) * (long long)esz;
		json_t *shape = t->ndim == 1 ? json_pack("[I]", t->shape[0])
					     : json_pack("[I,I]", t->shape[0], t->shape[1]);

		if (t->shard == shard &&
		    json_object_set_new(h, t->name, json_pack("{s:s, s:o, s:[I,I]}", "dtype",
				st_dtype(d), "shape", shape, "data_offsets",
				t->offset, end)) < 0) {
			json_decref(h);
			h = NULL;
		} else if (t->shard != shard) {
			json_decref(shape);
		}
	}
	js = h ? json_dumps(h, JSON_COMPACT) : NULL;
	json_decref(h);
	if (!js)
		return NULL;
	n = strlen(js);
	padded = (n + 7) / 8 * 8;
	if ((out = malloc(8 + padded))) {
		for (int i = 0; i < 8; i++)
			out[i] = (char)((uint64_t)padded >> (8 * i));
		memcpy(out + 8, js, n);
		memset(out + 8 + n, ' ', padded - n);
		*len = 8 + padded;
	}
	free(js);
	return out;
}

/* Buffers and bookkeeping shared by the shards of one write. */
struct weight_io {
	const struct mw_params *p;
	float *vals;          /* (CHUNK) f32 values before conversion */
	unsigned char *buf;   /* (CHUNK * dtype size) converted values */
	long long done, total;
};

static void convert(const struct weight_io *io, size_t n)
{
	uint16_t *h = (uint16_t *)io->buf;

	switch (io->p->dtype) {
	case MW_DTYPE_F32:
		memcpy(io->buf, io->vals, n * 4);
		break;
	case MW_DTYPE_F16:
		for (size_t i = 0; i < n; i++)
			h[i] = mw_f32_to_f16(io->vals[i]);
		break;
	case MW_DTYPE_BF16:
		for (size_t i = 0; i < n; i++)
			h[i] = mw_f32_to_bf16(io->vals[i]);
		break;
	}
	/* safetensors is little-endian; so is every machine this targets */
}

static volatile sig_atomic_t stop_requested;

void mw_request_stop(void)
{
	stop_requested = 1;
}

/* Whether to stop: checked between chunks and between files. */
static bool stopping(void)
{
	return stop_requested != 0;
}

static int write_tensor(struct weight_io *io, int fd, const struct tensor *t)
{
	size_t esz = dtype_size(io->p->dtype);
	long long left = tensor_numel(t);
	uint64_t s[4];

	stream_seed(s, io->p->seed, t->name);
	while (left > 0) {
		size_t n = left < (long long)CHUNK ? (size_t)left : CHUNK;

		if (stopping()) {
			errno = EINTR;
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			io->vals[i] = next_value(s, t->init);
		convert(io, n);
		if (mw_write_all(fd, io->buf, n * esz) < 0)
			return -1;
		left -= (long long)n;
		io->done += (long long)(n * esz);
		if (io->p->progress)
			io->p->progress(io->p->progress_ud, io->done, io->total);
	}
	return 0;
}

static int write_shard(struct weight_io *io, const char *dir, const struct tensor_list *l,
		       int shard, int n_shards, struct eng_error *err)
{
	char name[64], path[4096];
	size_t hlen = 0;
	char *hdr = st_header(l, shard, io->p->dtype, &hlen);
	int fd, rc = 0;

	shard_name(name, sizeof(name), shard, n_shards);
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) || !hdr) {
		free(hdr);
		return eng_error_set(err, ENG_E_NOMEM, path, 0, "path too long or out of memory");
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || mw_write_all(fd, hdr, hlen) < 0)
		rc = -1;
	for (int i = 0; rc == 0 && i < l->n; i++)
		if (l->t[i].shard == shard)
			rc = write_tensor(io, fd, &l->t[i]);
	free(hdr);
	if (fd >= 0 && close(fd) < 0)
		rc = -1;
	if (rc < 0)
		return eng_error_set(err, ENG_E_IO, path, 0, "%s", strerror(errno));
	return 0;
}

/* model.safetensors.index.json, as HF writes it (keys sorted, indent 2). */
static int write_index(const char *dir, const struct tensor_list *l, int n_shards,
		       long long total, struct eng_error *err)
{
	json_t *map = json_object();
	char name[64];

	for (int i = 0; map && i < l->n; i++) {
		shard_name(name, sizeof(name), l->t[i].shard, n_shards);
		json_object_set_new(map, l->t[i].name, json_string(name));
	}
	return mw_write_json(dir, "model.safetensors.index.json",
			  json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)total,
				    "weight_map", map),
			  JSON_INDENT(2) | JSON_SORT_KEYS, err);
}

static int write_weights(const struct mw_params *p, const char *dir, long vocab,
			 struct mw_stats *st, struct eng_error *err)
{
	struct tensor_list l = { 0 };
	struct weight_io io = { .p = p };
	int rc = 0, n_shards;
	double t0 = eng_mono_s();

	io.vals = malloc(CHUNK * sizeof(float));
	io.buf = malloc(CHUNK * dtype_size(p->dtype));
	if (!io.vals || !io.buf || build_tensors(&l, p, vocab) < 0)
		rc = eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	n_shards = l.n ? l.t[l.n - 1].shard + 1 : 0;
	for (int i = 0; i < l.n; i++) {
		st->n_params += tensor_numel(&l.t[i]);
		io.total += tensor_numel(&l.t[i]) * (long long)dtype_size(p->dtype);
	}
	for (int s = 0; rc == 0 && s < n_shards; s++)
		rc = write_shard(&io, dir, &l, s, n_shards, err);
	if (rc == 0 && n_shards > 1)
		rc = write_index(dir, &l, n_shards, io.total, err);
	st->weight_bytes = io.total;
	st->n_shards = n_shards;
	st->write_s = eng_mono_s() - t0;
	free(l.t);
	free(io.vals);
	free(io.buf);
	return rc;
}

/* ---------------------------------------------------------------- config files */

static const char *torch_dtype(enum mw_dtype d)
{
	return d == MW_DTYPE_F32 ? "float32" : d == MW_DTYPE_F16 ? "float16" : "bfloat16";
}

static json_t *rope_scaling(const struct mw_params *p)
{
	if (p->arch != MW_ARCH_LLAMA || !p->rope_scaling_llama3)
		return json_null();
	return json_pack("{s:f, s:f, s:f, s:I, s:s}", "factor", 8.0, "low_freq_factor", 1.0,
			 "high_freq_factor", 4.0, "original_max_position_embeddings",
			 (json_int_t)8192, "rope_type", "llama3");
}

static const char *hf_arch(enum mw_arch a)
{
	return a == MW_ARCH_LLAMA ? "LlamaForCausalLM"
	     : a == MW_ARCH_QWEN3 ? "Qwen3ForCausalLM" : "Qwen2ForCausalLM";
}

/* config.json with the keys of HF's Qwen2Config / Qwen3Config /
 * LlamaConfig (Qwen3's as Qwen3-8B's file has them: sliding_window null). */
static int write_config(const char *dir, const struct mw_params *p, long vocab,
			const struct mw_tok_ids *ids, struct eng_error *err)
{
	json_t *c = json_pack(
		"{s:[s], s:s, s:f, s:i, s:i, s:i, s:s, s:i, s:f, s:i, s:I, s:i, s:i, s:i,"
		" s:f, s:o, s:f, s:b, s:s, s:b, s:I}",
		"architectures", hf_arch(p->arch),
		"model_type", mw_arch_name(p->arch), "attention_dropout", 0.0,
		"bos_token_id", ids->bos, "eos_token_id", ids->eos, "head_dim", p->head_dim,
		"hidden_act", "silu", "hidden_size", p->hidden_size, "initializer_range", 0.02,
		"intermediate_size", p->intermediate_size,
		"max_position_embeddings", (json_int_t)p->max_position_embeddings,
		"num_attention_heads", p->num_heads, "num_hidden_layers", p->num_layers,
		"num_key_value_heads", p->num_kv_heads, "rms_norm_eps", p->rms_norm_eps,
		"rope_scaling", rope_scaling(p), "rope_theta", p->rope_theta,
		"tie_word_embeddings", p->tie_word_embeddings, "torch_dtype", torch_dtype(p->dtype),
		"use_cache", 1, "vocab_size", (json_int_t)vocab);

	if (c && p->arch != MW_ARCH_QWEN2)
		json_object_set_new(c, "attention_bias", json_boolean(p->attention_bias));
	if (c && p->arch == MW_ARCH_LLAMA) {
		json_object_set_new(c, "mlp_bias", json_false());
		json_object_set_new(c, "pretraining_tp", json_integer(1));
	} else if (c) {
		json_object_set_new(c, "max_window_layers", json_integer(p->num_layers));
		json_object_set_new(c, "sliding_window",
				    p->arch == MW_ARCH_QWEN3
				    ? json_null() : json_integer(p->max_position_embeddings));
		json_object_set_new(c, "use_sliding_window", json_false());
	}
	return mw_write_json(dir, "config.json", c, JSON_INDENT(2) | JSON_SORT_KEYS, err);
}

static int write_generation_config(const char *dir, const struct mw_tok_ids *ids,
				   struct eng_error *err)
{
	return mw_write_json(dir, "generation_config.json",
			  json_pack("{s:i, s:b, s:[i,i], s:i}", "bos_token_id", ids->bos,
				    "do_sample", 0, "eos_token_id", ids->eos, ids->pad,
				    "pad_token_id", ids->pad),
			  JSON_INDENT(2) | JSON_SORT_KEYS, err);
}

/* ---------------------------------------------------------------- directories */

/* Removes a directory holding only plain files; anything else is left and
 * reported, never removed recursively. */
static int remove_plain_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];
	int rc = 0;

	if (!d)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			if (unlink(path) < 0)
				rc = -1;
		}
	closedir(d);
	return rmdir(dir) < 0 || rc < 0 ? -1 : 0;
}

/* dir may be replaced: absent, or (with force) a directory of plain files. */
static int check_target(const char *dir, bool force, struct eng_error *err)
{
	struct stat sb;
	DIR *d;
	struct dirent *e;
	char path[4096];
	int bad = 0;

	if (lstat(dir, &sb) < 0)
		return errno == ENOENT ? 0 : eng_error_set(err, ENG_E_IO, dir, 0, "%s", strerror(errno));
	if (!force)
		return eng_error_set(err, ENG_E_INVALID, dir, 0, "already exists (--force replaces it)");
	if (!S_ISDIR(sb.st_mode) || !(d = opendir(dir)))
		return eng_error_set(err, ENG_E_INVALID, dir, 0, "exists and is not a directory");
	while (!bad && (e = readdir(d))) {
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		bad = strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		      (lstat(path, &sb) < 0 || !S_ISREG(sb.st_mode));
	}
	closedir(d);
	if (bad)
		return eng_error_set(err, ENG_E_INVALID, dir, 0,
				     "holds more than plain files; not replacing it");
	return 0;
}

/* Moves the finished tmp directory to dir, replacing an old one. */
static int install_dir(const char *tmp, const char *dir, struct eng_error *err)
{
	char old[4096];
	struct stat sb;
	bool had_old = lstat(dir, &sb) == 0;

	snprintf(old, sizeof(old), "%s.old-%ld", dir, (long)getpid());
	if (had_old && rename(dir, old) < 0)
		return eng_error_set(err, ENG_E_IO, dir, 0, "%s", strerror(errno));
	if (rename(tmp, dir) < 0) {
		int e = errno;

		if (had_old)
			rename(old, dir);
		return eng_error_set(err, ENG_E_IO, dir, 0, "%s", strerror(e));
	}
	if (had_old && remove_plain_dir(old) < 0)
		return eng_error_set(err, ENG_E_IO, old, 0, "cannot remove the replaced model");
	return 0;
}

static int write_all_files(const char *tmp, const struct mw_params *p,
			   struct mw_stats *st, struct eng_error *err)
{
	struct mw_tok_ids ids = { 0 };
	long vocab;
	int rc;

	rc = p->tokenizer_dir ? mw_copy_tokenizer(tmp, p, &ids, err) : mw_train_tokenizer(tmp, p, &ids, err);
	if (rc < 0)
		return rc;
	vocab = p->vocab_size ? p->vocab_size : (ids.size + 127L) / 128 * 128;
	if (vocab < ids.size)
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "vocab size %ld is smaller than the tokenizer's %d ids",
				     vocab, ids.size);
	st->vocab_size = vocab;
	st->tokenizer_size = ids.size;
	rc = write_config(tmp, p, vocab, &ids, err);
	if (rc == 0)
		rc = write_generation_config(tmp, &ids, err);
	if (rc == 0 && !p->no_weights)
		rc = write_weights(p, tmp, vocab, st, err);
	return rc;
}

/* A stop asked for while writing wins over what the write returned. */
static int interrupted(struct eng_error *err)
{
	return eng_error_set(err, ENG_E_IO, NULL, 0, "interrupted");
}

int mw_write(const struct mw_params *p, const char *dir, struct mw_stats *st,
		 struct eng_error *err)
{
	struct mw_stats local;
	char tmp[4096];
	int rc;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if ((rc = mw_check(p, err)) < 0 || (rc = check_target(dir, p->force, err)) < 0)
		return rc;
	snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", dir, (long)getpid());
	remove_plain_dir(tmp);
	if (mkdir(tmp, 0755) < 0)
		return eng_error_set(err, ENG_E_IO, tmp, 0, "%s", strerror(errno));
	rc = write_all_files(tmp, p, st, err);
	if (stopping())
		rc = interrupted(err);
	if (rc == 0)
		rc = install_dir(tmp, dir, err);
	if (rc < 0)
		remove_plain_dir(tmp);
	stop_requested = 0;
	return rc;
}
