/*
 * prompt_bound.h: a lower bound on the tokens of a prompt, from the bytes
 * of its messages, known before anything is tokenized.  A prompt whose
 * bound already exceeds the context is refused without the work (a 100 MB
 * message once took 52 s and 2.3 GB to tokenize, only to be refused).
 */
#ifndef TRAJBENCH_ENG_PROMPT_BOUND_H
#define TRAJBENCH_ENG_PROMPT_BOUND_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* At least how many tokens the prompt made of record's messages [0, end)
 * has (end past the last: all of them), when one token stands for at most
 * bytes_per_token input bytes (eng_tokenizer_max_bytes_per_token; 0: no
 * bound is known, and the result is 0). */
int64_t eng_prompt_min_tokens(const json_t *record, size_t end, size_t bytes_per_token);

#endif
