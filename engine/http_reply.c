/*
 * http_reply.c: the JSON the HTTP front sends (see http_int.h).
 *
 * Shapes are OpenAI's (chat.completion, chat.completion.chunk,
 * text_completion, the error object) and SGLang's (/generate's text,
 * output_ids and meta_info; finish_reason objects; matched_stop), so that
 * their clients and benchmark tools read them unchanged.  A /generate
 * stream carries the text and ids so far in every event, as SGLang does
 * by default; OpenAI streams carry deltas.
 *
 * Log-probs name tokens by their own bytes, decoded alone (a token that
 * is part of a UTF-8 character shows U+FFFD; "bytes" has the truth).
 */
#include <config.h>
#include "engine/http_int.h"

#include <stdlib.h>
#include <string.h>

static const char *finish_name(enum eng_finish f)
{
	switch (f) {
	case ENG_FINISH_LENGTH: return "length";
	case ENG_FINISH_STOP: return "stop";
	case ENG_FINISH_ABORT: return "abort";
	case ENG_FINISH_ERROR: return "error";
	}
	return "error";
}

json_t *http_error_json(const struct http_err *e)
{
	return json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", e->msg, "type", e->type,
			 "param", e->param[0] ? json_string(e->param) : json_null(),
			 "code", e->code ? json_string(e->code) : json_integer(e->status));
}

/* What ended a reply: the stop string, the stop token, or null. */
static json_t *matched_stop(const struct http_gen *g)
{
	if (g->stopped)
		return json_stringn(g->req->o.stop[g->stop_index], g->req->o.stop_len[g->stop_index]);
	if (g->finish == ENG_FINISH_STOP && g->out.n > 0)
		return json_integer(g->out.ids[g->out.n - 1]);
	return json_null();
}

static json_t *usage_json(const struct http_req *q)
{
	json_int_t p = 0, c = 0, cached = 0;

	for (int i = 0; i < q->n_gens; i++) {
		p += q->gens[i].n_prompt;
		c += (json_int_t)q->gens[i].out.n;
		cached += q->gens[i].cached_tokens;
	}
	return json_pack("{s:I,s:I,s:I,s:{s:I}}", "prompt_tokens", p, "completion_tokens", c,
			 "total_tokens", p + c, "prompt_tokens_details", "cached_tokens", cached);
}

static json_t *object_head(const struct http_req *q, const char *object)
{
	return json_pack("{s:s,s:s,s:I,s:s}", "id", q->id, "object", object,
			 "created", (json_int_t)q->created, "model", http_model_name(q->fr));
}

/* ---------------------------------------------------------------- log-probs */

/* A token's text (lossy) and its bytes. */
static json_t *token_str(const struct http_req *q, int32_t id, json_t **bytes)
{
	size_t n = 0, clean_len = 0;
	const char *b = eng_tokenizer_token_bytes(q->fr->e->tok, id, &n);
	char *clean = eng_utf8_sanitize(b ? b : "", b ? n : 0, &clean_len);
	json_t *s = clean ? json_stringn(clean, clean_len) : json_string("");

	if (bytes) {
		*bytes = json_array();
		for (size_t i = 0; b && i < n; i++)
			json_array_append_new(*bytes, json_integer((unsigned char)b[i]));
	}
	free(clean);
	return s;
}

/* Chat: {"token","logprob","bytes","top_logprobs":[...]} per token. */
static json_t *chat_logprobs(const struct http_req *q, const struct http_gen *g, int32_t from,
			     int32_t to)
{
	json_t *content = json_array();

	for (int32_t i = from; i < to; i++) {
		const struct eng_token_logprobs *lp = &g->lps[i];
		json_t *bytes, *tok = token_str(q, g->out.ids[i], &bytes), *top = json_array();

		for (int32_t k = 0; k < lp->n_top && k < q->o.top_logprobs; k++) {
			json_t *tb, *ts = token_str(q, lp->top_ids[k], &tb);

			json_array_append_new(top, json_pack("{s:o,s:f,s:o}", "token", ts, "logprob",
							     (double)lp->top_logprobs[k], "bytes", tb));
		}
		json_array_append_new(content, json_pack("{s:o,s:f,s:o,s:o}", "token", tok, "logprob",
							 (double)lp->logprob, "bytes", bytes,
							 "top_logprobs", top));
	}
	return json_pack("{s:o}", "content", content);
}

