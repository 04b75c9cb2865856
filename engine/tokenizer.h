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

#include "engine/engine.h"


/* The id of a token given as its text ("<|im_end|>", "hello"), or -1 when
 * no single token has that text.  Added tokens are looked up first. */
int32_t eng_tokenizer_token_id(const struct eng_tokenizer *tok, const char *text);

/* True for ids of added tokens marked "special" in tokenizer.json. */
int eng_tokenizer_is_special(const struct eng_tokenizer *tok, int32_t id);

/* True for ids of any added token (special or not). */
int eng_tokenizer_is_added(const struct eng_tokenizer *tok, int32_t id);

/* The most input bytes one token can stand for: the longest token's
 * bytes, times 4 when the text is normalized first; 0 when there is no
 * such bound (an added token that strips the white space beside it, a
 * pre-tokenizer that drops what it matches).  A text of n bytes has at
 * least n / this many tokens. */
size_t eng_tokenizer_max_bytes_per_token(const struct eng_tokenizer *tok);

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


#endif
