/*
 * nd_render.h: turn trajectory records into the chat conversations an
 * R2E-Gym agent sent to its model, and those into chat-completion requests.
 *
 *   templates      nd_template_parse / nd_template_format: the instance
 *                  prompt with {problem_statement}, Python str.format rules
 *   prompts        nd_prompts_from_config / nd_prompts_from_record
 *   conversations  nd_render_conversation: trajectory -> conversation record
 *   requests       nd_render_requests: one OpenAI chat-completion request
 *                  per assistant turn of a conversation
 * Every function reports failure through a caller-owned message buffer
 * (lowercase, no trailing period) and never prints or exits.
 */
#ifndef TRAJBENCH_ND_RENDER_H
#define TRAJBENCH_ND_RENDER_H

#include <stddef.h>
#include <jansson.h>

/* ---------------------------------------------------------------- templates */

/* A compiled instance-prompt template (opaque). */
struct nd_template;

/* Compiles len bytes of template text.  The only field is
 * {problem_statement} (also written {problem_statement!s} or with an
 * empty or "s" format spec, which Python formats identically); "{{" and
 * "}}" are literal braces.  Returns 0, or -1 with a message in err for an
 * unknown placeholder, a single '{' or '}', or an unterminated field. */
int nd_template_parse(const char *text, size_t len, struct nd_template **out,
		      char *err, size_t errlen);

/* Substitutes the problem statement.  Returns a malloc'd NUL-terminated
 * string of *out_len bytes, or NULL when out of memory. */
char *nd_template_format(const struct nd_template *t, const char *problem,
			 size_t problem_len, size_t *out_len);

void nd_template_free(struct nd_template *t);

/* ---------------------------------------------------------------- prompts */

/* An agent's prompts: the system prompt, used as is, and the compiled
 * instance prompt. */
struct nd_prompts {
	char *system_prompt;     /* malloc'd, NUL-terminated, may hold NULs */
	size_t system_len;
	struct nd_template *instance;
};

/* Loads system_prompt and instance_prompt from an R2E-Gym agent YAML file.
 * On failure returns -1, sets *line (1-based; 0 when none applies, -1 when
 * even the file name does not apply) and *column (0 when unknown) and
 * writes the message to err. */
int nd_prompts_from_config(const char *path, struct nd_prompts *p,
			   long *line, long *column, char *err, size_t errlen);

/* Takes the prompts a trajectory record carries in "prompts".  Returns 0,
 * or -1 with a message (no "prompts", a missing key, a bad template). */
int nd_prompts_from_record(const json_t *traj, struct nd_prompts *p,
			   char *err, size_t errlen);

void nd_prompts_free(struct nd_prompts *p);

/* ---------------------------------------------------------------- conversations */

/* The text appended (after a "\n") to the last user message before LLM
 * call k: "Steps Remaining: N" for N = max_steps - k > 0, else the final
 * notice.  Writes a NUL-terminated string into buf and returns its length
 * (truncated to bufsize - 1; 96 bytes always suffice). */
size_t nd_render_steps_notice(long max_steps, long k, char *buf, size_t bufsize);

/* The record's "id" when it is a string, else NULL (for diagnostics). */
const char *nd_render_record_id(const json_t *record);

/* Builds the conversation record for a trajectory record.  max_steps > 0
 * overrides meta.max_steps; otherwise the record must carry it.  Returns a
 * new object, or NULL with a message in err (not a trajectory, a missing
 * or mistyped field, no max_steps, out of memory). */
json_t *nd_render_conversation(const json_t *traj, const struct nd_prompts *p,
			       long max_steps, char *err, size_t errlen);

/* ---------------------------------------------------------------- requests */

/* Called once per assistant turn with {"messages":[...],"max_tokens":N};
 * a nonzero return stops the walk and is returned by nd_render_requests. */
typedef int (*nd_render_request_fn)(const json_t *request, void *user);

/* Walks a conversation record: for each assistant message, the request
 * holds every earlier message as {"role","content"} and max_tokens = the
 * message's token_usage_completion (at least 1), or default_max_tokens
 * when that is null or absent.  Returns 0, the callback's nonzero value,
 * or -1 with a message in err for a malformed conversation. */
int nd_render_requests(const json_t *conv, long default_max_tokens,
		       nd_render_request_fn fn, void *user,
		       char *err, size_t errlen);

#endif
