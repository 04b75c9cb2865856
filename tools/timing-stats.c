/*
 * timing-stats: summaries of gpu-batch-infer's request records, with
 * SGLang's bench_serving metric names and definitions (timing-stats(1)).
 *
 * A thin main: options, the read loop and exit statuses.  The grouping and
 * the statistics live in tools/stats/ (nd_summary*.c and nd_stats.c), so
 * that other tools (report-md) can compute the same figures.  Bad lines are
 * reported as "timing-stats: FILE:LINE: message" and skipped; the rest is
 * still summarised and the exit status is 1.
 */
#include "config.h"
#include "tools/common/nd.h"
#include "tools/stats/nd_summary.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	OPT_GROUP_BY = 256,
	OPT_PERCENTILES,
	OPT_PER_TURN,
	OPT_FORMAT,
	OPT_PROJECT,
	OPT_REPLAY_BLOCK,
};

static const struct option long_options[] = {
	{"group-by", required_argument, NULL, OPT_GROUP_BY},
	{"metric-percentiles", required_argument, NULL, OPT_PERCENTILES},
	{"per-turn", no_argument, NULL, OPT_PER_TURN},
	{"format", required_argument, NULL, OPT_FORMAT},
	{"project-trajectories", required_argument, NULL, OPT_PROJECT},
	{"replay-block", no_argument, NULL, OPT_REPLAY_BLOCK},
	{"output", required_argument, NULL, 'o'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

static void usage(void)
{
	printf("Usage: %s [OPTION]... [FILE]...\n", nd_progname());
	fputs("Summarise request records (NDJSON from gpu-batch-infer) per run, with\n"
	      "SGLang bench_serving's metrics: throughputs, TTFT, TPOT, ITL, E2E latency\n"
	      "percentiles, concurrency; plus cache hits, trajectories and env time.\n"
	      "With no FILE, or when FILE is -, read standard input.\n"
	      "\n"
	      "      --group-by=KEY          run (default), conversation, turn, worker or\n"
	      "                              none\n"
	      "      --metric-percentiles=LIST\n"
	      "                              percentiles to report, comma-separated\n"
	      "                              (default 90,99; ITL always adds 95)\n"
	      "      --per-turn              also write one turn_summary per turn index\n"
	      "      --format=FORMAT         json (default: summary records); text\n"
	      "                              (SGLang's result block with the run's name\n"
	      "                              and trajbench's lines); sglang (SGLang's\n"
	      "                              block exactly, as its scripts expect)\n"
	      "      --replay-block          with --format sglang, add trajbench's lines\n"
	      "      --project-trajectories=N\n"
	      "                              add projected_rollout_time: N trajectories at\n"
	      "                              the measured trajectories_per_s (a projection)\n"
	      "  -o, --output=FILE           write to FILE instead of standard output\n"
	      "  -h, --help                  display this help and exit\n"
	      "  -V, --version               output version information and exit\n"
	      "\n"
	      "Exit status: 0 ok; 1 some input lines were bad (the rest was summarised);\n"
	      "2 usage or system error, including a failed write.\n", stdout);
}

/* Parses the options into p; returns -1 after exit-worthy output (help,
 * version: *status 0) or a usage error (*status 2), else optind. */
static int parse_options(int argc, char **argv, struct nd_summary_params *p,
			 const char **output, int *status)
{
	char name[64];
	int c;

	*status = ND_EXIT_OK;
	opterr = 0; /* getopt would name argv[0] as given; we name the tool */
	while ((c = getopt_long(argc, argv, ":o:hV", long_options, NULL)) != -1) {
		switch (c) {
		case OPT_GROUP_BY:
			if (nd_summary_parse_group_by(optarg, &p->group_by) != 0)
				goto bad;
			break;
		case OPT_PERCENTILES:
			if (nd_summary_parse_percentiles(optarg, p) != 0)
				goto bad;
			break;
		case OPT_PER_TURN:
			p->per_turn = true;
			break;
		case OPT_REPLAY_BLOCK:
			p->replay_block = true;
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "json") == 0)
				p->format = ND_SUMMARY_JSON;
			else if (strcmp(optarg, "text") == 0)
				p->format = ND_SUMMARY_TEXT;
			else if (strcmp(optarg, "sglang") == 0)
				p->format = ND_SUMMARY_SGLANG;
			else
				goto bad;
			break;
		case OPT_PROJECT:
			if (nd_parse_long(optarg, 1, 1000000000L,
					  &p->project_trajectories) != 0)
				goto bad;
			break;
		case 'o':
			*output = optarg;
			break;
		case 'h':
			usage();
			return -1;
		case 'V':
			nd_print_version();
			return -1;
		case ':':
			*status = nd_usage_error("option '%s' requires an argument",
						 argv[optind - 1]);
			return -1;
		default:
			if (optopt)
				*status = nd_usage_error("invalid option -- '%c'", optopt);
			else
				*status = nd_usage_error("unrecognized option '%s'",
							 argv[optind - 1]);
			return -1;
		}
	}
	return optind;
bad:
	snprintf(name, sizeof(name), "--%s", long_options[c - OPT_GROUP_BY].name);
	*status = nd_invalid_value(name, optarg, NULL);
	return -1;
}

