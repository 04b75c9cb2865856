/*
 * report-md: writes a Markdown benchmark report, with SVG charts, from the
 * summary, turn_summary, run, conversation_result and request records of
 * trajbench runs.  See report-md(1).
 *
 * A thin main: options, reading the inputs line by line into nd_report,
 * and choosing where the charts go.  Lines that are not JSON objects, and
 * records of a known type with a field of the wrong type, are reported as
 * "report-md: FILE:LINE: message" and make the exit status 1; the report is
 * written from the other records all the same.
 */
#include "config.h"
#include "tools/common/nd.h"
#include "tools/report/nd_report.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { OPT_CHARTS_DIR = 256, OPT_TITLE, OPT_INPUT_DESC, OPT_FLATTEN };

static const struct option long_opts[] = {
	{"output", required_argument, NULL, 'o'},
	{"charts-dir", required_argument, NULL, OPT_CHARTS_DIR},
	{"title", required_argument, NULL, OPT_TITLE},
	{"input-desc", required_argument, NULL, OPT_INPUT_DESC},
	{"flatten-threshold", required_argument, NULL, OPT_FLATTEN},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

static void usage(void)
{
	printf("Usage: %s [OPTION]... [FILE]...\n", nd_progname());
	puts("Write a Markdown report with SVG charts from the summary, "
	     "turn_summary, run,\n"
	     "conversation_result and request records in FILEs "
	     "(standard input when none\nor '-').\n\n"
	     "  -o, --output=FILE          write the report to FILE "
	     "(default: standard output)\n"
	     "      --charts-dir=DIR       write the SVG charts into DIR, "
	     "created if missing\n"
	     "                             (default: the directory of "
	     "--output; no charts\n"
	     "                             when the report goes to standard "
	     "output)\n"
	     "      --title=TEXT           the report's title "
	     "(default: \"trajbench report\")\n"
	     "      --input-desc=TEXT      a line describing the input data\n"
	     "      --flatten-threshold=X  gain in output throughput per "
	     "doubling of the batch\n"
	     "                             size below which scaling counts "
	     "as flat: a fraction\n"
	     "                             (0.1) or a percentage (10%); "
	     "default 0.1\n"
	     "  -h, --help                 display this help and exit\n"
	     "  -V, --version              output version information and "
	     "exit\n\n"
	     "Exit status: 0 ok; 1 some input lines were bad or there was no "
	     "summary record;\n2 usage or system error.");
}

struct opts {
	const char *output;       /* NULL: stdout */
	const char *charts_dir;   /* NULL: default */
	struct nd_report_params params;
};

/* "0.1" or "10%". */
static int parse_threshold(const char *s, double *out)
{
	size_t n = strlen(s);
	char buf[64];

	if (n > 1 && n < sizeof(buf) && s[n - 1] == '%') {
		memcpy(buf, s, n - 1);
		buf[n - 1] = '\0';
		if (nd_parse_double(buf, 0, 1000, out))
			return -1;
		*out /= 100.0;
		return 0;
	}
	return nd_parse_double(s, 0, 10, out);
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	int c;

	o->params = nd_report_default_params();
	opterr = 0;   /* our own messages, named like every diagnostic */
	while ((c = getopt_long(argc, argv, ":o:hV", long_opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			o->output = strcmp(optarg, "-") ? optarg : NULL;
			break;
		case OPT_CHARTS_DIR: o->charts_dir = optarg; break;
		case OPT_TITLE: o->params.title = optarg; break;
		case OPT_INPUT_DESC: o->params.input_desc = optarg; break;
		case OPT_FLATTEN:
			if (parse_threshold(optarg,
					    &o->params.flatten_threshold))
				return nd_invalid_value("--flatten-threshold", optarg,
							"expected a fraction (0.1) or a percentage (10%)");
			break;
		case 'h': usage(); return nd_finish(ND_EXIT_OK);
		case 'V': nd_print_version(); return nd_finish(ND_EXIT_OK);
		case ':':
			return nd_usage_error("option '%s' requires an argument",
					      argv[optind - 1]);
		default:
			if (optopt)
				return nd_usage_error("invalid option -- '%c'",
						      optopt);
			return nd_usage_error("unrecognized option '%s'",
					      argv[optind - 1]);
		}
	}
	return -1;
}

/* Reads one input into the report.  Returns the worst status so far. */
static int read_input(struct nd_report *r, const char *path)
{
	struct nd_reader *rd = nd_reader_open(path);
	char *line, err[256];
	size_t len;
	int status = ND_EXIT_OK, got;

	if (!rd) {
		nd_error("%s: %s", path, strerror(errno));
		return ND_EXIT_USAGE;
	}
	while ((got = nd_reader_next(rd, &line, &len)) == 1) {
		json_t *obj = nd_parse_object(line, len, err, sizeof(err));
		enum nd_report_added a = ND_REPORT_BAD;

		if (obj)
			a = nd_report_add(r, obj, err, sizeof(err));
		json_decref(obj);
		if (a == ND_REPORT_NOMEM) {
			nd_error("out of memory");
			status = ND_EXIT_USAGE;
			break;
		}
		if (a == ND_REPORT_BAD) {
			nd_error_at(nd_reader_name(rd), nd_reader_lineno(rd),
				    "%s", err);
			status = ND_EXIT_BAD_INPUT;
		}
	}
	if (got < 0) {
		nd_error("%s: %s", nd_reader_name(rd), strerror(errno));
		status = ND_EXIT_USAGE;
	}
	nd_reader_close(rd);
	return status;
}

/* mkdir -p. */
static int make_dirs(const char *dir)
{
	char path[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(path))
		return -1;
	memcpy(path, dir, n + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0777) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(path, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

/* Sets params.charts_dir and charts_href from the options. */
static int place_charts(struct opts *o, char *dir_buf, char *href_buf,
			size_t len)
{
	const char *md_dir = ".";

	if (o->output) {
		const char *slash = strrchr(o->output, '/');

		snprintf(dir_buf, len, "%.*s",
			 slash ? (int)(slash - o->output + (slash == o->output))
			       : 1,
			 slash ? o->output : ".");
		md_dir = dir_buf;
	}
	if (!o->charts_dir && !o->output) {
		o->params.no_charts_why = "Charts were not drawn: the report "
			"went to standard output and no --charts-dir was given.";
		return 0;
	}
	o->params.charts_dir = o->charts_dir ? o->charts_dir : md_dir;
	if (o->charts_dir && make_dirs(o->charts_dir)) {
		nd_error("%s: %s", o->params.charts_dir, strerror(errno));
		return -1;
	}
	if (nd_report_relpath(md_dir, o->params.charts_dir, href_buf, len)) {
		int e = errno;

		nd_error("%s: %s", access(md_dir, F_OK) ? md_dir
			 : o->params.charts_dir, strerror(e));
		return -1;
	}
	o->params.charts_href = href_buf;
	return 0;
}

static int write_report(struct nd_report *r, struct opts *o)
{
	char dir[PATH_MAX], href[PATH_MAX], err[PATH_MAX + 64];
	FILE *fp = stdout;
	int rc;

	if (place_charts(o, dir, href, sizeof(dir)))
		return ND_EXIT_USAGE;
	if (o->output && !(fp = fopen(o->output, "w"))) {
		nd_error("%s: %s", o->output, strerror(errno));
		return ND_EXIT_USAGE;
	}
	rc = nd_report_write(r, &o->params, fp, err, sizeof(err));
	if (rc)
		nd_error("%s", err);
	if (fp != stdout && fclose(fp) != 0 && !rc) {
		nd_error("%s: %s", o->output, strerror(errno));
		rc = -1;
	}
	return rc ? ND_EXIT_USAGE : ND_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct nd_report *r;
	int status = ND_EXIT_OK, st;

	nd_init(argv[0]);
	if ((st = parse_args(argc, argv, &o)) >= 0)
		return st;
	r = nd_report_new();
	if (!r) {
		nd_error("out of memory");
		return ND_EXIT_USAGE;
	}
	if (optind == argc)
		status = read_input(r, NULL);
	for (int i = optind; i < argc; i++) {
		st = read_input(r, argv[i]);
		status = st > status ? st : status;
	}
	st = write_report(r, &o);
	status = st > status ? st : status;
	if (nd_report_n_summaries(r) == 0) {
		nd_error("no summary record in the input");
		status = status ? status : ND_EXIT_BAD_INPUT;
	}
	nd_report_free(r);
	return nd_finish(status);
}
