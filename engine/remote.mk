## engine/: the executor for OpenAI-compatible servers (libcurl) and its
## SSE parser; gpu-batch-infer --connect http://...
engine_libengine_a_SOURCES += \
	engine/sse.h engine/sse.c \
	engine/remote.h engine/remote.c engine/remote_proto.c
AM_CPPFLAGS += $(LIBCURL_CFLAGS)
ENGINE_LIBS += $(LIBCURL_LIBS)

check_PROGRAMS += tests/test-sse tests/fake-openai
tests_test_sse_SOURCES = tests/test-sse.c
tests_test_sse_LDADD = $(ENGINE_LIBS) -lm
TESTS += tests/test-sse
# A scripted OpenAI-compatible server for gpu-batch-infer-http.test.
tests_fake_openai_SOURCES = tests/fake-openai.c
tests_fake_openai_LDADD = $(JANSSON_LIBS)

TESTS += tests/gpu-batch-infer-http.test
EXTRA_DIST += tests/gpu-batch-infer-http.test
