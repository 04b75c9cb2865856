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
