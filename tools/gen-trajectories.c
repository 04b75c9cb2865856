/*
 * gen-trajectories: synthetic R2E-Gym trajectories for full-scale studies
 * without private data (gen-trajectories(1)).
 *
 * Writes N lines in the exact shape of R2E-Gym's
 * Trajectory.model_dump_json(): every upstream Trajectory and
 * TrajectoryStep field, in upstream order, one compact object per line.
 * The text is made up (word lists, code-like lines, file paths) but wrapped
 * the way R2E-Gym wraps it: "<think>" thoughts, "<function=...>" actions,
 * "Exit code: ...\nExecution output of [execute_bash]:" observations,
 * file_editor views with `cat -n` line numbers and a final submit answered
 * by "<<< Finished >>>".
 *
 * Lengths are set in tokens and made in bytes at 4 bytes per token (the
 * usual figure for English and code under a byte-level BPE); the token
 * usage fields follow the same approximation, counted on the ChatML
 * prompt R2E-Gym would have sent (5 tokens of framing per message, 3 for
 * the generation prompt), so the prompt grows step by step as it should.
 *
 * Same arguments give byte-identical output on every machine: one
 * xoshiro256** stream per trajectory (engine/rng.h), normal deviates as a
 * sum of 12 uniforms, and exp/log written here with + - * / only, so no
 * libm rounding differences reach the output.  Times are rounded to 0.1 ms.
 *
 * It refuses to imitate any real repository or to read private data; it
 * does not tokenize (the lengths are an approximation, stated as such).
 */
#include "config.h"
#include "engine/engine.h"
#include "tools/common/nd.h"
#include "tools/common/nd_vec.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* GCC: off already under -std=c11 */
#endif

#define BYTES_PER_TOKEN 4
#define MSG_FRAME_TOKENS 5 /* <|im_start|> role \n ... <|im_end|> \n */
#define GEN_PROMPT_TOKENS 3 /* <|im_start|> assistant \n */

/* The prompts of samples/agent.yaml, so that prompt-render --config
 * samples/agent.yaml rebuilds what the token counts assume. */
static const char system_prompt[] =
	"You are a careful software engineer working inside a sandbox with a Python "
	"repository checked out at /repo. Use one tool call per reply, written as "
	"<function=NAME> with <parameter=KEY> lines. Tools: file_editor (view, create, "
	"str_replace), execute_bash (cmd), search (search_term, path), finish (submit).";
static const char instance_prompt[] =
	"A user reported the problem below in the repository at /repo.\n\n<report>\n"
	"{problem_statement}\n</report>\n\nChange the source files (not the tests) so "
	"that the reported behaviour is fixed. Reproduce it first, then fix it, then "
	"run the tests, then submit.";

/* ---------------------------------------------------------------- numbers */

/* e^x with basic arithmetic only: x = k ln2 + r, |r| <= ln2/2, Taylor. */
static double gen_exp(double x)
{
	double k, r, term = 1.0, sum = 1.0;

	if (x > 700.0)
		x = 700.0;
	if (x < -700.0)
		return 0.0;
	k = floor(x / 0.69314718055994530942 + 0.5);
	r = x - k * 0.69314718055994530942;
	for (int i = 1; i <= 18; i++) {
		term = term * r / i;
		sum = sum + term;
	}
	return ldexp(sum, (int)k);
}

/* ln x for x > 0: x = m 2^e (exact), ln m = 2 atanh((m-1)/(m+1)). */
static double gen_log(double x)
{
	int e;
	double m = frexp(x, &e), t, t2, term, sum = 0.0;

	if (m < 0.70710678118654752440) {
		m = m * 2.0;
		e--;
	}
	t = (m - 1.0) / (m + 1.0);
	t2 = t * t;
	term = t;
	for (int i = 1; i <= 41; i += 2) {
		sum = sum + term / i;
		term = term * t2;
	}
	return e * 0.69314718055994530942 + 2.0 * sum;
}

static double rng_unit(uint64_t s[4])
{
	return eng_unit_double(eng_xoshiro_next(s));
}

static uint64_t rng_below(uint64_t s[4], uint64_t n)
{
	return n ? eng_xoshiro_next(s) % n : 0;
}

/* Standard normal, Irwin-Hall: the sum of 12 uniforms minus 6 (tails cut
 * at 6 sigma, which no length here misses). */
static double rng_normal(uint64_t s[4])
{
	double sum = 0.0;

	for (int i = 0; i < 12; i++)
		sum = sum + rng_unit(s);
	return sum - 6.0;
}

/* A lognormal given by mu and sigma of its log. */
struct lognorm {
	double mu, sigma;
};

static struct lognorm lognorm_median_mean(double median, double mean)
{
	struct lognorm l = { gen_log(median), 0.0 };

	if (mean > median)
		l.sigma = sqrt(2.0 * gen_log(mean / median));
	return l;
}

static struct lognorm lognorm_mean_sigma(double mean, double sigma)
{
	struct lognorm l = { gen_log(mean) - sigma * sigma / 2.0, sigma };

	return l;
}

static double lognorm_draw(struct lognorm l, uint64_t s[4])
{
	return gen_exp(l.mu + l.sigma * rng_normal(s));
}

static double round4(double x)
{
	return floor(x * 10000.0 + 0.5) / 10000.0;
}

static long ceil_div(long a, long b)
{
	return (a + b - 1) / b;
}

/* The text of a generated buffer; out of memory ends the program (a
 * generator has nothing else to give back). */
static const char *text_of(const struct nd_buf *b)
{
	if (b->failed || !b->data) {
		nd_error("out of memory");
		exit(ND_EXIT_USAGE);
	}
	return b->data;
}

/* ---------------------------------------------------------------- word lists */

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define PICK(s, a) ((a)[rng_below((s), NELEM(a))])

