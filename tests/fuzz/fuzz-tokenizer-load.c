/*
 * fuzz-tokenizer-load.c: loading a Hugging Face tokenizer.json
 * (engine/tokenizer.c): vocab, merges, added tokens, normalizers and
 * pre-tokenizer regexes.  Any file: refused with an error, or a tokenizer
 * that encodes a fixed text (U+0000 included) to ids inside its vocabulary
 * and decodes them again.
 */
#include "tests/fuzz/fuzz.h"
#include "engine/engine.h"

static const char text[] = "Hello, world!\n  def f(x):\treturn x + 1 \xc3\xa9\xe2\x82\xac "
			   "<|im_start|>user\n\0zero\xf0\x9f\x98\x80";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct eng_tokenizer *tok = NULL;
	struct eng_error err;
	struct eng_ids ids = { 0 };
	char *out = NULL;
	size_t len;

	if (eng_tokenizer_load(fuzz_file(data, size), &tok, &err) != 0) {
		FUZZ_CHECK(tok == NULL && err.msg[0] != '\0');
		return 0;
	}
	for (unsigned flags = 0; flags <= ENG_TOK_ENCODE_PLAIN; flags++) {
		ids.n = 0;
		if (eng_tokenizer_encode(tok, text, sizeof(text) - 1, &ids, flags, &err) != 0)
			continue;
		for (size_t i = 0; i < ids.n; i++)
			FUZZ_CHECK(ids.ids[i] >= 0 && ids.ids[i] < eng_tokenizer_vocab_size(tok));
		if (eng_tokenizer_decode(tok, ids.ids, ids.n, 0, &out, &len, &err) == 0)
			free(out);
	}
	eng_ids_free(&ids);
	eng_tokenizer_free(tok);
	return 0;
}
