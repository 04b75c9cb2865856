/*
 * cuda_plugin.c: the entry point of libtrajbench-cuda.so (see
 * cuda_plugin.h): the CUDA backend's vtables and the two device queries
 * the engine needs to size its KV pool, behind one exported function.
 * Built only with CUDA; everything it links (the CUDA backend, the
 * kernels, the engine code they call, cuBLAS) stays inside the object.
 */
#include <config.h>

#include "engine/cuda_plugin.h"
#include "engine/cuda_backend.h"
#include "kernels/kn.h"

static int mem_info(int device, size_t *free_b, size_t *total_b)
{
	int rc = kn_set_device(device);

	if (rc == 0)
		rc = kn_mem_info(free_b, total_b);
	if (device != 0)
		kn_set_device(0);
	return rc == 0 ? 0 : -1;
}

static int device_info(int device, char *name, size_t len, int *n_sm, size_t *mem_b)
{
	return kn_device_info(device, name, len, n_sm, mem_b) == 0 ? 0 : -1;
}

static const struct eng_cuda_plugin plugin = {
	.abi = ENG_CUDA_PLUGIN_ABI,
	.version = PACKAGE_VERSION,
	.ops = &eng_backend_cuda_ops,
	.dummy_ops = &eng_backend_cuda_dummy_ops,
	.mem_info = mem_info,
	.device_info = device_info,
};

const struct eng_cuda_plugin *eng_cuda_plugin_get(void)
{
	return &plugin;
}