static const char *const syl[] = {
	"ta", "lo", "mi", "ver", "quar", "dat", "pix", "sol", "ren", "ko", "bel", "zu",
	"fen", "gra", "hul", "net", "or", "py", "sto", "wick", "lin", "mar", "cor", "dex",
};
static const char *const mods[] = {
	"core", "utils", "parser", "reader", "writer", "table", "config", "cache",
	"client", "models", "io", "compat", "helpers", "format", "registry", "session",
};
static const char *const nouns[] = {
	"value", "row", "item", "key", "path", "name", "result", "buffer", "record",
	"offset", "header", "entry", "index", "token", "field", "node", "limit", "unit",
};
static const char *const verbs[] = {
	"parse", "load", "read", "get", "build", "convert", "resolve", "check", "split",
	"merge", "format", "normalize", "update", "find", "render", "encode",
};
static const char *const classes[] = {
	"Reader", "Table", "Config", "Session", "Parser", "Registry", "Cache",
	"Encoder", "Resolver", "Record", "Bucket", "Writer",
};
static const char *const adjs[] = {
	"empty", "missing", "wrong", "nested", "negative", "duplicate", "stale",
	"unicode", "trailing", "default", "large", "optional",
};
static const char *const think_words[] = {
	"the", "function", "returns", "so", "that", "which", "when", "input", "is",
	"test", "should", "case", "check", "first", "then", "fix", "call", "seems",
	"probably", "look", "at", "where", "error", "comes", "from", "value", "line",
	"expected", "behaviour", "but", "here", "a", "of", "in", "it", "this",
};
static const char *const exit_reasons[] = {
	"agent", "max_step_limit", "agent_max_step_limit", "abs_step_limit",
	"token_limit", "traj_time_limit", "llm_query_error",
};

/* One made-up repository per trajectory: a name, a package, some files. */
#define GEN_FILES 6
struct repo {
	char name[32], pkg[32], commit[41];
	char files[GEN_FILES][64]; /* paths relative to /repo */
	char tests[2][64];
};

static void repo_make(struct repo *r, uint64_t s[4])
{
	static const char hex[] = "0123456789abcdef";
	char stem[24];

	snprintf(stem, sizeof(stem), "%s%s%s", PICK(s, syl), PICK(s, syl), PICK(s, syl));
	snprintf(r->name, sizeof(r->name), "%s", stem);
	snprintf(r->pkg, sizeof(r->pkg), "%s", stem);
	for (int i = 0; i < 40; i++)
		r->commit[i] = hex[rng_below(s, 16)];
	r->commit[40] = '\0';
	for (int i = 0; i < GEN_FILES; i++)
		snprintf(r->files[i], sizeof(r->files[i]), "%s/%s.py", r->pkg,
			 i == 0 ? "__init__" : mods[(i * 5 + rng_below(s, 3)) % NELEM(mods)]);
	snprintf(r->tests[0], sizeof(r->tests[0]), "tests/test_%s.py", PICK(s, mods));
	snprintf(r->tests[1], sizeof(r->tests[1]), "tests/test_%s.py", PICK(s, mods));
}

static const char *repo_file(const struct repo *r, uint64_t s[4])
{
	return r->files[1 + rng_below(s, GEN_FILES - 1)];
}

/* ---------------------------------------------------------------- text pieces */

/* One line of Python-looking code (no newline), indented by depth. */
static void code_line(struct nd_buf *b, uint64_t s[4])
{
	const char *n1 = PICK(s, nouns), *n2 = PICK(s, nouns), *v = PICK(s, verbs);
	int ind = 4 * (int)rng_below(s, 3);

	switch (rng_below(s, 12)) {
	case 0: nd_buf_printf(b, "def %s_%s(%s, %s=None):", v, n1, n1, n2); return;
	case 1: nd_buf_printf(b, "class %s%s:", PICK(s, classes), rng_below(s, 2) ? "(object)" : ""); return;
	case 2: nd_buf_printf(b, "from .%s import %s_%s", PICK(s, mods), v, n1); return;
	case 3: nd_buf_printf(b, "%*s# %s %s %s", ind, "", v, PICK(s, adjs), n1); return;
	case 4: nd_buf_printf(b, "%*sif %s is None:", ind + 4, "", n2); return;
	case 5: nd_buf_printf(b, "%*sraise ValueError(\"%s %s: %%r\" %% (%s,))", ind + 4, "",
			 PICK(s, adjs), n1, n1); return;
	case 6: nd_buf_printf(b, "%*sreturn %s.%s(%s)", ind + 4, "", n1, v, n2); return;
	case 7: nd_buf_printf(b, "%*sfor %s in %ss:", ind + 4, "", n1, n2); return;
	case 8: nd_buf_printf(b, "%*s%s = self._%s.get(%s, %d)", ind + 4, "", n1, n2, n1,
			 (int)rng_below(s, 100)); return;
	case 9: nd_buf_printf(b, "%*s%ss.append(%s[%d:])", ind + 4, "", n1, n2, (int)rng_below(s, 4)); return;
	case 10: nd_buf_puts(b, ""); return;
	default: nd_buf_printf(b, "%*sself.%s = %s_%s(%s)", ind + 4, "", n1, v, n2, n1); return;
	}
}

/* One line a test run or a script might print (no newline). */
static void output_line(struct nd_buf *b, const struct repo *r, uint64_t s[4])
{
	switch (rng_below(s, 6)) {
	case 0: nd_buf_printf(b, "%s %s [%3d%%]", r->tests[rng_below(s, 2)],
			 rng_below(s, 3) ? "......" : "..F...", (int)rng_below(s, 101)); return;
	case 1: nd_buf_printf(b, "  File \"/repo/%s\", line %d, in %s_%s", repo_file(r, s),
			 (int)(1 + rng_below(s, 400)), PICK(s, verbs), PICK(s, nouns)); return;
	case 2: nd_buf_printf(b, "%s: %s %s", rng_below(s, 2) ? "KeyError" : "AssertionError",
			 PICK(s, adjs), PICK(s, nouns)); return;
	case 3: nd_buf_printf(b, "%s=%d %s=%d", PICK(s, nouns), (int)rng_below(s, 1000),
			 PICK(s, nouns), (int)rng_below(s, 1000)); return;
	case 4: nd_buf_printf(b, "    %s_%s(%s)", PICK(s, verbs), PICK(s, nouns), PICK(s, nouns)); return;
	default: nd_buf_printf(b, "[%s, %s, '%s']", PICK(s, nouns), PICK(s, nouns), PICK(s, adjs)); return;
	}
}

