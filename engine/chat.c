/*
 * chat.c: choosing a chat template, reading messages, and encoding what the
 * template renders (chat.h); the rules themselves are in chat_tmpl.c.
 *
 * Encoding: the rendered text is cut into blocks, each beginning at a
 * template marker, and every block is encoded on its own with added tokens
 * matched, which is Hugging Face's encode of the whole string (it splits at
 * the same markers).  A conversation keeps the previous prompt's blocks with
 * their ids; a block of the new prompt whose text equals the previous
 * prompt's block at the same position takes those ids.  Successive prompts
 * of a conversation share their blocks but for the messages the template
 * rewrote (Qwen3's reasoning), so each message is encoded about once; what
 * a turn costs besides is rendering and comparing text (memcpy speed).
 */
#include "engine/chat.h"
#include "engine/chat_int.h"
#include "engine/json_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct eng_chat {
	struct eng_tokenizer *tok;
	struct eng_chat_spec spec;
	int32_t end_id;           /* <|im_end|> or <|eot_id|> */
	struct eng_chat_text text; /* scratch of one-shot renderings */
};

/* ---------------------------------------------------------------- choosing */

static const char *const kind_names[] = { "chatml", "qwen3", "llama3" };
static const char qwen25_system[] = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

const char *eng_chat_kind_name(enum eng_chat_kind kind)
{
	return (unsigned)kind < 3 ? kind_names[kind] : "?";
}

int eng_chat_spec_from_name(const char *name, struct eng_chat_spec *spec, struct eng_error *err)
{
	memset(spec, 0, sizeof(*spec));
	for (int k = 0; k < 3; k++) {
		if (strcmp(name, kind_names[k]) == 0) {
			spec->kind = (enum eng_chat_kind)k;
			spec->tool_blocks = k != ENG_CHAT_LLAMA3;
			spec->has_default_system = k == ENG_CHAT_CHATML;
			if (k == ENG_CHAT_CHATML)
				snprintf(spec->default_system, sizeof(spec->default_system), "%s",
					 qwen25_system);
			return 0;
		}
	}
	return eng_error_set(err, ENG_E_INVALID, NULL, 0,
			     "unknown chat template '%s' (chatml, qwen3 or llama3)", name);
}

/* A ChatML template's default system message: the Jinja string literal
 * '<|im_start|>system\n...<|im_end|>' whose text is a constant (Qwen2's
 * and Qwen2.5's templates write it so). */
static void default_system(const char *t, struct eng_chat_spec *spec)
{
	static const char open[] = "'<|im_start|>system\\n";
	const char *p = t;

	while ((p = strstr(p, open))) {
		const char *s = p + sizeof(open) - 1, *end = strstr(s, "<|im_end|>");
		size_t n = 0;

		p = s;
		if (!end || memchr(s, '\'', (size_t)(end - s)) || end == s)
			continue;
		/* Jinja's escapes in a single-quoted literal: \n, \', \\. */
		for (; s < end && n + 1 < sizeof(spec->default_system); s++) {
			if (*s == '\\' && s + 1 < end)
				s++, spec->default_system[n++] = *s == 'n' ? '\n' : *s;
			else
				spec->default_system[n++] = *s;
		}
		spec->default_system[n] = '\0';
		spec->has_default_system = true;
		return;
	}
}

int eng_chat_spec_detect(const char *t, struct eng_chat_spec *spec, struct eng_error *err)
{
	memset(spec, 0, sizeof(*spec));
	if (strstr(t, "<|start_header_id|>") && strstr(t, "<|eot_id|>")) {
		spec->kind = ENG_CHAT_LLAMA3;
	} else if (strstr(t, "<|im_start|>") &&
		   (strstr(t, "</think>") || strstr(t, "reasoning_content"))) {
		spec->kind = ENG_CHAT_QWEN3;
		spec->tool_blocks = true;
	} else if (strstr(t, "<|im_start|>")) {
		spec->kind = ENG_CHAT_CHATML;
		spec->tool_blocks = strstr(t, "<tool_response>") != NULL;
		default_system(t, spec);
	} else {
		return eng_error_set(err, ENG_E_UNSUPPORTED, NULL, 0,
				     "chat template not recognized (neither ChatML, Qwen3 nor Llama-3)");
	}
	return 0;
}

