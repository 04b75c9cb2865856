/*
 * safetensors.c: open, map and validate a .safetensors file.
 *
 * The whole file is mapped read-only and never copied: a 15 GB checkpoint
 * costs address space, not memory.  Because everything downstream reads
 * tensor data through raw pointers, this file is where a lying header must
 * be caught: the header length is checked against the file size, each
 * tensor's byte range against the data area and against shape x dtype, and
 * the ranges, sorted, must tile the data area exactly (no overlap, no hole),
 * which is what the reference implementation demands too.
 *
 * Refuses: dtypes other than F32, F16 and BF16 (the engine computes on no
 * others), duplicate names, more than ENG_ST_MAX_DIMS dimensions, and data
 * not aligned to its element size (the writers pad the header to 8 bytes,
 * so this only rejects hand-made files; reading them would be undefined).
 */
#include "engine/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct eng_st_file {
	char *path;
	const unsigned char *map;   /* whole file, read-only */
	size_t map_size;
	int n_tensors;
	struct eng_st_tensor *tensors; /* (n_tensors); names owned here */
};

size_t eng_dtype_size(enum eng_dtype dt)
{
	return dt == ENG_DTYPE_F32 ? 4 : 2;
}

static int parse_dtype(const char *s, enum eng_dtype *dt)
{
	if (!strcmp(s, "F32"))
		*dt = ENG_DTYPE_F32;
	else if (!strcmp(s, "F16"))
		*dt = ENG_DTYPE_F16;
	else if (!strcmp(s, "BF16"))
		*dt = ENG_DTYPE_BF16;
	else
		return -1;
	return 0;
}

/* Reads a JSON integer >= 0 as uint64; -1 when it is anything else. */
static int get_u64(const json_t *j, uint64_t *out)
{
	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(j);
	return 0;
}

static int parse_shape(struct eng_st_file *f, struct eng_st_tensor *t,
		       const json_t *shape, struct eng_error *err)
{
	size_t i;
	uint64_t n = 1, d;

	if (!json_is_array(shape) || json_array_size(shape) > ENG_ST_MAX_DIMS)
		return eng_error_set(err, ENG_E_FORMAT, f->path, 0,
				     "tensor \"%s\": shape is not an array of at most %d sizes",
				     t->name, ENG_ST_MAX_DIMS);
	t->ndim = (int)json_array_size(shape);
	for (i = 0; i < json_array_size(shape); i++) {
		if (get_u64(json_array_get(shape, i), &d) || d > INT64_MAX)
			return eng_error_set(err, ENG_E_FORMAT, f->path, 0,
					     "tensor \"%s\": shape[%zu] is not a size",
					     t->name, i);
		if (d && n > UINT64_MAX / d)
			return eng_error_set(err, ENG_E_FORMAT, f->path, 0,
					     "tensor \"%s\": shape overflows", t->name);
		n *= d;
		t->shape[i] = (int64_t)d;
	}
	t->n_elems = n;
	return 0;
}

/* Fills t from its header entry and *begin with its offset in the data
 * area; the caller sets t->data and checks the tiling of all ranges. */
static int parse_entry(struct eng_st_file *f, struct eng_st_tensor *t,
		       const json_t *e, uint64_t data_size, uint64_t *begin,
		       struct eng_error *err)
{
	const json_t *dt = json_object_get(e, "dtype");
	const json_t *off = json_object_get(e, "data_offsets");
	uint64_t end, esize;
	int rc;

	if (!json_is_object(e) || !json_is_string(dt))
		return eng_error_set(err, ENG_E_FORMAT, f->path, 0,
				     "tensor \"%s\": entry has no dtype string", t->name);
	if (parse_dtype(json_string_value(dt), &t->dtype))
		return eng_error_set(err, ENG_E_UNSUPPORTED, f->path, 0,
				     "tensor \"%s\": dtype %s is not F32, F16 or BF16",
				     t->name, json_string_value(dt));
	rc = parse_shape(f, t, json_object_get(e, "shape"), err);
	if (rc)
		return rc;
	if (!json_is_array(off) || json_array_size(off) != 2 ||
	    get_u64(json_array_get(off, 0), begin) ||
	    get_u64(json_array_get(off, 1), &end))
		return eng_error_set(err, ENG_E_FORMAT, f->path, 0,
				     "tensor \"%s\": data_offsets is not [begin, end]", t->name);
	esize = eng_dtype_size(t->dtype);
	if (*begin > end || end > data_size)
		return eng_error_set(err, ENG_E_FORMAT, f->path, 0,
				     "tensor \"%s\": data_offsets [%llu, %llu] outside the %llu data bytes",
				     t->name, (unsigned long long)*begin,
				     (unsigned long long)end, (unsigned long long)data_size);
	if (t->n_elems > UINT64_MAX / esize)
		return eng_error_set(err, ENG_E_FORMAT, f->path, 0,
				     "tensor \"%s\": shape x dtype overflows", t->name);
	if (end - *begin != t->n_elems * esize)
		return eng_error_set(err, ENG_E_FORMAT, f->path, 0,
				     "tensor \"%s\": %llu bytes but shape x dtype needs %llu",
				     t->name, (unsigned long long)(end - *begin),
				     (unsigned long long)(t->n_elems * esize));
	t->n_bytes = end - *begin;
	return 0;
}

struct range {
	uint64_t begin, end;
	int idx;
};

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

