## tools/common: what every tool shares: the NDJSON reader and writer, the
## CLI and diagnostics helpers, the asynchronous record writer and the
## string map.
noinst_LIBRARIES += tools/common/libnd.a
tools_common_libnd_a_SOURCES = \
	tools/common/nd.h \
	tools/common/nd_diag.c \
	tools/common/nd_reader.c \
	tools/common/nd_writer.c \
	tools/common/nd_cli.c \
	tools/common/nd_async.h tools/common/nd_async.c \
	tools/common/nd_strmap.h tools/common/nd_strmap.c \
	tools/common/nd_vec.h tools/common/nd_vec.c

# What every tool links: its own library code first, then these.
ND_LIBS = tools/common/libnd.a $(JANSSON_LIBS) -lpthread

check_PROGRAMS += tests/test-nd-writer
tests_test_nd_writer_SOURCES = tests/test-nd-writer.c
tests_test_nd_writer_LDADD = $(ND_LIBS)
TESTS += tests/test-nd-writer
