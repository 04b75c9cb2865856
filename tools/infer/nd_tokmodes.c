/*
 * nd_tokmodes.c: the tokenizer and chat-template modes of gpu-batch-infer
 * (see nd_tokmodes.h).  A bad record (not JSON, no text/ids/messages, an id
 * outside the vocabulary) is named as "gpu-batch-infer: FILE:LINE: message";
 * without --keep-going the run stops there, with it the rest is processed;
 * either way the exit status is 1.
 */
#include "tools/infer/nd_tokmodes.h"
#include "tools/common/nd.h"
#include "engine/engine.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct ctx {
	const struct nd_tok_opts *o;
	struct eng_tokenizer *tok;
	struct eng_chat *chat;
	struct eng_ids ids;  /* reused per record */
	int status;
	bool stop;           /* a bad record without --keep-going, or a write error */
};

/* ---------------------------------------------------------------- records */

/* Reports a bad record; stops the run unless --keep-going. */
static void bad_record(struct ctx *c, const struct nd_reader *r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void bad_record(struct ctx *c, const struct nd_reader *r, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	nd_error_at(nd_reader_name(r), nd_reader_lineno(r), "%s", msg);
	if (c->status < ND_EXIT_BAD_INPUT)
		c->status = ND_EXIT_BAD_INPUT;
	if (!c->o->keep_going)
		c->stop = true;
}

static void write_rec(struct ctx *c, json_t *rec)
{
	if (nd_write_json(rec) != 0)
		c->stop = true; /* nd_finish reports it */
}

static void do_tokenize(struct ctx *c, const struct nd_reader *r, json_t *rec)
{
	json_t *text = json_object_get(rec, "text"), *arr;
	struct eng_error err;

	if (!json_is_string(text))
		return bad_record(c, r, "%s", "no \"text\" string");
	c->ids.n = 0;
	if (eng_tokenizer_encode(c->tok, json_string_value(text), json_string_length(text),
				 &c->ids, 0, &err))
		return bad_record(c, r, "%s", err.msg);
	arr = json_array();
	for (size_t i = 0; arr && i < c->ids.n; i++)
		json_array_append_new(arr, json_integer(c->ids.ids[i]));
	json_object_set_new(rec, "ids", arr);
	write_rec(c, rec);
}

static void do_detokenize(struct ctx *c, const struct nd_reader *r, json_t *rec)
{
	json_t *ids = json_object_get(rec, "ids"), *v;
	int32_t n_vocab = eng_tokenizer_vocab_size(c->tok);
	char *bytes = NULL, *text;
	struct eng_error err;
	size_t i, len;

	if (!json_is_array(ids))
		return bad_record(c, r, "%s", "no \"ids\" array");
	c->ids.n = 0;
	json_array_foreach(ids, i, v) {
		json_int_t id = json_integer_value(v);
		size_t bl;

		if (!json_is_integer(v))
			return bad_record(c, r, "ids[%zu]: not an integer", i);
		if (id < 0 || id >= n_vocab || !eng_tokenizer_token_bytes(c->tok, (int32_t)id, &bl))
			return bad_record(c, r, "ids[%zu]: %lld is not a token id (vocabulary of %ld)",
					  i, (long long)id, (long)n_vocab);
		eng_ids_push(&c->ids, (int32_t)id);
	}
	if (eng_tokenizer_decode(c->tok, c->ids.ids, c->ids.n,
				 c->o->skip_special ? ENG_TOK_DECODE_SKIP_SPECIAL : 0, &bytes, &len,
				 &err))
		return bad_record(c, r, "%s", err.msg);
	/* tokens may split a character: decode lossily, as HF does */
	text = eng_utf8_sanitize(bytes, len, &len);
	json_object_set_new(rec, "text", text ? json_stringn(text, len) : json_null());
	free(text);
	free(bytes);
	write_rec(c, rec);
}

static json_t *int_or_null(json_t *v)
{
	return json_is_integer(v) ? json_integer(json_integer_value(v)) : json_null();
}

static void write_turns(struct ctx *c, json_t *rec, json_t *arr, const struct eng_chat_turn *t,
			size_t nt)
{
	json_t *id = json_object_get(rec, "id");

	for (size_t k = 0; k < nt && !c->stop; k++) {
		json_t *msg = json_array_get(arr, t[k].msg_index), *turn = json_object_get(msg, "turn");
		json_t *out = json_object();

		json_object_set_new(out, "type", json_string("prompt"));
		json_object_set_new(out, "conversation_id", id ? json_copy(id) : json_null());
		json_object_set_new(out, "turn", json_is_integer(turn) ? json_copy(turn)
								      : json_integer((json_int_t)k));
		json_object_set_new(out, "prompt_len", json_integer((json_int_t)t[k].prompt_len));
		json_object_set_new(out, "recorded_prompt_len",
				    int_or_null(json_object_get(msg, "token_usage_prompt")));
		json_object_set_new(out, "output_len", json_integer((json_int_t)t[k].reply_len));
		write_rec(c, out);
		json_decref(out);
	}
}

static void do_render(struct ctx *c, const struct nd_reader *r, json_t *rec)
{
	const char *type = json_string_value(json_object_get(rec, "type"));
	struct eng_chat_input in;
	struct eng_chat_turn *turns;
	struct eng_error err;
	size_t nt;

	if (type && strcmp(type, "conversation") != 0)
		return bad_record(c, r, "expected a conversation record, got type \"%s\"", type);
	if (eng_chat_input_from_json(rec, &in, &err))
		return bad_record(c, r, "%s", err.msg);
	if (eng_chat_turns(c->chat, &in, &turns, &nt, &err)) {
		eng_chat_input_free(&in);
		return bad_record(c, r, "%s", err.msg);
	}
	write_turns(c, rec, json_object_get(rec, "messages"), turns, nt);
	free(turns);
	eng_chat_input_free(&in);
}

static void read_input(struct ctx *c, const char *path)
{
	struct nd_reader *r = nd_reader_open(path);
	char err[256], *line;
	size_t len;
	int rc;

	if (!r) {
		nd_error("%s: %s", path, strerror(errno));
		c->status = ND_EXIT_USAGE;
		return;
	}
	while (!c->stop && (rc = nd_reader_next(r, &line, &len)) == 1) {
		json_t *rec = nd_parse_object(line, len, err, sizeof(err));

		if (!rec)
			bad_record(c, r, "%s", err);
		else if (c->o->mode == ND_TOK_TOKENIZE)
			do_tokenize(c, r, rec);
		else if (c->o->mode == ND_TOK_DETOKENIZE)
			do_detokenize(c, r, rec);
		else
			do_render(c, r, rec);
		json_decref(rec);
	}
	if (!c->stop && rc < 0) {
		nd_error_at(nd_reader_name(r), 0, "read error: %s", strerror(errno));
		c->status = ND_EXIT_USAGE;
	}
	nd_reader_close(r);
}

/* ---------------------------------------------------------------- setup */

/* The directory of a tokenizer argument (itself, or the file's folder). */
static char *model_dir(const char *path)
{
	struct stat st;
	char *d = strdup(path), *slash;

	if (d && !(stat(path, &st) == 0 && S_ISDIR(st.st_mode))) {
		slash = strrchr(d, '/');
		if (slash)
			*slash = '\0';
		else
			strcpy(d, ".");
	}
	return d;
}

static int load(struct ctx *c)
{
	struct eng_error err;
	struct eng_chat_spec spec;
	char buf[1600];
	char *dir;
	int rc;

	if (eng_tokenizer_load(c->o->tokenizer, &c->tok, &err)) {
		nd_error("%s", eng_error_format(&err, buf, sizeof(buf)));
		return ND_EXIT_UNAVAILABLE;
	}
	if (c->o->mode != ND_TOK_RENDER)
		return 0;
	if (c->o->chat_template) {
		if (eng_chat_spec_from_name(c->o->chat_template, &spec, &err))
			return nd_usage_error("%s", err.msg);
	} else {
		dir = model_dir(c->o->tokenizer);
		rc = dir ? eng_chat_spec_from_dir(dir, c->tok, &spec, &err) : ENG_E_NOMEM;
		free(dir);
		if (rc) {
			nd_error("%s", eng_error_format(&err, buf, sizeof(buf)));
			return ND_EXIT_UNAVAILABLE;
		}
	}
	if (eng_chat_new(c->tok, &spec, &c->chat, &err)) {
		nd_error("%s", err.msg);
		return ND_EXIT_UNAVAILABLE;
	}
	return 0;
}

int nd_tokmodes_run(const struct nd_tok_opts *o, char **files, int n_files)
{
	struct ctx c = { .o = o };
	int status;

	if ((status = load(&c)) != 0) {
		eng_tokenizer_free(c.tok);
		return status;
	}
	if (n_files == 0)
		read_input(&c, "-");
	for (int i = 0; !c.stop && i < n_files; i++)
		read_input(&c, files[i]);
	eng_ids_free(&c.ids);
	eng_chat_free(c.chat);
	eng_tokenizer_free(c.tok);
	return c.status;
}
