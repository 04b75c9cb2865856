## tools/report-md: Markdown report with SVG charts from summary records
## (library: tools/report).
bin_PROGRAMS += tools/report-md
tools_report_md_SOURCES = tools/report-md.c
tools_report_md_LDADD = $(REPORT_LIBS)
dist_man_MANS += man/man1/report-md.1

TESTS += tests/report-md-cases.test
EXTRA_DIST += tests/report-md-cases.test tests/report-md samples/summaries.jsonl
