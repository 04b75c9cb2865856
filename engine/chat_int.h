/*
 * chat_int.h: the template rules (chat_tmpl.c) as chat.c uses them.
 *
 * Rendering writes text into an eng_chat_text and marks where blocks start:
 * a block is the text of one message (or of one group of merged tool
 * messages, or the generation prompt), which begins with a template marker
 * (<|im_start|>, <|start_header_id|>).  Hugging Face splits the rendered
 * string at those markers, so encoding block by block gives its ids.
 */
#ifndef TRAJBENCH_ENG_CHAT_INT_H
#define TRAJBENCH_ENG_CHAT_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/chat.h"

struct eng_chat_text {
	char *p;             /* (len) the text, NUL-terminated when !oom */
	size_t len, cap;
	size_t *starts;      /* (n_blocks) offset of each block in p */
	size_t n_blocks, cap_blocks;
	bool oom;            /* an allocation failed: the text is incomplete */
};

void eng_chat_text_reset(struct eng_chat_text *t);
void eng_chat_text_free(struct eng_chat_text *t);
void eng_chat_text_put(struct eng_chat_text *t, const char *s, size_t n);
void eng_chat_text_puts(struct eng_chat_text *t, const char *s);
/* Starts a new block at the current end (no-op when the last is empty). */
void eng_chat_text_block(struct eng_chat_text *t);
/* Block j: [starts[j], starts[j + 1] or len). */
void eng_chat_text_get_block(const struct eng_chat_text *t, size_t j, const char **s, size_t *n);

/* Appends v as Python's json.dumps(v, ensure_ascii=False) writes it:
 * transformers' tojson filter. */
void eng_chat_tojson(const json_t *v, struct eng_chat_text *t);

/* The template's text for msgs[0..n) of in, bos the text of the BOS token
 * (llama3). */
void eng_chat_tmpl_render(const struct eng_chat_spec *s, const char *bos,
			  const struct eng_chat_input *in, size_t n, bool add_generation_prompt,
			  struct eng_chat_text *t);

/* The text the model generated for assistant message m (the end token
 * not included). */
void eng_chat_tmpl_reply(const struct eng_chat_spec *s, const struct eng_chat_msg *m,
			 struct eng_chat_text *t);

#endif
