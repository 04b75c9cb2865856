/*
 * runtime.cu: the device runtime as the C side sees it: device choice,
 * memory, copies, streams, events, and the per-thread last-error text
 * that every kernels/ entry point fills on failure.
 *
 * These are thin on purpose: each wraps one CUDA call through KN_CHECK so
 * that engine/ (plain C) never includes CUDA headers and never sees a
 * cudaError_t.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernels/kn_check.cuh"

static thread_local char kn_err_text[1024];

int kn_fail(int code, const char *file, int line, const char *fmt, ...)
{
	char msg[900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(kn_err_text, sizeof(kn_err_text), "%s (%s:%d)", msg, file, line);
	return code;
}

extern "C" const char *kn_last_error(void)
{
	return kn_err_text;
}

extern "C" int kn_device_count(int *n)
{
	cudaError_t e = cudaGetDeviceCount(n);

	if (e != cudaSuccess) {
		*n = 0;
		cudaGetLastError();   /* clear the sticky "no device" state */
		return kn_status(e, "cudaGetDeviceCount(n)", __FILE__, __LINE__);
	}
	return 0;
}

static int pdl_on = 1;

extern "C" void kn_set_pdl(int on)
{
	pdl_on = on != 0;
}

extern "C" int kn_pdl(void)
{
	return pdl_on;
}

extern "C" int kn_set_device(int dev)
{
	cudaError_t e = cudaSetDevice(dev);

	if (e != cudaSuccess)
		cudaGetLastError();   /* not sticky: keep it from the next launch check */
	return kn_status(e, "cudaSetDevice(dev)", __FILE__, __LINE__);
}

extern "C" int kn_device_info(int dev, char *name, size_t name_len, int *n_sm,
			      size_t *mem_bytes)
{
	cudaDeviceProp p;
	cudaError_t e = cudaGetDeviceProperties(&p, dev);

	if (e != cudaSuccess) {
		cudaGetLastError();   /* as in kn_set_device */
		return kn_status(e, "cudaGetDeviceProperties(&p, dev)", __FILE__, __LINE__);
	}
	if (name && name_len)
		snprintf(name, name_len, "%s", p.name);
	if (n_sm)
		*n_sm = p.multiProcessorCount;
	if (mem_bytes)
		*mem_bytes = p.totalGlobalMem;
	return 0;
}

extern "C" int kn_mem_info(size_t *free_bytes, size_t *total_bytes)
{
	KN_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
	return 0;
}

extern "C" int kn_malloc(void **p, size_t n)
{
	*p = NULL;
	KN_CHECK(cudaMalloc(p, n ? n : 1));
	return 0;
}

extern "C" void kn_free(void *p)
{
	if (p)
		cudaFree(p);
}

extern "C" int kn_host_alloc(void **p, size_t n)
{
	*p = NULL;
	KN_CHECK(cudaMallocHost(p, n ? n : 1));
	return 0;
}

extern "C" void kn_host_free(void *p)
{
	if (p)
		cudaFreeHost(p);
}

extern "C" int kn_memcpy_h2d(void *dst, const void *src, size_t n, kn_stream s)
{
	KN_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s));
	return 0;
}

extern "C" int kn_memcpy_d2h(void *dst, const void *src, size_t n, kn_stream s)
{
	KN_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s));
	return 0;
}

extern "C" int kn_memcpy_d2d(void *dst, const void *src, size_t n, kn_stream s)
{
	KN_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, s));
	return 0;
}

extern "C" int kn_memset(void *dst, int byte, size_t n, kn_stream s)
{
	KN_CHECK(cudaMemsetAsync(dst, byte, n, s));
	return 0;
}

extern "C" int kn_stream_create(kn_stream *s)
{
	cudaStream_t st;

	*s = NULL;
	KN_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
	*s = st;
	return 0;
}

extern "C" void kn_stream_destroy(kn_stream s)
{
	if (s)
		cudaStreamDestroy(s);
}

extern "C" int kn_stream_sync(kn_stream s)
{
	KN_CHECK(cudaStreamSynchronize(s));
	return 0;
}

extern "C" int kn_event_create(kn_event *e)
{
	cudaEvent_t ev;

	*e = NULL;
	KN_CHECK(cudaEventCreate(&ev));
	*e = ev;
	return 0;
}

extern "C" void kn_event_destroy(kn_event e)
{
	if (e)
		cudaEventDestroy(e);
}

extern "C" int kn_event_record(kn_event e, kn_stream s)
{
	KN_CHECK(cudaEventRecord(e, s));
	return 0;
}

extern "C" int kn_event_elapsed_ms(kn_event start, kn_event end, float *ms)
{
	KN_CHECK(cudaEventSynchronize(end));
	KN_CHECK(cudaEventElapsedTime(ms, start, end));
	return 0;
}

extern "C" int kn_capture_begin(kn_stream s)
{
	KN_REQUIRE(s);
	KN_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
	return 0;
}

extern "C" int kn_capture_end(kn_stream s, int ok, kn_graph *g)
{
	cudaGraph_t graph = NULL;
	cudaGraphExec_t exec = NULL;
	cudaError_t e = cudaStreamEndCapture(s, &graph);

	*g = NULL;
	if (e != cudaSuccess || !ok) {
		if (graph)
			cudaGraphDestroy(graph);
		cudaGetLastError();
		return e != cudaSuccess ? kn_status(e, "cudaStreamEndCapture(s, &graph)", __FILE__,
						    __LINE__)
					: kn_fail(KN_E_DEVICE, __FILE__, __LINE__,
						  "capture abandoned");
	}
	e = cudaGraphInstantiate(&exec, graph, 0);
	cudaGraphDestroy(graph);
	if (e != cudaSuccess)
		return kn_status(e, "cudaGraphInstantiate(&exec, graph, 0)", __FILE__, __LINE__);
	*g = exec;
	return 0;
}

extern "C" int kn_graph_launch(kn_graph g, kn_stream s)
{
	KN_REQUIRE(g);
	KN_CHECK(cudaGraphLaunch(g, s));
	return 0;
}

extern "C" void kn_graph_destroy(kn_graph g)
{
	if (g)
		cudaGraphExecDestroy(g);
}
