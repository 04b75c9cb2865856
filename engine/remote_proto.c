/*
 * remote_proto.c: request bodies and reply parsing for the servers the
 * remote executor speaks to (see remote.h).
 *
 * Three dialects: OpenAI chat completions (the messages; the server
 * applies its own chat template), OpenAI completions and SGLang's native
 * /generate (our prompt token ids, so the server computes exactly our
 * tokens).  Every request asks for exactly max_new_tokens tokens: max_tokens
 * plus ignore_eos and min_tokens, the extensions SGLang, vLLM and llama.cpp
 * accept (a server that ignores them may stop early: the record shows it).
 *
 * Counts come from where each server puts them: "usage" (prompt_tokens,
 * completion_tokens, prompt_tokens_details.cached_tokens), llama.cpp's
 * "timings" (prompt_n computed, cache_n cached, predicted_n generated),
 * SGLang's "meta_info".  The last value seen wins; what no chunk reported
 * stays -1.  Nothing here does I/O.
 */
#include "engine/remote.h"
#include "engine/sched.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rm_reply_reset(struct rm_reply *r)
{
	char *text = r->text;
	size_t cap = r->text_cap;

	free(r->logprobs);
	memset(r, 0, sizeof(*r));
	r->text = text;
	r->text_cap = cap;
	r->prompt_tokens = r->completion_tokens = r->cached_tokens = -1;
}

void rm_reply_free(struct rm_reply *r)
{
	free(r->text);
	free(r->logprobs);
	memset(r, 0, sizeof(*r));
}

const char *rm_endpoint_path(enum eng_remote_endpoint ep)
{
	switch (ep) {
	case ENG_REMOTE_CHAT: return "/v1/chat/completions";
	case ENG_REMOTE_COMPLETIONS: return "/v1/completions";
	case ENG_REMOTE_GENERATE: return "/generate";
	}
	return "/v1/chat/completions";
}

const char *rm_endpoint_name(enum eng_remote_endpoint ep)
{
	switch (ep) {
	case ENG_REMOTE_CHAT: return "chat";
	case ENG_REMOTE_COMPLETIONS: return "completions";
	case ENG_REMOTE_GENERATE: return "generate";
	}
	return "chat";
}

/* ---------------------------------------------------------------- requests */

/* The token ids of a prompt are written straight into the body's text
 * (splice_ids): a JSON integer object and a printf per id cost the client
 * twice its whole per-request time on long prompts.  In the JSON object
 * they are an empty array, which the compact dump prints as KEY:[]. */
static json_t *ids_array(const int32_t *ids, int32_t n)
{
	(void)ids;
	(void)n;
	return json_array();
}

/* Writes v in decimal at p; returns the end. */
static char *put_int(char *p, int32_t v)
{
	char tmp[12];
	int n = 0;
	uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*p++ = '-';
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* The compact dump of b with the ids put into its "key":[] (the one place
 * that text can be: in a string it would be escaped).  Malloc'ed; NULL
 * when out of memory. */
static char *splice_ids(const json_t *b, const char *key, const int32_t *ids, int32_t n)
{
	char *text = json_dumps(b, JSON_COMPACT), *at, *out, *p;
	char pat[32];
	size_t head, len;

	snprintf(pat, sizeof(pat), "\"%s\":[]", key);
	if (!text || !(at = strstr(text, pat)) || n <= 0)
		return text;
	len = strlen(text);
	head = (size_t)(at - text) + strlen(pat) - 1; /* up to and with the '[' */
	out = malloc(len + (size_t)n * 12 + 1);
	if (!out) {
		free(text);
		return NULL;
	}
	memcpy(out, text, head);
	p = out + head;
	for (int32_t i = 0; i < n; i++) {
		if (i)
			*p++ = ',';
		p = put_int(p, ids[i]);
	}
	memcpy(p, text + head, len - head + 1);
	free(text);
	return out;
}

/* The prompt's text as one user message: for conversations that have no
 * messages (the synthetic warmup). */
static json_t *text_messages(const struct eng_request_params *p, struct eng_tokenizer *tok,
			     struct eng_error *err)
{
	char *text = NULL, *clean;
	size_t len = 0, clean_len = 0;
	json_t *m;

	if (eng_tokenizer_decode(tok, p->prompt, (size_t)p->prompt_len, ENG_TOK_DECODE_SKIP_SPECIAL,
				 &text, &len, err) != 0)
		return NULL;
	clean = eng_utf8_sanitize(text, len, &clean_len);
	free(text);
	m = clean ? json_pack("[{s:s,s:s%}]", "role", "user", "content", clean, clean_len) : NULL;
	free(clean);
	return m;
}

/* Messages before the turn-th assistant message (all of them when there
 * are fewer: an OpenAI request line), role and content only. */
static json_t *turn_messages(const json_t *msgs, int32_t turn)
{
	json_t *out = json_array();
	int32_t seen = 0;
	size_t i;
	const json_t *m;

	json_array_foreach(msgs, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));

		if (role && !strcmp(role, "assistant") && seen++ == turn)
			break;
		json_array_append_new(out, json_pack("{s:O,s:O}", "role", json_object_get(m, "role"),
						     "content", json_object_get(m, "content")));
	}
	return out;
}

