## engine/: the serving loop (serve.c) over its fronts: the Unix-socket
## worker (worker.c, in sched.mk) and the OpenAI-compatible HTTP front
## (http*.c, libmicrohttpd).
engine_libengine_a_SOURCES += \
	engine/front.h engine/serve.c \
	engine/http_int.h engine/http.c engine/http_parse.c engine/http_gen.c \
	engine/http_reply.c engine/http_metrics.c

check_PROGRAMS += tests/test-http
tests_test_http_SOURCES = tests/test-http.c
tests_test_http_LDADD = $(MODELGEN_LIBS) -lm -lpthread
TESTS += tests/test-http

# The load client of `make bench-http` (pipelines/bench-http.sh).
noinst_PROGRAMS += tests/bench-http
tests_bench_http_SOURCES = tests/bench-http.c
tests_bench_http_LDADD = $(JANSSON_LIBS)
