## tools/traj-extract: R2E-Gym trajectory files -> `trajectory` records
## (library: tools/traj).
bin_PROGRAMS += tools/traj-extract
tools_traj_extract_SOURCES = tools/traj-extract.c
tools_traj_extract_LDADD = $(TRAJ_LIBS)
dist_man_MANS += man/man1/traj-extract.1

TESTS += tests/traj-extract-cases.test tests/traj-extract-real.test
EXTRA_DIST += tests/traj-extract-cases.test tests/traj-extract-real.test \
	tests/traj-extract samples/trajectories.jsonl samples/trajectory-pretty.json \
	pipelines/gen-traj-bench.py pipelines/bench-extract.mk
