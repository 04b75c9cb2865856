/*
 * http_parse.c: request bodies into struct http_opts and token prompts
 * (see http_int.h).
 *
 * Three shapes, one result: OpenAI's chat completions (messages rendered
 * with the model's chat template), OpenAI's completions (a prompt as a
 * string, a list of token ids, or a batch of either) and SGLang's /generate
 * (text or input_ids, sampling_params).  Defaults are those of vLLM and
 * SGLang: temperature 1, top_p 1, top_k off; max_tokens up to the context
 * for chat, 16 for completions, max_new_tokens 128 for /generate.
 *
 * Unknown fields are ignored, as OpenAI's clients send many; fields that
 * would change the output and that the engine does not do (penalties,
 * min_p, logit_bias, best_of, n > 1, images) are refused with a 400
 * naming them, never silently dropped.  Every bound is checked here, so
 * that nothing a client sends reaches the scheduler unchecked: a prompt
 * longer than the context, or a reply that cannot fit, is a 422.
 */
#include "engine/http_int.h"
#include "engine/chat.h"
#include "engine/model.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int http_err_set(struct http_err *e, unsigned status, const char *code, const char *param,
		 const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	e->type = status == 401 ? "authentication_error"
		: status >= 500 ? "server_error" : "invalid_request_error";
	e->code = code;
	snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* ---------------------------------------------------------------- fields */

static const json_t *field(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_null(v) ? NULL : v;
}

static int get_bool(const json_t *o, const char *key, bool *v, struct http_err *e)
{
	const json_t *j = field(o, key);

	if (!j)
		return 0;
	if (!json_is_boolean(j))
		return http_err_set(e, 400, NULL, key, "\"%s\" must be a boolean", key);
	*v = json_is_true(j);
	return 0;
}

static int get_int(const json_t *o, const char *key, long long lo, long long hi, int32_t *v,
		   struct http_err *e)
{
	const json_t *j = field(o, key);
	long long x;

	if (!j)
		return 0;
	x = json_is_integer(j) ? (long long)json_integer_value(j)
	  : json_is_real(j) && json_real_value(j) == floor(json_real_value(j))
	  ? (long long)json_real_value(j) : LLONG_MIN;
	if (x == LLONG_MIN || x < lo || x > hi)
		return http_err_set(e, 400, NULL, key, "\"%s\" must be an integer in [%lld, %lld]",
				    key, lo, hi);
	*v = (int32_t)x;
	return 0;
}

static int get_num(const json_t *o, const char *key, double lo, double hi, double *v,
		   struct http_err *e)
{
	const json_t *j = field(o, key);
	double x;

	if (!j)
		return 0;
	x = json_number_value(j);
	if (!json_is_number(j) || !(x >= lo && x <= hi))
		return http_err_set(e, 400, NULL, key, "\"%s\" must be a number in [%g, %g]", key,
				    lo, hi);
	*v = x;
	return 0;
}

/* A field that, set to anything but its neutral value, asks for what the
 * engine does not do. */
static int refuse(const json_t *o, const char *key, double neutral, struct http_err *e)
{
	const json_t *j = field(o, key);

	if (!j || (json_is_number(j) && json_number_value(j) == neutral) ||
	    (json_is_object(j) && json_object_size(j) == 0) ||
	    (json_is_array(j) && json_array_size(j) == 0))
		return 0;
	return http_err_set(e, 400, NULL, key, "\"%s\" is not supported by this server", key);
}

/* ---------------------------------------------------------------- sampling */

/* stop: a string or a list of strings (borrowed). */
static int get_stop(const json_t *o, struct http_opts *op, struct http_err *e)
{
	const json_t *j = field(o, "stop"), *v;
	size_t i;

	if (!j)
		return 0;
	if (json_is_string(j) || (json_is_array(j) && json_array_size(j) <= HTTP_MAX_STOPS)) {
		for (i = 0; i < (json_is_string(j) ? 1 : json_array_size(j)); i++) {
			v = json_is_string(j) ? j : json_array_get(j, i);
			if (!json_is_string(v) || json_string_length(v) == 0 ||
			    json_string_length(v) > HTTP_MAX_STOP_LEN)
				break;
			op->stop[op->n_stop] = json_string_value(v);
			op->stop_len[op->n_stop++] = json_string_length(v);
		}
		if (i == (json_is_string(j) ? 1 : json_array_size(j)))
			return 0;
	}
	return http_err_set(e, 400, NULL, "stop",
			    "\"stop\" must be a string or a list of at most %d non-empty strings "
			    "of at most %d bytes", HTTP_MAX_STOPS, HTTP_MAX_STOP_LEN);
}

