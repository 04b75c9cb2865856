/*
 * mw_files.c: how the model writer puts bytes into files: whole writes
 * (EINTR retried, short writes continued), small files in one go, and JSON
 * in the layout HF writes its config files in.  Both the weight writer and
 * the tokenizer writer sit on top of it.
 */
#include "tools/modelgen/model_writer_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int mw_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Writes len bytes to dir/name (created, truncated).  Returns 0 or ENG_E_IO. */
int mw_write_file(const char *dir, const char *name, const void *data, size_t len,
		      struct eng_error *err)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || mw_write_all(fd, data, len) < 0 || close(fd) < 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		return eng_error_set(err, ENG_E_IO, path, 0, "%s", strerror(e));
	}
	return 0;
}

/* Writes obj as JSON with HF's layout for config files: two-space indent,
 * sorted keys when asked, a final newline.  Steals the reference to obj. */
int mw_write_json(const char *dir, const char *name, json_t *obj, size_t flags,
		      struct eng_error *err)
{
	char *s, *nl;
	int rc;

	if (!obj)
		return eng_error_set(err, ENG_E_NOMEM, name, 0, "out of memory");
	s = json_dumps(obj, flags | JSON_REAL_PRECISION(15));
	json_decref(obj);
	nl = s ? realloc(s, strlen(s) + 2) : NULL;
	if (!nl) {
		free(s);
		return eng_error_set(err, ENG_E_NOMEM, name, 0, "out of memory");
	}
	strcat(nl, "\n");
	rc = mw_write_file(dir, name, nl, strlen(nl), err);
	free(nl);
	return rc;
}
