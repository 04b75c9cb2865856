/*
 * splits.h: how the decode attention's keys are cut into splits (split-K)
 * on the GPU, planned on the host: plain arithmetic on a batch's
 * contexts, so that it is tested without a GPU.
 */
#ifndef TRAJBENCH_SPLITS_H
#define TRAJBENCH_SPLITS_H

#include <stdint.h>

#include "engine/backend.h"

/* Decode blocks a multiprocessor runs at once (the tensor-core decode
 * kernel's residency at head_dim 128): the slots the splits by work fill. */
#define ENG_DECODE_BLOCKS_PER_SM 2

/* About want splits of max_ctx keys: *split_len a multiple of align, at
 * least 64, and the *n_splits that cover max_ctx with it. */
void eng_split_keys(int max_ctx, int want, int align, int *n_splits, int *split_len);

/* The modelled time, in keys walked, of a decode launch over batch b's
 * decode rows (one token) whose keys go in ns splits of len, the last
 * taking the rest, with pad more rows of one key: one KV head's blocks
 * in grid order (row fastest, split slowest), each taken by the least
 * loaded of slots block slots, at ENG_DECODE_BLOCK_KEYS beside its keys;
 * a split past its row's keys costs nothing. */
#define ENG_DECODE_BLOCK_KEYS 64
int64_t eng_decode_split_time(const struct eng_batch *b, int pad, int len, int ns, int slots);

/* The decode splits by work for batch b (its one-token rows, plus pad
 * rows of one key) on a GPU of n_sm multiprocessors and a model of nkv
 * KV heads (a rank's): one split length for all rows, of a few around an
 * even share the one eng_decode_split_time models fastest (fewer splits
 * at a tie), at most max_splits (0: any). */
void eng_decode_split_by_work(const struct eng_batch *b, int pad, int n_sm, int nkv,
			      int max_splits, int *n_splits, int *split_len);

#endif
