/*
 * nd_progress.c: the counts and the estimate behind the progress line
 * (see nd_progress.h).
 */
#include "tools/infer/nd_progress.h"
#include "engine/engine.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Non-blank lines from offset on, read with pread so that the offset of
 * fd (standard input) is left where it was.  -1 when fd is not a regular
 * file or cannot be read. */
static long count_fd(int fd, off_t offset)
{
	char buf[65536];
	struct stat st;
	long n = 0;
	bool blank = true;
	ssize_t got;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return -1;
	while ((got = pread(fd, buf, sizeof(buf), offset)) > 0) {
		for (ssize_t i = 0; i < got; i++) {
			if (buf[i] == '\n') {
				n += !blank;
				blank = true;
			} else if (!strchr(" \t\r", buf[i])) {
				blank = false;
			}
		}
		offset += got;
	}
	return got < 0 ? -1 : n + !blank;
}

static long count_input(char **files, int n_files)
{
	long total = 0;

	if (n_files == 0)
		return count_fd(STDIN_FILENO, lseek(STDIN_FILENO, 0, SEEK_CUR));
	for (int i = 0; i < n_files; i++) {
		long n;
		int fd;

		if (!strcmp(files[i], "-")) {
			n = count_fd(STDIN_FILENO, lseek(STDIN_FILENO, 0, SEEK_CUR));
		} else {
			fd = open(files[i], O_RDONLY | O_CLOEXEC);
			n = fd < 0 ? -1 : count_fd(fd, 0);
			if (fd >= 0)
				close(fd);
		}
		if (n < 0)
			return -1;
		total += n;
	}
	return total;
}

void nd_progress_start(struct nd_progress *p, bool on, char **files, int n_files)
{
	memset(p, 0, sizeof(*p));
	p->on = on;
	p->t0 = eng_mono_s();
	p->total = on ? count_input(files, n_files) : -1;
}

void nd_progress_record(struct nd_progress *p, const json_t *rec)
{
	const char *type = json_string_value(json_object_get(rec, "type"));

	if (!p->on || !type)
		return;
	if (!strcmp(type, "conversation_result")) {
		p->done++;
	} else if (!strcmp(type, "request")) {
		p->requests++;
		p->tokens += json_integer_value(json_object_get(rec, "output_len"));
	}
}

bool nd_progress_due(struct nd_progress *p)
{
	double now = eng_mono_s();

	if (!p->on || now - p->last < 1.0)
		return false;
	p->last = now;
	return true;
}

/* 75 -> "1m15s", 4000 -> "1h06m" */
static void duration(char *buf, size_t len, double s)
{
	long t = (long)(s + 0.5);

	if (t >= 3600)
		snprintf(buf, len, "%ldh%02ldm", t / 3600, t % 3600 / 60);
	else if (t >= 60)
		snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(buf, len, "%lds", t);
}

void nd_progress_head(const struct nd_progress *p, char *buf, size_t len)
{
	double dt = eng_mono_s() - p->t0;
	char el[32], eta[64] = "";
	int n;

	duration(el, sizeof(el), dt);
	if (p->total >= 0 && p->done > 0 && p->done < p->total) {
		duration(eta + 6, sizeof(eta) - 6, dt / (double)p->done * (double)(p->total - p->done));
		memcpy(eta, ", ETA ", 6);
	}
	if (p->total >= 0)
		n = snprintf(buf, len, "%s, %ld/%ld conversations%s", el, p->done, p->total, eta);
	else
		n = snprintf(buf, len, "%s, %ld conversations", el, p->done);
	if (n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ", %ld requests, %.1f tok/s", p->requests,
			 dt > 0 ? (double)p->tokens / dt : 0.0);
}
