## tools/report: report-md's library: the Markdown and text reports and
## the SVG charts it draws itself.
noinst_LIBRARIES += tools/report/libreport.a
tools_report_libreport_a_SOURCES = \
	tools/report/nd_svg.h tools/report/nd_svg.c \
	tools/report/nd_report.h tools/report/nd_report_int.h \
	tools/report/nd_report.c \
	tools/report/nd_report_points.c \
	tools/report/nd_report_md.c \
	tools/report/nd_report_text.c \
	tools/report/nd_report_charts.c \
	tools/report/nd_report_engines.c \
	tools/report/nd_report_routing.c
REPORT_LIBS = tools/report/libreport.a $(ND_LIBS) -lm

check_PROGRAMS += tests/test-nd-svg
tests_test_nd_svg_SOURCES = tests/test-nd-svg.c
tests_test_nd_svg_LDADD = $(REPORT_LIBS)
TESTS += tests/test-nd-svg