static int get_stop_ids(const json_t *o, int32_t vocab, struct http_opts *op, struct http_err *e)
{
	const json_t *j = field(o, "stop_token_ids"), *v;
	size_t i;

	if (!j)
		return 0;
	if (!json_is_array(j) || json_array_size(j) > HTTP_MAX_STOPS)
		return http_err_set(e, 400, NULL, "stop_token_ids",
				    "\"stop_token_ids\" must be a list of at most %d token ids",
				    HTTP_MAX_STOPS);
	json_array_foreach(j, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= vocab)
			return http_err_set(e, 400, NULL, "stop_token_ids",
					    "\"stop_token_ids\"[%zu] is not a token id", i);
		op->stop_ids[op->n_stop_ids++] = (int32_t)json_integer_value(v);
	}
	return 0;
}

/* The sampling fields common to every shape; o is the request (OpenAI) or
 * its sampling_params (SGLang). */
static int get_sampling(const json_t *o, int32_t vocab, struct http_opts *op, struct http_err *e)
{
	double temp = op->sampling.temperature, top_p = op->sampling.top_p;
	int32_t top_k = op->sampling.top_k, n = 1;
	const json_t *seed = field(o, "seed");
	static const char *const refused[] = {
		"frequency_penalty", "presence_penalty", "min_p", "logit_bias", "suffix",
	};

	if (get_num(o, "temperature", 0, 100, &temp, e) || get_num(o, "top_p", 1e-9, 1, &top_p, e) ||
	    get_int(o, "top_k", -1, 1 << 30, &top_k, e) || get_int(o, "n", 1, 1, &n, e) ||
	    get_int(o, "best_of", 1, 1, &n, e) || get_bool(o, "ignore_eos", &op->ignore_eos, e) ||
	    get_bool(o, "skip_special_tokens", &op->skip_special, e) || get_stop(o, op, e) ||
	    get_stop_ids(o, vocab, op, e) || refuse(o, "repetition_penalty", 1, e))
		return -1;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (refuse(o, refused[i], 0, e))
			return -1;
	if (seed && !json_is_integer(seed))
		return http_err_set(e, 400, NULL, "seed", "\"seed\" must be an integer");
	if (seed)
		op->sampling.seed = (uint64_t)json_integer_value(seed);
	op->sampling.temperature = (float)temp;
	op->sampling.top_p = (float)top_p;
	op->sampling.top_k = top_k < 0 ? 0 : top_k;
	return 0;
}

/* ---------------------------------------------------------------- prompts */

static int push_prompt(struct http_prompt **v, int *n, struct eng_ids *ids, struct http_err *e)
{
	struct http_prompt *p = realloc(*v, sizeof(**v) * (size_t)(*n + 1));

	if (!p) {
		eng_ids_free(ids);
		return http_err_set(e, 500, NULL, NULL, "out of memory");
	}
	*v = p;
	p[*n].ids = ids->ids;
	p[(*n)++].n = (int32_t)ids->n;
	*ids = (struct eng_ids){ 0 };
	return 0;
}

static int text_prompt(struct eng_infer *eng, const json_t *s, const char *param,
		       struct http_prompt **v, int *n, struct http_err *e)
{
	struct eng_ids ids = { 0 };
	struct eng_error err;

	if (eng_tokenizer_encode(eng->tok, json_string_value(s), json_string_length(s), &ids, 0,
				 &err) != 0) {
		eng_ids_free(&ids);
		return http_err_set(e, 400, NULL, param, "%s: %s", param, err.msg);
	}
	return push_prompt(v, n, &ids, e);
}

