/*
 * nd_summary.c: reads request / conversation_result / run records, keeps
 * per-group samples, and writes each group once it is complete, in order
 * of first appearance (see nd_summary.h for the contract and
 * timing-stats(1) for every field).  nd_summary_record.c computes the
 * records from a group; nd_summary_text.c prints them as text.
 *
 * The metric definitions are SGLang's bench_serving calculate_metrics,
 * reimplemented: only successful requests enter totals and latency
 * samples; TPOT = (latency - ttft) / (output_len - 1) for output_len > 1;
 * ITL values of all requests are pooled; statistics are computed in
 * seconds and scaled by 1000 afterwards, as SGLang does, so that the bits
 * agree.  Our additions (cache hits, trajectories, env time) follow the
 * same rule: failed work is counted, never averaged in.
 *
 * It refuses to guess: a request record with a missing or malformed field
 * is reported and left out, never patched with zeros; an empty sample
 * yields null, not 0.
 */
#include "tools/stats/nd_summary_impl.h"
#include "tools/stats/nd_stats.h"
#include "tools/common/nd.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ samples */

/* ------------------------------------------------------------ parameters */

void nd_summary_default_params(struct nd_summary_params *p)
{
	memset(p, 0, sizeof(*p));
	p->group_by = ND_GROUP_BY_RUN;
	p->pct[0] = 90;
	p->pct[1] = 99;
	p->n_pct = 2;
	p->format = ND_SUMMARY_JSON;
}

int nd_summary_parse_group_by(const char *s, enum nd_group_by *out)
{
	static const char *const names[] = {"run", "conversation", "turn", "none", "worker"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum nd_group_by)i;
			return 0;
		}
	return -1;
}

int nd_summary_parse_percentiles(const char *list, struct nd_summary_params *p)
{
	double v[ND_SUMMARY_MAX_PCT];
	size_t n = 0;
	const char *s = list;

	for (;;) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		char item[64];

		if (len == 0 || len >= sizeof(item) || n == ND_SUMMARY_MAX_PCT)
			return -1;
		memcpy(item, s, len);
		item[len] = '\0';
		if (nd_parse_double(item, 0, 100, &v[n]) != 0)
			return -1;
		n++;
		if (!comma)
			break;
		s = comma + 1;
	}
	n = nd_stats_sort_unique(v, n);
	memcpy(p->pct, v, n * sizeof(*v));
	p->n_pct = n;
	p->pct_given = true;
	return 0;
}

/* ------------------------------------------------------------ lifetime */

struct nd_summary *nd_summary_new(const struct nd_summary_params *p)
{
	struct nd_summary *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->p = *p;
	s->tail = &s->head;
	return s;
}

static void group_free(struct group *g)
{
	free(g->key);
	free(g->run);
	free(g->conversation_id);
	free(g->worker);
	nd_dvec_free(&g->e2e);
	nd_dvec_free(&g->ttft);
	nd_dvec_free(&g->tpot);
	nd_dvec_free(&g->itl);
	nd_dvec_free(&g->start);
	nd_dvec_free(&g->n_itl);
	for (size_t i = 0; i < g->n_conv; i++)
		free(g->conv_list[i]);
	free(g->conv_list);
	nd_strmap_clear(&g->convs);
	for (size_t i = 0; i < g->n_turns; i++)
		nd_dvec_free(&g->turns[i].ttft);
	free(g->turns);
	free(g);
}

void nd_summary_free(struct nd_summary *s)
{
	struct group *g, *gnext;
	struct run_info *r, *rnext;

	if (!s)
		return;
	for (g = s->head; g; g = gnext) {
		gnext = g->next;
		group_free(g);
	}
	nd_strmap_clear(&s->groups);
	for (r = s->run_list; r; r = rnext) {
		rnext = r->next;
		free(r->mode);
		free(r->backend);
		json_decref(r->engine_stats);
		free(r);
	}
	nd_strmap_clear(&s->runs);
	free(s);
}

/* ------------------------------------------------------------ field access */

