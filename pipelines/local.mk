## pipelines/: study and benchmark Makefiles

# demo: the extract -> render pipeline on the bundled samples.
DEMO_OUT = out/demo
demo: $(DEMO_OUT)/conversations.jsonl
$(DEMO_OUT)/trajectories.jsonl: $(srcdir)/samples/trajectories.jsonl tools/traj-extract$(EXEEXT)
	@$(MKDIR_P) $(DEMO_OUT)
	$(AM_V_GEN)tools/traj-extract $(srcdir)/samples/trajectories.jsonl >$@.tmp && mv $@.tmp $@
$(DEMO_OUT)/conversations.jsonl: $(DEMO_OUT)/trajectories.jsonl $(srcdir)/samples/agent.yaml tools/prompt-render$(EXEEXT)
	$(AM_V_GEN)tools/prompt-render --config $(srcdir)/samples/agent.yaml $(DEMO_OUT)/trajectories.jsonl >$@.tmp && mv $@.tmp $@
	@echo "demo: wrote $@ ($$(wc -l <$@) conversations)"
.PHONY: demo
clean-local: clean-demo
clean-demo:
	rm -rf out
.PHONY: clean-demo
include pipelines/bench-tokenizer.mk
include pipelines/bench-extract.mk
include pipelines/bench.mk
include pipelines/bench-http-client.mk
include pipelines/bench-http.mk
include pipelines/bench-thrash.mk
include pipelines/study.mk
include pipelines/routing.mk

TESTS += tests/study-e2e.test tests/study-make.test
EXTRA_DIST += tests/study-e2e.test tests/study-make.test
