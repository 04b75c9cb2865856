/*
 * test-nd-scan.c: the validating JSON scanner (tools/traj/nd_scan.c).
 *
 * Table tests of what is and is not JSON (with the error kind and byte
 * offset), the eight-byte fast path at every alignment, UTF-8 and \u
 * escape edge cases, canonical re-encoding, and a deterministic mutation
 * test that compares accept/reject with jansson on thousands of damaged
 * documents.
 */
#include "tools/traj/nd_scan.h"
#include "tests/tap.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>

struct vcase {
	const char *doc;
	enum nd_scan_err err;   /* ND_SCAN_OK: valid */
	long off;               /* error offset, -1: do not check */
};

static const struct vcase cases[] = {
	{ "{}", ND_SCAN_OK, 0 },
	{ " [1, -0, 0.5, 1e3, 1E+3, -2.5e-7, true, false, null, \"\"] ", ND_SCAN_OK, 0 },
	{ "{\"a\":{\"b\":[[],{}]},\"c\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}", ND_SCAN_OK, 0 },
	{ "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", ND_SCAN_OK, 0 },
	{ "{\"a\":1,}", ND_SCAN_E_SYNTAX, 7 },
	{ "[1,]", ND_SCAN_E_SYNTAX, 3 },
	{ "[,1]", ND_SCAN_E_SYNTAX, 1 },
	{ "{\"a\" 1}", ND_SCAN_E_SYNTAX, 5 },
	{ "{a:1}", ND_SCAN_E_SYNTAX, 1 },
	{ "[01]", ND_SCAN_E_SYNTAX, 1 },
	{ "[1.]", ND_SCAN_E_SYNTAX, 1 },
	{ "[.5]", ND_SCAN_E_SYNTAX, 1 },
	{ "[1e]", ND_SCAN_E_SYNTAX, 1 },
	{ "[-]", ND_SCAN_E_SYNTAX, 1 },
	{ "[NaN]", ND_SCAN_E_SYNTAX, 1 },
	{ "[tru]", ND_SCAN_E_SYNTAX, 1 },
	{ "[nul", ND_SCAN_E_EOF, 4 },
	{ "{\"a\":", ND_SCAN_E_EOF, 5 },
	{ "{\"a\":\"xyz", ND_SCAN_E_EOF, 9 },
	{ "[1,2", ND_SCAN_E_EOF, 4 },
	{ "\"\\q\"", ND_SCAN_E_SYNTAX, 1 },
	{ "\"\\u12g4\"", ND_SCAN_E_SYNTAX, 1 },
	{ "\"ab\\ud800\"", ND_SCAN_E_SYNTAX, 3 },
	{ "\"ab\\ud800\\u0041\"", ND_SCAN_E_SYNTAX, 3 },
	{ "\"ab\\ud800x\"", ND_SCAN_E_SYNTAX, 3 },
	{ "\"ab\\ud83d\\ude", ND_SCAN_E_EOF, 13 },
	{ "\"\\uu\"", ND_SCAN_E_SYNTAX, 1 },
	{ "\"\\u12", ND_SCAN_E_EOF, 5 },
	{ "\"ab\\udc00\"", ND_SCAN_E_SYNTAX, 3 },
	{ "\"tab\there\"", ND_SCAN_E_SYNTAX, 4 },
	{ "\"new\nline\"", ND_SCAN_E_SYNTAX, 4 },
	{ "\"bad \xff byte\"", ND_SCAN_E_UTF8, 5 },
	{ "\"lone \x80\"", ND_SCAN_E_UTF8, 6 },
	{ "\"overlong \xc0\xaf\"", ND_SCAN_E_UTF8, 10 },
	{ "\"overlong \xe0\x80\xaf\"", ND_SCAN_E_UTF8, 10 },
	{ "\"surrogate \xed\xa0\x80\"", ND_SCAN_E_UTF8, 11 },
	{ "\"too big \xf4\x90\x80\x80\"", ND_SCAN_E_UTF8, 9 },
	{ "\"cut \xe2\x82\"", ND_SCAN_E_UTF8, 5 },
	{ "{\"k\xff\":1}", ND_SCAN_E_UTF8, 3 },
	{ "[1] x", ND_SCAN_E_SYNTAX, 4 },
	{ "{} {}", ND_SCAN_E_SYNTAX, 3 },
	{ "", ND_SCAN_E_EOF, 0 },
	{ "\xef\xbb\xbf{}", ND_SCAN_E_SYNTAX, 0 },
};

