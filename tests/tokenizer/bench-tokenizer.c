/*
 * bench-tokenizer.c: encoding speed of the tokenizer on real agent text.
 *
 * Usage: bench-tokenizer TOKENIZER TRAJECTORIES.jsonl [PASSES]
 * Collects the texts a replay tokenizes from R2E-Gym trajectory lines (the
 * agent's system and instance prompts, the problem statement, and every
 * step's thought, action and observation), then encodes all of them PASSES
 * times (default 5) on one thread.  The first pass runs with an empty BPE
 * cache ("cold"); later passes see the cache a replay sees when it renders
 * turn after turn of the same conversations ("warm").  Prints MB/s of
 * input text (1 MB = 1e6 bytes) for both, and the bytes per token.
 * A benchmark, not a test: it asserts nothing about time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "engine/tokenizer.h"

struct texts {
	json_t **v;  /* (n) json strings, borrowed from the parsed lines */
	size_t n, cap;
	size_t bytes;
};

static void add_text(struct texts *t, json_t *s)
{
	if (!json_is_string(s) || json_string_length(s) == 0)
		return;
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 256;
		t->v = realloc(t->v, t->cap * sizeof(*t->v));
		if (!t->v) {
			perror("bench-tokenizer");
			exit(2);
		}
	}
	t->v[t->n++] = json_incref(s);
	t->bytes += json_string_length(s);
}

static void collect(struct texts *t, json_t *traj)
{
	json_t *args = json_object_get(traj, "agent_args"), *step;
	size_t i;

	add_text(t, json_object_get(args, "system_prompt"));
	add_text(t, json_object_get(args, "instance_prompt"));
	add_text(t, json_object_get(traj, "problem_statement"));
	json_array_foreach(json_object_get(traj, "trajectory_steps"), i, step) {
		add_text(t, json_object_get(step, "thought"));
		add_text(t, json_object_get(step, "action"));
		add_text(t, json_object_get(step, "observation"));
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Encodes every text once; returns seconds, adds the token count. */
static double one_pass(struct eng_tokenizer *tok, const struct texts *t, size_t *n_tokens)
{
	struct eng_ids ids = { 0 };
	struct eng_error err;
	double t0 = now_s();

	for (size_t i = 0; i < t->n; i++) {
		ids.n = 0;
		if (eng_tokenizer_encode(tok, json_string_value(t->v[i]), json_string_length(t->v[i]),
					 &ids, 0, &err)) {
			fprintf(stderr, "bench-tokenizer: text %zu: %s\n", i, err.msg);
			exit(1);
		}
		*n_tokens += ids.n;
	}
	eng_ids_free(&ids);
	return now_s() - t0;
}

int main(int argc, char **argv)
{
	struct texts t = { 0 };
	struct eng_tokenizer *tok;
	struct eng_error err;
	char buf[1600], *line = NULL;
	size_t cap = 0, n_tokens = 0;
	long passes = argc > 3 ? atol(argv[3]) : 5;
	double cold, warm = 0, t0;
	FILE *f;

	if (argc < 3 || passes < 2) {
		fprintf(stderr, "usage: bench-tokenizer TOKENIZER TRAJECTORIES.jsonl [PASSES>=2]\n");
		return 2;
	}
	t0 = now_s();
	if (eng_tokenizer_load(argv[1], &tok, &err)) {
		fprintf(stderr, "bench-tokenizer: %s\n", eng_error_format(&err, buf, sizeof(buf)));
		return 3;
	}
	printf("load: %.3f s (%ld tokens in the vocabulary)\n", now_s() - t0,
	       (long)eng_tokenizer_vocab_size(tok));
	if (!(f = fopen(argv[2], "r"))) {
		perror(argv[2]);
		return 2;
	}
	while (getline(&line, &cap, f) > 0) {
		json_t *traj = json_loads(line, 0, NULL);
		collect(&t, traj);
		json_decref(traj);
	}
	fclose(f);
	free(line);
	cold = one_pass(tok, &t, &n_tokens);
	for (long p = 1; p < passes; p++)
		warm += one_pass(tok, &t, &n_tokens);
	printf("text: %zu pieces, %.3f MB, %.2f bytes/token\n", t.n, 1e-6 * (double)t.bytes,
	       (double)t.bytes * (double)passes / (double)n_tokens);
	printf("encode cold cache: %.1f MB/s (1 thread)\n", 1e-6 * (double)t.bytes / cold);
	printf("encode warm cache: %.1f MB/s (1 thread, %ld passes)\n",
	       1e-6 * (double)t.bytes * (double)(passes - 1) / warm, passes - 1);
	for (size_t i = 0; i < t.n; i++)
		json_decref(t.v[i]);
	free(t.v);
	eng_tokenizer_free(tok);
	return 0;
}
