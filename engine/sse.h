/*
 * sse.h: a Server-Sent Events parser fed with whatever byte chunks the
 * transport hands over.
 *
 * Chunks may end anywhere: inside a line, inside a CR LF pair, inside a
 * UTF-8 sequence.  Bytes are kept until their line is complete, so a
 * handler sees only whole events and never a split character.  Lines end
 * with LF, CR LF or CR (the SSE grammar); "data:" lines of one event are
 * joined with LF; an empty line dispatches the event; comments (":...")
 * and other fields are skipped, except "event:", whose name is handed over.
 */
#ifndef TRAJBENCH_ENG_SSE_H
#define TRAJBENCH_ENG_SSE_H

#include <stdbool.h>
#include <stddef.h>

/* Called with each complete event: its data (NUL-terminated, valid
 * during the call) and its event name ("" when none).  Returns 0 to go
 * on, nonzero to stop the parser (eng_sse_feed then returns it). */
typedef int (*eng_sse_event_fn)(void *ctx, const char *event, const char *data, size_t len);

struct eng_sse {
	char *line;            /* (line_len, line_cap) the current partial line */
	size_t line_len, line_cap;
	char *data;            /* (data_len, data_cap) data of the event being read */
	size_t data_len, data_cap;
	char event[64];
	bool has_data;
	bool after_cr;         /* the last byte was CR: a following LF ends nothing */
	size_t max_line;       /* longest line or event accepted, in bytes */
	eng_sse_event_fn on_event;
	void *ctx;
};

/* max_bytes: the longest line and the largest event accepted (0: 16 MiB). */
void eng_sse_init(struct eng_sse *p, size_t max_bytes, eng_sse_event_fn on_event, void *ctx);
void eng_sse_reset(struct eng_sse *p);
void eng_sse_free(struct eng_sse *p);

/* Feeds n bytes.  Returns 0; the handler's nonzero value; -1 when a line
 * or an event is longer than max_bytes or memory ran out. */
int eng_sse_feed(struct eng_sse *p, const char *buf, size_t n);

/* The end of the stream.  An event whose lines all ended but whose blank
 * line never came is dispatched (servers that stop after "data: [DONE]\n"
 * are common); a line cut short is dropped.  Returns as eng_sse_feed, or 1
 * when a cut line was dropped. */
int eng_sse_end(struct eng_sse *p);

#endif
