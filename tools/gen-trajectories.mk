## tools/gen-trajectories: N synthetic trajectories in R2E-Gym's JSONL shape.
bin_PROGRAMS += tools/gen-trajectories
tools_gen_trajectories_SOURCES = tools/gen-trajectories.c
tools_gen_trajectories_LDADD = $(ND_LIBS) -lm
dist_man_MANS += man/man1/gen-trajectories.1
TESTS += tests/gen-trajectories.test
EXTRA_DIST += tests/gen-trajectories.test
