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
#include "tools/infer/nd_progress.h"
#include "engine/engine.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Output queued for a slow reader before the engine waits for it. */
#define OUT_LIMIT ((size_t)64 << 20)

void nd_infer_default_opts(struct nd_infer_opts *o)
{
	memset(o, 0, sizeof(*o));
	eng_infer_default_params(&o->engine);
	eng_session_default_params(&o->run.session);
	eng_router_default_params(&o->router);
	o->router.workers = o->workers;
	eng_serve_default_params(&o->serve);
	eng_worker_default_params(&o->worker);
	eng_remote_default_params(&o->remote);
	o->run.run_name = "run";
	o->run.mode = "replay";
	o->progress = isatty(STDERR_FILENO);
	o->repeat = 1;
}

static bool reads_stdin(char **files, int n_files)
{
	for (int i = 0; i < n_files; i++)
		if (!strcmp(files[i], "-"))
			return true;
	return n_files == 0;
}

/* Puts stdin back at start for the next repeat. */
static int stdin_rewind(off_t start)
{
	clearerr(stdin);
	if (fseeko(stdin, start, SEEK_SET) != 0) {
		nd_error("cannot reread standard input: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* For repeated runs over standard input: makes stdin a regular file (a
 * pipe is copied to a temporary file put in its place) and gives the
 * offset each repeat starts from.  0, or -1 with the error reported. */
static int stdin_rewindable(off_t *start)
{
	struct stat st;
	char buf[65536];
	FILE *tmp;
	size_t n;

	if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode)) {
		*start = lseek(STDIN_FILENO, 0, SEEK_CUR);
		return *start < 0 ? -1 : 0;
	}
	tmp = tmpfile();
	if (!tmp) {
		nd_error("cannot copy standard input for --repeat: %s", strerror(errno));
		return -1;
	}
	while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
		if (fwrite(buf, 1, n, tmp) != n)
			break;
	if (ferror(stdin) || fflush(tmp) != 0 || ferror(tmp) ||
	    dup2(fileno(tmp), STDIN_FILENO) < 0) {
		nd_error("cannot copy standard input for --repeat: %s", strerror(errno));
		fclose(tmp);
		return -1;
	}
	fclose(tmp);
	*start = 0;
	return stdin_rewind(0);
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
	long max_records;     /* --num-prompts: records read at most; 0 all */
	long n_records;
};

