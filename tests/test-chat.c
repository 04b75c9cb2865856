/*
 * test-chat.c: chat templates rendered to ids.
 *
 * 1. Every prompt in tests/data/tokenizer/chat-ref.jsonl (rendered by the
 *    models' own Jinja templates and tokenized by HF tokenizers, see
 *    tests/tokenizer/gen-chat-ref.py) comes out as the same ids, with the
 *    template recognized from the tokenizer directory.  The qwen3 records
 *    need the shared Qwen tokenizer and are skipped without it.
 * 2. The prefix property for chatml and llama3: prompt(k) ++ reply(k) is a
 *    prefix of prompt(k+1), also for replies that begin with newlines.
 * 3. eng_chat_turns gives the lengths of the one-turn functions.
 * 4. Names, detection and missing markers fail cleanly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <utf8proc.h>

#include "engine/chat.h"
#include "tests/tap.h"
#include "tests/test-ids.h"

static char *path_join(const char *a, const char *b)
{
	char *p = malloc(strlen(a) + strlen(b) + 2);

	sprintf(p, "%s/%s", a, b);
	return p;
}

/* Borrows the strings of a JSON messages array; caller frees the array. */
static struct eng_chat_msg *msgs_of(json_t *arr, size_t *n)
{
	struct eng_chat_msg *m = calloc(json_array_size(arr) + 1, sizeof(*m));
	json_t *e;
	size_t i;

	json_array_foreach(arr, i, e) {
		m[i].role = json_string_value(json_object_get(e, "role"));
		m[i].content = json_string_value(json_object_get(e, "content"));
		m[i].content_len = json_string_length(json_object_get(e, "content"));
	}
	*n = json_array_size(arr);
	return m;
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
	enum eng_chat_kind kind;
	char buf[1600];

