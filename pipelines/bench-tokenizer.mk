## pipelines/bench-tokenizer.mk: `make bench-tokenizer` prints the encoding
## speed (MB/s of text, one thread) of the tokenizer on R2E-Gym prompts and
## observations.  Override BENCH_TOKENIZER_DIR / BENCH_TOKENIZER_TRAJ to measure
## another tokenizer or other trajectories.
BENCH_TOKENIZER_DIR = $(abs_top_srcdir)/../shared/data/qwen2-tokenizer
BENCH_TOKENIZER_TRAJ = $(abs_top_srcdir)/../shared/data/r2egym/samples/derived_kl_2traj.model_dump_style.jsonl
BENCH_TOKENIZER_PASSES = 5

bench-tokenizer: tests/tokenizer/bench-tokenizer$(EXEEXT)
	tests/tokenizer/bench-tokenizer $(BENCH_TOKENIZER_DIR) $(BENCH_TOKENIZER_TRAJ) $(BENCH_TOKENIZER_PASSES)
.PHONY: bench-tokenizer