/* English-ish words up to about n bytes (at least one word). */
static void words(struct nd_buf *b, size_t n, uint64_t s[4])
{
	size_t start = b->len;

	do {
		if (b->len > start)
			nd_buf_puts(b, " ");
		nd_buf_puts(b, PICK(s, think_words));
	} while (b->len - start + 8 < n);
}

/* Sentences up to about n bytes: "The x_y in pkg/mod.py ...". */
static void sentences(struct nd_buf *b, size_t n, const struct repo *r, uint64_t s[4])
{
	size_t start = b->len;

	while (b->len - start + 12 < n) {
		if (b->len > start)
			nd_buf_puts(b, rng_below(s, 5) ? " " : "\n");
		if (rng_below(s, 3) == 0)
			nd_buf_printf(b, "Look at %s_%s in %s.", PICK(s, verbs), PICK(s, nouns),
				 repo_file(r, s));
		else {
			words(b, 20 + rng_below(s, 60), s);
			nd_buf_puts(b, ".");
		}
		b->data[start] = b->data[start] >= 'a' && b->data[start] <= 'z' ? b->data[start] - 32 : b->data[start];
	}
	if (b->len == start)
		nd_buf_puts(b, "Check.");
}

/* Appends lines made by line_fn until the buffer holds about n bytes from
 * start.  A last line that passes n is cut at its last space before n, or
 * dropped when less than 12 bytes of it would fit: at most n bytes, and
 * short by a few bytes at most. */
typedef void (*line_fn)(struct nd_buf *b, const struct repo *r, uint64_t s[4], long no);

static void fill_lines(struct nd_buf *b, size_t n, line_fn fn, const struct repo *r,
		       uint64_t s[4], long first_no)
{
	size_t start = b->len;

	for (long no = first_no; b->len - start < n; no++) {
		fn(b, r, s, no);
		nd_buf_puts(b, "\n");
	}
	if (b->len > start + n) {
		size_t line = start + n, cut = start + n;

		while (line > start && b->data[line - 1] != '\n')
			line--;
		if (cut - line < 12)
			cut = line;
		else
			while (cut > line + 8 && b->data[cut] != ' ')
				cut--;
		nd_buf_truncate(b, cut > line + 8 || cut == line ? cut : start + n);
	}
}

static void numbered_code(struct nd_buf *b, const struct repo *r, uint64_t s[4], long no)
{
	(void)r;
	nd_buf_printf(b, "%6ld\t", no);
	code_line(b, s);
}

static void plain_code(struct nd_buf *b, const struct repo *r, uint64_t s[4], long no)
{
	(void)r;
	(void)no;
	code_line(b, s);
}

static void plain_output(struct nd_buf *b, const struct repo *r, uint64_t s[4], long no)
{
	(void)no;
	output_line(b, r, s);
}

static void dir_entry(struct nd_buf *b, const struct repo *r, uint64_t s[4], long no)
{
	if (no < GEN_FILES)
		nd_buf_printf(b, "/repo/%s", r->files[no]);
	else
		nd_buf_printf(b, "/repo/%s/%s_%s.py", rng_below(s, 2) ? r->pkg : "tests",
			 PICK(s, mods), PICK(s, nouns));
}

static void search_hit(struct nd_buf *b, const struct repo *r, uint64_t s[4], long no)
{
	(void)no;
	nd_buf_printf(b, "./%s (%d matches)", repo_file(r, s), (int)(1 + rng_below(s, 6)));
}

/* ---------------------------------------------------------------- actions */

enum act {
	ACT_VIEW_DIR, ACT_VIEW_FILE, ACT_SEARCH, ACT_BASH, ACT_EDIT, ACT_CREATE, ACT_FINISH,
	ACT_ANY, /* not chosen yet: step_texts picks by the action's length */
};

/* What an action did, for its observation. */
struct act_ctx {
	enum act kind;
	char path[96], term[48];
	int fail; /* execute_bash: a nonzero exit */
	long first_line;
};

/* Picks the kind of a middle step: short targets read, long ones write. */
static enum act act_pick(size_t target, uint64_t s[4])
{
	uint64_t u = rng_below(s, 20);

	if (target < 150)
		return u < 9 ? ACT_VIEW_FILE : u < 15 ? ACT_SEARCH : ACT_BASH;
	return u < 9 ? ACT_EDIT : u < 12 ? ACT_CREATE : ACT_BASH;
}

/* Appends about n bytes of code lines (at least 20), no final newline. */
static void code_n(struct nd_buf *b, long n, const struct repo *r, uint64_t s[4])
{
	fill_lines(b, n > 20 ? (size_t)n : 20, plain_code, r, s, 0);
	while (b->len > 0 && b->data[b->len - 1] == '\n')
		b->len--;
	b->data[b->len] = '\0';
}

