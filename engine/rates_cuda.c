/*
 * rates_cuda.c: the ceilings the CUDA backend's roofline is measured
 * against, taken once when a run's engine is loaded, as tests/bench-cuda.c
 * takes them: device-to-device copy bandwidth (bytes read plus written)
 * and the cuBLAS bf16 GEMM rate at 8192^3, each the median of timed runs
 * after warm-up runs (events on the default stream).  Smaller than the
 * benchmark's (256 MiB copies, fewer runs): about 30 ms on an H100, and
 * at most 640 MiB of device memory, freed at once (the KV pool is sized
 * to leave 4 GiB for activations).
 */
#include "engine/cuda_backend.h"
#include "kernels/kn.h"

#include <stdlib.h>

#define COPY_BYTES ((size_t)256 << 20)
#define GEMM_N 8192
#define WARM 2
#define RUNS 7

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), cmp_d);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Seconds of each of RUNS copies of a to b, after WARM untimed ones. */
static int time_copies(void *b, const void *a, kn_event e0, kn_event e1, double *t)
{
	for (int i = 0; i < WARM + RUNS; i++) {
		float ms;

		if (kn_event_record(e0, NULL) || kn_memcpy_d2d(b, a, COPY_BYTES, NULL) ||
		    kn_event_record(e1, NULL) || kn_event_elapsed_ms(e0, e1, &ms))
			return -1;
		if (i >= WARM)
			t[i - WARM] = ms * 1e-3;
	}
	return 0;
}

static int time_gemms(struct kn_gemm *g, void *c, const uint16_t *a, const uint16_t *b,
		      kn_event e0, kn_event e1, double *t)
{
	for (int i = 0; i < WARM + RUNS; i++) {
		float ms;

		if (kn_event_record(e0, NULL) ||
		    kn_gemm_bf16(g, c, 0, GEMM_N, a, b, GEMM_N, GEMM_N, GEMM_N) ||
		    kn_event_record(e1, NULL) || kn_event_elapsed_ms(e0, e1, &ms))
			return -1;
		if (i >= WARM)
			t[i - WARM] = ms * 1e-3;
	}
	return 0;
}

int eng_cuda_measure_rates(int device, struct eng_roofline_rates *out, struct eng_error *err)
{
	size_t sq = (size_t)GEMM_N * GEMM_N * 2;
	void *a = NULL, *b = NULL, *c = NULL;
	struct kn_gemm *g = NULL;
	kn_event e0 = NULL, e1 = NULL;
	double tc[RUNS], tg[RUNS];
	int bad;

	out->bandwidth_bytes_s = out->gemm_flops_s = 0;
	bad = kn_set_device(device) || kn_malloc(&a, sq) || kn_malloc(&b, sq) ||
	      kn_malloc(&c, sq) || kn_gemm_create(&g, NULL) || kn_event_create(&e0) ||
	      kn_event_create(&e1) || kn_fill_random_bf16(a, sq / 2, 1, 0, 1, NULL) ||
	      kn_fill_random_bf16(b, sq / 2, 2, 0, 1, NULL) ||
	      time_gemms(g, c, a, b, e0, e1, tg);
	/* The GEMM operands go before the copy buffers come: at most
	 * 640 MiB held at once. */
	if (!bad) {
		kn_free(a);
		kn_free(b);
		a = b = NULL;
		bad = kn_malloc(&a, COPY_BYTES) || kn_malloc(&b, COPY_BYTES) ||
		      kn_memset(a, 1, COPY_BYTES, NULL) || time_copies(b, a, e0, e1, tc);
	}
	if (!bad) {
		out->gemm_flops_s = 2.0 * GEMM_N * (double)GEMM_N * GEMM_N / median(tg, RUNS);
		out->bandwidth_bytes_s = 2.0 * (double)COPY_BYTES / median(tc, RUNS);
	}
	kn_free(a);
	kn_free(b);
	kn_free(c);
	kn_gemm_free(g);
	if (e0)
		kn_event_destroy(e0);
	if (e1)
		kn_event_destroy(e1);
	if (bad)
		return eng_error_set(err, ENG_E_DEVICE, "cuda", 0,
				     "measuring the copy bandwidth and GEMM rate: %s", kn_last_error());
	return 0;
}
