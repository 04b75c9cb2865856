/*
 * test-chat.c: chat templates rendered to ids; the rules the golden corpus
 * (test-chat-golden) does not pin down by itself.
 *
 * 1. Every prompt in tests/data/tokenizer/chat-ref.jsonl (rendered by the
 *    models' own Jinja templates and tokenized by HF tokenizers, see
 *    tests/tokenizer/gen-chat-ref.py) comes out as the same ids, with the
 *    template recognized from the tokenizer directory.  The qwen3 records
 *    need the shared Qwen tokenizer and are skipped without it.
 * 2. The reproducer: a reply that begins with newlines is encoded
 *    with "assistant\n" before it in the next prompt, as one text run.
 * 3. Replies: what the model generated (reasoning_content as a <think>
 *    block, tool calls as <tool_call> blocks); eng_chat_turns agrees with a
 *    conversation's prompts and replies.
 * 4. Recognition: the default system message and the tool rules read from a
 *    template; names; transformers' tojson (Python's json.dumps).
 * 5. Bad input and missing markers fail cleanly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <utf8proc.h>

#include "engine/chat.h"
#include "engine/chat_int.h"
#include "tests/tap.h"
#include "tests/test-ids.h"

static char *path_join(const char *a, const char *b)
{
	char *p = malloc(strlen(a) + strlen(b) + 2);

	sprintf(p, "%s/%s", a, b);
	return p;
}

struct model {
	const char *name;
	char *dir;
	struct eng_tokenizer *tok;
	struct eng_chat *chat;
};

static int open_model(struct model *m)
{
	struct eng_error err;
	struct eng_chat_spec spec;
	char buf[1600];

	if (eng_tokenizer_load(m->dir, &m->tok, &err) ||
	    eng_chat_spec_from_dir(m->dir, m->tok, &spec, &err) ||
	    eng_chat_new(m->tok, &spec, &m->chat, &err)) {
		tap_diag("%s: %s", m->name, eng_error_format(&err, buf, sizeof(buf)));
		return -1;
	}
	tap_diag("%s: template %s", m->name, eng_chat_kind_name(spec.kind));
	return 0;
}

/* Decoded ids give the text after normalization (NFC for these models). */
static int same_text(const char *decoded, const char *want)
{
	char *nfc = (char *)utf8proc_NFC((const utf8proc_uint8_t *)want);
	int same = decoded && nfc && (strcmp(decoded, want) == 0 || strcmp(decoded, nfc) == 0);

	free(nfc);
	return same;
}

/* A conversation from JSON text; NULL (and a failed check) when bad. */
static json_t *conv_json(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);

	if (!j)
		tap_diag("bad test JSON: %s", jerr.text);
	return j;
}

/* Turn k's prompt of rec's messages with chat. */
static int turn_prompt(struct eng_chat *chat, json_t *rec, size_t k, struct eng_ids *out,
		       struct eng_error *err)
{
	struct eng_chat_input in;
	struct eng_chat_conv *cv = NULL;
	const int32_t *ids;
	size_t n;
	int rc = eng_chat_input_from_json(rec, &in, err);

	if (rc == 0 && (rc = eng_chat_conv_new(chat, &in, &cv, err)) == 0 &&
	    (rc = eng_chat_conv_prompt(cv, k, &ids, &n, err)) == 0)
		rc = eng_ids_append(out, ids, n);
	eng_chat_conv_free(cv);
	eng_chat_input_free(&in);
	return rc;
}

static void check_reference(const char *ref, struct model *models, int n_models)
{
	FILE *f = fopen(ref, "r");
	char *line = NULL;
	size_t cap = 0;

	if (!tap_ok(f != NULL, "open %s", ref))
		return;
	while (getline(&line, &cap, f) > 0) {
		json_t *r = json_loads(line, 0, NULL);
		const char *name = json_string_value(json_object_get(r, "tokenizer"));
		struct model *m = NULL;
		struct eng_ids ids = { 0 };
		size_t tlen;
		char *text = NULL;
		size_t k = (size_t)json_integer_value(json_object_get(r, "turn"));

		for (int i = 0; i < n_models; i++)
			if (strcmp(models[i].name, name) == 0)
				m = &models[i];
		if (m && m->chat) {
			turn_prompt(m->chat, r, k, &ids, NULL);
			eng_tokenizer_decode(m->tok, ids.ids, ids.n, 0, &text, &tlen, NULL);
			tap_ok(test_ids_equal(&ids, json_object_get(r, "ids")) &&
			       same_text(text, json_string_value(json_object_get(r, "text"))),
			       "%s conversation %lld turn %zu: %zu ids as HF's template + tokenizer",
			       name, (long long)json_integer_value(json_object_get(r, "conversation")),
			       k, ids.n);
		}
		free(text);
		eng_ids_free(&ids);
		json_decref(r);
	}
	free(line);
	fclose(f);
}

