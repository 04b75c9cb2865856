/*
 * test-nd-yaml: top-level strings of a YAML config come out as Python's
 * yaml.safe_load returns them (expected values produced with PyYAML 6),
 * and bad documents are refused with libyaml's line and column.  With
 * the shared reference data present, R2E-Gym's two edit_non_fn_calling
 * configs are compared byte for byte with the files under parsed/.
 */
#include "tests/tap.h"
#include "tools/render/nd_yaml.h"

#include <stdio.h>
#include <string.h>

/* Loads yaml and checks that key a holds the string want. */
static void check_a(const char *yaml, const char *want, const char *what)
{
	struct nd_yaml_map *m;
	struct nd_yaml_error err;
	const char *v = NULL;
	size_t n = 0;
	int ok = 0;

	if (nd_yaml_load_string(yaml, strlen(yaml), &m, &err) == 0) {
		ok = nd_yaml_map_get_string(m, "a", &v, &n, NULL) == ND_YAML_STRING
		     && n == strlen(want) && memcmp(v, want, n) == 0;
		if (!ok)
			tap_diag("got \"%.*s\"", v ? (int)n : 6, v ? v : "(none)");
		nd_yaml_map_free(m);
	} else {
		tap_diag("error %ld:%ld: %s", err.line, err.column, err.text);
	}
	tap_ok(ok, "string: %s", what);
}

/* Key a must be present but not a string. */
static void check_not_string(const char *yaml, const char *what)
{
	struct nd_yaml_map *m;
	struct nd_yaml_error err;
	const char *v;
	size_t n;
	int ok = 0;

	if (nd_yaml_load_string(yaml, strlen(yaml), &m, &err) == 0) {
		ok = nd_yaml_map_get_string(m, "a", &v, &n, NULL) ==
		     ND_YAML_NOT_STRING;
		nd_yaml_map_free(m);
	}
	tap_ok(ok, "not a string: %s", what);
}

/* The document must be refused at line:column with a message holding want. */
static void check_error(const char *yaml, long line, long column,
			const char *want)
{
	struct nd_yaml_map *m = NULL;
	struct nd_yaml_error err;
	int rc = nd_yaml_load_string(yaml, strlen(yaml), &m, &err);
	int ok = rc < 0 && !m && err.line == line && err.column == column &&
		 strstr(err.text, want);

	tap_ok(ok, "error \"%s\" at %ld:%ld", want, line, column);
	if (!ok)
		tap_diag("rc %d, got %ld:%ld: %s", rc, err.line, err.column,
			 err.text);
	nd_yaml_map_free(m);
}

static void test_scalars(void)
{
	check_a("a: |-\n  x\n  y\n", "x\ny", "literal, strip");
	check_a("a: |\n  x\n\n\nb: 1", "x\n", "literal, clip");
	check_a("a: |+\n  x\n\n\nb: 1", "x\n\n\n", "literal, keep");
	check_a("a: >\n  x\n  y\n\n  z\n", "x y\nz\n", "folded");
	check_a("a: |2-\n    indented\n  base\n", "  indented\nbase",
		"indentation indicator");
	check_a("a: |-\n  tab\there  \n  trailing   \n",
		"tab\there  \ntrailing   ", "tabs and trailing spaces kept");
	check_a("a: \"x\\ty\\u00e9\"", "x\ty\xc3\xa9", "double-quoted escapes");
	check_a("a: 'it''s'", "it's", "single-quoted");
	check_a("a: hello world", "hello world", "plain");
	check_a("a: '12'", "12", "quoted number");
	check_a("a: !!str yes", "yes", "explicit str tag");
	check_a("a: first\nb: 2\na: second\n", "second", "repeated key: last wins");
	check_a("x: &A hi\na: *A\n", "hi", "alias to a scalar");
	check_a("b:\n  - 1\n  - {c: [d]}\na: after\n", "after",
		"after a nested collection");
	check_a("a: 1e3", "1e3", "1e3 (YAML 1.1 floats need a dot)");
	check_a("a: 12:61", "12:61", "not base 60");
	check_a("a: ._", "._", "a dot and an underscore");
	check_not_string("a: yes", "boolean");
	check_not_string("a: Off", "boolean, capitalised");
	check_not_string("a: 0777", "octal");
	check_not_string("a: 1:20", "base 60");
	check_not_string("a: .inf", "infinity");
	check_not_string("a: =", "value key");
	check_not_string("a: 12", "integer");
	check_not_string("a: 1.5e+3", "float");
	check_not_string("a: ~", "null");
	check_not_string("a:", "empty");
	check_not_string("a: 2025-04-22", "date");
	check_not_string("a: [x]", "sequence");
	check_not_string("a:\n  b: c", "mapping");
}

