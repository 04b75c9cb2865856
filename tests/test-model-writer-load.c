/*
 * test-model-writer-load: models made by the model writer load with the
 * engine's own loaders and compute something sharp.
 *
 * Writes the tiny qwen2, qwen3 and llama models (and a sharded f16 one), loads them
 * with eng_model_load and eng_tokenizer_load, checks the config the loader
 * sees, round-trips chat text through the tokenizer (special tokens
 * included), and runs prompts through the CPU backend: logits must be
 * finite, spread out (std between 1 and 10), and show a clear top-1/top-2
 * margin for most prompts, which greedy comparisons between backends need.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/backend.h"
#include "engine/model.h"
#include "tools/modelgen/model_writer.h"
#include "engine/tokenizer.h"
#include "tests/tap.h"

static char scratch[] = "/tmp/test-model-writer-load-XXXXXX";

static const char *prompts[] = {
	"<|im_start|>user\nFix the failing test in parse_config.<|im_end|>\n<|im_start|>assistant\n",
	"def parse(path):\n    return open(path).read()\n",
	"Exit code: 0\nExecution output of [execute_bash]:\n12 passed in 0.31s\n",
	"The parser returns the defaults when the file is empty.",
	"Steps Remaining: 40",
	"for i in range(10):\n    total += values[i]\n",
};
#define N_PROMPTS (sizeof(prompts) / sizeof(prompts[0]))

static char *dir_of(const char *name)
{
	static char buf[2][4096];
	static int k;

	k ^= 1;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", scratch, name);
	return buf[k];
}

static void check_tokenizer(const char *dir, int n_ids, const char *special)
{
	struct eng_tokenizer *tok;
	struct eng_error err;
	struct eng_ids ids = { 0 };
	char *back = NULL;
	size_t len = 0;
	int ok;

	if (eng_tokenizer_load(dir, &tok, &err) < 0) {
		tap_ok(0, "%s: tokenizer loads (%s)", dir, err.msg);
		return;
	}
	tap_ok(eng_tokenizer_vocab_size(tok) == n_ids && eng_tokenizer_token_id(tok, special) >= 0,
	       "tokenizer loads: %d ids, %s is a token", eng_tokenizer_vocab_size(tok), special);
	ok = 1;
	for (size_t i = 0; ok && i < N_PROMPTS; i++) {
		ids.n = 0;
		ok = eng_tokenizer_encode(tok, prompts[i], strlen(prompts[i]), &ids, 0, &err) == 0 &&
		     eng_tokenizer_decode(tok, ids.ids, ids.n, 0, &back, &len, &err) == 0 &&
		     len == strlen(prompts[i]) && !memcmp(back, prompts[i], len) &&
		     ids.n < strlen(prompts[i]);
		free(back);
		back = NULL;
	}
	tap_ok(ok, "prompts encode to fewer tokens than bytes and decode back");
	ids.n = 0;
	eng_tokenizer_encode(tok, special, strlen(special), &ids, 0, &err);
	tap_ok(ids.n == 1 && ids.ids[0] == n_ids - 1, "%s encodes as one special token, id %d",
	       special, n_ids - 1);
	eng_ids_free(&ids);
	eng_tokenizer_free(tok);
}

/* Greedy-relevant sharpness of the logits of each prompt's last token. */
static void check_logits(struct eng_model *m, struct eng_tokenizer *tok, const char *name)
{
	const struct eng_model_config *cfg = eng_model_config(m);
	struct eng_backend_params bp = eng_backend_default_params();
	struct eng_backend *be;
	struct eng_error err;
	float *logits = malloc((size_t)cfg->vocab * sizeof(float));
	int32_t table[64];
	int sharp = 0, sane = 1;
	double worst_std = 1e9, best_std = 0;

	bp.n_threads = 1;
	for (int i = 0; i < 64; i++)
		table[i] = i;
	if (!logits || eng_backend_create(&eng_backend_cpu_ops, m, &bp, &be, &err) < 0) {
		tap_ok(0, "%s: cpu backend (%s)", name, err.msg);
		free(logits);
		return;
	}
	for (size_t i = 0; i < N_PROMPTS; i++) {
		struct eng_ids ids = { 0 };
		double s = 0, s2 = 0, top1 = -1e30, top2 = -1e30, sd;

		eng_tokenizer_encode(tok, prompts[i], strlen(prompts[i]), &ids, 0, &err);
		struct eng_seq_input q = { ids.ids, (int)ids.n, 0, table,
					   (int)(ids.n + bp.page_size - 1) / bp.page_size, logits,
					   NULL, NULL };
		struct eng_batch b = { 1, &q };

		if (eng_backend_forward(be, &b, &err) < 0) {
			tap_diag("forward: %s", err.msg);
			sane = 0;
		}
		for (int v = 0; v < cfg->vocab; v++) {
			double x = logits[v];

			sane &= isfinite(x);
			s += x;
			s2 += x * x;
			if (x > top1) {
				top2 = top1;
				top1 = x;
			} else if (x > top2) {
				top2 = x;
			}
		}
		sd = sqrt(s2 / cfg->vocab - (s / cfg->vocab) * (s / cfg->vocab));
		worst_std = sd < worst_std ? sd : worst_std;
		best_std = sd > best_std ? sd : best_std;
		sharp += top1 - top2 > 0.1;
		tap_diag("%s prompt %zu: %zu tokens, logit std %.2f, top1-top2 %.3f", name, i, ids.n,
			 sd, top1 - top2);
		eng_ids_free(&ids);
	}
	tap_ok(sane && worst_std > 1 && best_std < 10,
	       "%s: logits finite with std in [%.2f, %.2f]", name, worst_std, best_std);
	tap_ok(sharp * 2 > (int)N_PROMPTS, "%s: %d of %zu prompts have a top-1/top-2 margin > 0.1",
	       name, sharp, N_PROMPTS);
	eng_backend_free(be);
	free(logits);
}

