/*
 * test-nd-template: instance-prompt templates follow Python's str.format
 * for everything R2E-Gym's configs can hold, and refuse the rest; the
 * steps notice reads exactly as R2E-Gym's.
 * Expected strings were produced with Python 3 ("...".format(...)).
 */
#include "tests/tap.h"
#include "tools/render/nd_render.h"

#include <string.h>

/* tmpl with newlines shown as \n, for test names (static buffer). */
static const char *shown(const char *tmpl)
{
	static char buf[256];
	size_t o = 0;

	for (; *tmpl && o + 3 < sizeof(buf); tmpl++) {
		if (*tmpl == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else {
			buf[o++] = *tmpl;
		}
	}
	buf[o] = '\0';
	return buf;
}

/* Formats tmpl with problem ps and compares with want. */
static void check_format(const char *tmpl, const char *ps, const char *want)
{
	struct nd_template *t;
	char err[256] = "";
	char *s = NULL;
	size_t n = 0;

	if (nd_template_parse(tmpl, strlen(tmpl), &t, err, sizeof(err)) == 0) {
		s = nd_template_format(t, ps, strlen(ps), &n);
		nd_template_free(t);
	}
	tap_ok(s && n == strlen(want) && memcmp(s, want, n) == 0,
	       "format \"%s\"", shown(tmpl));
	if (!s)
		tap_diag("error: %s", err);
	else if (strcmp(s, want) != 0)
		tap_diag("got \"%s\", want \"%s\"", s, want);
	free(s);
}

/* tmpl must be refused with a message containing want. */
static void check_refused(const char *tmpl, const char *want)
{
	struct nd_template *t = NULL;
	char err[256] = "";
	int rc = nd_template_parse(tmpl, strlen(tmpl), &t, err, sizeof(err));

	tap_ok(rc < 0 && !t && strstr(err, want) != NULL,
	       "refuse \"%s\"", shown(tmpl));
	if (rc == 0 || !strstr(err, want))
		tap_diag("rc %d, message \"%s\", want \"%s\"", rc, err, want);
	nd_template_free(t);
}

static void test_formats(void)
{
	check_format("", "P", "");
	check_format("no fields at all", "P", "no fields at all");
	check_format("{problem_statement}", "P", "P");
	check_format("<issue>\n{problem_statement}\n</issue>", "a\nb",
		     "<issue>\na\nb\n</issue>");
	check_format("{problem_statement} and {problem_statement}", "x",
		     "x and x");
	check_format("a{{b}}c{problem_statement}d", "P", "a{b}cPd");
	check_format("{{{problem_statement}}}", "P", "{P}");
	check_format("{{problem_statement}}", "P", "{problem_statement}");
	check_format("json: {{\"k\": 1}}", "P", "json: {\"k\": 1}");
	check_format("{problem_statement!s}", "P", "P");
	check_format("{problem_statement:}", "P", "P");
	check_format("{problem_statement!s:s}", "P", "P");
	/* The substituted text is never read as a template. */
	check_format("[{problem_statement}]", "{x} }{ {{", "[{x} }{ {{]");
}

static void test_refusals(void)
{
	check_refused("{foo}", "unknown placeholder '{foo}'");
	check_refused("{}", "unknown placeholder '{}'");
	check_refused("{0}", "unknown placeholder '{0}'");
	check_refused("{ problem_statement }", "unknown placeholder");
	check_refused("{problem_statement.x}", "unsupported form");
	check_refused("{problem_statement[0]}", "unsupported form");
	check_refused("line one\n{oops}", "on line 2 of the template");
	check_refused("{problem_statement!r}", "unsupported form");
	check_refused("{problem_statement:>10}", "unsupported form");
	check_refused("a } b", "unbalanced '}' on line 1");
	check_refused("}}}", "unbalanced '}'");
	check_refused("a {", "unbalanced '{' on line 1");
	check_refused("x\ny {problem_statement", "unbalanced '{' on line 2");
	check_refused("{problem_statement:{x}", "unbalanced '{'");
}

static void test_nul_bytes(void)
{
	static const char tmpl[] = "a\0{problem_statement}\0b";
	static const char ps[] = "p\0q";
	static const char want[] = "a\0p\0q\0b";
	struct nd_template *t;
	char err[128];
	size_t n = 0;
	char *s = NULL;

	if (nd_template_parse(tmpl, sizeof(tmpl) - 1, &t, err, sizeof(err)) == 0) {
		s = nd_template_format(t, ps, sizeof(ps) - 1, &n);
		nd_template_free(t);
	}
	tap_ok(s && n == sizeof(want) - 1 && memcmp(s, want, n) == 0,
	       "NUL bytes in template and problem statement are kept");
	free(s);
}

static void check_notice(long max_steps, long k, const char *want)
{
	char buf[128];
	size_t n = nd_render_steps_notice(max_steps, k, buf, sizeof(buf));

	tap_ok(n == strlen(want) && strcmp(buf, want) == 0,
	       "notice max_steps %ld, call %ld", max_steps, k);
	if (strcmp(buf, want) != 0)
		tap_diag("got \"%s\"", buf);
}

static void test_notices(void)
{
	const char *last = "You have reached the maximum number of steps. "
			   "Please submit your answer NOW.";

	check_notice(30, 0, "Steps Remaining: 30");
	check_notice(30, 29, "Steps Remaining: 1");
	check_notice(30, 30, last);
	check_notice(30, 31, last);
	check_notice(1, 5, last);
}

int main(void)
{
	test_formats();
	test_refusals();
	test_nul_bytes();
	test_notices();
	return tap_done();
}