/* Completions: the legacy {"tokens","token_logprobs","top_logprobs",
 * "text_offset"}, optionally starting with the prompt's tokens. */
struct legacy {
	json_t *tokens, *lps, *tops, *offsets;
};

static void legacy_add(const struct http_req *q, struct legacy *l, int32_t id, json_t *lp,
		       json_t *top, size_t offset)
{
	json_array_append_new(l->tokens, token_str(q, id, NULL));
	json_array_append_new(l->lps, lp);
	json_array_append_new(l->tops, top);
	json_array_append_new(l->offsets, json_integer((json_int_t)offset));
}

static json_t *legacy_top(const struct http_req *q, const struct eng_token_logprobs *lp)
{
	json_t *d = json_object();

	for (int32_t k = 0; k < lp->n_top && k < q->o.top_logprobs; k++) {
		json_t *s = token_str(q, lp->top_ids[k], NULL);

		json_object_set_new(d, json_string_value(s), json_real((double)lp->top_logprobs[k]));
		json_decref(s);
	}
	return d;
}

/* Prompt tokens (when echoed with log-probs) and reply tokens [from, to);
 * offsets count from the start of the choice's text, which starts with
 * prompt_text bytes. */
static json_t *legacy_logprobs(const struct http_req *q, const struct http_gen *g, bool prompt,
			       int32_t from, int32_t to, size_t prompt_text)
{
	struct legacy l = { json_array(), json_array(), json_array(), json_array() };
	size_t off = 0;

	for (int32_t i = 0; prompt && i < g->n_prompt; i++) {
		size_t n = 0;
		const char *b = eng_tokenizer_token_bytes(q->fr->e->tok, g->prompt[i], &n);
		double lp = i > 0 && g->prompt_lps ? (double)g->prompt_lps[i - 1] : 0;
		json_t *tok = i > 0 && g->prompt_lps ? json_real(lp) : json_null();
		json_t *top = json_null();

		if (i > 0 && g->prompt_lps) {
			json_t *s = token_str(q, g->prompt[i], NULL);

			top = json_object();
			json_object_set_new(top, json_string_value(s), json_real(lp));
			json_decref(s);
		}
		legacy_add(q, &l, g->prompt[i], tok, top, off);
		off += b ? n : 0;
	}
	for (int32_t i = from; i < to; i++)
		legacy_add(q, &l, g->out.ids[i], json_real((double)g->lps[i].logprob),
			   legacy_top(q, &g->lps[i]), prompt_text + (i > 0 ? g->ends[i - 1] : 0));
	return json_pack("{s:o,s:o,s:o,s:o}", "tokens", l.tokens, "token_logprobs", l.lps,
			 "top_logprobs", l.tops, "text_offset", l.offsets);
}

/* SGLang: [[logprob, id, null], ...] and the top ones per token. */
static void sglang_logprobs(const struct http_req *q, const struct http_gen *g, int32_t to,
			    json_t *meta)
{
	json_t *out = json_array(), *top = json_array();

	for (int32_t i = 0; i < to; i++) {
		json_t *t = json_array();

		json_array_append_new(out, json_pack("[f,i,n]", (double)g->lps[i].logprob,
						     g->out.ids[i]));
		for (int32_t k = 0; k < g->lps[i].n_top && k < q->o.top_logprobs; k++)
			json_array_append_new(t, json_pack("[f,i,n]", (double)g->lps[i].top_logprobs[k],
							   g->lps[i].top_ids[k]));
		json_array_append_new(top, t);
	}
	json_object_set_new(meta, "output_token_logprobs", out);
	if (q->o.top_logprobs > 0)
		json_object_set_new(meta, "output_top_logprobs", top);
	else
		json_decref(top);
	if (q->o.prompt_logprobs) {
		json_t *in = json_array();

		for (int32_t i = q->o.logprob_start; i < g->n_prompt; i++)
			json_array_append_new(in, i > 0 && g->prompt_lps
					      ? json_pack("[f,i,n]", (double)g->prompt_lps[i - 1], g->prompt[i])
					      : json_pack("[n,i,n]", g->prompt[i]));
		json_object_set_new(meta, "input_token_logprobs", in);
	}
}

