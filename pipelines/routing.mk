## pipelines/routing.mk: routing policies in the study.
##
##   make report WORKERS=N ROUTING="cache_aware round_robin random shortest_queue"
##               [ROUTING_BATCH_SIZES="16"] [ROUTER_ARGS=...] [ROUTING_WORKER_ARGS=...]
##
## With ROUTING set, the study also starts WORKERS workers of MODEL (CPU
## workers share the cores: ROUTING_THREADS each; with DEVICE=cuda they
## share the GPU, --mem-fraction-static split WORKERS ways), and for each
## policy a router over them (gpu-batch-infer --serve --router --policy P
## ROUTER_ARGS), replays the conversations through it at each of
## ROUTING_BATCH_SIZES (default: the largest of BATCH_SIZES) into
## runs/P/bs-N.jsonl (run P/bs-N), and stops the router; the workers stop
## when the last policy is done, whatever happens (the shell's exit trap),
## as the study's own worker does.  The runs go into the study's summaries
## and report: the engines section sets each policy beside the one worker
## of the sweep at the same batch size (trajectories/s, TTFT median and
## p99, cache hit rate), and the routing section gives each policy's turns
## per worker and retries.  Each run is stamped like the study's
## (vars/routing.vars) and kept on exit status 0 or 1.  The routing runs go
## after every other run of the study, one after another: two at once would
## measure each other.
ROUTING ?=
WORKERS ?= 3
ROUTING_BATCH_SIZES ?= $(lastword $(BATCH_SIZES))
ROUTER_ARGS ?=
ROUTING_THREADS ?= $(shell t=$$(( $$(nproc) / $(WORKERS) )); [ $$t -ge 1 ] || t=1; echo $$t)
ROUTING_WORKER_ARGS ?= $(if $(filter cuda,$(DEVICE)),--mem-fraction-static \
	$(shell awk 'BEGIN { printf "%.3f", 0.85 / $(WORKERS) }'),--threads $(ROUTING_THREADS))

ROUTING_DIR = $(OUT)/routing
ROUTING_RUNS = $(foreach p,$(ROUTING),$(foreach b,$(ROUTING_BATCH_SIZES),$(OUT)/runs/$(p)/bs-$(b).jsonl))
routing_workers = $(foreach k,$(shell seq 0 $$(( $(WORKERS) - 1 ))),--worker $(ROUTING_DIR)/w$(k).sock)
study_vars_routing = ROUTING WORKERS ROUTING_BATCH_SIZES ROUTER_ARGS ROUTING_WORKER_ARGS

# routing.done stands for "every routing run is up to date"; its recipe owns
# the workers (see the top of this file).
routing_missing = $(filter-out $(wildcard $(ROUTING_RUNS)),$(ROUTING_RUNS))

$(OUT)/routing.done: $(OUT)/conversations.jsonl $(OUT)/vars/runs.vars $(OUT)/vars/routing.vars \
		$(if $(routing_missing),study-force) | $(MODEL)/config.json $(STUDY_INFER) \
		$(if $(STUDY_RUNS),$(OUT)/runs.done) \
		$(lastword $(foreach e,$(ENGINES),$(call study_engine_runs,$(e))))
	@$(MKDIR_P) $(ROUTING_DIR) $(OUT)/runs
	@pids=; \
	trap 'for p in $$pids; do kill $$p 2>/dev/null; done; wait; rm -f $(ROUTING_DIR)/*.sock' EXIT; \
	trap 'exit 130' INT TERM HUP; \
	echo "  WORKERS  $(WORKERS) x $(MODEL) on $(DEVICE) (logs: $(ROUTING_DIR)/w*.log)"; \
	for k in $$(seq 0 $$(( $(WORKERS) - 1 ))); do \
		rm -f $(ROUTING_DIR)/w$$k.sock; \
		$(STUDY_INFER) --serve --model $(MODEL) --device $(DEVICE) \
			--socket $(ROUTING_DIR)/w$$k.sock $(WORKER_ARGS) $(ROUTING_WORKER_ARGS) \
			>$(ROUTING_DIR)/w$$k.log 2>&1 & \
		pid=$$!; pids="$$pids $$pid"; \
		until $(STUDY_INFER) --connect $(ROUTING_DIR)/w$$k.sock --status >/dev/null 2>&1; do \
			if ! kill -0 $$pid 2>/dev/null; then \
				echo "study: routing worker $$k did not start:" >&2; \
				sed 's/^/study: worker: /' $(ROUTING_DIR)/w$$k.log >&2; \
				exit 1; \
			fi; \
			sleep 0.2; \
		done; \
	done; \
	$(MAKE) $(AM_MAKEFLAGS) --no-print-directory routing-runs ROUTING_WORKERS_UP=1 || exit $$?; \
	for k in $$(seq 0 $$(( $(WORKERS) - 1 ))); do \
		$(STUDY_INFER) --connect $(ROUTING_DIR)/w$$k.sock --shutdown >/dev/null 2>&1; \
	done; \
	wait; pids=; \
	touch $@

