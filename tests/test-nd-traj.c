/*
 * test-nd-traj.c: the trajectory projection (nd_traj.c) and the document
 * splitter (nd_jdoc.c), below the command line.
 *
 * Projection: an exact record for a small document, the id fallbacks,
 * -1 token counts, --max-turns, repeated keys, canonical strings, and the
 * field named by each kind of error.  Splitter: JSONL and pretty-printed
 * files written to a temporary directory, documents that share a line,
 * line/column location, and the errors it reports itself.
 */
#include "tools/traj/nd_jdoc.h"
#include "tools/traj/nd_traj.h"
#include "tests/tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct nd_traj *T;

/* Projects doc; returns the record (static copy) or NULL with *err. */
static const char *project(const char *doc, long max_turns, struct nd_traj_error *err)
{
	static char out[4096];
	struct nd_traj_params p;
	const char *rec;
	size_t len;

	nd_traj_default_params(&p);
	p.max_turns = max_turns;
	if (nd_traj_project(T, doc, strlen(doc), "f.jsonl", 7, &p, err) != ND_TRAJ_OK)
		return NULL;
	rec = nd_traj_record(T, &len);
	snprintf(out, sizeof(out), "%.*s", (int)len, rec);
	return out;
}

#define STEP0 "{\"step_idx\":0,\"thought\":\"t\\u00e9\",\"action\":\"a\",\"observation\":\"o\\/k\"," \
	"\"done\":false,\"info\":{\"x\":[1,2]},\"token_usage_prompt\":-1,\"token_usage_completion\":5," \
	"\"token_usage_total\":-1,\"llm_exec_time\":1.5,\"env_exec_time\":0.25,\"extra\":null}"
#define STEP1 "{\"thought\":\"\",\"action\":\"b\",\"observation\":\"p\"}"

static void test_record(void)
{
	struct nd_traj_error err;
	const char *doc = "{\"trajectory_steps\":[" STEP0 "," STEP1 "],\"problem_statement\":\"fix \\\"x\\\"\","
		"\"docker_image\":\"img:1\",\"exp_name\":null,\"env_args\":{\"ds\":{\"instance_id\":\"env_id\"}},"
		"\"agent_args\":{\"system_prompt\":\"S\",\"instance_prompt\":\"I {problem_statement}\"},"
		"\"ds\":{\"instance_id\":\"iid_1\",\"big\":\"xx\"},\"max_steps\":30,\"exit_reason\":\"agent\","
		"\"reward\":1.0,\"unknown\":[{}]}";
	const char *want = "{\"type\":\"trajectory\",\"id\":\"iid_1\",\"source\":{\"file\":\"f.jsonl\",\"line\":7},"
		"\"problem_statement\":\"fix \\\"x\\\"\",\"steps\":["
		"{\"step_idx\":0,\"thought\":\"t\xc3\xa9\",\"action\":\"a\",\"observation\":\"o/k\","
		"\"env_exec_time\":0.25,\"llm_exec_time\":1.5,\"token_usage_prompt\":null,"
		"\"token_usage_completion\":5,\"token_usage_total\":null},"
		"{\"step_idx\":1,\"thought\":\"\",\"action\":\"b\",\"observation\":\"p\","
		"\"env_exec_time\":null,\"llm_exec_time\":null,\"token_usage_prompt\":null,"
		"\"token_usage_completion\":null,\"token_usage_total\":null}],"
		"\"meta\":{\"instance_id\":\"iid_1\",\"docker_image\":\"img:1\",\"exp_name\":null,"
		"\"exit_reason\":\"agent\",\"reward\":1.0,\"max_steps\":30,\"num_steps\":2},"
		"\"prompts\":{\"system_prompt\":\"S\",\"instance_prompt\":\"I {problem_statement}\"}}";
	const char *got = project(doc, -1, &err);

	tap_ok(got && strcmp(got, want) == 0, "full record, schema order, canonical strings");
	if (!got)
		tap_diag("error: %s", err.msg);
	else if (strcmp(got, want) != 0)
		tap_diag("got  %s", got);
	got = project(doc, 1, &err);
	tap_ok(got && strstr(got, "\"observation\":\"p\"") == NULL &&
	       strstr(got, "\"num_steps\":2") != NULL, "--max-turns 1 keeps one step, num_steps stays 2");
	tap_ok(got && nd_traj_num_steps(T) == 2, "num_steps accessor");
}

