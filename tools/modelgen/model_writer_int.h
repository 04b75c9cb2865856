/*
 * model_writer_int.h: what the model writer's files share: the file
 * writers of mw_files.c (under both others) and the tokenizer writers of
 * model_writer_tok.c (called by model_writer.c).
 */
#ifndef TRAJBENCH_MODEL_WRITER_INT_H
#define TRAJBENCH_MODEL_WRITER_INT_H

#include <stddef.h>
#include <jansson.h>

#include "engine/engine.h"
#include "tools/modelgen/model_writer.h"

/* Special token ids of the tokenizer, found by content. */
struct mw_tok_ids {
	int size; /* max id + 1 */
	int bos;  /* <|endoftext|> (qwen2), <|begin_of_text|> (llama) */
	int eos;  /* <|im_end|>, <|eot_id|>: end of an assistant turn */
	int pad;  /* <|endoftext|>, <|end_of_text|> */
};

/* Writes n bytes to fd, retrying EINTR and short writes.  0, or -1 with
 * errno set. */
int mw_write_all(int fd, const void *buf, size_t n);

/* Writes len bytes to dir/name (created, truncated).  Returns 0 or ENG_E_IO. */
int mw_write_file(const char *dir, const char *name, const void *data, size_t len,
		      struct eng_error *err);

/* Writes obj (reference stolen; NULL means out of memory) as JSON with the
 * given jansson flags and a final newline, as HF writes its config files. */
int mw_write_json(const char *dir, const char *name, json_t *obj, size_t flags,
		      struct eng_error *err);

/* Trains a BPE on p's texts (or a built-in one) and writes tokenizer.json
 * and tokenizer_config.json into dir; the special tokens of p's chat
 * template get the ids after the BPE's.  Fills ids. */
int mw_train_tokenizer(const char *dir, const struct mw_params *p,
			   struct mw_tok_ids *ids, struct eng_error *err);

/* Copies p->tokenizer_dir's tokenizer into dir (see model_writer_tok.c). */
int mw_copy_tokenizer(const char *dir, const struct mw_params *p,
			  struct mw_tok_ids *ids, struct eng_error *err);

#endif
