/*
 * nd_diag.c: diagnostics in the one shape every trajbench tool uses,
 * "tool: file:line: message" on stderr.  Messages are lowercase and carry no
 * trailing period; the caller supplies them without the newline.
 */
#include "tools/common/nd.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *progname = "trajbench";

void nd_init(const char *name)
{
	const char *slash = strrchr(name, '/');

	progname = slash ? slash + 1 : name;
}

const char *nd_progname(void)
{
	return progname;
}

void nd_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void nd_error_at(const char *file, long line, const char *fmt, ...)
{
	va_list ap;

	if (line > 0)
		fprintf(stderr, "%s: %s:%ld: ", progname, file, line);
	else
		fprintf(stderr, "%s: %s: ", progname, file);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int nd_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", progname);
	return ND_EXIT_USAGE;
}
