/*
 * json_load.c: JSON files of a model directory (see json_load.h).
 */
#include "engine/json_load.h"

#include <errno.h>
#include <math.h>
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
