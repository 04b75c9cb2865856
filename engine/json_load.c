/*
 * json_load.c: JSON files of a model directory (see json_load.h).
 */
#include "engine/json_load.h"

#include "engine/engine.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int eng_json_load_file(const char *path, size_t flags, json_t **out, struct eng_error *err)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, flags, &jerr);

	if (!root && json_error_code(&jerr) == json_error_numeric_overflow)
		root = json_load_file(path, flags | JSON_DECODE_INT_AS_REAL, &jerr);
	*out = root;
	if (root)
		return 0;
	if (access(path, R_OK) != 0)
		return eng_error_set(err, ENG_E_IO, path, 0, "%s", strerror(errno));
	return eng_error_set(err, ENG_E_FORMAT, path, jerr.line > 0 ? jerr.line : 0, "%s",
			     jerr.text);
}

bool eng_json_int(const json_t *v, json_int_t *out)
{
	double d;

	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return true;
	}
	if (!json_is_real(v))
		return false;
	d = json_real_value(v);
	if (!(fabs(d) <= 9007199254740992.0) || d != floor(d))
		return false;
	*out = (json_int_t)d;
	return true;
}

/* What v is, for a message: its value when it is a number, else its kind. */
static const char *describe(const json_t *v, char *buf, size_t n)
{
	switch (json_typeof(v)) {
	case JSON_INTEGER:
		snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return buf;
	case JSON_REAL:
		snprintf(buf, n, "%.17g", json_real_value(v));
		return buf;
	case JSON_STRING: return "a string";
	case JSON_ARRAY: return "an array";
	case JSON_OBJECT: return "an object";
	case JSON_TRUE: return "true";
	case JSON_FALSE: return "false";
	case JSON_NULL: return "null";
	}
	return "unknown";
}

int eng_json_int_range(const json_t *v, const char *name, json_int_t lo, json_int_t hi,
		       json_int_t *out, struct eng_error *err)
{
	json_int_t n;
	char buf[40];

	if (v && eng_json_int(v, &n) && n >= lo && n <= hi) {
		*out = n;
		return 0;
	}
	return eng_error_set(err, ENG_E_FORMAT, NULL, 0,
			     "\"%s\" must be an integer in [%" JSON_INTEGER_FORMAT ", %"
			     JSON_INTEGER_FORMAT "], not %s", name, lo, hi,
			     v ? describe(v, buf, sizeof(buf)) : "missing");
}

int eng_json_get_int_range(const json_t *obj, const char *key, json_int_t lo, json_int_t hi,
			   json_int_t *out, struct eng_error *err)
{
	const json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return 1;
	return eng_json_int_range(v, key, lo, hi, out, err);
}
