/*
 * test-infer.c: a whole run on the CPU backend: a tiny random model made by
 * the model writer, conversations in, records out.
 *
 * Checks what users rely on: one request record per turn and one
 * conversation_result per conversation; later turns hit the cache; with
 * free generation (greedy), every turn's tokens are the same whether the
 * conversations run one at a time or together in one batch, with or
 * without the prefix cache, and with small prefill chunks (so batching,
 * paging, chunking and caching do not change what the model computes);
 * a bad line and a turn longer than the context fail alone.
 */
#include "engine/infer.h"
#include "tools/modelgen/model_writer.h"
#include "tests/tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXREC 256

static const char *lines[] = {
	"{\"type\":\"conversation\",\"id\":\"a\",\"messages\":["
	"{\"role\":\"system\",\"content\":\"You are a careful coding agent working in a repository.\"},"
	"{\"role\":\"user\",\"content\":\"Fix the failing test in calc.py.\\nSteps Remaining: 3\"},"
	"{\"role\":\"assistant\",\"content\":\"I will look at calc.py first.\",\"env_exec_time\":0.01},"
	"{\"role\":\"user\",\"content\":\"def add(a, b):\\n    return a - b\\nSteps Remaining: 2\"},"
	"{\"role\":\"assistant\",\"content\":\"The sign is wrong; I will fix it.\",\"env_exec_time\":0.02},"
	"{\"role\":\"user\",\"content\":\"Edited.\\nSteps Remaining: 1\"},"
	"{\"role\":\"assistant\",\"content\":\"Done.\"}]}",
	"not json at all",
	"{\"type\":\"conversation\",\"id\":\"b\",\"messages\":["
	"{\"role\":\"system\",\"content\":\"You are a careful coding agent working in a repository.\"},"
	"{\"role\":\"user\",\"content\":\"Rename the helper in utils.py.\"},"
	"{\"role\":\"assistant\",\"content\":\"Let me search for its uses.\",\"env_exec_time\":0.0},"
	"{\"role\":\"user\",\"content\":\"utils.py:3: def helper():\"},"
	"{\"role\":\"assistant\",\"content\":\"Renaming now.\"}]}",
	"{\"messages\":[{\"role\":\"user\",\"content\":\"Say something about tests.\"}],\"max_tokens\":9}",
};
#define NLINES (sizeof(lines) / sizeof(lines[0]))

struct io {
	size_t next;
	const char *long_line;  /* appended last when set */
	char buf[8192];
	char *rec[MAXREC];
	int n_rec, n_diag;
};

static int next_line(void *ctx, char **line, size_t *len, long *lineno)
{
	struct io *io = ctx;
	const char *src;

	if (io->next < NLINES)
		src = lines[io->next];
	else if (io->next == NLINES && io->long_line)
		src = io->long_line;
	else
		return 0;
	snprintf(io->buf, sizeof(io->buf), "%s", src);
	*line = io->buf;
	*len = strlen(io->buf);
	*lineno = (long)++io->next;
	return 1;
}

static int emit(void *ctx, const json_t *rec)
{
	struct io *io = ctx;

	if (io->n_rec < MAXREC)
		io->rec[io->n_rec++] = json_dumps(rec, JSON_COMPACT);
	return 0;
}

static void diag(void *ctx, long line, const char *msg)
{
	struct io *io = ctx;

	(void)line;
	(void)msg;
	io->n_diag++;
}

/* Runs all lines; returns the run's bad count. */
static long run_mode(struct eng_infer *e, struct io *io, int batch, bool recorded, const char *mode)
{
	struct eng_run_io rio = { next_line, emit, diag, io };
	struct eng_run_params rp = { 0 };
	struct eng_run *r;
	struct eng_error err;

	eng_session_default_params(&rp.session);
	rp.session.batch_size = batch;
	rp.session.recorded_output = recorded;
	rp.mode = mode;
	rp.run_name = "t";
	rp.output_details = true;
	if (eng_run_start(e, &rp, &rio, &r, &err) != 0)
		return -1;
	while (!eng_run_done(r))
		eng_infer_poll(e, 0.01, &err);
	return eng_run_finish(r);
}

static long run(struct eng_infer *e, struct io *io, int batch, bool recorded)
{
	return run_mode(e, io, batch, recorded, "replay");
}

/* The sums of the score records that scored tokens, in input order
 * (conversation, turn); *ok is cleared when one is not a finite negative
 * number.  Returns the count. */
