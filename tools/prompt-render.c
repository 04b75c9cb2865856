/*
 * prompt-render: trajectory records -> the chat conversations an R2E-Gym
 * agent sent to its model (conversation records), or one OpenAI
 * chat-completion request per turn (--format openai).
 *
 * A thin main: options, the prompt source, and the read-render-write loop.
 * The rendering rules live in tools/render/nd_render.c.  One record is
 * held at a time.  A bad record is reported as "FILE:LINE: record 'ID':
 * message" and, with --keep-going, skipped; exit 1 says some were bad.
 */
#include "config.h"
#include "tools/common/nd.h"
#include "tools/render/nd_render.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { FMT_CONVERSATION, FMT_OPENAI };

struct opts {
	const char *config;
	bool from_record;
	long max_steps;          /* 0: take meta.max_steps */
	int format;
	long default_max_tokens;
	bool keep_going;
};

static void usage(void)
{
	printf("Usage: %s [OPTION]... [FILE]...\n", nd_progname());
	fputs("Turn trajectory records into the chat conversations the agent sent to its\n"
	      "model, as R2E-Gym built them.  With no FILE, or when FILE is -, read\n"
	      "standard input.\n"
	      "\n"
	      "  -c, --config=FILE              agent YAML with system_prompt and\n"
	      "                                   instance_prompt (R2E-Gym's keys)\n"
	      "      --prompts-from-trajectory  use each record's own \"prompts\"\n"
	      "      --max-steps=N              the agent's step budget (overrides\n"
	      "                                   meta.max_steps)\n"
	      "      --format=FMT               conversation (default), or openai: one\n"
	      "                                   chat-completion request per turn\n"
	      "      --default-max-tokens=N     max_tokens of a turn with no recorded\n"
	      "                                   completion length (default 1024)\n"
	      "  -o, --output=FILE              write to FILE instead of standard output\n"
	      "      --keep-going               report bad records and go on (exit 1)\n"
	      "  -h, --help                     display this help and exit\n"
	      "  -V, --version                  output version information and exit\n"
	      "\n"
	      "Exit status: 0 ok, 1 some records were bad, 2 usage, config or write error.\n"
	      "Record formats: man 5 trajbench-records.\n", stdout);
}

enum { OPT_FROM_RECORD = 256, OPT_MAX_STEPS, OPT_FORMAT, OPT_DEFAULT_MAX,
       OPT_KEEP_GOING };

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "prompts-from-trajectory", no_argument, NULL, OPT_FROM_RECORD },
	{ "max-steps", required_argument, NULL, OPT_MAX_STEPS },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "default-max-tokens", required_argument, NULL, OPT_DEFAULT_MAX },
	{ "output", required_argument, NULL, 'o' },
	{ "keep-going", no_argument, NULL, OPT_KEEP_GOING },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* Points stdout at path; stdout stays as it was when path cannot be
 * opened, so the diagnostic and nd_finish still work.  Returns -1 to go
 * on, or ND_EXIT_USAGE. */
static int redirect_stdout(const char *path)
{
	FILE *fp = fopen(path, "w");
	int rc = -1;

	if (!fp || fflush(stdout) != 0 ||
	    dup2(fileno(fp), STDOUT_FILENO) < 0) {
		nd_error("%s: %s", path, strerror(errno));
		rc = ND_EXIT_USAGE;
	}
	if (fp)
		fclose(fp);
	return rc;
}

/* Handles one option; returns -1 to go on, else an exit status. */
static int take_option(int c, struct opts *o)
{
	switch (c) {
	case 'c': o->config = optarg; return -1;
	case OPT_FROM_RECORD: o->from_record = true; return -1;
	case OPT_KEEP_GOING: o->keep_going = true; return -1;
	case OPT_MAX_STEPS:
		if (nd_parse_long(optarg, 1, INT_MAX, &o->max_steps) < 0)
			return nd_invalid_value("--max-steps", optarg, "expected a whole number >= 1");
		return -1;
	case OPT_DEFAULT_MAX:
		if (nd_parse_long(optarg, 1, INT_MAX, &o->default_max_tokens) < 0)
			return nd_invalid_value("--default-max-tokens", optarg,
						"expected a whole number >= 1");
		return -1;
	case OPT_FORMAT:
		if (strcmp(optarg, "conversation") == 0)
			o->format = FMT_CONVERSATION;
		else if (strcmp(optarg, "openai") == 0)
			o->format = FMT_OPENAI;
		else
			return nd_invalid_value("--format", optarg,
						"expected conversation or openai");
		return -1;
	case 'o':
		return redirect_stdout(optarg);
	case 'h': usage(); return ND_EXIT_OK;
	case 'V': nd_print_version(); return ND_EXIT_OK;
	default: return nd_usage_error("invalid option");
	}
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:o:hV", long_opts, NULL)) != -1) {
		if (c == '?' && optopt && optopt < 256)
			return nd_usage_error("invalid option -- '%c'", optopt);
		if (c == '?')
			return nd_usage_error("unrecognized option '%s'",
					      argv[optind - 1]);
		if (c == ':')
			return nd_usage_error("option '%s' requires an argument",
					      argv[optind - 1]);
		if ((rc = take_option(c, o)) >= 0)
			return rc;
	}
	if (!o->config == !o->from_record)
		return nd_usage_error(o->config ? "--config and "
				      "--prompts-from-trajectory exclude each other"
				      : "no prompts: give --config FILE or "
				      "--prompts-from-trajectory");
	return -1;
}

