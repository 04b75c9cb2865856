/*
 * fuzz-traj.c: traj-extract's JSON scanner and the projection of an R2E-Gym
 * trajectory onto a `trajectory` record (tools/traj).  Any bytes: the
 * projection fails cleanly or writes a record that the next tool, which
 * reads with jansson, accepts as a JSON object of type "trajectory".  The
 * scanner alone must also stay within the bytes it was given.
 */
#include "tests/fuzz/fuzz.h"
#include "tools/traj/nd_traj.h"

#include <jansson.h>

/* Walks any value with the scanner, as deep as it goes. */
static void scan_all(const char *s, size_t n)
{
	struct nd_scan sc;

	nd_scan_init(&sc, s, n);
	if (nd_scan_skip(&sc) == 0)
		(void)nd_scan_finish(&sc);
	FUZZ_CHECK(nd_scan_offset(&sc) <= n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct nd_traj *t;
	struct nd_traj_params p;
	struct nd_traj_error err;
	const char *doc = (const char *)data;

	if (!t && !(t = nd_traj_new()))
		abort();
	scan_all(doc, size);
	nd_traj_default_params(&p);
	/* The last byte picks a --max-turns now and then. */
	if (size > 0 && data[size - 1] < 4)
		p.max_turns = data[size - 1];
	if (nd_traj_project(t, doc, size, "fuzz", 1, &p, &err) == ND_TRAJ_OK) {
		size_t len;
		const char *rec = nd_traj_record(t, &len);
		json_error_t jerr;
		json_t *j = json_loadb(rec, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);

		if (!j)
			fprintf(stderr, "record refused by jansson: %s\n%.*s\n", jerr.text,
				(int)(len > 2000 ? 2000 : len), rec);
		FUZZ_CHECK(j && json_is_object(j));
		FUZZ_CHECK(json_is_string(json_object_get(j, "type")) &&
			   strcmp(json_string_value(json_object_get(j, "type")), "trajectory") == 0);
		FUZZ_CHECK(json_is_array(json_object_get(j, "steps")));
		FUZZ_CHECK(p.max_turns < 0 ||
			   json_array_size(json_object_get(j, "steps")) <= (size_t)p.max_turns);
		json_decref(j);
	} else {
		FUZZ_CHECK(err.status != ND_TRAJ_OK);
	}
	return 0;
}
