/*
 * nd_render.c: R2E-Gym's conversation, rebuilt from a trajectory record.
 *
 * What R2E-Gym sends to its model (non-function-calling agents) is fixed
 * by a few rules: system prompt as is; instance prompt with the problem
 * statement put in by Python's str.format; before LLM call k the text
 * "\nSteps Remaining: {max_steps - k}" (or a final notice once that is not
 * positive) appended for good to the last user message; then the reply
 * (thought + "\n\n" + action) and the stored observation, unwrapped.  The
 * conversation record is built in one pass over the steps, so the memory
 * held is one record's.
 *
 * Templates follow str.format exactly where it matters ("{{", "}}", a
 * single brace is an error) but refuse anything R2E-Gym's configs never
 * use: only {problem_statement}, no positional fields, no attribute or
 * index lookups, no !r/!a conversions or padding specs.  A template is
 * compiled once, so a bad one is reported before any record is read.
 *
 * Requests are derived from the conversation record, not from the
 * trajectory: the prompt of turn k is every message before assistant
 * message k, which the record already states.
 */
#include "tools/render/nd_render.h"
#include "tools/render/nd_yaml.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char placeholder[] = "problem_statement";

struct nd_template {
	char *lit;         /* literal pieces, unescaped, back to back */
	size_t *off;       /* (n_fields + 2) offsets into lit: piece i is
			      lit[off[i] .. off[i + 1]) */
	size_t n_fields;
};

static int set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* ---------------------------------------------------------------- templates */

/* 1-based line of byte pos in text, for messages. */
static long line_of(const char *text, size_t pos)
{
	long line = 1;

	for (size_t i = 0; i < pos; i++)
		line += text[i] == '\n';
	return line;
}

/* Is field (the text between the braces) one we substitute?  Python
 * formats a str identically under "!s" and under an empty or "s" spec. */
static bool field_is_known(const char *f, size_t n)
{
	size_t k = sizeof(placeholder) - 1;

	if (n < k || memcmp(f, placeholder, k) != 0)
		return false;
	f += k;
	n -= k;
	if (n >= 2 && f[0] == '!' && f[1] == 's') {
		f += 2;
		n -= 2;
	}
	if (n == 0)
		return true;
	if (f[0] != ':')
		return false;
	return n == 1 || (n == 2 && f[1] == 's');
}

/* Names a bad field in err: unknown name, or a form we do not support. */
static int field_error(const char *text, size_t start, size_t n,
		       char *err, size_t errlen)
{
	const char *f = text + start;
	size_t k = sizeof(placeholder) - 1;
	size_t shown = n;
	const char *nl = memchr(f, '\n', n);

	if (nl)
		shown = (size_t)(nl - f);
	if (shown > 60)
		shown = 60;
	if (n > k && memcmp(f, placeholder, k) == 0 &&
	    f[k] != '\0' && strchr("!:.[", f[k]))
		return set_err(err, errlen,
			       "unsupported form of the placeholder "
			       "'{%.*s%s}' on line %ld of the template",
			       (int)shown, f, shown < n ? "..." : "",
			       line_of(text, start));
	return set_err(err, errlen,
		       "unknown placeholder '{%.*s%s}' on line %ld of the "
		       "template (only {problem_statement} is known)",
		       (int)shown, f, shown < n ? "..." : "",
		       line_of(text, start));
}

/* The end of the field opened at text[open] ('{'): the index of its
 * matching '}' (nested braces count, as in str.format), or len. */
static size_t field_end(const char *text, size_t len, size_t open)
{
	long depth = 1;

	for (size_t i = open + 1; i < len; i++) {
		if (text[i] == '{')
			depth++;
		else if (text[i] == '}' && --depth == 0)
			return i;
	}
	return len;
}

static int push_offset(struct nd_template *t, size_t *cap, size_t at)
{
	if (t->n_fields + 3 > *cap) {
		size_t ncap = *cap * 2;
		size_t *p = realloc(t->off, ncap * sizeof(*p));

		if (!p)
			return -1;
		t->off = p;
		*cap = ncap;
	}
	t->off[++t->n_fields] = at;
	return 0;
}

