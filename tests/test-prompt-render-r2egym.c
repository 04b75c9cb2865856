/*
 * test-prompt-render-r2egym: the two public R2E-Gym sample trajectories,
 * through traj-extract and prompt-render with R2E-Gym's real config, give
 * the conversations R2E-Gym sent: one assistant message per step, the
 * exact system prompt, the exact first user message (instance prompt with
 * the problem statement put in, plus "\nSteps Remaining: 30"), and the
 * final notice once the 30-step budget is spent.  The expected strings are
 * built here independently: the parsed/ files from PyYAML and a plain string
 * replacement of "{problem_statement}".
 * Skips when the shared data or traj-extract is absent.
 */
#include "tests/tap.h"
#include "tests/test-prompt-render-helper.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define PARSED "parsed/r2egym_edit_non_fn_calling"

static const char final_notice[] =
	"\nYou have reached the maximum number of steps. "
	"Please submit your answer NOW.";

/* The instance prompt with every "{problem_statement}" replaced. */
static char *expected_user(const char *inst, const char *ps)
{
	const char *key = "{problem_statement}", *at;
	size_t cap = strlen(inst) + 4 * strlen(ps) + 64, n = 0;
	char *out = malloc(cap);

	while (out && (at = strstr(inst, key))) {
		n += (size_t)snprintf(out + n, cap - n, "%.*s%s",
				      (int)(at - inst), inst, ps);
		inst = at + strlen(key);
	}
	if (out)
		snprintf(out + n, cap - n, "%s\nSteps Remaining: 30", inst);
	return out;
}

static const char *content(const json_t *msgs, size_t i)
{
	return json_string_value(json_object_get(json_array_get(msgs, i),
						 "content"));
}

static int ends_with(const char *s, const char *tail)
{
	size_t n = s ? strlen(s) : 0, t = strlen(tail);

	return s && n >= t && strcmp(s + n - t, tail) == 0;
}

/* Checks conversation conv against raw trajectory raw. */
static void check_conversation(const json_t *conv, const json_t *raw,
			       const char *sys, const char *inst)
{
	json_t *msgs = json_object_get(conv, "messages");
	json_t *steps = json_object_get(raw, "trajectory_steps");
	size_t n_steps = json_array_size(steps), n_asst = 0, i;
	const char *ps = json_string_value(json_object_get(raw, "problem_statement"));
	char *user = expected_user(inst, ps ? ps : "");
	json_t *m;
	int turns_ok = 1;

	tap_ok(json_array_size(msgs) == 2 + 2 * n_steps,
	       "%zu steps give %zu messages", n_steps, json_array_size(msgs));
	json_array_foreach(msgs, i, m) {
		json_t *turn = json_object_get(m, "turn");

		if (!turn)
			continue;
		turns_ok &= json_integer_value(turn) == (json_int_t)n_asst &&
			    i == 2 + 2 * n_asst;
		n_asst++;
	}
	tap_ok(n_asst == n_steps && turns_ok, "%zu turns, numbered 0..%zu",
	       n_asst, n_steps - 1);
	tap_ok(content(msgs, 0) && strcmp(content(msgs, 0), sys) == 0,
	       "system message equals the parsed system_prompt");
	tap_ok(content(msgs, 1) && user && strcmp(content(msgs, 1), user) == 0,
	       "first user message equals the instance prompt + steps notice");
	if (n_steps > 30) {
		tap_ok(ends_with(content(msgs, 2 * 30 - 1), "\nSteps Remaining: 1"),
		       "the message before call 29 ends with Steps Remaining: 1");
		tap_ok(ends_with(content(msgs, 2 * 30 + 1), final_notice),
		       "the message before call 30 ends with the final notice");
	}
	free(user);
}

/* Renders the sample and compares record by record. */
static void check_sample(const char *data, const char *bin)
{
	char cmd[16384], path[4096], *out, *sys, *inst, *raw_text;
	char *save = NULL, *save_raw = NULL;
	size_t n_out, n;

	snprintf(path, sizeof(path), "%s/%s.system_prompt.txt", data, PARSED);
	sys = tap_slurp(path, &n);
	snprintf(path, sizeof(path), "%s/%s.instance_prompt.txt", data, PARSED);
	inst = tap_slurp(path, &n);
	snprintf(path, sizeof(path), "%s/%s", data, SAMPLE);
	raw_text = tap_slurp(path, &n);
	snprintf(cmd, sizeof(cmd), "'%s/traj-extract' '%s/%s' | "
		 "'%s/prompt-render' --config '%s/%s'", bin, data, SAMPLE, bin,
		 data, CONFIG);
	out = run(cmd, &n_out);
	tap_ok(sys && inst && raw_text && out, "pipeline ran: %s", cmd);
	char *line = out ? strtok_r(out, "\n", &save) : NULL;
	char *raw = raw_text ? strtok_r(raw_text, "\n", &save_raw) : NULL;
	size_t n_records = 0;

	for (; line && raw; line = strtok_r(NULL, "\n", &save),
	     raw = strtok_r(NULL, "\n", &save_raw)) {
		json_t *conv = json_loads(line, 0, NULL);
		json_t *raw_line = json_loads(raw, 0, NULL);

		n_records++;
		tap_ok(conv && raw_line, "record %zu parses", n_records);
		if (conv && raw_line)
			check_conversation(conv, raw_line, sys, inst);
		json_decref(conv);
		json_decref(raw_line);
	}
	tap_ok(n_records == 2 && !line && !raw, "two conversations for two "
	       "trajectories");
	free(raw_text);
	free(out);
	free(sys);
	free(inst);
}

/* --prompts-from-trajectory takes the prompts the runs recorded, which are
 * the config's: the output must be the same bytes. */
static void check_prompts_from_trajectory(const char *data, const char *bin)
{
	char cmd[16384], *a, *b;
	size_t na = 0, nb = 0;

	snprintf(cmd, sizeof(cmd), "'%s/traj-extract' '%s/%s' | "
		 "'%s/prompt-render' --config '%s/%s'", bin, data, SAMPLE, bin,
		 data, CONFIG);
	a = run(cmd, &na);
	snprintf(cmd, sizeof(cmd), "'%s/traj-extract' '%s/%s' | "
		 "'%s/prompt-render' --prompts-from-trajectory", bin, data,
		 SAMPLE, bin);
	b = run(cmd, &nb);
	tap_ok(a && b && na == nb && memcmp(a, b, na) == 0,
	       "--prompts-from-trajectory gives the same bytes as --config");
	free(a);
	free(b);
}

int main(void)
{
	char data[2048], bin[2048];
	const char *skip = locate(data, sizeof(data), bin, sizeof(bin));

	if (skip)
		return tap_skip_all(skip);
	check_sample(data, bin);
	check_prompts_from_trajectory(data, bin);
	return tap_done();
}
