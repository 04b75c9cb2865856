/*
 * tap.h: the smallest TAP producer, for the C unit tests.
 *
 * Header-only on purpose: each test is one .c file with a main() that calls
 * tap_ok() per check and returns tap_done().  A test with nothing to run
 * (no device, no shared data) calls tap_skip_all() instead.  tap_slurp()
 * reads a whole file, which many tests compare against; tap_remove_dir()
 * removes a test's scratch directory.
 */
#ifndef TRAJBENCH_TESTS_TAP_H
#define TRAJBENCH_TESTS_TAP_H

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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

/* The whole file at path, NUL-terminated, malloc'ed; NULL when it cannot
 * be read.  *len gets its size. */
static inline char *tap_slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!fp)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 &&
	    fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
	    fread(buf, 1, (size_t)n, fp) == (size_t)n) {
		buf[n] = '\0';
		*len = (size_t)n;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(fp);
	return buf;
}

/* Removes dir, the files in it and the files of its subdirectories (the
 * scratch trees tests write models into; nothing deeper). */
static inline void tap_remove_dir(const char *dir)
{
	DIR *d = opendir(dir), *s;
	struct dirent *e, *f;
	char sub[4096], file[4400];

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		for (s = opendir(sub); s && (f = readdir(s));) {
			snprintf(file, sizeof(file), "%s/%s", sub, f->d_name);
			if (f->d_name[0] != '.')
				unlink(file);
		}
		if (s)
			closedir(s);
		if (rmdir(sub) != 0)
			unlink(sub);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n_run);
	return tap_n_failed ? 1 : 0;
}

#endif
