/*
 * ids.c: the growable array of token ids (see ids.h).
 */
#include "engine/ids.h"
#include "engine/error.h"

#include <stdlib.h>
#include <string.h>

int eng_ids_append(struct eng_ids *v, const int32_t *ids, size_t n)
{
	if (v->n + n > v->cap) {
		size_t nc = v->cap ? v->cap : 64;
		int32_t *p;

		while (nc < v->n + n)
			nc *= 2;
		p = realloc(v->ids, nc * sizeof(*p));
		if (!p)
			return ENG_E_NOMEM;
		v->ids = p;
		v->cap = nc;
	}
	memcpy(v->ids + v->n, ids, n * sizeof(*ids));
	v->n += n;
	return 0;
}

int eng_ids_push(struct eng_ids *v, int32_t id)
{
	if (v->n < v->cap) {
		v->ids[v->n++] = id;
		return 0;
	}
	return eng_ids_append(v, &id, 1);
}

void eng_ids_free(struct eng_ids *v)
{
	free(v->ids);
	v->ids = NULL;
	v->n = v->cap = 0;
}
