/*
 * test-ids.h: comparing token ids with the reference ids of test data.
 */
#ifndef TRAJBENCH_TESTS_TEST_IDS_H
#define TRAJBENCH_TESTS_TEST_IDS_H

#include <jansson.h>

#include "engine/tokenizer.h"

/* True when got holds exactly the integers of the JSON array want. */
static inline int test_ids_equal(const struct eng_ids *got, const json_t *want)
{
	if (got->n != json_array_size(want))
		return 0;
	for (size_t i = 0; i < got->n; i++)
		if (got->ids[i] != json_integer_value(json_array_get(want, i)))
			return 0;
	return 1;
}

#endif
