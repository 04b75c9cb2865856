## engine/: KV page allocator, radix prefix cache, scheduler.
engine_libengine_a_SOURCES += \
	engine/pages.h engine/pages.c \
	engine/radix.h engine/radix.c

check_PROGRAMS += tests/test-radix
tests_test_radix_SOURCES = tests/test-radix.c
tests_test_radix_LDADD = $(ENGINE_LIBS)
TESTS += tests/test-radix
engine_libengine_a_SOURCES += engine/sched.h engine/sched_int.h engine/sched.c engine/sched_kv.c \
	engine/seen.h engine/seen.c \
	engine/roofline.h engine/roofline.c

check_PROGRAMS += tests/test-sched
tests_test_sched_SOURCES = tests/test-sched.c
tests_test_sched_LDADD = $(ENGINE_LIBS)
TESTS += tests/test-sched
engine_libengine_a_SOURCES += engine/runner.h engine/runner.c
engine_libengine_a_SOURCES += engine/splits.h engine/splits.c

check_PROGRAMS += tests/test-splits
tests_test_splits_SOURCES = tests/test-splits.c
tests_test_splits_LDADD = $(ENGINE_LIBS)
TESTS += tests/test-splits

check_PROGRAMS += tests/test-runner
tests_test_runner_SOURCES = tests/test-runner.c
tests_test_runner_LDADD = $(ENGINE_LIBS) -lm
TESTS += tests/test-runner

check_PROGRAMS += tests/test-roofline
tests_test_roofline_SOURCES = tests/test-roofline.c
tests_test_roofline_LDADD = $(ENGINE_LIBS) -lm
TESTS += tests/test-roofline

check_PROGRAMS += tests/test-sched-reuse
tests_test_sched_reuse_SOURCES = tests/test-sched-reuse.c
tests_test_sched_reuse_LDADD = $(ENGINE_LIBS) -lm
TESTS += tests/test-sched-reuse
noinst_HEADERS += tests/fake-step.h
engine_libengine_a_SOURCES += engine/conv.h engine/conv.c \
	engine/prompt_bound.h engine/prompt_bound.c

check_PROGRAMS += tests/test-prompt-bound
tests_test_prompt_bound_SOURCES = tests/test-prompt-bound.c
tests_test_prompt_bound_LDADD = $(ENGINE_LIBS) -lm
TESTS += tests/test-prompt-bound
engine_libengine_a_SOURCES += engine/step.h engine/step.c
engine_libengine_a_SOURCES += engine/infer.h engine/infer.c engine/run.c

check_PROGRAMS += tests/test-infer
tests_test_infer_SOURCES = tests/test-infer.c
tests_test_infer_LDADD = $(MODELGEN_LIBS) -lm
TESTS += tests/test-infer
engine_libengine_a_SOURCES += engine/worker.c engine/worker_req.h engine/worker_req.c \
	engine/client.c engine/run_params.c \
	engine/sock.h engine/sock.c

WORKER_TEST_HELPER = tests/test-worker-helper.h tests/test-worker-helper.c
check_PROGRAMS += tests/test-worker
tests_test_worker_SOURCES = tests/test-worker.c $(WORKER_TEST_HELPER)
tests_test_worker_LDADD = $(MODELGEN_LIBS) -lm -lpthread
TESTS += tests/test-worker
check_PROGRAMS += tests/test-worker-edges
tests_test_worker_edges_SOURCES = tests/test-worker-edges.c $(WORKER_TEST_HELPER)
tests_test_worker_edges_LDADD = $(MODELGEN_LIBS) -lm -lpthread
TESTS += tests/test-worker-edges
check_PROGRAMS += tests/test-worker-load
tests_test_worker_load_SOURCES = tests/test-worker-load.c $(WORKER_TEST_HELPER)
tests_test_worker_load_LDADD = $(MODELGEN_LIBS) -lm -lpthread
TESTS += tests/test-worker-load
engine_libengine_a_SOURCES += engine/rng.h

check_PROGRAMS += tests/test-run-params
tests_test_run_params_SOURCES = tests/test-run-params.c
tests_test_run_params_LDADD = $(ENGINE_LIBS) -lm
TESTS += tests/test-run-params
