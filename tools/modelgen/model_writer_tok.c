/*
 * model_writer_tok.c: the tokenizer side of the model writer: train a BPE
 * (bpe_train.h) or copy an HF tokenizer, and write tokenizer_config.json
 * with the architecture's chat template (ChatML for qwen2, Qwen3's for
 * qwen3, Llama 3's for llama), special tokens and added_tokens_decoder in
 * the shape of the model family's own files.  The chat templates are
 * written here in Jinja as HF files carry them; ChatML and Llama 3's add no
 * default system message; Qwen3's is the real one, verbatim.
 *
 * It refuses a copied tokenizer that lacks the special tokens its template
 * needs, rather than writing a template that cannot be tokenized.
 */
#include "tools/modelgen/model_writer_int.h"
#include "tools/modelgen/bpe_train.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ChatML as Qwen2 writes it, without a default system message. */
static const char chatml_template[] =
	"{%- for message in messages %}\n"
	"    {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\n"
	"{%- endfor %}\n"
	"{%- if add_generation_prompt %}\n"
	"    {{- '<|im_start|>assistant\\n' }}\n"
	"{%- endif %}";

/* Llama 3's: BOS once, a header per message, contents trimmed. */
static const char llama3_template[] =
	"{%- for message in messages %}\n"
	"    {%- if loop.first %}\n"
	"        {{- bos_token }}\n"
	"    {%- endif %}\n"
	"    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
	" + (message['content'] | trim) + '<|eot_id|>' }}\n"
	"{%- endfor %}\n"
	"{%- if add_generation_prompt %}\n"
	"    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
	"{%- endif %}";

/* Qwen3's, byte for byte as Qwen3's tokenizer_config.json carries it (the
 * chat-templates/qwen3.jinja of the shared data): reasoning dropped from
 * assistant turns before the last query, tool calls and responses,
 * enable_thinking. */
static const char qwen3_template[] =
	"{%- if tools %}\n"
	"    {{- '<|im_start|>system\\n' }}\n"
	"    {%- if messages[0].role == 'system' %}\n"
	"        {{- messages[0].content + '\\n\\n' }}\n"
	"    {%- endif %}\n"
	"    {{- \"# Tools\\n\\nYou may call one or more functions to assist with the user query."
		"\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tool"
		"s>\" }}\n"
	"    {%- for tool in tools %}\n"
	"        {{- \"\\n\" }}\n"
	"        {{- tool | tojson }}\n"
	"    {%- endfor %}\n"
	"    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function na"
		"me and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\":"
		" <function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }"
		"}\n"
	"{%- else %}\n"
	"    {%- if messages[0].role == 'system' %}\n"
	"        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}\n"
	"    {%- endif %}\n"
	"{%- endif %}\n"
	"{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}\n"
	"{%- for message in messages[::-1] %}\n"
	"    {%- set index = (messages|length - 1) - loop.index0 %}\n"
	"    {%- if ns.multi_step_tool and message.role == \"user\" and not(message.content.start"
		"swith('<tool_response>') and message.content.endswith('</tool_response>')) %}\n"
	"        {%- set ns.multi_step_tool = false %}\n"
	"        {%- set ns.last_query_index = index %}\n"
	"    {%- endif %}\n"
	"{%- endfor %}\n"
	"{%- for message in messages %}\n"
	"    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first)"
		" %}\n"
	"        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\"
		"n' }}\n"
	"    {%- elif message.role == \"assistant\" %}\n"
	"        {%- set content = message.content %}\n"
	"        {%- set reasoning_content = '' %}\n"
	"        {%- if message.reasoning_content is defined and message.reasoning_content is not"
		" none %}\n"
	"            {%- set reasoning_content = message.reasoning_content %}\n"
	"        {%- else %}\n"
	"            {%- if '</think>' in message.content %}\n"
	"                {%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}"
		"\n"
	"                {%- set reasoning_content = message.content.split('</think>')[0].rstrip("
		"'\\n').split('<think>')[-1].lstrip('\\n') %}\n"
	"            {%- endif %}\n"
	"        {%- endif %}\n"
	"        {%- if loop.index0 > ns.last_query_index %}\n"
	"            {%- if loop.last or (not loop.last and reasoning_content) %}\n"
	"                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content."
		"strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}\n"
	"            {%- else %}\n"
	"                {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
	"            {%- endif %}\n"
	"        {%- else %}\n"
	"            {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
	"        {%- endif %}\n"
	"        {%- if message.tool_calls %}\n"
	"            {%- for tool_call in message.tool_calls %}\n"
	"                {%- if (loop.first and content) or (not loop.first) %}\n"
	"                    {{- '\\n' }}\n"
	"                {%- endif %}\n"
	"                {%- if tool_call.function %}\n"
	"                    {%- set tool_call = tool_call.function %}\n"
	"                {%- endif %}\n"
	"                {{- '<tool_call>\\n{\"name\": \"' }}\n"
	"                {{- tool_call.name }}\n"
	"                {{- '\", \"arguments\": ' }}\n"
	"                {%- if tool_call.arguments is string %}\n"
	"                    {{- tool_call.arguments }}\n"
	"                {%- else %}\n"
	"                    {{- tool_call.arguments | tojson }}\n"
	"                {%- endif %}\n"
	"                {{- '}\\n</tool_call>' }}\n"
	"            {%- endfor %}\n"
	"        {%- endif %}\n"
	"        {{- '<|im_end|>\\n' }}\n"
	"    {%- elif message.role == \"tool\" %}\n"
	"        {%- if loop.first or (messages[loop.index0 - 1].role != \"tool\") %}\n"
	"            {{- '<|im_start|>user' }}\n"
	"        {%- endif %}\n"
	"        {{- '\\n<tool_response>\\n' }}\n"
	"        {{- message.content }}\n"
	"        {{- '\\n</tool_response>' }}\n"
	"        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
	"            {{- '<|im_end|>\\n' }}\n"
	"        {%- endif %}\n"
	"    {%- endif %}\n"
	"{%- endfor %}\n"
	"{%- if add_generation_prompt %}\n"
	"    {{- '<|im_start|>assistant\\n' }}\n"
	"    {%- if enable_thinking is defined and enable_thinking is false %}\n"
	"        {{- '<think>\\n\\n</think>\\n\\n' }}\n"
	"    {%- endif %}\n"
	"{%- endif %}";