static int bad(char *err, size_t len, const char *type, const char *key,
	       const char *what)
{
	snprintf(err, len, "%s: \"%s\" must be %s", type, key, what);
	return ND_SUMMARY_BAD_RECORD;
}

#define NOT_A_STRING 1

/* A name in JSON form (nd_summary_impl.h), malloc'ed into *out:
 * ND_SUMMARY_OK, NOT_A_STRING or ND_SUMMARY_NO_MEMORY. */
static int get_name(const json_t *o, const char *key, char **out)
{
	const json_t *v = json_object_get(o, key);

	*out = NULL;
	if (!json_is_string(v))
		return NOT_A_STRING;
	*out = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	return *out ? ND_SUMMARY_OK : ND_SUMMARY_NO_MEMORY;
}

/* A finite number >= 0 (JSON integer or real). */
static bool get_num(const json_t *o, const char *key, double *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_number(v))
		return false;
	*out = json_number_value(v);
	return isfinite(*out) && *out >= 0;
}

/* A JSON integer in [0, INT_MAX]: token counts and turn indexes.  The
 * bound keeps the group totals (long long) from overflowing before memory
 * for the samples runs out. */
static bool get_count(const json_t *o, const char *key, long long *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > INT_MAX)
		return false;
	*out = json_integer_value(v);
	return true;
}

static bool get_bool(const json_t *o, const char *key, bool *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_boolean(v))
		return false;
	*out = json_is_true(v);
	return true;
}

/* Absent or null is allowed (0 / NULL); otherwise as the getter says. */
static bool absent(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return !v || json_is_null(v);
}

#define NUM_MSG "a number >= 0"
#define INT_MSG "an integer from 0 to 2147483647"

/* ------------------------------------------------------------ records */

struct req {
	char *run, *conv;             /* JSON form, owned */
	char *worker;                 /* the router's worker, JSON form, owned;
				       * NULL when absent */
	long long turn;
	bool success;
	double start, ttft, latency;  /* seconds */
	const json_t *itl;            /* array of seconds */
	long long prompt_len, output_len, cached;  /* cached: -1 when null (a
						    * server that does not say) */
	long long recorded;           /* recorded_prompt_len, -1 when absent */
	double env;                   /* env_exec_time, null as 0 */
};

/* The identity fields every request carries, failed or not. */
static int parse_request_id(const json_t *o, struct req *r, char *err, size_t len)
{
	int rc;

	if ((rc = get_name(o, "run", &r->run)) != ND_SUMMARY_OK)
		return rc == NOT_A_STRING ? bad(err, len, "request", "run", "a string") : rc;
	if ((rc = get_name(o, "conversation_id", &r->conv)) != ND_SUMMARY_OK)
		return rc == NOT_A_STRING ?
		       bad(err, len, "request", "conversation_id", "a string") : rc;
	r->worker = NULL;
	if (!absent(o, "worker") && (rc = get_name(o, "worker", &r->worker)) != ND_SUMMARY_OK)
		return rc == NOT_A_STRING ? bad(err, len, "request", "worker", "a string or null")
					  : rc;
	if (!get_count(o, "turn", &r->turn))
		return bad(err, len, "request", "turn", INT_MSG);
	if (!get_bool(o, "success", &r->success))
		return bad(err, len, "request", "success", "true or false");
	/* The prompt length against the recorded one: failed requests too
	 * (a turn too long for the context had its prompt rendered). */
	r->recorded = -1;
	if (!absent(o, "recorded_prompt_len") && !get_count(o, "recorded_prompt_len", &r->recorded))
		return bad(err, len, "request", "recorded_prompt_len", INT_MSG " or null");
	if (!get_count(o, "prompt_len", &r->prompt_len))
		r->prompt_len = 0;
	return ND_SUMMARY_OK;
}

/* The timings of a successful request.  A failed one carries zeros and
 * nothing here is read from it. */
