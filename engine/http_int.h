/*
 * http_int.h: the HTTP front's insides, shared by its files:
 *   http.c         the libmicrohttpd daemon, routing, bodies, limits, auth,
 *                  suspend/resume and disconnects: the front's ops
 *   http_parse.c   request bodies (OpenAI chat and completions, SGLang's
 *                  /generate) into one struct http_opts and token prompts
 *   http_gen.c     a prompt's generation: its runner sessions, the tokens
 *                  turned into text, stop strings, what streams when
 *   http_reply.c   the JSON of replies, stream chunks, log-probs, errors
 *                  and the info endpoints
 *   http_metrics.c Prometheus counters and histograms, the request log
 * Nothing outside these files includes this header.
 */
#ifndef TRAJBENCH_ENG_HTTP_INT_H
#define TRAJBENCH_ENG_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "engine/front.h"
#include "engine/infer.h"
#include "engine/tokenizer.h"

#define HTTP_MAX_STOPS 16         /* stop strings or stop token ids per request */
#define HTTP_MAX_STOP_LEN 1024    /* bytes of one stop string */

enum http_api { HTTP_API_CHAT, HTTP_API_COMPLETIONS, HTTP_API_GENERATE };

/* An error reply: OpenAI's {"error":{"message","type","param","code"}}. */
struct http_err {
	unsigned status;
	const char *type;         /* "invalid_request_error", ... */
	const char *code;         /* "context_length_exceeded", ... or NULL */
	char param[64];           /* the field at fault, or "" */
	char msg[1024];
};

