/*
 * safetensors.h: read-only, mmapped access to one .safetensors file.
 *
 * The file is an 8-byte little-endian header length N, N bytes of JSON
 * ({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"}),
 * then the tensor data.  eng_st_open validates all of it before returning:
 * every offset inside the file, sizes matching shape x dtype, tensors tiling
 * the data area without overlap or holes, data aligned to its element size.
 * After that, tensor data pointers may be read without further checks for as
 * long as the file stays open.
 */
#ifndef TRAJBENCH_ENG_SAFETENSORS_H
#define TRAJBENCH_ENG_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

enum eng_dtype {
	ENG_DTYPE_F32 = 0,
	ENG_DTYPE_F16 = 1,
	ENG_DTYPE_BF16 = 2,
};

#define ENG_ST_MAX_DIMS 8

struct eng_st_tensor {
	const char *name;              /* owned by the file */
	enum eng_dtype dtype;
	int ndim;
	int64_t shape[ENG_ST_MAX_DIMS];
	uint64_t n_elems;
	const void *data;              /* inside the mapping; aligned to dtype */
	uint64_t n_bytes;
};

struct eng_st_file;

/* Opens, maps and validates path.  Returns 0, or ENG_E_IO (cannot open or
 * map), ENG_E_FORMAT (truncated, bad JSON, offsets that lie),
 * ENG_E_UNSUPPORTED (a dtype other than F32/F16/BF16), ENG_E_NOMEM; err
 * names the file and, where one applies, the tensor. */
int eng_st_open(const char *path, struct eng_st_file **out, struct eng_error *err);

/* Unmaps and frees.  NULL is allowed.  Tensor pointers die with the file. */
void eng_st_close(struct eng_st_file *f);

int eng_st_n_tensors(const struct eng_st_file *f);

/* The tensor called name, or NULL. */
const struct eng_st_tensor *eng_st_find(const struct eng_st_file *f, const char *name);

/* Bytes per element; the name as safetensors spells it ("BF16"). */
size_t eng_dtype_size(enum eng_dtype dt);

#endif