/* temperature, top_p, top_k and seed as the request's sampling fields. */
static void set_sampling(json_t *o, const struct eng_sampling *s)
{
	json_object_set_new(o, "temperature", json_real(s->temperature));
	if (s->top_p < 1.0f)
		json_object_set_new(o, "top_p", json_real(s->top_p));
	if (s->top_k > 0)
		json_object_set_new(o, "top_k", json_integer(s->top_k));
	if (s->temperature > 0)
		json_object_set_new(o, "seed", json_integer((json_int_t)(s->seed & 0x7fffffff)));
}

/* Score: the prompt's log-probs, one token generated (OpenAI's echo) or
 * none (SGLang). */
static json_t *score_body(enum eng_remote_endpoint ep, const char *model,
			  const struct eng_request_params *p, struct eng_error *err)
{
	if (ep == ENG_REMOTE_COMPLETIONS)
		return json_pack("{s:s,s:o,s:i,s:b,s:i,s:f}", "model", model,
				 "prompt", ids_array(p->prompt, p->prompt_len), "max_tokens", 1,
				 "echo", 1, "logprobs", 0, "temperature", 0.0);
	if (ep == ENG_REMOTE_GENERATE)
		return json_pack("{s:o,s:{s:i,s:f},s:b,s:i}", "input_ids",
				 ids_array(p->prompt, p->prompt_len), "sampling_params",
				 "max_new_tokens", 0, "temperature", 0.0, "return_logprob", 1,
				 "logprob_start_len", 0);
	eng_error_set(err, ENG_E_UNSUPPORTED, NULL, 0,
		      "score mode needs the prompt's log-probs: use --endpoint completions or generate");
	return NULL;
}

static json_t *body_json(enum eng_remote_endpoint ep, const char *model,
			 const struct eng_request_params *p, const struct eng_conv *c, int32_t turn,
			 struct eng_tokenizer *tok, struct eng_error *err)
{
	json_t *b, *params;

	if (p->score)
		return score_body(ep, model, p, err);
	if (ep == ENG_REMOTE_GENERATE) {
		b = json_pack("{s:o,s:{s:i},s:b}", "input_ids", ids_array(p->prompt, p->prompt_len),
			      "sampling_params", "max_new_tokens", p->max_new_tokens, "stream", 1);
		params = json_object_get(b, "sampling_params");
		if (p->ignore_eos) {
			json_object_set_new(params, "min_new_tokens", json_integer(p->max_new_tokens));
			json_object_set_new(params, "ignore_eos", json_true());
		}
		set_sampling(params, &p->sampling);
		return b;
	}
	b = json_pack("{s:s,s:i,s:b,s:{s:b}}", "model", model, "max_tokens", p->max_new_tokens,
		      "stream", 1, "stream_options", "include_usage", 1);
	if (!b)
		return NULL;
	if (ep == ENG_REMOTE_COMPLETIONS) {
		json_object_set_new(b, "prompt", ids_array(p->prompt, p->prompt_len));
	} else {
		const json_t *msgs = c && c->record ? json_object_get(c->record, "messages") : NULL;
		json_t *m = msgs ? turn_messages(msgs, turn) : text_messages(p, tok, err);

		if (!m) {
			json_decref(b);
			return NULL;
		}
		json_object_set_new(b, "messages", m);
		/* What else shapes the server's rendering of the prompt. */
		if (msgs && json_object_get(c->record, "tools"))
			json_object_set(b, "tools", json_object_get(c->record, "tools"));
		if (msgs && json_object_get(c->record, "chat_template_kwargs"))
			json_object_set(b, "chat_template_kwargs",
					json_object_get(c->record, "chat_template_kwargs"));
	}
	if (p->ignore_eos) {
		json_object_set_new(b, "min_tokens", json_integer(p->max_new_tokens));
		json_object_set_new(b, "ignore_eos", json_true());
	}
	set_sampling(b, &p->sampling);
	return b;
}

char *rm_request_body(enum eng_remote_endpoint ep, const char *model,
		      const struct eng_request_params *p, const struct eng_conv *c, int32_t turn,
		      struct eng_tokenizer *tok, struct eng_error *err)
{
	json_t *b = body_json(ep, model, p, c, turn, tok, err);
	char *text;

