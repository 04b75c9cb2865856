/*
 * tokenizer.h: byte-level BPE tokenizer loaded from a Hugging Face
 * tokenizer.json (Qwen2, Qwen3, Llama-3 and the project's own tiny models).
 *
 * Encoding follows the HF pipeline: added tokens are matched in the raw text
 * first (longest match, honouring lstrip/rstrip/single_word); the text between
 * them is normalized (NFC etc.), split by the pre-tokenizer regex, mapped to
 * bytes and merged by BPE.  Encoding never adds BOS/EOS: the chat template
 * (chat.h) places every marker explicitly.
 *
 * A tokenizer is read-only after loading except for its merge cache, so one
 * eng_tokenizer may not be used by two threads at once; load one per thread.
 */
#ifndef TRAJBENCH_ENG_TOKENIZER_H
#define TRAJBENCH_ENG_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

struct eng_tokenizer;

/* A growable array of token ids.  Zero-initialize it, let encode append to
 * it, and release it with eng_ids_free. */
struct eng_ids {
	int32_t *ids;
	size_t n;
	size_t cap;
};

/* Appends one id; returns 0 or ENG_E_NOMEM. */
int eng_ids_push(struct eng_ids *v, int32_t id);
/* Appends n ids; returns 0 or ENG_E_NOMEM. */
int eng_ids_append(struct eng_ids *v, const int32_t *ids, size_t n);
void eng_ids_free(struct eng_ids *v);

/* Loads path: a tokenizer.json file, or a directory holding one.
 * Returns 0 and sets *out, or a negative ENG_E_* code with err filled
 * (ENG_E_IO: unreadable; ENG_E_FORMAT: not a valid tokenizer.json;
 * ENG_E_UNSUPPORTED: a model, normalizer or pre-tokenizer we do not run). */
int eng_tokenizer_load(const char *path, struct eng_tokenizer **out, struct eng_error *err);
void eng_tokenizer_free(struct eng_tokenizer *tok);

/* Flags of eng_tokenizer_encode. */
enum {
	/* Treat added/special token strings in the text as plain text. */
	ENG_TOK_ENCODE_PLAIN = 1u << 0,
};

/* Encodes len bytes of UTF-8 text and appends the ids to out.  Returns 0;
 * ENG_E_INVALID when the text is not valid UTF-8 (err names the byte
 * offset); ENG_E_NOMEM.  On error out keeps what it had before the call. */
int eng_tokenizer_encode(struct eng_tokenizer *tok, const char *text, size_t len,
			 struct eng_ids *out, unsigned flags, struct eng_error *err);

/* Flags of eng_tokenizer_decode. */
enum {
	ENG_TOK_DECODE_SKIP_SPECIAL = 1u << 0, /* leave special tokens out */
};

/* Decodes n ids to bytes, appended to a malloc'ed NUL-terminated buffer
 * *text (length *len); the caller frees it.  The bytes are what the tokens
 * stand for and may hold invalid UTF-8 (see eng_utf8_sanitize).  Returns 0,
 * ENG_E_RANGE for an id outside the vocabulary (err names its position), or
 * ENG_E_NOMEM. */
int eng_tokenizer_decode(const struct eng_tokenizer *tok, const int32_t *ids, size_t n,
			 unsigned flags, char **text, size_t *len, struct eng_error *err);

/* The id of a token given as its text ("<|im_end|>", "hello"), or -1 when
 * no single token has that text.  Added tokens are looked up first. */
int32_t eng_tokenizer_token_id(const struct eng_tokenizer *tok, const char *text);

/* The bytes a token stands for (not NUL-terminated), or NULL for an id that
 * names no token. */
const char *eng_tokenizer_token_bytes(const struct eng_tokenizer *tok, int32_t id, size_t *len);

/* One more than the largest id (holes, if any, count). */
int32_t eng_tokenizer_vocab_size(const struct eng_tokenizer *tok);

/* True for ids of added tokens marked "special" in tokenizer.json. */
int eng_tokenizer_is_special(const struct eng_tokenizer *tok, int32_t id);

/* True for ids of any added token (special or not). */
int eng_tokenizer_is_added(const struct eng_tokenizer *tok, int32_t id);

/* Number of added tokens, and the id of the i-th in file order. */
size_t eng_tokenizer_n_added(const struct eng_tokenizer *tok);
int32_t eng_tokenizer_added_id(const struct eng_tokenizer *tok, size_t i);

/* ---------------------------------------------------------------- streaming */

/* Incremental decoding: feed ids as they are generated, get text that never
 * ends inside a UTF-8 character.  Bytes that cannot start or continue a
 * valid character come out as U+FFFD, as HF's lossy decode does. */
struct eng_tok_stream {
	const struct eng_tokenizer *tok;
	unsigned flags;         /* ENG_TOK_DECODE_* */
	unsigned char pend[4];  /* an incomplete character held back */
	int n_pend;
};

void eng_tok_stream_init(struct eng_tok_stream *s, const struct eng_tokenizer *tok, unsigned flags);

/* Decodes one id and appends the complete characters to *buf (malloc'ed,
 * grown as needed, NUL-terminated; *len and *cap updated).  Returns 0,
 * ENG_E_RANGE or ENG_E_NOMEM. */
int eng_tok_stream_push(struct eng_tok_stream *s, int32_t id, char **buf, size_t *len,
			size_t *cap, struct eng_error *err);

/* Ends the stream: a held-back incomplete character becomes U+FFFD. */
int eng_tok_stream_flush(struct eng_tok_stream *s, char **buf, size_t *len, size_t *cap,
			 struct eng_error *err);

/* ---------------------------------------------------------------- UTF-8 */

/* Returns len when s is valid UTF-8, else the offset of the first bad byte. */
size_t eng_utf8_check(const char *s, size_t len);

/* Copies s into a malloc'ed NUL-terminated buffer with every invalid
 * sequence replaced by U+FFFD (as Rust's from_utf8_lossy).  Returns NULL
 * when out of memory. */
char *eng_utf8_sanitize(const char *s, size_t len, size_t *out_len);

#endif
