## tools/stats: timing-stats' library: NumPy-exact statistics, grouping of
## request records into runs, and the summary records and text blocks.
noinst_LIBRARIES += tools/stats/libstats.a
tools_stats_libstats_a_SOURCES = \
	tools/stats/nd_stats.h tools/stats/nd_stats.c \
	tools/stats/nd_summary.h tools/stats/nd_summary_impl.h \
	tools/stats/nd_summary.c \
	tools/stats/nd_summary_record.c \
	tools/stats/nd_summary_text.c
STATS_LIBS = tools/stats/libstats.a $(ND_LIBS) -lm

check_PROGRAMS += tests/test-nd-stats
tests_test_nd_stats_SOURCES = tests/test-nd-stats.c
tests_test_nd_stats_LDADD = $(STATS_LIBS)
TESTS += tests/test-nd-stats
