/*
 * test-nd-writer.c: stdout is checked at exit, also when a write failed
 * only for a moment.
 *
 * A disk that is full for a moment loses the stdio buffer it could not
 * write; later writes and the final flush succeed, so only stdout's error
 * indicator remembers the loss.  Each case runs in a child whose stdout is
 * a stream (fopencookie) that fails chosen writes with ENOSPC; the parent
 * checks the child's exit status from nd_finish and its stderr.
 */
#include "tools/common/nd.h"
#include "tests/tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Writes number first_bad .. last_bad (1-based) fail with ENOSPC. */
struct flaky {
	int n_writes, first_bad, last_bad;
};

static ssize_t flaky_write(void *cookie, const char *buf, size_t size)
{
	struct flaky *f = cookie;

	(void)buf;
	f->n_writes++;
	if (f->n_writes >= f->first_bad && f->n_writes <= f->last_bad) {
		errno = ENOSPC;
		return -1;
	}
	return (ssize_t)size;
}

/* In a child: stdout fails its first write; what the case does, then
 * nd_finish's status is the exit status. */
static int run_case(void (*body)(void), char *err, size_t errlen)
{
	int pipefd[2], status = -1;
	size_t len;
	ssize_t n;
	pid_t pid;

	if (pipe(pipefd) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		static struct flaky f = { 0, 1, 1 };
		static char buf[4096];
		cookie_io_functions_t io = { .write = flaky_write };

		dup2(pipefd[1], STDERR_FILENO);
		close(pipefd[0]);
		nd_init("test-nd-writer");
		stdout = fopencookie(&f, "w", io);
		setvbuf(stdout, buf, _IOFBF, sizeof(buf));
		body();
		_exit(nd_finish(ND_EXIT_OK));
	}
	close(pipefd[1]);
	for (len = 0; len < errlen - 1 && (n = read(pipefd[0], err + len, errlen - 1 - len)) > 0;)
		len += (size_t)n;
	err[len] = '\0';
	n = (ssize_t)len;
	if (n > 0 && err[n - 1] == '\n')
		err[n - 1] = '\0'; /* the last line's; others show in the message */
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* 10000 bytes through stdio: the first 4096-byte flush fails, the rest and
 * the final flush succeed. */
static void write_directly(void)
{
	char line[100];

	memset(line, 'x', sizeof(line));
	for (int i = 0; i < 100; i++)
		fwrite(line, 1, sizeof(line), stdout);
}

/* A caller that saw the failure and noted it. */
static void write_and_note(void)
{
	write_directly();
	nd_note_write_error(ENOSPC);
}

static void write_nothing(void)
{
}

int main(void)
{
	char err[512];
	int st;

	st = run_case(write_directly, err, sizeof(err));
	tap_ok(st == ND_EXIT_USAGE && strstr(err, "write error"),
	       "a write lost for a moment, then a good flush: exit 2 (%d), \"%s\"", st, err);
	st = run_case(write_and_note, err, sizeof(err));
	tap_ok(st == ND_EXIT_USAGE && strstr(err, "write error: No space left on device") &&
	       !strstr(strstr(err, "write error") + 1, "write error"),
	       "a noted failure is reported once, with its errno: \"%s\"", err);
	st = run_case(write_nothing, err, sizeof(err));
	tap_ok(st == ND_EXIT_OK && err[0] == '\0', "nothing written, nothing failed: exit 0");
	return tap_done();
}
