## pipelines/study.mk: the trajectory replay study as file targets.
##
##   make report [TRAJECTORIES=...] [AGENT_CONFIG=...] [NUM_PROMPTS=N]
##               [MODEL=DIR] [DEVICE=cpu|cuda] [BATCH_SIZES="1 2 4 8 16"]
##               [ENV_TIME_SCALE=0] [REPEAT=1] [OUT=out/study]
##               [WORKER_ARGS=...] [RUN_ARGS=...]
##               [SYNTHETIC=N [SYNTHETIC_SEED=S] [SYNTHETIC_ARGS=...]]
##               [ENGINES="trajbench NAME=URL ..." [ENGINE_ARGS=...]]
##
## extract -> render -> runs -> stats -> report.  Every step is a file
## under $(OUT), so make redoes only what is stale:
##
## - Each step also depends on a stamp, $(OUT)/vars/STEP.vars, holding the
##   values of the variables it was made with.  The stamp is rewritten only
##   when a value changes, so `make report NUM_PROMPTS=2` after
##   `make report` redoes the extraction and all that follows, while an
##   unchanged command line redoes nothing.
## - The runs share one persistent worker (the model stays loaded) that
##   lives exactly as long as the one recipe that needs it
##   ($(OUT)/runs.done): it is started when some run is stale, the stale
##   runs are made by a sub-make, and the worker is stopped by the shell's
##   exit trap whatever happens: success, a failed run, Ctrl-C.  An up to
##   date study starts no worker.  A worker that dies while starting fails
##   the make at once with its log.  A make stopped half way resumes: the
##   runs already installed are kept, the others are redone.
## - A run is written to a .tmp file and installed only when gpu-batch-infer
##   says its output is whole: exit status 0, or 1 (some requests failed;
##   their request records say so and the report counts them).  Status 2
##   (a failed write, a usage error) or 3 (the worker went away) leaves
##   nothing behind and fails the make.
## - Runs go one after another even under make -j: two runs at once would
##   share the batch and measure each other.
##
## REPEAT=N runs each batch size N times (gpu-batch-infer --repeat); the
## report then gives the median and the spread.  RUN_ARGS are extra
## gpu-batch-infer run options (--output-len 8 makes a quick study),
## WORKER_ARGS extra engine options of the worker.  When rsvg-convert
## (Debian: librsvg2-bin) is installed, a PNG is written beside each SVG
## chart; without it, only the SVGs.

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
REPEAT ?= 1
OUT ?= out/study
WORKER_ARGS ?=
RUN_ARGS ?=
STUDY_TITLE ?= Trajectory replay study
RSVG_CONVERT ?= rsvg-convert

## ENGINES: the sweep once per engine, in this order (the first is the one
## the others are compared with).  trajbench (a word without =) is ours,
## through the worker (runs/bs-N.jsonl); NAME=URL an OpenAI-compatible
## server the user started (SGLang, vLLM, llama.cpp, ours), replayed with
## gpu-batch-infer --connect URL and MODEL's tokenizer (runs/NAME/bs-N.jsonl,
## run NAME/bs-N), with RUN_ARGS and ENGINE_ARGS (--endpoint, --model,
## --api-key, ...).  Every run of every engine goes after the previous one.
ENGINES ?= trajbench
ENGINE_ARGS ?=

STUDY_SOCK = $(OUT)/worker.sock
STUDY_INFER = tools/gpu-batch-infer$(EXEEXT)
study_engine = $(firstword $(subst =, ,$(1)))
study_url = $(patsubst $(call study_engine,$(1))=%,%,$(1))
study_servers = $(foreach w,$(ENGINES),$(if $(findstring =,$(w)),$(w)))
study_engine_runs = $(foreach b,$(BATCH_SIZES),$(if $(findstring =,$(1)),$(OUT)/runs/$(call study_engine,$(1))/bs-$(b).jsonl,$(OUT)/runs/bs-$(b).jsonl))
# Ours (through the worker), and every engine's in ENGINES order.
STUDY_RUNS = $(if $(filter-out $(study_servers),$(ENGINES)),$(foreach b,$(BATCH_SIZES),$(OUT)/runs/bs-$(b).jsonl))
STUDY_ALL_RUNS = $(foreach e,$(ENGINES),$(call study_engine_runs,$(e)))
STUDY_INPUT_DESC = $(notdir $(TRAJECTORIES))$(if $(strip $(SYNTHETIC)), ($(SYNTHETIC) synthetic, seed $(SYNTHETIC_SEED)$(if $(strip $(SYNTHETIC_ARGS)), $(SYNTHETIC_ARGS)))) (NUM_PROMPTS=$(NUM_PROMPTS), 0 = all), agent config $(notdir $(AGENT_CONFIG)), ENV_TIME_SCALE=$(ENV_TIME_SCALE), REPEAT=$(REPEAT)$(if $(strip $(RUN_ARGS)), RUN_ARGS=$(RUN_ARGS))

report: $(OUT)/REPORT.md
.PHONY: report study-clean study-runs study-force

