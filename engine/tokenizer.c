/*
 * tokenizer.c: loading a Hugging Face tokenizer.json into struct
 * eng_tokenizer, and the read-only queries.
 *
 * What is read: model (type "BPE": vocab, merges as "a b" strings or
 * ["a","b"] pairs, ignore_merges), added_tokens (with their lstrip, rstrip,
 * single_word and special flags), normalizer (null, NFC/NFD/NFKC/NFKD or a
 * Sequence of them) and pre_tokenizer (ByteLevel alone, or a Sequence of
 * Split and ByteLevel stages).  Vocabulary strings are mapped from
 * ByteLevel characters back to raw bytes here, once, so that encoding works
 * on bytes throughout.  post_processor is ignored on purpose (the chat
 * template adds every marker itself) and the decoder is taken to be
 * ByteLevel, which is what byte-level BPE implies.
 *
 * Refused with ENG_E_UNSUPPORTED rather than half-run: other model types
 * (WordPiece, Unigram), BPE dropout, byte_fallback, subword prefixes and
 * suffixes, other normalizers (Lowercase, Replace, ...), pre-tokenizers
 * that are not byte-level, and Split behaviours other than Isolated and
 * Removed.
 */
#include "engine/tokenizer_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#define GPT2_REGEX \
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

struct load_ctx {
	struct eng_tokenizer *tok;
	const char *path;
	struct eng_error *err;
	int16_t inv[324]; /* ByteLevel character -> byte, -1 if none */
	bool byte_level;
};

static int fmt_err(struct load_ctx *c, int code, const char *msg)
{
	return eng_error_set(c->err, code, c->path, 0, "%s", msg);
}

/* Maps a ByteLevel string to the bytes it stands for, into out (at least
 * len bytes).  A character outside the ByteLevel alphabet is kept as its
 * own UTF-8 bytes. */
static size_t bl_to_bytes(const struct load_ctx *c, const char *s, size_t len, char *out)
{
	size_t n = 0, i = 0;

	while (i < len) {
		uint8_t b = (uint8_t)s[i];
		size_t cl = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
		uint32_t cp = b;

		if (cl > len - i)
			cl = len - i;
		if (cl == 2)
			cp = ((b & 0x1Fu) << 6) | ((uint8_t)s[i + 1] & 0x3Fu);
		if (cp < 324 && (cl == 1 || cl == 2) && c->inv[cp] >= 0) {
			out[n++] = (char)c->inv[cp];
		} else {
			memcpy(out + n, s + i, cl);
			n += cl;
		}
		i += cl;
	}
	return n;
}

static int set_entry(struct load_ctx *c, int32_t id, const char *s, size_t len, bool map)
{
	struct eng_tok_entry *e = &c->tok->tokens[id];
	char *b;

	if (e->bytes)
		return 0; /* the vocabulary entry wins over an added token's text */
	b = malloc(len + 1);
	if (!b)
		return fmt_err(c, ENG_E_NOMEM, "out of memory");
	e->len = map ? (uint32_t)bl_to_bytes(c, s, len, b) : (uint32_t)len;
	if (!map)
		memcpy(b, s, len);
	b[e->len] = '\0';
	e->bytes = b;
	return 0;
}

/* ---------------------------------------------------------------- model */

static int load_vocab(struct load_ctx *c, json_t *vocab, json_t *added)
{
	struct eng_tokenizer *tok = c->tok;
	const char *key;
	json_t *v;
	int64_t max_id = -1;
	size_t i;

	json_object_foreach(vocab, key, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) >= INT32_MAX - 1)
			return fmt_err(c, ENG_E_FORMAT, "model.vocab: ids must be non-negative integers");
		if (json_integer_value(v) > max_id)
			max_id = json_integer_value(v);
	}
	json_array_foreach(added, i, v) {
		json_int_t id = json_integer_value(json_object_get(v, "id"));
		if (id < 0 || id >= INT32_MAX - 1)
			return fmt_err(c, ENG_E_FORMAT, "added_tokens: bad id");
		if (id > max_id)
			max_id = id;
	}
	tok->n_tokens = (int32_t)(max_id + 1);
	tok->tokens = calloc((size_t)tok->n_tokens + 1, sizeof(*tok->tokens));
	if (!tok->tokens || eng_strmap_init(&tok->vocab, json_object_size(vocab)))
		return fmt_err(c, ENG_E_NOMEM, "out of memory");
	json_object_foreach(vocab, key, v) {
		int32_t id = (int32_t)json_integer_value(v);
		int rc = set_entry(c, id, key, strlen(key), c->byte_level);

		if (rc)
			return rc;
		if (eng_strmap_put(&tok->vocab, tok->tokens, id))
			return fmt_err(c, ENG_E_NOMEM, "out of memory");
	}
	return 0;
}

