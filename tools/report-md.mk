## tools/report-md: Markdown report with SVG charts from timing records.
## The report and chart code is a library of its own so that the chart
## writer's unit test links it without the tool.
noinst_LIBRARIES += tools/common/libndreport.a
tools_common_libndreport_a_SOURCES = \
	tools/common/nd_svg.h \
	tools/common/nd_svg.c \
	tools/common/nd_report.h \
	tools/common/nd_report_int.h \
	tools/common/nd_report.c \
	tools/common/nd_report_md.c \
	tools/common/nd_report_text.c \
	tools/common/nd_report_charts.c

bin_PROGRAMS += tools/report-md
tools_report_md_SOURCES = tools/report-md.c
tools_report_md_LDADD = tools/common/libndreport.a $(ND_LIBS) -lm
dist_man_MANS += man/man1/report-md.1

check_PROGRAMS += tests/test-nd-svg
tests_test_nd_svg_SOURCES = tests/test-nd-svg.c
tests_test_nd_svg_LDADD = tools/common/libndreport.a $(ND_LIBS) -lm
TESTS += tests/test-nd-svg tests/report-md-cases.test
EXTRA_DIST += tests/report-md-cases.test tests/report-md samples/summaries.jsonl