/* The scanning loop of nd_template_parse: fills t->lit and t->off. */
static int scan_template(const char *text, size_t len, struct nd_template *t,
			 char *err, size_t errlen)
{
	size_t cap = 4, o = 0, end;

	t->off = malloc(cap * sizeof(*t->off));
	if (!t->off)
		return set_err(err, errlen, "out of memory");
	t->off[0] = 0;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];

		if ((c == '{' || c == '}') && i + 1 < len && text[i + 1] == c) {
			t->lit[o++] = c;
			i++;
		} else if (c == '}') {
			return set_err(err, errlen, "unbalanced '}' on line %ld "
				       "of the template (write '}}' for a "
				       "literal brace)", line_of(text, i));
		} else if (c == '{') {
			end = field_end(text, len, i);
			if (end == len)
				return set_err(err, errlen, "unbalanced '{' on "
					       "line %ld of the template (write "
					       "'{{' for a literal brace)",
					       line_of(text, i));
			if (!field_is_known(text + i + 1, end - i - 1))
				return field_error(text, i + 1, end - i - 1,
						   err, errlen);
			if (push_offset(t, &cap, o) < 0)
				return set_err(err, errlen, "out of memory");
			i = end;
		} else {
			t->lit[o++] = c;
		}
	}
	t->off[t->n_fields + 1] = o;
	return 0;
}

int nd_template_parse(const char *text, size_t len, struct nd_template **out,
		      char *err, size_t errlen)
{
	struct nd_template *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (!t || !(t->lit = malloc(len + 1))) {
		free(t);
		return set_err(err, errlen, "out of memory");
	}
	if (scan_template(text, len, t, err, errlen) < 0) {
		nd_template_free(t);
		return -1;
	}
	*out = t;
	return 0;
}

char *nd_template_format(const struct nd_template *t, const char *problem,
			 size_t problem_len, size_t *out_len)
{
	size_t n = t->off[t->n_fields + 1] + t->n_fields * problem_len, o = 0;
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	for (size_t i = 0; i <= t->n_fields; i++) {
		size_t piece = t->off[i + 1] - t->off[i];

		memcpy(s + o, t->lit + t->off[i], piece);
		o += piece;
		if (i < t->n_fields) {
			memcpy(s + o, problem, problem_len);
			o += problem_len;
		}
	}
	s[o] = '\0';
	*out_len = o;
	return s;
}

void nd_template_free(struct nd_template *t)
{
	if (!t)
		return;
	free(t->lit);
	free(t->off);
	free(t);
}

/* ---------------------------------------------------------------- prompts */

static int dup_text(const char *s, size_t len, char **out)
{
	*out = malloc(len + 1);
	if (!*out)
		return -1;
	memcpy(*out, s, len);
	(*out)[len] = '\0';
	return 0;
}

/* Fills p from two strings; where names the source in messages. */
static int prompts_set(struct nd_prompts *p, const char *sys, size_t sys_len,
		       const char *inst, size_t inst_len, const char *where,
		       char *err, size_t errlen)
{
	char tmp[256];

	memset(p, 0, sizeof(*p));
	if (nd_template_parse(inst, inst_len, &p->instance, tmp,
			      sizeof(tmp)) < 0)
		return set_err(err, errlen, "%sinstance_prompt: %s", where, tmp);
	if (dup_text(sys, sys_len, &p->system_prompt) < 0) {
		nd_template_free(p->instance);
		p->instance = NULL;
		return set_err(err, errlen, "out of memory");
	}
	p->system_len = sys_len;
	return 0;
}

/* Looks one prompt key up; on failure sets *line and err. */
static int config_key(const struct nd_yaml_map *m, const char *key,
		      const char **s, size_t *len, long *line,
		      char *err, size_t errlen)
{
	switch (nd_yaml_map_get_string(m, key, s, len, line)) {
	case ND_YAML_STRING:
		return 0;
	case ND_YAML_NOT_STRING:
		return set_err(err, errlen, "'%s' is not a string", key);
	default:
		*line = 0;
		return set_err(err, errlen, "missing key '%s'", key);
	}
}

