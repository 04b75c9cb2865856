/*
 * chat.c: the built-in chat templates (chat.h), rendered to token ids.
 *
 * A rendering is the concatenation of per-message token segments:
 *   chatml/qwen3  [<|im_start|>] BPE(role "\n" content) [<|im_end|>] BPE("\n")
 *                 an assistant message: [<|im_start|>] BPE("assistant\n")
 *                 BPE(content) [<|im_end|>] BPE("\n")
 *   llama3        [<|begin_of_text|>] once, then per message
 *                 [<|start_header_id|>] BPE(role) [<|end_header_id|>]
 *                 BPE("\n\n" trim(content)) [<|eot_id|>]; an assistant
 *                 message splits BPE("\n\n") BPE(trim(content)) likewise.
 * Text between two markers is one BPE call, exactly the segment HF's encode
 * sees after it splits the rendered string at special tokens.  The one
 * place we cut a segment in two is between the generation prompt and the
 * assistant content: the model generates the content after the prompt, so
 * that is where its tokens start (and what makes the prefix property hold).
 *
 * Qwen3's template is followed for what R2E-Gym-style conversations use:
 * assistant messages before the last real user message keep only the text
 * after the last </think> (leading newlines dropped); later ones are
 * rebuilt as <think>\n{reasoning}\n</think>\n\n{content} when they are last
 * or carry reasoning.  Tool calls, "tool" messages (rendered like any other
 * role) and reasoning_content fields are not interpreted.  Llama 3.1's
 * default system preamble (knowledge cutoff and date) is not produced.
 */
#include "engine/chat.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include <jansson.h>

enum { V_PLAIN = 0, V_THINK = 1 };

struct eng_chat {
	struct eng_tokenizer *tok;
	enum eng_chat_kind kind;
	int32_t begin_id;       /* <|begin_of_text|> (llama3) or -1 */
	int32_t start_id;       /* <|im_start|> or <|start_header_id|> */
	int32_t header_end_id;  /* <|end_header_id|> (llama3) or -1 */
	int32_t end_id;         /* <|im_end|> or <|eot_id|> */
	char *buf;              /* text of the segment being built */
	size_t buf_cap;
};

/* ---------------------------------------------------------------- choosing */

static const char *const kind_names[] = { "chatml", "qwen3", "llama3" };

const char *eng_chat_kind_name(enum eng_chat_kind kind)
{
	return (unsigned)kind < 3 ? kind_names[kind] : "?";
}

int eng_chat_kind_from_name(const char *name, enum eng_chat_kind *kind, struct eng_error *err)
{
	for (int k = 0; k < 3; k++) {
		if (strcmp(name, kind_names[k]) == 0) {
			*kind = (enum eng_chat_kind)k;
			return 0;
		}
	}
	return eng_error_set(err, ENG_E_INVALID, NULL, 0,
			     "unknown chat template '%s' (chatml, qwen3 or llama3)", name);
}

