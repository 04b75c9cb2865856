/*
 * test-prompt-bound.c: the lower bound on a prompt's tokens from its bytes
 * counts what every template keeps (system, user and tool contents, less
 * the white space a template may trim) and nothing else, and the bound of
 * a real tokenizer holds: no text has fewer tokens than it says.
 */
#include "engine/prompt_bound.h"
#include "engine/tokenizer.h"
#include "tests/tap.h"

#include <stdlib.h>
#include <string.h>

static int64_t bound_of(const char *json, size_t end, size_t bpt)
{
	json_t *rec = json_loads(json, 0, NULL);
	int64_t n = eng_prompt_min_tokens(rec, end, bpt);

	json_decref(rec);
	return n;
}

static void check_counting(void)
{
	const char *conv = "{\"messages\":["
		"{\"role\":\"system\",\"content\":\"0123456789\"},"
		"{\"role\":\"user\",\"content\":\"  \\t\\u3000abcdefghij\\u00a0\\n \"},"
		"{\"role\":\"assistant\",\"content\":\"this does not count at all\"},"
		"{\"role\":\"tool\",\"content\":\"klmnopqrst\"},"
		"{\"role\":\"user\",\"content\":[\"not a string\"]}]}";

	tap_ok(bound_of(conv, 1, 1) == 10, "a system message counts its bytes");
	tap_ok(bound_of(conv, 2, 1) == 20, "white space at the ends (U+3000, U+00A0 too) does not count");
	tap_ok(bound_of(conv, 3, 1) == 20 && bound_of(conv, 4, 1) == 30,
	       "assistant messages do not count, tool messages do");
	tap_ok(bound_of(conv, SIZE_MAX, 1) == 30, "all messages; a content that is not a string counts 0");
	tap_ok(bound_of(conv, SIZE_MAX, 4) == 7, "bytes per token divide (30 / 4 = 7)");
	tap_ok(bound_of(conv, SIZE_MAX, 0) == 0, "no bound per token, no bound");
	tap_ok(bound_of("{\"messages\":[{\"role\":\"user\",\"content\":\" \\u2003 \"}]}", 1, 1) == 0,
	       "a message of white space only counts 0");
}

/* Texts made to tokenize into few tokens: long runs of one character,
 * repeated words, and text that normalization shrinks. */
static void check_tokenizer(const char *dir)
{
	static const char *const texts[] = {
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"the the the the the the the the the the the the the the the the",
		"\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8",
		"<|im_start|><|im_start|><|im_start|><|im_end|>",
		"                                                                ",
	};
	struct eng_tokenizer *tok;
	struct eng_error err;
	size_t bpt;
	bool ok = true;

	if (eng_tokenizer_load(dir, &tok, &err) != 0) {
		tap_ok(0, "cannot load %s: %s", dir, err.msg);
		return;
	}
	bpt = eng_tokenizer_max_bytes_per_token(tok);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct eng_ids ids = { 0 };

		eng_tokenizer_encode(tok, texts[i], strlen(texts[i]), &ids, 0, &err);
		ok &= bpt == 0 || ids.n >= strlen(texts[i]) / bpt;
		eng_ids_free(&ids);
	}
	tap_ok(bpt > 0 && ok, "the sample tokenizer: %zu bytes a token at most, and no text beats it", bpt);
	eng_tokenizer_free(tok);
}

int main(void)
{
	const char *src = getenv("top_srcdir");
	char dir[4096];

	check_counting();
	snprintf(dir, sizeof(dir), "%s/samples/tokenizer", src ? src : ".");
	check_tokenizer(dir);
	return tap_done();
}
