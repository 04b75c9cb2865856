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

## `make bench-chat-render` prints what rendering a conversation's prompts
## costs per turn (a 30-turn conversation of about 25k tokens built from the
## trajectories), reusing the previous prompt's blocks against encoding the
## whole prompt each turn.
BENCH_CHAT_TURNS = 30
BENCH_CHAT_TOKENS = 25000

bench-chat-render: tests/tokenizer/bench-chat-render$(EXEEXT)
	tests/tokenizer/bench-chat-render $(BENCH_TOKENIZER_DIR) $(BENCH_TOKENIZER_TRAJ) \
		$(BENCH_CHAT_TURNS) $(BENCH_CHAT_TOKENS)
.PHONY: bench-chat-render
