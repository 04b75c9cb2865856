/*
 * conv.c: JSON conversation records to eng_conv (see conv.h).
 */
#include "engine/conv.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *record_id(const json_t *record, long line, char *buf, size_t n)
{
	const json_t *id = json_object_get(record, "id");

	if (json_is_string(id))
		return json_string_value(id);
	snprintf(buf, n, "%ld", line);
	return buf;
}

static double env_time_of(const json_t *msg)
{
	const json_t *t = json_object_get(msg, "env_exec_time");

	return json_is_number(t) ? json_number_value(t) : -1.0;
}

/* token_usage_prompt of an assistant message; R2E-Gym writes -1 for unknown. */
static int32_t recorded_len_of(const json_t *msg)
{
	const json_t *t = json_object_get(msg, "token_usage_prompt");
	json_int_t v = json_integer_value(t);

	return json_is_integer(t) && v >= 0 && v <= INT32_MAX ? (int32_t)v : -1;
}

/* Turn k of a conversation: its prompt rendered now, its recorded reply. */
static int build_conv_turn(struct eng_conv *conv, int32_t k, struct eng_turn_ids *out,
			   struct eng_error *err)
{
	struct eng_conv_rec *c = conv->user;
	size_t turn = (size_t)k + (size_t)c->first_turn;
	const int32_t *ids;
	size_t n;
	int rc = eng_chat_conv_prompt(c->chat, turn, &ids, &n, err);

	c->reply.n = 0;
	if (rc == 0)
		rc = eng_chat_conv_reply(c->chat, turn, &c->reply, err);
	if (rc != 0)
		return rc;
	out->prompt = ids;
	out->prompt_len = (int32_t)n;
	out->reply = c->reply.ids;
	out->reply_len = (int32_t)c->reply.n;
	return 0;
}

/* A request line's one turn: generate max_tokens after its prompt. */
static int build_request_turn(struct eng_conv *conv, int32_t k, struct eng_turn_ids *out,
			      struct eng_error *err)
{
	struct eng_conv_rec *c = conv->user;

	(void)k;
	(void)err;
	out->prompt = c->prompt.ids;
	out->prompt_len = (int32_t)c->prompt.n;
	out->reply = NULL;
	out->reply_len = conv->turns[0].reply_len;
	return 0;
}

/* An OpenAI request line: one turn of max_tokens after all messages. */
static int build_request(struct eng_chat *chat, struct eng_conv_rec *c, struct eng_error *err)
{
	json_int_t max_tokens = 0;
	int rc = eng_json_get_int_range(c->record, "max_tokens", 1, INT32_MAX, &max_tokens, err);

	if (rc == 1)
		return eng_error_set(err, ENG_E_FORMAT, NULL, c->line,
				     "\"max_tokens\" must be a positive integer");
	if (rc != 0)
		return rc;
	rc = eng_chat_render(chat, &c->in, c->in.n_msgs, true, &c->prompt, err);
	if (rc != 0)
		return rc;
	if (!(c->conv.turns = calloc(1, sizeof(*c->conv.turns))))
		return eng_error_set(err, ENG_E_NOMEM, NULL, c->line, "out of memory");
	c->conv.n_turns = 1;
	c->conv.turns[0] = (struct eng_turn){ 0, (int32_t)max_tokens, -1, -1, 0 };
	c->conv.build_turn = build_request_turn;
	return 0;
}

void eng_conv_keep_last_turn(struct eng_conv_rec *c)
{
	int32_t n = c->conv.n_turns;

	if (n <= 1)
		return;
	c->conv.turns[0] = c->conv.turns[n - 1];
	c->conv.n_turns = 1;
	c->first_turn = n - 1;
}

/* A conversation: every assistant message a turn. */
static int build_turns(struct eng_chat *chat, struct eng_conv_rec *c, struct eng_error *err)
{
	const json_t *msgs = json_object_get(c->record, "messages");
	size_t nt;
	int rc = eng_chat_conv_new(chat, &c->in, &c->chat, err);

	if (rc != 0)
		return rc;
	nt = eng_chat_conv_n_turns(c->chat);
	/* No assistant message: nothing to replay, but the conversation is
	 * still reported (a conversation_result of 0 turns). */
	if (nt > 0 && !(c->conv.turns = calloc(nt, sizeof(*c->conv.turns))))
		return eng_error_set(err, ENG_E_NOMEM, NULL, c->line, "out of memory");
	for (size_t k = 0; k < nt; k++) {
		const json_t *m = json_array_get(msgs, eng_chat_conv_msg_index(c->chat, k));
		struct eng_turn *tk = &c->conv.turns[k];

		tk->env_time_s = env_time_of(m);
		tk->recorded_prompt_len = recorded_len_of(m);
		if (tk->env_time_s > 0)
			c->env_total_s += tk->env_time_s;
	}
	c->conv.n_turns = (int32_t)nt;
	c->conv.build_turn = build_conv_turn;
	return 0;
}

/* The record's messages, tools and template arguments. */
static int read_input(struct eng_conv_rec *c, const char *who, struct eng_error *err)
{
	const json_t *msgs = json_object_get(c->record, "messages");
	int rc = json_array_size(msgs) > 0 ? eng_chat_input_from_json(c->record, &c->in, err)
		 : eng_error_set(err, ENG_E_FORMAT, NULL, c->line,
				 "\"messages\" must be a non-empty array");

	if (rc != 0 && err) {
		char msg[sizeof(err->msg)];

		snprintf(msg, sizeof(msg), "%s%s", who, err->msg);
		snprintf(err->msg, sizeof(err->msg), "%s", msg);
	}
	return rc;
}

int eng_conv_from_json(struct eng_chat *chat, json_t *record, long line,
		       struct eng_conv_rec **out, struct eng_error *err)
{
	char buf[32];
	const char *id = record_id(record, line, buf, sizeof(buf));
	char who[300] = "";
	const json_t *type = json_object_get(record, "type");
	struct eng_conv_rec *c;
	int rc;

	*out = NULL;
	/* Diagnostics name the file and line already; the id only helps when
	 * the record has one. */
	if (json_is_string(json_object_get(record, "id")))
		snprintf(who, sizeof(who), "conversation %.256s: ", id);
	if (type && !(json_is_string(type) && strcmp(json_string_value(type), "conversation") == 0))
		return eng_error_set(err, ENG_E_FORMAT, NULL, line,
				     "%sexpected a conversation record or a chat request", who);
	c = calloc(1, sizeof(*c));
	if (!c || !(c->id = strdup(id))) {
		free(c);
		return eng_error_set(err, ENG_E_NOMEM, NULL, line, "out of memory");
	}
	c->line = line;
	c->conv.user = c;
	c->record = json_incref(record);
	rc = read_input(c, who, err);
	if (rc == 0)
		rc = type ? build_turns(chat, c, err) : build_request(chat, c, err);
	if (rc != 0) {
		if (err && err->line == 0)
			err->line = line;
		eng_conv_rec_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void eng_conv_rec_free(struct eng_conv_rec *c)
{
	if (!c)
		return;
	eng_chat_conv_free(c->chat);
	eng_chat_input_free(&c->in);
	json_decref(c->record);
	eng_ids_free(&c->prompt);
	eng_ids_free(&c->reply);
	free(c->conv.turns);
	free(c->id);
	free(c);
}