int eng_chat_kind_detect(const char *t, enum eng_chat_kind *kind, struct eng_error *err)
{
	if (strstr(t, "<|start_header_id|>") && strstr(t, "<|eot_id|>"))
		*kind = ENG_CHAT_LLAMA3;
	else if (strstr(t, "<|im_start|>") && (strstr(t, "</think>") || strstr(t, "reasoning_content")))
		*kind = ENG_CHAT_QWEN3;
	else if (strstr(t, "<|im_start|>"))
		*kind = ENG_CHAT_CHATML;
	else
		return eng_error_set(err, ENG_E_UNSUPPORTED, NULL, 0,
				     "chat template not recognized (neither ChatML nor Llama-3)");
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

int eng_chat_kind_from_dir(const char *dir, const struct eng_tokenizer *tok,
			   enum eng_chat_kind *kind, struct eng_error *err)
{
	char path[4096];
	json_error_t jerr;
	json_t *cfg;
	char *jinja;
	int rc;

	snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
	if ((cfg = json_load_file(path, 0, &jerr))) {
		const char *t = config_template(cfg);

		rc = t ? eng_chat_kind_detect(t, kind, err) : 1;
		json_decref(cfg);
		if (rc <= 0)
			return rc ? eng_error_set(err, rc, path, 0, "%s", err ? err->msg : "") : 0;
	} else if (jerr.line > 0) {
		return eng_error_set(err, ENG_E_FORMAT, path, jerr.line, "%s", jerr.text);
	}
	snprintf(path, sizeof(path), "%s/chat_template.jinja", dir);
	if ((jinja = read_file(path))) {
		rc = eng_chat_kind_detect(jinja, kind, err);
		free(jinja);
		return rc ? eng_error_set(err, rc, path, 0, "%s", err ? err->msg : "") : 0;
	}
	if (tok && eng_tokenizer_token_id(tok, "<|im_start|>") >= 0) {
		*kind = ENG_CHAT_CHATML;
		return 0;
	}
	if (tok && eng_tokenizer_token_id(tok, "<|start_header_id|>") >= 0) {
		*kind = ENG_CHAT_LLAMA3;
		return 0;
	}
	return eng_error_set(err, ENG_E_UNSUPPORTED, dir, 0,
			     "no chat template found and no ChatML or Llama-3 markers in the vocabulary");
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

int eng_chat_new(struct eng_tokenizer *tok, enum eng_chat_kind kind, struct eng_chat **out,
		 struct eng_error *err)
{
	struct eng_chat *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	c->tok = tok;
	c->kind = kind;
	c->begin_id = c->header_end_id = -1;
	if (kind == ENG_CHAT_LLAMA3)
		rc = need_id(tok, "<|begin_of_text|>", &c->begin_id, err) ||
		     need_id(tok, "<|start_header_id|>", &c->start_id, err) ||
		     need_id(tok, "<|end_header_id|>", &c->header_end_id, err) ||
		     need_id(tok, "<|eot_id|>", &c->end_id, err);
	else
		rc = need_id(tok, "<|im_start|>", &c->start_id, err) ||
		     need_id(tok, "<|im_end|>", &c->end_id, err);
	if (rc) {
		free(c);
		return ENG_E_UNSUPPORTED;
	}
	*out = c;
	return 0;
}

void eng_chat_free(struct eng_chat *c)
{
	if (!c)
		return;
	free(c->buf);
	free(c);
}

enum eng_chat_kind eng_chat_kind(const struct eng_chat *c)
{
	return c->kind;
}

int32_t eng_chat_end_id(const struct eng_chat *c)
{
	return c->end_id;
}

/* ---------------------------------------------------------------- text helpers */

static const char *find_last(const char *s, size_t n, const char *pat, size_t pn)
{
	const char *hit = NULL, *p = s;

	while ((p = memmem(p, n - (size_t)(p - s), pat, pn))) {
		hit = p;
		p++;
	}
	return hit;
}

static void strip_nl(const char **s, size_t *n, bool left, bool right)
{
	while (left && *n > 0 && **s == '\n')
		(*s)++, (*n)--;
	while (right && *n > 0 && (*s)[*n - 1] == '\n')
		(*n)--;
}

/* Qwen3's split of an assistant content at </think>: body after the last
 * one (leading newlines dropped), reasoning between the last <think> and
 * the first </think>.  Returns false when there is no </think>. */
static bool think_split(const char *s, size_t n, const char **reason, size_t *rlen,
			const char **body, size_t *blen)
{
	const char *first = memmem(s, n, "</think>", 8), *last, *open;

	if (!first)
		return false;
	last = find_last(s, n, "</think>", 8);
	*body = last + 8;
	*blen = n - (size_t)(*body - s);
	strip_nl(body, blen, true, false);
	*reason = s;
	*rlen = (size_t)(first - s);
	strip_nl(reason, rlen, false, true);
	if ((open = find_last(*reason, *rlen, "<think>", 7))) {
		*rlen -= (size_t)(open + 7 - *reason);
		*reason = open + 7;
	}
	strip_nl(reason, rlen, true, false);
	return true;
}

/* Python's str.isspace for one code point. */
static bool py_space(utf8proc_int32_t cp)
{
	utf8proc_category_t cat;

	if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F) || cp == 0x85)
		return true;
	if (cp < 0x80)
		return false;
	cat = utf8proc_category(cp);
	return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
	       cat == UTF8PROC_CATEGORY_ZP;
}