/* The text of ids, or "" (static buffer reused). */
static const char *decoded(struct eng_tokenizer *tok, const struct eng_ids *ids)
{
	static char buf[4096];
	char *text = NULL;
	size_t len = 0;

	buf[0] = '\0';
	if (eng_tokenizer_decode(tok, ids->ids, ids->n, 0, &text, &len, NULL) == 0)
		snprintf(buf, sizeof(buf), "%s", text);
	free(text);
	return buf;
}

static const char repro[] =
	"{\"messages\":[{\"role\":\"system\",\"content\":\"You are helpful.\"},"
	"{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"\\n\\nsecond\"},"
	"{\"role\":\"user\",\"content\":\"next\"},{\"role\":\"assistant\",\"content\":\"ok\"}]}";

/* The reproducer with the tiny ChatML tokenizer: the second prompt
 * is the one-string encoding of its text, which merges "\n" + "\n\n". */
static void check_repro(struct model *tiny)
{
	json_t *rec = conv_json(repro);
	struct eng_chat_spec spec;
	struct eng_chat *chat = NULL;
	struct eng_ids got = { 0 }, want = { 0 };
	static const char text[] =
		"<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
		"<|im_start|>assistant\n\n\nsecond<|im_end|>\n<|im_start|>user\nnext<|im_end|>\n"
		"<|im_start|>assistant\n";

	eng_chat_spec_from_name("chatml", &spec, NULL);
	eng_chat_new(tiny->tok, &spec, &chat, NULL);
	turn_prompt(chat, rec, 1, &got, NULL);
	eng_tokenizer_encode(tiny->tok, text, sizeof(text) - 1, &want, 0, NULL);
	tap_ok(chat && got.n == want.n && got.n > 0 &&
	       memcmp(got.ids, want.ids, got.n * sizeof(int32_t)) == 0,
	       "reply beginning with newlines: %zu ids, the whole text encoded at once gives %zu",
	       got.n, want.n);
	eng_ids_free(&got);
	eng_ids_free(&want);
	eng_chat_free(chat);
	json_decref(rec);
}

static const char with_tools[] =
	"{\"messages\":[{\"role\":\"user\",\"content\":\"go\"},"
	"{\"role\":\"assistant\",\"content\":\"done\",\"reasoning_content\":\"\\nwhy\\n\"},"
	"{\"role\":\"user\",\"content\":\"more\"},"
	"{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"type\":\"function\","
	"\"function\":{\"name\":\"f\",\"arguments\":{\"x\":1}}},{\"function\":{\"name\":\"g\","
	"\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"content\":\"r\"},"
	"{\"role\":\"assistant\",\"content\":\"<think>kept</think>as is\"}]}";

/* Replies and turn lengths. */
static void check_replies(struct model *tiny)
{
	static const struct { const char *kind; size_t turn; const char *text; } cases[] = {
		{ "qwen3", 0, "<think>\nwhy\n</think>\n\ndone<|im_end|>" },
		{ "qwen3", 1, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>\n"
			      "<tool_call>\n{\"name\": \"g\", \"arguments\": {}}\n</tool_call><|im_end|>" },
		{ "qwen3", 2, "<think>kept</think>as is<|im_end|>" },
		{ "chatml", 0, "done<|im_end|>" },
		{ "chatml", 1, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>\n"
			       "<tool_call>\n{\"name\": \"g\", \"arguments\": \"{}\"}\n</tool_call><|im_end|>" },
	};
	json_t *rec = conv_json(with_tools);
	struct eng_chat_input in;

	if (eng_chat_input_from_json(rec, &in, NULL) != 0) {
		tap_ok(0, "conversation with tools reads");
		return;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct eng_chat_spec spec;
		struct eng_chat *chat = NULL;
		struct eng_chat_conv *cv = NULL;
		struct eng_ids r = { 0 };

		eng_chat_spec_from_name(cases[i].kind, &spec, NULL);
		eng_chat_new(tiny->tok, &spec, &chat, NULL);
		eng_chat_conv_new(chat, &in, &cv, NULL);
		eng_chat_conv_reply(cv, cases[i].turn, &r, NULL);
		tap_ok(!strcmp(decoded(tiny->tok, &r), cases[i].text), "%s reply %zu: %s",
		       cases[i].kind, cases[i].turn, decoded(tiny->tok, &r));
		eng_ids_free(&r);
		eng_chat_conv_free(cv);
		eng_chat_free(chat);
	}
	eng_chat_input_free(&in);
	json_decref(rec);
}