static int ids_prompt(struct eng_infer *eng, const json_t *a, const char *param,
		      struct http_prompt **v, int *n, struct http_err *e)
{
	int32_t vocab = eng_model_config(eng->model)->vocab;
	struct eng_ids ids = { 0 };
	const json_t *x;
	size_t i;

	json_array_foreach(a, i, x) {
		if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= vocab) {
			eng_ids_free(&ids);
			return http_err_set(e, 400, NULL, param, "%s[%zu] is not a token id", param, i);
		}
		if (eng_ids_push(&ids, (int32_t)json_integer_value(x)) != 0) {
			eng_ids_free(&ids);
			return http_err_set(e, 500, NULL, NULL, "out of memory");
		}
	}
	return push_prompt(v, n, &ids, e);
}

/* A string, a list of ids, or a batch (list) of either. */
static int read_prompts(struct eng_infer *eng, const json_t *j, const char *param,
			struct http_opts *op, struct http_prompt **v, int *n, struct http_err *e)
{
	const json_t *x;
	size_t i;

	if (json_is_string(j))
		return text_prompt(eng, j, param, v, n, e);
	if (!json_is_array(j) || json_array_size(j) == 0)
		return http_err_set(e, 400, NULL, param,
				    "\"%s\" must be a string, a list of token ids, or a non-empty "
				    "list of either", param);
	if (json_is_integer(json_array_get(j, 0)))
		return ids_prompt(eng, j, param, v, n, e);
	op->batched = true;
	json_array_foreach(j, i, x) {
		int rc = json_is_string(x) ? text_prompt(eng, x, param, v, n, e)
		       : json_is_array(x) && json_array_size(x) > 0 ? ids_prompt(eng, x, param, v, n, e)
		       : http_err_set(e, 400, NULL, param, "\"%s\"[%zu] must be a string or a "
				      "non-empty list of token ids", param, i);

		if (rc != 0)
			return rc;
	}
	return 0;
}

/* A message's content as the chat API takes it: a list of text parts
 * ({"type":"text","text":...}) joined into one string (new ref), else the
 * content itself. */
static json_t *message_content(const json_t *c, size_t k, struct http_err *e)
{
	const json_t *part;
	size_t i, n = 0;
	char *buf;
	json_t *s;

	if (!json_is_array(c))
		return json_incref((json_t *)c);
	json_array_foreach(c, i, part) {
		const json_t *t = json_object_get(part, "text");

		if (!json_is_string(t) ||
		    strcmp(json_string_value(json_object_get(part, "type")) ?: "", "text")) {
			http_err_set(e, 400, NULL, "messages",
				     "messages[%zu].content[%zu]: only text parts are supported", k, i);
			return NULL;
		}
		n += json_string_length(t);
	}
	if (!(buf = malloc(n + 1))) {
		http_err_set(e, 500, NULL, NULL, "out of memory");
		return NULL;
	}
	n = 0;
	json_array_foreach(c, i, part) {
		const json_t *t = json_object_get(part, "text");

		memcpy(buf + n, json_string_value(t), json_string_length(t));
		n += json_string_length(t);
	}
	s = json_stringn_nocheck(buf, n);
	free(buf);
	if (!s)
		http_err_set(e, 500, NULL, NULL, "out of memory");
	return s;
}

/* The body with every message's content a string (new ref). */
static json_t *text_messages(const json_t *body, struct http_err *e)
{
	const json_t *msgs = field(body, "messages"), *m;
	json_t *copy = json_copy((json_t *)body), *out = json_array();
	size_t i;

	if (!copy || !out) {
		json_decref(copy);
		json_decref(out);
		http_err_set(e, 500, NULL, NULL, "out of memory");
		return NULL;
	}
	json_array_foreach(msgs, i, m) {
		json_t *mc = json_is_object(m) ? json_copy((json_t *)m) : json_incref((json_t *)m);
		json_t *c = json_is_object(m) ? json_object_get(m, "content") : NULL;

		if (c && json_is_array(c)) {
			json_t *t = message_content(c, i, e);

			if (!t || json_object_set_new(mc, "content", t) != 0) {
				json_decref(mc);
				json_decref(out);
				json_decref(copy);
				return NULL;
			}
		}
		json_array_append_new(out, mc);
	}
	json_object_set_new(copy, "messages", out);
	return copy;
}

