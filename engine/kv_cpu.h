/*
 * kv_cpu.h: the CPU backend's pool of KV-cache pages.
 *
 * A page holds page_size consecutive token positions of one sequence, for
 * every layer: K and V of a page in a layer are each (page_size, n_kv_heads,
 * head_dim) fp32.  Which pages belong to which sequence is not known here:
 * callers pass block tables (page ids in position order) with every forward.
 */
#ifndef TRAJBENCH_ENG_KV_CPU_H
#define TRAJBENCH_ENG_KV_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

struct eng_kv_cpu {
	int n_layers, n_pages, page_size, n_kv_heads, head_dim;
	float *k;   /* (n_layers, n_pages, page_size, n_kv_heads, head_dim) f32 */
	float *v;   /* same shape as k */
};

/* Allocates the pool (zeroed).  Returns 0, ENG_E_INVALID for sizes < 1 or
 * too large to address, ENG_E_NOMEM. */
int eng_kv_cpu_init(struct eng_kv_cpu *kv, int n_layers, int n_pages, int page_size,
		    int n_kv_heads, int head_dim, struct eng_error *err);
void eng_kv_cpu_free(struct eng_kv_cpu *kv);

/* Bytes the pool holds (K and V). */
size_t eng_kv_cpu_bytes(const struct eng_kv_cpu *kv);

/* The (n_kv_heads, head_dim) K or V row of token slot `slot` of `page` in
 * `layer`.  No bounds checks: the forward pass validates block tables. */
static inline float *eng_kv_cpu_k(const struct eng_kv_cpu *kv, int layer, int page, int slot)
{
	return kv->k + (((size_t)layer * kv->n_pages + page) * kv->page_size + slot) *
		       ((size_t)kv->n_kv_heads * kv->head_dim);
}

static inline float *eng_kv_cpu_v(const struct eng_kv_cpu *kv, int layer, int page, int slot)
{
	return kv->v + (((size_t)layer * kv->n_pages + page) * kv->page_size + slot) *
		       ((size_t)kv->n_kv_heads * kv->head_dim);
}

#endif
