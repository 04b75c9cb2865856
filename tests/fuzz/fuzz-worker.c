/*
 * fuzz-worker.c: what the worker parses from a client, without sockets:
 * the hello line and its run parameters (eng_run_params_from_json, in
 * engine/run_params.c), then each input line as the run reads it
 * (JSON_ALLOW_NUL, eng_conv_from_json in engine/conv.c) with every turn
 * built as the scheduler would.  The input is NDJSON: the hello first.
 * Parameters that decode encode back to the same parameters; a
 * conversation that is accepted builds each turn or fails it with an
 * error, its prompts within the ids of the vocabulary.
 */
#include "tests/fuzz/fuzz.h"
#include "engine/conv.h"
#include "engine/chat.h"

#include <jansson.h>

static struct eng_tokenizer *tok;
static struct eng_chat *chat;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct eng_chat_spec spec;
	struct eng_error err;

	(void)argc;
	(void)argv;
	if (eng_tokenizer_load(fuzz_srcfile("samples/tokenizer"), &tok, &err) ||
	    eng_chat_spec_from_name("chatml", &spec, &err) ||
	    eng_chat_new(tok, &spec, &chat, &err)) {
		fprintf(stderr, "fuzz-worker: %s\n", err.msg);
		abort();
	}
	return 0;
}

static void hello(const char *s, size_t n)
{
	json_t *h = json_loadb(s, n, 0, NULL);
	struct eng_run_params p, q;
	struct eng_error err;
	char name[256], name2[256];

	if (!h)
		return;
	if (eng_run_params_from_json(json_object_get(h, "params"), &p, name, sizeof(name),
				     &err) == 0) {
		json_t *a = eng_run_params_to_json(&p), *b;
		char *da, *db;

		FUZZ_CHECK(a != NULL);
		FUZZ_CHECK(eng_run_params_from_json(a, &q, name2, sizeof(name2), &err) == 0);
		b = eng_run_params_to_json(&q);
		da = json_dumps(a, JSON_SORT_KEYS);
		db = json_dumps(b, JSON_SORT_KEYS);
		FUZZ_CHECK(da && db && strcmp(da, db) == 0);
		free(da);
		free(db);
		json_decref(a);
		json_decref(b);
	}
	json_decref(h);
}

static void input_line(const char *s, size_t n, long line)
{
	json_t *rec = json_loadb(s, n, JSON_ALLOW_NUL, NULL);
	struct eng_conv_rec *c = NULL;
	struct eng_error err;

	if (!json_is_object(rec)) {
		json_decref(rec);
		return;
	}
	if (eng_conv_from_json(chat, rec, line, &c, &err) == 0) {
		FUZZ_CHECK(c->conv.n_turns >= 0);
		for (int32_t k = 0; k < c->conv.n_turns; k++) {
			struct eng_turn_ids t;

			FUZZ_CHECK(c->conv.turns[k].env_time_s <= ENG_CONV_MAX_ENV_TIME_S);
			if (c->conv.build_turn(&c->conv, k, &t, &err) != 0)
				break;
			FUZZ_CHECK(t.prompt_len >= 0 && t.reply_len >= 0);
			for (int32_t i = 0; i < t.prompt_len; i++)
				FUZZ_CHECK(t.prompt[i] >= 0 && t.prompt[i] < eng_tokenizer_vocab_size(tok));
		}
		eng_conv_rec_free(c);
	} else {
		FUZZ_CHECK(c == NULL && err.msg[0] != '\0');
	}
	json_decref(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	size_t i = 0;
	long line = 0;

	while (i < size) {
		const char *nl = memchr(s + i, '\n', size - i);
		size_t len = nl ? (size_t)(nl - (s + i)) : size - i;

		if (line == 0)
			hello(s + i, len);
		else
			input_line(s + i, len, line);
		line++;
		i += len + 1;
	}
	return 0;
}
