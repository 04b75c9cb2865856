/*
 * ids.h: a growable array of token ids, what the tokenizer, the chat
 * templates and the conversations fill.  It sits below the tokenizer and
 * knows nothing of it.
 */
#ifndef TRAJBENCH_ENG_IDS_H
#define TRAJBENCH_ENG_IDS_H

#include <stddef.h>
#include <stdint.h>

/* A growable array of token ids.  Zero-initialize it, let encode append to
 * it, and release it with eng_ids_free. */
struct eng_ids {
	int32_t *ids;
	size_t n;
	size_t cap;
};

/* Appends one id; returns 0 or ENG_E_NOMEM. */
int eng_ids_push(struct eng_ids *v, int32_t id);
/* Appends n ids; returns 0 or ENG_E_NOMEM. */
int eng_ids_append(struct eng_ids *v, const int32_t *ids, size_t n);
void eng_ids_free(struct eng_ids *v);

#endif
