/*
 * nd_report.c: collects the records a report is made from.
 *
 * Records are grouped by their "run" id: a summary row finds its run
 * record (batch size, model, settings), its conversation_result totals,
 * its per-turn summaries and its request timings through the group.  Each
 * record is type-checked once, when added, against the agreed schema: a
 * field that is present and not null must have its schema type, so later
 * code can read fields without checking again; absent or null numbers
 * become NaN and print as "n/a".
 *
 * What it refuses to do: it keeps summaries, runs and turn summaries as
 * whole records but reduces requests to their TTFT and ITL values and
 * conversation results to sums, so memory grows with the number of
 * tokens, never with the size of the records.  It does not recompute
 * statistics that a summary already carries.
 */
#include "tools/report/nd_report_int.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_NUM, K_INT, K_STR, K_BOOL, K_OBJ, K_NUMARR };

struct field {
	const char *key;
	enum kind kind;
};

static const struct field summary_fields[] = {
	{"mode", K_STR}, {"batch_size", K_INT}, {"duration", K_NUM},
	{"completed", K_INT}, {"failed", K_INT},
	{"recorded_prompt_lens", K_INT}, {"prompt_len_mismatches", K_INT},
	{"total_input_tokens", K_INT}, {"total_output_tokens", K_INT},
	{"request_throughput", K_NUM}, {"input_throughput", K_NUM},
	{"output_throughput", K_NUM}, {"total_throughput", K_NUM},
	{"mean_e2e_latency_ms", K_NUM}, {"median_e2e_latency_ms", K_NUM},
	{"mean_ttft_ms", K_NUM}, {"median_ttft_ms", K_NUM},
	{"mean_tpot_ms", K_NUM}, {"median_tpot_ms", K_NUM},
	{"mean_itl_ms", K_NUM}, {"median_itl_ms", K_NUM},
	{"max_itl_ms", K_NUM}, {"concurrency", K_NUM},
	{"total_cached_tokens", K_INT}, {"cache_hit_rate", K_NUM},
	{"num_trajectories", K_INT}, {"trajectories_per_s", K_NUM},
	{"total_env_time", K_NUM}, {"mean_env_time_per_trajectory", K_NUM},
	{"total_llm_time", K_NUM}, {"mean_llm_time_per_trajectory", K_NUM},
	{"projected_rollout_time", K_NUM}, {NULL, K_NUM},
};

static const struct field turn_fields[] = {
	{"count", K_INT}, {"mean_ttft_ms", K_NUM}, {"median_ttft_ms", K_NUM},
	{"p90_ttft_ms", K_NUM}, {"p99_ttft_ms", K_NUM},
	{"mean_prompt_len", K_NUM}, {"mean_cached_tokens", K_NUM},
	{"cache_hit_rate", K_NUM}, {NULL, K_NUM},
};

static const struct field run_fields[] = {
	{"mode", K_STR}, {"model", K_STR}, {"device", K_STR},
	{"backend", K_STR}, {"model_load_time", K_NUM},
	{"start_time_unix", K_NUM}, {"duration", K_NUM},
	{"batch_size", K_INT}, {"num_conversations", K_INT},
	{"num_requests", K_INT}, {"env_time_scale", K_NUM},
	{"settings", K_OBJ}, {"version", K_STR}, {NULL, K_NUM},
};

static const struct field conv_fields[] = {
	{"turns", K_INT}, {"success", K_BOOL}, {"start_time", K_NUM},
	{"end_time", K_NUM}, {"llm_time", K_NUM}, {"env_time", K_NUM},
	{"prompt_tokens", K_INT}, {"output_tokens", K_INT},
	{"cached_tokens", K_INT}, {NULL, K_NUM},
};

static const struct field request_fields[] = {
	{"turn", K_INT}, {"ttft", K_NUM}, {"itl", K_NUMARR},
	{"success", K_BOOL}, {NULL, K_NUM},
};

static const char *const kind_names[] = {
	"a number", "an integer", "a string", "true or false", "an object",
	"an array of numbers",
};

static bool has_kind(const json_t *v, enum kind k)
{
	size_t i;
	json_t *e;

	switch (k) {
	case K_NUM: return json_is_number(v);
	case K_INT: return json_is_integer(v) ||
			   (json_is_real(v) &&
			    json_real_value(v) == floor(json_real_value(v)));
	case K_STR: return json_is_string(v);
	case K_BOOL: return json_is_boolean(v);
	case K_OBJ: return json_is_object(v);
	case K_NUMARR:
		if (!json_is_array(v))
			return false;
		json_array_foreach(v, i, e)
			if (!json_is_number(e))
				return false;
		return true;
	}
	return false;
}