/* The chat_template string of a tokenizer_config.json object, or NULL. */
static const char *config_template(json_t *cfg)
{
	json_t *t = json_object_get(cfg, "chat_template"), *e;
	size_t i;

	if (json_is_string(t))
		return json_string_value(t);
	json_array_foreach(t, i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		if (name && strcmp(name, "default") == 0)
			return json_string_value(json_object_get(e, "template"));
	}
	return json_string_value(json_object_get(json_array_get(t, 0), "template"));
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *s = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (s = malloc((size_t)n + 1)) && fread(s, 1, (size_t)n, f) == (size_t)n)
		s[n] = '\0';
	else if (s) {
		free(s);
		s = NULL;
	}
	fclose(f);
	return s;
}

/* The template in tokenizer_config.json: 0 found, 1 none there, < 0 error. */
static int spec_from_config(const char *dir, struct eng_chat_spec *spec, struct eng_error *err)
{
	char path[4096];
	json_t *cfg;
	const char *t;
	int rc;

	snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
	if (access(path, F_OK) != 0)
		return 1;
	if ((rc = eng_json_load_file(path, 0, &cfg, err)))
		return rc;
	t = config_template(cfg);
	rc = t ? eng_chat_spec_detect(t, spec, err) : 1;
	json_decref(cfg);
	if (rc < 0)
		return eng_error_set(err, rc, path, 0, "%s", err ? err->msg : "");
	return rc;
}

int eng_chat_spec_from_dir(const char *dir, const struct eng_tokenizer *tok,
			   struct eng_chat_spec *spec, struct eng_error *err)
{
	char path[4096];
	char *jinja;
	int rc = spec_from_config(dir, spec, err);

	if (rc <= 0)
		return rc;
	snprintf(path, sizeof(path), "%s/chat_template.jinja", dir);
	if ((jinja = read_file(path))) {
		rc = eng_chat_spec_detect(jinja, spec, err);
		free(jinja);
		return rc ? eng_error_set(err, rc, path, 0, "%s", err ? err->msg : "") : 0;
	}
	memset(spec, 0, sizeof(*spec));
	if (tok && eng_tokenizer_token_id(tok, "<|im_start|>") >= 0)
		return 0;
	if (tok && eng_tokenizer_token_id(tok, "<|start_header_id|>") >= 0) {
		spec->kind = ENG_CHAT_LLAMA3;
		return 0;
	}
	return eng_error_set(err, ENG_E_UNSUPPORTED, dir, 0,
			     "no chat template found and no ChatML or Llama-3 markers in the vocabulary");
}

/* ---------------------------------------------------------------- input */

static int bad_msg(struct eng_error *err, size_t i, const char *what)
{
	return eng_error_set(err, ENG_E_FORMAT, NULL, 0, "messages[%zu]: %s", i, what);
}

/* A tool call: {"function": {"name", "arguments"}} or {"name", "arguments"}. */
static bool good_tool_call(const json_t *tc)
{
	const json_t *f = json_object_get(tc, "function");

	if (json_is_object(f))
		tc = f;
	return json_is_object(tc) && json_is_string(json_object_get(tc, "name")) &&
	       json_object_get(tc, "arguments") != NULL;
}

