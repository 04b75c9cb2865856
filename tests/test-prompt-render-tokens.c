/*
 * test-prompt-render-tokens: the prompts prompt-render rebuilds are the
 * ones R2E-Gym sent.  Each turn of the two public sample trajectories,
 * written by `prompt-render --format openai`, is put in the ChatML form
 * their model (Qwen3-32B) saw and tokenized with the Qwen tokenizer; the
 * count must equal the recorded token_usage_prompt of that call, and
 * max_tokens the recorded token_usage_completion.
 *
 * Qwen3's chat template drops the <think>...</think> block (and the
 * newlines after it) from assistant turns that come before the last user
 * message, which in every prompt here is all of them; the ChatML text is
 * built here for that reason rather than taken from the engine's
 * templates.  Skips when the shared data, the tokenizer or traj-extract
 * is absent.
 */
#include "tests/tap.h"
#include "tests/test-prompt-render-helper.h"
#include "engine/error.h"
#include "engine/tokenizer.h"

#include <jansson.h>

/* Appends s to the growing buffer *buf (length *n, capacity *cap). */
static int put(char **buf, size_t *n, size_t *cap, const char *s, size_t len)
{
	if (*n + len + 1 > *cap) {
		size_t ncap = 2 * (*n + len + 1);
		char *p = realloc(*buf, ncap);

		if (!p)
			return -1;
		*buf = p;
		*cap = ncap;
	}
	memcpy(*buf + *n, s, len);
	*n += len;
	(*buf)[*n] = '\0';
	return 0;
}

/* The ChatML text of a request's messages plus the generation prompt. */
static char *chatml(const json_t *msgs, size_t *n)
{
	char *buf = NULL;
	size_t cap = 0, i;
	json_t *m;
	int bad = 0;

	*n = 0;
	json_array_foreach(msgs, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *c = json_object_get(m, "content");
		const char *text = json_string_value(c), *end;
		size_t len = json_string_length(c);

		if (!role || !text)
			return free(buf), NULL;
		if (strcmp(role, "assistant") == 0 &&
		    (end = strstr(text, "</think>")) != NULL) {
			end += strlen("</think>");
			while (*end == '\n')
				end++;
			len -= (size_t)(end - text);
			text = end;
		}
		bad |= put(&buf, n, &cap, "<|im_start|>", 12);
		bad |= put(&buf, n, &cap, role, strlen(role));
		bad |= put(&buf, n, &cap, "\n", 1);
		bad |= put(&buf, n, &cap, text, len);
		bad |= put(&buf, n, &cap, "<|im_end|>\n", 11);
	}
	bad |= put(&buf, n, &cap, "<|im_start|>assistant\n", 22);
	if (bad)
		return free(buf), NULL;
	return buf;
}

/* The recorded (prompt, completion) token counts of every step, in order. */
static size_t recorded(const char *path, json_int_t (*out)[2], size_t max)
{
	FILE *fp = fopen(path, "rb");
	char *line = NULL;
	size_t cap = 0, n = 0, i;
	json_t *step;

	while (fp && getline(&line, &cap, fp) > 0) {
		json_t *t = json_loads(line, 0, NULL);

		json_array_foreach(json_object_get(t, "trajectory_steps"), i, step) {
			if (n == max)
				break;
			out[n][0] = json_integer_value(json_object_get(step,
						"token_usage_prompt"));
			out[n++][1] = json_integer_value(json_object_get(step,
						"token_usage_completion"));
		}
		json_decref(t);
	}
	free(line);
	if (fp)
		fclose(fp);
	return n;
}

/* Tokenizes each request line of out and compares with rec. */
static void check_requests(struct eng_tokenizer *tok, char *out,
			   json_int_t (*rec)[2], size_t n_rec)
{
	size_t n = 0, prompt_ok = 0, max_ok = 0;
	char *save = NULL;

	for (char *line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save), n++) {
		json_t *req = json_loads(line, 0, NULL);
		size_t len;
		char *text = chatml(json_object_get(req, "messages"), &len);
		struct eng_ids ids = { 0 };
		struct eng_error err;

		if (n < n_rec && text &&
		    eng_tokenizer_encode(tok, text, len, &ids, 0, &err) == 0) {
			if ((json_int_t)ids.n == rec[n][0])
				prompt_ok++;
			else
				tap_diag("turn %zu: %zu tokens, recorded %lld", n,
					 ids.n, (long long)rec[n][0]);
		}
		if (n < n_rec && json_integer_value(json_object_get(req,
				"max_tokens")) == rec[n][1])
			max_ok++;
		eng_ids_free(&ids);
		free(text);
		json_decref(req);
	}
	tap_ok(n == n_rec, "one request per recorded step (%zu, %zu)", n, n_rec);
	tap_ok(prompt_ok == n_rec, "prompt tokens equal token_usage_prompt "
	       "on %zu of %zu turns", prompt_ok, n_rec);
	tap_ok(max_ok == n_rec, "max_tokens equals token_usage_completion "
	       "on %zu of %zu turns", max_ok, n_rec);
}

int main(void)
{
	char data[2048], bin[2048], path[4096], cmd[16384], *out;
	const char *skip = locate(data, sizeof(data), bin, sizeof(bin));
	struct eng_tokenizer *tok;
	struct eng_error err;
	json_int_t rec[256][2];
	size_t n_rec, n_out;

	if (skip)
		return tap_skip_all(skip);
	snprintf(path, sizeof(path), "%s/../qwen2-tokenizer/tokenizer.json", data);
	if (eng_tokenizer_load(path, &tok, &err) != 0)
		return tap_skip_all("Qwen tokenizer absent or unreadable");
	snprintf(path, sizeof(path), "%s/%s", data, SAMPLE);
	n_rec = recorded(path, rec, 256);
	snprintf(cmd, sizeof(cmd), "'%s/traj-extract' '%s' | '%s/prompt-render'"
		 " --config '%s/%s' --format openai", bin, path, bin, data, CONFIG);
	out = run(cmd, &n_out);
	tap_ok(out != NULL && n_rec > 0, "pipeline ran: %s", cmd);
	if (out)
		check_requests(tok, out, rec, n_rec);
	free(out);
	eng_tokenizer_free(tok);
	return tap_done();
}
