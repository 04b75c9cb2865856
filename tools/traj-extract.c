/*
 * traj-extract: R2E-Gym trajectory files -> trajbench `trajectory` records.
 *
 * The command line and the loop over files and documents; the projection
 * is nd_traj.c, the file forms nd_jdoc.c, the JSON scanner nd_scan.c.
 * Trajectories are counted for --offset and --num-prompts after
 * --min-steps has dropped the short ones, so `--num-prompts 100` means 100
 * usable trajectories.  A bad document is never skipped silently: it gets
 * a diagnostic, and the run stops there (exit 1) unless --keep-going.
 */
#include "config.h"
#include "tools/common/nd.h"
#include "tools/traj/nd_jdoc.h"
#include "tools/traj/nd_traj.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct opts {
	long num_prompts;   /* 0: all */
	long offset;
	long min_steps;
	bool keep_going;
	bool verbose;
	struct nd_traj_params params;
};

struct run {
	const struct opts *o;
	struct nd_traj *traj;
	long skipped;       /* by --offset */
	long written;
	long dropped;       /* by --min-steps */
	int status;
	bool stop;          /* --num-prompts reached, or an error without -k */
};

static void usage(void)
{
	printf("Usage: %s [OPTION]... [FILE]...\n", nd_progname());
	fputs("Read R2E-Gym trajectory files (JSONL, or pretty-printed JSON documents)\n"
	      "and write one trajbench `trajectory` record per trajectory, as NDJSON.\n"
	      "With no FILE, or when FILE is -, read standard input.\n"
	      "\n"
	      "      --num-prompts N  write at most N trajectories (0: all; default 0)\n"
	      "      --offset N       skip the first N trajectories\n"
	      "      --max-turns N    keep at most N steps of each trajectory\n"
	      "      --min-steps N    drop trajectories with fewer than N steps\n"
	      "  -k, --keep-going     report bad input and go on; exit 1 at the end\n"
	      "  -o, --output FILE    write to FILE instead of standard output\n"
	      "  -v, --verbose        say on stderr how many trajectories were dropped\n"
	      "  -h, --help           display this help and exit\n"
	      "  -V, --version        output version information and exit\n"
	      "\n"
	      "Exit status: 0 ok; 1 some input was bad; 2 usage or system error.\n"
	      "Record format: man 5 trajbench-records.\n", stdout);
}

enum { OPT_NUM_PROMPTS = 256, OPT_OFFSET, OPT_MAX_TURNS, OPT_MIN_STEPS };