/* Splits one merges entry into its two sides (pointers into the JSON). */
static int merge_sides(json_t *m, const char **a, size_t *al, const char **b, size_t *bl)
{
	if (json_is_string(m)) {
		const char *s = json_string_value(m), *sp = strchr(s, ' ');

		if (!sp || strchr(sp + 1, ' '))
			return -1;
		*a = s;
		*al = (size_t)(sp - s);
		*b = sp + 1;
		*bl = strlen(sp + 1);
		return 0;
	}
	if (json_is_array(m) && json_array_size(m) == 2 &&
	    json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
		*a = json_string_value(json_array_get(m, 0));
		*al = json_string_length(json_array_get(m, 0));
		*b = json_string_value(json_array_get(m, 1));
		*bl = json_string_length(json_array_get(m, 1));
		return 0;
	}
	return -1;
}

static int load_merges(struct load_ctx *c, json_t *merges)
{
	struct eng_tokenizer *tok = c->tok;
	char *buf = NULL;
	size_t cap = 0, i;
	json_t *m;
	int rc = 0;

	if (eng_merges_init(tok, json_array_size(merges)))
		return fmt_err(c, ENG_E_NOMEM, "out of memory");
	json_array_foreach(merges, i, m) {
		const char *a, *b;
		size_t al, bl, na, nb;
		int32_t ia, ib, im;

		if (merge_sides(m, &a, &al, &b, &bl))
			return free(buf), eng_error_set(c->err, ENG_E_FORMAT, c->path, 0,
						     "model.merges[%zu]: not \"a b\" or [\"a\",\"b\"]", i);
		if (al + bl > cap) {
			char *nb2 = realloc(buf, cap = 2 * (al + bl));
			if (!nb2)
				return free(buf), fmt_err(c, ENG_E_NOMEM, "out of memory");
			buf = nb2;
		}
		na = bl_to_bytes(c, a, al, buf);
		nb = bl_to_bytes(c, b, bl, buf + na);
		ia = eng_strmap_get(&tok->vocab, tok->tokens, buf, na);
		ib = eng_strmap_get(&tok->vocab, tok->tokens, buf + na, nb);
		im = eng_strmap_get(&tok->vocab, tok->tokens, buf, na + nb);
		if (ia < 0 || ib < 0 || im < 0) {
			rc = eng_error_set(c->err, ENG_E_FORMAT, c->path, 0,
					   "model.merges[%zu]: a side or the merged token is not in "
					   "the vocabulary", i);
			break;
		}
		if (eng_merges_put(tok, ia, ib, (int32_t)i, im)) {
			rc = fmt_err(c, ENG_E_NOMEM, "out of memory");
			break;
		}
	}
	free(buf);
	return rc;
}

static int check_model(struct load_ctx *c, json_t *model)
{
	const char *type = json_string_value(json_object_get(model, "type"));
	json_t *d = json_object_get(model, "dropout");
	const char *pre = json_string_value(json_object_get(model, "continuing_subword_prefix"));
	const char *suf = json_string_value(json_object_get(model, "end_of_word_suffix"));

	if (!json_is_object(model))
		return fmt_err(c, ENG_E_FORMAT, "no \"model\" object");
	if (type && strcmp(type, "BPE") != 0)
		return eng_error_set(c->err, ENG_E_UNSUPPORTED, c->path, 0,
				     "model type %s is not supported (only BPE)", type);
	if (!json_is_object(json_object_get(model, "vocab")) ||
	    !json_is_array(json_object_get(model, "merges")))
		return fmt_err(c, ENG_E_FORMAT, "model.vocab must be an object and model.merges an array");
	if ((d && !json_is_null(d) && json_number_value(d) != 0.0) ||
	    json_is_true(json_object_get(model, "byte_fallback")) || (pre && *pre) || (suf && *suf))
		return fmt_err(c, ENG_E_UNSUPPORTED,
			       "BPE dropout, byte_fallback and subword prefixes/suffixes are not supported");
	c->tok->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
	return 0;
}

