/*
 * nd_yaml.c: the top-level string values of a YAML document, via libyaml.
 *
 * Why events and not libyaml's document API: a config is one mapping and we
 * keep only its scalar values, so walking the event stream once, skipping
 * nested collections by depth, is shorter and keeps no tree.  The strings
 * are libyaml's scalars verbatim; libyaml and PyYAML share one scanner
 * design, so block scalars (|, |-, >, indentation indicators, chomping)
 * come out byte for byte as yaml.safe_load returns them (the tests check
 * this on R2E-Gym's real configs).
 *
 * Like yaml.safe_load it accepts exactly one document, lets a repeated key
 * override the earlier one, resolves aliases to anchored nodes and applies
 * YAML 1.1's implicit types to plain scalars: "yes", "~", "12", "1.5",
 * "2025-04-01" are not strings, so a config saying `system_prompt: no` is
 * refused rather than read as the text "no".  It refuses to do more:
 * values below the top level are not kept, and no tag other than !!str
 * makes a string.
 */
#include "tools/render/nd_yaml.h"

#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct nd_yaml_entry {
	char *key;
	char *value;     /* NULL unless is_string */
	size_t len;
	long line;       /* 1-based line of the key */
	bool is_string;
};

struct nd_yaml_map {
	struct nd_yaml_entry *v;
	size_t n, cap;
};

/* An anchored node, for aliases: scalars keep their text. */
struct anchor {
	char *name;
	char *value;     /* NULL for a collection or a non-string scalar */
	size_t len;
};

/* The YAML 1.1 implicit types of PyYAML's resolver, for plain scalars. */
enum { RX_BOOL, RX_NULL, RX_INT, RX_FLOAT, RX_TIME, RX_SPECIAL, RX_COUNT };

static const char *const rx_src[RX_COUNT] = {
	"^(yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE"
	"|on|On|ON|off|Off|OFF)$",
	"^(~|null|Null|NULL|)$",
	"^([-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(0|[1-9][0-9_]*)"
	"|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+)$",
	"^([-+]?[0-9][0-9_]*\\.[0-9_]*([eE][-+][0-9]+)?"
	"|\\.[0-9][0-9_]*([eE][-+][0-9]+)?"
	"|[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\\.[0-9_]*"
	"|[-+]?\\.(inf|Inf|INF)|\\.(nan|NaN|NAN))$",
	"^([0-9]{4}-[0-9]{2}-[0-9]{2}"
	"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}"
	":[0-9]{2}(\\.[0-9]*)?([ \t]*Z|[ \t]*[-+][0-9]{1,2}(:[0-9]{2})?)?)$",
	"^(<<|=)$",	/* merge and value: safe_load has no constructor */
};

struct ctx {
	yaml_parser_t parser;
	struct nd_yaml_map *map;
	struct anchor *anchors;
	size_t n_anchors, cap_anchors;
	regex_t rx[RX_COUNT];
	struct nd_yaml_error *err;
};

static int fail(struct ctx *c, const yaml_mark_t *mark, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct ctx *c, const yaml_mark_t *mark, const char *fmt, ...)
{
	va_list ap;

	c->err->line = mark ? (long)mark->line + 1 : 0;
	c->err->column = mark ? (long)mark->column + 1 : 0;
	va_start(ap, fmt);
	vsnprintf(c->err->text, sizeof(c->err->text), fmt, ap);
	va_end(ap);
	return -1;
}

/* Turns libyaml's error state into err: "problem (context)" at the mark. */
static int parser_fail(struct ctx *c)
{
	const yaml_parser_t *p = &c->parser;
	const char *problem = p->problem ? p->problem : "unknown error";

	if (p->error == YAML_MEMORY_ERROR)
		return fail(c, NULL, "out of memory");
	if (p->error == YAML_READER_ERROR)
		return fail(c, NULL, "%s at byte %zu", problem,
			    p->problem_offset);
	if (p->context)
		return fail(c, &p->problem_mark, "%s (%s started at %lu:%lu)",
			    problem, p->context,
			    (unsigned long)p->context_mark.line + 1,
			    (unsigned long)p->context_mark.column + 1);
	return fail(c, &p->problem_mark, "%s", problem);
}

