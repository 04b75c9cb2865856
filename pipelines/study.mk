## pipelines/study.mk: the trajectory replay study as file targets.
##
##   make report [TRAJECTORIES=...] [AGENT_CONFIG=...] [NUM_PROMPTS=N]
##               [MODEL=DIR] [DEVICE=cpu|cuda] [BATCH_SIZES="1 2 4 8 16"]
##               [ENV_TIME_SCALE=0] [OUT=out/study] [WORKER_ARGS=...]
##
## extract -> render -> worker start -> one run per batch size -> stats ->
## report -> worker stop.  Every step is a file under $(OUT), so make
## reruns only what is stale.  The runs share one persistent worker (the
## model stays loaded) and run one after another even under make -j: two
## runs at once would share the batch and measure each other.

TRAJECTORIES ?= $(srcdir)/samples/trajectories.jsonl
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
define study_run
$(OUT)/runs/bs-$(1).jsonl: $(OUT)/conversations.jsonl | $(OUT)/worker.started $(2)
	@$$(MKDIR_P) $(OUT)/runs
	$$(AM_V_GEN)$(STUDY_INFER) --connect $(STUDY_SOCK) --run bs-$(1) --batch-size $(1) \
		--env-time-scale $(ENV_TIME_SCALE) $(OUT)/conversations.jsonl >$$@.tmp && mv $$@.tmp $$@
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