	if (eng_tokenizer_load(m->dir, &m->tok, &err) ||
	    eng_chat_kind_from_dir(m->dir, m->tok, &kind, &err) ||
	    eng_chat_new(m->tok, kind, &m->chat, &err)) {
		tap_diag("%s: %s", m->name, eng_error_format(&err, buf, sizeof(buf)));
		return -1;
	}
	tap_diag("%s: template %s", m->name, eng_chat_kind_name(kind));
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

static void check_reference(const char *ref, struct model *models, int n_models)
{
	FILE *f = fopen(ref, "r");
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0;

	if (!tap_ok(f != NULL, "open %s", ref))
		return;
	while (getline(&line, &cap, f) > 0) {
		json_t *r = json_loads(line, 0, NULL);
		const char *name = json_string_value(json_object_get(r, "tokenizer"));
		struct model *m = NULL;
		struct eng_ids ids = { 0 };
		struct eng_chat_msg *msgs;
		size_t n, tlen;
		char *text = NULL;
		size_t k = (size_t)json_integer_value(json_object_get(r, "turn"));

		lineno++;
		for (int i = 0; i < n_models; i++)
			if (strcmp(models[i].name, name) == 0)
				m = &models[i];
		if (!m || !m->chat) {
			json_decref(r);
			continue;
		}
		msgs = msgs_of(json_object_get(r, "messages"), &n);
		eng_chat_turn_prompt(m->chat, msgs, n, k, &ids, NULL);
		eng_tokenizer_decode(m->tok, ids.ids, ids.n, 0, &text, &tlen, NULL);
		tap_ok(test_ids_equal(&ids, json_object_get(r, "ids")) &&
		       same_text(text, json_string_value(json_object_get(r, "text"))),
		       "%s conversation %lld turn %zu: %zu ids as HF's template + tokenizer", name,
		       (long long)json_integer_value(json_object_get(r, "conversation")), k, ids.n);
		free(text);
		free(msgs);
		eng_ids_free(&ids);
		json_decref(r);
	}
	free(line);
	fclose(f);
}

static int is_prefix(const struct eng_ids *a, const struct eng_ids *b)
{
	return a->n <= b->n && memcmp(a->ids, b->ids, a->n * sizeof(int32_t)) == 0;
}

/* prompt(k) ++ reply(k) is a prefix of prompt(k+1) for every k; and
 * eng_chat_turns agrees with the one-turn functions. */
static int prefix_and_turns(struct eng_chat *c, const struct eng_chat_msg *msgs, size_t n,
			    int want_prefix)
{
	struct eng_chat_turn *turns = NULL;
	size_t nt = 0;
	int ok = eng_chat_turns(c, msgs, n, &turns, &nt, NULL) == 0;

	for (size_t k = 0; ok && k < nt; k++) {
		struct eng_ids p = { 0 }, r = { 0 }, next = { 0 };

		ok = eng_chat_turn_prompt(c, msgs, n, k, &p, NULL) == 0 &&
		     eng_chat_turn_reply(c, msgs, n, k, &r, NULL) == 0 &&
		     turns[k].prompt_len == p.n && turns[k].reply_len == r.n;
		if (ok && want_prefix && k + 1 < nt) {
			eng_ids_append(&p, r.ids, r.n);
			ok = eng_chat_turn_prompt(c, msgs, n, k + 1, &next, NULL) == 0 &&
			     is_prefix(&p, &next);
		}
		eng_ids_free(&p);
		eng_ids_free(&r);
		eng_ids_free(&next);
	}
	free(turns);
	return ok && nt > 0;
}

static const struct eng_chat_msg tricky[] = {
	{ "system", "sys", 3 },
	{ "user", "hello", 5 },
	{ "assistant", "\n\nreply that starts with newlines", 33 },
	{ "user", "  \n user content after spaces", 29 },
	{ "assistant", " \n leading space and newline", 28 },
	{ "user", "<|im_end|> <|eot_id|> markers as text", 37 },
	{ "assistant", "", 0 },
	{ "user", "last", 4 },
};

static void check_properties(struct model *models, int n_models, const char *ref)
{
	FILE *f = fopen(ref, "r");
	char *line = NULL;
	size_t cap = 0;

	for (int i = 0; i < n_models; i++) {
		struct model *m = &models[i];
		int prefix;

		if (!m->chat)
			continue;
		prefix = eng_chat_kind(m->chat) != ENG_CHAT_QWEN3;
		tap_ok(prefix_and_turns(m->chat, tricky, sizeof(tricky) / sizeof(tricky[0]), prefix),
		       "%s: turn lengths%s on replies starting with whitespace", m->name,
		       prefix ? " and prefix property" : "");
	}
	while (f && getline(&line, &cap, f) > 0) {
		json_t *r = json_loads(line, 0, NULL);
		const char *name = json_string_value(json_object_get(r, "tokenizer"));

		for (int i = 0; i < n_models; i++) {
			struct model *m = &models[i];
			struct eng_chat_msg *msgs;
			size_t n;
			int prefix;

			if (!m->chat || strcmp(m->name, name) != 0 ||
			    json_integer_value(json_object_get(r, "turn")) != 0)
				continue;
			prefix = eng_chat_kind(m->chat) != ENG_CHAT_QWEN3;
			msgs = msgs_of(json_object_get(r, "messages"), &n);
			tap_ok(prefix_and_turns(m->chat, msgs, n, prefix),
			       "%s conversation %lld: turn lengths%s", name,
			       (long long)json_integer_value(json_object_get(r, "conversation")),
			       prefix ? " and prefix property" : "");
			free(msgs);
		}
		json_decref(r);
	}
	free(line);
	if (f)
		fclose(f);
}

static void check_errors(struct model *tiny)
{
	enum eng_chat_kind k;
	struct eng_chat *c = NULL;
	struct eng_error err;
	struct eng_ids ids = { 0 };

	tap_ok(eng_chat_kind_from_name("llama3", &k, NULL) == 0 && k == ENG_CHAT_LLAMA3 &&
	       eng_chat_kind_from_name("qwen3", &k, NULL) == 0 && k == ENG_CHAT_QWEN3 &&
	       eng_chat_kind_from_name("chatml", &k, NULL) == 0 && k == ENG_CHAT_CHATML,
	       "template names");
	tap_ok(eng_chat_kind_from_name("vicuna", &k, &err) == ENG_E_INVALID, "unknown name: %s", err.msg);
	tap_ok(eng_chat_kind_detect("{{ messages }}", &k, &err) == ENG_E_UNSUPPORTED,
	       "unrecognized template: %s", err.msg);
	if (!tiny->tok)
		return;
	tap_ok(eng_chat_new(tiny->tok, ENG_CHAT_LLAMA3, &c, &err) == ENG_E_UNSUPPORTED && !c,
	       "llama3 on a ChatML vocabulary: %s", err.msg);
	tap_ok(eng_chat_turn_prompt(tiny->chat, tricky, 2, 0, &ids, &err) == ENG_E_RANGE,
	       "turn without an assistant message: ENG_E_RANGE");
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
	check_properties(models, 3, ref);
	check_errors(&models[0]);
	for (int i = 0; i < 3; i++) {
		eng_chat_free(models[i].chat);
		eng_tokenizer_free(models[i].tok);
		free(models[i].dir);
	}
	free(data);
	free(ref);
	return tap_done();
}
