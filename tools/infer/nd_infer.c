/*
 * nd_infer.c: gpu-batch-infer's inference modes (see nd_infer.h).
 *
 * Input files are read one after another as one stream of records; line
 * numbers and file names go into diagnostics as "tool: FILE:LINE: msg".
 * Records go to stdout through the NDJSON writer.  Exit status: 0, 1 when
 * some records were bad or some requests failed, 2 for usage and I/O
 * errors, 3 when the model or the device is unavailable.
 */
#include "tools/infer/nd_infer.h"
#include "tools/common/nd.h"
#include "tools/common/nd_async.h"
#include "engine/engine.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Output queued for a slow reader before the engine waits for it. */
#define OUT_LIMIT ((size_t)64 << 20)

void nd_infer_default_opts(struct nd_infer_opts *o)
{
	memset(o, 0, sizeof(*o));
	eng_infer_default_params(&o->engine);
	eng_session_default_params(&o->run.session);
	eng_serve_default_params(&o->serve);
	o->run.run_name = "run";
	o->run.mode = "replay";
	o->progress = isatty(STDERR_FILENO);
}

/* Input: the files in turn, as one stream.  The engine numbers lines
 * across the stream, since a diagnostic can come after its file was
 * closed (a turn fails long after its conversation was read); file i holds
 * stream lines (ends[i - 1], ends[i]]. */
struct source {
	char **files;
	int n_files, next_file;
	struct nd_reader *r;
	const char **names;   /* (n_opened) as given, or "<stdin>" */
	long *ends;           /* (n_opened) last stream line of each file */
	int n_opened;
	bool failed;
};

static int source_init(struct source *s, char **files, int n_files)
{
	int n = n_files ? n_files : 1;

	memset(s, 0, sizeof(*s));
	s->files = files;
	s->n_files = n_files;
	s->names = calloc((size_t)n, sizeof(*s->names));
	s->ends = calloc((size_t)n, sizeof(*s->ends));
	return s->names && s->ends ? 0 : -1;
}

static void source_free(struct source *s)
{
	nd_reader_close(s->r);
	free(s->names);
	free(s->ends);
}

/* Opens the next file; false when there is none. */
static bool source_open_next(struct source *s)
{
	const char *path;

	while (s->next_file < (s->n_files ? s->n_files : 1)) {
		path = s->n_files ? s->files[s->next_file] : "-";
		s->next_file++;
		s->r = nd_reader_open(path);
		if (s->r) {
			s->names[s->n_opened] = s->n_files && strcmp(path, "-") ? path : "<stdin>";
			s->ends[s->n_opened] = s->n_opened ? s->ends[s->n_opened - 1] : 0;
			s->n_opened++;
			return true;
		}
		nd_error("%s: %s", path, strerror(errno));
		s->failed = true;
	}
	return false;
}

static int source_next(void *ctx, char **line, size_t *len, long *lineno)
{
	struct source *s = ctx;

	for (;;) {
		int rc;

		if (!s->r && !source_open_next(s))
			return 0;
		rc = nd_reader_next(s->r, line, len);
		if (rc == 1) {
			*lineno = ++s->ends[s->n_opened - 1];
			return 1;
		}
		if (rc < 0) {
			nd_error_at(nd_reader_name(s->r), 0, "read error: %s", strerror(errno));
			s->failed = true;
		}
		nd_reader_close(s->r);
		s->r = NULL;
	}
}

/* An in-process run: its input, and its output thread, so that a slow
 * reader of stdout does not stall the engine's steps. */
struct local_io {
	struct source src;
	struct nd_async *out;
};

static int emit_async(void *ctx, const json_t *rec)
{
	struct local_io *l = ctx;

	return nd_async_put_json(l->out, rec);
}

static void diag_stderr(void *ctx, long line, const char *msg)
{
	struct source *s = &((struct local_io *)ctx)->src;

	for (int i = 0; line > 0 && i < s->n_opened; i++) {
		if (line <= s->ends[i]) {
			nd_error_at(s->names[i], line - (i ? s->ends[i - 1] : 0), "%s", msg);
			return;
		}
	}
	nd_error("%s", msg);
}

static int open_engine(const struct nd_infer_opts *o, struct eng_infer **e)
{
	struct eng_error err;
	char buf[1200];

	eng_error_clear(&err);
	if (eng_infer_open(&o->engine, e, &err) == 0)
		return 0;
	nd_error("cannot load the model: %s", eng_error_format(&err, buf, sizeof(buf)));
	return err.code == ENG_E_INVALID ? ND_EXIT_USAGE : ND_EXIT_UNAVAILABLE;
}

