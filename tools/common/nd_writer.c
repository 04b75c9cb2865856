/*
 * nd_writer.c: NDJSON output on stdout.
 *
 * Records are written compact, one per line, raw UTF-8.  Reals use 16
 * significant digits: enough for microsecond timestamps since the epoch,
 * and short forms such as 0.1 stay short (17 digits would print
 * 0.10000000000000001).  A failed write is remembered, and nd_finish turns
 * it, or a failing final flush, into exit status 2, so a full disk or a
 * closed pipe is never silent.
 */
#include "tools/common/nd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ND_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(16))

static int write_failed;
static int write_errno;

int nd_note_write_error(int errnum)
{
	if (!write_failed) {
		write_failed = 1;
		write_errno = errnum;
	}
	return -1;
}

static int note_failure(void)
{
	return nd_note_write_error(errno);
}

int nd_write_json(const json_t *obj)
{
	if (write_failed)
		return -1;
	if (json_dumpf(obj, stdout, ND_JSON_FLAGS) != 0 || putchar('\n') == EOF)
		return note_failure();
	return 0;
}

char *nd_dump_json(const json_t *obj)
{
	return json_dumps(obj, ND_JSON_FLAGS);
}

int nd_write_line(const char *s, size_t len)
{
	if (write_failed)
		return -1;
	if (fwrite(s, 1, len, stdout) != len || putchar('\n') == EOF)
		return note_failure();
	return 0;
}

int nd_finish(int status)
{
	int bad = write_failed;
	int err = write_errno;

	/* A write that failed outside nd_write_* and was not noted (stdio
	 * drops the buffer it could not write, so a later flush can succeed). */
	if (ferror(stdout) && !bad)
		bad = 1;
	errno = 0;
	if (fflush(stdout) != 0 && !bad) {
		bad = 1;
		err = errno;
	}
	if (fclose(stdout) != 0 && !bad) {
		bad = 1;
		err = errno;
	}
	if (bad) {
		nd_error("write error: %s", err ? strerror(err) : "some output was lost");
		return ND_EXIT_USAGE;
	}
	return status;
}
