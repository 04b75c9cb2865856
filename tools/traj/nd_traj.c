/*
 * nd_traj.c: R2E-Gym Trajectory document -> trajbench `trajectory` record.
 *
 * One pass over the document with the nd_scan pull parser: the fields the
 * record needs are remembered as spans into the document (nothing is
 * copied), everything else is skipped with full validation.  When the
 * document has been read to its end, the record is written in the order
 * the schema fixes, which differs from the input's (the id comes from `ds`,
 * which follows `trajectory_steps`).  A repeated key counts once, the last
 * occurrence winning, as in Python and jq.
 *
 * Types are checked only for the fields the record uses; unknown fields are
 * tolerated.  The projection refuses to repair anything: a wrong type is an
 * error naming the field, not a default.  The only rewrites are the
 * documented ones: a negative token count (-1 in older files) becomes null,
 * and the id falls back from ds.instance_id to env_args.ds.instance_id
 * (where older runner scripts left it), docker_image, then "FILE:LINE".
 */
#include "tools/traj/nd_traj.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An optional scalar: s == NULL means null or absent. */
typedef struct nd_span opt_t;

struct step {
	struct nd_span thought, action, observation;
	bool has_thought, has_action, has_observation;
	opt_t step_idx;
	opt_t env_exec_time, llm_exec_time;
	opt_t tok_prompt, tok_completion, tok_total;
};

struct nd_traj {
	struct nd_scan sc;
	struct nd_traj_error *err;
	/* the field being read, kept as parts and formatted only on error */
	const char *w_obj;      /* enclosing object's path, "" at the top */
	long w_idx;             /* index in trajectory_steps, or -1 */
	struct nd_span w_key;   /* member key; w_key.s NULL: none */
	char path[96];

	struct step *steps;
	size_t n_steps, cap_steps;
	bool has_steps, has_problem;
	struct nd_span problem;
	opt_t docker_image, exp_name, exit_reason, reward, max_steps;
	opt_t instance_id, env_instance_id;
	opt_t system_prompt, instance_prompt;

	struct nd_buf out;
	long num_steps;
};

void nd_traj_default_params(struct nd_traj_params *p)
{
	p->max_turns = -1;
}

struct nd_traj *nd_traj_new(void)
{
	return calloc(1, sizeof(struct nd_traj));
}

void nd_traj_free(struct nd_traj *t)
{
	if (!t)
		return;
	free(t->steps);
	nd_buf_free(&t->out);
	free(t);
}

const char *nd_traj_record(const struct nd_traj *t, size_t *len)
{
	*len = t->out.len;
	return t->out.data;
}

long nd_traj_num_steps(const struct nd_traj *t)
{
	return t->num_steps;
}

/* ---------------------------------------------------------------- errors */

static void where(struct nd_traj *t, const char *obj, long idx, const struct nd_span *key)
{
	t->w_obj = obj;
	t->w_idx = idx;
	if (key)
		t->w_key = *key;
	else
		t->w_key.s = NULL;
}

/* A key as text for a path: decoded, shortened, controls made visible. */
static void key_text(const struct nd_span *key, char *dst, size_t cap)
{
	char tmp[64];
	size_t n;

	if (key->len < sizeof(tmp)) {
		n = nd_scan_unescape(key, tmp);
	} else {
		n = 40;
		memcpy(tmp, key->s, n);
		memcpy(tmp + n, "...", 3);
		n += 3;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)tmp[i] < 0x20)
			tmp[i] = '?';
	tmp[n] = '\0';
	snprintf(dst, cap, "%s", tmp);
}

/* Formats the current field's path into t->path. */
static const char *format_path(struct nd_traj *t)
{
	char key[64] = "", idx[24] = "";

	if (t->w_key.s)
		key_text(&t->w_key, key, sizeof(key));
	if (t->w_idx >= 0)
		snprintf(idx, sizeof(idx), "[%ld]", t->w_idx);
	snprintf(t->path, sizeof(t->path), "%s%s%s%s", t->w_obj, idx,
		 *key && (*t->w_obj || *idx) ? "." : "", key);
	return t->path;
}