# ---------------------------------------------------------------- stamps
# $(OUT)/vars/STEP.vars holds NAME=value of each variable of study_vars_STEP,
# one a line; it is rewritten only when that text changes, so its mtime is
# the time of the last change.
study_vars_synthetic = SYNTHETIC SYNTHETIC_SEED SYNTHETIC_ARGS SYNTHETIC_TOKEN_LIMIT
study_vars_extract = TRAJECTORIES NUM_PROMPTS
study_vars_render = AGENT_CONFIG
study_vars_runs = MODEL DEVICE WORKER_ARGS ENV_TIME_SCALE REPEAT RUN_ARGS
study_vars_sweep = BATCH_SIZES ENGINES
study_vars_report = STUDY_TITLE STUDY_INPUT_DESC RSVG_CONVERT
# ($(file >>F,T) writes T and a newline; no shell quoting is involved.)
$(OUT)/vars:
	@$(MKDIR_P) $@
$(OUT)/vars/%.vars: study-force | $(OUT)/vars
	@$(file >$@.tmp)$(foreach v,$(study_vars_$*),$(file >>$@.tmp,$(v)=$($(v))))cmp -s $@.tmp $@ \
		&& rm -f $@.tmp || mv $@.tmp $@
study-force:

# ---------------------------------------------------------------- input
$(OUT)/synthetic.jsonl: $(OUT)/vars/synthetic.vars tools/gen-trajectories$(EXEEXT)
	@$(MKDIR_P) $(OUT)
	$(AM_V_GEN)tools/gen-trajectories --num $(SYNTHETIC) --seed $(SYNTHETIC_SEED) \
		--max-token-limit $(SYNTHETIC_TOKEN_LIMIT) $(SYNTHETIC_ARGS) >$@.tmp && mv $@.tmp $@

$(OUT)/trajectories.jsonl: $(TRAJECTORIES) $(OUT)/vars/extract.vars tools/traj-extract$(EXEEXT)
	@$(MKDIR_P) $(OUT)
	$(AM_V_GEN)tools/traj-extract --min-steps 1 --num-prompts $(NUM_PROMPTS) \
		$(TRAJECTORIES) >$@.tmp && mv $@.tmp $@

$(OUT)/conversations.jsonl: $(OUT)/trajectories.jsonl $(AGENT_CONFIG) $(OUT)/vars/render.vars \
		tools/prompt-render$(EXEEXT)
	$(AM_V_GEN)tools/prompt-render --config $(AGENT_CONFIG) $(OUT)/trajectories.jsonl \
		>$@.tmp && mv $@.tmp $@

# ---------------------------------------------------------------- runs
# runs.done stands for "every run of BATCH_SIZES is up to date": it is
# remade when an input of the runs changed or a run file is missing, and
# its recipe owns the worker (see the top of this file).  The program and
# the model directory are order-only: rebuilding the tools reruns nothing.
study_missing_runs = $(filter-out $(wildcard $(STUDY_RUNS)),$(STUDY_RUNS))

$(OUT)/runs.done: $(OUT)/conversations.jsonl $(OUT)/vars/runs.vars \
		$(if $(study_missing_runs),study-force) | $(MODEL)/config.json $(STUDY_INFER)
	@$(MKDIR_P) $(OUT)/runs
	@rm -f $(STUDY_SOCK); \
	$(STUDY_INFER) --serve --model $(MODEL) --device $(DEVICE) --socket $(STUDY_SOCK) \
		$(WORKER_ARGS) >$(OUT)/worker.log 2>&1 & \
	pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null; rm -f $(STUDY_SOCK)' EXIT; \
	trap 'exit 130' INT TERM HUP; \
	echo "  WORKER   $(MODEL) on $(DEVICE) (log: $(OUT)/worker.log)"; \
	until $(STUDY_INFER) --connect $(STUDY_SOCK) --status >/dev/null 2>&1; do \
		if ! kill -0 $$pid 2>/dev/null; then \
			wait $$pid; st=$$?; \
			echo "study: the worker did not start (exit status $$st):" >&2; \
			sed 's/^/study: worker: /' $(OUT)/worker.log >&2; \
			exit 1; \
		fi; \
		sleep 0.2; \
	done; \
	$(MAKE) $(AM_MAKEFLAGS) --no-print-directory study-runs STUDY_WORKER_UP=1 || exit $$?; \
	$(STUDY_INFER) --connect $(STUDY_SOCK) --shutdown >/dev/null 2>&1; \
	wait $$pid; \
	touch $@

