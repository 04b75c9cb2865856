/*
 * test-chat-golden.c: every turn's prompt of the golden corpus, as the real
 * templates render it and Hugging Face encodes it.
 *
 * tests/data/chat-golden/ holds a corpus of conversations (whitespace at
 * the ends of contents, empty ones, CRLF, non-NFC text, emoji, CJK,
 * special-token text, code, digits, <think> blocks of every shape, tool
 * messages, tool_calls, tools lists, reasoning_content, enable_thinking),
 * the prompts the real Jinja templates render for every turn (texts.jsonl)
 * and the ids Hugging Face's tokenizer gives them (prompts.jsonl), both
 * made by tests/golden/gen-chat-golden.py and encode-chat-golden.mjs.
 *
 * 1. Text: the built-in chatml, qwen3 and llama3 templates, chosen by name
 *    and recognized from the real template files, render every prompt
 *    byte for byte (no tokenizer needed).
 * 2. Ids: with the tiny ChatML tokenizer and the Llama 3 test tokenizer
 *    (in the tree) and the Qwen tokenizer (shared data; skipped without
 *    it), every turn's prompt from a conversation (eng_chat_conv, which
 *    reuses the previous turn's blocks) and from a one-shot rendering
 *    equals the reference ids.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/chat.h"
#include "tests/tap.h"
#include "tests/test-ids.h"

#define MAX_CONV 64

static json_t *convs[MAX_CONV];
static struct eng_chat_input inputs[MAX_CONV];
static int n_convs;

static char *path_of(const char *top, const char *rel)
{
	char *p = malloc(strlen(top) + strlen(rel) + 2);

	sprintf(p, "%s/%s", top, rel);
	return p;
}

/* Calls fn on every line of path as JSON; false when it cannot be read. */
static int each_line(const char *path, void (*fn)(json_t *rec, void *ctx), void *ctx)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;

	if (!f)
		return 0;
	while (getline(&line, &cap, f) > 0) {
		json_t *r = json_loads(line, 0, NULL);

		if (r)
			fn(r, ctx);
		json_decref(r);
	}
	free(line);
	fclose(f);
	return 1;
}

static void load_conv(json_t *rec, void *ctx)
{
	struct eng_error err;

	(void)ctx;
	if (n_convs == MAX_CONV)
		return;
	convs[n_convs] = json_incref(rec);
	if (!tap_ok(eng_chat_input_from_json(rec, &inputs[n_convs], &err) == 0,
		    "conversation %d reads", n_convs))
		tap_diag("%s", err.msg);
	n_convs++;
}

/* The template names of the corpus and the built-in spec of each. */
struct tmpl {
	const char *name;       /* as in the golden files */
	struct eng_chat_spec by_name, detected;
	struct eng_chat *chat;  /* bound to the tokenizer under test */
};

static struct tmpl *find_tmpl(struct tmpl *t, const char *name)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(t[i].name, name))
			return &t[i];
	return NULL;
}

/* Tokenizers that have the markers: [0] ChatML, [1] Llama 3. */
static struct eng_tokenizer *text_tok[2];

/* Text: rendered by name and by the detected spec. */
static void check_text(json_t *rec, void *ctx)
{
	struct tmpl *t = find_tmpl(ctx, json_string_value(json_object_get(rec, "template")));
	int c = (int)json_integer_value(json_object_get(rec, "conversation"));
	int k = (int)json_integer_value(json_object_get(rec, "turn"));
	const char *want = json_string_value(json_object_get(rec, "text"));
	struct eng_chat *chat[2] = { NULL, NULL };
	struct eng_chat_conv *cv = NULL;
	int ok = 1;

	if (!t || c >= n_convs || !want)
		return; /* the real template raises: nothing to compare */
	for (int i = 0; i < 2; i++) {
		char *text = NULL;
		size_t len = 0;
		struct eng_error err;

		eng_chat_new(text_tok[t->by_name.kind == ENG_CHAT_LLAMA3],
			     i ? &t->detected : &t->by_name, &chat[i], NULL);
		if (!chat[i] || eng_chat_conv_new(chat[i], &inputs[c], &cv, &err) ||
		    eng_chat_render_text(chat[i], &inputs[c], eng_chat_conv_msg_index(cv, (size_t)k),
					 true, &text, &len, &err)) {
			ok = 0;
		} else if (len != strlen(want) || memcmp(text, want, len)) {
			ok = 0;
			tap_diag("want: %s", want);
			tap_diag("got:  %s", text);
		}
		free(text);
		eng_chat_conv_free(cv);
		cv = NULL;
		eng_chat_free(chat[i]);
	}
	tap_ok(ok, "%s conversation %d turn %d: text as the Jinja template renders it", t->name, c, k);
}

struct ids_ctx {
	struct tmpl *tmpls;
	const char *tok_name;
	struct eng_chat_conv *cv[3][MAX_CONV];  /* per template, per conversation */
};

/* Ids: a conversation's turn k (the conversations are rendered turn by
 * turn in file order, so the block reuse is exercised) and one-shot. */