static void test_ids(void)
{
	struct nd_traj_error err;
	const char *got;

	got = project("{\"trajectory_steps\":[],\"problem_statement\":\"p\",\"ds\":null,"
		      "\"env_args\":{\"ds\":{\"instance_id\":\"from_env\"}},\"docker_image\":\"img\"}", -1, &err);
	tap_ok(got && strstr(got, "\"id\":\"from_env\"") && strstr(got, "\"instance_id\":\"from_env\""),
	       "id falls back to env_args.ds.instance_id");
	got = project("{\"trajectory_steps\":[],\"problem_statement\":\"p\",\"docker_image\":\"img\"}", -1, &err);
	tap_ok(got && strstr(got, "\"id\":\"img\"") && strstr(got, "\"instance_id\":null"),
	       "then to docker_image");
	got = project("{\"trajectory_steps\":[],\"problem_statement\":\"p\"}", -1, &err);
	tap_ok(got && strstr(got, "\"id\":\"f.jsonl:7\"") && !strstr(got, "prompts"),
	       "then to FILE:LINE; no prompts without agent_args");
	got = project("{\"trajectory_steps\":[" STEP1 "],\"trajectory_steps\":[],\"problem_statement\":\"p\","
		      "\"agent_args\":{\"system_prompt\":\"S\"}}", -1, &err);
	tap_ok(got && strstr(got, "\"steps\":[]") && !strstr(got, "prompts"),
	       "a repeated key: the last wins; one prompt alone gives no prompts");
}

struct ecase {
	const char *doc;
	enum nd_traj_status status;
	const char *field;      /* expected err.field */
	const char *msg_part;   /* expected in err.msg */
};

static const struct ecase ecases[] = {
	{ "[1]", ND_TRAJ_E_SHAPE, "", "not a JSON object (got an array)" },
	{ "{\"problem_statement\":\"p\"}", ND_TRAJ_E_SHAPE, "", "missing field 'trajectory_steps'" },
	{ "{\"trajectory_steps\":[]}", ND_TRAJ_E_SHAPE, "", "missing field 'problem_statement'" },
	{ "{\"trajectory_steps\":3,\"problem_statement\":\"p\"}", ND_TRAJ_E_SHAPE, "trajectory_steps",
	  "'trajectory_steps' must be an array, got a number" },
	{ "{\"trajectory_steps\":[" STEP1 ",{\"thought\":1}]}", ND_TRAJ_E_SHAPE, "trajectory_steps[1].thought",
	  "'trajectory_steps[1].thought' must be a string, got a number" },
	{ "{\"trajectory_steps\":[\"x\"]}", ND_TRAJ_E_SHAPE, "trajectory_steps[0]",
	  "'trajectory_steps[0]' must be an object, got a string" },
	{ "{\"trajectory_steps\":[{\"thought\":\"\",\"action\":\"\"}]}", ND_TRAJ_E_SHAPE, "trajectory_steps[0]",
	  "missing field 'trajectory_steps[0].observation'" },
	{ "{\"trajectory_steps\":[{\"token_usage_prompt\":2.5}]}", ND_TRAJ_E_SHAPE,
	  "trajectory_steps[0].token_usage_prompt", "must be an integer, got 2.5" },
	{ "{\"trajectory_steps\":[{\"env_exec_time\":\"1\"}]}", ND_TRAJ_E_SHAPE,
	  "trajectory_steps[0].env_exec_time", "must be a number or null, got a string" },
	{ "{\"trajectory_steps\":[{\"env_exec_time\":1e999}]}", ND_TRAJ_E_SHAPE,
	  "trajectory_steps[0].env_exec_time", "out of range" },
	{ "{\"ds\":\"x\"}", ND_TRAJ_E_SHAPE, "ds", "'ds' must be an object or null, got a string" },
	{ "{\"ds\":{\"instance_id\":5}}", ND_TRAJ_E_SHAPE, "ds.instance_id", "must be a string or null" },
	{ "{\"max_steps\":99999999999999999999}", ND_TRAJ_E_SHAPE, "max_steps", "out of range" },
	{ "{\"agent_args\":{\"system_prompt\":[]}}", ND_TRAJ_E_SHAPE, "agent_args.system_prompt",
	  "must be a string or null, got an array" },
	{ "{\"test_output\":\"a\xff\"}", ND_TRAJ_E_JSON, "test_output", "bad lead byte 0xff" },
	{ "{\"trajectory_steps\":[{\"info\":{\"k\":tru}}]}", ND_TRAJ_E_JSON, "trajectory_steps[0].info",
	  "invalid literal" },
	{ "{\"a\":1 \"b\":2}", ND_TRAJ_E_JSON, "", "expected ',' or '}'" },
	{ "{\"env_args\":{\"ds\":{\"instance_id\":\"x\",}}}", ND_TRAJ_E_JSON, "env_args.ds",
	  "unexpected '}'" },
	{ "{\"trajectory_steps\":[", ND_TRAJ_E_JSON, "trajectory_steps", "unexpected end of input" },
	{ "{\"trajectory_steps\":[],\"problem_statement\":\"p\"} x", ND_TRAJ_E_JSON, "",
	  "expected end of input" },
};