/* ---------------------------------------------------------------- added tokens */

static int cmp_len_desc(const void *a, const void *b, void *arg)
{
	const struct eng_added *t = arg;
	size_t la = t[*(const size_t *)a].len, lb = t[*(const size_t *)b].len;

	return la < lb ? 1 : la > lb ? -1 : 0;
}

static int load_added(struct load_ctx *c, json_t *added)
{
	struct eng_tokenizer *tok = c->tok;
	size_t i, n = json_array_size(added);
	json_t *a;

	tok->added = calloc(n + 1, sizeof(*tok->added));
	tok->added_by_len = calloc(n + 1, sizeof(size_t));
	if (!tok->added || !tok->added_by_len)
		return fmt_err(c, ENG_E_NOMEM, "out of memory");
	json_array_foreach(added, i, a) {
		json_t *content = json_object_get(a, "content");
		struct eng_added *t = &tok->added[tok->n_added];
		int32_t id = (int32_t)json_integer_value(json_object_get(a, "id"));
		int rc;

		if (!json_is_string(content) || json_string_length(content) == 0 ||
		    !json_is_integer(json_object_get(a, "id")))
			return eng_error_set(c->err, ENG_E_FORMAT, c->path, 0,
					     "added_tokens[%zu]: needs \"id\" and a non-empty \"content\"", i);
		t->len = json_string_length(content);
		t->content = malloc(t->len + 1);
		if (!t->content)
			return fmt_err(c, ENG_E_NOMEM, "out of memory");
		memcpy(t->content, json_string_value(content), t->len + 1);
		t->id = id;
		t->lstrip = json_is_true(json_object_get(a, "lstrip"));
		t->rstrip = json_is_true(json_object_get(a, "rstrip"));
		t->single_word = json_is_true(json_object_get(a, "single_word"));
		t->special = json_is_true(json_object_get(a, "special"));
		tok->n_added++;
		if ((rc = set_entry(c, id, t->content, t->len, false)))
			return rc;
		tok->tokens[id].added = 1;
		tok->tokens[id].special = t->special;
		tok->added_first[(uint8_t)t->content[0]] = 1;
		tok->added_by_len[i] = i;
	}
	qsort_r(tok->added_by_len, tok->n_added, sizeof(size_t), cmp_len_desc, tok->added);
	return 0;
}

/* ---------------------------------------------------------------- normalizer */

static int add_norm(struct load_ctx *c, json_t *n, int depth)
{
	struct eng_tokenizer *tok = c->tok;
	const char *type = json_string_value(json_object_get(n, "type"));
	static const char *const names[] = { "NFC", "NFD", "NFKC", "NFKD" };

	if (json_is_null(n) || !n)
		return 0;
	if (!type)
		return fmt_err(c, ENG_E_FORMAT, "normalizer without \"type\"");
	if (strcmp(type, "Sequence") == 0 && depth < 4) {
		json_t *list = json_object_get(n, "normalizers"), *e;
		size_t i;
		int rc;

		json_array_foreach(list, i, e)
			if ((rc = add_norm(c, e, depth + 1)))
				return rc;
		return 0;
	}
	for (int k = 0; k < 4; k++) {
		if (strcmp(type, names[k]) == 0) {
			if (tok->n_norms == ENG_MAX_NORMS)
				return fmt_err(c, ENG_E_UNSUPPORTED, "too many normalizers");
			tok->norms[tok->n_norms++] = (enum eng_norm_kind)k;
			return 0;
		}
	}
	return eng_error_set(c->err, ENG_E_UNSUPPORTED, c->path, 0,
			     "normalizer %s is not supported", type);
}

/* ---------------------------------------------------------------- pre-tokenizer */