static const char *const qwen2_specials[] = { "<|endoftext|>", "<|im_start|>", "<|im_end|>", NULL };
/* Qwen3's tokenizer has these as added tokens that are not special: its
 * template writes them, and they encode as one id wherever they occur. */
static const char *const qwen3_added[] = {
	"<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>",
	"</think>", NULL,
};
static const char *const llama_specials[] = {
	"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
	"<|eot_id|>", NULL,
};

static const char *const *specials_of(enum mw_arch a)
{
	return a == MW_ARCH_LLAMA ? llama_specials : qwen2_specials;
}

static const char *template_of(enum mw_arch a)
{
	return a == MW_ARCH_LLAMA ? llama3_template
	     : a == MW_ARCH_QWEN3 ? qwen3_template : chatml_template;
}

/* Text to train on when no file is given: prose, code and tool output of
 * the kind the project's trajectories hold. */
static const char builtin_corpus[] =
	"You are a programming agent. Fix the issue described below in the repository.\n"
	"The test suite fails when the parser reads an empty configuration file; the\n"
	"function should return the default settings instead of raising an error.\n"
	"Let me look at the file first, then run the tests again to check the fix.\n\n"
	"def parse_config(path):\n"
	"    \"\"\"Return the settings read from path, or the defaults.\"\"\"\n"
	"    with open(path, encoding=\"utf-8\") as f:\n"
	"        text = f.read()\n"
	"    if not text.strip():\n"
	"        return dict(DEFAULTS)\n"
	"    return {key: value for key, value in parse_lines(text)}\n\n"
	"Exit code: 0\nExecution output of [execute_bash]:\n"
	"============================= test session starts ==============================\n"
	"collected 12 items\n\ntests/test_config.py ............                [100%]\n"
	"============================== 12 passed in 0.31s ===============================\n"
	"The change is small and the tests pass. I will submit the answer now.\n"
	"<function=file_editor>\n<parameter=command>view</parameter>\n"
	"<parameter=path>/testbed/src/config.py</parameter>\n</function>\n"
	"Steps Remaining: 40\n"
	"Here's the result of running `cat -n` on the file: 1 import os 2 import sys\n"
	"for i in range(10):\n    total += values[i] * 2\nprint(f\"total = {total}\")\n";