	if (!b)
		return NULL;
	text = ep == ENG_REMOTE_CHAT ? json_dumps(b, JSON_COMPACT)
	       : splice_ids(b, ep == ENG_REMOTE_GENERATE ? "input_ids" : "prompt", p->prompt,
			    p->prompt_len);
	json_decref(b);
	if (!text)
		eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	return text;
}

/* ---------------------------------------------------------------- replies */

static void text_append(struct rm_reply *r, const char *s, size_t n)
{
	if (r->text_len + n + 1 > r->text_cap) {
		size_t cap = r->text_cap ? r->text_cap : 256;
		char *q;

		while (cap < r->text_len + n + 1)
			cap *= 2;
		q = realloc(r->text, cap);
		if (!q)
			return; /* the text is a detail; the counts stay right */
		r->text = q;
		r->text_cap = cap;
	}
	memcpy(r->text + r->text_len, s, n);
	r->text_len += n;
	r->text[r->text_len] = '\0';
}

static void take_int(const json_t *o, const char *key, int64_t *v)
{
	const json_t *j = json_object_get(o, key);

	if (json_is_integer(j))
		*v = json_integer_value(j);
}

/* usage (OpenAI), timings (llama.cpp), meta_info (SGLang). */
static void take_counts(struct rm_reply *r, const json_t *j)
{
	const json_t *u = json_object_get(j, "usage");
	const json_t *t = json_object_get(j, "timings");
	const json_t *m = json_object_get(j, "meta_info");

	if (json_is_object(t)) {
		int64_t pn = -1, cn = -1;

		take_int(t, "prompt_n", &pn);
		take_int(t, "cache_n", &cn);
		if (pn >= 0 && cn >= 0)
			r->prompt_tokens = pn + cn;
		if (cn >= 0)
			r->cached_tokens = cn;
		take_int(t, "predicted_n", &r->completion_tokens);
	}
	if (json_is_object(u)) {
		take_int(u, "prompt_tokens", &r->prompt_tokens);
		take_int(u, "completion_tokens", &r->completion_tokens);
		take_int(json_object_get(u, "prompt_tokens_details"), "cached_tokens",
			 &r->cached_tokens);
	}
	if (json_is_object(m)) {
		const json_t *fr = json_object_get(json_object_get(m, "finish_reason"), "type");

		take_int(m, "prompt_tokens", &r->prompt_tokens);
		take_int(m, "completion_tokens", &r->completion_tokens);
		take_int(m, "cached_tokens", &r->cached_tokens);
		if (json_is_string(fr))
			snprintf(r->finish_reason, sizeof(r->finish_reason), "%s",
				 json_string_value(fr));
	}
}

/* A server's error inside a 200 stream: {"error":{"message":...}} or
 * {"error":"..."}; true when j is one. */
static bool take_error(struct rm_reply *r, const json_t *j)
{
	const json_t *e = json_object_get(j, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));

	if (!e || json_is_null(e))
		return false;
	if (!msg)
		msg = json_string_value(e);
	snprintf(r->error, sizeof(r->error), "the server sent an error: %s", msg ? msg : "(no message)");
	return true;
}

/* The text a chunk adds: choices[0].delta.content (or reasoning_content)
 * for chat, choices[0].text for completions, the growth of the cumulative
 * "text" for generate. */
static int take_text(enum eng_remote_endpoint ep, struct rm_reply *r, const json_t *j)
{
	const json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
	const json_t *fr = json_object_get(ch, "finish_reason");
	const json_t *s = NULL;
	int64_t before = r->completion_tokens;

	if (json_is_string(fr))
		snprintf(r->finish_reason, sizeof(r->finish_reason), "%s", json_string_value(fr));
	if (ep == ENG_REMOTE_CHAT) {
		const json_t *d = json_object_get(ch, "delta");

		s = json_object_get(d, "content");
		if (!json_is_string(s) || json_string_length(s) == 0)
			s = json_object_get(d, "reasoning_content");
	} else if (ep == ENG_REMOTE_COMPLETIONS) {
		s = json_object_get(ch, "text");
	} else {
		const json_t *t = json_object_get(j, "text");
		const char *v = json_string_value(t);
		size_t n = json_string_length(t), had = r->text_len;

		take_counts(r, j);
		/* Cumulative text (SGLang's default), or increments. */
		if (v && n >= had && (had == 0 || !memcmp(v, r->text, had)))
			text_append(r, v + had, n - had);
		else if (v)
			text_append(r, v, n);
		return r->completion_tokens > before || r->text_len > had;
	}
	take_counts(r, j);
	if (!json_is_string(s) || json_string_length(s) == 0)
		return 0;
	text_append(r, json_string_value(s), json_string_length(s));
	return 1;
}

