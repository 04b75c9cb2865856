## engine/cuda: the CUDA backend (built only with CUDA), its GPU tests and
## benchmark.  The tests print "1..0 # SKIP no CUDA device" where no GPU is
## present, so they also run in plain `make check`; `make check-gpu` runs
## just them.
if HAVE_CUDA
engine_libengine_a_SOURCES += \
	engine/backend_cuda.c engine/cuda_backend.h engine/cuda_graph.c \
	engine/cuda_setup.c engine/cuda_int.h \
	engine/cuda_weights.h engine/cuda_weights.c \
	engine/comm.h engine/comm.c

CUDA_TEST_PROGS = tests/test-cuda-kernels tests/test-cuda-forward tests/test-cuda-graph \
	tests/test-cuda-tp
check_PROGRAMS += $(CUDA_TEST_PROGS)
TESTS += $(CUDA_TEST_PROGS)
tests_test_cuda_kernels_SOURCES = tests/test-cuda-kernels.c
tests_test_cuda_kernels_LDADD = $(ENGINE_LIBS) -lm
tests_test_cuda_forward_SOURCES = tests/test-cuda-forward.c
tests_test_cuda_forward_LDADD = $(MODELGEN_LIBS) -lm
tests_test_cuda_graph_SOURCES = tests/test-cuda-graph.c
tests_test_cuda_graph_LDADD = $(MODELGEN_LIBS) -lm
tests_test_cuda_tp_SOURCES = tests/test-cuda-tp.c
tests_test_cuda_tp_LDADD = $(MODELGEN_LIBS) -lm

noinst_PROGRAMS += tests/bench-cuda
tests_bench_cuda_SOURCES = tests/bench-cuda.c
tests_bench_cuda_LDADD = $(MODELGEN_LIBS) -lm

check-gpu: $(CUDA_TEST_PROGS)
	$(MAKE) $(AM_MAKEFLAGS) check-TESTS TESTS='$(CUDA_TEST_PROGS)'
else
check-gpu:
	@echo "check-gpu: this build has no CUDA backend (configure found no CUDA)"
endif
