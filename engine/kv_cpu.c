/*
 * kv_cpu.c: allocation of the CPU page pool (layout in kv_cpu.h).
 *
 * One allocation for K and one for V, so that a page of one layer is a
 * contiguous (page_size, n_kv_heads, head_dim) block and attention reads
 * keys of consecutive positions from consecutive memory.
 */
#include "engine/kv_cpu.h"

#include <stdlib.h>
#include <string.h>

int eng_kv_cpu_init(struct eng_kv_cpu *kv, int n_layers, int n_pages, int page_size,
		    int n_kv_heads, int head_dim, struct eng_error *err)
{
	size_t n;

	memset(kv, 0, sizeof(*kv));
	if (n_layers < 1 || n_pages < 1 || page_size < 1 || n_kv_heads < 1 || head_dim < 1)
		return eng_error_set(err, ENG_E_INVALID, "kv cache", 0,
				     "page pool sizes must be positive");
	n = (size_t)n_layers * (size_t)n_pages;
	if (n > SIZE_MAX / (size_t)page_size / (size_t)n_kv_heads / (size_t)head_dim /
		    sizeof(float))
		return eng_error_set(err, ENG_E_INVALID, "kv cache", 0,
				     "page pool too large to address");
	n *= (size_t)page_size * n_kv_heads * head_dim;
	kv->k = calloc(n, sizeof(float));
	kv->v = calloc(n, sizeof(float));
	if (!kv->k || !kv->v) {
		eng_kv_cpu_free(kv);
		return eng_error_set(err, ENG_E_NOMEM, "kv cache", 0,
				     "cannot allocate %d pages of %d tokens", n_pages, page_size);
	}
	kv->n_layers = n_layers;
	kv->n_pages = n_pages;
	kv->page_size = page_size;
	kv->n_kv_heads = n_kv_heads;
	kv->head_dim = head_dim;
	return 0;
}

void eng_kv_cpu_free(struct eng_kv_cpu *kv)
{
	free(kv->k);
	free(kv->v);
	kv->k = kv->v = NULL;
}

size_t eng_kv_cpu_bytes(const struct eng_kv_cpu *kv)
{
	return 2 * (size_t)kv->n_layers * kv->n_pages * kv->page_size * kv->n_kv_heads *
	       kv->head_dim * sizeof(float);
}