/* The actions that carry code: their text grows to about target bytes. */
static void act_fill(struct nd_buf *b, struct act_ctx *c, size_t target, const struct repo *r,
		     uint64_t s[4])
{
	long base = (long)b->len, room;

	switch (c->kind) {
	case ACT_BASH:
		nd_buf_puts(b, "<function=execute_bash>\n  <parameter=cmd>cat > /tmp/check.py <<'EOF'\n");
		code_n(b, (long)target - ((long)b->len - base) - 50, r, s);
		nd_buf_puts(b, "\nEOF\npython /tmp/check.py");
		break;
	case ACT_EDIT:
		snprintf(c->path, sizeof(c->path), "/repo/%s", repo_file(r, s));
		nd_buf_printf(b, "<function=file_editor>\n  <parameter=command>str_replace</parameter>\n"
			 "  <parameter=path>%s</parameter>\n  <parameter=old_str>", c->path);
		room = (long)target - ((long)b->len - base) - 60;
		code_n(b, room / 2, r, s);
		nd_buf_puts(b, "</parameter>\n  <parameter=new_str>");
		code_n(b, room - room / 2, r, s);
		break;
	default: /* ACT_CREATE */
		snprintf(c->path, sizeof(c->path), "/repo/reproduce_issue.py");
		nd_buf_printf(b, "<function=file_editor>\n  <parameter=command>create</parameter>\n"
			 "  <parameter=path>%s</parameter>\n  <parameter=file_text>", c->path);
		code_n(b, (long)target - ((long)b->len - base) - 25, r, s);
		break;
	}
	nd_buf_puts(b, "</parameter>\n</function>");
}

/* Writes the action of kind c->kind, about target bytes where the kind
 * leaves room (reads have a fixed size). */
static void act_write(struct nd_buf *b, struct act_ctx *c, size_t target, const struct repo *r,
		      uint64_t s[4])
{
	c->fail = rng_below(s, 10) < 3;
	c->first_line = 1 + (long)rng_below(s, 200);
	switch (c->kind) {
	case ACT_VIEW_DIR:
		snprintf(c->path, sizeof(c->path), "/repo");
		nd_buf_puts(b, "<function=file_editor>\n  <parameter=command>view</parameter>\n"
			"  <parameter=path>/repo</parameter>\n</function>");
		return;
	case ACT_VIEW_FILE:
		snprintf(c->path, sizeof(c->path), "/repo/%s", repo_file(r, s));
		nd_buf_printf(b, "<function=file_editor>\n  <parameter=command>view</parameter>\n"
			 "  <parameter=path>%s</parameter>\n</function>", c->path);
		c->first_line = 1;
		return;
	case ACT_SEARCH:
		snprintf(c->term, sizeof(c->term), "%s_%s", PICK(s, verbs), PICK(s, nouns));
		nd_buf_printf(b, "<function=search>\n  <parameter=search_term>%s</parameter>\n"
			 "  <parameter=path>/repo</parameter>\n</function>", c->term);
		return;
	case ACT_BASH:
		if (target < 150) {
			nd_buf_printf(b, "<function=execute_bash>\n  <parameter=cmd>cd /repo && "
				 "python -m pytest -q %s</parameter>\n</function>",
				 r->tests[rng_below(s, 2)]);
			return;
		}
		act_fill(b, c, target, r, s);
		return;
	case ACT_FINISH:
		nd_buf_puts(b, "<function=finish>\n  <parameter=command>submit</parameter>\n"
			"  <parameter=result>");
		sentences(b, target > 110 ? target - 110 : 20, r, s);
		nd_buf_puts(b, "</parameter>\n</function>");
		return;
	default:
		act_fill(b, c, target, r, s);
		return;
	}
}

/* ---------------------------------------------------------------- observations */

/* header + body of lines + trailer, target bytes in all where possible. */
static void obs_frame(struct nd_buf *b, size_t target, const char *header, const char *trailer,
		      line_fn fn, const struct repo *r, uint64_t s[4], long first_no)
{
	size_t fixed = strlen(header) + strlen(trailer);

	nd_buf_puts(b, header);
	if (target > fixed)
		fill_lines(b, target - fixed, fn, r, s, first_no);
	nd_buf_puts(b, trailer);
}

static void obs_write(struct nd_buf *b, const struct act_ctx *c, size_t target,
		      const struct repo *r, uint64_t s[4])
{
	struct nd_buf h = { 0 };

	nd_buf_reset(&h);
	switch (c->kind) {
	case ACT_VIEW_DIR:
		obs_frame(b, target, "Execution output of [file_editor]:\nHere's the files and "
			  "directories up to 2 levels deep in /repo, excluding hidden:\n/repo\n",
			  "\n", dir_entry, r, s, 0);
		break;
	case ACT_VIEW_FILE:
		nd_buf_printf(&h, "Execution output of [file_editor]:\nHere's the result of running "
			 "`cat -n` on the file: %s:\n", c->path);
		obs_frame(b, target, text_of(&h), "", numbered_code, r, s, 1);
		break;
	case ACT_SEARCH:
		nd_buf_printf(&h, "Execution output of [search]:\nMatches for \"%s\" in /repo:\n", c->term);
		{
			struct nd_buf t = { 0 };

			nd_buf_reset(&t);
			nd_buf_printf(&t, "End of matches for \"%s\" in /repo\n", c->term);
			obs_frame(b, target, text_of(&h), text_of(&t), search_hit, r, s, 0);
			nd_buf_free(&t);
		}
		break;
	case ACT_BASH:
		if (c->fail)
			obs_frame(b, target, "Exit code: Error: Exit code 1\nExecution output of "
				  "[execute_bash]:\nError executing command:\n\n[STDOUT]\n\n",
				  "\n\n[STDERR]\n\nTraceback (most recent call last):\n"
				  "AssertionError", plain_output, r, s, 0);
		else
			obs_frame(b, target, "Exit code: 0\nExecution output of [execute_bash]:\n"
				  "[STDOUT]\n\n", "\n\n[STDERR]\n\n\n", plain_output, r, s, 0);
		break;
	case ACT_EDIT:
		nd_buf_printf(&h, "Execution output of [file_editor]:\nThe file %s has been edited. "
			 "Here's the result of running `cat -n` on a snippet of %s:\n",
			 c->path, c->path);
		obs_frame(b, target, text_of(&h), "\nReview the changes and make sure they are as "
			  "expected. Edit the file again if necessary.\n", numbered_code, r, s,
			  c->first_line);
		break;
	case ACT_CREATE:
		nd_buf_printf(&h, "Execution output of [file_editor]:\nFile created at %s. Here's the "
			 "result of running `cat -n` on %s:\n", c->path, c->path);
		obs_frame(b, target, text_of(&h), "", numbered_code, r, s, 1);
		break;
	case ACT_FINISH:
		nd_buf_puts(b, "<<< Finished >>>");
		break;
	case ACT_ANY:
		break;
	}
	nd_buf_free(&h);
}