static void test_errors(void)
{
	check_error("a: b: c", 1, 5, "mapping values are not allowed");
	check_error("- a\n- b", 1, 1, "the top level is not a mapping");
	check_error("just text", 1, 1, "the top level is not a mapping");
	check_error("", 1, 1, "empty stream");
	check_error("a: 1\n---\nb: 2", 2, 1, "expected a single document");
	check_error("a: *nope", 1, 4, "found undefined alias 'nope'");
	check_error("a: \"abc\n", 2, 1, "found unexpected end of stream");
	check_error("a: [1, 2", 2, 1, "did not find expected ',' or ']'");
}

static void test_lines(void)
{
	const char *yaml = "# comment\n\nfirst: 1\nsecond: |-\n  x\n";
	struct nd_yaml_map *m;
	struct nd_yaml_error err;
	const char *v;
	size_t n;
	long line = 0;

	if (nd_yaml_load_string(yaml, strlen(yaml), &m, &err) < 0) {
		tap_ok(0, "key lines");
		return;
	}
	tap_ok(nd_yaml_map_get_string(m, "second", &v, &n, &line) ==
	       ND_YAML_STRING && line == 4, "key line is 1-based (%ld)", line);
	tap_ok(nd_yaml_map_get_string(m, "third", &v, &n, &line) ==
	       ND_YAML_ABSENT, "absent key");
	nd_yaml_map_free(m);
}

/* config (under data/r2egym) against parsed/<stem>.<key>.txt. */
static void check_real(const char *data, const char *config, const char *stem)
{
	static const char *const keys[] = { "system_prompt", "instance_prompt" };
	char path[4096];
	struct nd_yaml_map *m;
	struct nd_yaml_error err;

	snprintf(path, sizeof(path), "%s/%s", data, config);
	if (nd_yaml_load_file(path, &m, &err) < 0) {
		tap_ok(0, "load %s", config);
		tap_diag("%ld:%ld: %s", err.line, err.column, err.text);
		return;
	}
	for (int i = 0; i < 2; i++) {
		const char *v = NULL;
		size_t n = 0, want_n = 0;
		char *want;

		snprintf(path, sizeof(path), "%s/parsed/%s.%s.txt", data, stem,
			 keys[i]);
		want = tap_slurp(path, &want_n);
		tap_ok(want && nd_yaml_map_get_string(m, keys[i], &v, &n, NULL)
		       == ND_YAML_STRING && n == want_n &&
		       memcmp(v, want, n) == 0, "%s %s equals %s", config,
		       keys[i], path + strlen(data) + 1);
		free(want);
	}
	nd_yaml_map_free(m);
}

int main(void)
{
	const char *top = getenv("top_srcdir");
	char data[4096], probe[4200];
	FILE *fp;

	test_scalars();
	test_errors();
	test_lines();
	snprintf(data, sizeof(data), "%s/../shared/data/r2egym", top ? top : ".");
	snprintf(probe, sizeof(probe), "%s/SOURCES.md", data);
	fp = fopen(probe, "r");
	if (!fp) {
		tap_diag("skipping the R2E-Gym configs: %s is absent", data);
		return tap_done();
	}
	fclose(fp);
	check_real(data, "config/r2egym/edit_non_fn_calling.yaml",
		   "r2egym_edit_non_fn_calling");
	check_real(data, "config_initial_release_2025-04/edit_non_fn_calling.yaml",
		   "initial_edit_non_fn_calling");
	return tap_done();
}
