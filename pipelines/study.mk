## pipelines/study.mk: the trajectory replay study as file targets.
##
##   make report [TRAJECTORIES=...] [AGENT_CONFIG=...] [NUM_PROMPTS=N]
##               [MODEL=DIR] [DEVICE=cpu|cuda] [BATCH_SIZES="1 2 4 8 16"]
##               [ENV_TIME_SCALE=0] [OUT=out/study] [WORKER_ARGS=...]
##               [SYNTHETIC=N [SYNTHETIC_SEED=S] [SYNTHETIC_ARGS=...]]
##               [ENGINES="trajbench NAME=URL ..." [ENGINE_ARGS=...]]
##
## extract -> render -> worker start -> one run per batch size -> stats ->
## report -> worker stop.  Every step is a file under $(OUT), so make
## reruns only what is stale.  The runs share one persistent worker (the
## model stays loaded) and run one after another even under make -j: two
## runs at once would share the batch and measure each other.

## SYNTHETIC=N: study N trajectories from tools/gen-trajectories
## (seed SYNTHETIC_SEED, extra flags SYNTHETIC_ARGS) as TRAJECTORIES (unless
## TRAJECTORIES is given too).
## Their prompts are capped at SYNTHETIC_TOKEN_LIMIT tokens (counted at 4
## bytes a token; R2E-Gym's token_limit): 32768 as in R2E-Gym, 1500 for
## the tiny demo model, whose 4096-token context and small vocabulary
## (about 2.3 bytes a token) hold no more.
SYNTHETIC ?=
SYNTHETIC_SEED ?= 0
SYNTHETIC_ARGS ?=
SYNTHETIC_TOKEN_LIMIT ?= $(if $(filter out/models/tiny,$(MODEL)),1500,32768)
TRAJECTORIES ?= $(if $(strip $(SYNTHETIC)),$(OUT)/synthetic.jsonl,$(srcdir)/samples/trajectories.jsonl)
AGENT_CONFIG ?= $(srcdir)/samples/agent.yaml
NUM_PROMPTS ?= 0
MODEL ?= out/models/tiny
DEVICE ?= cpu
BATCH_SIZES ?= 1 2 4 8 16
ENV_TIME_SCALE ?= 0
OUT ?= out/study
WORKER_ARGS ?=
STUDY_TITLE ?= Trajectory replay study

## ENGINES: the sweep once per engine, in this order (the first is the one
## the others are compared with).  trajbench is ours, through the worker
## (runs/bs-N.jsonl); NAME=URL an OpenAI-compatible server the user started
## (SGLang, vLLM, llama.cpp, ours), replayed with gpu-batch-infer --connect
## URL and MODEL's tokenizer (runs/NAME/bs-N.jsonl, run NAME/bs-N);
## ENGINE_ARGS are added to those runs (--endpoint, --model, --api-key...).
ENGINES ?= trajbench
ENGINE_ARGS ?=

STUDY_SOCK = $(OUT)/worker.sock
STUDY_INFER = tools/gpu-batch-infer$(EXEEXT)
study_engine = $(firstword $(subst =, ,$(1)))
study_url = $(patsubst $(call study_engine,$(1))=%,%,$(1))
study_engine_runs = $(foreach b,$(BATCH_SIZES),$(if $(findstring =,$(1)),$(OUT)/runs/$(call study_engine,$(1))/bs-$(b).jsonl,$(OUT)/runs/bs-$(b).jsonl))
STUDY_RUNS = $(foreach e,$(ENGINES),$(call study_engine_runs,$(e)))

report: $(OUT)/REPORT.md
.PHONY: report study-clean

$(OUT)/synthetic.jsonl: tools/gen-trajectories$(EXEEXT)
	@$(MKDIR_P) $(OUT)
	$(AM_V_GEN)tools/gen-trajectories --num $(SYNTHETIC) --seed $(SYNTHETIC_SEED) \
		--max-token-limit $(SYNTHETIC_TOKEN_LIMIT) $(SYNTHETIC_ARGS) >$@.tmp && mv $@.tmp $@

$(OUT)/trajectories.jsonl: $(TRAJECTORIES) tools/traj-extract$(EXEEXT)
	@$(MKDIR_P) $(OUT)
	$(AM_V_GEN)tools/traj-extract --min-steps 1 --num-prompts $(NUM_PROMPTS) \
		$(TRAJECTORIES) >$@.tmp && mv $@.tmp $@

$(OUT)/conversations.jsonl: $(OUT)/trajectories.jsonl $(AGENT_CONFIG) tools/prompt-render$(EXEEXT)
	$(AM_V_GEN)tools/prompt-render --config $(AGENT_CONFIG) $(OUT)/trajectories.jsonl \
		>$@.tmp && mv $@.tmp $@

