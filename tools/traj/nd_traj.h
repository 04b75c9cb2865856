/*
 * nd_traj.h: projection of one R2E-Gym trajectory document (the JSON of
 * pydantic's Trajectory.model_dump_json()) onto a trajbench `trajectory`
 * record (man 5 trajbench-records).
 *
 * The projection validates the whole document (JSON syntax, UTF-8 and the
 * types of the fields it reads; fields it does not know are skipped, but
 * still validated) and writes the record as one compact JSON line into a
 * buffer owned by the workspace.  Strings are re-encoded in canonical form
 * (raw UTF-8, minimal escapes); numbers are copied as written.
 */
#ifndef TRAJBENCH_ND_TRAJ_H
#define TRAJBENCH_ND_TRAJ_H

#include <stddef.h>

#include "tools/traj/nd_scan.h"

struct nd_traj_params {
	long max_turns;     /* keep at most this many steps; -1 keeps all */
};

/* Fills p with the defaults (all steps kept). */
void nd_traj_default_params(struct nd_traj_params *p);

enum nd_traj_status {
	ND_TRAJ_OK = 0,
	ND_TRAJ_E_JSON = -1,   /* not JSON / not UTF-8 / truncated: see scan_err */
	ND_TRAJ_E_SHAPE = -2,  /* valid JSON, but not a trajectory */
	ND_TRAJ_E_NOMEM = -3,
};

/* What went wrong, for a diagnostic.  `field` names the field the problem
 * is in ("trajectory_steps[2].thought"), empty when none applies;
 * `offset` is the byte offset in the document, for ND_TRAJ_E_JSON. */
struct nd_traj_error {
	enum nd_traj_status status;
	enum nd_scan_err scan_err;
	size_t offset;
	char field[96];
	char msg[192];
};

struct nd_traj;

/* A reusable workspace; NULL when out of memory. */
struct nd_traj *nd_traj_new(void);
void nd_traj_free(struct nd_traj *t);

/* Projects the document doc[0..len) read from `file` at `line` (the values
 * of the record's `source`).  Returns ND_TRAJ_OK with the record available
 * through nd_traj_record, or a negative status with err filled. */
int nd_traj_project(struct nd_traj *t, const char *doc, size_t len,
		    const char *file, long line,
		    const struct nd_traj_params *p, struct nd_traj_error *err);

/* The record of the last successful projection (no trailing newline),
 * valid until the next call. */
const char *nd_traj_record(const struct nd_traj *t, size_t *len);

/* The number of steps the last projected trajectory had in its input
 * (before --max-turns). */
long nd_traj_num_steps(const struct nd_traj *t);

#endif
