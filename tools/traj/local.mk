## tools/traj: the trajectory reader of traj-extract: a validating JSON
## scanner, the file forms (JSONL, one pretty document, arrays), and the
## projection of an R2E-Gym trajectory onto a `trajectory` record.
noinst_LIBRARIES += tools/traj/libtraj.a
tools_traj_libtraj_a_SOURCES = \
	tools/traj/nd_scan.h tools/traj/nd_scan.c \
	tools/traj/nd_jdoc.h tools/traj/nd_jdoc.c \
	tools/traj/nd_traj.h tools/traj/nd_traj.c
TRAJ_LIBS = tools/traj/libtraj.a $(ND_LIBS) -lm

check_PROGRAMS += tests/test-nd-scan tests/test-nd-traj
tests_test_nd_scan_SOURCES = tests/test-nd-scan.c
tests_test_nd_scan_LDADD = $(TRAJ_LIBS)
tests_test_nd_traj_SOURCES = tests/test-nd-traj.c
tests_test_nd_traj_LDADD = $(TRAJ_LIBS)
TESTS += tests/test-nd-scan tests/test-nd-traj