/* Reads a whole file; caller frees.  NULL with errno set on failure. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (n + 65536 + 1 > cap) {
			char *nb = realloc(buf, cap = (n + 65536 + 1) * 2);

			if (!nb)
				break;
			buf = nb;
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);

		n += r;
		if (r == 0)
			break;
	}
	if (!buf || ferror(f)) {
		int e = ferror(f) ? EIO : ENOMEM;

		fclose(f);
		free(buf);
		errno = e;
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static json_t *added_tokens_decoder(const struct bpe_added *a, int n)
{
	json_t *d = json_object();
	char key[24];

	for (int i = 0; d && i < n; i++) {
		snprintf(key, sizeof(key), "%d", a[i].id);
		json_object_set_new(d, key, json_pack("{s:s, s:b, s:b, s:b, s:b, s:b}", "content",
				a[i].content, "lstrip", 0, "normalized", 0, "rstrip", 0,
				"single_word", 0, "special", a[i].special));
	}
	return d;
}

/* tokenizer_config.json for the trained tokenizer, in the shape of the
 * model family's own files. */
static json_t *tokenizer_config(const struct mw_params *p, const struct bpe_added *a,
				int n)
{
	if (p->arch == MW_ARCH_LLAMA)
		return json_pack("{s:o, s:s, s:s, s:b, s:s, s:[s,s], s:I, s:s, s:s}",
				 "added_tokens_decoder", added_tokens_decoder(a, n),
				 "bos_token", "<|begin_of_text|>", "chat_template", llama3_template,
				 "clean_up_tokenization_spaces", 1, "eos_token", "<|eot_id|>",
				 "model_input_names", "input_ids", "attention_mask",
				 "model_max_length", (json_int_t)p->max_position_embeddings,
				 "pad_token", "<|end_of_text|>",
				 "tokenizer_class", "PreTrainedTokenizerFast");
	return json_pack("{s:b, s:b, s:o, s:[s,s], s:n, s:s, s:b, s:s, s:s, s:I, s:s, s:b, s:s, s:n}",
			 "add_bos_token", 0, "add_prefix_space", 0,
			 "added_tokens_decoder", added_tokens_decoder(a, n),
			 "additional_special_tokens", "<|im_start|>", "<|im_end|>", "bos_token",
			 "chat_template", template_of(p->arch), "clean_up_tokenization_spaces", 0,
			 "eos_token", "<|im_end|>", "errors", "replace",
			 "model_max_length", (json_int_t)p->max_position_embeddings,
			 "pad_token", "<|endoftext|>", "split_special_tokens", 0,
			 "tokenizer_class", "Qwen2Tokenizer", "unk_token");
}

static void set_tok_ids(struct mw_tok_ids *ids, enum mw_arch a, const int *special_ids)
{
	if (a == MW_ARCH_LLAMA) {
		ids->bos = special_ids[0];
		ids->pad = special_ids[1];
		ids->eos = special_ids[4];
	} else {
		ids->bos = ids->pad = special_ids[0];
		ids->eos = special_ids[2];
	}
}

static int feed_texts(struct bpe_trainer *t, const struct mw_params *p,
		      struct eng_error *err)
{
	int rc = 0;

	if (p->n_train_text == 0)
		return bpe_trainer_feed(t, builtin_corpus, sizeof(builtin_corpus) - 1,
					    "built-in text", err);
	for (int i = 0; rc == 0 && i < p->n_train_text; i++) {
		size_t len;
		char *text = read_file(p->train_text[i], &len);

		if (!text)
			return eng_error_set(err, ENG_E_IO, p->train_text[i], 0, "%s", strerror(errno));
		rc = bpe_trainer_feed(t, text, len, p->train_text[i], err);
		free(text);
	}
	return rc;
}

/* Trains a BPE on the given text and writes tokenizer.json and
 * tokenizer_config.json; special tokens get the ids after the BPE's. */
int mw_train_tokenizer(const char *dir, const struct mw_params *p, struct mw_tok_ids *ids,
			   struct eng_error *err)
{
	struct bpe_train_params tp = bpe_train_default_params();
	struct bpe_trainer *t = NULL;
	struct bpe *b = NULL;
	const char *const *sp = specials_of(p->arch);
	struct bpe_added added[16];
	int n = 0, sid[16], rc;

	tp.vocab_size = p->tokenizer_vocab;
	rc = bpe_trainer_new(&tp, &t, err);
	if (rc == 0)
		rc = feed_texts(t, p, err);
	if (rc == 0)
		rc = bpe_trainer_train(t, &b, err);
	bpe_trainer_free(t);
	if (rc < 0)
		return rc;
	for (; sp[n]; n++) {
		added[n] = (struct bpe_added){ bpe_n_vocab(b) + n, sp[n], 1 };
		sid[n] = added[n].id;
	}
	for (int k = 0; p->arch == MW_ARCH_QWEN3 && qwen3_added[k]; k++, n++)
		added[n] = (struct bpe_added){ bpe_n_vocab(b) + n, qwen3_added[k], 0 };
	ids->size = bpe_n_vocab(b) + n;
	set_tok_ids(ids, p->arch, sid);
	rc = mw_write_json(dir, "tokenizer.json", bpe_tokenizer_json(b, added, n, err),
			JSON_COMPACT, err);
	bpe_free(b);
	if (rc == 0)
		rc = mw_write_json(dir, "tokenizer_config.json", tokenizer_config(p, added, n),
				JSON_INDENT(2) | JSON_SORT_KEYS, err);
	return rc;
}