/* The first 40 bytes of s with control and non-ASCII bytes as '?'. */
static const char *printable(const char *s)
{
	static char buf[41];
	size_t i;

	for (i = 0; i < 40 && s[i]; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

static void test_table(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct vcase *c = &cases[i];
		struct nd_scan s;
		int rc;

		nd_scan_init(&s, c->doc, strlen(c->doc));
		rc = nd_scan_skip(&s);
		if (rc == 0)
			rc = nd_scan_finish(&s);
		if (c->err == ND_SCAN_OK) {
			tap_ok(rc == 0, "valid: %s", printable(c->doc));
			if (rc)
				tap_diag("error at %zu: %s", s.err_off, s.msg);
			continue;
		}
		tap_ok(rc == -1 && s.err == c->err && (c->off < 0 || (long)s.err_off == c->off),
		       "invalid (kind %d at %ld): %s", c->err, c->off, printable(c->doc));
		if (rc != -1 || s.err != c->err || (long)s.err_off != c->off)
			tap_diag("got rc %d kind %d at %zu: %s", rc, s.err, s.err_off, s.msg);
	}
}

/* A special byte at every position of strings of every length up to 40:
 * the word-at-a-time path must find exactly the first one. */
static void test_fast_path(void)
{
	const char specials[] = { '"', '\\', '\n', '\x01', '\x1f', (char)0x80, (char)0xff };
	int bad = 0, total = 0;

	for (size_t len = 1; len <= 40; len++) {
		for (size_t pos = 0; pos < len; pos++) {
			for (size_t k = 0; k < sizeof(specials); k++) {
				char buf[64];
				struct nd_scan s;
				struct nd_span sp;
				int rc;

				buf[0] = '"';
				memset(buf + 1, 'a' + (int)(pos % 26), len);
				buf[1 + pos] = specials[k];
				buf[1 + len] = '"';
				nd_scan_init(&s, buf, len + 2);
				rc = nd_scan_string(&s, &sp);
				total++;
				if (specials[k] == '"') {
					bad += !(rc == 0 && sp.len == pos);
				} else if (specials[k] == '\\') {
					/* '\' then a letter, or '\' then the closing quote */
					char next = 'a' + (int)(pos % 26);

					if (pos + 1 == len)
						bad += !(rc == -1 && s.err == ND_SCAN_E_EOF);
					else if (strchr("bfnrt", next))
						bad += !(rc == 0 && sp.len == len);
					else
						bad += !(rc == -1 && s.err == ND_SCAN_E_SYNTAX &&
							 s.err_off == 1 + pos);
				} else {
					bad += !(rc == -1 && s.err_off == 1 + pos);
				}
			}
		}
	}
	tap_ok(bad == 0, "fast path finds the first special byte (%d/%d wrong)", bad, total);
}

static void test_numbers(void)
{
	struct nd_scan s;
	struct nd_span sp;

	nd_scan_init(&s, "-12 ", 4);
	tap_ok(nd_scan_number(&s, &sp) == 0 && sp.integer && sp.len == 3, "integer span");
	nd_scan_init(&s, "3.25e-2,", 8);
	tap_ok(nd_scan_number(&s, &sp) == 0 && !sp.integer && sp.len == 7, "real span");
	nd_scan_init(&s, "\"3\"", 3);
	tap_ok(nd_scan_number(&s, &sp) == -1 && s.err == ND_SCAN_E_SYNTAX, "string is not a number");
}

static void test_depth(void)
{
	static char deep[2 * ND_SCAN_MAX_DEPTH + 4];
	struct nd_scan s;
	size_t n = ND_SCAN_MAX_DEPTH;

	memset(deep, '[', n);
	memset(deep + n, ']', n);
	nd_scan_init(&s, deep, 2 * n);
	tap_ok(nd_scan_skip(&s) == 0, "nesting of %zu accepted", n);
	deep[n] = '[';
	memset(deep + n + 1, ']', n + 1);
	nd_scan_init(&s, deep, 2 * n + 2);
	tap_ok(nd_scan_skip(&s) == -1 && s.err == ND_SCAN_E_DEPTH, "nesting of %zu refused", n + 1);
}

static void test_canonical(void)
{
	const char *in = "\"a\\/b\\u00e9\\ud83d\\ude00\\u001b\\n\\\"q\\\\ \\u0041\"";
	const char *want = "\"a/b\xc3\xa9\xf0\x9f\x98\x80\\u001b\\n\\\"q\\\\ A\"";
	struct nd_scan s;
	struct nd_span sp;
	struct nd_buf b = { 0 };
	char dec[64];
	size_t n;

	nd_scan_init(&s, in, strlen(in));
	tap_ok(nd_scan_string(&s, &sp) == 0 && sp.escaped, "escaped string scanned");
	nd_buf_put_jstring(&b, &sp);
	tap_ok(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0,
	       "canonical re-encoding");
	n = nd_scan_unescape(&sp, dec);
	tap_ok(n == 16 && memcmp(dec, "a/b\xc3\xa9\xf0\x9f\x98\x80\x1b\n\"q\\ A", n) == 0,
	       "unescape decodes to UTF-8");
	nd_scan_init(&s, "\"trajectory\\u005fsteps\"", 23);
	nd_scan_string(&s, &sp);
	tap_ok(nd_scan_span_eq(&sp, "trajectory_steps"), "escaped key compares decoded");
	nd_buf_reset(&b);
	nd_buf_put_cstring(&b, "x\"y\n");
	tap_ok(b.len == 8 && memcmp(b.data, "\"x\\\"y\\n\"", 8) == 0, "C string encoding");
	nd_buf_reset(&b);
	nd_buf_put_cstring(&b, "f\xe9.\xc3\xa9");
	tap_ok(b.len == 9 && memcmp(b.data, "\"f\xef\xbf\xbd.\xc3\xa9\"", 9) == 0,
	       "C string: a byte that is not UTF-8 becomes U+FFFD");
	nd_buf_free(&b);
}

/* ---------------------------------------------------------------- mutations */

static uint64_t rng = 88172645463325252ULL;

static unsigned next_rand(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static const char *base_docs[] = {
	"{\"trajectory_steps\":[{\"step_idx\":0,\"thought\":\"caf\xc3\xa9 \\u00e9\","
	"\"action\":\"<f>\\n</f>\",\"observation\":\"ok \\\"q\\\" \xe2\x82\xac\","
	"\"env_exec_time\":0.25,\"token_usage_prompt\":-1}],\"ds\":null,"
	"\"reward\":1.5e-3,\"flags\":[true,false,null],\"e\":{}}",
	"[{\"a\":[1,2,{\"b\":\"\\ud83d\\ude00 \xf0\x9f\x98\x80\"}]},\"x\\ty\",-0.0,12]",
};

static void test_mutations(void)
{
	const char alphabet[] = "{}[]:,\"\\ntfu0-.eE 19a\x80\xc3\xa9\xed\xff\t\n";
	int disagree = 0, total = 0;

	for (size_t d = 0; d < sizeof(base_docs) / sizeof(base_docs[0]); d++) {
		size_t blen = strlen(base_docs[d]);

		for (int iter = 0; iter < 6000; iter++) {
			char buf[512];
			size_t len = blen, pos;
			struct nd_scan s;
			json_error_t jerr;
			json_t *j;
			int mine, theirs;

			memcpy(buf, base_docs[d], blen);
			for (int m = 0, nm = 1 + (int)next_rand(3); m < nm; m++) {
				char c = alphabet[next_rand(sizeof(alphabet) - 1)];

				pos = next_rand((unsigned)len);
				switch (next_rand(3)) {
				case 0: buf[pos] = c; break;
				case 1: memmove(buf + pos, buf + pos + 1, len - pos - 1); len--; break;
				default: memmove(buf + pos + 1, buf + pos, len - pos); buf[pos] = c; len++;
				}
			}
			buf[len] = '\0';   /* for printable(); not part of the document */
			nd_scan_init(&s, buf, len);
			mine = nd_scan_skip(&s) == 0 && nd_scan_finish(&s) == 0;
			j = json_loadb(buf, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
			theirs = j != NULL;
			json_decref(j);
			total++;
			if (mine != theirs) {
				disagree++;
				if (disagree <= 3)
					tap_diag("disagree (mine %d, jansson %d: %s) on %s", mine,
						 theirs, jerr.text, printable(buf));
			}
		}
	}
	tap_ok(disagree == 0, "accept/reject agrees with jansson on %d mutated documents", total);
}

int main(void)
{
	test_table();
	test_fast_path();
	test_numbers();
	test_depth();
	test_canonical();
	test_mutations();
	return tap_done();
}
