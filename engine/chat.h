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

#include "engine/engine.h"
#include "engine/tokenizer.h"

const char *eng_chat_kind_name(enum eng_chat_kind kind);

/* Recognizes a Jinja chat template by its markers.  ENG_E_UNSUPPORTED when
 * it is none of the families above. */
int eng_chat_kind_detect(const char *chat_template, enum eng_chat_kind *kind,
			 struct eng_error *err);

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

#endif
