## tools/traj-extract: R2E-Gym trajectory files -> `trajectory` records.

# The projection library: validating JSON scanner, file forms, projection.
noinst_LIBRARIES += tools/common/libndtraj.a
tools_common_libndtraj_a_SOURCES = \
	tools/common/nd_scan.h tools/common/nd_scan.c \
	tools/common/nd_jdoc.h tools/common/nd_jdoc.c \
	tools/common/nd_traj.h tools/common/nd_traj.c
NDTRAJ_LIBS = tools/common/libndtraj.a $(ND_LIBS) -lm

bin_PROGRAMS += tools/traj-extract
tools_traj_extract_SOURCES = tools/traj-extract.c
tools_traj_extract_LDADD = $(NDTRAJ_LIBS)
dist_man_MANS += man/man1/traj-extract.1

check_PROGRAMS += tests/test-nd-scan tests/test-nd-traj
tests_test_nd_scan_SOURCES = tests/test-nd-scan.c
tests_test_nd_scan_LDADD = $(NDTRAJ_LIBS)
tests_test_nd_traj_SOURCES = tests/test-nd-traj.c
tests_test_nd_traj_LDADD = $(NDTRAJ_LIBS)

TESTS += tests/test-nd-scan tests/test-nd-traj \
	tests/traj-extract-cases.test tests/traj-extract-real.test
EXTRA_DIST += tests/traj-extract-cases.test tests/traj-extract-real.test \
	tests/traj-extract samples/trajectories.jsonl samples/trajectory-pretty.json \
	pipelines/gen-traj-bench.py pipelines/bench-extract.mk
