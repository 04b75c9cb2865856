/*
 * bpe_train.h: train a small byte-level BPE tokenizer and write it as an
 * HF tokenizer.json.
 *
 * The model writer needs a tokenizer that the engine's loader and HF
 * `tokenizers` read the same way as Qwen's, but small enough for a model of a
 * few MB.  This trains one with the standard algorithm on given text:
 * NFC-normalize, split with Qwen2's pre-tokenizer regex, map bytes to
 * GPT-2's byte-level alphabet, then repeatedly merge the most frequent
 * adjacent pair (ties: the pair with the smaller (left id, right id) wins,
 * as in HF's trainer) until the vocabulary reaches the target size.
 *
 * Usage: bpe_trainer_new, bpe_trainer_feed (any number of texts),
 * bpe_trainer_train -> struct bpe, bpe_tokenizer_json.
 */
#ifndef TRAJBENCH_BPE_TRAIN_H
#define TRAJBENCH_BPE_TRAIN_H

#include <stddef.h>
#include <jansson.h>

#include "engine/engine.h"

/* The Qwen2 pre-tokenizer regex, byte for byte as in Qwen's tokenizer.json. */
extern const char bpe_qwen2_split_regex[];

struct bpe_train_params {
	int vocab_size;     /* target size including the 256 byte tokens; >= 256 */
	long min_frequency; /* a pair is merged only when it occurs this often; >= 1 */
};

/* vocab_size 512, min_frequency 1. */
struct bpe_train_params bpe_train_default_params(void);

struct bpe_trainer;
struct bpe;

/* Creates a trainer (compiles the split regex).  Returns 0 or ENG_E_*. */
int bpe_trainer_new(const struct bpe_train_params *params,
			struct bpe_trainer **out, struct eng_error *err);

/* Pre-tokenizes text (UTF-8, len bytes) and counts its words.  name is used
 * in errors only.  Returns 0, ENG_E_FORMAT for invalid UTF-8, ENG_E_NOMEM. */
int bpe_trainer_feed(struct bpe_trainer *t, const char *text, size_t len,
			 const char *name, struct eng_error *err);

/* Runs the merges over everything fed so far.  The trainer stays valid
 * (training twice gives the same result).  Returns 0 or ENG_E_NOMEM. */
int bpe_trainer_train(struct bpe_trainer *t, struct bpe **out,
			  struct eng_error *err);

void bpe_trainer_free(struct bpe_trainer *t);

/* Number of tokens (byte tokens first, in GPT-2 byte-level order, then one
 * per distinct merged string) and of merges (merges may outnumber the new
 * tokens when two merges spell the same string). */
int bpe_n_vocab(const struct bpe *b);
int bpe_n_merges(const struct bpe *b);

/* Token id as its byte-level string (NUL-terminated UTF-8), owned by b. */
const char *bpe_token(const struct bpe *b, int id);

/* Merge i (0 = highest priority) as the ids of its left and right parts. */
void bpe_merge(const struct bpe *b, int i, int *left, int *right);

void bpe_free(struct bpe *b);

/* An added (special) token for tokenizer.json; ids are given by the caller. */
struct bpe_added {
	int id;
	const char *content;
	int special; /* 1: special (skipped when decoding with skip_special_tokens) */
};

/* Builds the whole tokenizer.json object in HF's shape: added_tokens,
 * normalizer NFC, pre_tokenizer Sequence[Split(Qwen2 regex, Isolated),
 * ByteLevel], decoder ByteLevel, model BPE with vocab in id order and merges
 * as [left, right] pairs.  Returns a new reference, or NULL (ENG_E_NOMEM). */
json_t *bpe_tokenizer_json(const struct bpe *b, const struct bpe_added *added,
			       int n_added, struct eng_error *err);

/* Writes the byte-level (GPT-2 bytes_to_unicode) character of byte c as
 * UTF-8 into out (room for 3 bytes and a NUL); returns its length. */
int bpe_byte_char(unsigned char c, char out[4]);

#endif
