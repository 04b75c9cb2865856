## samples/: the synthetic trajectory generator (not installed).
noinst_PROGRAMS += samples/gen-trajectories
samples_gen_trajectories_SOURCES = samples/gen-trajectories.c
samples_gen_trajectories_LDADD = $(ND_LIBS) -lm
dist_man_MANS += man/man1/gen-trajectories.1
TESTS += tests/gen-trajectories.test
EXTRA_DIST += tests/gen-trajectories.test