/* data parsed as a JSON object that is not an error reply; NULL with
 * r->error set otherwise (what names the text in the message). */
static json_t *load_reply(struct rm_reply *r, const char *data, size_t len, const char *what)
{
	json_error_t jerr;
	json_t *j = json_loadb(data, len, 0, &jerr);

	if (!json_is_object(j)) {
		snprintf(r->error, sizeof(r->error), "%s is not a JSON object: %s", what,
			 j ? "not an object" : jerr.text);
		json_decref(j);
		return NULL;
	}
	if (take_error(r, j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

int rm_reply_event(enum eng_remote_endpoint ep, struct rm_reply *r, const char *data, size_t len)
{
	json_t *j;
	int tok;

	if (len == 6 && !memcmp(data, "[DONE]", 6)) {
		r->done = true;
		return 0;
	}
	if (!(j = load_reply(r, data, len, "an event of the stream")))
		return -1;
	tok = take_text(ep, r, j);
	json_decref(j);
	r->n_chunks += tok;
	return tok;
}

/* Score replies: OpenAI's echoed token_logprobs ([0] is null: the first
 * token has no context), or SGLang's input_token_logprobs ([[lp, id, _]]). */
static int take_logprobs(enum eng_remote_endpoint ep, struct rm_reply *r, const json_t *j,
			 int32_t prompt_len)
{
	const json_t *a = ep == ENG_REMOTE_GENERATE
		? json_object_get(json_object_get(j, "meta_info"), "input_token_logprobs")
		: json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0),
						  "logprobs"), "token_logprobs");

	if (!json_is_array(a) || (int32_t)json_array_size(a) < prompt_len) {
		snprintf(r->error, sizeof(r->error),
			 "the reply has no log-probs of the %d prompt tokens (does the server return "
			 "prompt log-probs?)", prompt_len);
		return -1;
	}
	r->logprobs = calloc(prompt_len > 1 ? (size_t)prompt_len - 1 : 1, sizeof(float));
	if (!r->logprobs) {
		snprintf(r->error, sizeof(r->error), "out of memory");
		return -1;
	}
	for (int32_t i = 1; i < prompt_len; i++) {
		const json_t *v = json_array_get(a, (size_t)i);

		if (ep == ENG_REMOTE_GENERATE)
			v = json_array_get(v, 0);
		if (!json_is_number(v)) {
			snprintf(r->error, sizeof(r->error), "log-prob %d of the reply is not a number", i);
			return -1;
		}
		r->logprobs[i - 1] = (float)json_number_value(v);
	}
	r->n_logprobs = prompt_len > 1 ? prompt_len - 1 : 0;
	return 0;
}

int rm_reply_whole(enum eng_remote_endpoint ep, struct rm_reply *r, const char *body, size_t len,
		   bool score, int32_t prompt_len)
{
	json_t *j = load_reply(r, body, len, "the reply");
	const json_t *ch, *s;
	int rc = 0;

	if (!j)
		return -1;
	take_counts(r, j);
	if (score) {
		rc = take_logprobs(ep, r, j, prompt_len);
		json_decref(j);
		return rc;
	}
	ch = json_array_get(json_object_get(j, "choices"), 0);
	s = ep == ENG_REMOTE_CHAT ? json_object_get(json_object_get(ch, "message"), "content")
	    : ep == ENG_REMOTE_COMPLETIONS ? json_object_get(ch, "text") : json_object_get(j, "text");
	if (json_is_string(json_object_get(ch, "finish_reason")))
		snprintf(r->finish_reason, sizeof(r->finish_reason), "%s",
			 json_string_value(json_object_get(ch, "finish_reason")));
	if (json_is_string(s) && json_string_length(s) > 0) {
		text_append(r, json_string_value(s), json_string_length(s));
		r->n_chunks = 1;
	}
	r->done = true;
	json_decref(j);
	return 0;
}

void rm_error_message(const char *body, size_t len, char *buf, size_t n)
{
	json_t *j = json_loadb(body, len, 0, NULL);
	const json_t *e = json_object_get(j, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));
	size_t k;

	if (!msg)
		msg = json_string_value(e);
	if (!msg)
		msg = json_string_value(json_object_get(j, "message"));
	if (!msg)
		msg = json_string_value(json_object_get(j, "detail"));
	if (msg) {
		snprintf(buf, n, "%s", msg);
	} else {
		/* The body's first line, as text. */
		for (k = 0; k < len && k + 1 < n && k < 200 && body[k] != '\n' && body[k] != '\r'; k++)
			buf[k] = body[k];
		buf[k] = '\0';
	}
	json_decref(j);
}