/* Jinja's trim filter (Python str.strip()) on valid UTF-8. */
static void py_strip(const char **s, size_t *n)
{
	utf8proc_int32_t cp;
	utf8proc_ssize_t k;

	while (*n > 0 && (k = utf8proc_iterate((const utf8proc_uint8_t *)*s,
					       (utf8proc_ssize_t)*n, &cp)) > 0 && py_space(cp))
		*s += k, *n -= (size_t)k;
	while (*n > 0) {
		size_t i = *n - 1;

		while (i > 0 && ((uint8_t)(*s)[i] & 0xC0) == 0x80)
			i--;
		if (utf8proc_iterate((const utf8proc_uint8_t *)*s + i, (utf8proc_ssize_t)(*n - i),
				     &cp) <= 0 || !py_space(cp))
			break;
		*n = i;
	}
}

/* ---------------------------------------------------------------- segments */

static int enc(struct eng_chat *c, const char *s, size_t n, struct eng_ids *out,
	       struct eng_error *err)
{
	return eng_tokenizer_encode(c->tok, s, n, out, 0, err);
}

static int push(struct eng_ids *out, int32_t id, struct eng_error *err)
{
	return eng_ids_push(out, id) ? eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory") : 0;
}

/* Builds the text of parts (pointer, length pairs, NULL-ended) in c->buf
 * and encodes it as one segment. */
static int enc_parts(struct eng_chat *c, struct eng_ids *out, struct eng_error *err, ...)
{
	va_list ap;
	size_t len = 0;
	const char *p;

	va_start(ap, err);
	while ((p = va_arg(ap, const char *))) {
		size_t n = va_arg(ap, size_t);

		if (len + n + 1 > c->buf_cap) {
			size_t cap = 2 * (len + n + 1);
			char *nb = realloc(c->buf, cap);
			if (!nb) {
				va_end(ap);
				return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
			}
			c->buf = nb;
			c->buf_cap = cap;
		}
		memcpy(c->buf + len, p, n);
		len += n;
	}
	va_end(ap);
	return enc(c, c->buf ? c->buf : "", len, out, err);
}

static bool is_assistant(const struct eng_chat_msg *m)
{
	return strcmp(m->role, "assistant") == 0;
}

/* Qwen3's last_query_index for a prompt of n messages. */
static long last_query_index(const struct eng_chat_msg *msgs, size_t n)
{
	static const char open[] = "<tool_response>", close[] = "</tool_response>";

	for (size_t i = n; i-- > 0;) {
		const struct eng_chat_msg *m = &msgs[i];
		bool wrapped = m->content_len >= sizeof(open) - 1 + sizeof(close) - 1 &&
			       memcmp(m->content, open, sizeof(open) - 1) == 0 &&
			       memcmp(m->content + m->content_len - (sizeof(close) - 1), close,
				      sizeof(close) - 1) == 0;

		if (strcmp(m->role, "user") == 0 && !wrapped)
			return (long)i;
	}
	return (long)n - 1;
}

/* How message i renders inside a prompt of n messages whose
 * last_query_index is lqi. */
static int variant(const struct eng_chat *c, const struct eng_chat_msg *msgs, size_t n,
		   long lqi, size_t i)
{
	const char *r, *b;
	size_t rl, bl;

	if (c->kind != ENG_CHAT_QWEN3 || !is_assistant(&msgs[i]) || (long)i <= lqi)
		return V_PLAIN;
	if (i == n - 1)
		return V_THINK;
	if (think_split(msgs[i].content, msgs[i].content_len, &r, &rl, &b, &bl) && rl > 0)
		return V_THINK;
	return V_PLAIN;
}

