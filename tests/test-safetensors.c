/*
 * test-safetensors.c: a well-formed file reads back exactly; hand-made
 * corrupt files (truncated, lying headers, overlapping or ragged offsets,
 * bad dtypes) are refused with an error naming the file and the tensor.
 * Run under ASan, this is also the out-of-bounds test of the parser.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu_ops.h"
#include "engine/safetensors.h"
#include "tests/tap.h"
#include "tests/test-model-helper.h"

static char *dir;

/* Writes 8-byte length + header (space-padded to 8 bytes, as writers do)
 * + n_data bytes of data; returns the path. */
static const char *raw(const char *name, const char *header, size_t n_data)
{
	static char path[4096];
	size_t hl = (strlen(header) + 7) / 8 * 8, i;
	unsigned char *b = calloc(8 + hl + n_data + 1, 1);

	for (i = 0; i < 8; i++)
		b[i] = (unsigned char)((hl >> (8 * i)) & 0xff);
	memset(b + 8, ' ', hl);
	memcpy(b + 8, header, strlen(header));
	for (i = 0; i < n_data; i++)
		b[8 + hl + i] = (unsigned char)i;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	tm_write_file(path, b, 8 + hl + n_data);
	free(b);
	return path;
}

/* Opens path, expects code, and the message to contain want. */
static void refuse(const char *path, int code, const char *want, const char *what)
{
	struct eng_st_file *f = (struct eng_st_file *)1;
	struct eng_error err;
	int rc = eng_st_open(path, &f, &err);

	tap_ok(rc == code && f == NULL && strstr(err.msg, want) && !strcmp(err.file, path),
	       "%s is refused (%s: %s)", what, err.file, err.msg);
}

static void check_roundtrip(void)
{
	struct tm_st *st = tm_st_new();
	float a[6] = { 1, -2, 3.5f, 0.25f, -0.125f, 100 }, b[3] = { 1.5f, -3, 65504 };
	float c[4] = { 0.1f, 0.2f, 0.3f, 0.4f };
	int64_t sa[2] = { 2, 3 }, sb[1] = { 3 }, sc[3] = { 1, 2, 2 };
	const struct eng_st_tensor *t;
	struct eng_st_file *f;
	struct eng_error err;
	char path[4096];
	int ok;

	tm_st_add(st, "a", ENG_DTYPE_F32, 2, sa, a);
	tm_st_add(st, "b", ENG_DTYPE_F16, 1, sb, b);
	tm_st_add(st, "c.weight", ENG_DTYPE_BF16, 3, sc, c);
	snprintf(path, sizeof(path), "%s/ok.safetensors", dir);
	tm_st_write(st, path);
	tm_st_free(st);
	ok = eng_st_open(path, &f, &err) == 0;
	tap_ok(ok && eng_st_n_tensors(f) == 3, "a valid file opens with its 3 tensors (__metadata__ ignored)");
	if (!ok)
		return;
	t = eng_st_find(f, "a");
	tap_ok(t && t->dtype == ENG_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 &&
	       t->shape[1] == 3 && !memcmp(t->data, a, sizeof(a)), "f32 tensor reads back exactly");
	t = eng_st_find(f, "b");
	tap_ok(t && t->dtype == ENG_DTYPE_F16 && eng_f16_to_f32(((const uint16_t *)t->data)[2]) == 65504 &&
	       eng_f16_to_f32(((const uint16_t *)t->data)[0]) == 1.5f, "f16 tensor reads back");
	t = eng_st_find(f, "c.weight");
	tap_ok(t && t->dtype == ENG_DTYPE_BF16 && t->ndim == 3 && t->n_elems == 4 &&
	       eng_bf16_to_f32(((const uint16_t *)t->data)[3]) == eng_bf16_to_f32(eng_f32_to_bf16(0.4f)),
	       "bf16 tensor reads back");
	tap_ok(eng_st_find(f, "missing") == NULL, "an absent name is not found");
	eng_st_close(f);
}

static void check_truncated(void)
{
	char path[4096], *buf;
	FILE *fp;
	long n;

	snprintf(path, sizeof(path), "%s/ok.safetensors", dir);
	fp = fopen(path, "rb");
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)n);
	if (fread(buf, 1, (size_t)n, fp) != (size_t)n)
		n = 0;
	fclose(fp);
	snprintf(path, sizeof(path), "%s/trunc.safetensors", dir);
	tm_write_file(path, buf, (size_t)n - 3);
	refuse(path, ENG_E_FORMAT, "outside the", "a file cut inside the data");
	tm_write_file(path, buf, 40);
	refuse(path, ENG_E_FORMAT, "past the end", "a file cut inside the header");
	tm_write_file(path, buf, 5);
	refuse(path, ENG_E_FORMAT, "too short", "a file shorter than the header length");
	tm_write_file(path, buf, 0);
	refuse(path, ENG_E_FORMAT, "too short", "an empty file");
	free(buf);
}

static void check_lies(void)
{
	static const char *const e = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

	refuse(raw("size.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8),
	       ENG_E_FORMAT, "shape x dtype", "a size that disagrees with shape x dtype");
	refuse(raw("past.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8),
	       ENG_E_FORMAT, "outside the 8 data bytes", "offsets past the end of the data");
	refuse(raw("huge.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
		   "\"data_offsets\":[0,8]}}", 8), ENG_E_FORMAT, "overflows", "a shape whose byte size overflows");
	refuse(raw("rev.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8),
	       ENG_E_FORMAT, "outside", "begin after end");
	refuse(raw("over.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12),
	       ENG_E_FORMAT, "overlap", "overlapping tensors");
	refuse(raw("hole.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12),
	       ENG_E_FORMAT, "hole", "a hole between tensors");
	refuse(raw("tail.st", e, 12), ENG_E_FORMAT, "cover 8 of the 12", "bytes after the last tensor");
	refuse(raw("mis.st", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]},"
		   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}  ", 6),
	       ENG_E_FORMAT, "aligned", "data not aligned to its element size");
}

static void check_bad_json(void)
{
	refuse(raw("json.st", "{\"t\":{\"dtype\":\"F32\",", 8), ENG_E_FORMAT, "header json",
	       "a header that is not json");
	refuse(raw("arr.st", "[1,2]   ", 0), ENG_E_FORMAT, "not a json object", "a header array");
	refuse(raw("dt.st", "{\"t\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8),
	       ENG_E_UNSUPPORTED, "I64", "dtype I64");
	refuse(raw("nodt.st", "{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
	       ENG_E_FORMAT, "dtype", "an entry without dtype");
	refuse(raw("shape.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4),
	       ENG_E_FORMAT, "shape[0]", "a negative dimension");
	refuse(raw("offs.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4),
	       ENG_E_FORMAT, "data_offsets", "data_offsets of one number");
	refuse(raw("dup.st", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		   "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
	       ENG_E_FORMAT, "duplicate", "a duplicate tensor name");
	refuse(raw("len.st", "", 0), ENG_E_FORMAT, "header json", "an empty header");
	{
		char path[4096];

		snprintf(path, sizeof(path), "%s/absent.st", dir);
		refuse(path, ENG_E_IO, "cannot open", "a missing file");
	}
}

int main(void)
{
	dir = tm_mkdtemp("st");
	if (!dir)
		return tap_skip_all("no temporary directory");
	check_roundtrip();
	check_truncated();
	check_lies();
	check_bad_json();
	tm_rmtree(dir);
	free(dir);
	return tap_done();
}