int nd_prompts_from_config(const char *path, struct nd_prompts *p,
			   long *line, long *column, char *err, size_t errlen)
{
	struct nd_yaml_map *m;
	struct nd_yaml_error yerr;
	const char *sys, *inst;
	size_t sys_len, inst_len;
	long sys_line, inst_line;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	*line = *column = 0;
	if (nd_yaml_load_file(path, &m, &yerr) < 0) {
		*line = yerr.line;
		*column = yerr.column;
		return set_err(err, errlen, "%s", yerr.text);
	}
	if (config_key(m, "system_prompt", &sys, &sys_len, &sys_line,
		       err, errlen) < 0)
		*line = sys_line;
	else if (config_key(m, "instance_prompt", &inst, &inst_len, &inst_line,
			    err, errlen) < 0)
		*line = inst_line;
	else if ((rc = prompts_set(p, sys, sys_len, inst, inst_len, "", err,
				   errlen)) < 0)
		*line = inst_line;
	nd_yaml_map_free(m);
	return rc;
}

int nd_prompts_from_record(const json_t *traj, struct nd_prompts *p,
			   char *err, size_t errlen)
{
	json_t *pr = json_object_get(traj, "prompts");
	json_t *sys, *inst;

	memset(p, 0, sizeof(*p));
	if (!json_is_object(pr))
		return set_err(err, errlen, "no 'prompts' object in the record");
	sys = json_object_get(pr, "system_prompt");
	inst = json_object_get(pr, "instance_prompt");
	if (!json_is_string(sys))
		return set_err(err, errlen, "prompts.system_prompt is %s",
			       sys ? "not a string" : "missing");
	if (!json_is_string(inst))
		return set_err(err, errlen, "prompts.instance_prompt is %s",
			       inst ? "not a string" : "missing");
	return prompts_set(p, json_string_value(sys), json_string_length(sys),
			   json_string_value(inst), json_string_length(inst),
			   "prompts.", err, errlen);
}

void nd_prompts_free(struct nd_prompts *p)
{
	free(p->system_prompt);
	nd_template_free(p->instance);
	memset(p, 0, sizeof(*p));
}

/* ---------------------------------------------------------------- conversations */

size_t nd_render_steps_notice(long max_steps, long k, char *buf, size_t bufsize)
{
	long left = max_steps - k;
	int n;

	if (left > 0)
		n = snprintf(buf, bufsize, "Steps Remaining: %ld", left);
	else
		n = snprintf(buf, bufsize, "You have reached the maximum number "
			     "of steps. Please submit your answer NOW.");
	if (n < 0)
		return 0;
	return (size_t)n < bufsize ? (size_t)n : bufsize - 1;
}

const char *nd_render_record_id(const json_t *record)
{
	return json_string_value(json_object_get(record, "id"));
}

/* A role/content message object, taking the content reference. */
static json_t *message_new(const char *role, json_t *content)
{
	json_t *m = json_object();

	if (!m || !content || json_object_set_new(m, "role", json_string(role)) ||
	    json_object_set_new(m, "content", content)) {
		json_decref(m);
		return NULL;
	}
	return m;
}

/* A string of a, b and c back to back (valid UTF-8 in, valid out). */
static json_t *concat3(const char *a, size_t na, const char *b, size_t nb,
		       const char *c, size_t nc)
{
	char *s = malloc(na + nb + nc + 1);
	json_t *j;

	if (!s)
		return NULL;
	memcpy(s, a, na);
	memcpy(s + na, b, nb);
	memcpy(s + na + nb, c, nc);
	j = json_stringn_nocheck(s, na + nb + nc);
	free(s);
	return j;
}

/* Appends "\n" + the steps notice for call k to message m, for good. */
static int append_notice(json_t *m, long max_steps, long k)
{
	json_t *old = json_object_get(m, "content");
	char notice[128];
	size_t n = nd_render_steps_notice(max_steps, k, notice, sizeof(notice));

	return json_object_set_new(m, "content",
				   concat3(json_string_value(old),
					   json_string_length(old), "\n", 1,
					   notice, n));
}

/* The per-step numbers carried onto each assistant message, in order. */
static const char *const step_numbers[] = {
	"env_exec_time", "llm_exec_time",
	"token_usage_prompt", "token_usage_completion",
};
#define N_STEP_NUMBERS (sizeof(step_numbers) / sizeof(step_numbers[0]))