static int parse_request_timing(const json_t *o, struct req *r, char *err,
				size_t len)
{
	static const char *const nums[] = {"start_time", "ttft", "latency"};
	static const char *const ints[] = {"prompt_len", "output_len", "cached_tokens"};
	double *nv[] = {&r->start, &r->ttft, &r->latency};
	long long *iv[] = {&r->prompt_len, &r->output_len, &r->cached};
	size_t i;

	for (i = 0; i < 3; i++)
		if (!get_num(o, nums[i], nv[i]))
			return bad(err, len, "request", nums[i], NUM_MSG);
	r->cached = -1;
	for (i = 0; i < 3; i++)
		if (!(i == 2 && absent(o, ints[i])) && !get_count(o, ints[i], iv[i]))
			return bad(err, len, "request", ints[i], i == 2 ? INT_MSG " or null" : INT_MSG);
	r->itl = json_object_get(o, "itl");
	if (!json_is_array(r->itl))
		return bad(err, len, "request", "itl", "an array of numbers >= 0");
	for (i = 0; i < json_array_size(r->itl); i++) {
		const json_t *v = json_array_get(r->itl, i);

		if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
		    json_number_value(v) < 0)
			return bad(err, len, "request", "itl",
				   "an array of numbers >= 0");
	}
	r->env = 0;
	if (!absent(o, "env_exec_time") && !get_num(o, "env_exec_time", &r->env))
		return bad(err, len, "request", "env_exec_time", NUM_MSG " or null");
	return ND_SUMMARY_OK;
}

/* ------------------------------------------------------------ groups */

/* The map key of the group a record belongs to; NULL when out of memory. */
static char *group_key(const struct nd_summary *s, const char *run,
		       const char *conv, long long turn, const char *worker)
{
	char *key = NULL;

	switch (s->p.group_by) {
	case ND_GROUP_BY_RUN:
		return strdup(run);
	case ND_GROUP_BY_CONVERSATION:
		if (asprintf(&key, "%s\x1f%s", run, conv) < 0)
			return NULL;
		return key;
	case ND_GROUP_BY_TURN:
		if (asprintf(&key, "%s\x1f%lld", run, turn) < 0)
			return NULL;
		return key;
	case ND_GROUP_BY_WORKER:
		if (asprintf(&key, "%s\x1f%s%s", run, worker ? "w" : "", worker ? worker : "") < 0)
			return NULL;
		return key;
	case ND_GROUP_BY_NONE:
		break;
	}
	return strdup("");
}

static struct group *group_new(struct nd_summary *s, char *key, const char *run,
			       const char *conv, long long turn, const char *worker)
{
	struct group *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->key = key;
	g->run = strdup(run);
	g->turn = (long)turn;
	if (s->p.group_by == ND_GROUP_BY_CONVERSATION)
		g->conversation_id = strdup(conv);
	if (s->p.group_by == ND_GROUP_BY_WORKER && worker)
		g->worker = strdup(worker);
	if (!g->run || (s->p.group_by == ND_GROUP_BY_CONVERSATION &&
			!g->conversation_id) || (worker && s->p.group_by == ND_GROUP_BY_WORKER &&
						 !g->worker) ||
	    nd_strmap_put(&s->groups, key, g) != 0) {
		group_free(g);
		return NULL;
	}
	*s->tail = g;
	s->tail = &g->next;
	return g;
}

/* Finds or makes the group of a record; NULL when out of memory. */
static struct group *get_group(struct nd_summary *s, const char *run,
			       const char *conv, long long turn, const char *worker)
{
	char *key = group_key(s, run, conv, turn, worker);
	struct group *g;

	if (!key)
		return NULL;
	g = nd_strmap_get(&s->groups, key);
	if (!g)
		return group_new(s, key, run, conv, turn, worker);
	free(key);
	/* Only a none-group can see a second run; it then has no run name. */
	if (g->run && strcmp(g->run, run) != 0) {
		free(g->run);
		g->run = NULL;
		g->run_mixed = true;
	}
	return g;
}

