/*
 * splits.c: the decode attention's split-K plan (splits.h).
 *
 * By work, every decode row's keys are cut at one split length: short
 * rows take one block, long ones several.  Counting blocks against the
 * GPU's slots cannot choose the length: it misses both a second wave of
 * blocks against fewer, longer ones (16 rows of 10k keys: 320 blocks in
 * 5 splits, 256 in 4, for 264 slots on the H100) and a ragged batch's
 * long rows against the rest (64 rows of 512 to 8k keys fit 256 blocks
 * unsplit, and the 8k rows then take 16 times the others' time).  So the
 * launch's time is modelled, the GPU's block scheduler as a list
 * scheduler: blocks in grid order onto the least loaded slot.  On the
 * H100 this took 64 ragged rows through graphs from 13.87 ms (the block
 * count's choice: one split) to 12.84 ms a step, uniform ones unchanged.
 */
#include <config.h>

#include "engine/splits.h"

/* The most block slots of one KV head the model keeps. */
#define SLOTS_MAX 512

void eng_split_keys(int max_ctx, int want, int align, int *n_splits, int *split_len)
{
	int len = (max_ctx + want - 1) / want;

	len = (len + align - 1) / align * align;
	len = len < 64 ? 64 : len;
	*split_len = len;
	*n_splits = (max_ctx + len - 1) / len;
}

/* The least loaded of the n slots of min-heap h takes cost more; returns
 * its new load. */
static int64_t slot_add(int64_t *h, int n, int64_t cost)
{
	int64_t v = h[0] + cost;
	int i = 0, c;

	while ((c = 2 * i + 1) < n) {
		if (c + 1 < n && h[c + 1] < h[c])
			c++;
		if (h[c] >= v)
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = v;
	return v;
}

/* The KV heads' blocks interleave alike, so one head's blocks on its
 * share of the slots stand for the launch. */
int64_t eng_decode_split_time(const struct eng_batch *b, int pad, int len, int ns, int slots)
{
	int64_t h[SLOTS_MAX] = { 0 }, end = 0, v;

	slots = slots < 1 ? 1 : slots > SLOTS_MAX ? SLOTS_MAX : slots;
	for (int z = 0; z < ns; z++) {
		for (int s = 0; s < b->n_seqs; s++) {
			int k = b->seqs[s].start_pos + 1 - z * len;

			if (b->seqs[s].n_tokens != 1 || k <= 0)
				continue;
			v = slot_add(h, slots, (z < ns - 1 && k > len ? len : k) + ENG_DECODE_BLOCK_KEYS);
			end = v > end ? v : end;
		}
		for (int r = 0; z == 0 && r < pad; r++) {
			v = slot_add(h, slots, 1 + ENG_DECODE_BLOCK_KEYS);
			end = v > end ? v : end;
		}
	}
	return end;
}

/* The candidates: 1 to 4 splits, and around the even share (max_ctx /
 * want keys a split = all keys * nkv / the slots). */
void eng_decode_split_by_work(const struct eng_batch *b, int pad, int n_sm, int nkv,
			      int max_splits, int *n_splits, int *split_len)
{
	int max_ctx = 1, slots = ENG_DECODE_BLOCKS_PER_SM * n_sm / nkv, last = 0;
	int64_t keys = pad, blocks = (int64_t)ENG_DECODE_BLOCKS_PER_SM * n_sm, best = -1;

	for (int s = 0; s < b->n_seqs; s++)
		if (b->seqs[s].n_tokens == 1) {
			int ctx = b->seqs[s].start_pos + 1;

			max_ctx = ctx > max_ctx ? ctx : max_ctx;
			keys += ctx;
		}
	int64_t per = (keys * nkv + blocks - 1) / blocks;
	int even = (int)((max_ctx + per - 1) / per);
	int cand[] = { 1, 2, 3, 4, even - 1, even, even + 1, even * 3 / 2, 2 * even };

	eng_split_keys(max_ctx, 1, 64, n_splits, split_len);
	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
		int ns, len;
		int64_t t;

		if (cand[i] < 1)
			continue;
		eng_split_keys(max_ctx, cand[i], 64, &ns, &len);
		if (len == last || (max_splits && ns > max_splits))
			continue;
		last = len;
		t = eng_decode_split_time(b, pad, len, ns, slots);
		if (best < 0 || t < best || (t == best && ns < *n_splits)) {
			best = t;
			*n_splits = ns;
			*split_len = len;
		}
	}
}