static const struct option long_opts[] = {
	{ "num-prompts", required_argument, NULL, OPT_NUM_PROMPTS },
	{ "offset", required_argument, NULL, OPT_OFFSET },
	{ "max-turns", required_argument, NULL, OPT_MAX_TURNS },
	{ "min-steps", required_argument, NULL, OPT_MIN_STEPS },
	{ "keep-going", no_argument, NULL, 'k' },
	{ "output", required_argument, NULL, 'o' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static int count_arg(const char *name, const char *arg, long *out)
{
	if (nd_parse_long(arg, 0, LONG_MAX, out) != 0)
		return nd_invalid_value(name, arg, "expected a whole number >= 0");
	return 0;
}

/* Parses argv into o.  Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	const char *output = NULL;
	int c;

	memset(o, 0, sizeof(*o));
	nd_traj_default_params(&o->params);
	opterr = 0;     /* getopt would name the program by its full path */
	while ((c = getopt_long(argc, argv, ":ko:vhV", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_NUM_PROMPTS:
			if (count_arg("--num-prompts", optarg, &o->num_prompts))
				return ND_EXIT_USAGE;
			break;
		case OPT_OFFSET:
			if (count_arg("--offset", optarg, &o->offset))
				return ND_EXIT_USAGE;
			break;
		case OPT_MAX_TURNS:
			if (count_arg("--max-turns", optarg, &o->params.max_turns))
				return ND_EXIT_USAGE;
			break;
		case OPT_MIN_STEPS:
			if (count_arg("--min-steps", optarg, &o->min_steps))
				return ND_EXIT_USAGE;
			break;
		case 'k': o->keep_going = true; break;
		case 'o': output = optarg; break;
		case 'v': o->verbose = true; break;
		case 'h': usage(); return ND_EXIT_OK;
		case 'V': nd_print_version(); return ND_EXIT_OK;
		case ':':
			return nd_usage_error("option '%s' requires an argument", argv[optind - 1]);
		default:
			if (strncmp(argv[optind - 1], "--", 2) == 0)
				return nd_usage_error("unrecognized option '%s'", argv[optind - 1]);
			return nd_usage_error("invalid option -- '%c'", optopt);
		}
	}
	if (output && !freopen(output, "w", stdout)) {
		nd_error("%s: %s", output, strerror(errno));
		return ND_EXIT_USAGE;
	}
	return -1;
}

static void bad(struct run *run, int status)
{
	if (status > run->status)
		run->status = status;
	if (!run->o->keep_going)
		run->stop = true;
}

/* A diagnostic for a document the projection refused. */
static void report(const char *name, const struct nd_jdoc *doc, const struct nd_traj_error *e)
{
	const char *what = e->scan_err == ND_SCAN_E_UTF8 ? "invalid UTF-8" : "invalid JSON";
	char in[128] = "";
	long line, col;

	if (e->status == ND_TRAJ_E_NOMEM) {
		nd_error_at(name, doc->line, "out of memory");
		return;
	}
	if (e->status == ND_TRAJ_E_SHAPE) {
		nd_error_at(name, doc->line, "%s", e->msg);
		return;
	}
	nd_jdoc_locate(doc, e->offset, &line, &col);
	if (e->field[0])
		snprintf(in, sizeof(in), " in '%s'", e->field);
	if (doc->unterminated)
		nd_error_at(name, line, "truncated last line (no final newline; %s at column %ld%s: %s)",
			    what, col, in, e->msg);
	else
		nd_error_at(name, line, "%s at column %ld%s: %s", what, col, in, e->msg);
}

static void take(struct run *run, const char *name, const struct nd_jdoc *doc)
{
	const struct opts *o = run->o;
	struct nd_traj_error err;
	const char *rec;
	size_t len;

	if (nd_traj_project(run->traj, doc->text, doc->len, name, doc->line,
			    &o->params, &err) != ND_TRAJ_OK) {
		report(name, doc, &err);
		bad(run, err.status == ND_TRAJ_E_NOMEM ? ND_EXIT_USAGE : ND_EXIT_BAD_INPUT);
		return;
	}
	if (nd_traj_num_steps(run->traj) < o->min_steps) {
		run->dropped++;
		return;
	}
	if (run->skipped < o->offset) {
		run->skipped++;
		return;
	}
	rec = nd_traj_record(run->traj, &len);
	if (nd_write_line(rec, len) != 0) {
		run->status = ND_EXIT_USAGE;
		run->stop = true;
		return;
	}
	if (++run->written == o->num_prompts)
		run->stop = true;
}

static void extract_file(struct run *run, const char *path)
{
	struct nd_jdoc_reader *r = nd_jdoc_open(path);
	struct nd_jdoc doc;
	char msg[160];
	long line = 0;
	int rc;

	if (!r) {
		nd_error("%s: %s", path, strerror(errno));
		bad(run, ND_EXIT_USAGE);
		return;
	}
	while (!run->stop && (rc = nd_jdoc_next(r, &doc, msg, sizeof(msg), &line)) != 0) {
		if (rc == -2) {
			nd_error("%s: read error: %s", nd_jdoc_name(r), strerror(errno));
			bad(run, ND_EXIT_USAGE);
			break;
		}
		if (rc == -1) {
			nd_error_at(nd_jdoc_name(r), line, "%s", msg);
			bad(run, ND_EXIT_BAD_INPUT);
			continue;
		}
		take(run, nd_jdoc_name(r), &doc);
	}
	nd_jdoc_close(r);
}

int main(int argc, char **argv)
{
	struct opts o;
	struct run run = { .o = &o };
	int rc;

	nd_init(argv[0]);
	rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return nd_finish(rc);
	run.traj = nd_traj_new();
	if (!run.traj) {
		nd_error("out of memory");
		return nd_finish(ND_EXIT_USAGE);
	}
	if (optind == argc)
		extract_file(&run, "-");
	for (int i = optind; i < argc && !run.stop; i++)
		extract_file(&run, argv[i]);
	if (o.verbose && run.dropped > 0)
		nd_error("dropped %ld trajector%s with fewer than %ld steps (--min-steps)",
			 run.dropped, run.dropped == 1 ? "y" : "ies", o.min_steps);
	nd_traj_free(run.traj);
	return nd_finish(run.status);
}