/* special: the tokenizer's last added token; eos: the end-of-turn token. */
static void check_model(struct mw_params *p, const char *name, const char *special,
			const char *eos, int qkv_bias, int tied)
{
	struct eng_model *m;
	struct eng_tokenizer *tok;
	struct eng_error err;
	struct mw_stats st;
	const struct eng_model_config *c;

	if (mw_write(p, dir_of(name), &st, &err) < 0) {
		tap_ok(0, "%s written (%s)", name, err.msg);
		return;
	}
	if (eng_model_load(dir_of(name), &m, &err) < 0) {
		tap_ok(0, "%s: eng_model_load (%s: %s)", name, err.file, err.msg);
		return;
	}
	c = eng_model_config(m);
	tap_ok(c->hidden == p->hidden_size && c->n_layers == p->num_layers &&
	       c->n_heads == p->num_heads && c->n_kv_heads == p->num_kv_heads &&
	       c->head_dim == p->head_dim && c->intermediate == p->intermediate_size &&
	       c->vocab == st.vocab_size && c->qkv_bias == qkv_bias && c->tie_embeddings == tied,
	       "%s: eng_model_load sees the written shape", name);
	tap_ok(c->qk_norm == (p->arch == MW_ARCH_QWEN3),
	       "%s: q/k norms exactly when qwen3", name);
	check_tokenizer(dir_of(name), st.tokenizer_size, special);
	if (eng_tokenizer_load(dir_of(name), &tok, &err) == 0) {
		tap_ok(c->n_eos >= 1 && c->eos_ids[0] == eng_tokenizer_token_id(tok, eos) &&
		       eng_model_weight_bytes(m) == (uint64_t)st.weight_bytes,
		       "%s: eos id (%s) and weight bytes as written", name, eos);
		check_logits(m, tok, name);
		eng_tokenizer_free(tok);
	}
	eng_model_free(m);
}

static void remove_scratch(void)
{
	tap_remove_dir(scratch);
}

int main(void)
{
	struct mw_params p = mw_default_params();

	if (!mkdtemp(scratch))
		return tap_skip_all("cannot make a scratch directory");
	check_model(&p, "qwen2", "<|im_end|>", "<|im_end|>", 1, 0);
	p = mw_default_params();
	mw_preset("tiny-llama", &p);
	check_model(&p, "llama", "<|eot_id|>", "<|eot_id|>", 0, 1);
	p = mw_default_params();
	mw_preset("qwen3-tiny", &p);
	check_model(&p, "qwen3", "</think>", "<|im_end|>", 0, 1);
	p = mw_default_params();
	p.dtype = MW_DTYPE_F16;
	p.shard_size = 100000;
	p.seed = 3;
	check_model(&p, "sharded", "<|im_end|>", "<|im_end|>", 1, 0);
	remove_scratch();
	return tap_done();
}
