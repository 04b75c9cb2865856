/*
 * test-roofline.c: the per-step ceiling on known shapes.
 *
 * Expected values are worked out by hand from the shapes (not from the
 * code under test): Qwen2.5-7B in bf16 on the ceilings DESIGN.md quotes
 * for the H100 (3.0 TB/s, 800 TFLOP/s): 14.14 GB of weights read per step
 * (all but the embedding table), 56 KiB of K and V per token, 14.14 GFLOP
 * per token through the projections and the LM head.
 */
#include "engine/roofline.h"
#include "tests/tap.h"

#include <math.h>

static int near(double got, double want)
{
	return fabs(got - want) <= 1e-12 * fabs(want);
}

static void qwen7b(struct eng_roofline *rl)
{
	struct eng_model_config c = {
		.arch = ENG_ARCH_QWEN2, .n_layers = 28, .hidden = 3584, .n_heads = 28,
		.n_kv_heads = 4, .head_dim = 128, .intermediate = 18944, .vocab = 152064,
		.qkv_bias = true,
	};

	eng_roofline_shape_of(&c, 2, 2, &rl->shape);
	rl->rates.bandwidth_bytes_s = 3.0e12;
	rl->rates.gemm_flops_s = 800e12;
}

static void test_shape(void)
{
	struct eng_roofline rl;

	qwen7b(&rl);
	/* 28 x (3584 x 4608 qkv + 3584^2 o + 3 x 3584 x 18944 mlp + 4608 bias
	 * + 2 x 3584 norms) + 3584 final norm + 152064 x 3584 LM head, bf16. */
	tap_ok(near(rl.shape.weight_bytes, 14141238272.0), "7B: %.0f weight bytes a step",
	       rl.shape.weight_bytes);
	tap_ok(near(rl.shape.kv_token_bytes, 57344.0), "7B: 56 KiB of K and V a token");
	tap_ok(near(rl.shape.linear_flops, 13050576896.0) &&
	       near(rl.shape.head_flops, 1089994752.0),
	       "7B: 13.05 GFLOP of projections and 1.09 of LM head a token");
	tap_ok(near(rl.shape.attn_flops, 401408.0), "7B: 4 x 28 layers x 28 heads x 128 a pair");
}

/* FP8 linear layers: each of the 28 x 233046016 projection weights one
 * byte instead of two, plus a 4-byte scale per output row (28 x 49664
 * rows: q 3584, k and v 512 each, o 3584, gate and up 18944 each, down
 * 3584); the LM head, norms and biases stay bf16; FLOPs unchanged. */
static void test_shape_fp8(void)
{
	struct eng_roofline rl, fp8;
	struct eng_model_config c = {
		.arch = ENG_ARCH_QWEN2, .n_layers = 28, .hidden = 3584, .n_heads = 28,
		.n_kv_heads = 4, .head_dim = 128, .intermediate = 18944, .vocab = 152064,
		.qkv_bias = true,
	};

	qwen7b(&rl);
	eng_roofline_shape_fp8(&c, 2, 2, &fp8.shape);
	tap_ok(near(fp8.shape.weight_bytes, 7621512192.0) &&
	       fp8.shape.linear_flops == rl.shape.linear_flops &&
	       fp8.shape.kv_token_bytes == rl.shape.kv_token_bytes,
	       "7B, fp8 linear layers: %.0f weight bytes a step, same FLOPs and KV bytes",
	       fp8.shape.weight_bytes);
}

static void test_steps(void)
{
	struct eng_roofline rl;
	struct eng_roofline_seq s[64];
	struct eng_roofline_cost c;

	qwen7b(&rl);
	s[0] = (struct eng_roofline_seq){ 1024, 1, 1 };
	eng_roofline_step(&rl, s, 1, &c);
	/* weights + 1025 tokens of KV read + 1 written */
	tap_ok(near(c.bytes, 14200073216.0) && near(c.flops, 14552014848.0) &&
	       near(c.seconds, 14200073216.0 / 3.0e12),
	       "decode, batch 1, 1k context: bytes-bound, %.4f ms", c.seconds * 1e3);
	for (int i = 0; i < 64; i++)
		s[i] = (struct eng_roofline_seq){ 2048, 1, 1 };
	eng_roofline_step(&rl, s, 64, &c);
	tap_ok(near(c.bytes, 21664771072.0) && near(c.flops, 957635624960.0) &&
	       near(c.seconds, 21664771072.0 / 3.0e12),
	       "decode, batch 64, 2k context: bytes-bound, %.4f ms", c.seconds * 1e3);
	s[0] = (struct eng_roofline_seq){ 0, 4096, 1 };
	eng_roofline_step(&rl, s, 1, &c);
	/* 4096 x linear + one LM-head row + 4096 x 4097 / 2 causal pairs */
	tap_ok(near(c.bytes, 14611000320.0) && near(c.flops, 56824329404416.0) &&
	       near(c.seconds, 56824329404416.0 / 800e12),
	       "prefill of a 4k prompt: FLOP-bound, %.3f ms", c.seconds * 1e3);
	s[0] = (struct eng_roofline_seq){ 0, 4096, 4096 };
	eng_roofline_step(&rl, s, 1, &c);
	tap_ok(near(c.flops, 56824329404416.0 + 4095 * 1089994752.0),
	       "scoring a 4k prompt: the LM head on every row");
	eng_roofline_step(&rl, s, 0, &c);
	tap_ok(c.bytes == 0 && c.flops == 0 && c.seconds == 0, "no sequences, no cost");
	rl.rates.gemm_flops_s = 0;
	s[0] = (struct eng_roofline_seq){ 1024, 1, 1 };
	eng_roofline_step(&rl, s, 1, &c);
	tap_ok(c.seconds == 0 && c.bytes > 0, "without measured rates, no ceiling");
}

int main(void)
{
	test_shape();
	test_shape_fp8();
	test_steps();
	return tap_done();
}