/* Makes ids->size cover the token id v (named what in errors): an integer
 * in [0, INT32_MAX - 1), as the tokenizer loader takes them. */
static int grow_to_id(struct mw_tok_ids *ids, const json_t *v, const char *what,
		      const char *path, struct eng_error *err)
{
	json_int_t id;

	if (eng_json_int_range(v, what, 0, INT32_MAX - 2, &id, err) != 0) {
		if (err)
			snprintf(err->file, sizeof(err->file), "%.*s", (int)sizeof(err->file) - 1, path);
		return ENG_E_FORMAT;
	}
	if (id + 1 > ids->size)
		ids->size = (int)id + 1;
	return 0;
}

/* The ids a copied tokenizer.json uses, and its chat-template specials. */
static int scan_tokenizer(json_t *tok, const struct mw_params *p, const char *path,
			  struct mw_tok_ids *ids, int *sid, struct eng_error *err)
{
	json_t *vocab = json_object_get(json_object_get(tok, "model"), "vocab");
	json_t *added = json_object_get(tok, "added_tokens"), *v;
	const char *const *sp = specials_of(p->arch);
	const char *key;
	size_t i;

	if (!json_is_object(vocab))
		return eng_error_set(err, ENG_E_FORMAT, path, 0, "no model.vocab object");
	ids->size = 0;
	json_object_foreach(vocab, key, v)
		if (grow_to_id(ids, v, "model.vocab", path, err) != 0)
			return ENG_E_FORMAT;
	json_array_foreach(added, i, v)
		if (grow_to_id(ids, json_object_get(v, "id"), "added_tokens[].id", path, err) != 0)
			return ENG_E_FORMAT;
	/* Every id is known to fit an int from here on. */
	for (int k = 0; sp[k]; k++) {
		sid[k] = -1;
		json_array_foreach(added, i, v)
			if (!strcmp(json_string_value(json_object_get(v, "content")) ?: "", sp[k]))
				sid[k] = (int)json_integer_value(json_object_get(v, "id"));
		if (sid[k] < 0)
			return eng_error_set(err, ENG_E_FORMAT, path, 0,
					     "no added token %s, which the %s chat template needs",
					     sp[k], mw_arch_name(p->arch));
	}
	set_tok_ids(ids, p->arch, sid);
	return 0;
}

/* Copies tokenizer.json byte for byte and tokenizer_config.json with the
 * architecture's chat template in place of the source's (the tokenizer in
 * ../shared is Qwen3's, whose template differs from Qwen2.5's ChatML; a
 * qwen3 model gets Qwen3's, the same text). */
int mw_copy_tokenizer(const char *dir, const struct mw_params *p, struct mw_tok_ids *ids,
			  struct eng_error *err)
{
	char path[4096];
	size_t len;
	char *text;
	json_t *tok, *cfg;
	json_error_t je;
	int rc, sid[8];

	snprintf(path, sizeof(path), "%s/tokenizer.json", p->tokenizer_dir);
	if (!(text = read_file(path, &len)))
		return eng_error_set(err, ENG_E_IO, path, 0, "%s", strerror(errno));
	if (!(tok = json_loadb(text, len, 0, &je))) {
		free(text);
		return eng_error_set(err, ENG_E_FORMAT, path, je.line, "%s", je.text);
	}
	rc = scan_tokenizer(tok, p, path, ids, sid, err);
	json_decref(tok);
	if (rc == 0)
		rc = mw_write_file(dir, "tokenizer.json", text, len, err);
	free(text);
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", p->tokenizer_dir);
	if (!(cfg = json_load_file(path, 0, &je)))
		return eng_error_set(err, access(path, F_OK) ? ENG_E_IO : ENG_E_FORMAT, path,
				     je.line, "%s", je.text);
	json_object_set_new(cfg, "chat_template", json_string(template_of(p->arch)));
	return mw_write_json(dir, "tokenizer_config.json", cfg, JSON_INDENT(2), err);
}

