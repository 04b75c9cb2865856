/*
 * test-forward-golden.c: the CPU backend against HF transformers.
 *
 * The goldens are made elsewhere (a machine with torch): this program
 * writes the tiny models (four from the test helper, three from the model
 * writer's tiny presets; Qwen2, Llama and Qwen3) with --write-models DIR, then
 * tests/golden/make-goldens.py DIR tests/data/golden runs them through
 * AutoModelForCausalLM in fp32 and saves, per prompt, the last position's
 * logits and 8 greedy tokens.  Here each model is rewritten (the helper is
 * deterministic; a checksum of the weights file in the golden guards that)
 * and compared: relative error <= 1e-4, identical greedy tokens.  Skips
 * while no golden file exists, and skips each model whose golden is not
 * committed yet (one SKIP line naming the file).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/backend.h"
#include "engine/model.h"
#include "tools/modelgen/model_writer.h"
#include "engine/sampler.h"
#include "tests/tap.h"
#include "tests/test-model-helper.h"

#define N_GREEDY 8

struct golden_model {
	const char *name;
	struct tm_spec spec;
	const char *mw_preset;   /* written by mw_write with this preset */
};

static int golden_models(struct golden_model *g)
{
	g[0].name = "qwen2-tiny";
	g[0].spec = tm_spec_qwen2();
	g[1].name = "llama3-tiny-tied";
	g[1].spec = tm_spec_llama();
	g[1].spec.llama3_rope = true;
	g[1].spec.attention_bias = true;
	g[1].spec.tie = true;
	g[2].name = "llama-bf16";
	g[2].spec = tm_spec_llama();
	g[2].spec.dtype = ENG_DTYPE_BF16;
	g[2].spec.mlp_bias = true;
	g[3].name = "mw-tiny";
	g[3].mw_preset = "tiny";
	g[4].name = "mw-tiny-llama";
	g[4].mw_preset = "tiny-llama";
	/* Qwen3: head_dim 12 while hidden / heads is 10, q/k norms far from 1 */
	g[5].name = "qwen3-tiny";
	g[5].spec = tm_spec_qwen3();
	g[6].name = "mw-qwen3-tiny";
	g[6].mw_preset = "qwen3-tiny";
	return 7;
}

/* Writes model g into dir, which must not exist yet. */
static int write_model(const struct golden_model *g, const char *dir)
{
	struct mw_params p = mw_default_params();
	struct eng_error err;

	if (!g->mw_preset) {
		mkdir(dir, 0777);
		return tm_write_model(dir, &g->spec, NULL);
	}
	mw_preset(g->mw_preset, &p);
	if (mw_write(&p, dir, NULL, &err)) {
		fprintf(stderr, "test-forward-golden: %s: %s\n", dir, err.msg);
		return -1;
	}
	return 0;
}

/* FNV-1a 64 of a file, as hex; make-goldens.py computes the same. */
static int fnv1a_file(const char *path, char *hex)
{
	FILE *f = fopen(path, "rb");
	uint64_t h = 0xcbf29ce484222325ull;
	int c;

	if (!f)
		return -1;
	while ((c = getc(f)) != EOF)
		h = (h ^ (uint64_t)c) * 0x100000001b3ull;
	fclose(f);
	sprintf(hex, "%016llx", (unsigned long long)h);
	return 0;
}

static int write_models(const char *out)
{
	struct golden_model g[8] = { { 0 } };
	char path[4096];
	int i, n = golden_models(g);

	mkdir(out, 0777);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", out, g[i].name);
		if (write_model(&g[i], path))
			return 1;
		printf("%s\n", path);
	}
	return 0;
}