static int scan_error(struct nd_traj *t)
{
	struct nd_traj_error *e = t->err;

	e->status = ND_TRAJ_E_JSON;
	e->scan_err = t->sc.err;
	e->offset = t->sc.err_off;
	snprintf(e->field, sizeof(e->field), "%s", format_path(t));
	snprintf(e->msg, sizeof(e->msg), "%s", t->sc.msg);
	return -1;
}

static int shape_error(struct nd_traj *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int shape_error(struct nd_traj *t, const char *fmt, ...)
{
	struct nd_traj_error *e = t->err;
	va_list ap;

	e->status = ND_TRAJ_E_SHAPE;
	e->scan_err = ND_SCAN_OK;
	e->offset = nd_scan_offset(&t->sc);
	snprintf(e->field, sizeof(e->field), "%s", format_path(t));
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static const char *type_name(enum nd_scan_type ty)
{
	switch (ty) {
	case ND_SCAN_OBJECT: return "an object";
	case ND_SCAN_ARRAY:  return "an array";
	case ND_SCAN_STRING: return "a string";
	case ND_SCAN_NUMBER: return "a number";
	case ND_SCAN_TRUE:   return "true";
	case ND_SCAN_FALSE:  return "false";
	case ND_SCAN_NULL:   return "null";
	default:             return "nothing";
	}
}

/* The value at the cursor has the wrong type.  If it is not even valid
 * JSON, that is the error to report; otherwise name the field. */
static int type_error(struct nd_traj *t, const char *want)
{
	enum nd_scan_type ty = nd_scan_peek(&t->sc);

	if (ty == ND_SCAN_END || ty == ND_SCAN_INVALID) {
		nd_scan_skip(&t->sc);
		return scan_error(t);
	}
	return shape_error(t, "'%s' must be %s, got %s", format_path(t), want, type_name(ty));
}

/* ---------------------------------------------------------------- values */

static int skip(struct nd_traj *t)
{
	return nd_scan_skip(&t->sc) == 0 ? 0 : scan_error(t);
}

static int read_string(struct nd_traj *t, struct nd_span *out)
{
	if (nd_scan_peek(&t->sc) != ND_SCAN_STRING)
		return type_error(t, "a string");
	return nd_scan_string(&t->sc, out) == 0 ? 0 : scan_error(t);
}

/* null (or absent) or a string. */
static int read_opt_string(struct nd_traj *t, opt_t *out)
{
	memset(out, 0, sizeof(*out));
	if (nd_scan_peek(&t->sc) == ND_SCAN_NULL)
		return skip(t);
	if (nd_scan_peek(&t->sc) != ND_SCAN_STRING)
		return type_error(t, "a string or null");
	return nd_scan_string(&t->sc, out) == 0 ? 0 : scan_error(t);
}

/* Copies a number's text into a C string; long ones are cut, which only
 * matters for range checks of absurd inputs. */
static void number_text(const struct nd_span *n, char *dst, size_t cap)
{
	size_t len = n->len < cap - 1 ? n->len : cap - 1;

	memcpy(dst, n->s, len);
	dst[len] = '\0';
}

/* null or a finite number. */
static int read_opt_number(struct nd_traj *t, opt_t *out)
{
	char tmp[400];
	double v;

	memset(out, 0, sizeof(*out));
	if (nd_scan_peek(&t->sc) == ND_SCAN_NULL)
		return skip(t);
	if (nd_scan_peek(&t->sc) != ND_SCAN_NUMBER)
		return type_error(t, "a number or null");
	if (nd_scan_number(&t->sc, out) != 0)
		return scan_error(t);
	number_text(out, tmp, sizeof(tmp));
	v = strtod(tmp, NULL);
	if (!isfinite(v))
		return shape_error(t, "'%s' is out of range: %s", format_path(t), tmp);
	return 0;
}

/* null or an integer that fits in 64 bits.  With negative_is_null, a
 * negative value (R2E-Gym's -1 for "unknown") reads as null. */
static int read_opt_int(struct nd_traj *t, opt_t *out, bool negative_is_null)
{
	char tmp[32];
	long long v;

	memset(out, 0, sizeof(*out));
	if (nd_scan_peek(&t->sc) == ND_SCAN_NULL)
		return skip(t);
	if (nd_scan_peek(&t->sc) != ND_SCAN_NUMBER)
		return type_error(t, "an integer or null");
	if (nd_scan_number(&t->sc, out) != 0)
		return scan_error(t);
	number_text(out, tmp, sizeof(tmp));
	if (!out->integer)
		return shape_error(t, "'%s' must be an integer, got %s", format_path(t), tmp);
	errno = 0;
	v = strtoll(tmp, NULL, 10);
	if (errno == ERANGE || out->len >= sizeof(tmp))
		return shape_error(t, "'%s' is out of range: %s", format_path(t), tmp);
	if (negative_is_null && v < 0)
		memset(out, 0, sizeof(*out));
	return 0;
}

/* ---------------------------------------------------------------- steps */

static int read_step_field(struct nd_traj *t, struct step *st, const struct nd_span *key)
{
	if (nd_scan_span_eq(key, "thought"))
		return st->has_thought = true, read_string(t, &st->thought);
	if (nd_scan_span_eq(key, "action"))
		return st->has_action = true, read_string(t, &st->action);
	if (nd_scan_span_eq(key, "observation"))
		return st->has_observation = true, read_string(t, &st->observation);
	if (nd_scan_span_eq(key, "step_idx"))
		return read_opt_int(t, &st->step_idx, false);
	if (nd_scan_span_eq(key, "env_exec_time"))
		return read_opt_number(t, &st->env_exec_time);
	if (nd_scan_span_eq(key, "llm_exec_time"))
		return read_opt_number(t, &st->llm_exec_time);
	if (nd_scan_span_eq(key, "token_usage_prompt"))
		return read_opt_int(t, &st->tok_prompt, true);
	if (nd_scan_span_eq(key, "token_usage_completion"))
		return read_opt_int(t, &st->tok_completion, true);
	if (nd_scan_span_eq(key, "token_usage_total"))
		return read_opt_int(t, &st->tok_total, true);
	return skip(t);
}

static struct step *new_step(struct nd_traj *t)
{
	if (t->n_steps == t->cap_steps) {
		size_t cap = t->cap_steps ? 2 * t->cap_steps : 64;
		struct step *s = realloc(t->steps, cap * sizeof(*s));

		if (!s)
			return NULL;
		t->steps = s;
		t->cap_steps = cap;
	}
	memset(&t->steps[t->n_steps], 0, sizeof(struct step));
	return &t->steps[t->n_steps++];
}

static int read_step(struct nd_traj *t, size_t i)
{
	struct step *st;
	struct nd_span key;
	size_t n = 0;
	int r;

	where(t, "trajectory_steps", (long)i, NULL);
	if (nd_scan_peek(&t->sc) != ND_SCAN_OBJECT)
		return type_error(t, "an object");
	st = new_step(t);
	if (!st) {
		t->err->status = ND_TRAJ_E_NOMEM;
		snprintf(t->err->msg, sizeof(t->err->msg), "out of memory");
		return -1;
	}
	if (nd_scan_object_begin(&t->sc) != 0)
		return scan_error(t);
	while ((r = nd_scan_object_next(&t->sc, &n, &key)) == 1) {
		where(t, "trajectory_steps", (long)i, &key);
		if (read_step_field(t, st, &key) != 0)
			return -1;
		where(t, "trajectory_steps", (long)i, NULL);
	}
	if (r < 0)
		return scan_error(t);
	if (!st->has_thought || !st->has_action || !st->has_observation)
		return shape_error(t, "missing field 'trajectory_steps[%zu].%s'", i,
				   !st->has_thought ? "thought" :
				   !st->has_action ? "action" : "observation");
	return 0;
}

static int read_steps(struct nd_traj *t)
{
	size_t n = 0;
	int r;

	if (nd_scan_peek(&t->sc) != ND_SCAN_ARRAY)
		return type_error(t, "an array");
	t->n_steps = 0;
	t->has_steps = true;
	if (nd_scan_array_begin(&t->sc) != 0)
		return scan_error(t);
	while ((r = nd_scan_array_next(&t->sc, &n)) == 1)
		if (read_step(t, n - 1) != 0)
			return -1;
	where(t, "trajectory_steps", -1, NULL);
	return r < 0 ? scan_error(t) : 0;
}

/* ---------------------------------------------------------------- objects */

/* Reads an object, handing each member to fn; members fn does not take
 * are skipped.  `name` prefixes the members' paths. */
typedef int (*member_fn)(struct nd_traj *t, const struct nd_span *key, void *ctx);

static int read_members(struct nd_traj *t, const char *name, member_fn fn, void *ctx)
{
	struct nd_span key;
	size_t n = 0;
	int r;

	where(t, name, -1, NULL);
	if (nd_scan_object_begin(&t->sc) != 0)
		return scan_error(t);
	while ((r = nd_scan_object_next(&t->sc, &n, &key)) == 1) {
		where(t, name, -1, &key);
		if (fn(t, &key, ctx) != 0)
			return -1;
		where(t, name, -1, NULL);
	}
	return r < 0 ? scan_error(t) : 0;
}

/* null/absent, or an object read with fn; `strict` makes other types an
 * error, otherwise they are skipped (fields only used as a fallback). */
static int read_opt_object(struct nd_traj *t, const char *name, member_fn fn,
			   void *ctx, bool strict)
{
	enum nd_scan_type ty = nd_scan_peek(&t->sc);

	if (ty == ND_SCAN_OBJECT)
		return read_members(t, name, fn, ctx);
	if (ty == ND_SCAN_NULL || !strict)
		return skip(t);
	return type_error(t, "an object or null");
}

static int ds_member(struct nd_traj *t, const struct nd_span *key, void *ctx)
{
	if (nd_scan_span_eq(key, "instance_id"))
		return read_opt_string(t, (opt_t *)ctx);
	return skip(t);
}

/* env_args.ds.instance_id: a fallback only, so other types are skipped. */
static int env_instance_member(struct nd_traj *t, const struct nd_span *key, void *ctx)
{
	if (nd_scan_span_eq(key, "instance_id") && nd_scan_peek(&t->sc) == ND_SCAN_STRING)
		return read_opt_string(t, (opt_t *)ctx);
	return skip(t);
}

static int env_args_member(struct nd_traj *t, const struct nd_span *key, void *ctx)
{
	if (nd_scan_span_eq(key, "ds"))
		return read_opt_object(t, "env_args.ds", env_instance_member, ctx, false);
	return skip(t);
}

static int agent_args_member(struct nd_traj *t, const struct nd_span *key, void *ctx)
{
	(void)ctx;
	if (nd_scan_span_eq(key, "system_prompt"))
		return read_opt_string(t, &t->system_prompt);
	if (nd_scan_span_eq(key, "instance_prompt"))
		return read_opt_string(t, &t->instance_prompt);
	return skip(t);
}

static int top_member(struct nd_traj *t, const struct nd_span *key, void *ctx)
{
	(void)ctx;
	if (nd_scan_span_eq(key, "trajectory_steps"))
		return read_steps(t);
	if (nd_scan_span_eq(key, "problem_statement"))
		return t->has_problem = true, read_string(t, &t->problem);
	if (nd_scan_span_eq(key, "docker_image"))
		return read_opt_string(t, &t->docker_image);
	if (nd_scan_span_eq(key, "exp_name"))
		return read_opt_string(t, &t->exp_name);
	if (nd_scan_span_eq(key, "exit_reason"))
		return read_opt_string(t, &t->exit_reason);
	if (nd_scan_span_eq(key, "reward"))
		return read_opt_number(t, &t->reward);
	if (nd_scan_span_eq(key, "max_steps"))
		return read_opt_int(t, &t->max_steps, false);
	if (nd_scan_span_eq(key, "ds")) {
		memset(&t->instance_id, 0, sizeof(t->instance_id));
		return read_opt_object(t, "ds", ds_member, &t->instance_id, true);
	}
	if (nd_scan_span_eq(key, "env_args")) {
		memset(&t->env_instance_id, 0, sizeof(t->env_instance_id));
		return read_opt_object(t, "env_args", env_args_member, &t->env_instance_id, false);
	}
	if (nd_scan_span_eq(key, "agent_args")) {
		memset(&t->system_prompt, 0, sizeof(t->system_prompt));
		memset(&t->instance_prompt, 0, sizeof(t->instance_prompt));
		return read_opt_object(t, "agent_args", agent_args_member, NULL, true);
	}
	return skip(t);
}

/* ---------------------------------------------------------------- output */

static void put_opt_string(struct nd_buf *b, const opt_t *v)
{
	if (v->s)
		nd_buf_put_jstring(b, v);
	else
		nd_buf_puts(b, "null");
}

static void put_opt_number(struct nd_buf *b, const opt_t *v)
{
	if (v->s)
		nd_buf_put(b, v->s, v->len);
	else
		nd_buf_puts(b, "null");
}

static void put_step(struct nd_buf *b, const struct step *st, size_t i)
{
	nd_buf_puts(b, "{\"step_idx\":");
	if (st->step_idx.s)
		nd_buf_put(b, st->step_idx.s, st->step_idx.len);
	else
		nd_buf_put_long(b, (long)i);
	nd_buf_puts(b, ",\"thought\":");
	nd_buf_put_jstring(b, &st->thought);
	nd_buf_puts(b, ",\"action\":");
	nd_buf_put_jstring(b, &st->action);
	nd_buf_puts(b, ",\"observation\":");
	nd_buf_put_jstring(b, &st->observation);
	nd_buf_puts(b, ",\"env_exec_time\":");
	put_opt_number(b, &st->env_exec_time);
	nd_buf_puts(b, ",\"llm_exec_time\":");
	put_opt_number(b, &st->llm_exec_time);
	nd_buf_puts(b, ",\"token_usage_prompt\":");
	put_opt_number(b, &st->tok_prompt);
	nd_buf_puts(b, ",\"token_usage_completion\":");
	put_opt_number(b, &st->tok_completion);
	nd_buf_puts(b, ",\"token_usage_total\":");
	put_opt_number(b, &st->tok_total);
	nd_buf_putc(b, '}');
}

static const opt_t *instance_id(const struct nd_traj *t)
{
	if (t->instance_id.s)
		return &t->instance_id;
	if (t->env_instance_id.s)
		return &t->env_instance_id;
	return NULL;
}

static void put_id(struct nd_buf *b, const struct nd_traj *t, const char *file, long line)
{
	const opt_t *iid = instance_id(t);
	char tmp[32];

	if (iid && iid->len > 0) {
		nd_buf_put_jstring(b, iid);
	} else if (t->docker_image.s && t->docker_image.len > 0) {
		nd_buf_put_jstring(b, &t->docker_image);
	} else {
		struct nd_buf id = { 0 };

		snprintf(tmp, sizeof(tmp), ":%ld", line);
		nd_buf_puts(&id, file);
		nd_buf_puts(&id, tmp);
		nd_buf_putc(&id, '\0');
		nd_buf_put_cstring(b, id.failed ? "?" : id.data);
		nd_buf_free(&id);
	}
}

static void put_meta(struct nd_buf *b, const struct nd_traj *t)
{
	const opt_t *iid = instance_id(t);
	opt_t none = { 0 };

	nd_buf_puts(b, "\"meta\":{\"instance_id\":");
	put_opt_string(b, iid ? iid : &none);
	nd_buf_puts(b, ",\"docker_image\":");
	put_opt_string(b, &t->docker_image);
	nd_buf_puts(b, ",\"exp_name\":");
	put_opt_string(b, &t->exp_name);
	nd_buf_puts(b, ",\"exit_reason\":");
	put_opt_string(b, &t->exit_reason);
	nd_buf_puts(b, ",\"reward\":");
	put_opt_number(b, &t->reward);
	nd_buf_puts(b, ",\"max_steps\":");
	put_opt_number(b, &t->max_steps);
	nd_buf_puts(b, ",\"num_steps\":");
	nd_buf_put_long(b, t->num_steps);
	nd_buf_putc(b, '}');
}

static int build_record(struct nd_traj *t, const char *file, long line,
			const struct nd_traj_params *p)
{
	struct nd_buf *b = &t->out;
	size_t keep = t->n_steps;

	if (p->max_turns >= 0 && (size_t)p->max_turns < keep)
		keep = (size_t)p->max_turns;
	nd_buf_reset(b);
	nd_buf_puts(b, "{\"type\":\"trajectory\",\"id\":");
	put_id(b, t, file, line);
	nd_buf_puts(b, ",\"source\":{\"file\":");
	nd_buf_put_cstring(b, file);
	nd_buf_puts(b, ",\"line\":");
	nd_buf_put_long(b, line);
	nd_buf_puts(b, "},\"problem_statement\":");
	nd_buf_put_jstring(b, &t->problem);
	nd_buf_puts(b, ",\"steps\":[");
	for (size_t i = 0; i < keep; i++) {
		if (i)
			nd_buf_putc(b, ',');
		put_step(b, &t->steps[i], i);
	}
	nd_buf_puts(b, "],");
	put_meta(b, t);
	if (t->system_prompt.s && t->instance_prompt.s) {
		nd_buf_puts(b, ",\"prompts\":{\"system_prompt\":");
		nd_buf_put_jstring(b, &t->system_prompt);
		nd_buf_puts(b, ",\"instance_prompt\":");
		nd_buf_put_jstring(b, &t->instance_prompt);
		nd_buf_putc(b, '}');
	}
	nd_buf_putc(b, '}');
	if (b->failed) {
		t->err->status = ND_TRAJ_E_NOMEM;
		snprintf(t->err->msg, sizeof(t->err->msg), "out of memory");
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- entry */

static void reset(struct nd_traj *t, struct nd_traj_error *err)
{
	t->err = err;
	where(t, "", -1, NULL);
	t->n_steps = 0;
	t->has_steps = t->has_problem = false;
	memset(&t->docker_image, 0, sizeof(opt_t));
	memset(&t->exp_name, 0, sizeof(opt_t));
	memset(&t->exit_reason, 0, sizeof(opt_t));
	memset(&t->reward, 0, sizeof(opt_t));
	memset(&t->max_steps, 0, sizeof(opt_t));
	memset(&t->instance_id, 0, sizeof(opt_t));
	memset(&t->env_instance_id, 0, sizeof(opt_t));
	memset(&t->system_prompt, 0, sizeof(opt_t));
	memset(&t->instance_prompt, 0, sizeof(opt_t));
	t->num_steps = 0;
	memset(err, 0, sizeof(*err));
}

int nd_traj_project(struct nd_traj *t, const char *doc, size_t len,
		    const char *file, long line,
		    const struct nd_traj_params *p, struct nd_traj_error *err)
{
	enum nd_scan_type ty;

	reset(t, err);
	nd_scan_init(&t->sc, doc, len);
	ty = nd_scan_peek(&t->sc);
	if (ty != ND_SCAN_OBJECT) {
		if (nd_scan_skip(&t->sc) != 0 || nd_scan_finish(&t->sc) != 0)
			return scan_error(t), err->status;
		return shape_error(t, "not a JSON object (got %s)", type_name(ty)), err->status;
	}
	if (read_members(t, "", top_member, NULL) != 0)
		return err->status;
	where(t, "", -1, NULL);
	if (nd_scan_finish(&t->sc) != 0)
		return scan_error(t), err->status;
	if (!t->has_steps)
		return shape_error(t, "missing field 'trajectory_steps'"), err->status;
	if (!t->has_problem)
		return shape_error(t, "missing field 'problem_statement'"), err->status;
	t->num_steps = (long)t->n_steps;
	if (build_record(t, file, line, p) != 0)
		return err->status;
	return ND_TRAJ_OK;
}
