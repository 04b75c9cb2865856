/*
 * gpu-batch-infer: the engine's command-line filter (gpu-batch-infer(1)).
 *
 * This file holds the modes that need only the tokenizer and the chat
 * template, not the model:
 *   --tokenize    {"text":...} records gain "ids" (other fields kept)
 *   --detokenize  {"ids":[...]} records gain "text"
 *   --render      conversation records -> one "prompt" record per turn with
 *                 its prompt length, the recorded one, and the reply length:
 *                 the token workload of a replay, without a GPU
 * A bad record (not JSON, no text/ids/messages, an id outside the
 * vocabulary) is named as "gpu-batch-infer: FILE:LINE: message"; without
 * --keep-going the run stops there, with it the rest is processed; either
 * way the exit status is 1.  A tokenizer that cannot be loaded is exit 3.
 * The inference modes (replay, score, generate) come with the engine.
 */
#include "config.h"
#include "tools/common/nd.h"
#include "engine/chat.h"
#include "engine/tokenizer.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum mode { MODE_NONE, MODE_TOKENIZE, MODE_DETOKENIZE, MODE_RENDER };

enum {
	OPT_TOKENIZE = 256,
	OPT_DETOKENIZE,
	OPT_RENDER,
	OPT_TOKENIZER,
	OPT_CHAT_TEMPLATE,
	OPT_KEEP_GOING,
	OPT_SKIP_SPECIAL,
};

static const struct option long_options[] = {
	{"tokenize", no_argument, NULL, OPT_TOKENIZE},
	{"detokenize", no_argument, NULL, OPT_DETOKENIZE},
	{"render", no_argument, NULL, OPT_RENDER},
	{"tokenizer", required_argument, NULL, OPT_TOKENIZER},
	{"chat-template", required_argument, NULL, OPT_CHAT_TEMPLATE},
	{"keep-going", no_argument, NULL, OPT_KEEP_GOING},
	{"skip-special-tokens", no_argument, NULL, OPT_SKIP_SPECIAL},
	{"output", required_argument, NULL, 'o'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

struct opts {
	enum mode mode;
	const char *tokenizer;
	const char *chat_template;
	const char *output;
	bool keep_going;
	bool skip_special;
};

struct ctx {
	struct opts o;
	struct eng_tokenizer *tok;
	struct eng_chat *chat;
	struct eng_ids ids;  /* reused per record */
	int status;
	bool stop;           /* a bad record without --keep-going, or a write error */
};

static void usage(void)
{
	printf("Usage: %s MODE --tokenizer=DIR [OPTION]... [FILE]...\n", nd_progname());
	fputs("Tokenizer and chat-template modes of the trajbench inference engine.\n"
	      "Reads NDJSON records from each FILE (standard input with no FILE, or -)\n"
	      "and writes NDJSON to standard output.\n"
	      "\n"
	      "Modes:\n"
	      "      --tokenize              add \"ids\" to records with a \"text\" string\n"
	      "      --detokenize            add \"text\" to records with an \"ids\" array\n"
	      "      --render                write one \"prompt\" record per turn of each\n"
	      "                              conversation record: prompt and reply lengths\n"
	      "The inference modes (replay, score, generate) come with the engine.\n"
	      "\n"
	      "Options:\n"
	      "      --tokenizer=DIR         tokenizer.json, or a model directory holding\n"
	      "                              it (and tokenizer_config.json)\n"
	      "      --chat-template=NAME    chatml, qwen3 or llama3 (default: recognized\n"
	      "                              from DIR/tokenizer_config.json)\n"
	      "      --skip-special-tokens   --detokenize leaves special tokens out\n"
	      "      --keep-going            go on after a bad record (exit status 1)\n"
	      "  -o, --output=FILE           write to FILE instead of standard output\n"
	      "  -h, --help                  display this help and exit\n"
	      "  -V, --version               output version information and exit\n"
	      "\n"
	      "Exit status: 0 ok; 1 some records were bad; 2 usage or system error;\n"
	      "3 the tokenizer could not be loaded.\n", stdout);
}

static int set_mode(struct opts *o, enum mode m, int *status)
{
	if (o->mode != MODE_NONE && o->mode != m) {
		*status = nd_usage_error("only one of --tokenize, --detokenize and --render");
		return -1;
	}
	o->mode = m;
	return 0;
}

/* Returns the index of the first file argument, or -1 when main must
 * return *status (0 after --help / --version). */
static int parse_options(int argc, char **argv, struct opts *o, int *status)
{
	int c;

	*status = ND_EXIT_OK;
	while ((c = getopt_long(argc, argv, ":o:hV", long_options, NULL)) != -1) {
		switch (c) {
		case OPT_TOKENIZE:
		case OPT_DETOKENIZE:
		case OPT_RENDER:
			if (set_mode(o, c == OPT_TOKENIZE ? MODE_TOKENIZE : c == OPT_DETOKENIZE
					? MODE_DETOKENIZE : MODE_RENDER, status))
				return -1;
			break;
		case OPT_TOKENIZER: o->tokenizer = optarg; break;
		case OPT_CHAT_TEMPLATE: o->chat_template = optarg; break;
		case OPT_KEEP_GOING: o->keep_going = true; break;
		case OPT_SKIP_SPECIAL: o->skip_special = true; break;
		case 'o': o->output = optarg; break;
		case 'h': usage(); return -1;
		case 'V': nd_print_version(); return -1;
		case ':':
			*status = nd_usage_error("option '%s' requires an argument", argv[optind - 1]);
			return -1;
		default:
			if (optopt)
				*status = nd_usage_error("invalid option -- '%c'", optopt);
			else
				*status = nd_usage_error("unrecognized option '%s'", argv[optind - 1]);
			return -1;
		}
	}
	if (o->mode == MODE_NONE)
		*status = nd_usage_error("no mode given (--tokenize, --detokenize or --render); "
					 "the inference modes come with the engine");
	else if (!o->tokenizer)
		*status = nd_usage_error("--tokenizer=DIR is required");
	else if (o->chat_template && o->mode != MODE_RENDER)
		*status = nd_usage_error("--chat-template applies to --render only");
	return *status ? -1 : optind;
}

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
	if (!c->o.keep_going)
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
				 c->o.skip_special ? ENG_TOK_DECODE_SKIP_SPECIAL : 0, &bytes, &len,
				 &err))
		return bad_record(c, r, "%s", err.msg);
	/* tokens may split a character: decode lossily, as HF does */
	text = eng_utf8_sanitize(bytes, len, &len);
	json_object_set_new(rec, "text", text ? json_stringn(text, len) : json_null());
	free(text);
	free(bytes);
	write_rec(c, rec);
}