/* ---------------------------------------------------------------- trajectories */

struct gen_params {
	long num, max_steps, max_token_limit;
	uint64_t seed;
	double steps_mean, steps_sd;
	double obs_median, obs_mean, obs_max;
	double thought_mean, action_mean, env_time_mean, llm_time_mean;
	double mix[NELEM(exit_reasons)]; /* weights of exit_reasons[] */
	const char *exp_name;
};

static void gen_default_params(struct gen_params *p)
{
	memset(p, 0, sizeof(*p));
	p->num = 10;
	p->max_steps = 40;
	p->max_token_limit = 32768;
	p->steps_mean = 22.0;
	p->steps_sd = 6.0;
	p->obs_median = 160.0;
	p->obs_mean = 340.0;
	p->obs_max = 4000.0;
	p->thought_mean = 60.0;
	p->action_mean = 40.0;
	p->env_time_mean = 0.2;
	p->llm_time_mean = 2.0;
	p->mix[0] = 0.9; /* agent */
	p->mix[1] = 0.1; /* max_step_limit */
	p->exp_name = "synthetic";
}

/* The distributions of one run, derived once from the parameters. */
struct gen_dists {
	struct lognorm obs, thought, action, env, llm_noise;
	double completion_ref; /* tokens: mean thought + action */
};

static void gen_dists_init(struct gen_dists *d, const struct gen_params *p)
{
	d->obs = lognorm_median_mean(p->obs_median, p->obs_mean);
	d->thought = lognorm_mean_sigma(p->thought_mean, 0.6);
	d->action = lognorm_mean_sigma(p->action_mean, 0.6);
	d->env = lognorm_mean_sigma(p->env_time_mean, 1.0);
	d->llm_noise = lognorm_mean_sigma(1.0, 0.25);
	d->completion_ref = p->thought_mean + p->action_mean;
}

static size_t pick_reason(const struct gen_params *p, uint64_t s[4])
{
	double total = 0.0, u;

	for (size_t i = 0; i < NELEM(exit_reasons); i++)
		total += p->mix[i];
	u = rng_unit(s) * total;
	for (size_t i = 0; i < NELEM(exit_reasons); i++) {
		if (u < p->mix[i])
			return i;
		u -= p->mix[i];
	}
	return 0;
}

static long pick_steps(const struct gen_params *p, size_t reason, uint64_t s[4])
{
	double x = floor(p->steps_mean + p->steps_sd * rng_normal(s) + 0.5);

	if (reason == 1) /* max_step_limit: the run used every step */
		return p->max_steps;
	return x < 1.0 ? 1 : x > (double)p->max_steps ? p->max_steps : (long)x;
}

static void problem_statement(struct nd_buf *b, const struct repo *r, uint64_t s[4])
{
	const char *v = PICK(s, verbs), *n = PICK(s, nouns), *a = PICK(s, adjs);

	nd_buf_printf(b, "[ISSUE]\n**Title:** `%s.%s_%s` fails on %s %ss\n\n**Description:**\n",
		 r->pkg, v, n, a, n);
	sentences(b, 250 + rng_below(s, 500), r, s);
	nd_buf_printf(b, "\n\nExample:\n```python\nfrom %s import %s_%s\n", r->pkg, v, n);
	fill_lines(b, 60 + rng_below(s, 200), plain_code, r, s, 0);
	nd_buf_printf(b, "\n```\n\n**Expected Behavior:**\n%s_%s(x) \xe2\x86\x92 the %s %s, "
		 "as for any other na\xc3\xafve input.\n\n**Actual Behavior:**\n", v, n, n, a);
	fill_lines(b, 40 + rng_below(s, 200), plain_output, r, s, 0);
	nd_buf_puts(b, "\n[/ISSUE]");
}

/* One step's texts and figures, before they become JSON. */
struct step_out {
	struct nd_buf thought, action, obs;
	long prompt, completion;
	double llm_s, env_s;
	int done;
};

/* Builds step k's texts; kind is chosen here unless forced. */
static void step_texts(struct step_out *o, struct act_ctx *c, const struct gen_params *p,
		       const struct gen_dists *d, const struct repo *r, uint64_t s[4])
{
	double th = lognorm_draw(d->thought, s), ac = lognorm_draw(d->action, s);
	double ob = lognorm_draw(d->obs, s);
	size_t act_bytes = (size_t)(ac * BYTES_PER_TOKEN);

	if (ob > p->obs_max)
		ob = p->obs_max;
	if (c->kind == ACT_ANY)
		c->kind = act_pick(act_bytes, s);
	nd_buf_reset(&o->thought);
	nd_buf_reset(&o->action);
	nd_buf_reset(&o->obs);
	nd_buf_puts(&o->thought, "<think>\n");
	sentences(&o->thought, th * BYTES_PER_TOKEN > 17 ? (size_t)(th * BYTES_PER_TOKEN) - 17 : 1,
		  r, s);
	nd_buf_puts(&o->thought, "\n</think>");
	act_write(&o->action, c, act_bytes, r, s);
	obs_write(&o->obs, c, (size_t)(ob * BYTES_PER_TOKEN), r, s);
	o->done = c->kind == ACT_FINISH;
	o->completion = ceil_div((long)(o->thought.len + 2 + o->action.len), BYTES_PER_TOKEN) + 1;
	o->env_s = round4(lognorm_draw(d->env, s));
	o->llm_s = round4(p->llm_time_mean * (0.2 + 0.8 * o->completion / d->completion_ref) *
			  lognorm_draw(d->llm_noise, s));
}