static int add_split(struct load_ctx *c, json_t *p)
{
	struct eng_pretok_stage *st = &c->tok->stages[c->tok->n_stages];
	json_t *pat = json_object_get(p, "pattern");
	json_t *re = json_object_get(pat, "Regex"), *str = json_object_get(pat, "String");
	const char *beh = json_string_value(json_object_get(p, "behavior"));
	int rc;

	if (!json_is_string(re) && !json_is_string(str))
		return fmt_err(c, ENG_E_FORMAT, "Split pre-tokenizer without a pattern");
	if (json_is_true(json_object_get(p, "invert")) ||
	    (beh && strcmp(beh, "Isolated") != 0 && strcmp(beh, "Removed") != 0))
		return fmt_err(c, ENG_E_UNSUPPORTED,
			       "Split pre-tokenizer: only behavior Isolated or Removed, not inverted");
	st->removed = beh && strcmp(beh, "Removed") == 0;
	if (json_is_string(re))
		rc = eng_pretok_compile(st, json_string_value(re), json_string_length(re), false, c->err);
	else
		rc = eng_pretok_compile(st, json_string_value(str), json_string_length(str), true, c->err);
	if (rc) {
		if (c->err)
			snprintf(c->err->file, sizeof(c->err->file), "%s", c->path);
		return rc;
	}
	c->tok->n_stages++;
	return 0;
}

static int add_bytelevel(struct load_ctx *c, json_t *p)
{
	struct eng_pretok_stage *st = &c->tok->stages[c->tok->n_stages];
	json_t *ur = json_object_get(p, "use_regex");
	int rc;

	c->byte_level = true;
	st->add_prefix_space = json_is_true(json_object_get(p, "add_prefix_space"));
	if (!ur || json_is_true(ur)) {
		rc = eng_pretok_compile(st, GPT2_REGEX, strlen(GPT2_REGEX), false, c->err);
		if (rc)
			return rc;
	}
	if (st->re || st->add_prefix_space)
		c->tok->n_stages++;
	return 0;
}

static int add_pretok(struct load_ctx *c, json_t *p, int depth)
{
	const char *type = json_string_value(json_object_get(p, "type"));

	if (!type)
		return fmt_err(c, ENG_E_FORMAT, "pre_tokenizer without \"type\"");
	if (c->tok->n_stages == ENG_MAX_STAGES)
		return fmt_err(c, ENG_E_UNSUPPORTED, "too many pre-tokenizers");
	if (strcmp(type, "Sequence") == 0 && depth < 4) {
		json_t *list = json_object_get(p, "pretokenizers"), *e;
		size_t i;
		int rc;

		json_array_foreach(list, i, e)
			if ((rc = add_pretok(c, e, depth + 1)))
				return rc;
		return 0;
	}
	if (strcmp(type, "Split") == 0)
		return add_split(c, p);
	if (strcmp(type, "ByteLevel") == 0)
		return add_bytelevel(c, p);
	return eng_error_set(c->err, ENG_E_UNSUPPORTED, c->path, 0,
			     "pre-tokenizer %s is not supported", type);
}

/* ---------------------------------------------------------------- load */

static int load_json(struct load_ctx *c, json_t *root)
{
	struct eng_tokenizer *tok = c->tok;
	json_t *model = json_object_get(root, "model");
	json_t *added = json_object_get(root, "added_tokens");
	json_t *pre = json_object_get(root, "pre_tokenizer");
	int rc;

	if (added && !json_is_array(added) && !json_is_null(added))
		return fmt_err(c, ENG_E_FORMAT, "added_tokens must be an array");
	if ((rc = check_model(c, model)))
		return rc;
	if ((rc = add_norm(c, json_object_get(root, "normalizer"), 0)))
		return rc;
	if (!pre || json_is_null(pre))
		return fmt_err(c, ENG_E_UNSUPPORTED, "a tokenizer without pre_tokenizer is not byte-level");
	if ((rc = add_pretok(c, pre, 0)))
		return rc;
	if (!c->byte_level)
		return fmt_err(c, ENG_E_UNSUPPORTED, "only byte-level BPE (a ByteLevel pre-tokenizer) is supported");
	if ((rc = load_vocab(c, json_object_get(model, "vocab"), added)) ||
	    (rc = load_merges(c, json_object_get(model, "merges"))) ||
	    (rc = load_added(c, added)))
		return rc;
	for (int b = 0; b < 256; b++) {
		char ch = (char)b;
		tok->byte_id[b] = eng_strmap_get(&tok->vocab, tok->tokens, &ch, 1);
	}
	return 0;
}

static char *resolve_path(const char *path)
{
	struct stat st;
	size_t n = strlen(path);
	char *p = malloc(n + sizeof("/tokenizer.json"));

	if (!p)
		return NULL;
	memcpy(p, path, n + 1);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		memcpy(p + n, "/tokenizer.json", sizeof("/tokenizer.json"));
	return p;
}