/* Checks one step; k is its index, for messages. */
static int check_step(const json_t *step, size_t k, char *err, size_t errlen)
{
	static const char *const texts[] = { "thought", "action", "observation" };

	if (!json_is_object(step))
		return set_err(err, errlen, "steps[%zu] is not an object", k);
	for (size_t i = 0; i < 3; i++) {
		json_t *v = json_object_get(step, texts[i]);

		if (!json_is_string(v))
			return set_err(err, errlen, "steps[%zu].%s is %s", k,
				       texts[i], v ? "not a string" : "missing");
	}
	for (size_t i = 0; i < N_STEP_NUMBERS; i++) {
		json_t *v = json_object_get(step, step_numbers[i]);
		bool tokens = i >= 2;

		if (!v)
			return set_err(err, errlen, "steps[%zu].%s is missing",
				       k, step_numbers[i]);
		if (json_is_null(v) ||
		    (!tokens && json_is_number(v)) ||
		    (tokens && json_is_integer(v) && json_integer_value(v) >= 0))
			continue;
		return set_err(err, errlen, "steps[%zu].%s is not %s or null",
			       k, step_numbers[i],
			       tokens ? "a non-negative integer" : "a number");
	}
	return 0;
}

/* The assistant message of step k: thought + "\n\n" + action, with the
 * step's timings and token counts. */
static json_t *assistant_new(const json_t *step, size_t k)
{
	json_t *th = json_object_get(step, "thought");
	json_t *ac = json_object_get(step, "action");
	json_t *m = message_new("assistant",
				concat3(json_string_value(th),
					json_string_length(th), "\n\n", 2,
					json_string_value(ac),
					json_string_length(ac)));

	if (!m || json_object_set_new(m, "turn", json_integer((json_int_t)k))) {
		json_decref(m);
		return NULL;
	}
	for (size_t i = 0; i < N_STEP_NUMBERS; i++)
		if (json_object_set(m, step_numbers[i],
				    json_object_get(step, step_numbers[i]))) {
			json_decref(m);
			return NULL;
		}
	return m;
}

/* Checks the record's top level; on success *max_steps is the one to use. */
static int check_trajectory(const json_t *t, long override, long *max_steps,
			    char *err, size_t errlen)
{
	json_t *type = json_object_get(t, "type");
	json_t *meta = json_object_get(t, "meta");
	json_t *ms;

	if (!json_is_string(type))
		return set_err(err, errlen, "not a trajectory record (%s)",
			       type ? "'type' is not a string" : "no 'type'");
	if (strcmp(json_string_value(type), "trajectory") != 0)
		return set_err(err, errlen, "not a trajectory record (type '%s')",
			       json_string_value(type));
	if (!json_is_string(json_object_get(t, "id")))
		return set_err(err, errlen, "'id' is missing or not a string");
	if (!json_is_string(json_object_get(t, "problem_statement")))
		return set_err(err, errlen,
			       "'problem_statement' is missing or not a string");
	if (!json_is_array(json_object_get(t, "steps")))
		return set_err(err, errlen, "'steps' is missing or not an array");
	if (!json_is_object(meta))
		return set_err(err, errlen, "'meta' is missing or not an object");
	*max_steps = override;
	if (override > 0)
		return 0;
	ms = json_object_get(meta, "max_steps");
	if (json_is_integer(ms)) {
		*max_steps = (long)json_integer_value(ms);
		return 0;
	}
	if (!ms || json_is_null(ms))
		return set_err(err, errlen, "meta.max_steps is %s (use "
			       "--max-steps)", ms ? "null" : "missing");
	return set_err(err, errlen, "meta.max_steps is not an integer");
}

/* system + the instance prompt with the problem statement put in. */
static json_t *opening_messages(const json_t *t, const struct nd_prompts *p)
{
	json_t *ps = json_object_get(t, "problem_statement");
	json_t *msgs = json_array();
	size_t n;
	char *user = nd_template_format(p->instance, json_string_value(ps),
					json_string_length(ps), &n);

	if (!msgs || !user ||
	    json_array_append_new(msgs, message_new("system",
			json_stringn_nocheck(p->system_prompt, p->system_len))) ||
	    json_array_append_new(msgs, message_new("user",
			json_stringn_nocheck(user, n)))) {
		json_decref(msgs);
		msgs = NULL;
	}
	free(user);
	return msgs;
}

