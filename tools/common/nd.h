/*
 * nd.h: the NDJSON plumbing shared by every trajbench tool.
 *
 * A tool is a Unix filter: it reads newline-delimited JSON (or another line
 * format) from files or stdin, writes one compact JSON object per line to
 * stdout, and reports problems on stderr as "tool: file:line: message".
 * This header gathers the four things every tool needs for that:
 *   diagnostics  nd_init, nd_error, nd_error_at, nd_usage_error
 *   reading      struct nd_reader: getline-based, any line length, 1-based
 *                line numbers, knows whether the last line was cut short
 *   writing      nd_write_json / nd_write_line: compact, one object per line,
 *                stdout checked at exit (nd_finish)
 *   CLI          --help / --version text, numeric option parsing
 * It never exits on its own except in nd_finish's documented path; callers
 * decide the exit status (enum nd_exit).
 */
#ifndef TRAJBENCH_ND_H
#define TRAJBENCH_ND_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

/* Exit statuses shared by all tools. */
enum nd_exit {
	ND_EXIT_OK = 0,          /* everything processed */
	ND_EXIT_BAD_INPUT = 1,   /* some input records were bad or failed */
	ND_EXIT_USAGE = 2,       /* usage or system error, failed write included */
	ND_EXIT_UNAVAILABLE = 3, /* model or GPU unavailable */
};

/* ---------------------------------------------------------------- diagnostics */

/* Sets the program name used in diagnostics (basename of argv[0] is fine). */
void nd_init(const char *progname);
const char *nd_progname(void);

/* "tool: message\n" on stderr. */
void nd_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "tool: file:line: message\n" on stderr; line 0 leaves ":line" out. */
void nd_error_at(const char *file, long line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* "tool: message\nTry 'tool --help' for more information.\n" on stderr.
 * Returns ND_EXIT_USAGE so that callers can `return nd_usage_error(...)`. */
int nd_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---------------------------------------------------------------- reading */

struct nd_reader;

/* Opens path for reading; NULL or "-" means stdin, named "<stdin>" in
 * diagnostics.  Returns NULL with errno set on failure. */
struct nd_reader *nd_reader_open(const char *path);

/* Reads the next line.  On 1, *line points at the line without its '\n'
 * (NUL-terminated, valid until the next call) and *len is its length.
 * Returns 0 at end of input, -1 on a read error (errno set). */
int nd_reader_next(struct nd_reader *r, char **line, size_t *len);

/* The 1-based number of the line last returned; 0 before the first. */
long nd_reader_lineno(const struct nd_reader *r);

/* The name to use in diagnostics: the path as given, or "<stdin>". */
const char *nd_reader_name(const struct nd_reader *r);

/* True when the line last returned had no terminating '\n' (a truncated
 * last line, or a file whose writer forgot the final newline). */
bool nd_reader_unterminated(const struct nd_reader *r);

/* Closes the reader (not stdin) and frees it.  NULL is allowed. */
void nd_reader_close(struct nd_reader *r);

/* Parses one line as a JSON object.  On failure returns NULL and writes a
 * lowercase message (with the column for syntax errors) into err. */
json_t *nd_parse_object(const char *line, size_t len, char *err, size_t errlen);

/* ---------------------------------------------------------------- writing */

/* Writes obj compactly followed by '\n' to stdout.  Returns 0, or -1 when
 * the write failed (the failure is also remembered for nd_finish). */
int nd_write_json(const json_t *obj);

/* obj as one compact line without the '\n', in the writer's number format:
 * a malloc'ed string, or NULL when out of memory. */
char *nd_dump_json(const json_t *obj);

/* Writes len bytes and a '\n' to stdout.  Returns 0 or -1 as above. */
int nd_write_line(const char *s, size_t len);

/* Remembers that a write to stdout made outside nd_write_* failed with
 * errnum, for nd_finish to report (only the first is kept).  Returns -1. */
int nd_note_write_error(int errnum);

/* Flushes and closes stdout.  When a write failed (noted, or stdout's
 * error indicator is set) or the flush fails, prints "tool: write error:
 * ..." once and returns ND_EXIT_USAGE; otherwise returns status unchanged.
 * Every tool ends with `return nd_finish(status);`. */
int nd_finish(int status);

/* ---------------------------------------------------------------- CLI */

/* Prints "tool (trajbench) VERSION" to stdout. */
void nd_print_version(void);

/* "tool: invalid value 'VALUE' for OPTION" as a usage error (see
 * nd_usage_error), with ": EXPECTED" after it when expected is not NULL.
 * option is spelled as on the command line ("--batch-size", "-o"). */
int nd_invalid_value(const char *option, const char *value, const char *expected);

/* Parses a whole decimal integer in [min, max]; 0 on success, -1 otherwise. */
int nd_parse_long(const char *s, long min, long max, long *out);

/* Parses a finite double in [min, max] ("inf" allowed when max is
 * INFINITY); 0 on success, -1 otherwise. */
int nd_parse_double(const char *s, double min, double max, double *out);

/* Short option values that take an argument in the usual way. */
#define ND_OPT_HELP    'h'
#define ND_OPT_VERSION 'V'

#endif