/* The chat template's rendering of the messages (tools and
 * chat_template_kwargs as the template takes them) with the generation
 * prompt: the one place the HTTP front uses the chat API. */
static int chat_prompt(struct eng_infer *eng, const json_t *body, struct http_prompt **v, int *n,
		       struct http_err *e)
{
	const json_t *msgs = field(body, "messages");
	struct eng_chat_input in;
	struct eng_ids ids = { 0 };
	struct eng_error err;
	json_t *rec;
	int rc;

	if (!json_is_array(msgs) || json_array_size(msgs) == 0)
		return http_err_set(e, 400, NULL, "messages", "\"messages\" must be a non-empty list");
	if (!(rec = text_messages(body, e)))
		return -1;
	rc = eng_chat_input_from_json(rec, &in, &err);
	if (rc != 0) {
		json_decref(rec);
		return http_err_set(e, rc == ENG_E_NOMEM ? 500 : 400, NULL, "messages", "%s", err.msg);
	}
	rc = eng_chat_render(eng->chat, &in, in.n_msgs, true, &ids, &err);
	eng_chat_input_free(&in);
	json_decref(rec);
	if (rc == 0)
		return push_prompt(v, n, &ids, e);
	eng_ids_free(&ids);
	return http_err_set(e, rc == ENG_E_NOMEM ? 500 : 400, NULL, "messages", "%s", err.msg);
}

/* ---------------------------------------------------------------- shapes */

static int parse_chat(struct eng_infer *eng, const json_t *b, struct http_opts *o,
		      struct http_prompt **v, int *n, struct http_err *e)
{
	if (refuse(b, "functions", 0, e) ||
	    get_int(b, "max_tokens", 1, 1 << 30, &o->max_tokens, e) ||
	    get_int(b, "max_completion_tokens", 1, 1 << 30, &o->max_tokens, e) ||
	    get_bool(b, "logprobs", &o->logprobs, e) ||
	    get_int(b, "top_logprobs", 0, ENG_TOP_LOGPROBS_MAX, &o->top_logprobs, e))
		return -1;
	if (o->top_logprobs > 0 && !o->logprobs)
		return http_err_set(e, 400, NULL, "top_logprobs",
				    "\"top_logprobs\" needs \"logprobs\": true");
	return chat_prompt(eng, b, v, n, e);
}

static int parse_completions(struct eng_infer *eng, const json_t *b, struct http_opts *o,
			     struct http_prompt **v, int *n, struct http_err *e)
{
	const json_t *lp = field(b, "logprobs");

	o->max_tokens = 16;
	if (get_int(b, "max_tokens", 0, 1 << 30, &o->max_tokens, e) ||
	    get_bool(b, "echo", &o->echo, e) ||
	    get_int(b, "logprobs", 0, ENG_TOP_LOGPROBS_MAX, &o->top_logprobs, e))
		return -1;
	o->logprobs = lp != NULL;
	o->prompt_logprobs = o->echo && o->logprobs;
	if (o->max_tokens == 0 && !o->echo)
		return http_err_set(e, 400, NULL, "max_tokens",
				    "\"max_tokens\": 0 needs \"echo\": true");
	if (!field(b, "prompt"))
		return http_err_set(e, 400, NULL, "prompt", "\"prompt\" is required");
	return read_prompts(eng, field(b, "prompt"), "prompt", o, v, n, e);
}

static int parse_generate(struct eng_infer *eng, const json_t *b, struct http_opts *o,
			  struct http_prompt **v, int *n, struct http_err *e)
{
	const json_t *sp = field(b, "sampling_params");
	const json_t *text = field(b, "text"), *ids = field(b, "input_ids");