static int source_init(struct source *s, char **files, int n_files, long max_records)
{
	int n = n_files ? n_files : 1;

	memset(s, 0, sizeof(*s));
	s->files = files;
	s->n_files = n_files;
	s->max_records = max_records;
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

		if (s->max_records > 0 && s->n_records >= s->max_records)
			return 0;
		if (!s->r && !source_open_next(s))
			return 0;
		rc = nd_reader_next(s->r, line, len);
		if (rc == 1) {
			*lineno = ++s->ends[s->n_opened - 1];
			s->n_records += strspn(*line, " \t\r") < *len;
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
	struct nd_progress prog;
};

static int emit_async(void *ctx, const json_t *rec)
{
	struct local_io *l = ctx;

	nd_progress_record(&l->prog, rec);
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
	if (o->remote.url ? eng_infer_open_remote(&o->engine, &o->remote, e, &err) == 0
			  : eng_infer_open(&o->engine, e, &err) == 0)
		return 0;
	nd_error("%s: %s", o->remote.url ? "cannot use the server" : "cannot load the model",
		 eng_error_format(&err, buf, sizeof(buf)));
	return err.code == ENG_E_INVALID ? ND_EXIT_USAGE : ND_EXIT_UNAVAILABLE;
}

/* One progress line on stderr, like a serving engine's decode log: done
 * out of the total, the time left, then the scheduler's state (a
 * server's: requests in flight and waiting for a retry). */
static void progress(struct eng_infer *e, bool remote, const struct nd_progress *p, bool final)
{
	struct eng_sched_stats st;
	char head[256];

	eng_infer_get_stats(e, &st);
	nd_progress_head(p, head, sizeof(head));
	if (remote) {
		fprintf(stderr, "\r%s: %s, in flight %d, retrying %d, cache hit %.1f%%%s",
			nd_progname(), head, st.n_running, st.n_waiting,
			st.prompt_tokens ? 100.0 * (double)st.cached_tokens / (double)st.prompt_tokens
					 : 0.0, final ? "\n" : "   ");
		return;
	}
	fprintf(stderr, "\r%s: %s, running %d, queued %d, prefill %lld tok, cache hit %.1f%%, "
		"free pages %zu%s", nd_progname(), head, st.n_running, st.n_waiting,
		(long long)st.computed_tokens,
		st.prompt_tokens ? 100.0 * (double)st.cached_tokens / (double)st.prompt_tokens : 0.0,
		st.free_pages, final ? "\n" : "   ");
}

/* One run over the input files, read anew. */
static int run_once(const struct nd_infer_opts *o, struct eng_infer *e, struct local_io *l,
		    char **files, int n_files)
{
	struct source *src = &l->src;
	struct eng_run_io io = { source_next, emit_async, diag_stderr, l };
	struct eng_run *run;
	struct eng_error err;
	long bad;

	if (source_init(src, files, n_files, o->num_prompts) != 0) {
		nd_error("out of memory");
		source_free(src);
		return ND_EXIT_USAGE;
	}
	if (eng_run_start(e, &o->run, &io, &run, &err) != 0) {
		nd_error("%s", err.msg);
		source_free(src);
		return ND_EXIT_USAGE;
	}
	while (!eng_run_done(run)) {
		eng_infer_poll(e, 0.05, &err);
		if (nd_progress_due(&l->prog))
			progress(e, o->remote.url != NULL, &l->prog, false);
	}
	bad = eng_run_finish(run);
	source_free(src);
	if (src->failed)
		return ND_EXIT_USAGE;
	return bad > 0 ? ND_EXIT_BAD_INPUT : ND_EXIT_OK;
}

int nd_infer_run_local(const struct nd_infer_opts *o, char **files, int n_files)
{
	struct local_io l;
	struct eng_infer *e;
	off_t start = 0;
	bool rewind_stdin = o->repeat > 1 && reads_stdin(files, n_files);
	int rc, status = ND_EXIT_OK;

	if (rewind_stdin && stdin_rewindable(&start) != 0)
		return ND_EXIT_USAGE;
	nd_progress_start(&l.prog, o->progress, files, n_files);
	if (l.prog.total > 0)
		l.prog.total *= o->repeat;
	if (!(l.out = nd_async_start(OUT_LIMIT))) {
		nd_error("out of memory");
		return ND_EXIT_USAGE;
	}
	rc = open_engine(o, &e);
	if (rc != 0) {
		nd_async_stop(l.out);
		return rc;
	}
	for (int32_t k = 0; k < o->repeat && status < ND_EXIT_USAGE; k++) {
		if (k > 0 && rewind_stdin && stdin_rewind(start) != 0) {
			status = ND_EXIT_USAGE;
			break;
		}
		rc = run_once(o, e, &l, files, n_files);
		status = rc > status ? rc : status;
	}
	if (o->progress)
		progress(e, o->remote.url != NULL, &l.prog, true);
	eng_infer_close(e);
	if (nd_async_stop(l.out) != 0)
		return ND_EXIT_USAGE;
	return status;
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
	if (st == ENG_SERVE_LISTENING && port >= 0)
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

/* Raises the soft limit on open files so that max_connections clients
 * fit (as far as the hard limit allows): past it, the worker stops
 * accepting until a client leaves. */
static void fit_open_files(int32_t max_connections)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)max_connections + 64; /* the model's files, the listener, ... */

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* Listening first (the socket and the port), so that a bad path or a
 * port in use fails before a long model load; "serving" is said only once
 * everything is ready. */
int nd_infer_serve(const struct nd_infer_opts *o)
{
	struct serving s = { o, eng_mono_s(), ENG_SERVE_LISTENING, false };
	struct eng_serve_params p = o->serve;
	struct eng_worker_params wp = o->worker;
	struct eng_error err;
	char buf[1200];
	FILE *log = NULL;
	int rc;

	if (o->log_requests && !(log = o->log_file ? fopen(o->log_file, "a") : stderr)) {
		nd_error("%s: %s", o->log_file, strerror(errno));
		return ND_EXIT_USAGE;
	}
	wp.socket_path = o->socket;
	p.socket = o->socket ? &wp : NULL;
	p.request_log = log;
	p.on_state = serve_state;
	p.ctx = &s;
	if (o->socket)
		fit_open_files(wp.max_connections + (p.port >= 0 ? p.max_connections : 0));
	eng_error_clear(&err);
	rc = eng_serve_load(&o->engine, &p, &err);
	if (log && log != stderr && fclose(log) != 0 && rc == 0) {
		nd_error("%s: %s", o->log_file, strerror(errno));
		return ND_EXIT_USAGE;
	}
	if (rc == 0)
		return ND_EXIT_OK;
	/* Listening but not loaded: the model's fault. */
	if (s.any && s.state == ENG_SERVE_LISTENING) {
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
	struct nd_progress prog;
};

/* Progress from the records as they come back. */
static void remote_record(void *ctx, const json_t *rec)
{
	struct remote *r = ctx;
	char head[256];

	nd_progress_record(&r->prog, rec);
	if (!nd_progress_due(&r->prog))
		return;
	nd_progress_head(&r->prog, head, sizeof(head));
	fprintf(stderr, "\r%s: %s   ", nd_progname(), head);
	r->prog.printed = true;
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

/* The first n records of in (n > 0), in a temporary file to stream from:
 * the worker reads what it is sent.  NULL on an I/O error. */
static FILE *first_records(FILE *in, long n)
{
	FILE *tmp = tmpfile();
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	while (tmp && n > 0 && (len = getline(&line, &cap, in)) > 0) {
		n -= strspn(line, " \t\r\n") < (size_t)len;
		fwrite(line, 1, (size_t)len, tmp);
	}
	free(line);
	if (tmp && (ferror(in) || fflush(tmp) != 0 || fseek(tmp, 0, SEEK_SET) != 0)) {
		fclose(tmp);
		tmp = NULL;
	}
	return tmp;
}

int nd_infer_run_remote(const struct nd_infer_opts *o, char **files, int n_files)
{
	struct remote rm = { .name = n_files == 1 ? files[0] : "<stdin>" };
	FILE *in = n_files == 1 ? fopen(files[0], "rb") : stdin;
	FILE *whole = NULL;
	struct eng_client_io io = { in, stdout, diag_remote, remote_record, &rm };
	struct eng_error err;
	off_t start = 0;
	json_t *hello;
	long bad = 0;
	int out_errno = 0;

	if (n_files > 1) {
		nd_error("--connect reads one input file (or stdin); got %d", n_files);
		return ND_EXIT_USAGE;
	}
	if (!in) {
		nd_error("%s: %s", files[0], strerror(errno));
		return ND_EXIT_USAGE;
	}
	/* --num-prompts: the first records, in a file of their own that the
	 * repeats rewind. */
	if (o->num_prompts > 0) {
		whole = in;
		in = first_records(whole, o->num_prompts);
		if (whole != stdin)
			fclose(whole);
		if (!in) {
			nd_error("%s: %s", rm.name, strerror(errno));
			return ND_EXIT_USAGE;
		}
		io.in = in;
	}
	if (o->repeat > 1 && in == stdin && stdin_rewindable(&start) != 0)
		return ND_EXIT_USAGE;
	nd_progress_start(&rm.prog, o->progress, files, n_files);
	if (rm.prog.total > 0)
		rm.prog.total *= o->repeat;
	hello = json_pack("{s:s,s:s,s:o}", "type", "hello", "command", "run",
			  "params", eng_run_params_to_json(&o->run));
	/* Each repeat is a run of its own, from the start of the input. */
	for (int32_t k = 0; k < o->repeat && bad >= 0; k++) {
		long b;

		if (k > 0 && (in == stdin ? stdin_rewind(start) : fseeko(in, 0, SEEK_SET)) != 0) {
			json_decref(hello);
			return ND_EXIT_USAGE;
		}
		b = eng_client_run(o->socket, hello, &io, &err);
		out_errno = errno;
		bad = b < 0 ? b : bad + b;
	}
	json_decref(hello);
	if (rm.prog.printed) {
		char head[256];

		nd_progress_head(&rm.prog, head, sizeof(head));
		fprintf(stderr, "\r%s: %s   \n", nd_progname(), head);
	}
	if (in != stdin)
		fclose(in);
	if (bad < 0 && ferror(stdout)) {
		nd_note_write_error(out_errno); /* nd_finish reports it: exit 2 */
		return ND_EXIT_USAGE;
	}
	if (bad < 0) {
		nd_error("%s: %s", o->socket, err.msg);
		return err.code == ENG_E_IO ? ND_EXIT_UNAVAILABLE : ND_EXIT_USAGE;
	}
	return bad > 0 ? ND_EXIT_BAD_INPUT : ND_EXIT_OK;
}

int nd_infer_command(const struct nd_infer_opts *o, const char *command)
{
	struct remote rm = { .name = o->socket };
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