static int next_event(struct ctx *c, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&c->parser, ev))
		return parser_fail(c);
	return 0;
}

static bool scalar_is_string(struct ctx *c, const yaml_event_t *ev)
{
	const char *tag = (const char *)ev->data.scalar.tag;
	const char *s = (const char *)ev->data.scalar.value;

	if (tag && strcmp(tag, "!") != 0)
		return strcmp(tag, YAML_STR_TAG) == 0;
	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || tag)
		return true;
	for (int i = 0; i < RX_COUNT; i++)
		if (regexec(&c->rx[i], s, 0, NULL, 0) == 0)
			return false;
	return true;
}

static int add_anchor(struct ctx *c, const yaml_char_t *name,
		      const char *value, size_t len)
{
	struct anchor *a;

	if (!name)
		return 0;
	if (c->n_anchors == c->cap_anchors) {
		size_t cap = c->cap_anchors ? 2 * c->cap_anchors : 8;
		void *p = realloc(c->anchors, cap * sizeof(*c->anchors));

		if (!p)
			return fail(c, NULL, "out of memory");
		c->anchors = p;
		c->cap_anchors = cap;
	}
	a = &c->anchors[c->n_anchors];
	a->name = strdup((const char *)name);
	a->value = value ? malloc(len + 1) : NULL;
	if (!a->name || (value && !a->value)) {
		free(a->name);
		free(a->value);
		return fail(c, NULL, "out of memory");
	}
	if (value) {
		memcpy(a->value, value, len);
		a->value[len] = '\0';
	}
	a->len = len;
	c->n_anchors++;
	return 0;
}

/* The latest anchor of that name (YAML lets a later anchor shadow one). */
static const struct anchor *find_anchor(const struct ctx *c, const char *name)
{
	for (size_t i = c->n_anchors; i-- > 0;)
		if (strcmp(c->anchors[i].name, name) == 0)
			return &c->anchors[i];
	return NULL;
}

/* Records the anchor a scalar or collection start event carries. */
static int note_anchor(struct ctx *c, const yaml_event_t *ev)
{
	if (ev->type == YAML_SCALAR_EVENT) {
		bool str = scalar_is_string(c, ev);

		return add_anchor(c, ev->data.scalar.anchor,
				  str ? (const char *)ev->data.scalar.value : NULL,
				  ev->data.scalar.length);
	}
	if (ev->type == YAML_SEQUENCE_START_EVENT)
		return add_anchor(c, ev->data.sequence_start.anchor, NULL, 0);
	if (ev->type == YAML_MAPPING_START_EVENT)
		return add_anchor(c, ev->data.mapping_start.anchor, NULL, 0);
	return 0;
}

/* Checks an alias event against the anchors seen so far. */
static int check_alias(struct ctx *c, const yaml_event_t *ev,
		       const struct anchor **out)
{
	const char *name = (const char *)ev->data.alias.anchor;

	*out = find_anchor(c, name);
	if (!*out)
		return fail(c, &ev->start_mark, "found undefined alias '%s'",
			    name);
	return 0;
}

/* Consumes the rest of a collection whose start event was just read. */
static int skip_collection(struct ctx *c)
{
	long depth = 1;
	yaml_event_t ev;
	const struct anchor *a;
	int rc = 0;

	while (depth > 0 && rc == 0) {
		if (next_event(c, &ev) < 0)
			return -1;
		if (ev.type == YAML_SEQUENCE_START_EVENT ||
		    ev.type == YAML_MAPPING_START_EVENT)
			depth++;
		else if (ev.type == YAML_SEQUENCE_END_EVENT ||
			 ev.type == YAML_MAPPING_END_EVENT)
			depth--;
		if (ev.type == YAML_ALIAS_EVENT)
			rc = check_alias(c, &ev, &a);
		else
			rc = note_anchor(c, &ev);
		yaml_event_delete(&ev);
	}
	return rc;
}

