/*
 * test-sse: the SSE parser fed at every split point, and the dialects of
 * the remote executor (request bodies, stream events, whole replies).
 */
#include "engine/remote.h"
#include "engine/sched.h"
#include "engine/sse.h"
#include "tests/tap.h"

#include <string.h>

/* Events as "name|data\n" lines, appended. */
struct seen {
	char buf[8192];
	size_t len;
	int n;
};

static int on_event(void *ctx, const char *event, const char *data, size_t len)
{
	struct seen *s = ctx;
	int k = snprintf(s->buf + s->len, sizeof(s->buf) - s->len, "%s|%.*s\n", event, (int)len, data);

	if (strlen(data) != len)
		return 7; /* a NUL inside: never, for these inputs */
	s->len += (size_t)k;
	s->n++;
	return 0;
}

static const char stream[] =
	": a comment\r\n"
	"data: {\"t\":\"é\"}\n\n"
	"event: note\r\ndata: line one\r\ndata:line two\r\n\r\n"
	"data: 🙂漢\r\r"
	"id: 7\nretry: 10\ndata\n\n"
	"data: [DONE]\n\n";

static const char expect[] =
	"|{\"t\":\"é\"}\n"
	"note|line one\nline two\n"
	"|🙂漢\n"
	"|\n"
	"|[DONE]\n";

static int feed_in(const char *s, size_t n, const size_t *cuts, size_t n_cuts, struct seen *out)
{
	struct eng_sse p;
	size_t at = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	eng_sse_init(&p, 0, on_event, out);
	for (size_t i = 0; i <= n_cuts && rc == 0; i++) {
		size_t end = i < n_cuts ? cuts[i] : n;

		rc = eng_sse_feed(&p, s + at, end - at);
		at = end;
	}
	if (rc == 0)
		rc = eng_sse_end(&p);
	eng_sse_free(&p);
	return rc;
}

static void test_splits(void)
{
	size_t n = strlen(stream);
	struct seen s;
	int bad = 0, rc;

	rc = feed_in(stream, n, NULL, 0, &s);
	tap_ok(rc == 0 && !strcmp(s.buf, expect), "a whole stream gives its events");
	if (strcmp(s.buf, expect))
		tap_diag("got: %s", s.buf);
	for (size_t a = 1; a < n; a++) {
		for (size_t b = a; b < n; b += 7) {
			size_t cuts[2] = { a, b };

			rc = feed_in(stream, n, cuts, 2, &s);
			bad += rc != 0 || strcmp(s.buf, expect) != 0;
		}
	}
	tap_ok(bad == 0, "cut at any two points (mid-line, mid-CRLF, mid-UTF-8): the same events (%d differ)",
	       bad);
	{
		size_t cuts[sizeof(stream)];

		for (size_t i = 0; i + 1 < n; i++)
			cuts[i] = i + 1;
		rc = feed_in(stream, n, cuts, n - 1, &s);
		tap_ok(rc == 0 && !strcmp(s.buf, expect), "fed one byte at a time: the same events");
	}
}

static void test_ends(void)
{
	struct seen s;
	struct eng_sse p;
	char big[300];

	tap_ok(feed_in("data: [DONE]\n", 13, NULL, 0, &s) == 0 && !strcmp(s.buf, "|[DONE]\n"),
	       "an event whose blank line never came is dispatched at the end");
	tap_ok(feed_in("data: a\n\ndata: {\"x\"", 19, NULL, 0, &s) == 1 && s.n == 1,
	       "a line cut short is dropped and reported at the end");
	memset(big, 'x', sizeof(big));
	memset(&s, 0, sizeof(s));
	eng_sse_init(&p, 100, on_event, &s);
	tap_ok(eng_sse_feed(&p, "data: ", 6) == 0 && eng_sse_feed(&p, big, sizeof(big)) == -1,
	       "a line longer than the limit is refused");
	eng_sse_free(&p);
}

static const char *const chat_stream[] = {
	"{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}",
	"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hé\"}}]}",
	"{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hm\"}}]}",
	"{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":null}",
	"{\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,"
	"\"prompt_tokens_details\":{\"cached_tokens\":8}}}",
	"[DONE]",
};