/* ---------------------------------------------------------------- choices */

static char *prompt_text(const struct http_req *q, const struct http_gen *g, size_t *len)
{
	char *t = NULL, *clean;

	*len = 0;
	if (eng_tokenizer_decode(q->fr->e->tok, g->prompt, (size_t)g->n_prompt, 0, &t, len, NULL))
		return NULL;
	clean = eng_utf8_sanitize(t, *len, len);
	free(t);
	return clean;
}

static json_t *finish_json(const struct http_gen *g)
{
	return g->done ? json_string(finish_name(g->finish)) : json_null();
}

static json_t *chat_choice(const struct http_req *q, const struct http_gen *g)
{
	return json_pack("{s:i,s:{s:s,s:s%},s:o,s:o,s:o}", "index", g->index,
			 "message", "role", "assistant", "content", g->text ? g->text : "", g->len,
			 "logprobs", q->o.logprobs ? chat_logprobs(q, g, 0, (int32_t)g->out.n) : json_null(),
			 "finish_reason", finish_json(g), "matched_stop", matched_stop(g));
}

static json_t *completion_choice(const struct http_req *q, const struct http_gen *g)
{
	size_t plen = 0;
	char *ptext = q->o.echo ? prompt_text(q, g, &plen) : NULL;
	char *text = malloc(plen + g->len + 1);
	json_t *c;

	if (!text) {
		free(ptext);
		return NULL;
	}
	memcpy(text, ptext ? ptext : "", plen);
	memcpy(text + plen, g->text ? g->text : "", g->len);
	c = json_pack("{s:i,s:s%,s:o,s:o,s:o}", "index", g->index, "text", text, plen + g->len,
		      "logprobs", q->o.logprobs ? legacy_logprobs(q, g, q->o.prompt_logprobs, 0,
								  (int32_t)g->out.n, plen)
						: json_null(),
		      "finish_reason", finish_json(g), "matched_stop", matched_stop(g));
	free(text);
	free(ptext);
	return c;
}

static json_t *generate_finish(const struct http_gen *g)
{
	if (!g->done)
		return json_null();
	if (g->finish == ENG_FINISH_LENGTH)
		return json_pack("{s:s,s:I}", "type", "length", "length", (json_int_t)g->out.n);
	if (g->finish == ENG_FINISH_STOP)
		return json_pack("{s:s,s:o}", "type", "stop", "matched", matched_stop(g));
	return json_pack("{s:s,s:s}", "type", "abort", "message", g->error ? g->error : "aborted");
}

/* SGLang's object: the text and ids so far, and meta_info. */
static json_t *generate_item(const struct http_req *q, const struct http_gen *g, size_t upto,
			     int32_t tokens)
{
	json_t *ids = json_array(), *meta, *item;
	char rid[64];

	for (int32_t i = 0; i < tokens; i++)
		json_array_append_new(ids, json_integer(g->out.ids[i]));
	if (q->o.batched)
		snprintf(rid, sizeof(rid), "%s-%d", q->id, g->index);
	else
		snprintf(rid, sizeof(rid), "%s", q->id);
	meta = json_pack("{s:s,s:o,s:i,s:i,s:i,s:f}", "id", rid, "finish_reason", generate_finish(g),
			 "prompt_tokens", g->n_prompt, "completion_tokens", tokens,
			 "cached_tokens", g->cached_tokens,
			 "e2e_latency", (g->done ? g->t_end : eng_mono_s()) - q->t_arrival);
	if (meta && q->o.logprobs)
		sglang_logprobs(q, g, tokens, meta);
	item = json_pack("{s:s%,s:o,s:o}", "text", g->text ? g->text : "", upto, "output_ids", ids,
			 "meta_info", meta);
	if (item && q->o.batched)
		json_object_set_new(item, "index", json_integer(g->index));
	return item;
}

