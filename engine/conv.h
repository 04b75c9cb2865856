/*
 * conv.h: a chat conversation record turned into the turns the runner
 * replays.
 *
 * Input is a JSON object: a trajbench `conversation` record
 * ({"type":"conversation","id":...,"messages":[...]}, every assistant
 * message one turn, carrying its recorded env_exec_time and
 * token_usage_prompt), or an OpenAI chat-completion request line
 * ({"messages":[...],"max_tokens":N}), which becomes one turn that
 * generates max_tokens tokens after all its messages.  Both may carry
 * "tools" and "chat_template_kwargs" (chat.h).
 *
 * A conversation's turns are rendered when they are submitted, each from
 * the messages before it (chat.h), reusing the previous turn's blocks; no
 * turn is assumed to extend the previous one.  The record stays in memory
 * while its conversation runs: the messages are borrowed from it.
 */
#ifndef TRAJBENCH_ENG_CONV_H
#define TRAJBENCH_ENG_CONV_H

#include <jansson.h>

#include "engine/chat.h"
#include "engine/error.h"
#include "engine/runner.h"

struct eng_conv_rec {
	struct eng_conv conv;          /* conv.user points back here */
	char *id;                      /* the record's id, or "LINE" when it has none */
	long line;                     /* input line, for diagnostics */
	double env_total_s;            /* sum of recorded env times */
	json_t *record;                /* the input record (messages borrow from it) */
	struct eng_chat_input in;
	struct eng_chat_conv *chat;    /* renders the turns; NULL for a request line */
	struct eng_ids prompt;         /* request line: its prompt */
	struct eng_ids reply;          /* the recorded reply of the turn last built */
	int32_t first_turn;            /* conv.turns[0] is the conversation's turn
					* first_turn (eng_conv_keep_last_turn) */
};

/* Keeps only the conversation's last turn, its whole history the prompt:
 * what one independent request of generate mode sends. */
void eng_conv_keep_last_turn(struct eng_conv_rec *c);

/* Builds *out from record (a reference is taken).  line names the record
 * in errors (err->line is set to it).  Errors: ENG_E_FORMAT (not a
 * conversation, bad messages), ENG_E_INVALID (content not UTF-8),
 * ENG_E_NOMEM. */
int eng_conv_from_json(struct eng_chat *chat, json_t *record, long line,
		       struct eng_conv_rec **out, struct eng_error *err);

void eng_conv_rec_free(struct eng_conv_rec *c);

#endif
