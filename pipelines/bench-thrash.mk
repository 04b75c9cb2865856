## pipelines/bench-thrash.mk: `make bench-thrash` replays synthetic agent
## conversations at several batch sizes and KV pool sizes and prints, per
## run, the prompt tokens computed against the optimum (what an unbounded
## prefix cache would compute, as the engine counts it), retractions, peak
## KV use and time.  While the pool holds the conversations in flight the
## ratio stays at most 1.05; below that, the table shows how it degrades.
## THRASH_VERIFY=1 also runs each batch size with a pool too large to ever
## evict, whose computed tokens check the engine's optimum.
##
## Variables: THRASH_MODEL (default the tiny model), THRASH_DEVICE (cpu),
## THRASH_ARGS (more gpu-batch-infer flags, e.g. --load-format dummy),
## THRASH_BATCH_SIZES ("2 16 64"), THRASH_POOLS (KV pools in tokens, 0 for
## the engine's default; default "0 16384", the second the old CPU
## default), THRASH_NUM conversations (64), THRASH_SEED (3),
## THRASH_STEPS_MEAN (8), THRASH_TOKEN_LIMIT (prompt cap in tokens at 4
## bytes a token: 1500 for the tiny model's 4k context, else 32768),
## THRASH_VERIFY (1 on the CPU, else 0), THRASH_OUT (out/bench-thrash).
THRASH_MODEL ?= out/models/tiny
THRASH_DEVICE ?= cpu
THRASH_ARGS ?=
THRASH_BATCH_SIZES ?= 2 16 64
THRASH_POOLS ?= 0 16384
THRASH_NUM ?= 64
THRASH_SEED ?= 3
THRASH_STEPS_MEAN ?= 8
THRASH_TOKEN_LIMIT ?= $(if $(filter out/models/tiny,$(THRASH_MODEL)),1500,32768)
THRASH_VERIFY ?= $(if $(filter cpu,$(THRASH_DEVICE)),1,0)
THRASH_OUT ?= out/bench-thrash

THRASH_VARS = $(THRASH_NUM) $(THRASH_SEED) $(THRASH_STEPS_MEAN) $(THRASH_TOKEN_LIMIT)

# The conversations depend on the values they were made with: the stamp
# is rewritten only when those change.
$(THRASH_OUT)/conversations.vars: FORCE
	@$(MKDIR_P) $(THRASH_OUT)
	@echo '$(THRASH_VARS)' | cmp -s - $@ || echo '$(THRASH_VARS)' >$@

$(THRASH_OUT)/conversations.jsonl: $(THRASH_OUT)/conversations.vars tools/gen-trajectories$(EXEEXT) \
		tools/traj-extract$(EXEEXT) tools/prompt-render$(EXEEXT) $(srcdir)/samples/agent.yaml
	$(AM_V_GEN)tools/gen-trajectories --num $(THRASH_NUM) --seed $(THRASH_SEED) \
		--steps-mean $(THRASH_STEPS_MEAN) --max-token-limit $(THRASH_TOKEN_LIMIT) \
	| tools/traj-extract --min-steps 1 \
	| tools/prompt-render --config $(srcdir)/samples/agent.yaml >$@.tmp && mv $@.tmp $@

bench-thrash: $(THRASH_OUT)/conversations.jsonl tools/gpu-batch-infer$(EXEEXT) | $(THRASH_MODEL)/config.json
	@THRASH_VERIFY='$(THRASH_VERIFY)' $(SHELL) $(srcdir)/pipelines/bench-thrash.sh \
		tools/gpu-batch-infer$(EXEEXT) $(THRASH_OUT) '$(THRASH_BATCH_SIZES)' '$(THRASH_POOLS)' \
		--model $(THRASH_MODEL) --device $(THRASH_DEVICE) $(THRASH_ARGS)
.PHONY: bench-thrash FORCE
FORCE:
EXTRA_DIST += pipelines/bench-thrash.sh

## `make bench-replay`: the multi-turn replay at many conversations at once
## on a GPU, as the run's achieved fraction of its roofline (the "roofl"
## column: the sum of each step's ceiling, max(bytes / bandwidth, FLOPs /
## GEMM rate) with the rates measured at load, over the run's time), on
## random weights of the Qwen2.5-7B shape (--load-format dummy).  It is
## bench-thrash with the engine's default pool and these defaults:
## REPLAY_NUM conversations (128) of at most REPLAY_TOKEN_LIMIT tokens
## (12000), REPLAY_BATCH_SIZES ("16 64 96 128"), REPLAY_DEVICE (cuda),
## REPLAY_ARGS (more gpu-batch-infer flags: --quantization fp8,
## --kv-cache-dtype fp8_e4m3, ...), REPLAY_TOKENIZER (an HF tokenizer
## directory for the model, e.g. Qwen's; default: the model writer's small
## trained one, whose tokens are shorter), REPLAY_OUT (out/bench-replay).
REPLAY_MODEL ?= out/models/qwen2.5-7b-shape
REPLAY_TOKENIZER ?=
REPLAY_NUM ?= 128
REPLAY_TOKEN_LIMIT ?= 12000
REPLAY_BATCH_SIZES ?= 16 64 96 128
REPLAY_DEVICE ?= cuda
REPLAY_ARGS ?=
REPLAY_OUT ?= out/bench-replay

out/models/qwen2.5-7b-shape/config.json: tools/model-writer$(EXEEXT)
	$(AM_V_GEN)tools/model-writer --force --preset qwen2.5-7b --no-weights \
		$(if $(REPLAY_TOKENIZER),--tokenizer $(REPLAY_TOKENIZER)) -o $(@D)

bench-replay: tools/gpu-batch-infer$(EXEEXT) | $(REPLAY_MODEL)/config.json
	$(MAKE) $(AM_MAKEFLAGS) bench-thrash THRASH_MODEL='$(REPLAY_MODEL)' \
		THRASH_DEVICE='$(REPLAY_DEVICE)' THRASH_ARGS='--load-format dummy $(REPLAY_ARGS)' \
		THRASH_BATCH_SIZES='$(REPLAY_BATCH_SIZES)' THRASH_POOLS=0 THRASH_NUM='$(REPLAY_NUM)' \
		THRASH_TOKEN_LIMIT='$(REPLAY_TOKEN_LIMIT)' THRASH_VERIFY=0 THRASH_OUT='$(REPLAY_OUT)'
.PHONY: bench-replay
