/*
 * tokenizer_int.h: the inside of struct eng_tokenizer, shared by
 * tokenizer.c (loading), tokenizer_encode.c (the pipeline), pretok.c
 * (normalizer and pre-tokenizer) and bpe.c (vocabulary, merges, cache).
 * Not installed; nothing outside engine/tokenizer*.c, pretok.c and bpe.c
 * includes it.
 */
#ifndef TRAJBENCH_ENG_TOKENIZER_INT_H
#define TRAJBENCH_ENG_TOKENIZER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "engine/tokenizer.h"

/* One vocabulary entry: the raw bytes a token stands for (the ByteLevel
 * characters of tokenizer.json mapped back to bytes). */
struct eng_tok_entry {
	char *bytes;   /* NULL for an id that no token uses */
	uint32_t len;
	uint8_t added;   /* an added token (matched before BPE) */
	uint8_t special; /* "special": true */
};

struct eng_added {
	char *content;  /* exact text matched */
	size_t len;
	int32_t id;
	bool lstrip, rstrip, single_word, special;
};

/* Open-addressing map from a byte string to an id. */
struct eng_strmap {
	uint32_t *slots; /* id + 1, 0 = empty; (cap) */
	size_t cap;      /* power of two */
};

/* Open-addressing map from an id pair to its merge. */
struct eng_merge_slot {
	uint64_t key;   /* (left << 32 | right) + 1; 0 = empty */
	int32_t rank;
	int32_t merged; /* id of the merged token */
};

/* The BPE cache: pre-token bytes -> ids, cleared when full. */
struct eng_cache_slot {
	uint64_t hash;   /* 0 = empty */
	uint32_t key_off, key_len; /* into cache arena */
	uint32_t ids_off, n_ids;   /* into cache id pool */
};

struct eng_bpe_cache {
	struct eng_cache_slot *slots;
	size_t cap, used;
	char *arena;
	size_t arena_len, arena_cap;
	int32_t *pool;
	size_t pool_len, pool_cap;
};

enum eng_norm_kind { ENG_NORM_NFC, ENG_NORM_NFD, ENG_NORM_NFKC, ENG_NORM_NFKD };

/* One pre-tokenizer stage: a regex split (Split, or ByteLevel with
 * use_regex), optionally preceded by ByteLevel's add_prefix_space. */
struct eng_pretok_stage {
	pcre2_code *re;             /* NULL: no split */
	pcre2_match_data *md;
	bool removed;               /* Split behavior "Removed": drop matches */
	bool add_prefix_space;
};

#define ENG_MAX_NORMS 8
#define ENG_MAX_STAGES 8

struct eng_tokenizer {
	struct eng_tok_entry *tokens; /* (n_tokens) indexed by id */
	int32_t n_tokens;
	struct eng_strmap vocab;      /* bytes -> id, BPE vocabulary only */
	struct eng_merge_slot *merges;
	size_t merges_cap;
	int32_t byte_id[256];         /* id of each single byte, -1 if none */
	bool ignore_merges;

	struct eng_added *added;      /* (n_added) in file order */
	size_t n_added;
	uint8_t added_first[256];     /* bytes that can start an added token */
	size_t *added_by_len;         /* (n_added) indices, longest first */

	enum eng_norm_kind norms[ENG_MAX_NORMS];
	int n_norms;
	struct eng_pretok_stage stages[ENG_MAX_STAGES];
	int n_stages;

	struct eng_bpe_cache cache;
	char *scratch;                /* normalization output, reused */
	size_t scratch_cap;
};

/* bpe.c */
uint64_t eng_hash_bytes(const char *s, size_t len);
int eng_strmap_init(struct eng_strmap *m, size_t n_expected);
/* Inserts bytes -> id (keys are the entries' bytes); a duplicate key keeps
 * the first id.  Returns 0 or ENG_E_NOMEM. */
int eng_strmap_put(struct eng_strmap *m, const struct eng_tok_entry *tokens, int32_t id);
int32_t eng_strmap_get(const struct eng_strmap *m, const struct eng_tok_entry *tokens,
		       const char *s, size_t len);
void eng_strmap_free(struct eng_strmap *m);
int eng_merges_init(struct eng_tokenizer *tok, size_t n);
int eng_merges_put(struct eng_tokenizer *tok, int32_t left, int32_t right, int32_t rank,
		   int32_t merged);
/* Appends the BPE ids of one pre-token (raw bytes) to out. */
int eng_bpe_word(struct eng_tokenizer *tok, const char *s, size_t len, struct eng_ids *out);
void eng_bpe_cache_free(struct eng_bpe_cache *c);

/* pretok.c: the byte of a character of GPT-2's ByteLevel table. */
int eng_bytelevel_byte(uint32_t cp);  /* -1 when cp is not a ByteLevel char */
/* Compiles a regex for a pre-tokenizer stage (PCRE2, UTF + UCP + JIT). */
int eng_pretok_compile(struct eng_pretok_stage *st, const char *pattern, size_t len,
		       bool literal, struct eng_error *err);
void eng_pretok_free(struct eng_tokenizer *tok);
/* Normalizes text into tok->scratch when a normalizer applies; *out and
 * *out_len point at the text to pre-tokenize (text itself when unchanged). */
int eng_normalize(struct eng_tokenizer *tok, const char *text, size_t len,
		  const char **out, size_t *out_len);
/* Runs the pre-tokenizer stages on text and BPE on every piece. */
int eng_pretok_encode(struct eng_tokenizer *tok, const char *text, size_t len,
		      struct eng_ids *out);

#endif
