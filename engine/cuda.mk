## engine/cuda: the CUDA backend (built only with CUDA), its GPU tests and
## benchmark.  The tests print "1..0 # SKIP no CUDA device" where no GPU is
## present, so they also run in plain `make check`; `make check-gpu` runs
## just them.
## The backend is a shared object, engine/libtrajbench-cuda.so (installed
## in pkglibdir), that the engine dlopens when a run asks for --device cuda
## (engine/cuda_plugin.h): no other use of the tools maps cuBLAS or the
## CUDA runtime.  It links engine/libcudabackend.a, the kernels and the
## engine code they call, all position-independent; -z defs proves at
## link time that it needs nothing from the program that loads it.  The
## GPU tests and the benchmark link the same archives directly.
engine_libengine_a_SOURCES += engine/cuda_plugin.h engine/cuda_load.c
EXTRA_DIST += engine/cuda_plugin.map tests/cuda-plugin.test
TESTS += tests/cuda-plugin.test

if HAVE_CUDA
noinst_LIBRARIES += engine/libcudabackend.a
engine_libcudabackend_a_SOURCES = \
	engine/backend_cuda.c engine/cuda_backend.h engine/cuda_graph.c \
	engine/cuda_setup.c engine/cuda_int.h engine/rates_cuda.c \
	engine/cuda_weights.h engine/cuda_weights.c \
	engine/comm.h engine/comm.c
engine_libcudabackend_a_CFLAGS = $(AM_CFLAGS) -fPIC

cudabackenddir = $(pkglibdir)
cudabackend_PROGRAMS = engine/libtrajbench-cuda.so
engine_libtrajbench_cuda_so_SOURCES = engine/cuda_plugin.c
engine_libtrajbench_cuda_so_CFLAGS = $(AM_CFLAGS) -fPIC
# Sanitizer runtimes come from the program, so -z defs only without them.
engine_libtrajbench_cuda_so_LDFLAGS = $(AM_LDFLAGS) -shared \
	$(if $(SAN_CFLAGS),,-Wl,-z,defs) \
	-Wl,--version-script=$(srcdir)/engine/cuda_plugin.map
engine_libtrajbench_cuda_so_LDADD = engine/libcudabackend.a $(ENGINE_LIBS) $(KERNELS_LIBS) \
	-lm -lpthread
EXTRA_engine_libtrajbench_cuda_so_DEPENDENCIES = $(srcdir)/engine/cuda_plugin.map
CUDA_LINK = engine/libcudabackend.a

CUDA_TEST_PROGS = tests/test-cuda-kernels tests/test-cuda-forward tests/test-cuda-graph \
	tests/test-cuda-tp
check_PROGRAMS += $(CUDA_TEST_PROGS)
TESTS += $(CUDA_TEST_PROGS)
tests_test_cuda_kernels_SOURCES = tests/test-cuda-kernels.c
tests_test_cuda_kernels_LDADD = $(ENGINE_LIBS) $(KERNELS_LIBS) -lm
tests_test_cuda_forward_SOURCES = tests/test-cuda-forward.c $(MODEL_TEST_HELPER)
tests_test_cuda_forward_LDADD = $(CUDA_LINK) $(MODELGEN_LIBS) $(KERNELS_LIBS) -lm
tests_test_cuda_graph_SOURCES = tests/test-cuda-graph.c $(MODEL_TEST_HELPER)
tests_test_cuda_graph_LDADD = $(CUDA_LINK) $(MODELGEN_LIBS) $(KERNELS_LIBS) -lm
tests_test_cuda_tp_SOURCES = tests/test-cuda-tp.c $(MODEL_TEST_HELPER)
tests_test_cuda_tp_LDADD = $(CUDA_LINK) $(MODELGEN_LIBS) $(KERNELS_LIBS) -lm

noinst_PROGRAMS += tests/bench-cuda
tests_bench_cuda_SOURCES = tests/bench-cuda.c
tests_bench_cuda_LDADD = $(CUDA_LINK) $(MODELGEN_LIBS) $(KERNELS_LIBS) -lm

check-gpu: $(CUDA_TEST_PROGS)
	$(MAKE) $(AM_MAKEFLAGS) check-TESTS TESTS='$(CUDA_TEST_PROGS)'
else
check-gpu:
	@echo "check-gpu: this build has no CUDA backend (configure found no CUDA)"
endif
