/*
 * json_load.h: reading the JSON files of a model directory (config.json,
 * generation_config.json, tokenizer_config.json) as Hugging Face's Python
 * loaders read them.
 *
 * Python's json reads integers of any size, and real files use that:
 * transformers writes model_max_length = 1000000000000000019884624838656
 * ("no limit") in tokenizer_config.json.  jansson refuses integers beyond
 * 64 bits for the whole document, so such a document is read a second time
 * with JSON_DECODE_INT_AS_REAL: every number is then a real, exact up to
 * 2^53, and readers of integer fields go through eng_json_int, which takes
 * an integral real as well.  Documents without such a number read exactly
 * as before (integers stay integers); a huge number in a field we use is
 * refused by that field's reader, which names the key.
 *
 * Integer fields of records and files are read with eng_json_get_int_range
 * (engine.h), never cast: a value out of the field's range is an error
 * naming the field and the value, not a number cut to fit.
 */
#ifndef TRAJBENCH_ENG_JSON_LOAD_H
#define TRAJBENCH_ENG_JSON_LOAD_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "engine/engine.h"
#include "engine/error.h"

/* Loads path with jansson's flags (JSON_REJECT_DUPLICATES, ...).  0 and
 * *out (a new reference); ENG_E_IO (unreadable), ENG_E_FORMAT (bad JSON,
 * err names the line). */
int eng_json_load_file(const char *path, size_t flags, json_t **out, struct eng_error *err);

/* True, with *out, when v is an integer, or a real with an integral value
 * within +-2^53 (what a document read as reals holds). */
bool eng_json_int(const json_t *v, json_int_t *out);

#endif