/* eng_chat_turns gives the lengths of a conversation's prompts and replies. */
static void check_turns(struct model *m, const char *conv)
{
	json_t *rec = conv_json(conv);
	struct eng_chat_input in;
	struct eng_chat_turn *t = NULL;
	struct eng_chat_conv *cv = NULL;
	size_t nt = 0;
	int ok = eng_chat_input_from_json(rec, &in, NULL) == 0 &&
		 eng_chat_turns(m->chat, &in, &t, &nt, NULL) == 0 &&
		 eng_chat_conv_new(m->chat, &in, &cv, NULL) == 0 && nt > 0;

	for (size_t k = nt; ok && k-- > 0;) { /* backwards: no block reuse */
		struct eng_ids r = { 0 };
		const int32_t *ids;
		size_t n = 0;

		ok = eng_chat_conv_prompt(cv, k, &ids, &n, NULL) == 0 &&
		     eng_chat_conv_reply(cv, k, &r, NULL) == 0 && n == t[k].prompt_len &&
		     r.n == t[k].reply_len && t[k].msg_index == eng_chat_conv_msg_index(cv, k);
		eng_ids_free(&r);
	}
	tap_ok(ok, "%s: eng_chat_turns gives the lengths of every prompt and reply", m->name);
	free(t);
	eng_chat_conv_free(cv);
	eng_chat_input_free(&in);
	json_decref(rec);
}

static void check_tojson(void)
{
	json_t *v = json_loads("[1e16, 1e15, 0.0001, 1e-05, 123456789.123, -0.0, 1.5e300, 5e-324,"
			       " 0.30000000000000004, 100.0, 1e22, -2.5e-8, 7,"
			       " {\"a\\u00e9\\\"\\\\\\n\\u0001\": null, \"b\": [true, false, {}], \"c\": []}]",
			       0, NULL);
	static const char want[] =
		"[1e+16, 1000000000000000.0, 0.0001, 1e-05, 123456789.123, -0.0, 1.5e+300, 5e-324, "
		"0.30000000000000004, 100.0, 1e+22, -2.5e-08, 7, "
		"{\"a\xc3\xa9\\\"\\\\\\n\\u0001\": null, \"b\": [true, false, {}], \"c\": []}]";
	struct eng_chat_text t = { 0 };

	eng_chat_tojson(v, &t);
	tap_ok(t.p && !strcmp(t.p, want), "tojson writes as Python's json.dumps: %s", t.p);
	eng_chat_text_free(&t);
	json_decref(v);
}