/* One node read whole: a string scalar's text, or nothing. */
struct node {
	char *text;      /* malloc'd; NULL when the node is not a string */
	size_t len;
	yaml_mark_t mark;
};

static int copy_text(struct ctx *c, struct node *n, const char *s, size_t len)
{
	n->text = malloc(len + 1);
	if (!n->text)
		return fail(c, NULL, "out of memory");
	memcpy(n->text, s, len);
	n->text[len] = '\0';
	n->len = len;
	return 0;
}

/* Reads the node that starts with event ev (already read). */
static int read_node(struct ctx *c, const yaml_event_t *ev, struct node *n)
{
	const struct anchor *a;

	n->text = NULL;
	n->len = 0;
	n->mark = ev->start_mark;
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		if (note_anchor(c, ev) < 0)
			return -1;
		if (!scalar_is_string(c, ev))
			return 0;
		return copy_text(c, n, (const char *)ev->data.scalar.value,
				 ev->data.scalar.length);
	case YAML_ALIAS_EVENT:
		if (check_alias(c, ev, &a) < 0)
			return -1;
		return a->value ? copy_text(c, n, a->value, a->len) : 0;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (note_anchor(c, ev) < 0)
			return -1;
		return skip_collection(c);
	default:
		return fail(c, &ev->start_mark, "expected a node");
	}
}

/* Stores key -> value; a repeated key replaces the earlier entry.  Takes
 * ownership of key->text and value->text. */
static int map_set(struct ctx *c, struct node *key, struct node *value)
{
	struct nd_yaml_map *m = c->map;
	struct nd_yaml_entry *e = NULL;

	for (size_t i = 0; key->text && i < m->n; i++)
		if (m->v[i].key && strcmp(m->v[i].key, key->text) == 0)
			e = &m->v[i];
	if (e) {
		free(e->key);
		free(e->value);
	} else {
		if (m->n == m->cap) {
			size_t cap = m->cap ? 2 * m->cap : 16;
			void *p = realloc(m->v, cap * sizeof(*m->v));

			if (!p) {
				free(key->text);
				free(value->text);
				return fail(c, NULL, "out of memory");
			}
			m->v = p;
			m->cap = cap;
		}
		e = &m->v[m->n++];
	}
	e->key = key->text;
	e->value = value->text;
	e->len = value->len;
	e->is_string = value->text != NULL;
	e->line = (long)key->mark.line + 1;
	return 0;
}

/* Reads key/value pairs up to the end of the top-level mapping. */
static int read_top_mapping(struct ctx *c)
{
	yaml_event_t ev;
	struct node key, value;
	int rc;

	for (;;) {
		if (next_event(c, &ev) < 0)
			return -1;
		if (ev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&ev);
			return 0;
		}
		rc = read_node(c, &ev, &key);
		yaml_event_delete(&ev);
		if (rc < 0)
			return -1;
		if (next_event(c, &ev) < 0) {
			free(key.text);
			return -1;
		}
		rc = read_node(c, &ev, &value);
		yaml_event_delete(&ev);
		if (rc < 0) {
			free(key.text);
			return -1;
		}
		if (map_set(c, &key, &value) < 0)
			return -1;
	}
}

/* Expects an event of type want; fails with what at its mark otherwise. */
static int expect(struct ctx *c, yaml_event_type_t want, const char *what)
{
	yaml_event_t ev;
	int rc = 0;

	if (next_event(c, &ev) < 0)
		return -1;
	if (ev.type != want)
		rc = fail(c, &ev.start_mark, "%s", what);
	yaml_event_delete(&ev);
	return rc;
}