static json_t *step_json(const struct step_out *o, long k, double *traj_s)
{
	double total = round4(o->llm_s + o->env_s);

	*traj_s = round4(*traj_s + total);
	return json_pack("{s:I,s:s%,s:s%,s:s%,s:b,s:{s:f},s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:I}",
			 "step_idx", (json_int_t)k,
			 "thought", text_of(&o->thought), o->thought.len,
			 "action", text_of(&o->action), o->action.len,
			 "observation", text_of(&o->obs), o->obs.len,
			 "done", o->done, "info", "total_time", o->env_s,
			 "token_usage_prompt", (json_int_t)o->prompt,
			 "token_usage_completion", (json_int_t)o->completion,
			 "token_usage_total", (json_int_t)(o->prompt + o->completion),
			 "llm_exec_time", o->llm_s, "env_exec_time", o->env_s,
			 "total_step_time", total, "total_time_traj", *traj_s,
			 "step_count", (json_int_t)(k + 1));
}

/* Tokens of the prompt of the next call: ChatML framing plus the content
 * at 4 bytes per token. */
static long prompt_tokens(long content_bytes, long n_msgs)
{
	return MSG_FRAME_TOKENS * n_msgs + GEN_PROMPT_TOKENS +
	       ceil_div(content_bytes, BYTES_PER_TOKEN);
}

/* Runs the agent loop; returns the steps array and sets *reason (to
 * token_limit when the next prompt would not fit) and *edit. */
static json_t *steps_make(const struct gen_params *p, const struct gen_dists *d,
			  const struct repo *r, size_t ps_len, size_t *reason,
			  struct act_ctx *edit, uint64_t s[4])
{
	struct step_out o = { 0 };
	json_t *steps = json_array();
	long n = pick_steps(p, *reason, s), n_msgs = 2;
	long content = (long)(strlen(system_prompt) + strlen(instance_prompt) + ps_len) -
		       (long)strlen("{problem_statement}");
	double traj_s = 0.0;
	char note[64];

	for (long k = 0; k < n; k++) {
		struct act_ctx c = { .kind = ACT_ANY };

		if (k == n - 1 && *reason == 0)
			c.kind = ACT_FINISH;
		else if (k == 0)
			c.kind = ACT_VIEW_DIR;
		step_texts(&o, &c, p, d, r, s);
		content += snprintf(note, sizeof(note), "\nSteps Remaining: %ld", p->max_steps - k);
		o.prompt = prompt_tokens(content, n_msgs);
		if (k > 0 && o.prompt + o.completion > p->max_token_limit) {
			*reason = 4; /* token_limit */
			break;
		}
		if (c.kind == ACT_EDIT)
			*edit = c;
		json_array_append_new(steps, step_json(&o, k, &traj_s));
		content += (long)(o.thought.len + 2 + o.action.len + o.obs.len);
		n_msgs += 2;
	}
	nd_buf_free(&o.thought);
	nd_buf_free(&o.action);
	nd_buf_free(&o.obs);
	return steps;
}

static void output_patch(struct nd_buf *b, const struct act_ctx *edit, const struct repo *r,
			 uint64_t s[4])
{
	const char *path = edit->path + strlen("/repo/");

	nd_buf_reset(b);
	if (edit->kind != ACT_EDIT)
		return;
	nd_buf_printf(b, "diff --git a/%s b/%s\n--- a/%s\n+++ b/%s\n@@ -%ld,3 +%ld,3 @@\n ",
		 path, path, path, path, edit->first_line, edit->first_line);
	code_line(b, s);
	nd_buf_puts(b, "\n-");
	code_line(b, s);
	nd_buf_puts(b, "\n+");
	code_line(b, s);
	nd_buf_puts(b, "\n ");
	code_line(b, s);
	nd_buf_puts(b, "\n");
	(void)r;
}

static void test_output(struct nd_buf *b, const struct repo *r, int passed, uint64_t s[4])
{
	int n = 3 + (int)rng_below(s, 20);

	nd_buf_reset(b);
	nd_buf_printf(b, "============================= test session starts "
		 "==============================\ncollected %d items\n\n%s ", n, r->tests[0]);
	for (int i = 0; i < n; i++)
		nd_buf_puts(b, !passed && i == n / 2 ? "F" : ".");
	if (passed)
		nd_buf_printf(b, " [100%%]\n\n============================== %d passed in 0.%02ds "
			 "===============================\n", n, (int)rng_below(s, 100));
	else
		nd_buf_printf(b, " [100%%]\n\n=========================== 1 failed, %d passed in "
			 "0.%02ds ===========================\n", n - 1, (int)rng_below(s, 100));
}

static json_t *agent_args_json(void)
{
	return json_pack("{s:s,s:s,s:[s,s,s,s],s:s,s:s,s:s,s:b,s:{s:i,s:i}}",
			 "system_prompt", system_prompt, "instance_prompt", instance_prompt,
			 "command_files", "./tools/file_editor.py", "./tools/execute_bash.py",
			 "./tools/search.py", "./tools/finish.py",
			 "llm_name", "hosted_vllm/example-coder-7b",
			 "llm_base_url", "http://localhost:8000/v1", "demo_file", "./config/demo",
			 "use_demo", 0, "other_args", "max_retries", 3, "timeout", 120);
}

static json_t *ds_json(const struct repo *r, const char *image, const char *id,
		       const struct nd_buf *ps)
{
	char base[17];

	memcpy(base, r->commit, 16);
	base[16] = '\0';
	return json_pack("{s:s,s:s,s:s,s:s%,s:s,s:[s+],s:[s+]}",
			 "repo_name", r->name, "docker_image", image, "instance_id", id,
			 "problem_statement", text_of(ps), ps->len, "base_commit", base,
			 "FAIL_TO_PASS", r->tests[0], "::test_reported_case",
			 "PASS_TO_PASS", r->tests[1], "::test_basic");
}