/* The assistant content as it appears inside a prompt. */
static int enc_assistant_content(struct eng_chat *c, const struct eng_chat_msg *m, int v,
				 struct eng_ids *out, struct eng_error *err)
{
	const char *s = m->content, *r = "", *b = s;
	size_t n = m->content_len, rl = 0, bl = n;

	if (c->kind == ENG_CHAT_LLAMA3) {
		py_strip(&s, &n);
		return enc(c, s, n, out, err);
	}
	if (c->kind != ENG_CHAT_QWEN3)
		return enc(c, s, n, out, err);
	think_split(s, n, &r, &rl, &b, &bl);
	if (v == V_PLAIN)
		return enc(c, b, bl, out, err);
	strip_nl(&r, &rl, true, true);
	strip_nl(&b, &bl, true, false);
	return enc_parts(c, out, err, "<think>\n", (size_t)8, r, rl, "\n</think>\n\n", (size_t)11,
			 b, bl, (const char *)NULL);
}

/* [start] BPE(role) [header end] for llama3, [start] for ChatML. */
static int header(struct eng_chat *c, const struct eng_chat_msg *m, struct eng_ids *out,
		  struct eng_error *err)
{
	int rc = push(out, c->start_id, err);

	if (rc == 0 && c->kind == ENG_CHAT_LLAMA3 &&
	    (rc = enc(c, m->role, strlen(m->role), out, err)) == 0)
		rc = push(out, c->header_end_id, err);
	return rc;
}

static int render_msg(struct eng_chat *c, const struct eng_chat_msg *m, int v,
		      struct eng_ids *out, struct eng_error *err)
{
	bool llama = c->kind == ENG_CHAT_LLAMA3;
	const char *s = m->content;
	size_t n = m->content_len;
	int rc = header(c, m, out, err);

	if (rc)
		return rc;
	if (is_assistant(m)) {
		rc = llama ? enc(c, "\n\n", 2, out, err) : enc(c, "assistant\n", 10, out, err);
		if (rc == 0)
			rc = enc_assistant_content(c, m, v, out, err);
	} else if (llama) {
		py_strip(&s, &n);
		rc = enc_parts(c, out, err, "\n\n", (size_t)2, s, n, (const char *)NULL);
	} else {
		rc = enc_parts(c, out, err, m->role, strlen(m->role), "\n", (size_t)1, s, n,
			       (const char *)NULL);
	}
	if (rc == 0)
		rc = push(out, c->end_id, err);
	if (rc == 0 && !llama)
		rc = enc(c, "\n", 1, out, err);
	return rc;
}

static int gen_prompt(struct eng_chat *c, struct eng_ids *out, struct eng_error *err)
{
	static const struct eng_chat_msg asst = { "assistant", "", 0 };
	int rc = header(c, &asst, out, err);

	if (rc)
		return rc;
	if (c->kind == ENG_CHAT_LLAMA3)
		return enc(c, "\n\n", 2, out, err);
	return enc(c, "assistant\n", 10, out, err);
}

static int begin(struct eng_chat *c, struct eng_ids *out, struct eng_error *err)
{
	return c->begin_id >= 0 ? push(out, c->begin_id, err) : 0;
}

/* ---------------------------------------------------------------- API */

int eng_chat_render(struct eng_chat *c, const struct eng_chat_msg *msgs, size_t n,
		    bool add_generation_prompt, struct eng_ids *out, struct eng_error *err)
{
	long lqi = last_query_index(msgs, n);
	size_t before = out->n;
	int rc = begin(c, out, err);

	for (size_t i = 0; i < n && rc == 0; i++)
		rc = render_msg(c, &msgs[i], variant(c, msgs, n, lqi, i), out, err);
	if (rc == 0 && add_generation_prompt)
		rc = gen_prompt(c, out, err);
	if (rc)
		out->n = before;
	return rc;
}