static int read_stream(struct ctx *c)
{
	yaml_event_t ev;
	int rc;

	if (expect(c, YAML_STREAM_START_EVENT, "expected a stream") < 0 ||
	    expect(c, YAML_DOCUMENT_START_EVENT,
		   "empty stream: expected a mapping") < 0)
		return -1;
	if (next_event(c, &ev) < 0)
		return -1;
	rc = ev.type == YAML_MAPPING_START_EVENT ? note_anchor(c, &ev)
		: fail(c, &ev.start_mark, "the top level is not a mapping");
	yaml_event_delete(&ev);
	if (rc < 0 || read_top_mapping(c) < 0)
		return -1;
	if (expect(c, YAML_DOCUMENT_END_EVENT, "expected the end of the document") < 0 ||
	    expect(c, YAML_STREAM_END_EVENT,
		   "expected a single document in the stream") < 0)
		return -1;
	return 0;
}

static void ctx_free(struct ctx *c)
{
	for (size_t i = 0; i < c->n_anchors; i++) {
		free(c->anchors[i].name);
		free(c->anchors[i].value);
	}
	free(c->anchors);
	for (int i = 0; i < RX_COUNT; i++)
		regfree(&c->rx[i]);
	yaml_parser_delete(&c->parser);
}

static int ctx_init(struct ctx *c, struct nd_yaml_error *err)
{
	memset(c, 0, sizeof(*c));
	memset(err, 0, sizeof(*err));
	c->err = err;
	for (int i = 0; i < RX_COUNT; i++)
		if (regcomp(&c->rx[i], rx_src[i], REG_EXTENDED | REG_NOSUB)) {
			while (i-- > 0)
				regfree(&c->rx[i]);
			return fail(c, NULL, "internal error: bad pattern");
		}
	c->map = calloc(1, sizeof(*c->map));
	if (!c->map || !yaml_parser_initialize(&c->parser)) {
		free(c->map);
		for (int i = 0; i < RX_COUNT; i++)
			regfree(&c->rx[i]);
		return fail(c, NULL, "out of memory");
	}
	return 0;
}

/* Runs the parse on an initialised ctx whose input is set. */
static int finish_load(struct ctx *c, struct nd_yaml_map **out)
{
	int rc = read_stream(c);

	if (rc < 0) {
		nd_yaml_map_free(c->map);
		c->map = NULL;
	}
	*out = c->map;
	ctx_free(c);
	return rc;
}

int nd_yaml_load_string(const char *text, size_t len, struct nd_yaml_map **out,
			struct nd_yaml_error *err)
{
	struct ctx c;

	*out = NULL;
	if (ctx_init(&c, err) < 0)
		return -1;
	yaml_parser_set_input_string(&c.parser, (const unsigned char *)text,
				     len);
	return finish_load(&c, out);
}

int nd_yaml_load_file(const char *path, struct nd_yaml_map **out,
		      struct nd_yaml_error *err)
{
	struct ctx c;
	FILE *fp;
	int rc;

	*out = NULL;
	memset(err, 0, sizeof(*err));
	fp = fopen(path, "rb");
	if (!fp) {
		snprintf(err->text, sizeof(err->text), "%s", strerror(errno));
		return -1;
	}
	if (ctx_init(&c, err) < 0) {
		fclose(fp);
		return -1;
	}
	yaml_parser_set_input_file(&c.parser, fp);
	rc = finish_load(&c, out);
	fclose(fp);
	return rc;
}

enum nd_yaml_found nd_yaml_map_get_string(const struct nd_yaml_map *m,
					  const char *key, const char **value,
					  size_t *len, long *line)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct nd_yaml_entry *e = &m->v[i];

		if (!e->key || strcmp(e->key, key) != 0)
			continue;
		if (line)
			*line = e->line;
		if (!e->is_string)
			return ND_YAML_NOT_STRING;
		*value = e->value;
		*len = e->len;
		return ND_YAML_STRING;
	}
	return ND_YAML_ABSENT;
}

void nd_yaml_map_free(struct nd_yaml_map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].key);
		free(m->v[i].value);
	}
	free(m->v);
	free(m);
}