static int read_msg(const json_t *v, size_t i, struct eng_chat_msg *m, struct eng_error *err)
{
	const json_t *role = json_object_get(v, "role"), *content = json_object_get(v, "content");
	const json_t *reason = json_object_get(v, "reasoning_content");
	const json_t *calls = json_object_get(v, "tool_calls"), *tc;
	size_t j;

	if (calls && !json_is_null(calls)) {
		if (!json_is_array(calls))
			return bad_msg(err, i, "\"tool_calls\" must be an array");
		json_array_foreach(calls, j, tc)
			if (!good_tool_call(tc))
				return eng_error_set(err, ENG_E_FORMAT, NULL, 0,
						     "messages[%zu].tool_calls[%zu]: needs a function "
						     "\"name\" string and \"arguments\"", i, j);
		m->tool_calls = json_array_size(calls) > 0 ? calls : NULL;
	}
	if (!json_is_string(role) ||
	    !(json_is_string(content) ||
	      (m->tool_calls && (!content || json_is_null(content)) &&
	       strcmp(json_string_value(role), "assistant") == 0)))
		return bad_msg(err, i, "needs \"role\" and \"content\" strings");
	if (reason && !json_is_null(reason) && !json_is_string(reason))
		return bad_msg(err, i, "\"reasoning_content\" must be a string");
	m->role = json_string_value(role);
	m->content = json_string_value(content);
	m->content_len = m->content ? json_string_length(content) : 0;
	m->reasoning = json_string_value(reason);
	m->reasoning_len = m->reasoning ? json_string_length(reason) : 0;
	return 0;
}

int eng_chat_input_from_json(const json_t *record, struct eng_chat_input *in,
			     struct eng_error *err)
{
	const json_t *msgs = json_object_get(record, "messages"), *v;
	const json_t *tools = json_object_get(record, "tools");
	const json_t *think = json_object_get(json_object_get(record, "chat_template_kwargs"),
					      "enable_thinking");
	size_t i;
	int rc;

	memset(in, 0, sizeof(*in));
	in->enable_thinking = !json_is_false(think);
	if (!json_is_array(msgs))
		return eng_error_set(err, ENG_E_FORMAT, NULL, 0, "no \"messages\" array");
	if (tools && !json_is_null(tools) && !json_is_array(tools))
		return eng_error_set(err, ENG_E_FORMAT, NULL, 0, "\"tools\" must be an array");
	in->tools = json_is_array(tools) ? tools : NULL;
	if (!(in->msgs = calloc(json_array_size(msgs) + 1, sizeof(*in->msgs))))
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	json_array_foreach(msgs, i, v) {
		if ((rc = read_msg(v, i, &in->msgs[i], err))) {
			eng_chat_input_free(in);
			return rc;
		}
	}
	in->n_msgs = json_array_size(msgs);
	return 0;
}

void eng_chat_input_free(struct eng_chat_input *in)
{
	free(in->msgs);
	in->msgs = NULL;
	in->n_msgs = 0;
}

/* ---------------------------------------------------------------- setup */

static int need_id(struct eng_tokenizer *tok, const char *text, int32_t *id, struct eng_error *err)
{
	*id = eng_tokenizer_token_id(tok, text);
	if (*id < 0)
		return eng_error_set(err, ENG_E_UNSUPPORTED, NULL, 0,
				     "the tokenizer has no %s token, which the template needs", text);
	return 0;
}

/* The template's markers must be tokens of the vocabulary. */
static int check_markers(struct eng_tokenizer *tok, enum eng_chat_kind kind, int32_t *end_id,
			 struct eng_error *err)
{
	static const char *const llama[] = { "<|begin_of_text|>", "<|start_header_id|>",
					     "<|end_header_id|>", "<|eot_id|>", NULL };
	static const char *const chatml[] = { "<|im_start|>", "<|im_end|>", NULL };
	const char *const *m = kind == ENG_CHAT_LLAMA3 ? llama : chatml;
	int rc = 0;

	for (; *m && rc == 0; m++)
		rc = need_id(tok, *m, end_id, err);
	return rc;
}

