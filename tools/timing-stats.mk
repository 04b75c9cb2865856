## tools/timing-stats: SGLang-style summaries of gpu-batch-infer's request records.
## The statistics and the grouping are a library of their own (libndstats.a)
## so that other tools can compute the same figures.
noinst_LIBRARIES += tools/common/libndstats.a
tools_common_libndstats_a_SOURCES = \
	tools/common/nd_stats.h \
	tools/common/nd_stats.c \
	tools/common/nd_strmap.h \
	tools/common/nd_strmap.c \
	tools/common/nd_summary.h \
	tools/common/nd_summary_impl.h \
	tools/common/nd_summary.c \
	tools/common/nd_summary_record.c \
	tools/common/nd_summary_text.c
ND_STATS_LIBS = tools/common/libndstats.a

bin_PROGRAMS += tools/timing-stats
tools_timing_stats_SOURCES = tools/timing-stats.c
tools_timing_stats_LDADD = $(ND_STATS_LIBS) $(ND_LIBS) -lm
dist_man_MANS += man/man1/timing-stats.1

check_PROGRAMS += tests/test-nd-stats
tests_test_nd_stats_SOURCES = tests/test-nd-stats.c
tests_test_nd_stats_LDADD = $(ND_STATS_LIBS) -lm

TESTS += tests/test-nd-stats tests/timing-stats-cases.test
EXTRA_DIST += tests/timing-stats-cases.test tests/timing-stats samples/requests.jsonl
