/*
 * nd_writer.c: NDJSON output on stdout, and where stdout goes.
 *
 * Records are written compact, one per line, raw UTF-8.  Reals use 16
 * significant digits: enough for microsecond timestamps since the epoch,
 * and short forms such as 0.1 stay short (17 digits would print
 * 0.10000000000000001).  A failed write is remembered, and nd_finish turns
 * it, or a failing final flush, into exit status 2, so a full disk or a
 * closed pipe is never silent.
 *
 * -o FILE never truncates FILE up front: stdout goes to a temporary file
 * next to it, renamed onto FILE at the end.  So `tool -o x x` cannot
 * destroy its own input (and is refused anyway), an interrupted or failed
 * run leaves the previous FILE intact, and a reader never sees half a
 * file.  The rename is atomic for readers; the data is not fsync'ed, so it
 * is not a promise against power loss.  The temporary file is removed on
 * exit without nd_finish and on SIGINT, SIGTERM and SIGHUP (when the tool
 * has not taken those signals for itself).
 */
#include "tools/common/nd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ND_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(16))

static int write_failed;
static int write_errno;

/* The -o file: stdout is tmp_path until nd_finish renames it to
 * out_path.  Both malloc'ed; NULL when stdout is not a temporary. */
static char *out_path;
static char *tmp_path;
static const char *out_name;   /* the path as the user gave it */

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

/* ---------------------------------------------------------------- -o FILE */

static void drop_temporary(void)
{
	if (tmp_path)
		unlink(tmp_path);
	free(tmp_path);
	free(out_path);
	tmp_path = out_path = NULL;
}

/* At exit without nd_finish (an early return from main). */
static void cleanup_at_exit(void)
{
	drop_temporary();
}

/* Only async-signal-safe calls: unlink, then die of the same signal. */
static void cleanup_on_signal(int sig)
{
	if (tmp_path)
		unlink(tmp_path);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void catch_fatal_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction old, sa = { .sa_handler = cleanup_on_signal };

		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL)
			sigaction(sigs[i], &sa, NULL);
	}
}

/* True when input (a path, or "-"/NULL for stdin) is the file out_st. */
static bool same_file(const char *input, const struct stat *out_st)
{
	struct stat st;
	int rc = !input || strcmp(input, "-") == 0 ? fstat(STDIN_FILENO, &st)
						    : stat(input, &st);

	return rc == 0 && st.st_dev == out_st->st_dev && st.st_ino == out_st->st_ino;
}

/* Points fd 1 at fd (closed here unless it is fd 1 already). */
static int move_to_stdout(int fd)
{
	int rc = 0;

	if (fflush(stdout) != 0)
		rc = -1;
	if (fd != STDOUT_FILENO) {
		if (rc == 0 && dup2(fd, STDOUT_FILENO) < 0)
			rc = -1;
		close(fd);
	}
	return rc;
}

/* Not a regular file (/dev/null, /dev/full, a FIFO): written in place. */
static int open_direct(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);

	return fd < 0 ? -1 : move_to_stdout(fd);
}

/* The mode a new file gets from open(2): 0666 less the umask. */
static mode_t new_file_mode(void)
{
	mode_t mask = umask(0);

	umask(mask);
	return 0666 & ~mask;
}

/* Creates the temporary next to dest (the symlink's target, when path is
 * one) and makes it stdout. */
static int open_temporary(const char *path, const struct stat *st, bool exists)
{
	char *dest = exists ? realpath(path, NULL) : strdup(path);
	size_t n;
	int fd;

	if (!dest)
		return -1;
	n = strlen(dest) + sizeof(".tmp-XXXXXX");
	tmp_path = malloc(n);
	if (!tmp_path) {
		free(dest);
		return -1;
	}
	snprintf(tmp_path, n, "%s.tmp-XXXXXX", dest);
	out_path = dest;
	fd = mkostemp(tmp_path, O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		free(tmp_path);
		free(out_path);
		tmp_path = out_path = NULL;
		errno = e;
		return -1;
	}
	atexit(cleanup_at_exit);
	catch_fatal_signals();
	if (fchmod(fd, exists ? st->st_mode & 07777 : new_file_mode()) != 0 ||
	    move_to_stdout(fd) != 0) {
		int e = errno;

		drop_temporary();
		errno = e;
		return -1;
	}
	return 0;
}

int nd_output_open(const char *path, char *const *inputs, int n_inputs)
{
	struct stat st;
	bool exists;
	int rc;

	if (!path || strcmp(path, "-") == 0)
		return 0;
	exists = stat(path, &st) == 0;
	if (exists) {
		bool clash = n_inputs == 0 && same_file(NULL, &st);

		for (int i = 0; i < n_inputs && !clash; i++)
			clash = same_file(inputs[i], &st);
		if (clash) {
			nd_error("%s: the output file is also an input", path);
			return ND_EXIT_USAGE;
		}
	}
	out_name = path;
	rc = exists && !S_ISREG(st.st_mode) ? open_direct(path)
					    : open_temporary(path, &st, exists);
	if (rc != 0) {
		nd_error("%s: %s", path, strerror(errno));
		return ND_EXIT_USAGE;
	}
	return 0;
}

/* Puts the temporary in place (keep) or removes it. */
static int commit_output(bool keep)
{
	int rc = 0;

	if (!tmp_path)
		return 0;
	if (keep && rename(tmp_path, out_path) != 0) {
		nd_error("%s: %s", out_name, strerror(errno));
		rc = -1;
		keep = false;
	}
	if (keep) {
		free(tmp_path);
		tmp_path = NULL;
	}
	drop_temporary();
	return rc;
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
	if (bad)
		nd_error("write error: %s", err ? strerror(err) : "some output was lost");
	if (commit_output(!bad && (status == ND_EXIT_OK || status == ND_EXIT_BAD_INPUT)))
		bad = 1;
	return bad ? ND_EXIT_USAGE : status;
}
