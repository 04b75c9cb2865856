/*
 * chat.h: chat templates rendered straight to token ids.
 *
 * Three built-in templates, chosen by name or recognized in the
 * chat_template of a model's tokenizer_config.json (never by running Jinja):
 *   chatml  Qwen2/Qwen2.5: <|im_start|>{role}\n{content}<|im_end|>\n per
 *           message; generation prompt <|im_start|>assistant\n
 *   qwen3   chatml plus Qwen3's rule: assistant messages before the last user
 *           message lose their <think>...</think> reasoning
 *   llama3  <|begin_of_text|>, then <|start_header_id|>{role}<|end_header_id|>
 *           \n\n{content, trimmed}<|eot_id|> per message; generation prompt
 *           <|start_header_id|>assistant<|end_header_id|>\n\n
 * Markers are emitted as their token ids, text through the BPE, one segment
 * per message, so that for chatml and llama3
 *   prompt(k) ++ reply(k) ++ (what follows up to the next generation prompt)
 *     == prompt(k+1)
 * holds by construction: what the prefix cache relies on.  The assistant
 * content is tokenized on its own, as a model generates it after the
 * generation prompt; every other message is tokenized as HF's
 * apply_chat_template + encode would tokenize it.
 */
#ifndef TRAJBENCH_ENG_CHAT_H
#define TRAJBENCH_ENG_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/error.h"
#include "engine/tokenizer.h"

enum eng_chat_kind {
	ENG_CHAT_CHATML,
	ENG_CHAT_QWEN3,
	ENG_CHAT_LLAMA3,
};

/* One message; role and content are UTF-8, content need not be
 * NUL-terminated. */
struct eng_chat_msg {
	const char *role;
	const char *content;
	size_t content_len;
};

/* "chatml", "qwen3", "llama3" -> kind.  ENG_E_INVALID for other names. */
int eng_chat_kind_from_name(const char *name, enum eng_chat_kind *kind, struct eng_error *err);
const char *eng_chat_kind_name(enum eng_chat_kind kind);

/* Recognizes a Jinja chat template by its markers.  ENG_E_UNSUPPORTED when
 * it is none of the families above. */
int eng_chat_kind_detect(const char *chat_template, enum eng_chat_kind *kind,
			 struct eng_error *err);

/* The template of a model directory: the chat_template of
 * DIR/tokenizer_config.json (a string, or the "default" of a list), else
 * DIR/chat_template.jinja.  With neither, the tokenizer's markers decide
 * (<|im_start|> -> chatml, <|start_header_id|> -> llama3); tok may be NULL. */
int eng_chat_kind_from_dir(const char *dir, const struct eng_tokenizer *tok,
			   enum eng_chat_kind *kind, struct eng_error *err);

struct eng_chat;

/* Binds a template to a tokenizer (which must outlive it and must have the
 * template's markers: ENG_E_UNSUPPORTED otherwise). */
int eng_chat_new(struct eng_tokenizer *tok, enum eng_chat_kind kind, struct eng_chat **out,
		 struct eng_error *err);
void eng_chat_free(struct eng_chat *c);
enum eng_chat_kind eng_chat_kind(const struct eng_chat *c);

/* The token that ends an assistant reply (<|im_end|>, <|eot_id|>). */
int32_t eng_chat_end_id(const struct eng_chat *c);

/* Appends the rendering of msgs[0..n) to out, with the generation prompt
 * when add_generation_prompt is set.  0, ENG_E_INVALID (content not UTF-8)
 * or ENG_E_NOMEM. */
int eng_chat_render(struct eng_chat *c, const struct eng_chat_msg *msgs, size_t n,
		    bool add_generation_prompt, struct eng_ids *out, struct eng_error *err);

/* Index in msgs of the k-th (0-based) assistant message, or -1. */
long eng_chat_assistant_index(const struct eng_chat_msg *msgs, size_t n, size_t k);

/* The prompt of turn k: the messages before the k-th assistant message and
 * the generation prompt.  ENG_E_RANGE when there is no k-th assistant. */
int eng_chat_turn_prompt(struct eng_chat *c, const struct eng_chat_msg *msgs, size_t n,
			 size_t k, struct eng_ids *out, struct eng_error *err);

/* The reply of turn k as generated: the k-th assistant content (as
 * recorded, reasoning included) and the end token. */
int eng_chat_turn_reply(struct eng_chat *c, const struct eng_chat_msg *msgs, size_t n,
			size_t k, struct eng_ids *out, struct eng_error *err);

/* Token counts of every turn of a conversation, each message tokenized
 * once (the cost is linear in the conversation, not quadratic). */
struct eng_chat_turn {
	size_t msg_index;  /* index of the assistant message */
	size_t prompt_len; /* tokens of eng_chat_turn_prompt */
	size_t reply_len;  /* tokens of eng_chat_turn_reply */
};

/* Fills *turns (malloc'ed, caller frees) and *n_turns. */
int eng_chat_turns(struct eng_chat *c, const struct eng_chat_msg *msgs, size_t n,
		   struct eng_chat_turn **turns, size_t *n_turns, struct eng_error *err);

#endif
