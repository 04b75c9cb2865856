/*
 * error.c: the caller-owned error struct of error.h.
 */
#include "engine/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void eng_error_clear(struct eng_error *err)
{
	if (!err)
		return;
	err->code = ENG_OK;
	err->file[0] = '\0';
	err->line = 0;
	err->msg[0] = '\0';
}

int eng_error_set(struct eng_error *err, int code, const char *file, long line,
		  const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	snprintf(err->file, sizeof(err->file), "%s", file ? file : "");
	err->line = line;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

const char *eng_status_str(int code)
{
	switch (code) {
	case ENG_OK: return "ok";
	case ENG_E_IO: return "i/o error";
	case ENG_E_FORMAT: return "bad format";
	case ENG_E_NOMEM: return "out of memory";
	case ENG_E_INVALID: return "invalid argument";
	case ENG_E_UNSUPPORTED: return "unsupported";
	case ENG_E_RANGE: return "out of range";
	case ENG_E_DEVICE: return "device error";
	}
	return "unknown error";
}

const char *eng_error_format(const struct eng_error *err, char *buf, unsigned long n)
{
	if (err->file[0] && err->line > 0)
		snprintf(buf, n, "%s:%ld: %s", err->file, err->line, err->msg);
	else if (err->file[0])
		snprintf(buf, n, "%s: %s", err->file, err->msg);
	else
		snprintf(buf, n, "%s", err->msg);
	return buf;
}
