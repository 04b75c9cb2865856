## tools/timing-stats: SGLang-style summaries of gpu-batch-infer's request
## records (library: tools/stats).
bin_PROGRAMS += tools/timing-stats
tools_timing_stats_SOURCES = tools/timing-stats.c
tools_timing_stats_LDADD = $(STATS_LIBS)
dist_man_MANS += man/man1/timing-stats.1

TESTS += tests/timing-stats-cases.test
EXTRA_DIST += tests/timing-stats-cases.test tests/timing-stats samples/requests.jsonl