static void check_ids(json_t *rec, void *ctx)
{
	struct ids_ctx *x = ctx;
	const char *tn = json_string_value(json_object_get(rec, "template"));
	struct tmpl *t = find_tmpl(x->tmpls, tn);
	int ti = (int)(t - x->tmpls);
	int c = (int)json_integer_value(json_object_get(rec, "conversation"));
	size_t k = (size_t)json_integer_value(json_object_get(rec, "turn"));
	json_t *want = json_object_get(rec, "ids");
	struct eng_ids one = { 0 }, got = { 0 };
	const int32_t *ids;
	size_t n = 0;
	int ok;

	if (!t || !t->chat || !want || c >= n_convs ||
	    strcmp(json_string_value(json_object_get(rec, "tokenizer")), x->tok_name))
		return;
	if (!x->cv[ti][c])
		eng_chat_conv_new(t->chat, &inputs[c], &x->cv[ti][c], NULL);
	ok = eng_chat_conv_prompt(x->cv[ti][c], k, &ids, &n, NULL) == 0 &&
	     eng_ids_append(&got, ids, n) == 0 && test_ids_equal(&got, want);
	ok = ok && eng_chat_render(t->chat, &inputs[c], eng_chat_conv_msg_index(x->cv[ti][c], k),
				   true, &one, NULL) == 0 && test_ids_equal(&one, want);
	tap_ok(ok, "%s with the %s tokenizer, conversation %d turn %zu: %zu ids as HF's", tn,
	       x->tok_name, c, k, got.n);
	eng_ids_free(&one);
	eng_ids_free(&got);
}

static void run_ids(const char *prompts, struct tmpl *tmpls, const char *name, const char *dir)
{
	struct ids_ctx x = { tmpls, name, { { 0 } } };
	struct eng_tokenizer *tok = NULL;
	struct eng_error err;
	char buf[1600];

	if (!tap_ok(eng_tokenizer_load(dir, &tok, &err) == 0, "%s tokenizer loads", name)) {
		tap_diag("%s", eng_error_format(&err, buf, sizeof(buf)));
		return;
	}
	for (int i = 0; i < 3; i++)
		eng_chat_new(tok, &tmpls[i].by_name, &tmpls[i].chat, NULL);
	each_line(prompts, check_ids, &x);
	for (int i = 0; i < 3; i++) {
		for (int c = 0; c < n_convs; c++)
			eng_chat_conv_free(x.cv[i][c]);
		eng_chat_free(tmpls[i].chat);
		tmpls[i].chat = NULL;
	}
	eng_tokenizer_free(tok);
}

static void specs(const char *top, struct tmpl *t)
{
	static const char *const names[] = { "chatml", "qwen3", "llama3" };
	static const char *const files[] = { "tests/data/chat-golden/qwen2.5.jinja",
					     "tests/data/chat-golden/qwen3.jinja",
					     "tests/data/chat-golden/llama3.jinja" };

	for (int i = 0; i < 3; i++) {
		char *p = path_of(top, files[i]);
		size_t len;
		char *text = tap_slurp(p, &len);
		struct eng_error err;

		tap_ok(eng_chat_spec_from_name(names[i], &t[i].by_name, &err) == 0 && text &&
		       eng_chat_spec_detect(text, &t[i].detected, &err) == 0 &&
		       t[i].detected.kind == t[i].by_name.kind,
		       "%s: %s recognized as %s", t[i].name, files[i], names[i]);
		free(text);
		free(p);
	}
}

int main(void)
{
	const char *top = getenv("top_srcdir") ? getenv("top_srcdir") : ".";
	struct tmpl t[3] = { { .name = "qwen2.5" }, { .name = "qwen3" }, { .name = "llama3" } };
	char *convs_path = path_of(top, "tests/data/chat-golden/conversations.jsonl");
	char *texts = path_of(top, "tests/data/chat-golden/texts.jsonl");
	char *prompts = path_of(top, "tests/data/chat-golden/prompts.jsonl");
	char *tiny = path_of(top, "samples/tokenizer");
	char *llama = path_of(top, "tests/data/tokenizer/llama3");
	char *qwen = path_of(top, "../shared/data/qwen2-tokenizer");
	char *qwen_json = path_of(qwen, "tokenizer.json");
	FILE *probe;

	tap_ok(each_line(convs_path, load_conv, NULL) && n_convs > 0, "read %s", convs_path);
	specs(top, t);
	if (eng_tokenizer_load(tiny, &text_tok[0], NULL) == 0 &&
	    eng_tokenizer_load(llama, &text_tok[1], NULL) == 0)
		each_line(texts, check_text, t);
	eng_tokenizer_free(text_tok[0]);
	eng_tokenizer_free(text_tok[1]);
	run_ids(prompts, t, "tiny", tiny);
	run_ids(prompts, t, "llama3", llama);
	if ((probe = fopen(qwen_json, "r"))) {
		fclose(probe);
		run_ids(prompts, t, "qwen", qwen);
	} else {
		tap_diag("skipping the qwen tokenizer: %s is absent", qwen_json);
	}
	for (int c = 0; c < n_convs; c++) {
		eng_chat_input_free(&inputs[c]);
		json_decref(convs[c]);
	}
	free(convs_path);
	free(texts);
	free(prompts);
	free(tiny);
	free(llama);
	free(qwen);
	free(qwen_json);
	return tap_done();
}
