/*
 * fuzz-model-config.c: config.json of a model directory
 * (engine/model_config.c), read as eng_config_load reads it.  Any JSON:
 * refused with an error naming a key, or a configuration whose shape is
 * usable: positive sizes, heads that divide, a head_dim whose RoPE
 * frequencies are finite.
 */
#include "tests/fuzz/fuzz.h"
#include "engine/model_config.h"

#include <jansson.h>
#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	struct eng_model_config cfg;
	struct eng_error err;
	float *inv;

	if (!root)
		return 0;
	if (eng_config_parse(root, "config.json", &cfg, &err) != 0) {
		FUZZ_CHECK(err.msg[0] != '\0');
		json_decref(root);
		return 0;
	}
	json_decref(root);
	FUZZ_CHECK(cfg.n_layers > 0 && cfg.hidden > 0 && cfg.n_heads > 0);
	FUZZ_CHECK(cfg.n_kv_heads > 0 && cfg.n_heads % cfg.n_kv_heads == 0);
	FUZZ_CHECK(cfg.head_dim > 0 && cfg.head_dim % 2 == 0);
	FUZZ_CHECK(cfg.intermediate > 0 && cfg.vocab > 0 && cfg.max_positions > 0);
	FUZZ_CHECK(cfg.n_eos >= 0 && cfg.n_eos <= ENG_MAX_EOS);
	inv = malloc((size_t)cfg.head_dim / 2 * sizeof(float));
	FUZZ_CHECK(inv != NULL);
	eng_config_rope_inv_freq(&cfg, inv);
	for (int i = 0; i < cfg.head_dim / 2; i++)
		FUZZ_CHECK(isfinite(inv[i]) && inv[i] >= 0);
	free(inv);
	return 0;
}