int eng_chat_new(struct eng_tokenizer *tok, const struct eng_chat_spec *spec,
		 struct eng_chat **out, struct eng_error *err)
{
	struct eng_chat *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	c->tok = tok;
	c->spec = *spec;
	/* the last marker checked is the end token */
	if ((rc = check_markers(tok, spec->kind, &c->end_id, err))) {
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void eng_chat_free(struct eng_chat *c)
{
	if (!c)
		return;
	eng_chat_text_free(&c->text);
	free(c);
}

enum eng_chat_kind eng_chat_kind(const struct eng_chat *c)
{
	return c->spec.kind;
}

const struct eng_chat_spec *eng_chat_spec(const struct eng_chat *c)
{
	return &c->spec;
}

int32_t eng_chat_end_id(const struct eng_chat *c)
{
	return c->end_id;
}

/* ---------------------------------------------------------------- one-shot rendering */

static void render(struct eng_chat *c, const struct eng_chat_input *in, size_t n, bool gen,
		   struct eng_chat_text *t)
{
	eng_chat_text_reset(t);
	eng_chat_tmpl_render(&c->spec, "<|begin_of_text|>", in, n, gen, t);
}

static int nomem(struct eng_error *err)
{
	return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
}

int eng_chat_render_text(struct eng_chat *c, const struct eng_chat_input *in, size_t n,
			 bool add_generation_prompt, char **text, size_t *len,
			 struct eng_error *err)
{
	render(c, in, n, add_generation_prompt, &c->text);
	*text = c->text.oom ? NULL : malloc(c->text.len + 1);
	if (!*text)
		return nomem(err);
	memcpy(*text, c->text.p ? c->text.p : "", c->text.len);
	(*text)[c->text.len] = '\0';
	*len = c->text.len;
	return 0;
}

int eng_chat_render(struct eng_chat *c, const struct eng_chat_input *in, size_t n,
		    bool add_generation_prompt, struct eng_ids *out, struct eng_error *err)
{
	size_t before = out->n;
	int rc = 0;

	render(c, in, n, add_generation_prompt, &c->text);
	if (c->text.oom)
		return nomem(err);
	for (size_t j = 0; j < c->text.n_blocks && rc == 0; j++) {
		const char *s;
		size_t len;

		eng_chat_text_get_block(&c->text, j, &s, &len);
		rc = eng_tokenizer_encode(c->tok, s, len, out, 0, err);
	}
	if (rc)
		out->n = before;
	return rc;
}

/* ---------------------------------------------------------------- conversations */

struct span {
	size_t off, n;             /* a block's ids in the prompt's ids */
};

/* One rendered prompt: its text, blocks and ids. */
struct prompt {
	struct eng_chat_text text;
	struct span *spans;        /* (text.n_blocks) */
	size_t cap_spans;
	struct eng_ids ids;
};

struct eng_chat_conv {
	struct eng_chat *c;
	const struct eng_chat_input *in;
	size_t *asst;              /* (n_turns) message index of each turn */
	size_t n_turns;
	struct prompt p[2];        /* the last prompt rendered and the next one */
	int last;                  /* index in p of the last prompt, -1 before any */
};

int eng_chat_conv_new(struct eng_chat *c, const struct eng_chat_input *in,
		      struct eng_chat_conv **out, struct eng_error *err)
{
	struct eng_chat_conv *cv = calloc(1, sizeof(*cv));

	*out = NULL;
	if (!cv || !(cv->asst = malloc((in->n_msgs + 1) * sizeof(*cv->asst)))) {
		free(cv);
		return nomem(err);
	}
	cv->c = c;
	cv->in = in;
	cv->last = -1;
	for (size_t i = 0; i < in->n_msgs; i++)
		if (strcmp(in->msgs[i].role, "assistant") == 0)
			cv->asst[cv->n_turns++] = i;
	*out = cv;
	return 0;
}

void eng_chat_conv_free(struct eng_chat_conv *cv)
{
	if (!cv)
		return;
	for (int i = 0; i < 2; i++) {
		eng_chat_text_free(&cv->p[i].text);
		free(cv->p[i].spans);
		eng_ids_free(&cv->p[i].ids);
	}
	free(cv->asst);
	free(cv);
}

size_t eng_chat_conv_n_turns(const struct eng_chat_conv *cv)
{
	return cv->n_turns;
}

size_t eng_chat_conv_msg_index(const struct eng_chat_conv *cv, size_t k)
{
	return cv->asst[k];
}

/* The ids of block j of np: those of the same block of op when its text is
 * the same, else encoded. */
static int block_ids(struct eng_chat_conv *cv, struct prompt *np, const struct prompt *op,
		     size_t j, struct eng_error *err)
{
	const char *s, *os;
	size_t n, on, off = np->ids.n;
	int rc = 0;

	eng_chat_text_get_block(&np->text, j, &s, &n);
	if (op && j < op->text.n_blocks) {
		eng_chat_text_get_block(&op->text, j, &os, &on);
		if (on == n && memcmp(os, s, n) == 0) {
			if (eng_ids_append(&np->ids, op->ids.ids + op->spans[j].off, op->spans[j].n))
				return nomem(err);
			np->spans[j] = (struct span){ off, op->spans[j].n };
			return 0;
		}
	}
	rc = eng_tokenizer_encode(cv->c->tok, s, n, &np->ids, 0, err);
	np->spans[j] = (struct span){ off, np->ids.n - off };
	return rc;
}

int eng_chat_conv_prompt(struct eng_chat_conv *cv, size_t k, const int32_t **ids, size_t *n,
			 struct eng_error *err)
{
	int next = cv->last == 0 ? 1 : 0;
	struct prompt *np = &cv->p[next], *op = cv->last >= 0 ? &cv->p[cv->last] : NULL;
	int rc = 0;

	if (k >= cv->n_turns)
		return eng_error_set(err, ENG_E_RANGE, NULL, 0, "no assistant message for turn %zu", k);
	render(cv->c, cv->in, cv->asst[k], true, &np->text);
	np->ids.n = 0;
	if (np->text.oom)
		return nomem(err);
	if (np->text.n_blocks > np->cap_spans) {
		struct span *s = realloc(np->spans, np->text.n_blocks * sizeof(*s));

		if (!s)
			return nomem(err);
		np->spans = s;
		np->cap_spans = np->text.n_blocks;
	}
	for (size_t j = 0; j < np->text.n_blocks && rc == 0; j++)
		rc = block_ids(cv, np, op, j, err);
	if (rc)
		return rc;
	cv->last = next;
	*ids = np->ids.ids;
	*n = np->ids.n;
	return 0;
}

int eng_chat_conv_reply(struct eng_chat_conv *cv, size_t k, struct eng_ids *out,
			struct eng_error *err)
{
	struct eng_chat_text *t = &cv->c->text;
	size_t before = out->n;
	int rc;

	if (k >= cv->n_turns)
		return eng_error_set(err, ENG_E_RANGE, NULL, 0, "no assistant message for turn %zu", k);
	eng_chat_text_reset(t);
	eng_chat_tmpl_reply(&cv->c->spec, &cv->in->msgs[cv->asst[k]], t);
	if (t->oom)
		return nomem(err);
	rc = eng_tokenizer_encode(cv->c->tok, t->p ? t->p : "", t->len, out, 0, err);
	if (rc == 0 && eng_ids_push(out, cv->c->end_id))
		rc = nomem(err);
	if (rc)
		out->n = before;
	return rc;
}

int eng_chat_turns(struct eng_chat *c, const struct eng_chat_input *in,
		   struct eng_chat_turn **turns, size_t *n_turns, struct eng_error *err)
{
	struct eng_chat_conv *cv = NULL;
	struct eng_chat_turn *t = NULL;
	struct eng_ids reply = { 0 };
	int rc = eng_chat_conv_new(c, in, &cv, err);

	*turns = NULL;
	*n_turns = 0;
	if (rc == 0 && !(t = calloc(cv->n_turns + 1, sizeof(*t))))
		rc = nomem(err);
	for (size_t k = 0; rc == 0 && k < cv->n_turns; k++) {
		const int32_t *ids;
		size_t n;

		reply.n = 0;
		if ((rc = eng_chat_conv_prompt(cv, k, &ids, &n, err)) == 0 &&
		    (rc = eng_chat_conv_reply(cv, k, &reply, err)) == 0)
			t[k] = (struct eng_chat_turn){ cv->asst[k], n, reply.n };
	}
	if (rc == 0) {
		*turns = t;
		*n_turns = cv->n_turns;
	} else {
		free(t);
	}
	eng_ids_free(&reply);
	eng_chat_conv_free(cv);
	return rc;
}
