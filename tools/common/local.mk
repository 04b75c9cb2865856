## tools/common: NDJSON reader and writer, CLI and diagnostics shared by the tools.
noinst_LIBRARIES += tools/common/libnd.a
tools_common_libnd_a_SOURCES = \
	tools/common/nd.h \
	tools/common/nd_diag.c \
	tools/common/nd_reader.c \
	tools/common/nd_writer.c \
	tools/common/nd_cli.c

# What every tool links: its own library code first, then these.
ND_LIBS = tools/common/libnd.a $(JANSSON_LIBS)

check_PROGRAMS += tests/test-nd-writer
tests_test_nd_writer_SOURCES = tests/test-nd-writer.c
tests_test_nd_writer_LDADD = $(ND_LIBS)
TESTS += tests/test-nd-writer