/* Trajectory number index of the run: upstream fields in upstream order. */
static json_t *traj_make(const struct gen_params *p, const struct gen_dists *d,
			 uint64_t s[4])
{
	struct repo r;
	struct nd_buf ps = { 0 }, patch = { 0 }, tests = { 0 };
	struct act_ctx edit = { .kind = ACT_ANY };
	char image[128], id[64];
	size_t reason;
	json_t *steps, *ds, *t;
	double reward;

	repo_make(&r, s);
	snprintf(image, sizeof(image), "synthetic/%s_final:%s", r.name, r.commit);
	snprintf(id, sizeof(id), "%s_%.8s", r.name, r.commit);
	nd_buf_reset(&ps);
	problem_statement(&ps, &r, s);
	reason = pick_reason(p, s);
	steps = steps_make(p, d, &r, ps.len, &reason, &edit, s);
	reward = rng_below(s, 10) < (reason == 0 ? 5u : 1u) ? 1.0 : 0.0;
	output_patch(&patch, &edit, &r, s);
	test_output(&tests, &r, reward > 0.5, s);
	ds = ds_json(&r, image, id, &ps);
	t = json_pack("{s:o,s:s%,s:s,s:s,s:{s:O,s:n,s:n},s:o,s:o,s:I,s:I,s:I,s:i,s:i,s:i,"
		      "s:s,s:s%,s:f,s:f,s:s%,s:{},s:n,s:n,s:[]}",
		      "trajectory_steps", steps, "problem_statement", text_of(&ps), ps.len,
		      "docker_image", image, "exp_name", p->exp_name,
		      "env_args", "ds", ds, "repo_path", "docker_image",
		      "agent_args", agent_args_json(), "ds", ds,
		      "max_steps", (json_int_t)p->max_steps,
		      "max_steps_absolute", (json_int_t)(p->max_steps + 10),
		      "max_token_limit", (json_int_t)p->max_token_limit,
		      "max_llm_time", 3600, "max_exec_time", 90, "max_total_time", 50000,
		      "exit_reason", exit_reasons[reason], "output_patch", text_of(&patch), patch.len,
		      "reward", reward, "reward_calc_time", round4(2.0 + 6.0 * rng_unit(s)),
		      "test_output", text_of(&tests), tests.len, "custom_test_outputs",
		      "regression_test_output", "verifier_prob", "reproduction_test_scores");
	nd_buf_free(&ps);
	nd_buf_free(&patch);
	nd_buf_free(&tests);
	return t;
}

/* ---------------------------------------------------------------- options */

enum {
	OPT_NUM = 256, OPT_SEED, OPT_STEPS_MEAN, OPT_STEPS_SD, OPT_MAX_STEPS,
	OPT_OBS_MEDIAN, OPT_OBS_MEAN, OPT_OBS_MAX, OPT_THOUGHT_MEAN, OPT_ACTION_MEAN,
	OPT_ENV_TIME_MEAN, OPT_LLM_TIME_MEAN, OPT_EXIT_REASON, OPT_MAX_TOKEN_LIMIT,
	OPT_EXP_NAME,
};