/* Checks the common "run" string and every listed field of obj. */
static int check_fields(const json_t *obj, const char *type,
			const struct field *f, char *err, size_t errlen)
{
	if (!json_is_string(json_object_get(obj, "run"))) {
		snprintf(err, errlen, "%s: field \"run\" must be a string", type);
		return -1;
	}
	for (; f->key; f++) {
		const json_t *v = json_object_get(obj, f->key);

		if (v && !json_is_null(v) && !has_kind(v, f->kind)) {
			snprintf(err, errlen, "%s: field \"%s\" must be %s",
				 type, f->key, kind_names[f->kind]);
			return -1;
		}
	}
	return 0;
}

/* Summary percentile keys (p90_ttft_ms, p99.9_itl_ms, std_*) vary with
 * timing-stats options: every number-looking *_ms key must be a number. */
static int check_ms_keys(const json_t *obj, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v) {
		size_t n = strlen(key);

		if (n > 3 && strcmp(key + n - 3, "_ms") == 0 &&
		    !json_is_null(v) && !json_is_number(v)) {
			snprintf(err, errlen,
				 "summary: field \"%s\" must be a number", key);
			return -1;
		}
	}
	return 0;
}

double rp_num(const json_t *obj, const char *key)
{
	const json_t *v = obj ? json_object_get(obj, key) : NULL;

	return json_is_number(v) ? json_number_value(v) : NAN;
}

static long get_batch(const json_t *obj)
{
	double b = rp_num(obj, "batch_size");

	return isfinite(b) && b >= 0 && b <= (double)LONG_MAX ? (long)b : -1;
}

/* ---------------------------------------------------------------- storage */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : 8;
	void *np;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	np = realloc(*p, ncap * elem);
	if (!np)
		return -1;
	*p = np;
	*cap = ncap;
	return 0;
}

static struct rp_group *find_group(struct nd_report *r, const char *run)
{
	struct rp_group *g;

	for (size_t i = 0; i < r->n_groups; i++)
		if (strcmp(r->groups[i]->run, run) == 0)
			return r->groups[i];
	if (grow((void **)&r->groups, &r->cap_groups, r->n_groups + 1,
		 sizeof(*r->groups)))
		return NULL;
	g = calloc(1, sizeof(*g));
	if (!g || !(g->run = strdup(run))) {
		free(g);
		return NULL;
	}
	g->batch_size = -1;
	r->groups[r->n_groups++] = g;
	return g;
}

struct nd_report_params nd_report_default_params(void)
{
	struct nd_report_params p = {
		.title = "trajbench report",
		.flatten_threshold = 0.10,
		.charts_href = "",
	};
	return p;
}

struct nd_report *nd_report_new(void)
{
	return calloc(1, sizeof(struct nd_report));
}

void nd_report_free(struct nd_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_groups; i++) {
		struct rp_group *g = r->groups[i];

		json_decref(g->run_rec);
		for (size_t k = 0; k < g->n_turns; k++)
			json_decref(g->turns[k]);
		free(g->turns);
		nd_dvec_free(&g->ttft_ms);
		nd_dvec_free(&g->itl_ms);
		free(g->run);
		free(g);
	}
	for (size_t i = 0; i < r->n_rows; i++)
		json_decref(r->rows[i].summary);
	free(r->groups);
	free(r->rows);
	free(r);
}

size_t nd_report_n_summaries(const struct nd_report *r)
{
	return r->n_rows;
}

/* ---------------------------------------------------------------- adding */

static int add_summary(struct nd_report *r, struct rp_group *g, json_t *obj)
{
	struct rp_row *row;

	if (grow((void **)&r->rows, &r->cap_rows, r->n_rows + 1,
		 sizeof(*r->rows)))
		return -1;
	row = &r->rows[r->n_rows];
	row->summary = json_incref(obj);
	row->g = g;
	row->batch_size = get_batch(obj);
	row->order = r->n_rows++;
	g->has_summary = true;
	g->n_summaries++;
	if (g->batch_size < 0)
		g->batch_size = row->batch_size;
	return 0;
}

static void add_run(struct rp_group *g, json_t *obj)
{
	json_decref(g->run_rec);
	g->run_rec = json_incref(obj);
	g->n_run_recs++;
}

static void add_conv(struct rp_group *g, const json_t *obj)
{
	double llm = rp_num(obj, "llm_time"), env = rp_num(obj, "env_time");
	double t0 = rp_num(obj, "start_time"), t1 = rp_num(obj, "end_time");

	g->n_conv++;
	g->sum_llm_s += isfinite(llm) ? llm : 0;
	g->sum_env_s += isfinite(env) ? env : 0;
	g->sum_wall_s += isfinite(t1 - t0) ? t1 - t0 : 0;
}

static int add_request(struct rp_group *g, const json_t *obj)
{
	const json_t *itl = json_object_get(obj, "itl");
	double ttft = rp_num(obj, "ttft");
	size_t i;
	json_t *e;

	g->n_requests++;
	if (!json_is_true(json_object_get(obj, "success")))
		return 0;
	if (isfinite(ttft) && nd_dvec_push(&g->ttft_ms, ttft * 1000.0))
		return -1;
	json_array_foreach(itl, i, e)
		if (nd_dvec_push(&g->itl_ms, json_number_value(e) * 1000.0))
			return -1;
	return 0;
}