/* One progress line on stderr, like a serving engine's decode log. */
static void progress(struct eng_infer *e, double t0, bool final)
{
	struct eng_sched_stats st;
	double dt = eng_mono_s() - t0;

	eng_infer_get_stats(e, &st);
	fprintf(stderr, "\r%s: %.0fs, %lld requests done, %.1f tok/s, running %d, queued %d, "
		"prefill %lld tok, cache hit %.1f%%, free pages %zu%s", nd_progname(), dt,
		(long long)st.n_finished, dt > 0 ? (double)st.generated_tokens / dt : 0.0,
		st.n_running, st.n_waiting, (long long)st.computed_tokens,
		st.prompt_tokens ? 100.0 * (double)st.cached_tokens / (double)st.prompt_tokens : 0.0,
		st.free_pages, final ? "\n" : "   ");
}

int nd_infer_run_local(const struct nd_infer_opts *o, char **files, int n_files)
{
	struct local_io l;
	struct source *src = &l.src;
	struct eng_run_io io = { source_next, emit_async, diag_stderr, &l };
	struct eng_infer *e;
	struct eng_run *run;
	struct eng_error err;
	double t0 = eng_mono_s(), last = 0;
	long bad;
	int rc;

	if (source_init(src, files, n_files) != 0 || !(l.out = nd_async_start(OUT_LIMIT))) {
		nd_error("out of memory");
		source_free(src);
		return ND_EXIT_USAGE;
	}
	rc = open_engine(o, &e);
	if (rc != 0) {
		nd_async_stop(l.out);
		source_free(src);
		return rc;
	}
	if (eng_run_start(e, &o->run, &io, &run, &err) != 0) {
		nd_error("%s", err.msg);
		eng_infer_close(e);
		nd_async_stop(l.out);
		source_free(src);
		return ND_EXIT_USAGE;
	}
	while (!eng_run_done(run)) {
		eng_infer_poll(e, 0.05, &err);
		if (o->progress && eng_mono_s() - last > 1.0) {
			last = eng_mono_s();
			progress(e, t0, false);
		}
	}
	if (o->progress)
		progress(e, t0, true);
	bad = eng_run_finish(run);
	eng_infer_close(e);
	source_free(src);
	if (nd_async_stop(l.out) != 0 || src->failed)
		return ND_EXIT_USAGE;
	return bad > 0 ? ND_EXIT_BAD_INPUT : ND_EXIT_OK;
}

/* How far the server got, for its messages and its exit status. */
struct serving {
	const struct nd_infer_opts *o;
	double t0;
	enum eng_serve_state state;
	bool any;                /* on_state was called at all */
};

static void serve_state(void *ctx, enum eng_serve_state st, int port)
{
	struct serving *s = ctx;
	const struct nd_infer_opts *o = s->o;
	const char *host = o->serve.host;

	s->state = st;
	s->any = true;
	if (st == ENG_SERVE_LISTENING)
		fprintf(stderr, "%s: listening on http://%s:%d (loading %s)\n", nd_progname(), host,
			port, o->engine.model_dir);
	else if (st == ENG_SERVE_READY && port >= 0)
		fprintf(stderr, "%s: serving %s on http://%s:%d%s%s (loaded in %.2f s)\n",
			nd_progname(), o->engine.model_dir, host, port, o->socket ? " and " : "",
			o->socket ? o->socket : "", eng_mono_s() - s->t0);
	else if (st == ENG_SERVE_READY)
		fprintf(stderr, "%s: serving %s on %s (loaded in %.2f s)\n", nd_progname(),
			o->engine.model_dir, o->socket, eng_mono_s() - s->t0);
	else if (st == ENG_SERVE_DRAINING)
		fprintf(stderr, "%s: shutting down\n", nd_progname());
}

