/*
 * fuzz-render.c: prompt-render's inputs (tools/render): the agent YAML
 * (libyaml under nd_yaml.c), the str.format templates in it, and the
 * rendering of a trajectory record into a conversation and into OpenAI
 * requests.  Input: YAML, FUZZ_SEP, one trajectory record (JSON).  Without
 * the separator the whole input is the YAML and the record is a fixed
 * sample.  A conversation that renders is a JSON object whose messages
 * alternate as R2E-Gym sends them; every request has messages and a
 * max_tokens >= 1.
 */
#include "tests/fuzz/fuzz.h"
#include "tools/render/nd_render.h"

#include <jansson.h>

static const char sample_record[] =
	"{\"type\":\"trajectory\",\"id\":\"t\",\"problem_statement\":\"p {x}\","
	"\"steps\":[{\"thought\":\"a\",\"action\":\"b\",\"observation\":\"c\","
	"\"env_exec_time\":0.5,\"token_usage_completion\":3}],"
	"\"meta\":{\"max_steps\":2},\"prompts\":{\"system_prompt\":\"s\","
	"\"instance_prompt\":\"i {problem_statement}\"}}";

static int check_request(const json_t *req, void *user)
{
	(void)user;
	FUZZ_CHECK(json_is_array(json_object_get(req, "messages")));
	FUZZ_CHECK(json_integer_value(json_object_get(req, "max_tokens")) >= 1);
	return 0;
}

static void check_conversation(const json_t *conv)
{
	const json_t *msgs = json_object_get(conv, "messages");
	char err[512];

	FUZZ_CHECK(json_is_object(conv) && json_is_array(msgs));
	FUZZ_CHECK(json_array_size(msgs) >= 2);
	FUZZ_CHECK(!strcmp(json_string_value(json_object_get(json_array_get(msgs, 0), "role")),
			   "system"));
	FUZZ_CHECK(nd_render_requests(conv, 1024, check_request, NULL, err, sizeof(err)) == 0);
}

static void render(const json_t *traj, const struct nd_prompts *p)
{
	char err[512];
	json_t *conv = nd_render_conversation(traj, p, 0, err, sizeof(err));

	if (conv)
		check_conversation(conv);
	json_decref(conv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n1, off2;
	int has_rec = fuzz_split(data, size, &n1, &off2);
	struct nd_prompts cfg = { 0 }, own = { 0 };
	long line, column;
	char err[512];
	json_t *traj;

	if (has_rec)
		traj = json_loadb((const char *)data + off2, size - off2, JSON_ALLOW_NUL, NULL);
	else
		traj = json_loads(sample_record, 0, NULL);
	if (nd_prompts_from_config(fuzz_file(data, n1), &cfg, &line, &column, err,
				   sizeof(err)) == 0) {
		FUZZ_CHECK(cfg.instance != NULL);
		if (traj)
			render(traj, &cfg);
		nd_prompts_free(&cfg);
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}
	/* --prompts-from-trajectory: the record's own templates. */
	if (traj && nd_prompts_from_record(traj, &own, err, sizeof(err)) == 0) {
		render(traj, &own);
		nd_prompts_free(&own);
	}
	json_decref(traj);
	return 0;
}