# Outside runs.done's recipe a run file is made by making runs.done; inside
# it (the sub-make, STUDY_WORKER_UP set) by one rule per batch size, each
# run after the previous one (order-only chain), through the worker.
define study_run
$(OUT)/runs/bs-$(1).jsonl: $(OUT)/conversations.jsonl $(OUT)/vars/runs.vars | $(2)
	$$(AM_V_GEN)rm -f $$@; trap 'rm -f $$@.tmp' EXIT; \
	$(STUDY_INFER) --connect $(STUDY_SOCK) --run bs-$(1) --batch-size $(1) \
		--env-time-scale $(ENV_TIME_SCALE) --repeat $(REPEAT) $(RUN_ARGS) \
		$(OUT)/conversations.jsonl >$$@.tmp; \
	st=$$$$?; \
	case $$$$st in \
	0) mv $$@.tmp $$@ ;; \
	1) mv $$@.tmp $$@; echo "study: bs-$(1): some requests failed (see the report)" >&2 ;; \
	*) rm -f $$@.tmp; echo "study: bs-$(1): gpu-batch-infer exit status $$$$st; the run is not kept" >&2; exit $$$$st ;; \
	esac
endef
study_prev =
define study_chain
$$(eval $$(call study_run,$(1),$$(study_prev)))
$$(eval study_prev = $(OUT)/runs/bs-$(1).jsonl)
endef
$(if $(STUDY_WORKER_UP),,$(eval $(STUDY_RUNS): $(OUT)/runs.done ;))
$(if $(STUDY_WORKER_UP),$(foreach b,$(BATCH_SIZES),$(eval $(call study_chain,$(b)))))
study-runs: $(STUDY_RUNS)

# ---------------------------------------------------------------- other engines
# One run per batch size and engine NAME=URL, after ours (order-only: they
# would measure each other) and after the previous one; each stamped with
# its URL and ENGINE_ARGS (vars/engine-NAME.vars).  A run is kept on exit
# status 0 or 1, as ours.  $(1) NAME, $(2) URL, $(3) batch size, $(4) the
# previous run.
define study_server_run
$(OUT)/runs/$(1)/bs-$(3).jsonl: $(OUT)/conversations.jsonl $(OUT)/vars/runs.vars \
		$(OUT)/vars/engine-$(1).vars | $(MODEL)/config.json $(STUDY_INFER) \
		$(if $(STUDY_RUNS),$(OUT)/runs.done) $(4)
	@$$(MKDIR_P) $(OUT)/runs/$(1)
	$$(AM_V_GEN)rm -f $$@; trap 'rm -f $$@.tmp' EXIT; \
	$(STUDY_INFER) --connect $(2) --tokenizer $(MODEL) --run $(1)/bs-$(3) --batch-size $(3) \
		--env-time-scale $(ENV_TIME_SCALE) --repeat $(REPEAT) $(RUN_ARGS) $(ENGINE_ARGS) \
		$(OUT)/conversations.jsonl >$$@.tmp; \
	st=$$$$?; \
	case $$$$st in \
	0) mv $$@.tmp $$@ ;; \
	1) mv $$@.tmp $$@; echo "study: $(1)/bs-$(3): some requests failed (see the report)" >&2 ;; \
	*) rm -f $$@.tmp; echo "study: $(1)/bs-$(3): gpu-batch-infer exit status $$$$st; the run is not kept" >&2; exit $$$$st ;; \
	esac
endef
define study_server_chain
STUDY_URL_$(call study_engine,$(1)) = $(call study_url,$(1))
study_vars_engine-$(call study_engine,$(1)) = STUDY_URL_$(call study_engine,$(1)) ENGINE_ARGS
$(foreach b,$(BATCH_SIZES),$$(eval $$(call study_server_run,$(call study_engine,$(1)),$(call study_url,$(1)),$(b),$$(study_server_prev)))$$(eval study_server_prev = $(OUT)/runs/$(call study_engine,$(1))/bs-$(b).jsonl))
endef
study_server_prev =
$(foreach e,$(study_servers),$(eval $(call study_server_chain,$(e))))

# ---------------------------------------------------------------- stats, report
$(OUT)/summaries.jsonl: $(if $(STUDY_RUNS),$(OUT)/runs.done) $(STUDY_ALL_RUNS) \
		$(OUT)/vars/sweep.vars tools/timing-stats$(EXEEXT)
	$(AM_V_GEN)tools/timing-stats --per-turn $(STUDY_ALL_RUNS) >$@.tmp && mv $@.tmp $@

# report-md draws its SVG charts beside the report; rsvg-convert, when
# installed, adds a PNG of each.
$(OUT)/REPORT.md: $(OUT)/summaries.jsonl $(STUDY_ALL_RUNS) $(OUT)/vars/report.vars \
		tools/report-md$(EXEEXT)
	$(AM_V_GEN)rm -f $(OUT)/*.svg $(OUT)/*.png; \
	tools/report-md --title "$(STUDY_TITLE)" --input-desc "$(STUDY_INPUT_DESC)" \
		-o $@.tmp.md $(OUT)/summaries.jsonl $(STUDY_ALL_RUNS) || exit $$?; \
	if command -v $(RSVG_CONVERT) >/dev/null 2>&1; then \
		for f in $(OUT)/*.svg; do \
			$(RSVG_CONVERT) -f png -o "$${f%.svg}.png" "$$f" || exit $$?; \
		done; \
	fi; \
	mv $@.tmp.md $@
	@echo "study: wrote $@"

study-clean:
	rm -rf $(OUT)