static int add_turn(struct rp_group *g, json_t *obj)
{
	if (grow((void **)&g->turns, &g->cap_turns, g->n_turns + 1,
		 sizeof(*g->turns)))
		return -1;
	g->turns[g->n_turns++] = json_incref(obj);
	return 0;
}

/* The schema of each record type the report reads; NULL: passed over. */
static const struct field *fields_of(const char *type)
{
	if (strcmp(type, "summary") == 0)
		return summary_fields;
	if (strcmp(type, "turn_summary") == 0)
		return turn_fields;
	if (strcmp(type, "run") == 0)
		return run_fields;
	if (strcmp(type, "conversation_result") == 0)
		return conv_fields;
	if (strcmp(type, "request") == 0)
		return request_fields;
	return NULL;
}

enum nd_report_added nd_report_add(struct nd_report *r, json_t *obj,
				   char *err, size_t errlen)
{
	const char *type = json_string_value(json_object_get(obj, "type"));
	const struct field *f = type ? fields_of(type) : NULL;
	struct rp_group *g;
	int rc = 0;

	r->n_records++;
	if (!f) {
		r->n_passed_over++;
		return ND_REPORT_PASSED_OVER;
	}
	if (check_fields(obj, type, f, err, errlen))
		return ND_REPORT_BAD;
	if (f == summary_fields && check_ms_keys(obj, err, errlen))
		return ND_REPORT_BAD;
	if (f == turn_fields && !has_kind(json_object_get(obj, "turn"), K_INT)) {
		snprintf(err, errlen,
			 "turn_summary: field \"turn\" must be an integer");
		return ND_REPORT_BAD;
	}
	g = find_group(r, json_string_value(json_object_get(obj, "run")));
	if (!g)
		return ND_REPORT_NOMEM;
	if (f == summary_fields) {
		rc = add_summary(r, g, obj);
		r->n_by_type[RP_SUMMARY]++;
	} else if (f == run_fields) {
		add_run(g, obj);
		r->n_by_type[RP_RUN]++;
	} else if (f == conv_fields) {
		add_conv(g, obj);
		r->n_by_type[RP_CONV]++;
	} else if (f == request_fields) {
		rc = add_request(g, obj);
		r->n_by_type[RP_REQUEST]++;
	} else {
		rc = add_turn(g, obj);
		r->n_by_type[RP_TURN_SUMMARY]++;
	}
	return rc ? ND_REPORT_NOMEM : ND_REPORT_USED;
}

/* ---------------------------------------------------------------- views */

long rp_group_batch(const struct rp_group *g)
{
	return g->batch_size >= 0 ? g->batch_size : get_batch(g->run_rec);
}

/* Orders batch sizes ascending with unknown (-1) last. */
static int cmp_batch(long a, long b)
{
	if (a < 0 || b < 0)
		return (a < 0) - (b < 0);
	return (a > b) - (a < b);
}

static int cmp_rows(const void *pa, const void *pb)
{
	const struct rp_row *a = *(const struct rp_row *const *)pa;
	const struct rp_row *b = *(const struct rp_row *const *)pb;
	int c = cmp_batch(a->batch_size, b->batch_size);

	return c ? c : (a->order > b->order) - (a->order < b->order);
}

struct rp_row **rp_rows_by_batch(const struct nd_report *r)
{
	struct rp_row **v = malloc((r->n_rows ? r->n_rows : 1) * sizeof(*v));

	if (!v)
		return NULL;
	for (size_t i = 0; i < r->n_rows; i++) {
		if (r->rows[i].batch_size < 0)
			r->rows[i].batch_size = rp_group_batch(r->rows[i].g);
		v[i] = &r->rows[i];
	}
	qsort(v, r->n_rows, sizeof(*v), cmp_rows);
	return v;
}

struct rp_group **rp_groups_by_batch(const struct nd_report *r,
				     bool with_turns, size_t *n)
{
	struct rp_group **v = malloc((r->n_groups ? r->n_groups : 1) *
				     sizeof(*v));

	*n = 0;
	if (!v)
		return NULL;
	for (size_t i = 0; i < r->n_groups; i++)
		if (!with_turns || r->groups[i]->n_turns)
			v[(*n)++] = r->groups[i];
	/* insertion sort: stable, and the group count is small */
	for (size_t i = 1; i < *n; i++) {
		struct rp_group *g = v[i];
		size_t j = i;

		for (; j > 0 && cmp_batch(rp_group_batch(v[j - 1]),
					  rp_group_batch(g)) > 0; j--)
			v[j] = v[j - 1];
		v[j] = g;
	}
	if (*n == 0) {
		free(v);
		return NULL;
	}
	return v;
}

char *rp_group_label(const struct rp_group *g, char *buf, size_t len)
{
	long b = rp_group_batch(g);

	if (b >= 0)
		snprintf(buf, len, "batch %ld", b);
	else
		snprintf(buf, len, "run %s", g->run);
	return buf;
}
