/*
 * chat_tmpl.c: the built-in chat templates as text (chat_int.h).
 *
 * Each family is a line-by-line transcription of its real Jinja template
 * (shared data: chat-templates/qwen2.5.jinja, qwen3.jinja, llama3.jinja),
 * with Python's string methods written out: split('</think>'),
 * lstrip('\n'), strip(), startswith.  Jinja's truthiness is kept: an empty
 * content, tools list or tool_calls array counts as absent.  Where the real
 * template would raise (a null user content, a tool call without
 * arguments), the input was refused before (chat.c), so nothing here fails
 * but allocation.
 *
 * What is left out: Llama 3.1's tool and date preamble (the llama3 family is
 * Llama 3's plain template); templates other than these three families.
 */
#include "engine/chat_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---------------------------------------------------------------- text */

static bool grow(struct eng_chat_text *t, size_t need)
{
	char *p;
	size_t cap;

	if (t->oom)
		return false;
	if (need <= t->cap)
		return true;
	cap = t->cap ? t->cap : 256;
	while (cap < need)
		cap *= 2;
	if (!(p = realloc(t->p, cap))) {
		t->oom = true;
		return false;
	}
	t->p = p;
	t->cap = cap;
	return true;
}

void eng_chat_text_reset(struct eng_chat_text *t)
{
	t->len = 0;
	t->n_blocks = 0;
	t->oom = false;
	if (t->p)
		t->p[0] = '\0';
}

void eng_chat_text_free(struct eng_chat_text *t)
{
	free(t->p);
	free(t->starts);
	memset(t, 0, sizeof(*t));
}

