/*
 * run_params.c: the run parameters as they cross the worker socket (the
 * hello's "params" object), encoded and decoded through one table of
 * (name, type, offset) so that the two directions cannot drift apart.
 *
 * Decoding is strict: an unknown key, a value of the wrong JSON type, an
 * integer out of its range or a number that is not finite is refused with
 * the key's name; nothing is cut or rounded silently.
 */
#include <config.h>
#include "engine/engine.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

enum param_type {
	P_STR,   /* const char *, copied into the caller's name buffer */
	P_MODE,  /* const char *: "replay", "generate" or "score" */
	P_BOOL,  /* bool */
	P_I32,   /* int32_t, >= 0 */
	P_U64,   /* uint64_t, as a JSON integer (two's complement above 2^63) */
	P_F64,   /* double, finite */
	P_F32,   /* float, finite (and within a float's range) */
	P_RATE,  /* double, INFINITY sent as -1 */
};

struct param_field {
	const char *name;
	enum param_type type;
	size_t off;  /* in struct eng_run_params */
};

#define RUN(f) offsetof(struct eng_run_params, f)
#define SES(f) offsetof(struct eng_run_params, session.f)

static const struct param_field fields[] = {
	{ "run", P_STR, RUN(run_name) },
	{ "mode", P_MODE, RUN(mode) },
	{ "output_details", P_BOOL, RUN(output_details) },
	{ "keep_cache", P_BOOL, RUN(keep_cache) },
	{ "warmup_requests", P_I32, RUN(warmup_requests) },
	{ "batch_size", P_I32, SES(batch_size) },
	{ "env_time_scale", P_F64, SES(env_time_scale) },
	{ "request_rate", P_RATE, SES(request_rate) },
	{ "output_len", P_I32, SES(output_len) },
	{ "recorded_output", P_BOOL, SES(recorded_output) },
	{ "ignore_eos", P_BOOL, SES(ignore_eos) },
	{ "temperature", P_F32, SES(sampling.temperature) },
	{ "top_k", P_I32, SES(sampling.top_k) },
	{ "top_p", P_F32, SES(sampling.top_p) },
	{ "seed", P_U64, SES(sampling.seed) },
	{ "arrival_seed", P_U64, SES(seed) },
};
#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))

static const char *const modes[] = { "replay", "generate", "score" };

static json_t *field_to_json(const struct eng_run_params *p, const struct param_field *f)
{
	const char *at = (const char *)p + f->off;
	const char *str;
	double d;

	switch (f->type) {
	case P_STR:
	case P_MODE:
		str = *(const char *const *)at;
		return json_string(str ? str : f->type == P_MODE ? "replay" : "run");
	case P_BOOL:
		return json_boolean(*(const bool *)at);
	case P_I32:
		return json_integer(*(const int32_t *)at);
	case P_U64:
		return json_integer((json_int_t)*(const uint64_t *)at);
	case P_F64:
		return json_real(*(const double *)at);
	case P_F32:
		return json_real((double)*(const float *)at);
	case P_RATE:
		d = *(const double *)at;
		return json_real(isfinite(d) ? d : -1.0);
	}
	return NULL;
}

json_t *eng_run_params_to_json(const struct eng_run_params *p)
{
	json_t *o = json_object();

	for (size_t i = 0; o && i < N_FIELDS; i++)
		if (json_object_set_new(o, fields[i].name, field_to_json(p, &fields[i])) != 0) {
			json_decref(o);
			return NULL;
		}
	return o;
}

/* Stores v into field f of p; 0, or -1 when v does not fit f. */
static int field_from_json(struct eng_run_params *p, const struct param_field *f,
			   const json_t *v, char *name_buf, size_t name_len)
{
	char *at = (char *)p + f->off;
	double d = json_number_value(v);
	json_int_t n = json_integer_value(v);

	switch (f->type) {
	case P_STR:
		if (!json_is_string(v) || json_string_length(v) >= name_len)
			return -1;
		memcpy(name_buf, json_string_value(v), json_string_length(v) + 1);
		*(const char **)at = name_buf;
		return 0;
	case P_MODE:
		for (size_t i = 0; json_is_string(v) && i < sizeof(modes) / sizeof(modes[0]); i++)
			if (!strcmp(json_string_value(v), modes[i])) {
				*(const char **)at = modes[i];
				return 0;
			}
		return -1;
	case P_BOOL:
		if (!json_is_boolean(v))
			return -1;
		*(bool *)at = json_is_true(v);
		return 0;
	case P_I32:
		if (!json_is_integer(v) || n < 0 || n > INT32_MAX)
			return -1;
		*(int32_t *)at = (int32_t)n;
		return 0;
	case P_U64:
		if (!json_is_integer(v))
			return -1;
		*(uint64_t *)at = (uint64_t)n;
		return 0;
	case P_F64:
	case P_F32:
	case P_RATE:
		if (!json_is_number(v) || !isfinite(d) || (f->type == P_F32 && fabs(d) > FLT_MAX))
			return -1; /* a double past FLT_MAX has no float */
		if (f->type == P_F32)
			*(float *)at = (float)d;
		else
			*(double *)at = f->type == P_RATE && d < 0 ? INFINITY : d;
		return 0;
	}
	return -1;
}

int eng_run_params_from_json(const json_t *j, struct eng_run_params *p, char *name_buf,
			     size_t name_len, struct eng_error *err)
{
	const char *key;
	const json_t *v;

	memset(p, 0, sizeof(*p));
	eng_session_default_params(&p->session);
	p->run_name = "run";
	p->mode = "replay";
	if (!json_is_object(j))
		return eng_error_set(err, ENG_E_INVALID, NULL, 0, "run params must be an object");
	json_object_foreach((json_t *)j, key, v) {
		size_t i = 0;

		while (i < N_FIELDS && strcmp(fields[i].name, key))
			i++;
		if (i == N_FIELDS)
			return eng_error_set(err, ENG_E_INVALID, NULL, 0,
					     "unknown run parameter \"%s\"", key);
		if (field_from_json(p, &fields[i], v, name_buf, name_len) != 0)
			return eng_error_set(err, ENG_E_INVALID, NULL, 0,
					     "bad value for run parameter \"%s\"", key);
	}
	return 0;
}