static int ev(enum eng_remote_endpoint ep, struct rm_reply *r, const char *data)
{
	return rm_reply_event(ep, r, data, strlen(data));
}

static void test_events(void)
{
	struct rm_reply r = { 0 };
	int toks = 0, rc;

	rm_reply_reset(&r);
	for (size_t i = 0; i < sizeof(chat_stream) / sizeof(chat_stream[0]); i++)
		toks += ev(ENG_REMOTE_CHAT, &r, chat_stream[i]);
	tap_ok(toks == 2 && r.n_chunks == 2 && r.done && !strcmp(r.text, "Héhm"),
	       "chat: chunks with content (or reasoning) are tokens; the text is kept");
	tap_ok(r.prompt_tokens == 12 && r.completion_tokens == 3 && r.cached_tokens == 8 &&
	       !strcmp(r.finish_reason, "length"), "chat: usage, cached tokens, finish reason");

	rm_reply_reset(&r);
	rc = ev(ENG_REMOTE_CHAT, &r, "{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],"
		"\"timings\":{\"prompt_n\":4,\"cache_n\":96,\"predicted_n\":9}}");
	tap_ok(rc == 0 && r.prompt_tokens == 100 && r.cached_tokens == 96 && r.completion_tokens == 9,
	       "llama.cpp timings: prompt = prompt_n + cache_n, cached = cache_n");

	rm_reply_reset(&r);
	toks = ev(ENG_REMOTE_GENERATE, &r, "{\"text\":\"ab\",\"meta_info\":{\"completion_tokens\":1}}");
	toks += ev(ENG_REMOTE_GENERATE, &r, "{\"text\":\"ab漢\",\"meta_info\":{\"completion_tokens\":2,"
		   "\"prompt_tokens\":5,\"cached_tokens\":2}}");
	tap_ok(toks == 2 && !strcmp(r.text, "ab漢") && r.completion_tokens == 2 && r.cached_tokens == 2,
	       "generate: cumulative text, counts from meta_info");

	rm_reply_reset(&r);
	rc = ev(ENG_REMOTE_COMPLETIONS, &r, "{\"error\":{\"message\":\"overloaded\"}}");
	tap_ok(rc == -1 && strstr(r.error, "overloaded"), "an error object in the stream fails the reply");
	rm_reply_reset(&r);
	rc = ev(ENG_REMOTE_COMPLETIONS, &r, "{\"choices\":[{\"te");
	tap_ok(rc == -1 && strstr(r.error, "not a JSON object"), "an event that is not JSON fails the reply");
	rm_reply_free(&r);
}

/* The body as JSON again (NULL when there is none). */
static json_t *body_of(enum eng_remote_endpoint ep, const char *model,
		       const struct eng_request_params *p, const struct eng_conv *c, int32_t turn,
		       struct eng_tokenizer *tok, struct eng_error *err)
{
	char *text = rm_request_body(ep, model, p, c, turn, tok, err);
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;

	free(text);
	return j;
}

