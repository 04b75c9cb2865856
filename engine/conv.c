/*
 * conv.c: JSON conversation records to eng_conv (see conv.h).
 */
#include "engine/conv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The record's id (it may hold U+0000, so with its length), or the line
 * number when it has none. */
static const char *record_id(const json_t *record, long line, char *buf, size_t n,
			     size_t *len)
{
	const json_t *id = json_object_get(record, "id");

	if (json_is_string(id)) {
		*len = json_string_length(id);
		return json_string_value(id);
	}
	snprintf(buf, n, "%ld", line);
	*len = strlen(buf);
	return buf;
}

/* A message's recorded env_exec_time, when it has one: a number of seconds
 * in [0, ENG_CONV_MAX_ENV_TIME_S].  Larger values are refused rather than
 * waited for (--env-time-scale 1 would sleep that long) or summed into an
 * infinite total. */
static int check_env_time(const json_t *msg, size_t i, const char *who, long line,
			  struct eng_error *err)
{
	const json_t *t = json_object_get(msg, "env_exec_time");
	double v;

	if (!t || json_is_null(t))
		return 0;
	if (!json_is_number(t))
		return eng_error_set(err, ENG_E_FORMAT, NULL, line,
				     "%smessage %zu: \"env_exec_time\" must be a number or null",
				     who, i);
	v = json_number_value(t);
	if (!(v >= 0 && v <= ENG_CONV_MAX_ENV_TIME_S))
		return eng_error_set(err, ENG_E_RANGE, NULL, line,
				     "%smessage %zu: \"env_exec_time\" %g is out of range "
				     "(0 to %d seconds)", who, i, v, ENG_CONV_MAX_ENV_TIME_S);
	return 0;
}

/* The messages of record as eng_chat_msg, pointing into the JSON. */
static int read_messages(const json_t *record, const char *who, long line,
			 struct eng_chat_msg **out, size_t *n, struct eng_error *err)
{
	const json_t *msgs = json_object_get(record, "messages");
	struct eng_chat_msg *m;
	size_t i;
	const json_t *v;

	if (!json_is_array(msgs) || json_array_size(msgs) == 0)
		return eng_error_set(err, ENG_E_FORMAT, NULL, line,
				     "%s\"messages\" must be a non-empty array", who);
	m = calloc(json_array_size(msgs), sizeof(*m));
	if (!m)
		return eng_error_set(err, ENG_E_NOMEM, NULL, line, "out of memory");
	json_array_foreach(msgs, i, v) {
		const json_t *role = json_object_get(v, "role");
		const json_t *content = json_object_get(v, "content");
		int rc;

		if (!json_is_string(role) || !json_is_string(content)) {
			free(m);
			return eng_error_set(err, ENG_E_FORMAT, NULL, line,
					     "%smessage %zu needs string \"role\" and \"content\"",
					     who, i);
		}
		/* Content may hold U+0000 (it has a length); a role is a name. */
		if (strlen(json_string_value(role)) != json_string_length(role)) {
			free(m);
			return eng_error_set(err, ENG_E_FORMAT, NULL, line,
					     "%smessage %zu: \"role\" holds U+0000", who, i);
		}
		if ((rc = check_env_time(v, i, who, line, err)) != 0) {
			free(m);
			return rc;
		}
		m[i].role = json_string_value(role);
		m[i].content = json_string_value(content);
		m[i].content_len = json_string_length(content);
	}
	*out = m;
	*n = json_array_size(msgs);
	return 0;
}

/* The recorded env_exec_time of message msg_index (checked by
 * read_messages), or -1 when absent or null. */
static double env_time_of(const json_t *record, size_t msg_index)
{
	const json_t *m = json_array_get(json_object_get(record, "messages"), msg_index);
	const json_t *t = json_object_get(m, "env_exec_time");

	return json_is_number(t) ? json_number_value(t) : -1.0;
}

/* An OpenAI request line: one turn of max_tokens after all messages. */
static int build_request(struct eng_chat *chat, const json_t *record, const struct eng_chat_msg *m,
			 size_t n, struct eng_conv_rec *c, struct eng_ids *ids, struct eng_error *err)
{
	json_int_t max_tokens = json_integer_value(json_object_get(record, "max_tokens"));
	int rc;

	if (max_tokens <= 0)
		return eng_error_set(err, ENG_E_FORMAT, NULL, c->line,
				     "\"max_tokens\" must be a positive integer");
	rc = eng_chat_render(chat, m, n, true, ids, err);
	if (rc != 0)
		return rc;
	c->conv.turns = calloc(1, sizeof(*c->conv.turns));
	if (!c->conv.turns)
		return eng_error_set(err, ENG_E_NOMEM, NULL, c->line, "out of memory");
	c->conv.n_turns = 1;
	c->conv.turns[0].prompt_end = (int32_t)ids->n;
	c->conv.turns[0].reply_len = (int32_t)max_tokens;
	c->conv.turns[0].env_time_s = -1;
	return 0;
}

