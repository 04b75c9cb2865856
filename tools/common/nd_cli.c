/*
 * nd_cli.c: the command-line pieces every tool shares: the --version line
 * and strict numeric option parsing (the whole string must be a number in
 * range; "12abc", "" and overflow are errors, never silently truncated).
 */
#include "config.h"
#include "tools/common/nd.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nd_print_version(void)
{
	printf("%s (%s) %s\n", nd_progname(), PACKAGE_NAME, PACKAGE_VERSION);
}

int nd_invalid_value(const char *option, const char *value, const char *expected)
{
	if (expected)
		return nd_usage_error("invalid value '%s' for %s: %s", value, option, expected);
	return nd_usage_error("invalid value '%s' for %s", value, option);
}

int nd_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int nd_parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || isnan(v) || v < min || v > max)
		return -1;
	if (isinf(v) && !isinf(max))
		return -1;
	*out = v;
	return 0;
}