static int scores(const struct io *io, double *sums, int *ok)
{
	int n = 0;

	for (int i = 0; i < io->n_rec; i++) {
		json_t *j = json_loads(io->rec[i], 0, NULL);
		double sum = json_real_value(json_object_get(j, "sum_logprob"));

		if (!strcmp(json_string_value(json_object_get(j, "type")), "score") && n < 64 &&
		    json_integer_value(json_object_get(j, "n_tokens")) > 0) {
			if (!(sum < 0) || !(sum > -1e9))
				*ok = 0;
			sums[n++] = sum;
		}
		json_decref(j);
	}
	return n;
}

static void free_io(struct io *io)
{
	for (int i = 0; i < io->n_rec; i++)
		free(io->rec[i]);
}

/* The output_ids of every request record, sorted, as one string. */
static char *outputs(const struct io *io)
{
	static char out[MAXREC][512];
	char *all;
	int n = 0;
	size_t total = 1;

	for (int i = 0; i < io->n_rec; i++) {
		json_t *j = json_loads(io->rec[i], 0, NULL);

		if (strcmp(json_string_value(json_object_get(j, "type")), "request") == 0) {
			char *ids = json_dumps(json_object_get(j, "output_ids"), JSON_COMPACT);

			snprintf(out[n++], sizeof(out[0]), "%s/%d:%s",
				 json_string_value(json_object_get(j, "conversation_id")),
				 (int)json_integer_value(json_object_get(j, "turn")), ids);
			free(ids);
		}
		json_decref(j);
	}
	qsort(out, (size_t)n, sizeof(out[0]), (int (*)(const void *, const void *))strcmp);
	for (int i = 0; i < n; i++)
		total += strlen(out[i]) + 1;
	all = calloc(1, total);
	for (int i = 0; i < n; i++) {
		strcat(all, out[i]);
		strcat(all, " ");
	}
	return all;
}

static int count_type(const struct io *io, const char *type, int *cached_hits)
{
	int n = 0;

	for (int i = 0; i < io->n_rec; i++) {
		json_t *j = json_loads(io->rec[i], 0, NULL);

		if (strcmp(json_string_value(json_object_get(j, "type")), type) == 0) {
			n++;
			if (cached_hits && json_integer_value(json_object_get(j, "turn")) > 0 &&
			    json_integer_value(json_object_get(j, "cached_tokens")) > 0)
				(*cached_hits)++;
		}
		json_decref(j);
	}
	return n;
}

static struct eng_infer *open_engine(const char *dir, int chunk, bool no_cache)
{
	struct eng_infer_params p;
	struct eng_infer *e;
	struct eng_error err;

	eng_infer_default_params(&p);
	p.model_dir = dir;
	p.n_threads = 2;
	p.page_size = 4;
	p.chunked_prefill_size = chunk;
	p.disable_radix_cache = no_cache;
	p.context_length = 400;
	if (eng_infer_open(&p, &e, &err) != 0) {
		tap_diag("cannot open the engine: %s", err.msg);
		return NULL;
	}
	return e;
}

/* --quantization at the engine: a name other than none / fp8, and fp8
 * with tensor parallelism, are ENG_E_INVALID naming what is refused; fp8
 * opens on the CPU and its settings say so. */