/* The sorted ranges must cover [0, data_size) exactly once. */
static int check_tiling(struct eng_st_file *f, struct range *r, int n,
			uint64_t data_size, struct eng_error *err)
{
	uint64_t at = 0;
	int i;

	qsort(r, (size_t)n, sizeof(*r), cmp_range);
	for (i = 0; i < n; i++) {
		if (r[i].begin != at)
			return eng_error_set(err, ENG_E_FORMAT, f->path, 0,
					     "tensor \"%s\": data starts at %llu, expected %llu (%s)",
					     f->tensors[r[i].idx].name,
					     (unsigned long long)r[i].begin,
					     (unsigned long long)at,
					     r[i].begin < at ? "overlap" : "hole");
		at = r[i].end;
	}
	if (at != data_size)
		return eng_error_set(err, ENG_E_FORMAT, f->path, 0,
				     "tensors cover %llu of the %llu data bytes",
				     (unsigned long long)at, (unsigned long long)data_size);
	return 0;
}

static int parse_header(struct eng_st_file *f, const json_t *root,
			uint64_t data_off, struct eng_error *err)
{
	uint64_t data_size = f->map_size - data_off;
	struct range *r;
	const char *key;
	json_t *val;
	int n = 0, rc = 0;

	f->tensors = calloc(json_object_size(root) + 1, sizeof(*f->tensors));
	r = calloc(json_object_size(root) + 1, sizeof(*r));
	if (!f->tensors || !r) {
		free(r);
		return eng_error_set(err, ENG_E_NOMEM, f->path, 0, "out of memory");
	}
	json_object_foreach((json_t *)root, key, val) {
		struct eng_st_tensor *t = &f->tensors[n];

		if (!strcmp(key, "__metadata__"))
			continue;
		t->name = strdup(key);
		if (!t->name) {
			rc = eng_error_set(err, ENG_E_NOMEM, f->path, 0, "out of memory");
			break;
		}
		f->n_tensors = ++n;
		rc = parse_entry(f, t, val, data_size, &r[n - 1].begin, err);
		if (rc)
			break;
		r[n - 1].end = r[n - 1].begin + t->n_bytes;
		r[n - 1].idx = n - 1;
		if ((data_off + r[n - 1].begin) % eng_dtype_size(t->dtype)) {
			rc = eng_error_set(err, ENG_E_FORMAT, f->path, 0,
					   "tensor \"%s\": data not aligned to its %zu-byte elements",
					   t->name, eng_dtype_size(t->dtype));
			break;
		}
		t->data = f->map + data_off + r[n - 1].begin;
	}
	if (!rc)
		rc = check_tiling(f, r, n, data_size, err);
	free(r);
	return rc;
}

static int map_file(struct eng_st_file *f, struct eng_error *err)
{
	struct stat st;
	int fd = open(f->path, O_RDONLY | O_CLOEXEC);
	void *p;

	if (fd < 0)
		return eng_error_set(err, ENG_E_IO, f->path, 0, "cannot open: %s",
				     strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return eng_error_set(err, ENG_E_IO, f->path, 0, "not a regular file");
	}
	if (st.st_size < 8) {
		close(fd);
		return eng_error_set(err, ENG_E_FORMAT, f->path, 0,
				     "file of %lld bytes is too short for the header length",
				     (long long)st.st_size);
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return eng_error_set(err, ENG_E_IO, f->path, 0, "cannot map: %s",
				     strerror(errno));
	f->map = p;
	f->map_size = (size_t)st.st_size;
	return 0;
}

static int read_header(struct eng_st_file *f, struct eng_error *err)
{
	uint64_t n = 0;
	json_error_t jerr;
	json_t *root;
	int i, rc;

	for (i = 7; i >= 0; i--)
		n = n << 8 | f->map[i];
	if (n > f->map_size - 8)
		return eng_error_set(err, ENG_E_FORMAT, f->path, 0,
				     "header length %llu runs past the end of the %zu-byte file",
				     (unsigned long long)n, f->map_size);
	root = json_loadb((const char *)f->map + 8, (size_t)n,
			  JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return eng_error_set(err, ENG_E_FORMAT, f->path, 0,
				     "header json: %s at byte %d", jerr.text,
				     jerr.position + 8);
	if (!json_is_object(root)) {
		json_decref(root);
		return eng_error_set(err, ENG_E_FORMAT, f->path, 0,
				     "header is not a json object");
	}
	rc = parse_header(f, root, 8 + n, err);
	json_decref(root);
	return rc;
}

int eng_st_open(const char *path, struct eng_st_file **out, struct eng_error *err)
{
	struct eng_st_file *f = calloc(1, sizeof(*f));
	int rc;

	*out = NULL;
	if (!f || !(f->path = strdup(path))) {
		free(f);
		return eng_error_set(err, ENG_E_NOMEM, path, 0, "out of memory");
	}
	rc = map_file(f, err);
	if (!rc)
		rc = read_header(f, err);
	if (rc) {
		eng_st_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

void eng_st_close(struct eng_st_file *f)
{
	int i;

	if (!f)
		return;
	for (i = 0; i < f->n_tensors; i++)
		free((char *)f->tensors[i].name);
	free(f->tensors);
	if (f->map)
		munmap((void *)f->map, f->map_size);
	free(f->path);
	free(f);
}

int eng_st_n_tensors(const struct eng_st_file *f)
{
	return f->n_tensors;
}

const struct eng_st_tensor *eng_st_find(const struct eng_st_file *f, const char *name)
{
	int i;

	for (i = 0; i < f->n_tensors; i++)
		if (!strcmp(f->tensors[i].name, name))
			return &f->tensors[i];
	return NULL;
}
