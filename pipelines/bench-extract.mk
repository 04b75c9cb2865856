## pipelines/bench-extract.mk: traj-extract's speed on a realistic file,
## next to `jq -c` doing the same projection.  `make bench-extract` prints
## MB/s of input for both (best of BENCH_EXTRACT_RUNS runs, one core).

BENCH_EXTRACT_LINES = 500
BENCH_EXTRACT_RUNS = 3
BENCH_EXTRACT_DIR = out/bench-extract
BENCH_EXTRACT_FILE = $(BENCH_EXTRACT_DIR)/trajectories-$(BENCH_EXTRACT_LINES).jsonl

$(BENCH_EXTRACT_FILE): $(srcdir)/pipelines/gen-traj-bench.py
	@$(MKDIR_P) $(BENCH_EXTRACT_DIR)
	$(AM_V_GEN)python3 $(srcdir)/pipelines/gen-traj-bench.py $(BENCH_EXTRACT_LINES) 1 >$@.tmp && mv $@.tmp $@

bench-extract: $(BENCH_EXTRACT_FILE) tools/traj-extract$(EXEEXT)
	@$(SHELL) $(srcdir)/pipelines/bench-extract.sh $(BENCH_EXTRACT_FILE) \
		tools/traj-extract$(EXEEXT) $(srcdir)/pipelines/traj-extract.jq $(BENCH_EXTRACT_RUNS)
.PHONY: bench-extract
EXTRA_DIST += pipelines/bench-extract.sh pipelines/traj-extract.jq