static void check_specs(void)
{
	struct eng_chat_spec s;
	struct eng_error err;

	tap_ok(eng_chat_spec_from_name("chatml", &s, NULL) == 0 && s.kind == ENG_CHAT_CHATML &&
	       s.tool_blocks && s.has_default_system &&
	       !strcmp(s.default_system, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
	       "chatml by name: Qwen2.5's rules and default system message");
	tap_ok(eng_chat_spec_from_name("qwen3", &s, NULL) == 0 && s.kind == ENG_CHAT_QWEN3 &&
	       eng_chat_spec_from_name("llama3", &s, NULL) == 0 && s.kind == ENG_CHAT_LLAMA3,
	       "qwen3 and llama3 by name");
	tap_ok(eng_chat_spec_from_name("vicuna", &s, &err) == ENG_E_INVALID, "unknown name: %s", err.msg);
	tap_ok(eng_chat_spec_detect("{{ messages }}", &s, &err) == ENG_E_UNSUPPORTED,
	       "unrecognized template: %s", err.msg);
	/* Qwen2-Instruct's template: a default system message, no tool rules. */
	tap_ok(eng_chat_spec_detect("{% for message in messages %}{% if loop.first and "
				    "messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\n"
				    "You are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
				    "{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
				    " + '<|im_end|>' + '\\n'}}{% endfor %}", &s, NULL) == 0 &&
	       s.kind == ENG_CHAT_CHATML && !s.tool_blocks && s.has_default_system &&
	       !strcmp(s.default_system, "You are a helpful assistant."),
	       "Qwen2's template: default system message read from the template");
	tap_ok(eng_chat_spec_detect("{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
				    " + '<|im_end|>' + '\\n'}}", &s, NULL) == 0 &&
	       s.kind == ENG_CHAT_CHATML && !s.tool_blocks && !s.has_default_system,
	       "plain ChatML: no default system message, no tool rules");
}

static void check_bad_input(struct model *tiny)
{
	static const struct { const char *json, *msg; } bad[] = {
		{ "{\"messages\":[{\"role\":\"user\"}]}", "messages[0]: needs \"role\" and \"content\" strings" },
		{ "{\"messages\":[{\"role\":\"assistant\",\"content\":\"x\",\"reasoning_content\":3}]}",
		  "messages[0]: \"reasoning_content\" must be a string" },
		{ "{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"function\":{}}]}]}",
		  "messages[0].tool_calls[0]: needs a function \"name\" string and \"arguments\"" },
		{ "{\"messages\":[],\"tools\":{}}", "\"tools\" must be an array" },
		{ "{\"messages\":{}}", "no \"messages\" array" },
	};
	struct eng_chat *c = NULL;
	struct eng_chat_spec spec;
	struct eng_error err;
	struct eng_ids ids = { 0 };
	json_t *rec;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct eng_chat_input in;

		rec = conv_json(bad[i].json);
		eng_error_clear(&err);
		tap_ok(eng_chat_input_from_json(rec, &in, &err) == ENG_E_FORMAT &&
		       !strcmp(err.msg, bad[i].msg), "bad input refused: %s", err.msg);
		json_decref(rec);
	}
	rec = conv_json("{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
			"[{\"function\":{\"name\":\"f\",\"arguments\":{}}}]}]}");
	{
		struct eng_chat_input in;

		tap_ok(eng_chat_input_from_json(rec, &in, &err) == 0 && in.msgs[0].content == NULL,
		       "a null content with tool calls is accepted");
		eng_chat_input_free(&in);
	}
	json_decref(rec);
	eng_chat_spec_from_name("llama3", &spec, NULL);
	tap_ok(eng_chat_new(tiny->tok, &spec, &c, &err) == ENG_E_UNSUPPORTED && !c,
	       "llama3 on a ChatML vocabulary: %s", err.msg);
	rec = conv_json("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
	tap_ok(turn_prompt(tiny->chat, rec, 0, &ids, &err) == ENG_E_RANGE,
	       "turn without an assistant message: ENG_E_RANGE");
	json_decref(rec);
	eng_ids_free(&ids);
}

int main(void)
{
	const char *top = getenv("top_srcdir");
	char *data, *ref;
	struct model models[3] = { { "tiny", NULL, NULL, NULL }, { "llama3", NULL, NULL, NULL },
				   { "qwen3", NULL, NULL, NULL } };
	FILE *probe;

	if (!top)
		top = ".";
	data = path_join(top, "tests/data/tokenizer");
	ref = path_join(data, "chat-ref.jsonl");
	models[0].dir = path_join(top, "samples/tokenizer");
	models[1].dir = path_join(data, "llama3");
	models[2].dir = path_join(top, "../shared/data/qwen2-tokenizer");
	for (int i = 0; i < 3; i++) {
		char *tj = path_join(models[i].dir, "tokenizer.json");

		if (i == 2 && !(probe = fopen(tj, "r")))
			tap_diag("skipping qwen3: %s is absent", tj);
		else {
			if (i == 2)
				fclose(probe);
			tap_ok(open_model(&models[i]) == 0, "%s: tokenizer and template", models[i].name);
		}
		free(tj);
	}
	check_reference(ref, models, 3);
	check_specs();
	check_tojson();
	if (models[0].chat) {
		check_repro(&models[0]);
		check_replies(&models[0]);
		check_bad_input(&models[0]);
	}
	for (int i = 0; i < 3; i++)
		if (models[i].chat)
			check_turns(&models[i], with_tools);
	for (int i = 0; i < 3; i++) {
		eng_chat_free(models[i].chat);
		eng_tokenizer_free(models[i].tok);
		free(models[i].dir);
	}
	free(data);
	free(ref);
	return tap_done();
}