/* Prefill prompt, compare logits, decode greedily N_GREEDY tokens. */
static void check_prompt(struct eng_backend *be, const char *name, int k, json_t *p, int V)
{
	json_t *jt = json_object_get(p, "tokens"), *jl = json_object_get(p, "last_logits");
	json_t *jg = json_object_get(p, "greedy");
	int n = (int)json_array_size(jt), i, ok = 1, greedy_ok = 1, tok;
	int32_t *ids = calloc((size_t)n + N_GREEDY, sizeof(int32_t)), bt[64];
	float *lg = malloc((size_t)V * sizeof(float));
	double num = 0, den = 0;
	struct eng_error err;

	for (i = 0; i < 64; i++)
		bt[i] = i;
	for (i = 0; i < n; i++)
		ids[i] = (int32_t)json_integer_value(json_array_get(jt, i));
	ok = n > 0 && (int)json_array_size(jl) == V && json_array_size(jg) == N_GREEDY;
	for (i = 0; ok && i < N_GREEDY + 1; i++) {
		struct eng_seq_input q = { i ? ids + n + i - 1 : ids, i ? 1 : n,
					   i ? n + i - 1 : 0, bt, 64, lg, NULL, NULL };
		int j;

		if (eng_backend_forward(be, &(struct eng_batch){ 1, &q }, &err)) {
			tap_diag("%s", err.msg);
			ok = 0;
			break;
		}
		for (j = 0; i == 0 && j < V; j++) {
			double want = json_number_value(json_array_get(jl, j));

			num = fmax(num, fabs(lg[j] - want));
			den = fmax(den, fabs(want));
		}
		if (i == N_GREEDY)
			break;
		tok = eng_argmax(lg, V);
		ids[n + i] = tok;
		greedy_ok &= tok == json_integer_value(json_array_get(jg, i));
	}
	tap_ok(ok && num / den <= 1e-4, "%s prompt %d: last logits match transformers (rel err %.2g)",
	       name, k, den > 0 ? num / den : 1.0);
	tap_ok(ok && greedy_ok, "%s prompt %d: the same %d greedy tokens", name, k, N_GREEDY);
	free(ids);
	free(lg);
}

static void check_model(const struct golden_model *g, json_t *gold)
{
	char *tmp = tm_mkdtemp("gold"), dir[2048], path[4096], hex[32] = "";
	struct eng_backend_params bp = eng_backend_default_params();
	struct eng_backend *be = NULL;
	struct eng_model *m = NULL;
	struct eng_error err;
	json_t *prompts = json_object_get(gold, "prompts"), *p;
	const char *want = json_string_value(json_object_get(gold, "weights_fnv1a64"));
	size_t k;

	snprintf(dir, sizeof(dir), "%s/%s", tmp, g->name);
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	if (write_model(g, dir) || fnv1a_file(path, hex) ||
	    !want || strcmp(want, hex)) {
		tap_ok(0, "%s: the golden was made from these weights (%s vs %s)", g->name,
		       want ? want : "?", hex);
	} else if (eng_model_load(dir, &m, &err) ||
		   eng_backend_create(&eng_backend_cpu_ops, m, &bp, &be, &err)) {
		tap_ok(0, "%s: load: %s", g->name, err.msg);
	} else {
		json_array_foreach(prompts, k, p)
			check_prompt(be, g->name, (int)k, p, eng_model_config(m)->vocab);
	}
	eng_backend_free(be);
	eng_model_free(m);
	tm_rmtree(tmp);
	free(tmp);
}

int main(int argc, char **argv)
{
	const char *top = getenv("top_srcdir");
	struct golden_model g[8] = { { 0 } };
	const char *missing[8];
	char path[4096];
	int i, n = golden_models(g), found = 0, n_missing = 0;

	if (argc == 3 && !strcmp(argv[1], "--write-models"))
		return write_models(argv[2]);
	for (i = 0; i < n; i++) {
		json_t *gold;

		snprintf(path, sizeof(path), "%s/tests/data/golden/%s.json", top ? top : ".",
			 g[i].name);
		if (!(gold = json_load_file(path, 0, NULL))) {
			missing[n_missing++] = g[i].name;
			continue;
		}
		found++;
		check_model(&g[i], gold);
		json_decref(gold);
	}
	for (i = 0; found && i < n_missing; i++)
		tap_ok(1, "%s # SKIP no tests/data/golden/%s.json yet (tests/golden/make-goldens.py)",
		       missing[i], missing[i]);
	if (!found)
		return tap_skip_all("no golden files in tests/data/golden (made by tests/golden/make-goldens.py)");
	return tap_done();
}