static const struct option long_options[] = {
	{"num", required_argument, NULL, OPT_NUM},
	{"seed", required_argument, NULL, OPT_SEED},
	{"steps-mean", required_argument, NULL, OPT_STEPS_MEAN},
	{"steps-sd", required_argument, NULL, OPT_STEPS_SD},
	{"max-steps", required_argument, NULL, OPT_MAX_STEPS},
	{"obs-median", required_argument, NULL, OPT_OBS_MEDIAN},
	{"obs-mean", required_argument, NULL, OPT_OBS_MEAN},
	{"obs-max", required_argument, NULL, OPT_OBS_MAX},
	{"thought-mean", required_argument, NULL, OPT_THOUGHT_MEAN},
	{"action-mean", required_argument, NULL, OPT_ACTION_MEAN},
	{"env-time-mean", required_argument, NULL, OPT_ENV_TIME_MEAN},
	{"llm-time-mean", required_argument, NULL, OPT_LLM_TIME_MEAN},
	{"exit-reason", required_argument, NULL, OPT_EXIT_REASON},
	{"max-token-limit", required_argument, NULL, OPT_MAX_TOKEN_LIMIT},
	{"exp-name", required_argument, NULL, OPT_EXP_NAME},
	{"output", required_argument, NULL, 'o'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

static void usage(void)
{
	printf("Usage: %s [OPTION]...\n", nd_progname());
	fputs("Write synthetic R2E-Gym trajectories, one Trajectory.model_dump_json() line\n"
	      "each, with lengths and times drawn from the distributions below.\n"
	      "Lengths are in tokens, made at 4 bytes per token.\n"
	      "\n"
	      "      --num=N                 trajectories to write (default 10)\n"
	      "      --seed=S                random seed (default 0); same arguments give\n"
	      "                              the same bytes\n"
	      "      --steps-mean=X, --steps-sd=X\n"
	      "                              steps per trajectory, normal (default 22, 6),\n"
	      "                              clamped to [1, max steps]\n"
	      "      --max-steps=N           the agent's step limit (default 40)\n"
	      "      --obs-median=X, --obs-mean=X\n"
	      "                              observation tokens, lognormal (default 160, 340)\n"
	      "      --obs-max=X             longest observation in tokens (default 4000)\n"
	      "      --thought-mean=X        thought tokens, lognormal sigma 0.6 (default 60)\n"
	      "      --action-mean=X         action tokens, lognormal sigma 0.6 (default 40)\n"
	      "      --env-time-mean=X       tool seconds per step, lognormal sigma 1\n"
	      "                              (default 0.2)\n"
	      "      --llm-time-mean=X       model seconds per step (default 2), grows with\n"
	      "                              the reply length\n"
	      "      --exit-reason=MIX       REASON:WEIGHT,... (default\n"
	      "                              agent:0.9,max_step_limit:0.1)\n"
	      "      --max-token-limit=N     end with token_limit where the next prompt and\n"
	      "                              reply would pass N tokens (default 32768)\n"
	      "      --exp-name=NAME         the exp_name field (default synthetic)\n"
	      "  -o, --output=FILE           write to FILE instead of standard output\n"
	      "  -h, --help                  display this help and exit\n"
	      "  -V, --version               output version information and exit\n"
	      "\n"
	      "Exit status: 0 ok; 2 usage or system error, including a failed write.\n", stdout);
}

/* Parses "agent:0.9,max_step_limit:0.1" into p->mix; -1 when malformed. */
static int parse_mix(const char *arg, struct gen_params *p)
{
	char *copy = strdup(arg), *save = NULL, *item;
	double total = 0.0;
	int rc = copy ? 0 : -1;

	memset(p->mix, 0, sizeof(p->mix));
	for (item = copy ? strtok_r(copy, ",", &save) : NULL; item && rc == 0;
	     item = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(item, ':');
		double w = 1.0;
		size_t i;

		if (colon) {
			*colon = '\0';
			if (nd_parse_double(colon + 1, 0.0, 1e9, &w) != 0)
				rc = -1;
		}
		for (i = 0; i < NELEM(exit_reasons) && strcmp(item, exit_reasons[i]); i++)
			;
		if (i == NELEM(exit_reasons))
			rc = -1;
		else
			p->mix[i] += w;
		total += w;
	}
	free(copy);
	return rc == 0 && total > 0.0 ? 0 : -1;
}

/* Stores one numeric option; -1 when its value is out of range. */
static int parse_number(int c, const char *arg, struct gen_params *p)
{
	long v;

	switch (c) {
	case OPT_NUM: return nd_parse_long(arg, 0, 100000000L, &p->num);
	case OPT_SEED:
		if (nd_parse_long(arg, 0, 2147483647L, &v) != 0)
			return -1;
		p->seed = (uint64_t)v;
		return 0;
	case OPT_STEPS_MEAN: return nd_parse_double(arg, 1.0, 100000.0, &p->steps_mean);
	case OPT_STEPS_SD: return nd_parse_double(arg, 0.0, 100000.0, &p->steps_sd);
	case OPT_MAX_STEPS: return nd_parse_long(arg, 1, 100000L, &p->max_steps);
	case OPT_OBS_MEDIAN: return nd_parse_double(arg, 1.0, 1e6, &p->obs_median);
	case OPT_OBS_MEAN: return nd_parse_double(arg, 1.0, 1e6, &p->obs_mean);
	case OPT_OBS_MAX: return nd_parse_double(arg, 1.0, 1e6, &p->obs_max);
	case OPT_THOUGHT_MEAN: return nd_parse_double(arg, 1.0, 1e5, &p->thought_mean);
	case OPT_ACTION_MEAN: return nd_parse_double(arg, 1.0, 1e5, &p->action_mean);
	case OPT_ENV_TIME_MEAN: return nd_parse_double(arg, 1e-4, 1e5, &p->env_time_mean);
	case OPT_LLM_TIME_MEAN: return nd_parse_double(arg, 1e-4, 1e5, &p->llm_time_mean);
	case OPT_MAX_TOKEN_LIMIT: return nd_parse_long(arg, 1, 100000000L, &p->max_token_limit);
	case OPT_EXIT_REASON: return parse_mix(arg, p);
	default: p->exp_name = arg; return 0; /* OPT_EXP_NAME */
	}
}

/* Parses the options into p; returns -1 after help or version (*status 0)
 * or a usage error (*status 2), else 0. */
static int parse_options(int argc, char **argv, struct gen_params *p, const char **output,
			 int *status)
{
	int c;

	*status = ND_EXIT_OK;
	opterr = 0; /* getopt would name argv[0] as given; we name the tool */
	while ((c = getopt_long(argc, argv, ":o:hV", long_options, NULL)) != -1) {
		if (c >= OPT_NUM) {
			if (parse_number(c, optarg, p) != 0) {
				char name[64];

				snprintf(name, sizeof(name), "--%s", long_options[c - OPT_NUM].name);
				*status = nd_invalid_value(name, optarg, NULL);
				return -1;
			}
			continue;
		}
		switch (c) {
		case 'o': *output = optarg; break;
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
	if (optind < argc) {
		*status = nd_usage_error("extra operand '%s'", argv[optind]);
		return -1;
	}
	if (p->obs_mean < p->obs_median) {
		*status = nd_usage_error("--obs-mean must not be below --obs-median "
					 "(a lognormal's mean is at least its median)");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct gen_params p;
	struct gen_dists d;
	const char *output = NULL;
	uint64_t seeds, s[4];
	int status;

	nd_init(argv[0]);
	gen_default_params(&p);
	if (parse_options(argc, argv, &p, &output, &status) < 0)
		return status == ND_EXIT_OK ? nd_finish(status) : status;
	if (output && !freopen(output, "w", stdout)) {
		nd_error("%s: %s", output, strerror(errno));
		return ND_EXIT_USAGE;
	}
	gen_dists_init(&d, &p);
	seeds = p.seed;
	for (long i = 0; i < p.num; i++) {
		json_t *t;

		/* One stream per trajectory: the first N of a longer run are
		 * the N of a shorter one. */
		eng_xoshiro_seed(s, eng_splitmix64(&seeds));
		t = traj_make(&p, &d, s);
		if (!t) {
			nd_error("out of memory");
			return nd_finish(ND_EXIT_USAGE);
		}
		status = nd_write_json(t);
		json_decref(t);
		if (status != 0)
			return nd_finish(ND_EXIT_USAGE);
	}
	return nd_finish(ND_EXIT_OK);
}
