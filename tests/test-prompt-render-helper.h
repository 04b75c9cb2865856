/*
 * test-prompt-render-helper.h: what the R2E-Gym sample tests of
 * prompt-render share: where the shared data and the tools are, reading a
 * file whole and running a pipeline for its output.  Header-only, like
 * tap.h.
 */
#ifndef TRAJBENCH_TESTS_PROMPT_RENDER_HELPER_H
#define TRAJBENCH_TESTS_PROMPT_RENDER_HELPER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/tap.h"

#define SAMPLE "samples/derived_kl_2traj.model_dump_style.jsonl"
#define CONFIG "config/r2egym/edit_non_fn_calling.yaml"

/* Fills data (shared/data/r2egym) and bin (the built tools) from
 * top_srcdir and top_builddir.  Returns NULL when both are usable, else
 * why the test must be skipped. */
static inline const char *locate(char *data, size_t n_data, char *bin,
				 size_t n_bin)
{
	const char *top = getenv("top_srcdir");
	const char *build = getenv("top_builddir");
	char probe[4096];

	snprintf(data, n_data, "%s/../shared/data/r2egym", top ? top : ".");
	snprintf(bin, n_bin, "%s/tools", build ? build : ".");
	snprintf(probe, sizeof(probe), "%s/%s", data, SAMPLE);
	if (access(probe, R_OK) != 0)
		return "shared R2E-Gym data absent";
	snprintf(probe, sizeof(probe), "%s/traj-extract", bin);
	if (access(probe, X_OK) != 0)
		return "traj-extract not built";
	return NULL;
}

/* Runs cmd and returns its whole stdout (NULL on failure). */
static inline char *run(const char *cmd, size_t *len)
{
	FILE *p = popen(cmd, "r");
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (!p)
		return NULL;
	do {
		if (n + 65536 > cap) {
			char *nb = realloc(buf, cap = 2 * cap + 65536);

			if (!nb)
				break;
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n - 1, p);
		n += got;
	} while (got > 0);
	if (pclose(p) != 0 || !buf) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

#endif