static struct conv_acc *get_conv(struct group *g, const char *run,
				 const char *conv)
{
	char *key = NULL;
	struct conv_acc *c;

	if (asprintf(&key, "%s\x1f%s", run, conv) < 0)
		return NULL;
	c = nd_strmap_get(&g->convs, key);
	if (c) {
		free(key);
		return c;
	}
	if (g->n_conv == g->cap_conv) {
		size_t cap = g->cap_conv ? g->cap_conv * 2 : 8;
		struct conv_acc **l = realloc(g->conv_list, cap * sizeof(*l));

		if (!l)
			goto oom;
		g->conv_list = l;
		g->cap_conv = cap;
	}
	c = calloc(1, sizeof(*c));
	if (!c || nd_strmap_put(&g->convs, key, c) != 0) {
		free(c);
		goto oom;
	}
	free(key);
	g->conv_list[g->n_conv++] = c;
	return c;
oom:
	free(key);
	return NULL;
}

static struct turn_acc *get_turn(struct group *g, long long turn)
{
	struct turn_acc *t;

	/* Turns come mostly in order and are few: search from the end. */
	for (size_t i = g->n_turns; i-- > 0;)
		if (g->turns[i].turn == turn)
			return &g->turns[i];
	if (g->n_turns == g->cap_turns) {
		size_t cap = g->cap_turns ? g->cap_turns * 2 : 8;

		t = realloc(g->turns, cap * sizeof(*t));
		if (!t)
			return NULL;
		g->turns = t;
		g->cap_turns = cap;
	}
	t = &g->turns[g->n_turns++];
	memset(t, 0, sizeof(*t));
	t->turn = (long)turn;
	return t;
}

/* Adds a successful request's samples to its group.  0 or -1 (memory). */
static int add_success(struct group *g, struct conv_acc *c,
		       struct turn_acc *t, const struct req *r)
{
	double end = r->start + r->latency;
	int rc = 0;

	if (g->completed == 0 || r->start < g->t_first)
		g->t_first = r->start;
	if (g->completed == 0 || end > g->t_last)
		g->t_last = end;
	g->completed++;
	g->input_tokens += r->prompt_len;
	g->output_tokens += r->output_len;
	if (r->cached >= 0) {
		g->cached_tokens += r->cached;
		g->cache_input_tokens += r->prompt_len;
		g->n_cache_known++;
	}
	rc |= nd_dvec_push(&g->e2e, r->latency);
	rc |= nd_dvec_push(&g->ttft, r->ttft);
	if (r->output_len > 1)
		rc |= nd_dvec_push(&g->tpot, (r->latency - r->ttft) /
					  (double)(r->output_len - 1));
	for (size_t i = 0; i < json_array_size(r->itl); i++)
		rc |= nd_dvec_push(&g->itl, json_number_value(json_array_get(r->itl, i)));
	rc |= nd_dvec_push(&g->start, r->start);
	rc |= nd_dvec_push(&g->n_itl, (double)json_array_size(r->itl));
	c->n_ok++;
	c->env_req += r->env;
	c->llm_req += r->latency;
	if (t) {
		rc |= nd_dvec_push(&t->ttft, r->ttft);
		t->prompt_sum += r->prompt_len;
		if (r->cached >= 0) {
			t->cached_sum += r->cached;
			t->cache_prompt_sum += r->prompt_len;
			t->n_cache_known++;
		}
	}
	return rc;
}

static int add_parsed_request(struct nd_summary *s, const struct req *r)
{
	struct group *g = get_group(s, r->run, r->conv, r->turn, r->worker);
	struct conv_acc *c = g ? get_conv(g, r->run, r->conv) : NULL;
	struct turn_acc *t = NULL;

	if (c && s->p.per_turn)
		t = get_turn(g, r->turn);
	if (!c || (s->p.per_turn && !t))
		return ND_SUMMARY_NO_MEMORY;
	if (r->recorded >= 0 && r->prompt_len > 0) {
		g->recorded++;
		g->mismatched += r->prompt_len != r->recorded;
	}
	if (!r->success) {
		g->failed++;
		c->n_failed++;
		return ND_SUMMARY_OK;
	}
	return add_success(g, c, t, r) ? ND_SUMMARY_NO_MEMORY : ND_SUMMARY_OK;
}