/* A conversation: every assistant message a turn. */
static int build_turns(struct eng_chat *chat, const json_t *record, const struct eng_chat_msg *m,
		       size_t n, struct eng_conv_rec *c, struct eng_ids *ids, struct eng_error *err)
{
	struct eng_chat_turn *t = NULL;
	size_t nt = 0;
	int rc = eng_chat_turns(chat, m, n, &t, &nt, err);

	/* No assistant message: nothing to replay, but the conversation is
	 * still reported (a conversation_result of 0 turns). */
	if (rc != 0 || nt == 0) {
		free(t);
		return rc;
	}
	rc = eng_chat_turn_prompt(chat, m, n, nt - 1, ids, err);
	if (rc == 0)
		rc = eng_chat_turn_reply(chat, m, n, nt - 1, ids, err);
	if (rc == 0 && !(c->conv.turns = calloc(nt, sizeof(*c->conv.turns))))
		rc = eng_error_set(err, ENG_E_NOMEM, NULL, c->line, "out of memory");
	for (size_t k = 0; rc == 0 && k < nt; k++) {
		struct eng_turn *tk = &c->conv.turns[k];

		tk->prompt_end = (int32_t)t[k].prompt_len;
		tk->reply_len = (int32_t)t[k].reply_len;
		tk->env_time_s = env_time_of(record, t[k].msg_index);
		if (tk->env_time_s > 0)
			c->env_total_s += tk->env_time_s;
		if (t[k].prompt_len + t[k].reply_len > ids->n)
			rc = eng_error_set(err, ENG_E_FORMAT, NULL, c->line,
					   "conversation %s: turn %zu is not a prefix of the next", c->id, k);
	}
	c->conv.n_turns = (int32_t)nt;
	free(t);
	return rc;
}

int eng_conv_from_json(struct eng_chat *chat, const json_t *record, long line,
		       struct eng_conv_rec **out, struct eng_error *err)
{
	char buf[32];
	size_t id_len;
	const char *id = record_id(record, line, buf, sizeof(buf), &id_len);
	char who[300] = "";
	const json_t *type = json_object_get(record, "type");
	struct eng_chat_msg *m = NULL;
	struct eng_ids ids = { 0 };
	struct eng_conv_rec *c;
	size_t n = 0;
	int rc;

	*out = NULL;
	/* Diagnostics name the file and line already; the id only helps when
	 * the record has one. */
	if (json_is_string(json_object_get(record, "id")))
		snprintf(who, sizeof(who), "conversation %.256s: ", id);
	if (type && !(json_is_string(type) && strcmp(json_string_value(type), "conversation") == 0))
		return eng_error_set(err, ENG_E_FORMAT, NULL, line,
				     "%sexpected a conversation record or a chat request", who);
	if (eng_chat_kind(chat) == ENG_CHAT_QWEN3)
		return eng_error_set(err, ENG_E_UNSUPPORTED, NULL, line,
				     "the qwen3 template drops earlier reasoning, so turns share no prefix; use chatml");
	c = calloc(1, sizeof(*c));
	if (!c || !(c->id = malloc(id_len + 1))) {
		free(c);
		return eng_error_set(err, ENG_E_NOMEM, NULL, line, "out of memory");
	}
	memcpy(c->id, id, id_len + 1);
	c->id_len = id_len;
	c->line = line;
	c->conv.user = c;
	rc = read_messages(record, who, line, &m, &n, err);
	if (rc == 0)
		rc = type ? build_turns(chat, record, m, n, c, &ids, err)
			  : build_request(chat, record, m, n, c, &ids, err);
	free(m);
	if (rc != 0) {
		if (err && err->line == 0)
			err->line = line;
		eng_ids_free(&ids);
		eng_conv_rec_free(c);
		return rc;
	}
	c->conv.ids = ids.ids;
	c->conv.n_ids = (int32_t)ids.n;
	*out = c;
	return 0;
}

void eng_conv_rec_free(struct eng_conv_rec *c)
{
	if (!c)
		return;
	free(c->conv.ids);
	free(c->conv.turns);
	free(c->id);
	free(c);
}
