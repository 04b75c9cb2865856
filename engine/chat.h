/*
 * chat.h: chat templates rendered to token ids exactly as Hugging Face
 * renders them.
 *
 * A turn's prompt is apply_chat_template(messages before it,
 * add_generation_prompt=True) followed by encode(add_special_tokens=False):
 * the rendered text is split at added tokens and every run of text between
 * two of them is one BPE call, history included.  We never run Jinja: three
 * families are built in, each a transcription of its real template, chosen
 * by name or recognized in a model's chat_template:
 *   chatml  Qwen2/Qwen2.5: <|im_start|>{role}\n{content}<|im_end|>\n; with
 *           Qwen2.5's rules (read from the template: its default system
 *           message, `tool` messages merged into a user message of
 *           <tool_response> blocks, tool_calls as <tool_call> blocks, the
 *           tools list in the system message) or as plain ChatML
 *   qwen3   Qwen3: the same, plus reasoning_content, the split of a content
 *           at </think>, the reasoning of assistant turns before the last
 *           user query dropped, enable_thinking
 *   llama3  <|begin_of_text|> before the first message, then
 *           <|start_header_id|>{role}<|end_header_id|>\n\n{content, trimmed}
 *           <|eot_id|> per message
 * No prefix property is promised: Qwen3 rewrites the history, and a reply
 * encoded in the history need not give the tokens the model generated.
 *
 * A conversation (eng_chat_conv) renders its turns one after another and
 * keeps the ids of every rendered block (the text of one message between
 * two template markers): a block whose text did not change is not encoded
 * again, so a whole conversation costs one encoding of each message, not
 * one of every prompt.
 *
 * The types and the functions the tools use are in engine.h; this header
 * adds what the engine and the tests use.
 */
#ifndef TRAJBENCH_ENG_CHAT_H
#define TRAJBENCH_ENG_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/engine.h"
#include "engine/tokenizer.h"

const char *eng_chat_kind_name(enum eng_chat_kind kind);

/* Recognizes a Jinja chat template.  ENG_E_UNSUPPORTED when it is none of
 * the families above. */
int eng_chat_spec_detect(const char *chat_template, struct eng_chat_spec *spec,
			 struct eng_error *err);

enum eng_chat_kind eng_chat_kind(const struct eng_chat *c);
const struct eng_chat_spec *eng_chat_spec(const struct eng_chat *c);

/* The token that ends an assistant reply (<|im_end|>, <|eot_id|>). */
int32_t eng_chat_end_id(const struct eng_chat *c);

/* The text apply_chat_template gives for in->msgs[0..n): malloc'ed,
 * NUL-terminated, caller frees.  0 or ENG_E_NOMEM. */
int eng_chat_render_text(struct eng_chat *c, const struct eng_chat_input *in, size_t n,
			 bool add_generation_prompt, char **text, size_t *len,
			 struct eng_error *err);

/* Appends the ids of that text to out.  0, ENG_E_INVALID (content not
 * UTF-8) or ENG_E_NOMEM. */
int eng_chat_render(struct eng_chat *c, const struct eng_chat_input *in, size_t n,
		    bool add_generation_prompt, struct eng_ids *out, struct eng_error *err);

/* ---------------------------------------------------------------- turns */

/* A conversation's turns: turn k is the k-th assistant message; its prompt
 * is the rendering of the messages before it with the generation prompt;
 * its reply is the text the model generated after that prompt (content,
 * reasoning and tool calls as the template writes them in the history, the
 * recorded content as is when it carries its own <think> block) and the
 * end token. */
struct eng_chat_conv;

/* in (and what it borrows) must outlive the conversation. */
int eng_chat_conv_new(struct eng_chat *c, const struct eng_chat_input *in,
		      struct eng_chat_conv **out, struct eng_error *err);
void eng_chat_conv_free(struct eng_chat_conv *cv);
size_t eng_chat_conv_n_turns(const struct eng_chat_conv *cv);
/* Index in in->msgs of turn k's assistant message. */
size_t eng_chat_conv_msg_index(const struct eng_chat_conv *cv, size_t k);

/* Turn k's prompt: *ids stays valid until the next call on cv.  Blocks
 * rendered as in the previous call are not encoded again.  ENG_E_RANGE
 * when there is no turn k. */
int eng_chat_conv_prompt(struct eng_chat_conv *cv, size_t k, const int32_t **ids, size_t *n,
			 struct eng_error *err);

/* Appends turn k's reply to out. */
int eng_chat_conv_reply(struct eng_chat_conv *cv, size_t k, struct eng_ids *out,
			struct eng_error *err);

#endif
