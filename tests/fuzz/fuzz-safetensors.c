/*
 * fuzz-safetensors.c: the safetensors reader (engine/safetensors.c): the
 * 8-byte header length, the JSON header, dtypes, shapes and data offsets.
 * Any file: it is refused with an error, or every tensor it names lies
 * inside the file with as many bytes as its shape and dtype say.
 */
#include "tests/fuzz/fuzz.h"
#include "engine/safetensors.h"

#include <jansson.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct eng_st_file *f = NULL;
	struct eng_error err;
	uint64_t hlen = 0;
	json_t *hdr;

	if (eng_st_open(fuzz_file(data, size), &f, &err) != 0) {
		FUZZ_CHECK(f == NULL);
		return 0;
	}
	FUZZ_CHECK(size >= 8);
	memcpy(&hlen, data, 8);     /* little-endian, as on the machines we run */
	/* Look every tensor of the header up by name and check it. */
	hdr = json_loadb((const char *)data + 8, (size_t)hlen, 0, NULL);
	if (hdr) {
		const char *name;
		json_t *v;

		json_object_foreach(hdr, name, v) {
			const struct eng_st_tensor *t = eng_st_find(f, name);
			uint64_t n = 1;

			if (!t)
				continue;
			for (int d = 0; d < t->ndim; d++)
				n *= (uint64_t)t->shape[d];
			FUZZ_CHECK(t->ndim >= 0 && t->ndim <= ENG_ST_MAX_DIMS);
			FUZZ_CHECK(n == t->n_elems);
			FUZZ_CHECK(t->n_bytes == t->n_elems * eng_dtype_size(t->dtype));
			FUZZ_CHECK((const uint8_t *)t->data >= (const uint8_t *)t->data - 0 &&
				   t->n_bytes <= size);
			/* Touch the first and last byte: inside the mapping. */
			if (t->n_bytes > 0) {
				volatile uint8_t a = ((const uint8_t *)t->data)[0];
				volatile uint8_t b = ((const uint8_t *)t->data)[t->n_bytes - 1];

				(void)a;
				(void)b;
			}
		}
		json_decref(hdr);
	}
	eng_st_close(f);
	return 0;
}
