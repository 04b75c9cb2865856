/*
 * bench-chat-render.c: what rendering a conversation's prompts costs, turn
 * by turn, with the block reuse of eng_chat_conv against encoding every
 * prompt whole.
 *
 * Usage: bench-chat-render TOKENIZER TRAJECTORIES.jsonl [TURNS [TOKENS]]
 * Builds one conversation the way R2E-Gym does (system prompt, instance
 * prompt, then per step thought + "\n\n" + action and the observation)
 * from the steps of the trajectories, cycled, with TURNS assistant turns
 * (default 30) and thoughts and observations cut so that the last prompt
 * is about TOKENS tokens (default 25000) with the chatml template.  Then, for the chatml and qwen3
 * templates, renders every turn's prompt in order:
 *   reuse  eng_chat_conv_prompt: blocks whose text did not change take the
 *          previous prompt's ids (what a replay does);
 *   whole  eng_chat_render: the whole prompt rendered and encoded again
 *          (what a server does with each request);
 * each with a freshly loaded tokenizer (its BPE cache cold at turn 0, then
 * warm with the words of the earlier turns, as in a replay);
 * checks that both give the same ids, and prints the mean and largest
 * cost of a turn and the ratio.  A benchmark: it asserts nothing about time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "engine/chat.h"
#include "engine/tokenizer.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *msg)
{
	fprintf(stderr, "bench-chat-render: %s\n", msg);
	exit(2);
}

/* Every step (thought, action, observation) of the trajectories, and the
 * first trajectory's prompts. */
struct source {
	json_t *steps;        /* array of step objects */
	json_t *system, *user;
};

static void read_source(const char *path, struct source *src)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;

	if (!f)
		die("cannot open the trajectories");
	src->steps = json_array();
	while (getline(&line, &cap, f) > 0) {
		json_t *t = json_loads(line, 0, NULL), *args = json_object_get(t, "agent_args");

		if (!src->system && json_is_string(json_object_get(args, "system_prompt"))) {
			src->system = json_incref(json_object_get(args, "system_prompt"));
			src->user = json_incref(json_object_get(t, "problem_statement"));
		}
		json_array_extend(src->steps, json_object_get(t, "trajectory_steps"));
		json_decref(t);
	}
	free(line);
	fclose(f);
	if (!src->system || json_array_size(src->steps) == 0)
		die("no trajectory with steps and an agent system prompt");
}

static json_t *msg(const char *role, const char *text, size_t n)
{
	return json_pack("{s:s,s:s%}", "role", role, "content", text, n);
}

/* The conversation with observations cut to obs_bytes. */
static json_t *build(const struct source *src, int turns, size_t obs_bytes)
{
	json_t *msgs = json_array();
	char buf[1 << 16];

	json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "system", "content", src->system));
	json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "user", "content", src->user));
	for (int k = 0; k < turns; k++) {
		json_t *st = json_array_get(src->steps, (size_t)k % json_array_size(src->steps));
		const char *obs = json_string_value(json_object_get(st, "observation"));
		size_t on = obs ? strlen(obs) : 0;

		snprintf(buf, sizeof(buf), "%.*s\n\n%s", (int)obs_bytes,
			 json_string_value(json_object_get(st, "thought")) ?: "",
			 json_string_value(json_object_get(st, "action")) ?: "");
		json_array_append_new(msgs, msg("assistant", buf, strlen(buf)));
		/* cut at a character boundary */
		if (on > obs_bytes) {
			on = obs_bytes;
			while (on > 0 && ((unsigned char)obs[on] & 0xC0) == 0x80)
				on--;
		}
		json_array_append_new(msgs, msg("user", obs ? obs : "", on));
	}
	return json_pack("{s:o}", "messages", msgs);
}

struct result {
	double first_s;       /* turn 0: everything encoded, the BPE cache cold */
	double mean_s, max_s; /* turns 1 .. */
	size_t last_len, total_tokens;
};

/* Renders every turn with reuse (whole = 0) or whole (1); ids of the
 * other run are compared when given. */
static int run(struct eng_chat *chat, const struct eng_chat_input *in, int whole,
	       struct eng_ids *keep, struct result *res)
{
	struct eng_chat_conv *cv = NULL;
	struct eng_ids ids = { 0 };
	int ok = eng_chat_conv_new(chat, in, &cv, NULL) == 0;
	size_t nt = ok ? eng_chat_conv_n_turns(cv) : 0;

