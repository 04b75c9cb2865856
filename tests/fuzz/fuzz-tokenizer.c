/*
 * fuzz-tokenizer.c: encoding, decoding and chat rendering with a loaded
 * tokenizer (engine/tokenizer*.c, pretok.c, bpe.c, chat.c): the sample
 * tokenizer (ChatML markers) and the test Llama-3 one.  The first byte
 * picks what the rest is:
 *   0 mod 4  text: its ids lie in the vocabulary and decode to the text
 *            when it is valid UTF-8 that NFC leaves as it is
 *   1 mod 4  ids (int32, any values): decoded or refused with ENG_E_RANGE
 *   2, 3     a conversation record (JSON): rendered with ChatML, Qwen3 or
 *            Llama-3 (bits 2-3); turn k's prompt, built incrementally, must
 *            equal the whole rendering of the messages before it
 */
#include "tests/fuzz/fuzz.h"
#include "engine/chat.h"

#include <jansson.h>
#include <utf8proc.h>

static struct eng_tokenizer *tok_chatml, *tok_llama;
static struct eng_chat *chats[3];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const names[] = { "chatml", "qwen3", "llama3" };
	struct eng_error err;

	(void)argc;
	(void)argv;
	if (eng_tokenizer_load(fuzz_srcfile("samples/tokenizer"), &tok_chatml, &err) ||
	    eng_tokenizer_load(fuzz_srcfile("tests/data/tokenizer/llama3"), &tok_llama, &err)) {
		fprintf(stderr, "fuzz-tokenizer: %s\n", err.msg);
		abort();
	}
	for (int i = 0; i < 3; i++) {
		struct eng_chat_spec spec;

		if (eng_chat_spec_from_name(names[i], &spec, &err) ||
		    eng_chat_new(i == 2 ? tok_llama : tok_chatml, &spec, &chats[i], &err)) {
			fprintf(stderr, "fuzz-tokenizer: %s: %s\n", names[i], err.msg);
			abort();
		}
	}
	return 0;
}

/* True when NFC leaves the valid UTF-8 text s as it is. */
static int nfc_stable(const char *s, size_t n)
{
	utf8proc_uint8_t *dst = NULL;
	utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
					  UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	int same = m >= 0 && (size_t)m == n && memcmp(dst, s, n) == 0;

	free(dst);
	return same;
}

static void text_case(struct eng_tokenizer *tok, const char *s, size_t n, unsigned flags)
{
	struct eng_ids ids = { 0 };
	struct eng_error err;
	char *out = NULL;
	size_t len;

	if (eng_tokenizer_encode(tok, s, n, &ids, flags, &err) != 0) {
		FUZZ_CHECK(ids.n == 0);
		return;
	}
	for (size_t i = 0; i < ids.n; i++)
		FUZZ_CHECK(ids.ids[i] >= 0 && ids.ids[i] < eng_tokenizer_vocab_size(tok));
	FUZZ_CHECK(eng_tokenizer_decode(tok, ids.ids, ids.n, 0, &out, &len, &err) == 0);
	if (nfc_stable(s, n)) {
		if (len != n || memcmp(out, s, n) != 0)
			fprintf(stderr, "decoded %zu bytes for %zu\n", len, n);
		FUZZ_CHECK(len == n && memcmp(out, s, n) == 0);
	}
	free(out);
	eng_ids_free(&ids);
}

static void ids_case(const uint8_t *p, size_t n)
{
	size_t k = n / 4;
	int32_t *ids = malloc((k ? k : 1) * sizeof(*ids));
	struct eng_error err;
	char *out = NULL;
	size_t len;
	int rc;

	FUZZ_CHECK(ids != NULL);
	memcpy(ids, p, k * 4);
	rc = eng_tokenizer_decode(tok_chatml, ids, k, n % 2 ? ENG_TOK_DECODE_SKIP_SPECIAL : 0,
				  &out, &len, &err);
	FUZZ_CHECK(rc == 0 || rc == ENG_E_RANGE);
	if (rc == 0)
		FUZZ_CHECK(out[len] == '\0');
	free(out);
	free(ids);
}

static void chat_case(struct eng_chat *chat, const uint8_t *p, size_t n)
{
	json_t *rec = json_loadb((const char *)p, n, JSON_ALLOW_NUL, NULL);
	struct eng_chat_input in;
	struct eng_chat_conv *cv = NULL;
	struct eng_error err;

	if (!rec || eng_chat_input_from_json(rec, &in, &err) != 0) {
		json_decref(rec);
		return;
	}
	if (eng_chat_conv_new(chat, &in, &cv, &err) == 0) {
		for (size_t k = 0; k < eng_chat_conv_n_turns(cv); k++) {
			struct eng_ids whole = { 0 }, reply = { 0 };
			const int32_t *ids;
			size_t m;

			if (eng_chat_conv_prompt(cv, k, &ids, &m, &err) != 0)
				break;
			FUZZ_CHECK(eng_chat_render(chat, &in, eng_chat_conv_msg_index(cv, k), true,
						   &whole, &err) == 0);
			if (whole.n != m || memcmp(whole.ids, ids, m * sizeof(*ids)) != 0)
				fprintf(stderr, "turn %zu: incremental prompt %zu ids, whole %zu\n",
					k, m, whole.n);
			FUZZ_CHECK(whole.n == m && memcmp(whole.ids, ids, m * sizeof(*ids)) == 0);
			(void)eng_chat_conv_reply(cv, k, &reply, &err);
			eng_ids_free(&whole);
			eng_ids_free(&reply);
		}
		eng_chat_conv_free(cv);
	}
	eng_chat_input_free(&in);
	json_decref(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 0:
		text_case(data[0] & 4 ? tok_llama : tok_chatml, (const char *)data + 1, size - 1,
			  data[0] & 8 ? ENG_TOK_ENCODE_PLAIN : 0);
		break;
	case 1:
		ids_case(data + 1, size - 1);
		break;
	default:
		chat_case(chats[((data[0] >> 2) & 3) % 3], data + 1, size - 1);
		break;
	}
	return 0;
}
