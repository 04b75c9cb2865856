/*
 * cuda_plugin.h: what the CUDA backend's shared object
 * (libtrajbench-cuda.so, engine/cuda_plugin.c) hands the engine, which
 * loads it at run time (engine/cuda_load.c) only when a run asks for
 * --device cuda.  Tools that never touch a GPU (tokenizer modes,
 * --connect clients, --version) thus map neither cuBLAS nor the CUDA
 * runtime, and one build serves hosts with and without a GPU.
 *
 * The table is the whole interface: the object exports one function,
 * eng_cuda_plugin_get, and keeps every other symbol local.  abi and
 * version must match the engine that loads it; a stale object from
 * another build is refused by name, never called.
 */
#ifndef TRAJBENCH_ENG_CUDA_PLUGIN_H
#define TRAJBENCH_ENG_CUDA_PLUGIN_H

#include <stddef.h>

#include "engine/backend.h"
#include "engine/error.h"

/* Bumped whenever struct eng_cuda_plugin or a struct it points at
 * (eng_backend_ops, eng_backend_params, eng_batch, eng_model) changes. */
#define ENG_CUDA_PLUGIN_ABI 2

/* The file name, and the environment variable that names another path. */
#define ENG_CUDA_PLUGIN_FILE "libtrajbench-cuda.so"
#define ENG_CUDA_PLUGIN_ENV  "TRAJBENCH_CUDA_BACKEND"

struct eng_cuda_plugin {
	int abi;                              /* ENG_CUDA_PLUGIN_ABI */
	const char *version;                  /* PACKAGE_VERSION of its build */
	const struct eng_backend_ops *ops;    /* weights uploaded from the model */
	const struct eng_backend_ops *dummy_ops;  /* random weights made on the GPU */
	/* Free and total memory of GPU device (device 0 is current after).
	 * 0, or -1 when there is no such device. */
	int (*mem_info)(int device, size_t *free_b, size_t *total_b);
	/* Name, SM count and memory of GPU device.  0 or -1. */
	int (*device_info)(int device, char *name, size_t len, int *n_sm, size_t *mem_b);
};

/* The one symbol the shared object exports. */
#define ENG_CUDA_PLUGIN_ENTRY "eng_cuda_plugin_get"
const struct eng_cuda_plugin *eng_cuda_plugin_get(void);

/* Loads the CUDA backend once per process (later calls return the same
 * table): from $TRAJBENCH_CUDA_BACKEND when set, else
 * ../engine/libtrajbench-cuda.so next to the running program (the build
 * tree), else the installed $(pkglibdir)/libtrajbench-cuda.so.  Returns 0,
 * or ENG_E_DEVICE with err naming the paths tried and why each failed (no
 * CUDA in this build, a missing file, a library it needs, a version
 * mismatch). */
int eng_cuda_load(const struct eng_cuda_plugin **out, struct eng_error *err);

#endif