static void test_errors(void)
{
	for (size_t i = 0; i < sizeof(ecases) / sizeof(ecases[0]); i++) {
		const struct ecase *c = &ecases[i];
		struct nd_traj_error err;
		const char *got = project(c->doc, -1, &err);
		int ok = !got && err.status == c->status && strcmp(err.field, c->field) == 0 &&
			 strstr(err.msg, c->msg_part) != NULL;

		tap_ok(ok, "error case %zu: %s", i, c->msg_part);
		if (!ok)
			tap_diag("got status %d field '%s' msg '%s'", got ? 0 : err.status,
				 got ? "" : err.field, got ? got : err.msg);
	}
}

/* ---------------------------------------------------------------- jdoc */

static char tmpdir[] = "/tmp/test-nd-traj.XXXXXX";

static const char *write_file(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	if (!f)
		return path;
	fputs(text, f);
	fclose(f);
	return path;
}

/* Reads all of path: "L<line>C<col>:<len> " per document, "E<line>:<msg> "
 * per error, into out. */
static void read_all(const char *path, char *out, size_t cap)
{
	struct nd_jdoc_reader *r = nd_jdoc_open(path);
	struct nd_jdoc doc;
	char msg[160];
	long line;
	int rc;
	size_t n = 0;

	out[0] = '\0';
	if (!r)
		return;
	while ((rc = nd_jdoc_next(r, &doc, msg, sizeof(msg), &line)) != 0 && n < cap) {
		if (rc == 1)
			n += (size_t)snprintf(out + n, cap - n, "L%ldC%ld:%zu%s%s ", doc.line, doc.col,
					      doc.len, doc.pretty ? "p" : "", doc.unterminated ? "u" : "");
		else
			n += (size_t)snprintf(out + n, cap - n, "E%ld:%s ", line, msg);
	}
	nd_jdoc_close(r);
}

static void expect_docs(const char *name, const char *text, const char *want)
{
	char got[512];

	read_all(write_file(name, text), got, sizeof(got));
	tap_ok(strcmp(got, want) == 0, "jdoc %s", name);
	if (strcmp(got, want) != 0)
		tap_diag("got '%s' want '%s'", got, want);
}

static void test_jdoc(void)
{
	struct nd_jdoc doc = { "{\n  \"a\": x\n}", 12, 3, 1, false, true };
	long line, col;

	expect_docs("lines", "{\"a\":1}\n\n  \n{\"b\":2}\n", "L1C1:7 L4C1:7 ");
	expect_docs("last-unterminated", "{\"a\":1}\n{\"b\":", "L1C1:7 L2C1:5u ");
	expect_docs("only-line-unterminated", "{\"a\":", "L1C1:5u ");
	expect_docs("pretty", "\n{\n  \"a\": \"}\\\"{\"\n}\n{\n  \"b\": [\n    1\n  ]\n}",
		    "L2C1:17p L5C1:22p ");
	expect_docs("pretty-same-line", "{\n  \"a\": 1\n} {\n\"b\":2}\n", "L1C1:12p L3C3:8p ");
	expect_docs("empty", "", "E0:empty file ");
	expect_docs("blank", "\n  \n", "E0:no JSON documents, only blank lines ");
	expect_docs("pretty-truncated", "{\n  \"a\": [1,\n", "E1:truncated document: the file ends before it does ");
	expect_docs("pretty-garbage", "{\n \"a\": 1\n}\nxyz\n", "L1C1:11p E4:unexpected text at column 1 "
		    "between pretty-printed JSON documents; the rest of the file is skipped ");
	expect_docs("pretty-raw-newline", "{\n\"a\":\"x\ny\"}\n{}\n",
		    "L1C1:9p E3:the rest of the file is skipped: the document above is broken, "
		    "so the next one cannot be found ");
	expect_docs("first-line-bad", "{\"a\" 1}\n{\"b\":2}\n", "L1C1:7 L2C1:7 ");
	nd_jdoc_locate(&doc, 9, &line, &col);
	tap_ok(line == 4 && col == 8, "locate: line and column inside a pretty document");
	nd_jdoc_locate(&doc, 0, &line, &col);
	tap_ok(line == 3 && col == 1, "locate: the document's first byte");
}

int main(void)
{
	T = nd_traj_new();
	if (!T || !mkdtemp(tmpdir))
		return tap_skip_all("cannot set up");
	test_record();
	test_ids();
	test_errors();
	test_jdoc();
	nd_traj_free(T);
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			tap_diag("could not remove %s", tmpdir);
	}
	return tap_done();
}