static void test_quantization(const char *dir)
{
	static const struct { const char *q; int tp, rc; const char *msg; } cases[] = {
		{ "int4", 1, ENG_E_INVALID, "quantization \"int4\" is not supported" },
		{ "fp8", 2, ENG_E_INVALID, "fp8 with tensor parallelism (tp_size 2)" },
		{ "fp8", 1, 0, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct eng_infer_params p;
		struct eng_infer *e = NULL;
		struct eng_error err;
		json_t *set;
		int rc;

		eng_infer_default_params(&p);
		p.model_dir = dir;
		p.n_threads = 2;
		p.max_total_tokens = 256;
		p.quantization = cases[i].q;
		p.tp_size = cases[i].tp;
		rc = eng_infer_open(&p, &e, &err);
		if (cases[i].msg) {
			tap_ok(rc == cases[i].rc && strstr(err.msg, cases[i].msg),
			       "quantization %s, tp_size %d: refused (%s)", cases[i].q, cases[i].tp,
			       rc ? err.msg : "opened");
			continue;
		}
		set = rc == 0 ? eng_infer_settings(e) : NULL;
		tap_ok(set && !strcmp(json_string_value(json_object_get(set, "quantization")), "fp8"),
		       "quantization fp8 opens on the cpu, settings say fp8%s%s", rc ? ": " : "",
		       rc ? err.msg : "");
		json_decref(set);
		eng_infer_close(e);
	}
}

int main(void)
{
	char dir[] = "/tmp/trajbench-infer-XXXXXX", model[64];
	struct mw_params mp = mw_default_params();
	struct eng_error err;
	struct eng_infer *e;
	struct io a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	char *ob, *oc, *od, *longline;
	int hits = 0;
	long bad;

	if (!mkdtemp(dir))
		return tap_skip_all("cannot make a temporary directory");
	snprintf(model, sizeof(model), "%s/m", dir);
	mp.seed = 7;
	if (mw_write(&mp, model, NULL, &err) != 0) {
		tap_diag("model writer: %s", err.msg);
		return tap_done() + 1;
	}
	test_quantization(model);
	e = open_engine(model, 8192, false);
	tap_ok(e != NULL, "the engine opens the tiny model");
	if (!e)
		return tap_done();
	bad = run(e, &a, 1, true);
	tap_ok(count_type(&a, "request", &hits) == 6 && count_type(&a, "conversation_result", NULL) == 3 &&
	       count_type(&a, "run", NULL) == 1, "6 request, 3 conversation_result and 1 run records");
	tap_ok(hits == 3, "every later turn hits the prefix cache (%d of 3)", hits);
	tap_ok(bad == 1 && a.n_diag == 1, "the bad line is one diagnostic, the run goes on");
	bad = run(e, &b, 1, false);
	ob = outputs(&b);
	bad += run(e, &c, 4, false);
	oc = outputs(&c);
	tap_ok(bad == 2 && strcmp(ob, oc) == 0, "batch 4 generates the same tokens as batch 1");
	eng_infer_close(e);
	e = open_engine(model, 5, true);
	run(e, &d, 3, false);
	od = outputs(&d);
	tap_ok(strcmp(ob, od) == 0, "5-token prefill chunks without the cache: the same tokens");
	tap_diag("generated: %s", ob);
	{
		struct io s1 = { 0 }, s2 = { 0 };
		double a1[64], a2[64], worst = 0;
		int ok = 1, n1, n2;

		/* Conversations complete in different orders at different batch
		 * sizes: batch 1 for both, so records come in input order. */
		run_mode(e, &s1, 1, true, "score");
		n1 = scores(&s1, a1, &ok);
		tap_ok(n1 == 5 && ok && count_type(&s1, "score", NULL) == 6,
		       "score mode: one record per turn; a finite negative sum for each recorded reply");
		eng_infer_close(e);
		e = open_engine(model, 8192, false);
		run_mode(e, &s2, 1, true, "score");
		n2 = scores(&s2, a2, &ok);
		for (int i = 0; i < n1 && n1 == n2; i++)
			if (fabs(a1[i] - a2[i]) / fabs(a2[i]) > worst)
				worst = fabs(a1[i] - a2[i]) / fabs(a2[i]);
		tap_ok(n1 == n2 && worst <= 1e-5,
		       "score mode: 5-token chunks give the sums of one-shot prefill (rel. err. %.1e)",
		       worst);
		free_io(&s1);
		free_io(&s2);
	}
	eng_infer_close(e);
	/* A conversation longer than the 400-token context. */
	longline = malloc(20000);
	strcpy(longline, "{\"type\":\"conversation\",\"id\":\"long\",\"messages\":[{\"role\":\"user\",\"content\":\"");
	for (int i = 0; i < 600; i++)
		strcat(longline, "word ");
	strcat(longline, "\"},{\"role\":\"assistant\",\"content\":\"ok\"}]}");
	e = open_engine(model, 8192, false);
	free_io(&a);
	free_io(&b);
	memset(&b, 0, sizeof(b));
	b.long_line = longline;
	bad = run(e, &b, 2, true);
	tap_ok(count_type(&b, "request", NULL) == 7 && bad == 2,
	       "a turn longer than the context is a failed request record; the rest run");
	eng_infer_close(e);
	free(longline);
	free(ob);
	free(oc);
	free(od);
	free_io(&c);
	free_io(&d);
	free_io(&b);
	snprintf(model, sizeof(model), "rm -rf %s", dir);
	if (system(model) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