json_t *http_reply_body(const struct http_req *q)
{
	json_t *choices, *r;

	if (q->o.api == HTTP_API_GENERATE) {
		if (!q->o.batched)
			return generate_item(q, &q->gens[0], q->gens[0].len, (int32_t)q->gens[0].out.n);
		r = json_array();
		for (int i = 0; i < q->n_gens; i++)
			json_array_append_new(r, generate_item(q, &q->gens[i], q->gens[i].len,
							       (int32_t)q->gens[i].out.n));
		return r;
	}
	choices = json_array();
	for (int i = 0; i < q->n_gens; i++)
		json_array_append_new(choices, q->o.api == HTTP_API_CHAT
					       ? chat_choice(q, &q->gens[i])
					       : completion_choice(q, &q->gens[i]));
	r = object_head(q, q->o.api == HTTP_API_CHAT ? "chat.completion" : "text_completion");
	json_object_set_new(r, "choices", choices);
	json_object_set_new(r, "usage", usage_json(q));
	return r;
}

/* ---------------------------------------------------------------- streams */

/* One OpenAI chunk of one choice. */
static json_t *chunk(const struct http_req *q, json_t *choice)
{
	json_t *c = object_head(q, q->o.api == HTTP_API_CHAT ? "chat.completion.chunk"
							     : "text_completion");

	json_object_set_new(c, "choices", json_pack("[o]", choice));
	if (q->o.include_usage)
		json_object_set_new(c, "usage", json_null());
	return c;
}

void http_stream_open(struct http_req *q)
{
	for (int i = 0; i < q->n_gens; i++) {
		if (q->o.api == HTTP_API_CHAT)
			http_req_write_event(q, chunk(q, json_pack("{s:i,s:{s:s,s:s},s:n,s:n}", "index", i,
								   "delta", "role", "assistant",
								   "content", "", "logprobs",
								   "finish_reason")));
		else if (q->o.echo && !q->o.prompt_logprobs)
			http_stream_echo(q, &q->gens[i]);
	}
}

void http_stream_echo(struct http_req *q, struct http_gen *g)
{
	size_t plen = 0;
	char *text;

	if (q->o.api != HTTP_API_COMPLETIONS || !q->o.echo)
		return;
	text = prompt_text(q, g, &plen);
	http_req_write_event(q, chunk(q, json_pack("{s:i,s:s%,s:o,s:n}", "index", g->index, "text",
						   text ? text : "", plen, "logprobs",
						   q->o.logprobs ? legacy_logprobs(q, g, true, 0, 0, 0)
								 : json_null(),
						   "finish_reason")));
	free(text);
}

void http_stream_delta(struct http_req *q, struct http_gen *g, size_t upto, int32_t tokens_upto)
{
	const char *t = g->text ? g->text + g->sent : "";
	size_t n = upto - g->sent;
	json_t *lp = json_null();

	if (q->o.api == HTTP_API_GENERATE) {
		http_req_write_event(q, generate_item(q, g, upto, tokens_upto));
	} else if (q->o.api == HTTP_API_CHAT) {
		if (q->o.logprobs)
			lp = chat_logprobs(q, g, g->tokens_sent, tokens_upto);
		http_req_write_event(q, chunk(q, json_pack("{s:i,s:{s:s%},s:o,s:n}", "index", g->index,
							   "delta", "content", t, n, "logprobs", lp,
							   "finish_reason")));
	} else {
		if (q->o.logprobs)
			lp = legacy_logprobs(q, g, false, g->tokens_sent, tokens_upto, 0);
		http_req_write_event(q, chunk(q, json_pack("{s:i,s:s%,s:o,s:n}", "index", g->index,
							   "text", t, n, "logprobs", lp,
							   "finish_reason")));
	}
	g->sent = upto;
	g->tokens_sent = tokens_upto;
}