# One run per policy and batch size, each after the previous one, through a
# router of its own over the workers; the router lives for the one run.
# $(1) policy, $(2) batch size, $(3) the previous run.
define routing_run
$(OUT)/runs/$(1)/bs-$(2).jsonl: $(OUT)/conversations.jsonl $(OUT)/vars/runs.vars \
		$(OUT)/vars/routing.vars | $(3)
	@$$(MKDIR_P) $(OUT)/runs/$(1)
	$$(AM_V_GEN)rm -f $$@ $(ROUTING_DIR)/router.sock; \
	$(STUDY_INFER) --serve --router --policy $(1) --model $(MODEL) \
		--socket $(ROUTING_DIR)/router.sock $(routing_workers) $(ROUTER_ARGS) \
		>>$(ROUTING_DIR)/router-$(1).log 2>&1 & \
	rpid=$$$$!; \
	trap 'kill $$$$rpid 2>/dev/null; wait $$$$rpid 2>/dev/null; rm -f $$@.tmp' EXIT; \
	until $(STUDY_INFER) --connect $(ROUTING_DIR)/router.sock --status >/dev/null 2>&1; do \
		kill -0 $$$$rpid 2>/dev/null || { sed 's/^/study: router: /' \
			$(ROUTING_DIR)/router-$(1).log >&2; exit 1; }; \
		sleep 0.1; \
	done; \
	$(STUDY_INFER) --connect $(ROUTING_DIR)/router.sock --run $(1)/bs-$(2) --batch-size $(2) \
		--env-time-scale $(ENV_TIME_SCALE) --repeat $(REPEAT) $(RUN_ARGS) \
		$(OUT)/conversations.jsonl >$$@.tmp; \
	st=$$$$?; \
	$(STUDY_INFER) --connect $(ROUTING_DIR)/router.sock --shutdown >/dev/null 2>&1; \
	case $$$$st in \
	0) mv $$@.tmp $$@ ;; \
	1) mv $$@.tmp $$@; echo "study: $(1)/bs-$(2): some requests failed (see the report)" >&2 ;; \
	*) echo "study: $(1)/bs-$(2): gpu-batch-infer exit status $$$$st; the run is not kept" >&2; exit $$$$st ;; \
	esac
endef
routing_prev =
define routing_chain
$$(eval $$(call routing_run,$(1),$(2),$$(routing_prev)))
$$(eval routing_prev = $(OUT)/runs/$(1)/bs-$(2).jsonl)
endef
$(if $(ROUTING_WORKERS_UP),,$(eval $(ROUTING_RUNS): $(OUT)/routing.done ;))
$(if $(ROUTING_WORKERS_UP),$(foreach p,$(ROUTING),$(foreach b,$(ROUTING_BATCH_SIZES),$(eval $(call routing_chain,$(p),$(b))))))
routing-runs: $(ROUTING_RUNS)
.PHONY: routing-runs

# Into the study's summaries and report (their recipes read STUDY_ALL_RUNS);
# nothing without ROUTING.
$(OUT)/summaries.jsonl $(OUT)/REPORT.md: $(ROUTING_RUNS)
$(OUT)/summaries.jsonl: $(if $(strip $(ROUTING)),$(OUT)/routing.done)
STUDY_ALL_RUNS += $(ROUTING_RUNS)

TESTS += tests/study-routing.test
EXTRA_DIST += tests/study-routing.test

# make bench-router: the router's own cost per request, and the policies on
# small KV pools (pipelines/bench-router.sh says what it measures).
BENCH_ROUTER_MODEL ?= out/models/tiny
BENCH_ROUTER_ARGS ?=
bench-router: tools/gpu-batch-infer$(EXEEXT) tools/timing-stats$(EXEEXT) \
		tools/gen-trajectories$(EXEEXT) | $(BENCH_ROUTER_MODEL)/config.json
	MODEL=$(BENCH_ROUTER_MODEL) AGENT_CONFIG=$(srcdir)/samples/agent.yaml \
		$(BENCH_ROUTER_ARGS) $(SHELL) $(srcdir)/pipelines/bench-router.sh
.PHONY: bench-router
EXTRA_DIST += pipelines/bench-router.sh
