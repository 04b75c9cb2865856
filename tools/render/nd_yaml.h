/*
 * nd_yaml.h: read the top-level string values of a YAML config file.
 *
 * An agent config (R2E-Gym's agent YAML) is a mapping whose prompt keys hold
 * block scalars.  The tools need only those strings, exactly as Python's
 * yaml.safe_load would return them, so this module parses the document with
 * libyaml and keeps the top-level keys whose values are scalars; nested
 * sequences and mappings are parsed (so syntax errors are still found) but
 * not kept.
 */
#ifndef TRAJBENCH_ND_YAML_H
#define TRAJBENCH_ND_YAML_H

#include <stddef.h>

/* Caller-owned error: line and column are 1-based, 0 when unknown. */
struct nd_yaml_error {
	long line;
	long column;
	char text[256];
};

/* The top-level mapping of one YAML document (opaque). */
struct nd_yaml_map;

/* Parses the YAML file at path.  Returns 0 and *out on success; -1 with err
 * filled on a syntax error, a stream that is not exactly one document whose
 * top level is a mapping, or an I/O error (err->line 0, text from errno). */
int nd_yaml_load_file(const char *path, struct nd_yaml_map **out,
		      struct nd_yaml_error *err);

/* The same for len bytes of YAML text in memory. */
int nd_yaml_load_string(const char *text, size_t len, struct nd_yaml_map **out,
			struct nd_yaml_error *err);

/* What nd_yaml_map_get_string found under a key. */
enum nd_yaml_found {
	ND_YAML_ABSENT = 0,     /* no such top-level key */
	ND_YAML_STRING = 1,     /* a string scalar: *value, *len are set */
	ND_YAML_NOT_STRING = 2, /* present, but a collection, a null, a
				   boolean or a number */
};

/* Looks up a top-level key (the last one wins when a key repeats, as in
 * PyYAML).  *value stays valid until nd_yaml_map_free; it is NUL-terminated
 * but may hold NUL bytes, so use *len.  *line (may be NULL) receives the
 * 1-based line of the key when the key is present. */
enum nd_yaml_found nd_yaml_map_get_string(const struct nd_yaml_map *m,
					  const char *key, const char **value,
					  size_t *len, long *line);

void nd_yaml_map_free(struct nd_yaml_map *m);

#endif
