/*
 * comm.h: the all-reduce between the ranks of a tensor-parallel group,
 * all driven by one host thread of one process (backend_cuda.c).
 *
 * Two kinds, picked from the ranks' devices:
 *   "local": every rank on the same device and stream: the sum is one
 *     kernel over the ranks' buffers (kn_tp_sum_f32), written back to
 *     each.  NCCL refuses two ranks on one device; this kind is what lets
 *     tp > 1 run, and be checked against tp = 1, on a single GPU.
 *   "nccl": every rank on its own device: one NCCL communicator per
 *     rank (ncclCommInitAll), ncclAllReduce of all ranks in one group.
 *     NCCL is loaded at run time (dlopen of $TRAJBENCH_NCCL, then
 *     libnccl.so.2), so that neither the build nor a tp = 1 run needs it.
 *     NVLink multicast (NVLS) is kept off: NCCL_NVLS_ENABLE=0 is set in
 *     the environment before NCCL initializes.
 * Ranks that share some devices but not all are refused.
 *
 *   struct eng_comm *c;
 *   eng_comm_create(2, devs, streams, &c, &err);
 *   eng_comm_allreduce_f32(c, bufs, n, &err);   bufs[r] on rank r's device
 *   eng_comm_free(c);
 */
#ifndef TRAJBENCH_ENG_COMM_H
#define TRAJBENCH_ENG_COMM_H

#include <stddef.h>

#include "engine/error.h"
#include "kernels/kn.h"

struct eng_comm;

/* A group of n ranks (1 <= n <= KN_TP_MAX); rank r runs on devices[r]
 * and enqueues on streams[r] (the arrays are copied; the streams stay
 * the caller's).  Returns 0, ENG_E_INVALID (devices partly shared, bad
 * n), ENG_E_DEVICE (NCCL not found, or its initialization failed; err
 * names what was looked for), ENG_E_NOMEM. */
int eng_comm_create(int n, const int *devices, const kn_stream *streams,
		    struct eng_comm **out, struct eng_error *err);
void eng_comm_free(struct eng_comm *c);

/* "local" or "nccl". */
const char *eng_comm_kind(const struct eng_comm *c);

/* In place: every bufs[r] (n floats on rank r's device) becomes the sum
 * over the ranks, enqueued on the ranks' streams (nothing waits on the
 * host).  Returns 0 or ENG_E_DEVICE. */
int eng_comm_allreduce_f32(struct eng_comm *c, float *const *bufs, size_t n,
			   struct eng_error *err);

#endif
