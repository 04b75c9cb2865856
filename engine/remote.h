/*
 * remote.h: the runner's executor for an OpenAI-compatible server
 * (remote.c), and the dialects of its requests and replies (remote_proto.c).
 *
 * One libcurl multi handle drives every request of the run from the
 * runner's own thread: a turn becomes one streamed POST (Server-Sent
 * Events), each chunk that carries reply text is a token for the runner's
 * clock, and the reply's usage (prompt, completion and cached tokens) fills
 * the result.  Failures (no connection, an HTTP error, a stream cut short,
 * a timeout) finish the request with ENG_FINISH_ERROR and a message; they
 * are retried only when max_retries allows.
 */
#ifndef TRAJBENCH_ENG_REMOTE_H
#define TRAJBENCH_ENG_REMOTE_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "engine/engine.h"
#include "engine/runner.h"

/* What a server said about one request, beside the tokens: handed to the
 * runner with the result (eng_request_result.remote), valid during the
 * on_finish call. */
struct eng_remote_usage {
	int32_t server_prompt_tokens;  /* the server's prompt count; -1: not reported */
	int32_t cached_tokens;         /* prompt tokens it had cached; -1: not reported */
	bool from_stream;              /* no usage: output tokens counted from the stream */
	int32_t retries;               /* attempts after the first */
	int32_t http_status;           /* of the last attempt; 0: no response */
	const char *text;              /* (text_len) the reply as streamed */
	size_t text_len;
};

struct eng_remote;

/* The executor.  tok (for the text of token-only prompts) and cb must
 * outlive it.  Asks GET /v1/models when p->served_model is NULL. */
int eng_remote_create(const struct eng_remote_params *p, struct eng_tokenizer *tok,
		      const struct eng_sched_callbacks *cb, struct eng_remote **out,
		      struct eng_error *err);

/* Its operations for eng_runner_create_exec; free is eng_remote_free. */
extern const struct eng_executor_ops eng_remote_ops;

void eng_remote_free(struct eng_remote *x);

/* The served model's name, and the server's base URL (no /v1). */
const char *eng_remote_model(const struct eng_remote *x);
const char *eng_remote_url(const struct eng_remote *x);

/* The settings of the run record: url, endpoint, served model, timeout,
 * retries, and how the prefix cache was reset (new ref). */
json_t *eng_remote_settings(const struct eng_remote *x);

/* ---------------------------------------------------------------- dialects */

/* What a reply has said so far. */
struct rm_reply {
	int32_t n_chunks;              /* events that carried reply text */
	int64_t prompt_tokens;         /* usage (or llama.cpp timings); -1: none */
	int64_t completion_tokens;
	int64_t cached_tokens;
	bool done;                     /* "data: [DONE]" seen */
	char finish_reason[16];
	char *text;                    /* (text_len, text_cap) reply text */
	size_t text_len, text_cap;
	float *logprobs;               /* score: (n_logprobs) */
	int32_t n_logprobs;
	char error[512];               /* why the reply is bad; "" when it is not */
};

void rm_reply_reset(struct rm_reply *r);
void rm_reply_free(struct rm_reply *r);

/* The request body for one turn, compact JSON text (malloc'ed), or NULL
 * with err filled.  Chat
 * sends the conversation's messages before the turn's assistant message
 * (c->record's messages, with its tools and chat_template_kwargs), or the
 * prompt's text as one user message when there is no record; the other
 * endpoints send the prompt's token ids.  A score request (p->score) asks
 * for the prompt's log-probs, not streamed. */
char *rm_request_body(enum eng_remote_endpoint ep, const char *model,
		      const struct eng_request_params *p, const struct eng_conv *c, int32_t turn,
		      struct eng_tokenizer *tok, struct eng_error *err);

/* The path of the endpoint under the server's base URL. */
const char *rm_endpoint_path(enum eng_remote_endpoint ep);
const char *rm_endpoint_name(enum eng_remote_endpoint ep);

/* One streamed event's data.  Returns 1 when it carried reply text (one
 * token for the clock), 0 when not, -1 when it was an error or not JSON
 * (r->error says which). */
int rm_reply_event(enum eng_remote_endpoint ep, struct rm_reply *r, const char *data, size_t len);

/* A whole reply that was not streamed: a completion, or a score request's
 * log-probs (prompt_len - 1 of them expected).  0, or -1 with r->error. */
int rm_reply_whole(enum eng_remote_endpoint ep, struct rm_reply *r, const char *body, size_t len,
		   bool score, int32_t prompt_len);

/* The message of an error reply body ({"error":{"message":...}}, or
 * {"message":...}, or the body's start), into buf. */
void rm_error_message(const char *body, size_t len, char *buf, size_t n);

#endif
