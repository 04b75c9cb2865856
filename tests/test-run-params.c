/*
 * test-run-params.c: the run parameters through the worker's wire format:
 * every field survives the round trip, and the decoder refuses unknown
 * keys, wrong types, integers out of range and unknown modes, naming the
 * key.
 */
#include <config.h>
#include "engine/engine.h"
#include "tests/tap.h"

#include <math.h>
#include <string.h>

static int decode(const char *text, struct eng_run_params *p, char *name, size_t n,
		  struct eng_error *err)
{
	json_t *j = json_loads(text, 0, NULL);
	int rc = eng_run_params_from_json(j, p, name, n, err);

	json_decref(j);
	return rc;
}

static void round_trip(void)
{
	struct eng_run_params a = { .run_name = "bs-16", .mode = "generate", .output_details = true,
				    .keep_cache = true, .warmup_requests = 3 }, b;
	char name[64];
	struct eng_error err;
	json_t *j;

	eng_session_default_params(&a.session);
	a.session.batch_size = 16;
	a.session.env_time_scale = 0.5;
	a.session.request_rate = 2.5;
	a.session.output_len = 7;
	a.session.recorded_output = true;
	a.session.ignore_eos = true;
	a.session.sampling.temperature = 0.75f;
	a.session.sampling.top_k = 40;
	a.session.sampling.top_p = 0.9f;
	a.session.sampling.seed = UINT64_MAX - 5;
	a.session.seed = 12345;
	j = eng_run_params_to_json(&a);
	tap_ok(j && eng_run_params_from_json(j, &b, name, sizeof(name), &err) == 0,
	       "the encoded params decode");
	json_decref(j);
	tap_ok(!strcmp(b.run_name, "bs-16") && !strcmp(b.mode, "generate") && b.output_details &&
	       b.keep_cache && b.warmup_requests == 3, "run fields survive the round trip");
	tap_ok(b.session.batch_size == 16 && b.session.env_time_scale == 0.5 &&
	       b.session.request_rate == 2.5 && b.session.output_len == 7 &&
	       b.session.recorded_output && b.session.ignore_eos,
	       "session fields survive the round trip");
	tap_ok(b.session.sampling.temperature == 0.75f && b.session.sampling.top_k == 40 &&
	       b.session.sampling.top_p == 0.9f && b.session.sampling.seed == UINT64_MAX - 5 &&
	       b.session.seed == 12345, "sampling fields and seeds survive the round trip");
	a.session.request_rate = INFINITY;
	j = eng_run_params_to_json(&a);
	tap_ok(j && eng_run_params_from_json(j, &b, name, sizeof(name), &err) == 0 &&
	       isinf(b.session.request_rate), "an infinite request rate survives as -1");
	json_decref(j);
}

static void refusals(void)
{
	static const struct { const char *json, *key; } bad[] = {
		{ "{\"batch_sise\":4}", "batch_sise" },
		{ "{\"batch_size\":-1}", "batch_size" },
		{ "{\"batch_size\":4294967297}", "batch_size" },
		{ "{\"batch_size\":2.5}", "batch_size" },
		{ "{\"top_k\":\"3\"}", "top_k" },
		{ "{\"mode\":\"bogus\"}", "mode" },
		{ "{\"ignore_eos\":1}", "ignore_eos" },
		{ "{\"temperature\":\"hot\"}", "temperature" },
		{ "{\"temperature\":1e300}", "temperature" },
		{ "{\"top_p\":-1e39}", "top_p" },
	};
	char name[8];
	struct eng_run_params p;
	struct eng_error err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = decode(bad[i].json, &p, name, sizeof(name), &err);

		tap_ok(rc == ENG_E_INVALID && strstr(err.msg, bad[i].key) != NULL,
		       "%s refused, naming \"%s\" (%s)", bad[i].json, bad[i].key, err.msg);
	}
	tap_ok(decode("{\"run\":\"a-run-name-too-long\"}", &p, name, sizeof(name), &err) != 0,
	       "a run name longer than the buffer is refused, not cut");
	tap_ok(decode("[]", &p, name, sizeof(name), &err) == ENG_E_INVALID,
	       "params that are not an object are refused");
}

int main(void)
{
	round_trip();
	refusals();
	return tap_done();
}
