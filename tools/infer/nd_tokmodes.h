/*
 * nd_tokmodes.h: gpu-batch-infer's modes that need the tokenizer and the
 * chat template but no model:
 *   tokenize    {"text":...} records gain "ids" (other fields kept)
 *   detokenize  {"ids":[...]} records gain "text"
 *   render      conversation records -> one "prompt" record per turn with
 *               its prompt length, the recorded one, and the reply length:
 *               the token workload of a replay, without a GPU
 */
#ifndef TRAJBENCH_ND_TOKMODES_H
#define TRAJBENCH_ND_TOKMODES_H

#include <stdbool.h>

enum nd_tok_mode { ND_TOK_NONE, ND_TOK_TOKENIZE, ND_TOK_DETOKENIZE, ND_TOK_RENDER };

struct nd_tok_opts {
	enum nd_tok_mode mode;
	const char *tokenizer;     /* tokenizer.json or a directory holding it */
	const char *chat_template; /* render: chatml, qwen3, llama3; NULL: detect */
	bool keep_going;
	bool skip_special;
};

/* Runs the mode over the files (stdin when n_files is 0).  Returns the exit
 * status: 0, 1 (bad records), 2 (I/O or usage), 3 (tokenizer unavailable). */
int nd_tokmodes_run(const struct nd_tok_opts *o, char **files, int n_files);

#endif