long eng_chat_assistant_index(const struct eng_chat_msg *msgs, size_t n, size_t k)
{
	for (size_t i = 0; i < n; i++)
		if (is_assistant(&msgs[i]) && k-- == 0)
			return (long)i;
	return -1;
}

int eng_chat_turn_prompt(struct eng_chat *c, const struct eng_chat_msg *msgs, size_t n,
			 size_t k, struct eng_ids *out, struct eng_error *err)
{
	long a = eng_chat_assistant_index(msgs, n, k);

	if (a < 0)
		return eng_error_set(err, ENG_E_RANGE, NULL, 0, "no assistant message for turn %zu", k);
	return eng_chat_render(c, msgs, (size_t)a, true, out, err);
}

int eng_chat_turn_reply(struct eng_chat *c, const struct eng_chat_msg *msgs, size_t n,
			size_t k, struct eng_ids *out, struct eng_error *err)
{
	long a = eng_chat_assistant_index(msgs, n, k);
	const char *s;
	size_t len, before = out->n;
	int rc;

	if (a < 0)
		return eng_error_set(err, ENG_E_RANGE, NULL, 0, "no assistant message for turn %zu", k);
	s = msgs[a].content;
	len = msgs[a].content_len;
	if (c->kind == ENG_CHAT_LLAMA3)
		py_strip(&s, &len);
	rc = enc(c, s, len, out, err);
	if (rc == 0 && (rc = push(out, c->end_id, err)))
		out->n = before;
	return rc;
}

/* Token count of message i rendered as variant v, memoized in len[2i+v]. */
static int msg_len(struct eng_chat *c, const struct eng_chat_msg *msgs, size_t i, int v,
		   size_t *len, struct eng_ids *scratch, struct eng_error *err)
{
	int rc;

	if (len[2 * i + v] != (size_t)-1)
		return 0;
	scratch->n = 0;
	if ((rc = render_msg(c, &msgs[i], v, scratch, err)))
		return rc;
	len[2 * i + v] = scratch->n;
	return 0;
}

/* Fixed costs of a prompt: <|begin_of_text|> and the generation prompt. */
static int fixed_len(struct eng_chat *c, struct eng_ids *scratch, size_t *n,
		     struct eng_error *err)
{
	int rc;

	scratch->n = 0;
	if ((rc = begin(c, scratch, err)) || (rc = gen_prompt(c, scratch, err)))
		return rc;
	*n = scratch->n;
	return 0;
}

int eng_chat_turns(struct eng_chat *c, const struct eng_chat_msg *msgs, size_t n,
		   struct eng_chat_turn **turns, size_t *n_turns, struct eng_error *err)
{
	struct eng_ids scratch = { 0 };
	size_t *len = malloc((2 * n + 1) * sizeof(*len)), fixed = 0, nt = 0;
	struct eng_chat_turn *t = calloc(n + 1, sizeof(*t));
	int rc = len && t ? fixed_len(c, &scratch, &fixed, err)
			  : eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");

	for (size_t i = 0; len && i < 2 * n; i++)
		len[i] = (size_t)-1;
	for (size_t a = 0; a < n && rc == 0; a++) {
		long lqi;
		size_t total = fixed;

		if (!is_assistant(&msgs[a]))
			continue;
		lqi = last_query_index(msgs, a);
		for (size_t i = 0; i < a && rc == 0; i++) {
			int v = variant(c, msgs, a, lqi, i);

			rc = msg_len(c, msgs, i, v, len, &scratch, err);
			total += rc ? 0 : len[2 * i + v];
		}
		scratch.n = 0;
		if (rc == 0 && (rc = eng_chat_turn_reply(c, msgs, n, nt, &scratch, err)) == 0)
			t[nt++] = (struct eng_chat_turn){ a, total, scratch.n };
	}
	eng_ids_free(&scratch);
	free(len);
	if (rc) {
		free(t);
		t = NULL;
		nt = 0;
	}
	*turns = t;
	*n_turns = nt;
	return rc;
}