void http_stream_finish(struct http_req *q, struct http_gen *g)
{
	struct http_err e;

	if (g->finish == ENG_FINISH_ERROR) {
		http_err_set(&e, 500, NULL, NULL, "%s", g->error ? g->error : "generation failed");
		http_req_write_event(q, http_error_json(&e));
		return;
	}
	if (q->o.api == HTTP_API_GENERATE)
		http_req_write_event(q, generate_item(q, g, g->len, (int32_t)g->out.n));
	else if (q->o.api == HTTP_API_CHAT)
		http_req_write_event(q, chunk(q, json_pack("{s:i,s:{},s:n,s:o,s:o}", "index", g->index,
							   "delta", "logprobs", "finish_reason",
							   finish_json(g), "matched_stop",
							   matched_stop(g))));
	else
		http_req_write_event(q, chunk(q, json_pack("{s:i,s:s,s:n,s:o,s:o}", "index", g->index,
							   "text", "", "logprobs", "finish_reason",
							   finish_json(g), "matched_stop",
							   matched_stop(g))));
}

void http_stream_close(struct http_req *q)
{
	if (q->o.include_usage && q->o.api != HTTP_API_GENERATE) {
		json_t *c = object_head(q, q->o.api == HTTP_API_CHAT ? "chat.completion.chunk"
								     : "text_completion");

		json_object_set_new(c, "choices", json_array());
		json_object_set_new(c, "usage", usage_json(q));
		http_req_write_event(q, c);
	}
	http_req_write(q, "data: [DONE]\n\n", 14);
}

/* ---------------------------------------------------------------- info */

json_t *http_models_json(const struct http_front *fr)
{
	return json_pack("{s:s,s:[{s:s,s:s,s:I,s:s,s:s,s:i}]}", "object", "list", "data",
			 "id", http_model_name(fr), "object", "model", "created",
			 (json_int_t)fr->t0_unix, "owned_by", "trajbench", "root",
			 fr->e->p.model_dir, "max_model_len", fr->e->sp.max_context);
}

json_t *http_model_info_json(const struct http_front *fr)
{
	const char *tok = fr->e->p.tokenizer ? fr->e->p.tokenizer : fr->e->p.model_dir;

	return json_pack("{s:s,s:s,s:s,s:b,s:i}", "model_path", fr->e->p.model_dir,
			 "tokenizer_path", tok, "served_model_name", http_model_name(fr),
			 "is_generation", 1, "context_length", fr->e->sp.max_context);
}

json_t *http_server_info_json(const struct http_front *fr)
{
	struct eng_sched_stats st;
	json_t *j = eng_infer_settings(fr->e);

	eng_infer_get_stats(fr->e, &st);
	json_object_update_new(j, json_pack(
		"{s:s,s:s,s:s,s:i,s:s,s:I,s:i,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:s}",
		"model_path", fr->e->p.model_dir, "served_model_name", http_model_name(fr),
		"host", fr->p.host, "port", fr->port, "api_key", fr->p.api_key ? "set" : "none",
		"max_body_size", (json_int_t)fr->p.max_body_size,
		"max_queued_requests", fr->p.max_queued_requests,
		"running_requests", st.n_running, "waiting_requests", (json_int_t)st.n_waiting,
		"free_pages", (json_int_t)st.free_pages, "cached_pages", (json_int_t)st.cached_pages,
		"evictable_pages", (json_int_t)st.evictable_pages,
		"steps", (json_int_t)st.n_steps, "generated_tokens", (json_int_t)st.generated_tokens,
		"uptime", eng_mono_s() - fr->t0, "model_load_time", eng_infer_load_time(fr->e),
		"version", PACKAGE_VERSION));
	return j;
}
