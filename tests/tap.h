/*
 * tap.h: the smallest TAP producer, for the C unit tests.
 *
 * Header-only on purpose: each test is one .c file with a main() that calls
 * tap_ok() per check and returns tap_done().  A test with nothing to run
 * (no device, no shared data) calls tap_skip_all() instead.
 */
#ifndef TRAJBENCH_TESTS_TAP_H
#define TRAJBENCH_TESTS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_n_run;
static int tap_n_failed;

static inline int tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_n_run++;
	if (!cond)
		tap_n_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n_run);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	return cond;
}

/* Diagnostic lines, shown by the driver under the failing test. */
static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static inline int tap_skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	return 0;
}

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n_run);
	return tap_n_failed ? 1 : 0;
}

#endif