static int add_request(struct nd_summary *s, const json_t *o, char *err,
		       size_t len)
{
	struct req r = {0};
	int rc = parse_request_id(o, &r, err, len);

	if (rc == ND_SUMMARY_OK && r.success)
		rc = parse_request_timing(o, &r, err, len);
	if (rc == ND_SUMMARY_OK)
		rc = add_parsed_request(s, &r);
	free(r.run);
	free(r.conv);
	free(r.worker);
	return rc;
}

/* run and conv (JSON form) are read; the rest of the record is checked. */
static int add_result_named(struct nd_summary *s, const json_t *o, const char *run,
			    const char *conv, char *err, size_t len)
{
	bool ok;
	double env, llm;
	struct group *g;
	struct conv_acc *c;

	if (!get_bool(o, "success", &ok))
		return bad(err, len, "conversation_result", "success",
			   "true or false");
	if (!get_num(o, "env_time", &env))
		return bad(err, len, "conversation_result", "env_time", NUM_MSG);
	if (!get_num(o, "llm_time", &llm))
		return bad(err, len, "conversation_result", "llm_time", NUM_MSG);
	/* A conversation spans turns (and, routed, workers): it belongs to no
	 * turn or worker group. */
	if (s->p.group_by == ND_GROUP_BY_TURN || s->p.group_by == ND_GROUP_BY_WORKER)
		return ND_SUMMARY_OK;
	g = get_group(s, run, conv, 0, NULL);
	c = g ? get_conv(g, run, conv) : NULL;
	if (!c)
		return ND_SUMMARY_NO_MEMORY;
	c->has_result = true;
	c->result_ok = ok;
	c->result_env = env;
	c->result_llm = llm;
	return ND_SUMMARY_OK;
}

static int add_conversation_result(struct nd_summary *s, const json_t *o,
				   char *err, size_t len)
{
	char *run = NULL, *conv = NULL;
	int rc = get_name(o, "run", &run);

	if (rc == NOT_A_STRING)
		rc = bad(err, len, "conversation_result", "run", "a string");
	if (rc == ND_SUMMARY_OK && (rc = get_name(o, "conversation_id", &conv)) == NOT_A_STRING)
		rc = bad(err, len, "conversation_result", "conversation_id", "a string");
	if (rc == ND_SUMMARY_OK)
		rc = add_result_named(s, o, run, conv, err, len);
	free(run);
	free(conv);
	return rc;
}

/* An optional name: absent or null leaves *out NULL. */
static int get_opt_name(const json_t *o, const char *key, char **out, char *err,
			size_t len)
{
	int rc;

	*out = NULL;
	if (absent(o, key))
		return ND_SUMMARY_OK;
	rc = get_name(o, key, out);
	return rc == NOT_A_STRING ? bad(err, len, "run", key, "a string or null") : rc;
}

static int store_run(struct nd_summary *s, const char *run, const json_t *o,
		     char *err, size_t len)
{
	struct run_info *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return ND_SUMMARY_NO_MEMORY;
	r->next = s->run_list;
	s->run_list = r;
	if ((rc = get_opt_name(o, "mode", &r->mode, err, len)) != ND_SUMMARY_OK ||
	    (rc = get_opt_name(o, "backend", &r->backend, err, len)) != ND_SUMMARY_OK)
		return rc;
	if (!absent(o, "batch_size")) {
		if (!get_count(o, "batch_size", &r->batch_size))
			return bad(err, len, "run", "batch_size", INT_MSG " or null");
		r->has_batch_size = true;
	}
	r->request_rate = NAN;
	if (!absent(o, "request_rate") && !get_num(o, "request_rate", &r->request_rate))
		return bad(err, len, "run", "request_rate", NUM_MSG " or null");
	if (json_is_object(json_object_get(o, "engine_stats")))
		r->engine_stats = json_incref(json_object_get(o, "engine_stats"));
	if (nd_strmap_put(&s->runs, run, r) != 0)
		return ND_SUMMARY_NO_MEMORY;
	return ND_SUMMARY_OK;
}