# The worker is started when a run needs it and stopped after the report.
# The stamp is order-only for the runs: a restarted worker reruns nothing.
$(OUT)/worker.started: | $(MODEL)/config.json $(STUDY_INFER)
	@$(MKDIR_P) $(OUT)
	$(AM_V_GEN)rm -f $(STUDY_SOCK); \
	nohup $(STUDY_INFER) --serve --model $(MODEL) --device $(DEVICE) \
		--socket $(STUDY_SOCK) $(WORKER_ARGS) >$(OUT)/worker.log 2>&1 & \
	for i in $$(seq 600); do \
		$(STUDY_INFER) --connect $(STUDY_SOCK) --status >/dev/null 2>&1 && break; \
		sleep 0.5; \
	done; \
	$(STUDY_INFER) --connect $(STUDY_SOCK) --status >$@ || \
		{ echo "study: the worker did not start; see $(OUT)/worker.log" >&2; \
		  cat $(OUT)/worker.log >&2; rm -f $@; exit 1; }

# One run per batch size, each after the previous one (order-only chain).
# Exit status 1 (some requests failed, each a failed request record) keeps
# the run: the report counts the failures; 2 and above stop the study.
define study_run
$(OUT)/runs/bs-$(1).jsonl: $(OUT)/conversations.jsonl | $(OUT)/worker.started $(2)
	@$$(MKDIR_P) $(OUT)/runs
	$$(AM_V_GEN)$(STUDY_INFER) --connect $(STUDY_SOCK) --run bs-$(1) --batch-size $(1) \
		--env-time-scale $(ENV_TIME_SCALE) $(OUT)/conversations.jsonl >$$@.tmp; \
	st=$$$$?; [ $$$$st -le 1 ] || exit $$$$st; mv $$@.tmp $$@; \
	[ $$$$st = 0 ] || echo "study: run bs-$(1): some requests failed; their records and the report say which" >&2
endef
study_prev =
define study_chain
$$(eval $$(call study_run,$(1),$$(study_prev)))
$$(eval study_prev = $(OUT)/runs/bs-$(1).jsonl)
endef
$(foreach b,$(BATCH_SIZES),$(eval $(call study_chain,$(b))))

# The other engines' runs: the same conversations, one run per batch size,
# all in one chain with ours (engines on one machine would measure each
# other).  $(1) NAME, $(2) URL, $(3) batch size, $(4) the previous run.
define study_http_run
$(OUT)/runs/$(1)/bs-$(3).jsonl: $(OUT)/conversations.jsonl | $(MODEL)/config.json $(STUDY_INFER) $(4)
	@$$(MKDIR_P) $(OUT)/runs/$(1)
	$$(AM_V_GEN)$(STUDY_INFER) --connect $(2) --tokenizer $(MODEL) --run $(1)/bs-$(3) \
		--batch-size $(3) --env-time-scale $(ENV_TIME_SCALE) $(ENGINE_ARGS) \
		$(OUT)/conversations.jsonl >$$@.tmp && mv $$@.tmp $$@
endef
define study_http_chain
$$(eval $$(call study_http_run,$(call study_engine,$(1)),$(call study_url,$(1)),$(2),$$(study_prev)))
$$(eval study_prev = $(OUT)/runs/$(call study_engine,$(1))/bs-$(2).jsonl)
endef
$(foreach e,$(filter %,$(foreach w,$(ENGINES),$(if $(findstring =,$(w)),$(w)))),\
	$(foreach b,$(BATCH_SIZES),$(eval $(call study_http_chain,$(e),$(b)))))

$(OUT)/summaries.jsonl: $(STUDY_RUNS) tools/timing-stats$(EXEEXT)
	$(AM_V_GEN)tools/timing-stats --per-turn $(STUDY_RUNS) >$@.tmp && mv $@.tmp $@

$(OUT)/REPORT.md: $(OUT)/summaries.jsonl $(STUDY_RUNS) tools/report-md$(EXEEXT)
	$(AM_V_GEN)tools/report-md --title "$(STUDY_TITLE)" \
		--input-desc "$(notdir $(TRAJECTORIES)) (NUM_PROMPTS=$(NUM_PROMPTS), 0 = all), agent config $(notdir $(AGENT_CONFIG)), ENV_TIME_SCALE=$(ENV_TIME_SCALE)" \
		-o $@.tmp.md $(OUT)/summaries.jsonl $(STUDY_RUNS) && mv $@.tmp.md $@
	@-test -e $(OUT)/worker.started && \
		$(STUDY_INFER) --connect $(STUDY_SOCK) --shutdown >/dev/null 2>&1; \
		rm -f $(OUT)/worker.started
	@echo "study: wrote $@"

study-clean:
	-test -e $(OUT)/worker.started && $(STUDY_INFER) --connect $(STUDY_SOCK) --shutdown
	rm -rf $(OUT)
