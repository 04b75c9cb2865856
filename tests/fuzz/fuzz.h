/*
 * fuzz.h: what the libFuzzer harnesses under tests/fuzz/ share.
 *
 * Each harness defines LLVMFuzzerTestOneInput, and LLVMFuzzerInitialize
 * when it needs set-up.  The same source links two ways: with libFuzzer
 * (tests/fuzz/fuzz-NAME, built by `make fuzz` in a build configured with
 * --enable-fuzzing, clang with ASan and UBSan), and with replay.c in every
 * build (tests/fuzz/replay-NAME, run by `make check` over the committed
 * seeds in corpus/NAME and the inputs that once failed in regress/NAME).
 *
 * A harness checks what the code under test promises (FUZZ_CHECK aborts),
 * so a wrong answer is found like a crash.  Inputs that take several parts
 * split them at the first FUZZ_SEP.
 */
#ifndef TRAJBENCH_FUZZ_H
#define TRAJBENCH_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_CHECK(cond)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", #cond, \
				__FILE__, __LINE__);                            \
			abort();                                                \
		}                                                               \
	} while (0)

#define FUZZ_SEP "\n%%\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Splits data at the first FUZZ_SEP: the first part is [0, *n1), the second
 * starts at *off2.  Without one, the first part is everything and *off2 is
 * size.  Returns whether there was one. */
static inline int fuzz_split(const uint8_t *data, size_t size, size_t *n1, size_t *off2)
{
	const size_t k = sizeof(FUZZ_SEP) - 1;

	for (size_t i = 0; i + k <= size; i++)
		if (memcmp(data + i, FUZZ_SEP, k) == 0) {
			*n1 = i;
			*off2 = i + k;
			return 1;
		}
	*n1 = size;
	*off2 = size;
	return 0;
}

/* A path whose file holds exactly data, for code that reads files: one
 * memory-backed file, rewritten on each call. */
static inline const char *fuzz_file(const void *data, size_t size)
{
	static int fd = -1;
	static char path[64];

	if (fd < 0) {
		fd = memfd_create("fuzz", 0);
		if (fd < 0) {
			perror("memfd_create");
			abort();
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) {
		perror("fuzz file");
		abort();
	}
	return path;
}

/* A file of the source tree (samples/, tests/data/): under $top_srcdir,
 * else under the source directory the harness was built from. */
static inline const char *fuzz_srcfile(const char *rel)
{
	static char path[4096];
	const char *top = getenv("top_srcdir");

	snprintf(path, sizeof(path), "%s/%s", top && *top ? top : FUZZ_TOP_SRCDIR, rel);
	return path;
}

#endif