void eng_chat_text_put(struct eng_chat_text *t, const char *s, size_t n)
{
	if (!grow(t, t->len + n + 1))
		return;
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

void eng_chat_text_puts(struct eng_chat_text *t, const char *s)
{
	eng_chat_text_put(t, s, strlen(s));
}

void eng_chat_text_block(struct eng_chat_text *t)
{
	if (t->oom || (t->n_blocks > 0 && t->starts[t->n_blocks - 1] == t->len))
		return;
	if (t->n_blocks == t->cap_blocks) {
		size_t cap = t->cap_blocks ? 2 * t->cap_blocks : 16;
		size_t *p = realloc(t->starts, cap * sizeof(*p));

		if (!p) {
			t->oom = true;
			return;
		}
		t->starts = p;
		t->cap_blocks = cap;
	}
	t->starts[t->n_blocks++] = t->len;
}

void eng_chat_text_get_block(const struct eng_chat_text *t, size_t j, const char **s, size_t *n)
{
	size_t end = j + 1 < t->n_blocks ? t->starts[j + 1] : t->len;

	*s = t->p + t->starts[j];
	*n = end - t->starts[j];
}

/* ---------------------------------------------------------------- tojson */

/* Python's repr of a float: the shortest digits that read back the same,
 * fixed notation for decimal exponents in [-4, 16), else d.ddde+XX. */
static void py_float(double v, struct eng_chat_text *t)
{
	char buf[64], digits[32], out[400];
	int exp10 = 0, nd = 0, p;

	if (!isfinite(v)) {
		eng_chat_text_puts(t, isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
		return;
	}
	for (p = 1; p <= 17; p++) {
		snprintf(buf, sizeof(buf), "%.*e", p - 1, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	/* buf: [-]d.ddde[+-]XX */
	for (const char *c = buf; *c && *c != 'e'; c++)
		if (*c >= '0' && *c <= '9')
			digits[nd++] = *c;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	exp10 = atoi(strchr(buf, 'e') + 1);
	p = 0;
	if (buf[0] == '-')
		out[p++] = '-';
	if (exp10 < -4 || exp10 >= 16) {
		out[p++] = digits[0];
		if (nd > 1)
			p += snprintf(out + p, sizeof(out) - (size_t)p, ".%s", digits + 1);
		p += snprintf(out + p, sizeof(out) - (size_t)p, "e%c%02d", exp10 < 0 ? '-' : '+',
			      abs(exp10));
	} else if (exp10 < 0) {
		out[p++] = '0';
		out[p++] = '.';
		for (int i = 0; i < -exp10 - 1; i++)
			out[p++] = '0';
		p += snprintf(out + p, sizeof(out) - (size_t)p, "%s", digits);
	} else {
		for (int i = 0; i <= exp10; i++)
			out[p++] = i < nd ? digits[i] : '0';
		out[p++] = '.';
		if (nd > exp10 + 1)
			p += snprintf(out + p, sizeof(out) - (size_t)p, "%s", digits + exp10 + 1);
		else
			out[p++] = '0';
	}
	eng_chat_text_put(t, out, (size_t)p);
}

/* A JSON string as json.dumps(ensure_ascii=False) quotes it. */
static void py_string(const char *s, size_t n, struct eng_chat_text *t)
{
	size_t run = 0;

	eng_chat_text_put(t, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		eng_chat_text_put(t, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': eng_chat_text_puts(t, "\\\""); break;
		case '\\': eng_chat_text_puts(t, "\\\\"); break;
		case '\n': eng_chat_text_puts(t, "\\n"); break;
		case '\r': eng_chat_text_puts(t, "\\r"); break;
		case '\t': eng_chat_text_puts(t, "\\t"); break;
		case '\b': eng_chat_text_puts(t, "\\b"); break;
		case '\f': eng_chat_text_puts(t, "\\f"); break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			eng_chat_text_puts(t, esc);
		}
	}
	eng_chat_text_put(t, s + run, n - run);
	eng_chat_text_put(t, "\"", 1);
}

void eng_chat_tojson(const json_t *v, struct eng_chat_text *t)
{
	char buf[32];
	const char *key;
	json_t *e;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		eng_chat_text_put(t, "{", 1);
		i = 0;
		json_object_foreach((json_t *)v, key, e) {
			if (i++)
				eng_chat_text_put(t, ", ", 2);
			py_string(key, strlen(key), t);
			eng_chat_text_put(t, ": ", 2);
			eng_chat_tojson(e, t);
		}
		eng_chat_text_put(t, "}", 1);
		break;
	case JSON_ARRAY:
		eng_chat_text_put(t, "[", 1);
		json_array_foreach(v, i, e) {
			if (i)
				eng_chat_text_put(t, ", ", 2);
			eng_chat_tojson(e, t);
		}
		eng_chat_text_put(t, "]", 1);
		break;
	case JSON_STRING:
		py_string(json_string_value(v), json_string_length(v), t);
		break;
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		eng_chat_text_puts(t, buf);
		break;
	case JSON_REAL:
		py_float(json_real_value(v), t);
		break;
	case JSON_TRUE: eng_chat_text_puts(t, "true"); break;
	case JSON_FALSE: eng_chat_text_puts(t, "false"); break;
	case JSON_NULL: eng_chat_text_puts(t, "null"); break;
	}
}

/* ---------------------------------------------------------------- strings as Python sees them */

struct str {
	const char *p;
	size_t n;
};

static struct str str_of(const char *p, size_t n)
{
	return (struct str){ p ? p : "", p ? n : 0 };
}

static void put_str(struct eng_chat_text *t, struct str s)
{
	eng_chat_text_put(t, s.p, s.n);
}

static bool is_role(const struct eng_chat_msg *m, const char *role)
{
	return strcmp(m->role, role) == 0;
}

static bool str_starts(struct str s, const char *pat)
{
	size_t n = strlen(pat);

	return s.n >= n && memcmp(s.p, pat, n) == 0;
}

static bool str_ends(struct str s, const char *pat)
{
	size_t n = strlen(pat);

	return s.n >= n && memcmp(s.p + s.n - n, pat, n) == 0;
}

static const char *find_last(struct str s, const char *pat)
{
	size_t pn = strlen(pat);
	const char *hit = NULL, *p = s.p;

	while ((p = memmem(p, s.n - (size_t)(p - s.p), pat, pn))) {
		hit = p;
		p++;
	}
	return hit;
}

static struct str lstrip_nl(struct str s)
{
	while (s.n > 0 && *s.p == '\n')
		s.p++, s.n--;
	return s;
}

static struct str rstrip_nl(struct str s)
{
	while (s.n > 0 && s.p[s.n - 1] == '\n')
		s.n--;
	return s;
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

/* Jinja's trim filter: Python's str.strip() (valid UTF-8 assumed). */
static struct str py_strip(struct str s)
{
	utf8proc_int32_t cp;
	utf8proc_ssize_t k;

	while (s.n > 0 && (k = utf8proc_iterate((const utf8proc_uint8_t *)s.p,
						(utf8proc_ssize_t)s.n, &cp)) > 0 && py_space(cp))
		s.p += k, s.n -= (size_t)k;
	while (s.n > 0) {
		size_t i = s.n - 1;

		while (i > 0 && ((uint8_t)s.p[i] & 0xC0) == 0x80)
			i--;
		if (utf8proc_iterate((const utf8proc_uint8_t *)s.p + i, (utf8proc_ssize_t)(s.n - i),
				     &cp) <= 0 || !py_space(cp))
			break;
		s.n = i;
	}
	return s;
}

/* Qwen3: content.split('</think>')[-1].lstrip('\n') is the body, and
 * content.split('</think>')[0].rstrip('\n').split('<think>')[-1]
 * .lstrip('\n') the reasoning.  Only when content holds a </think>. */
static void think_split(struct str c, struct str *reason, struct str *body)
{
	const char *last = find_last(c, "</think>"), *first = memmem(c.p, c.n, "</think>", 8);
	struct str r = rstrip_nl(str_of(c.p, (size_t)(first - c.p)));
	const char *open = find_last(r, "<think>");

	*body = lstrip_nl(str_of(last + 8, c.n - (size_t)(last + 8 - c.p)));
	if (open)
		r = str_of(open + 7, r.n - (size_t)(open + 7 - r.p));
	*reason = lstrip_nl(r);
}

/* ---------------------------------------------------------------- Qwen2.5 / Qwen3 */

static const char tools_intro[] =
	"# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
	"You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
static const char tools_outro[] =
	"\n</tools>\n\nFor each function call, return a json object with function name and "
	"arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
	"{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n";

static struct str content_of(const struct eng_chat_msg *m)
{
	return str_of(m->content, m->content_len);
}

static bool truthy(const json_t *v)
{
	return v && ((json_is_array(v) && json_array_size(v) > 0) ||
		     (json_is_object(v) && json_object_size(v) > 0) ||
		     (json_is_string(v) && json_string_length(v) > 0) || json_is_true(v) ||
		     (json_is_integer(v) && json_integer_value(v) != 0) ||
		     (json_is_real(v) && json_real_value(v) != 0));
}

/* The system message, with the tools list when there is one. */
static void qwen_system(const struct eng_chat_spec *s, const struct eng_chat_input *in, size_t n,
			struct eng_chat_text *t)
{
	bool first_sys = n > 0 && is_role(&in->msgs[0], "system");
	bool qwen3 = s->kind == ENG_CHAT_QWEN3;
	json_t *tool;
	size_t i;

	if (!truthy(in->tools)) {
		if (!first_sys && (qwen3 || !s->has_default_system))
			return;
		eng_chat_text_block(t);
		eng_chat_text_puts(t, "<|im_start|>system\n");
		if (first_sys)
			put_str(t, content_of(&in->msgs[0]));
		else
			eng_chat_text_puts(t, s->default_system);
		eng_chat_text_puts(t, "<|im_end|>\n");
		return;
	}
	eng_chat_text_block(t);
	eng_chat_text_puts(t, "<|im_start|>system\n");
	if (first_sys)
		put_str(t, content_of(&in->msgs[0]));
	else if (!qwen3)
		eng_chat_text_puts(t, s->default_system);
	if (!qwen3 || first_sys)
		eng_chat_text_puts(t, "\n\n");
	eng_chat_text_puts(t, tools_intro);
	json_array_foreach(in->tools, i, tool) {
		eng_chat_text_put(t, "\n", 1);
		eng_chat_tojson(tool, t);
	}
	eng_chat_text_puts(t, tools_outro);
}

/* One <tool_call> block, Qwen2.5's way (qwen25) or Qwen3's. */
static void tool_call(const json_t *tc, bool qwen25, struct eng_chat_text *t)
{
	const json_t *f = json_object_get(tc, "function"), *args;

	if (qwen25 ? f != NULL : truthy(f))
		tc = f;
	args = json_object_get(tc, "arguments");
	eng_chat_text_puts(t, qwen25 ? "\n<tool_call>\n{\"name\": \"" : "<tool_call>\n{\"name\": \"");
	eng_chat_text_puts(t, json_string_value(json_object_get(tc, "name")) ?: "");
	eng_chat_text_puts(t, "\", \"arguments\": ");
	if (!qwen25 && json_is_string(args))
		eng_chat_text_put(t, json_string_value(args), json_string_length(args));
	else
		eng_chat_tojson(args ? args : json_null(), t);
	eng_chat_text_puts(t, "}\n</tool_call>");
}

/* Qwen3's tool calls after content (the template's content variable). */
static void qwen3_tool_calls(const struct eng_chat_msg *m, struct str content,
			     struct eng_chat_text *t)
{
	const json_t *tc;
	size_t j;

	if (!truthy(m->tool_calls))
		return;
	json_array_foreach(m->tool_calls, j, tc) {
		if (j > 0 || content.n > 0)
			eng_chat_text_put(t, "\n", 1);
		tool_call(tc, false, t);
	}
}

/* Qwen3's reasoning and content of assistant m (content_out: the
 * template's content variable). */
static void qwen3_parts(const struct eng_chat_msg *m, struct str *reason, struct str *content)
{
	*content = content_of(m);
	*reason = str_of("", 0);
	if (m->reasoning)
		*reason = str_of(m->reasoning, m->reasoning_len);
	else if (memmem(content->p, content->n, "</think>", 8))
		think_split(*content, reason, content);
}

static void put_think(struct str reason, struct str content, struct eng_chat_text *t)
{
	eng_chat_text_puts(t, "<think>\n");
	put_str(t, lstrip_nl(rstrip_nl(reason)));
	eng_chat_text_puts(t, "\n</think>\n\n");
	put_str(t, lstrip_nl(content));
}

static void qwen3_assistant(const struct eng_chat_msg *m, bool after_query, bool last,
			    struct eng_chat_text *t)
{
	struct str reason, content;

	qwen3_parts(m, &reason, &content);
	eng_chat_text_block(t);
	eng_chat_text_puts(t, "<|im_start|>assistant\n");
	if (after_query && (last || reason.n > 0))
		put_think(reason, content, t);
	else
		put_str(t, content);
	qwen3_tool_calls(m, content, t);
	eng_chat_text_puts(t, "<|im_end|>\n");
}

/* Qwen2.5: "<|im_start|>assistant" and what follows it of a message with
 * tool calls. */
static void qwen25_tool_body(const struct eng_chat_msg *m, struct eng_chat_text *t)
{
	const json_t *tc;
	size_t j;

	if (m->content_len > 0) {
		eng_chat_text_put(t, "\n", 1);
		put_str(t, content_of(m));
	}
	json_array_foreach(m->tool_calls, j, tc)
		tool_call(tc, true, t);
}

/* Qwen3's last_query_index over msgs[0..n): the last user message that is
 * not a <tool_response> wrapper, else n - 1. */
static long last_query_index(const struct eng_chat_msg *msgs, size_t n)
{
	for (size_t i = n; i-- > 0;) {
		struct str c = content_of(&msgs[i]);

		if (is_role(&msgs[i], "user") &&
		    !(str_starts(c, "<tool_response>") && str_ends(c, "</tool_response>")))
			return (long)i;
	}
	return (long)n - 1;
}

static void plain_msg(const struct eng_chat_msg *m, struct eng_chat_text *t)
{
	eng_chat_text_block(t);
	eng_chat_text_puts(t, "<|im_start|>");
	eng_chat_text_puts(t, m->role);
	eng_chat_text_put(t, "\n", 1);
	put_str(t, content_of(m));
	eng_chat_text_puts(t, "<|im_end|>\n");
}

/* A tool message: opens the merged user message after a non-tool one,
 * closes it before one. */
static void tool_msg(const struct eng_chat_msg *msgs, size_t n, size_t i, struct eng_chat_text *t)
{
	if (i == 0 || !is_role(&msgs[i - 1], "tool")) {
		eng_chat_text_block(t);
		eng_chat_text_puts(t, "<|im_start|>user");
	}
	eng_chat_text_puts(t, "\n<tool_response>\n");
	put_str(t, content_of(&msgs[i]));
	eng_chat_text_puts(t, "\n</tool_response>");
	if (i + 1 == n || !is_role(&msgs[i + 1], "tool"))
		eng_chat_text_puts(t, "<|im_end|>\n");
}

static void qwen_messages(const struct eng_chat_spec *s, const struct eng_chat_input *in,
			  size_t n, struct eng_chat_text *t)
{
	const struct eng_chat_msg *msgs = in->msgs;
	long lqi = last_query_index(msgs, n);

	for (size_t i = 0; i < n; i++) {
		const struct eng_chat_msg *m = &msgs[i];

		if (is_role(m, "user") || (is_role(m, "system") && i > 0)) {
			plain_msg(m, t);
		} else if (is_role(m, "assistant") && s->kind == ENG_CHAT_QWEN3) {
			qwen3_assistant(m, (long)i > lqi, i + 1 == n, t);
		} else if (is_role(m, "assistant") && !truthy(m->tool_calls)) {
			plain_msg(m, t);
		} else if (is_role(m, "assistant")) {
			eng_chat_text_block(t);
			eng_chat_text_puts(t, "<|im_start|>assistant");
			qwen25_tool_body(m, t);
			eng_chat_text_puts(t, "<|im_end|>\n");
		} else if (is_role(m, "tool")) {
			tool_msg(msgs, n, i, t);
		}
	}
}

/* ---------------------------------------------------------------- families */

static void render_chatml(const struct eng_chat_spec *s, const struct eng_chat_input *in,
			  size_t n, struct eng_chat_text *t)
{
	if (s->tool_blocks || s->kind == ENG_CHAT_QWEN3) {
		qwen_system(s, in, n, t);
		qwen_messages(s, in, n, t);
		return;
	}
	/* Plain ChatML (Qwen2's template when it has a default system). */
	if (n > 0 && s->has_default_system && !is_role(&in->msgs[0], "system")) {
		eng_chat_text_block(t);
		eng_chat_text_puts(t, "<|im_start|>system\n");
		eng_chat_text_puts(t, s->default_system);
		eng_chat_text_puts(t, "<|im_end|>\n");
	}
	for (size_t i = 0; i < n; i++)
		plain_msg(&in->msgs[i], t);
}

static void render_llama3(const char *bos, const struct eng_chat_input *in, size_t n,
			  struct eng_chat_text *t)
{
	for (size_t i = 0; i < n; i++) {
		eng_chat_text_block(t);
		if (i == 0)
			eng_chat_text_puts(t, bos);
		eng_chat_text_puts(t, "<|start_header_id|>");
		eng_chat_text_puts(t, in->msgs[i].role);
		eng_chat_text_puts(t, "<|end_header_id|>\n\n");
		put_str(t, py_strip(content_of(&in->msgs[i])));
		eng_chat_text_puts(t, "<|eot_id|>");
	}
}

void eng_chat_tmpl_render(const struct eng_chat_spec *s, const char *bos,
			  const struct eng_chat_input *in, size_t n, bool add_generation_prompt,
			  struct eng_chat_text *t)
{
	if (s->kind == ENG_CHAT_LLAMA3)
		render_llama3(bos, in, n, t);
	else
		render_chatml(s, in, n, t);
	if (!add_generation_prompt)
		return;
	eng_chat_text_block(t);
	if (s->kind == ENG_CHAT_LLAMA3) {
		eng_chat_text_puts(t, "<|start_header_id|>assistant<|end_header_id|>\n\n");
		return;
	}
	eng_chat_text_puts(t, "<|im_start|>assistant\n");
	if (s->kind == ENG_CHAT_QWEN3 && !in->enable_thinking)
		eng_chat_text_puts(t, "<think>\n\n</think>\n\n");
}

void eng_chat_tmpl_reply(const struct eng_chat_spec *s, const struct eng_chat_msg *m,
			 struct eng_chat_text *t)
{
	struct str reason, content;
	size_t start = t->len;

	if (s->kind == ENG_CHAT_LLAMA3) {
		put_str(t, py_strip(content_of(m)));
	} else if (s->kind == ENG_CHAT_QWEN3) {
		/* Reasoning the server split off was generated as a <think>
		 * block; reasoning left in the content is replayed as recorded. */
		qwen3_parts(m, &reason, &content);
		if (m->reasoning && m->reasoning_len > 0)
			put_think(reason, content, t);
		else
			put_str(t, content_of(m));
		qwen3_tool_calls(m, content, t);
	} else if (s->tool_blocks && truthy(m->tool_calls)) {
		/* The history holds "<|im_start|>assistant" + this body; the
		 * generation prompt already ended with its first "\n". */
		qwen25_tool_body(m, t);
		if (!t->oom && t->len > start) {
			memmove(t->p + start, t->p + start + 1, t->len - start);
			t->len--;
		}
	} else {
		put_str(t, content_of(m));
	}
}
