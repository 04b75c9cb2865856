## pipelines/study.mk: the trajectory replay study as file targets.
##
##   make report [TRAJECTORIES=...] [AGENT_CONFIG=...] [NUM_PROMPTS=N]
##               [MODEL=DIR] [DEVICE=cpu|cuda] [BATCH_SIZES="1 2 4 8 16"]
##               [ENV_TIME_SCALE=0] [OUT=out/study] [WORKER_ARGS=...]
##               [SYNTHETIC=N [SYNTHETIC_SEED=S] [SYNTHETIC_ARGS=...]]
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

STUDY_SOCK = $(OUT)/worker.sock
STUDY_INFER = tools/gpu-batch-infer$(EXEEXT)
STUDY_RUNS = $(foreach b,$(BATCH_SIZES),$(OUT)/runs/bs-$(b).jsonl)

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
