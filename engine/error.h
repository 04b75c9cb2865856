/*
 * error.h: how engine/ and kernels/ report failure.
 *
 * Functions that can fail on anything a user controls (a file, a shape, a
 * record, device memory) return an int: 0, or a negative ENG_E_* code, and
 * fill a caller-owned struct eng_error with the code, the file (or other
 * object) the problem is in, a line or offset when one applies, and a
 * lowercase message.  Nothing in the engine calls exit() or abort() for
 * such errors; assert() is kept for true invariants.
 */
#ifndef TRAJBENCH_ENG_ERROR_H
#define TRAJBENCH_ENG_ERROR_H

enum eng_status {
	ENG_OK = 0,
	ENG_E_IO = -1,          /* open/read/mmap/write failed */
	ENG_E_FORMAT = -2,      /* a file or record is malformed */
	ENG_E_NOMEM = -3,       /* host allocation failed */
	ENG_E_INVALID = -4,     /* bad argument or configuration */
	ENG_E_UNSUPPORTED = -5, /* valid but not handled (architecture, dtype) */
	ENG_E_RANGE = -6,       /* too long for the context, out of pages */
	ENG_E_DEVICE = -7,      /* CUDA / cuBLAS failure or no device */
};

struct eng_error {
	int code;        /* one of enum eng_status */
	char file[512];  /* file or object the error is about; "" if none */
	long line;       /* 1-based line, or 0 when none applies */
	char msg[1024];  /* lowercase, no trailing period */
};

/* Clears err (code ENG_OK, empty strings).  err may be NULL. */
void eng_error_clear(struct eng_error *err);

/* Fills err (when not NULL) and returns code, so that callers can write
 * `return eng_error_set(err, ENG_E_FORMAT, path, 0, "...", ...);`. */
int eng_error_set(struct eng_error *err, int code, const char *file, long line,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A short name for a status code: "i/o error", "bad format", ... */
const char *eng_status_str(int code);

/* Formats err as "file:line: msg" (parts that are empty left out) into buf. */
const char *eng_error_format(const struct eng_error *err, char *buf, unsigned long n);

#endif