	memset(res, 0, sizeof(*res));
	for (size_t k = 0; ok && k < nt; k++) {
		const int32_t *p;
		size_t n;
		double t0 = now_s(), dt;

		ids.n = 0;
		if (whole) {
			ok = eng_chat_render(chat, in, eng_chat_conv_msg_index(cv, k), true, &ids,
					     NULL) == 0;
			p = ids.ids;
			n = ids.n;
		} else {
			ok = eng_chat_conv_prompt(cv, k, &p, &n, NULL) == 0;
		}
		dt = now_s() - t0;
		if (k == 0)
			res->first_s = dt;
		else
			res->mean_s += dt / (double)(nt - 1);
		res->max_s = k > 0 && dt > res->max_s ? dt : res->max_s;
		res->last_len = n;
		res->total_tokens += n;
		if (ok && keep[k].n == 0)
			eng_ids_append(&keep[k], p, n);
		else if (ok && (keep[k].n != n || memcmp(keep[k].ids, p, n * sizeof(int32_t))))
			ok = 0;
	}
	eng_ids_free(&ids);
	eng_chat_conv_free(cv);
	return ok;
}

/* Both ways, each with a tokenizer of its own loaded fresh, so that both
 * start from a cold BPE cache. */
static void bench(const char *tok_path, const char *name, json_t *conv, int turns)
{
	struct eng_chat_spec spec;
	struct eng_chat_input in;
	struct eng_ids *keep = calloc((size_t)turns + 1, sizeof(*keep));
	struct result res[2];
	int ok = 1;

	if (eng_chat_spec_from_name(name, &spec, NULL) || eng_chat_input_from_json(conv, &in, NULL) ||
	    !keep)
		die("cannot set up the template");
	for (int whole = 0; whole < 2; whole++) {
		struct eng_tokenizer *tok;
		struct eng_chat *chat;

		if (eng_tokenizer_load(tok_path, &tok, NULL) || eng_chat_new(tok, &spec, &chat, NULL))
			die("cannot load the tokenizer");
		ok = run(chat, &in, whole, keep, &res[whole]) && ok;
		eng_chat_free(chat);
		eng_tokenizer_free(tok);
	}
	struct result reuse = res[0], whole = res[1];

	printf("%-7s %d turns, last prompt %zu tokens, %zu prompt tokens in all\n"
	       "        turn 0: reuse %.3f ms, whole %.3f ms; turns 1-%d: reuse %.3f ms a turn "
	       "(max %.3f), whole %.3f ms a turn (max %.3f); whole/reuse %.1fx;\n"
	       "        all turns: reuse %.1f ms, whole %.1f ms%s\n",
	       name, turns, reuse.last_len, reuse.total_tokens, reuse.first_s * 1e3,
	       whole.first_s * 1e3, turns - 1, reuse.mean_s * 1e3, reuse.max_s * 1e3,
	       whole.mean_s * 1e3, whole.max_s * 1e3, whole.mean_s / reuse.mean_s,
	       (reuse.first_s + reuse.mean_s * (turns - 1)) * 1e3,
	       (whole.first_s + whole.mean_s * (turns - 1)) * 1e3, ok ? "" : "  IDS DIFFER");
	for (int k = 0; k <= turns; k++)
		eng_ids_free(&keep[k]);
	free(keep);
	eng_chat_input_free(&in);
}

int main(int argc, char **argv)
{
	struct eng_tokenizer *tok;
	struct source src = { 0 };
	int turns = argc > 3 ? atoi(argv[3]) : 30;
	double target = argc > 4 ? atof(argv[4]) : 25000;
	size_t obs = 4000;
	json_t *conv = NULL;

	if (argc < 3)
		die("usage: bench-chat-render TOKENIZER TRAJECTORIES.jsonl [TURNS [TOKENS]]");
	if (eng_tokenizer_load(argv[1], &tok, NULL))
		die("cannot load the tokenizer");
	read_source(argv[2], &src);
	/* Observations cut so that the last prompt is about target tokens. */
	for (int i = 0; i < 4; i++) {
		struct eng_chat_spec spec;
		struct eng_chat *chat;
		struct eng_chat_input in;
		struct eng_ids ids = { 0 };

		json_decref(conv);
		conv = build(&src, turns, obs);
		eng_chat_spec_from_name("chatml", &spec, NULL);
		if (eng_chat_new(tok, &spec, &chat, NULL) || eng_chat_input_from_json(conv, &in, NULL) ||
		    eng_chat_render(chat, &in, in.n_msgs - 1, true, &ids, NULL))
			die("cannot render the conversation");
		obs = (size_t)((double)obs * target / (double)ids.n);
		eng_ids_free(&ids);
		eng_chat_input_free(&in);
		eng_chat_free(chat);
	}
	bench(argv[1], "chatml", conv, turns);
	bench(argv[1], "qwen3", conv, turns);
	json_decref(conv);
	json_decref(src.steps);
	json_decref(src.system);
	json_decref(src.user);
	eng_tokenizer_free(tok);
	return 0;
}