int eng_tokenizer_load(const char *path, struct eng_tokenizer **out, struct eng_error *err)
{
	struct load_ctx c = { 0 };
	json_error_t jerr;
	json_t *root;
	char *file = resolve_path(path);
	FILE *f;
	int rc;

	*out = NULL;
	if (!file)
		return eng_error_set(err, ENG_E_NOMEM, path, 0, "out of memory");
	f = fopen(file, "rb");
	if (!f) {
		rc = eng_error_set(err, ENG_E_IO, file, 0, "%s", strerror(errno));
		free(file);
		return rc;
	}
	root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
	fclose(f);
	if (!root) {
		rc = jerr.line <= 0 ? ENG_E_IO : ENG_E_FORMAT;
		eng_error_set(err, rc, file, jerr.line > 0 ? jerr.line : 0, "%s", jerr.text);
		free(file);
		return rc;
	}
	c.tok = calloc(1, sizeof(*c.tok));
	c.path = file;
	c.err = err;
	for (int i = 0; i < 324; i++)
		c.inv[i] = (int16_t)eng_bytelevel_byte((uint32_t)i);
	rc = c.tok ? load_json(&c, root) : eng_error_set(err, ENG_E_NOMEM, file, 0, "out of memory");
	json_decref(root);
	free(file);
	if (rc) {
		eng_tokenizer_free(c.tok);
		return rc;
	}
	*out = c.tok;
	return 0;
}

void eng_tokenizer_free(struct eng_tokenizer *tok)
{
	if (!tok)
		return;
	for (int32_t i = 0; tok->tokens && i < tok->n_tokens; i++)
		free(tok->tokens[i].bytes);
	free(tok->tokens);
	for (size_t i = 0; i < tok->n_added; i++)
		free(tok->added[i].content);
	free(tok->added);
	free(tok->added_by_len);
	eng_strmap_free(&tok->vocab);
	free(tok->merges);
	eng_pretok_free(tok);
	eng_bpe_cache_free(&tok->cache);
	free(tok);
}

/* ---------------------------------------------------------------- queries */

int32_t eng_tokenizer_token_id(const struct eng_tokenizer *tok, const char *text)
{
	size_t n = strlen(text);

	for (size_t i = 0; i < tok->n_added; i++)
		if (tok->added[i].len == n && memcmp(tok->added[i].content, text, n) == 0)
			return tok->added[i].id;
	return eng_strmap_get(&tok->vocab, tok->tokens, text, n);
}

const char *eng_tokenizer_token_bytes(const struct eng_tokenizer *tok, int32_t id, size_t *len)
{
	if (id < 0 || id >= tok->n_tokens || !tok->tokens[id].bytes)
		return NULL;
	*len = tok->tokens[id].len;
	return tok->tokens[id].bytes;
}

size_t eng_tokenizer_max_bytes_per_token(const struct eng_tokenizer *tok)
{
	size_t max = 0;

	for (size_t i = 0; i < tok->n_added; i++)
		if (tok->added[i].lstrip || tok->added[i].rstrip)
			return 0; /* it eats any run of white space beside it */
	for (int i = 0; i < tok->n_stages; i++)
		if (tok->stages[i].removed)
			return 0; /* what the split drops is in no token */
	for (int32_t id = 0; id < tok->n_tokens; id++)
		if (tok->tokens[id].len > max)
			max = tok->tokens[id].len;
	/* Normalizing shrinks at most 4 to 1 (NFKC maps 4-byte mathematical
	 * letters to ASCII; NFC's largest composition, Hangul L+V+T, is 9
	 * bytes to 3). */
	return tok->n_norms > 0 ? 4 * max : max;
}

int32_t eng_tokenizer_vocab_size(const struct eng_tokenizer *tok)
{
	return tok->n_tokens;
}

int eng_tokenizer_is_special(const struct eng_tokenizer *tok, int32_t id)
{
	return id >= 0 && id < tok->n_tokens && tok->tokens[id].special;
}

int eng_tokenizer_is_added(const struct eng_tokenizer *tok, int32_t id)
{
	return id >= 0 && id < tok->n_tokens && tok->tokens[id].added;
}

size_t eng_tokenizer_n_added(const struct eng_tokenizer *tok)
{
	return tok->n_added;
}

int32_t eng_tokenizer_added_id(const struct eng_tokenizer *tok, size_t i)
{
	return i < tok->n_added ? tok->added[i].id : -1;
}