	o->max_tokens = 128;
	o->logprob_start = -1;
	if (sp && !json_is_object(sp))
		return http_err_set(e, 400, NULL, "sampling_params",
				    "\"sampling_params\" must be an object");
	if (get_sampling(sp, eng_model_config(eng->model)->vocab, o, e) ||
	    get_int(sp, "max_new_tokens", 0, 1 << 30, &o->max_tokens, e) ||
	    get_int(sp, "min_new_tokens", 0, 1 << 30, &o->min_tokens, e) ||
	    get_bool(b, "return_logprob", &o->logprobs, e) ||
	    get_int(b, "top_logprobs_num", 0, ENG_TOP_LOGPROBS_MAX, &o->top_logprobs, e) ||
	    get_int(b, "logprob_start_len", -1, 1 << 30, &o->logprob_start, e))
		return -1;
	o->prompt_logprobs = o->logprobs && o->logprob_start >= 0;
	if (o->max_tokens == 0 && !o->prompt_logprobs)
		return http_err_set(e, 400, NULL, "max_new_tokens",
				    "\"max_new_tokens\": 0 needs return_logprob and logprob_start_len");
	if (!text == !ids)
		return http_err_set(e, 400, NULL, "text", "give one of \"text\" and \"input_ids\"");
	return read_prompts(eng, text ? text : ids, text ? "text" : "input_ids", o, v, n, e);
}

/* Each prompt and its reply must fit the context and the KV pool. */
static int check_lengths(const struct eng_infer *eng, struct http_opts *o,
			 const struct http_prompt *v, int n, struct http_err *e)
{
	int64_t pool = (int64_t)eng->sp.n_pages * eng->sp.page_size;
	int64_t room = eng->sp.max_context < pool ? eng->sp.max_context : pool;

	for (int i = 0; i < n; i++) {
		int64_t want = o->max_tokens >= 0 ? o->max_tokens : room - v[i].n;

		if (v[i].n == 0)
			return http_err_set(e, 400, NULL, "prompt", "prompt %d is empty", i);
		if (v[i].n >= room || v[i].n + want > room)
			return http_err_set(e, 422, "context_length_exceeded", "messages",
					    "this model's maximum context length is %lld tokens; the "
					    "request has %d prompt tokens and asks for %lld more",
					    (long long)room, v[i].n, (long long)(want > 0 ? want : 0));
		if (o->max_tokens < 0 && n == 1)
			o->max_tokens = (int32_t)want;
	}
	return 0;
}

int http_parse_request(struct eng_infer *eng, enum http_api api, const json_t *b, uint64_t seed,
		       struct http_opts *o, struct http_prompt **prompts, int *n_prompts,
		       struct http_err *e)
{
	const json_t *so = field(b, "stream_options");
	int rc;

	*prompts = NULL;
	*n_prompts = 0;
	memset(o, 0, sizeof(*o));
	o->api = api;
	o->max_tokens = -1;
	o->sampling = (struct eng_sampling){ 1.0f, 0, 1.0f, seed };
	o->skip_special = true;
	if (!json_is_object(b))
		return http_err_set(e, 400, NULL, NULL, "the request body must be a JSON object");
	if (get_bool(b, "stream", &o->stream, e))
		return -1;
	if (so && (!o->stream || !json_is_object(so)))
		return http_err_set(e, 400, NULL, "stream_options",
				    "\"stream_options\" must be an object, with \"stream\": true");
	if (so && get_bool(so, "include_usage", &o->include_usage, e))
		return -1;
	if (api != HTTP_API_GENERATE &&
	    (get_sampling(b, eng_model_config(eng->model)->vocab, o, e) ||
	     get_int(b, "min_tokens", 0, 1 << 30, &o->min_tokens, e)))
		return -1;
	rc = api == HTTP_API_CHAT ? parse_chat(eng, b, o, prompts, n_prompts, e)
	   : api == HTTP_API_COMPLETIONS ? parse_completions(eng, b, o, prompts, n_prompts, e)
	   : parse_generate(eng, b, o, prompts, n_prompts, e);
	if (rc == 0)
		rc = check_lengths(eng, o, *prompts, *n_prompts, e);
	if (rc == 0 && o->max_tokens < 0)
		rc = http_err_set(e, 400, NULL, "max_tokens", "\"max_tokens\" is required for a batch");
	if (rc != 0) {
		for (int i = 0; i < *n_prompts; i++)
			free((*prompts)[i].ids);
		free(*prompts);
		*prompts = NULL;
		*n_prompts = 0;
	}
	return rc;
}