/* Fills e and returns -1.  The type follows the status; code may be NULL. */
int http_err_set(struct http_err *e, unsigned status, const char *code, const char *param,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* What a generation request asks, whatever its endpoint.  Strings are
 * borrowed from the request's parsed body. */
struct http_opts {
	enum http_api api;
	bool stream, include_usage;
	int32_t max_tokens;           /* -1: up to the context (filled in by then) */
	struct eng_sampling sampling;
	bool ignore_eos;
	int32_t min_tokens;
	const char *stop[HTTP_MAX_STOPS];
	size_t stop_len[HTTP_MAX_STOPS];
	int n_stop;
	int32_t stop_ids[HTTP_MAX_STOPS];
	int32_t n_stop_ids;
	bool logprobs;                /* each generated token's log-prob */
	int32_t top_logprobs;         /* and this many alternatives */
	bool echo;                    /* completions: the prompt starts the text */
	bool prompt_logprobs;         /* the prompt's log-probs (a scoring pass first) */
	int32_t logprob_start;        /* generate: first prompt position reported */
	bool skip_special;            /* special tokens leave no text (default) */
	bool batched;                 /* the prompt was a list (replies are lists) */
};

struct http_prompt {
	int32_t *ids;                 /* (n) owned */
	int32_t n;
};

/* Parses a body into o and prompts (malloc'ed array of n owned ids);
 * seed is the sampling seed when the body gives none.  0, or -1 with err
 * filled (400 or 422). */
int http_parse_request(struct eng_infer *e, enum http_api api, const json_t *body, uint64_t seed,
		       struct http_opts *o, struct http_prompt **prompts, int *n_prompts,
		       struct http_err *err);

/* ---------------------------------------------------------------- requests */

struct http_front;
struct http_req;

/* One prompt's generation: a scoring pass over the prompt when its
 * log-probs are asked for, then the reply. */
struct http_gen {
	struct http_req *req;
	int index;                    /* in the request's batch */
	int32_t *prompt;              /* (n_prompt) owned */
	int32_t n_prompt;
	struct eng_session *sess;     /* the pass in flight, until it is freed */
	bool scoring;                 /* that pass is the scoring one */
	struct eng_conv conv;         /* the pass's one-turn conversation */
	struct eng_turn turn;
	bool conv_taken;
	float *prompt_lps;            /* (n_prompt - 1) once scored, or NULL */
	/* the reply */
	struct eng_ids out;           /* tokens generated */
	struct eng_token_logprobs *lps; /* (cap_lps) per token, with logprobs */
	size_t cap_lps;
	size_t *ends;                 /* (cap_ends) text length after each token */
	size_t cap_ends;
	struct eng_tok_stream ts;
	char *text;                   /* the reply's text, cut at a stop string */
	size_t len, cap;
	size_t sent;                  /* bytes of it streamed */
	int32_t tokens_sent;          /* tokens whose log-probs were streamed */
	bool stopped;                 /* a stop string ended it */
	int stop_index;               /* which one */
	/* the end */
	bool done;                    /* the reply's pass finished (or failed) */
	enum eng_finish finish;
	char *error;                  /* an engine error, or NULL */
	double t_submit, t_first;     /* monotonic; t_first 0 until a token came */
	double t_end;                 /* monotonic, once done */
	double ttft, latency, queue_time; /* the engine's (the runner's timing record) */
	int32_t cached_tokens;
	double *itl;                  /* (n_itl) from the runner, for the log */
	int32_t n_itl;
};

enum http_route {
	HTTP_R_CHAT, HTTP_R_COMPLETIONS, HTTP_R_GENERATE,
	HTTP_R_HEALTH, HTTP_R_MODELS, HTTP_R_MODEL_INFO, HTTP_R_SERVER_INFO, HTTP_R_METRICS,
	HTTP_R_FLUSH_CACHE, HTTP_R_NONE,
};

/* One HTTP request that generates. */
struct http_req {
	struct http_front *fr;
	struct MHD_Connection *conn;  /* NULL once MHD is done with it */
	enum http_route route;
	char *body;                   /* (len) the request body */
	size_t len, cap;
	bool body_too_big;
	struct http_err early;        /* an error found before the body was read */
	const char *early_allow;      /* its Allow header (405) */
	bool has_early;
	json_t *json;                 /* the parsed body; opts borrow from it */
	struct http_opts o;
	struct http_gen *gens;        /* (n_gens) */
	int n_gens;
	char id[48];
	long long created;            /* unix seconds */
	double t_arrival;             /* monotonic */
	/* streaming: bytes not yet taken by MHD */
	char *out;
	size_t out_len, out_off, out_cap;
	bool started;                 /* the generations were started */
	bool streaming;               /* a stream response was queued */
	bool suspended;               /* MHD does not watch the connection */
	bool gone;                    /* the client went away: nothing more to send */
	bool finished;                /* every generation ended and was answered */
	bool stream_end;              /* the last bytes of the stream are in out */
	int poll_at;                  /* where watch put its descriptor, or -1 */
	struct http_req *next;
};

/* Appends bytes to a stream, waking its connection. */
void http_req_write(struct http_req *q, const char *s, size_t n);
/* Appends "data: <json>\n\n" (and frees j). */
void http_req_write_event(struct http_req *q, json_t *j);

/* Starts the request's generations (their first pass).  0 or -1 with e
 * filled (503 when the queue is full, 500). */
int http_gens_start(struct http_req *q, struct http_prompt *prompts, int n,
		    struct http_err *e);
/* Moves finished passes on: frees done sessions, starts the reply pass
 * after a scoring one.  True when every generation is done. */
bool http_gens_settle(struct http_req *q);
/* Cancels every generation in flight (the client went away, or the
 * server stops). */
void http_gens_cancel(struct http_req *q);
/* True while a session of the request is still in the runner. */
bool http_gens_busy(const struct http_req *q);
void http_gens_free(struct http_req *q);

/* ---------------------------------------------------------------- replies */

/* The reply of a finished, non-streamed request. */
json_t *http_reply_body(const struct http_req *q);
/* Stream events: the opening ones (chat's role, an echoed prompt), a text
 * delta of generation g up to its sent mark, its end, and the closing
 * ones (usage, [DONE]). */
void http_stream_open(struct http_req *q);
/* completions with echo: the prompt's text (and log-probs, once scored) */
void http_stream_echo(struct http_req *q, struct http_gen *g);
void http_stream_delta(struct http_req *q, struct http_gen *g, size_t upto, int32_t tokens_upto);
void http_stream_finish(struct http_req *q, struct http_gen *g);
void http_stream_close(struct http_req *q);
/* {"error":{...}} */
json_t *http_error_json(const struct http_err *e);
/* The bodies of GET /v1/models, /get_model_info, /get_server_info. */
json_t *http_models_json(const struct http_front *fr);
json_t *http_model_info_json(const struct http_front *fr);
json_t *http_server_info_json(const struct http_front *fr);

/* ---------------------------------------------------------------- the front */

struct http_metrics;

struct http_front {
	struct eng_serve_params p;
	struct eng_infer *e;          /* NULL while the model loads */
	struct MHD_Daemon *d;
	int lfd;                      /* the listening socket, until drained */
	int port;
	const char *model_name;
	struct http_req *reqs;        /* generating requests, and those whose
				       * connection MHD still holds */
	int n_new;                    /* requests started since the last step */
	bool draining, cancelled;
	double cancel_t;              /* when cancelled (monotonic) */
	bool resumed;                 /* a connection was resumed since MHD last ran */
	double t0;                    /* monotonic start */
	long long t0_unix;
	unsigned long long next_id;
	int epoll_at;                 /* where watch put MHD's descriptor */
	struct http_metrics *metrics;
};

/* The engine's model name as replies give it. */
const char *http_model_name(const struct http_front *fr);

/* ---------------------------------------------------------------- metrics */

int http_metrics_new(struct http_metrics **out);
void http_metrics_free(struct http_metrics *m);
/* An HTTP answer (any route, any status). */
void http_metrics_answer(struct http_metrics *m, enum http_route r, unsigned status);
/* A generation that ended: counters, histograms, and the request log line. */
void http_metrics_gen_done(struct http_front *fr, const struct http_req *q,
			   const struct http_gen *g);
/* The Prometheus text exposition, malloc'ed. */
char *http_metrics_text(const struct http_front *fr, size_t *len);
const char *http_route_path(enum http_route r);

#endif
