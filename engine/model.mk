## engine/model: safetensors and config loading, the CPU backend (forward
## pass, page pool, thread pool), the sampler; their tests and benchmark.
engine_libengine_a_SOURCES += \
	engine/safetensors.h engine/safetensors.c \
	engine/model_config.h engine/model_config.c \
	engine/model.h engine/model.c \
	engine/backend.h engine/backend.c \
	engine/backend_cpu.c \
	engine/cpu_ops.h engine/cpu_ops.c engine/rates_cpu.c \
	engine/cpu_pool.h engine/cpu_pool.c \
	engine/kv_cpu.h engine/kv_cpu.c \
	engine/kv_fp8.h engine/kv_fp8.c \
	engine/sampler.h engine/sampler.c

MODEL_TEST_LDADD = $(MODELGEN_LIBS)
MODEL_TEST_HELPER = tests/test-model-helper.h tests/test-model-helper.c

check_PROGRAMS += tests/test-safetensors tests/test-model-config tests/test-sampler \
	tests/test-forward tests/test-forward-golden
TESTS += tests/test-safetensors tests/test-model-config tests/test-sampler \
	tests/test-forward tests/test-forward-golden

tests_test_safetensors_SOURCES = tests/test-safetensors.c $(MODEL_TEST_HELPER)
tests_test_safetensors_LDADD = $(MODEL_TEST_LDADD)
tests_test_model_config_SOURCES = tests/test-model-config.c $(MODEL_TEST_HELPER)
tests_test_model_config_LDADD = $(MODEL_TEST_LDADD)
tests_test_sampler_SOURCES = tests/test-sampler.c $(MODEL_TEST_HELPER)
tests_test_sampler_LDADD = $(MODEL_TEST_LDADD)
tests_test_forward_SOURCES = tests/test-forward.c $(MODEL_TEST_HELPER)
tests_test_forward_LDADD = $(MODEL_TEST_LDADD)
tests_test_forward_golden_SOURCES = tests/test-forward-golden.c $(MODEL_TEST_HELPER)
tests_test_forward_golden_LDADD = $(MODEL_TEST_LDADD)

noinst_PROGRAMS += tests/bench-cpu-forward
tests_bench_cpu_forward_SOURCES = tests/bench-cpu-forward.c $(MODEL_TEST_HELPER)
tests_bench_cpu_forward_LDADD = $(MODEL_TEST_LDADD)

EXTRA_DIST += tests/golden/make-goldens.py tests/data/golden

check_PROGRAMS += tests/test-kv-fp8
TESTS += tests/test-kv-fp8
tests_test_kv_fp8_SOURCES = tests/test-kv-fp8.c $(MODEL_TEST_HELPER)
tests_test_kv_fp8_LDADD = $(MODEL_TEST_LDADD)

check_PROGRAMS += tests/test-fp8-weights
TESTS += tests/test-fp8-weights
tests_test_fp8_weights_SOURCES = tests/test-fp8-weights.c $(MODEL_TEST_HELPER)
tests_test_fp8_weights_LDADD = $(MODEL_TEST_LDADD)