/* Appends the turns of every step to msgs. */
static int append_turns(json_t *msgs, const json_t *steps, long max_steps,
			char *err, size_t errlen)
{
	size_t k;
	json_t *step;

	json_array_foreach(steps, k, step) {
		json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);

		if (check_step(step, k, err, errlen) < 0)
			return -1;
		if (append_notice(last, max_steps, (long)k) ||
		    json_array_append_new(msgs, assistant_new(step, k)) ||
		    json_array_append_new(msgs, message_new("user",
				json_incref(json_object_get(step, "observation")))))
			return set_err(err, errlen, "out of memory");
	}
	return 0;
}

json_t *nd_render_conversation(const json_t *traj, const struct nd_prompts *p,
			       long max_steps, char *err, size_t errlen)
{
	json_t *msgs, *conv;

	if (!json_is_object(traj)) {
		set_err(err, errlen, "not a JSON object");
		return NULL;
	}
	if (check_trajectory(traj, max_steps, &max_steps, err, errlen) < 0)
		return NULL;
	msgs = opening_messages(traj, p);
	if (!msgs) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	if (append_turns(msgs, json_object_get(traj, "steps"), max_steps,
			 err, errlen) < 0) {
		json_decref(msgs);
		return NULL;
	}
	conv = json_pack("{s:s, s:O, s:o, s:O}", "type", "conversation",
			 "id", json_object_get(traj, "id"), "messages", msgs,
			 "meta", json_object_get(traj, "meta"));
	if (!conv)
		set_err(err, errlen, "out of memory");
	return conv;
}

/* ---------------------------------------------------------------- requests */

/* Checks message i of a conversation: an object with string role and
 * content. */
static int check_message(const json_t *m, size_t i, char *err, size_t errlen)
{
	if (!json_is_object(m))
		return set_err(err, errlen, "messages[%zu] is not an object", i);
	if (!json_is_string(json_object_get(m, "role")))
		return set_err(err, errlen,
			       "messages[%zu].role is missing or not a string", i);
	if (!json_is_string(json_object_get(m, "content")))
		return set_err(err, errlen,
			       "messages[%zu].content is missing or not a string",
			       i);
	return 0;
}

/* max_tokens for an assistant message: its recorded completion length. */
static int max_tokens_of(const json_t *m, size_t i, long dflt, json_int_t *out,
			 char *err, size_t errlen)
{
	json_t *v = json_object_get(m, "token_usage_completion");

	if (!v || json_is_null(v)) {
		*out = dflt;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return set_err(err, errlen, "messages[%zu].token_usage_completion "
			       "is not a non-negative integer or null", i);
	*out = json_integer_value(v) > 0 ? json_integer_value(v) : 1;
	return 0;
}

/* Emits the request for the assistant message i whose prompt is prompt. */
static int emit_request(json_t *prompt, const json_t *m, size_t i, long dflt,
			nd_render_request_fn fn, void *user,
			char *err, size_t errlen)
{
	json_int_t max_tokens = dflt;
	json_t *req;
	int rc;

	if (max_tokens_of(m, i, dflt, &max_tokens, err, errlen) < 0)
		return -1;
	req = json_pack("{s:O, s:I}", "messages", prompt,
			"max_tokens", max_tokens);
	if (!req)
		return set_err(err, errlen, "out of memory");
	rc = fn(req, user);
	json_decref(req);
	return rc;
}

int nd_render_requests(const json_t *conv, long default_max_tokens,
		       nd_render_request_fn fn, void *user,
		       char *err, size_t errlen)
{
	json_t *msgs = json_object_get(conv, "messages");
	json_t *prompt, *m;
	size_t i;
	int rc = 0;

	if (!json_is_array(msgs))
		return set_err(err, errlen, "'messages' is missing or not an array");
	prompt = json_array();	/* the role/content copies seen so far */
	if (!prompt)
		return set_err(err, errlen, "out of memory");
	json_array_foreach(msgs, i, m) {
		json_t *role, *content;

		if ((rc = check_message(m, i, err, errlen)) != 0)
			break;
		role = json_object_get(m, "role");
		content = json_object_get(m, "content");
		if (strcmp(json_string_value(role), "assistant") == 0 &&
		    (rc = emit_request(prompt, m, i, default_max_tokens, fn,
				       user, err, errlen)) != 0)
			break;
		if (json_array_append_new(prompt, json_pack("{s:O, s:O}",
				"role", role, "content", content))) {
			rc = set_err(err, errlen, "out of memory");
			break;
		}
	}
	json_decref(prompt);
	return rc;
}