/* Reads one input.  Returns 0 to go on, -1 when summarising must stop
 * (out of memory, failed write).  *status collects the worst outcome. */
static int read_input(struct nd_summary *s, const char *path, int *status)
{
	struct nd_reader *r = nd_reader_open(path);
	char err[256], *line;
	size_t len;
	int rc, fatal = 0;

	if (!r) {
		nd_error("%s: %s", path, strerror(errno));
		*status = ND_EXIT_USAGE;
		return 0;
	}
	while (!fatal && (rc = nd_reader_next(r, &line, &len)) == 1) {
		json_t *o = nd_parse_object(line, len, err, sizeof(err));

		rc = o ? nd_summary_add(s, o, err, sizeof(err)) : ND_SUMMARY_BAD_RECORD;
		json_decref(o);
		if (rc == ND_SUMMARY_BAD_RECORD) {
			nd_error_at(nd_reader_name(r), nd_reader_lineno(r), "%s", err);
			if (*status < ND_EXIT_BAD_INPUT)
				*status = ND_EXIT_BAD_INPUT;
		} else if (rc == ND_SUMMARY_NO_MEMORY) {
			nd_error("out of memory");
			fatal = 1;
		} else if (rc == ND_SUMMARY_WRITE_FAILED) {
			fatal = 1;
		}
	}
	if (!fatal && rc < 0) {
		nd_error_at(nd_reader_name(r), 0, "read error: %s", strerror(errno));
		*status = ND_EXIT_USAGE;
	}
	nd_reader_close(r);
	return fatal ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct nd_summary_params p;
	struct nd_summary *s;
	const char *output = NULL;
	int status, first, rc;

	nd_init(argv[0]);
	nd_summary_default_params(&p);
	first = parse_options(argc, argv, &p, &output, &status);
	if (first < 0)
		return status == ND_EXIT_OK ? nd_finish(status) : status;
	if ((rc = nd_output_open(output, argv + first, argc - first)) != 0)
		return rc;
	s = nd_summary_new(&p);
	if (!s) {
		nd_error("out of memory");
		return ND_EXIT_USAGE;
	}
	rc = 0;
	if (first == argc)
		rc = read_input(s, "-", &status);
	for (int i = first; rc == 0 && i < argc; i++)
		rc = read_input(s, argv[i], &status);
	if (rc == 0) {
		rc = nd_summary_finish(s);
		if (rc == ND_SUMMARY_NO_MEMORY)
			nd_error("out of memory");
	}
	if (rc != 0)
		status = ND_EXIT_USAGE;
	nd_summary_free(s);
	return nd_finish(status);
}