/* Borrows role/content of a messages array; NULL with *bad set when a
 * message lacks them. */
static struct eng_chat_msg *messages_of(json_t *arr, size_t *n, size_t *bad)
{
	struct eng_chat_msg *m = calloc(json_array_size(arr) + 1, sizeof(*m));
	json_t *e;
	size_t i;

	if (!m)
		return NULL;
	json_array_foreach(arr, i, e) {
		json_t *role = json_object_get(e, "role"), *content = json_object_get(e, "content");

		if (!json_is_string(role) || !json_is_string(content)) {
			*bad = i;
			free(m);
			return NULL;
		}
		m[i] = (struct eng_chat_msg){ json_string_value(role), json_string_value(content),
					      json_string_length(content) };
	}
	*n = json_array_size(arr);
	return m;
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
	json_t *arr = json_object_get(rec, "messages");
	struct eng_chat_msg *msgs;
	struct eng_chat_turn *turns;
	struct eng_error err;
	size_t n = 0, nt, bad = 0;

	if (type && strcmp(type, "conversation") != 0)
		return bad_record(c, r, "expected a conversation record, got type \"%s\"", type);
	if (!json_is_array(arr))
		return bad_record(c, r, "%s", "no \"messages\" array");
	if (!(msgs = messages_of(arr, &n, &bad)))
		return bad_record(c, r, "messages[%zu]: needs \"role\" and \"content\" strings", bad);
	if (eng_chat_turns(c->chat, msgs, n, &turns, &nt, &err)) {
		free(msgs);
		return bad_record(c, r, "%s", err.msg);
	}
	write_turns(c, rec, arr, turns, nt);
	free(turns);
	free(msgs);
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
		else if (c->o.mode == MODE_TOKENIZE)
			do_tokenize(c, r, rec);
		else if (c->o.mode == MODE_DETOKENIZE)
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
	enum eng_chat_kind kind;
	char buf[1600];
	char *dir;
	int rc;

	if (eng_tokenizer_load(c->o.tokenizer, &c->tok, &err)) {
		nd_error("%s", eng_error_format(&err, buf, sizeof(buf)));
		return ND_EXIT_UNAVAILABLE;
	}
	if (c->o.mode != MODE_RENDER)
		return 0;
	if (c->o.chat_template) {
		if (eng_chat_kind_from_name(c->o.chat_template, &kind, &err))
			return nd_usage_error("%s", err.msg);
	} else {
		dir = model_dir(c->o.tokenizer);
		rc = dir ? eng_chat_kind_from_dir(dir, c->tok, &kind, &err) : ENG_E_NOMEM;
		free(dir);
		if (rc) {
			nd_error("%s", eng_error_format(&err, buf, sizeof(buf)));
			return ND_EXIT_UNAVAILABLE;
		}
	}
	if (eng_chat_new(c->tok, kind, &c->chat, &err)) {
		nd_error("%s", err.msg);
		return ND_EXIT_UNAVAILABLE;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct ctx c = { 0 };
	int first, status;

	nd_init(argv[0]);
	first = parse_options(argc, argv, &c.o, &status);
	if (first < 0)
		return status == ND_EXIT_OK ? nd_finish(status) : status;
	if (c.o.output && !freopen(c.o.output, "w", stdout)) {
		nd_error("%s: %s", c.o.output, strerror(errno));
		return ND_EXIT_USAGE;
	}
	if ((status = load(&c)) != 0) {
		eng_tokenizer_free(c.tok);
		return status;
	}
	if (first == argc)
		read_input(&c, "-");
	for (int i = first; !c.stop && i < argc; i++)
		read_input(&c, argv[i]);
	eng_ids_free(&c.ids);
	eng_chat_free(c.chat);
	eng_tokenizer_free(c.tok);
	return nd_finish(c.status);
}