static int flush(struct nd_summary *s);

/* The run record is the last line of a run: its groups are complete. */
static int add_run_named(struct nd_summary *s, const json_t *o, const char *run,
			 char *err, size_t len)
{
	int rc = store_run(s, run, o, err, len);

	if (rc != ND_SUMMARY_OK)
		return rc;
	if (s->p.group_by == ND_GROUP_BY_NONE)
		return ND_SUMMARY_OK;
	/* A run without requests still gets its (empty) summary. */
	if (s->p.group_by == ND_GROUP_BY_RUN && !get_group(s, run, NULL, 0, NULL))
		return ND_SUMMARY_NO_MEMORY;
	for (struct group *g = s->head; g; g = g->next)
		if (g->run && strcmp(g->run, run) == 0)
			g->closed = true;
	return flush(s);
}

static int add_run(struct nd_summary *s, const json_t *o, char *err, size_t len)
{
	char *run = NULL;
	int rc = get_name(o, "run", &run);

	if (rc == NOT_A_STRING)
		rc = bad(err, len, "run", "run", "a string");
	if (rc == ND_SUMMARY_OK)
		rc = add_run_named(s, o, run, err, len);
	free(run);
	return rc;
}

int nd_summary_add(struct nd_summary *s, const json_t *rec, char *err,
		   size_t errlen)
{
	const char *type = json_string_value(json_object_get(rec, "type"));

	if (!type) {
		snprintf(err, errlen, json_object_get(rec, "type") ?
			 "\"type\" must be a string" : "missing \"type\"");
		return ND_SUMMARY_BAD_RECORD;
	}
	if (strcmp(type, "request") == 0)
		return add_request(s, rec, err, errlen);
	if (strcmp(type, "conversation_result") == 0)
		return add_conversation_result(s, rec, err, errlen);
	if (strcmp(type, "run") == 0)
		return add_run(s, rec, err, errlen);
	return ND_SUMMARY_OK;
}

static int write_group(struct nd_summary *s, struct group *g)
{
	const struct run_info *ri = g->run ? nd_strmap_get(&s->runs, g->run) : NULL;
	json_t *sum = nd_summary_record(s, g);
	json_t *turns = s->p.per_turn ? nd_summary_turn_records(s, g) : NULL;
	json_t *backend = nd_summary_name_json(ri ? ri->backend : NULL);
	int rc = ND_SUMMARY_OK;

	if (!sum || (s->p.per_turn && !turns) || !backend) {
		rc = ND_SUMMARY_NO_MEMORY;
	} else if (s->p.format != ND_SUMMARY_JSON) {
		if (nd_summary_write_text(sum, turns, json_string_value(backend),
					  &s->p, !s->wrote_any) != 0)
			rc = ND_SUMMARY_WRITE_FAILED;
	} else {
		if (nd_write_json(sum) != 0)
			rc = ND_SUMMARY_WRITE_FAILED;
		for (size_t i = 0; rc == ND_SUMMARY_OK && i < json_array_size(turns); i++)
			if (nd_write_json(json_array_get(turns, i)) != 0)
				rc = ND_SUMMARY_WRITE_FAILED;
	}
	s->wrote_any = true;
	json_decref(sum);
	json_decref(turns);
	json_decref(backend);
	return rc;
}

/* Writes and frees complete groups from the head of the list. */
static int flush(struct nd_summary *s)
{
	while (s->head && s->head->closed) {
		struct group *g = s->head;
		int rc = write_group(s, g);

		s->head = g->next;
		if (!s->head)
			s->tail = &s->head;
		nd_strmap_del(&s->groups, g->key);
		group_free(g);
		if (rc != ND_SUMMARY_OK)
			return rc;
	}
	return ND_SUMMARY_OK;
}

int nd_summary_finish(struct nd_summary *s)
{
	for (struct group *g = s->head; g; g = g->next)
		g->closed = true;
	return flush(s);
}