static int write_request(const json_t *req, void *user)
{
	(void)user;
	return nd_write_json(req) < 0 ? 2 : 0;
}

/* Renders one parsed record.  Returns 0, 1 (bad record, message in err)
 * or 2 (write failed). */
static int render(const json_t *rec, const struct opts *o,
		  const struct nd_prompts *cfg, char *err, size_t errlen)
{
	struct nd_prompts own;
	const struct nd_prompts *p = cfg;
	json_t *conv;
	int rc;

	if (o->from_record) {
		if (nd_prompts_from_record(rec, &own, err, errlen) < 0)
			return 1;
		p = &own;
	}
	conv = nd_render_conversation(rec, p, o->max_steps, err, errlen);
	if (p == &own)
		nd_prompts_free(&own);
	if (!conv)
		return 1;
	if (o->format == FMT_CONVERSATION)
		rc = nd_write_json(conv) < 0 ? 2 : 0;
	else if ((rc = nd_render_requests(conv, o->default_max_tokens,
					  write_request, NULL, err, errlen)) < 0)
		rc = 1;
	json_decref(conv);
	return rc;
}

/* Reads one input.  Returns 0, 1 (some records bad) or 2 (stop: I/O
 * error, or a bad record without --keep-going also stops with 1). */
static int run_file(const char *path, const struct opts *o,
		    const struct nd_prompts *cfg, bool *stop)
{
	struct nd_reader *r = nd_reader_open(path);
	char *line, err[512];
	size_t len;
	int got, status = 0;

	if (!r) {
		nd_error("%s: %s", path, strerror(errno));
		*stop = true;
		return ND_EXIT_USAGE;
	}
	while (!*stop && (got = nd_reader_next(r, &line, &len)) == 1) {
		json_t *rec;
		int rc = 1;

		if (strspn(line, " \t\r") == len)
			continue;
		rec = nd_parse_object(line, len, err, sizeof(err));
		if (!rec && nd_reader_unterminated(r))
			snprintf(err + strlen(err), sizeof(err) - strlen(err),
				 " (the last line has no newline: a truncated "
				 "file?)");
		if (rec)
			rc = render(rec, o, cfg, err, sizeof(err));
		if (rc == 1) {
			const char *id = rec ? nd_render_record_id(rec) : NULL;

			nd_error_at(nd_reader_name(r), nd_reader_lineno(r),
				    "%s%s%s%s", id ? "record '" : "",
				    id ? id : "", id ? "': " : "", err);
			status = ND_EXIT_BAD_INPUT;
			*stop = !o->keep_going;
		} else if (rc == 2) {
			*stop = true;
		}
		json_decref(rec);
	}
	if (!*stop && got < 0) {
		nd_error("%s: %s", nd_reader_name(r), strerror(errno));
		status = ND_EXIT_USAGE;
		*stop = true;
	}
	nd_reader_close(r);
	return status;
}

/* Loads the --config prompts; returns 0 or ND_EXIT_USAGE. */
static int load_config(const char *path, struct nd_prompts *p)
{
	char err[512];
	long line, column;

	if (nd_prompts_from_config(path, p, &line, &column, err,
				   sizeof(err)) == 0)
		return 0;
	if (column > 0)
		nd_error("%s:%ld:%ld: %s", path, line, column, err);
	else
		nd_error_at(path, line, "%s", err);
	return ND_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	struct opts o = { .default_max_tokens = 1024 };
	struct nd_prompts cfg = { 0 };
	bool stop = false;
	int status = 0, rc;

	nd_init(argv[0]);
	if ((rc = parse_args(argc, argv, &o)) >= 0)
		return nd_finish(rc);
	if (o.config && load_config(o.config, &cfg) != 0)
		return nd_finish(ND_EXIT_USAGE);
	if (optind == argc)
		status = run_file("-", &o, &cfg, &stop);
	for (int i = optind; i < argc && !stop; i++) {
		rc = run_file(argv[i], &o, &cfg, &stop);
		if (rc > status)
			status = rc;
	}
	nd_prompts_free(&cfg);
	return nd_finish(status);
}
