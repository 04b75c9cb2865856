/*
 * nd_jdoc.h: JSON documents out of a file that is either JSONL (one
 * compact document per line) or a sequence of pretty-printed documents.
 *
 * The form is detected per file from its first non-blank line: a line that
 * holds a complete JSON value (or is the file's only, unterminated line)
 * means JSONL; a line that starts with '{' and leaves the value open means
 * pretty-printed.  Memory is bounded by the longest line (JSONL) or the
 * largest document (pretty-printed), never by the file.
 */
#ifndef TRAJBENCH_ND_JDOC_H
#define TRAJBENCH_ND_JDOC_H

#include <stdbool.h>
#include <stddef.h>

struct nd_jdoc {
	const char *text;   /* the document; valid until the next call */
	size_t len;
	long line;          /* 1-based line where it starts */
	long col;           /* 1-based byte column where it starts */
	bool unterminated;  /* JSONL: the file's last line, without '\n' */
	bool pretty;        /* read from a pretty-printed file */
};

struct nd_jdoc_reader;

/* Opens path (NULL or "-": stdin).  NULL with errno set on failure. */
struct nd_jdoc_reader *nd_jdoc_open(const char *path);
void nd_jdoc_close(struct nd_jdoc_reader *r);

/* The name for diagnostics: the path, or "<stdin>". */
const char *nd_jdoc_name(const struct nd_jdoc_reader *r);

/* Next document.  Returns 1 with *doc filled; 0 at the end; -1 when the
 * input is bad in a way no document can carry (an empty file, text
 * between pretty-printed documents, a truncated last document), with a
 * message in msg and its line in *line (0: the file as a whole); -2 on a
 * read error (errno set).  Blank lines are skipped. */
int nd_jdoc_next(struct nd_jdoc_reader *r, struct nd_jdoc *doc,
		 char *msg, size_t msglen, long *line);

/* Converts a byte offset in doc into a 1-based line and byte column. */
void nd_jdoc_locate(const struct nd_jdoc *doc, size_t off, long *line, long *col);

#endif