int nd_infer_serve(const struct nd_infer_opts *o)
{
	struct serving s = { o, eng_mono_s(), ENG_SERVE_LISTENING, false };
	struct eng_serve_params p = o->serve;
	struct eng_error err;
	char buf[1200];
	FILE *log = NULL;
	int rc;

	if (o->log_requests && !(log = o->log_file ? fopen(o->log_file, "a") : stderr)) {
		nd_error("%s: %s", o->log_file, strerror(errno));
		return ND_EXIT_USAGE;
	}
	p.socket_path = o->socket;
	p.request_log = log;
	p.on_state = serve_state;
	p.ctx = &s;
	eng_error_clear(&err);
	rc = eng_serve_load(&o->engine, &p, &err);
	if (log && log != stderr && fclose(log) != 0 && rc == 0) {
		nd_error("%s: %s", o->log_file, strerror(errno));
		return ND_EXIT_USAGE;
	}
	if (rc == 0)
		return ND_EXIT_OK;
	/* Listening (or no HTTP) but not loaded: the model's fault. */
	if ((!s.any && p.port < 0) || (s.any && s.state == ENG_SERVE_LISTENING)) {
		nd_error("cannot load the model: %s", eng_error_format(&err, buf, sizeof(buf)));
		return err.code == ENG_E_INVALID ? ND_EXIT_USAGE : ND_EXIT_UNAVAILABLE;
	}
	nd_error("%s", eng_error_format(&err, buf, sizeof(buf)));
	return ND_EXIT_USAGE;
}

/* A run through the worker: the input's name for diagnostics, and what
 * the progress line counts. */
struct remote {
	const char *name;
	bool progress;
	double t0, last;
	long requests;
	long long tokens;
};

/* Progress from the records as they come back. */
static void remote_record(void *ctx, const json_t *rec)
{
	struct remote *r = ctx;
	double now;

	if (!r->progress || strcmp(json_string_value(json_object_get(rec, "type")) ?: "", "request"))
		return;
	r->requests++;
	r->tokens += json_integer_value(json_object_get(rec, "output_len"));
	now = eng_mono_s();
	if (now - r->last < 1.0)
		return;
	r->last = now;
	fprintf(stderr, "\r%s: %.0fs, %ld requests done, %.1f tok/s   ", nd_progname(), now - r->t0,
		r->requests, now > r->t0 ? (double)r->tokens / (now - r->t0) : 0.0);
}

/* A diagnostic from the worker names a line of the run's input stream. */
static void diag_remote(void *ctx, long line, const char *msg)
{
	const char *name = ((struct remote *)ctx)->name;

	if (line > 0)
		nd_error_at(name, line, "%s", msg);
	else
		nd_error("%s", msg);
}

int nd_infer_run_remote(const struct nd_infer_opts *o, char **files, int n_files)
{
	struct remote rm = { n_files == 1 ? files[0] : "<stdin>", o->progress, eng_mono_s(), 0, 0, 0 };
	FILE *in = n_files == 1 ? fopen(files[0], "rb") : stdin;
	struct eng_client_io io = { in, stdout, diag_remote, remote_record, &rm };
	struct eng_error err;
	json_t *hello;
	long bad;

	if (n_files > 1) {
		nd_error("--connect reads one input file (or stdin); got %d", n_files);
		return ND_EXIT_USAGE;
	}
	if (!in) {
		nd_error("%s: %s", files[0], strerror(errno));
		return ND_EXIT_USAGE;
	}
	hello = json_pack("{s:s,s:s,s:o}", "type", "hello", "command", "run",
			  "params", eng_run_params_to_json(&o->run));
	bad = eng_client_run(o->socket, hello, &io, &err);
	json_decref(hello);
	if (rm.progress && rm.requests)
		fputc('\n', stderr);
	if (in != stdin)
		fclose(in);
	if (bad < 0) {
		nd_error("%s: %s", o->socket, err.msg);
		return err.code == ENG_E_IO ? ND_EXIT_UNAVAILABLE : ND_EXIT_USAGE;
	}
	return bad > 0 ? ND_EXIT_BAD_INPUT : ND_EXIT_OK;
}

int nd_infer_command(const struct nd_infer_opts *o, const char *command)
{
	struct remote rm = { o->socket, false, 0, 0, 0, 0 };
	struct eng_client_io io = { NULL, stdout, diag_remote, NULL, &rm };
	struct eng_error err;
	json_t *hello = json_pack("{s:s,s:s}", "type", "hello", "command", command);
	long rc = eng_client_run(o->socket, hello, &io, &err);

	json_decref(hello);
	if (rc < 0) {
		nd_error("%s: %s", o->socket, err.msg);
		return ND_EXIT_UNAVAILABLE;
	}
	return ND_EXIT_OK;
}