static void test_bodies(void)
{
	int32_t ids[6] = { 5, 6, 7, 8, 9, 10 };
	struct eng_request_params p = { .prompt = ids, .prompt_len = 6, .max_new_tokens = 4,
					.ignore_eos = true, .sampling = { .top_p = 1.0f } };
	json_t *msgs = json_loads("{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
				  "{\"role\":\"user\",\"content\":\"u\"},"
				  "{\"role\":\"assistant\",\"content\":\"a\",\"env_exec_time\":1},"
				  "{\"role\":\"user\",\"content\":\"v\"},{\"role\":\"assistant\",\"content\":\"b\"}]}",
				  0, NULL);
	struct eng_conv c = { .record = msgs };
	struct eng_error err;
	json_t *b;
	char *s;

	b = body_of(ENG_REMOTE_CHAT, "m", &p, &c, 1, NULL, &err);
	s = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
	tap_ok(s && !strcmp(s, "{\"ignore_eos\":true,\"max_tokens\":4,\"messages\":[{\"content\":\"s\",\"role\":"
		    "\"system\"},{\"content\":\"u\",\"role\":\"user\"},{\"content\":\"a\",\"role\":\"assistant\"},"
		    "{\"content\":\"v\",\"role\":\"user\"}],\"min_tokens\":4,\"model\":\"m\",\"stream\":true,"
		    "\"stream_options\":{\"include_usage\":true},\"temperature\":0.0}"),
	       "chat, turn 1: the messages before the second assistant message, exactly 4 tokens asked");
	free(s);
	json_decref(b);

	b = body_of(ENG_REMOTE_COMPLETIONS, "m", &p, &c, 0, NULL, &err);
	s = json_dumps(json_object_get(b, "prompt"), JSON_COMPACT);
	tap_ok(s && !strcmp(s, "[5,6,7,8,9,10]") && json_is_true(json_object_get(b, "stream")),
	       "completions: the prompt is our token ids, streamed");
	free(s);
	json_decref(b);

	b = body_of(ENG_REMOTE_GENERATE, "m", &p, &c, 0, NULL, &err);
	s = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
	tap_ok(s && !strcmp(s, "{\"input_ids\":[5,6,7,8,9,10],\"sampling_params\":{\"ignore_eos\":true,"
		    "\"max_new_tokens\":4,\"min_new_tokens\":4,\"temperature\":0.0},\"stream\":true}"),
	       "generate: input_ids and SGLang's sampling_params");
	free(s);
	json_decref(b);

	p.score = true;
	b = body_of(ENG_REMOTE_COMPLETIONS, "m", &p, &c, 0, NULL, &err);
	tap_ok(json_is_true(json_object_get(b, "echo")) && !json_object_get(b, "stream"),
	       "score over completions: echo with log-probs, not streamed");
	json_decref(b);
	eng_error_clear(&err);
	b = body_of(ENG_REMOTE_CHAT, "m", &p, &c, 0, NULL, &err);
	tap_ok(!b && err.code == ENG_E_UNSUPPORTED, "score over chat is refused: no prompt log-probs");
	json_decref(msgs);
}

static void test_whole(void)
{
	static const char openai[] = "{\"choices\":[{\"text\":\"x\",\"logprobs\":{\"token_logprobs\":"
				     "[null,-1.5,-0.25,-2,-0.5]}}],\"usage\":{\"prompt_tokens\":4}}";
	static const char sglang[] = "{\"text\":\"\",\"meta_info\":{\"input_token_logprobs\":"
				     "[[null,1,null],[-1.5,2,null],[-0.25,3,null],[-2,4,null]]}}";
	static const char rl[] = "{\"error\":{\"message\":\"rate limit\"}}";
	struct rm_reply r = { 0 };
	char msg[128];

	rm_reply_reset(&r);
	tap_ok(rm_reply_whole(ENG_REMOTE_COMPLETIONS, &r, openai, strlen(openai), true, 4) == 0 &&
	       r.n_logprobs == 3 && r.logprobs[0] == -1.5f && r.logprobs[2] == -2.0f,
	       "score: OpenAI's echoed token_logprobs, the first (no context) left out");
	rm_reply_reset(&r);
	tap_ok(rm_reply_whole(ENG_REMOTE_GENERATE, &r, sglang, strlen(sglang), true, 4) == 0 &&
	       r.n_logprobs == 3 && r.logprobs[1] == -0.25f, "score: SGLang's input_token_logprobs");
	rm_reply_reset(&r);
	tap_ok(rm_reply_whole(ENG_REMOTE_GENERATE, &r, sglang, strlen(sglang), true, 9) == -1 &&
	       strstr(r.error, "log-probs"), "score: too few log-probs is an error that says so");
	rm_reply_free(&r);
	rm_error_message(rl, strlen(rl), msg, sizeof(msg));
	tap_ok(!strcmp(msg, "rate limit"), "error bodies: OpenAI's message");
	rm_error_message("<html>Bad Gateway</html>\nmore", 29, msg, sizeof(msg));
	tap_ok(!strcmp(msg, "<html>Bad Gateway</html>"), "error bodies: the first line of anything else");
}

int main(void)
{
	test_splits();
	test_ends();
	test_events();
	test_bodies();
	test_whole();
	return tap_done();
}
