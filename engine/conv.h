/*
 * conv.h: a chat conversation record turned into the token layout the
 * runner replays.
 *
 * Input is a JSON object: a trajbench `conversation` record
 * ({"type":"conversation","id":...,"messages":[...]}, every assistant
 * message one turn, carrying its recorded env_exec_time), or an OpenAI
 * chat-completion request line ({"messages":[...],"max_tokens":N}), which
 * becomes one turn that generates max_tokens tokens after all its messages.
 *
 * The whole conversation is one token array: the last turn's prompt
 * followed by its reply.  Every earlier turn's prompt is a prefix of it,
 * which the chatml and llama3 templates guarantee (chat.h).  The qwen3
 * template drops earlier reasoning, so its turns share no such prefix; it
 * is refused here rather than replayed wrongly.
 */
#ifndef TRAJBENCH_ENG_CONV_H
#define TRAJBENCH_ENG_CONV_H

#include <jansson.h>

#include "engine/chat.h"
#include "engine/error.h"
#include "engine/runner.h"

/* The longest recorded env_exec_time accepted, in seconds (one day): a
 * tool call of an agent never runs that long, and the bound keeps waits
 * (--env-time-scale up to 1e6) and sums finite. */
#define ENG_CONV_MAX_ENV_TIME_S 86400

struct eng_conv_rec {
	struct eng_conv conv;  /* conv.user points back here */
	char *id;              /* the record's id, or "LINE" when it has none;
				* NUL-terminated, but U+0000 may occur inside */
	size_t id_len;
	long line;             /* input line, for diagnostics */
	double env_total_s;    /* sum of recorded env times */
};

/* Builds *out from record.  line names the record in errors (err->line is
 * set to it).  Errors: ENG_E_FORMAT (not a conversation, bad messages),
 * ENG_E_UNSUPPORTED (qwen3 template), ENG_E_INVALID (content not UTF-8),
 * ENG_E_RANGE (env_exec_time beyond ENG_CONV_MAX_ENV_TIME_S, or
 * negative), ENG_E_NOMEM. */
int eng_conv_from_json(struct eng_chat *chat, const json_t *record, long line,
		       struct eng_conv_rec **out, struct eng_error *err);

void eng_conv_rec_free(struct eng_conv_rec *c);

#endif
