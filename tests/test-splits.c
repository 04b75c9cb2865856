/*
 * test-splits.c: the decode attention's split-K plan (engine/splits.c) on
 * the H100's shape (132 multiprocessors) and Qwen2.5-7B's 4 KV heads:
 * the split arithmetic; the modelled launch time (one row; a second wave
 * of blocks); the choices by work for one row of 1k and of 10k keys, 16
 * even rows of 10k (4 splits, not the 5 that spill a second wave), 64
 * even rows of 2k (unsplit), 64 ragged rows of 512 to 8k keys (split, and
 * modelled faster than unsplit), a cap on the splits, padding rows that
 * count as real rows at position 0, and prompt rows left out.
 */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "engine/splits.h"
#include "tests/tap.h"

#define N_SM 132
#define NKV 4
#define SLOTS (ENG_DECODE_BLOCKS_PER_SM * N_SM / NKV)
#define MAX_ROWS 96

static struct eng_seq_input rows[MAX_ROWS];

/* n decode rows of lo to hi keys, spread evenly. */
static struct eng_batch decode_rows(int n, int lo, int hi)
{
	memset(rows, 0, sizeof(rows));
	for (int i = 0; i < n; i++) {
		rows[i].n_tokens = 1;
		rows[i].start_pos = (n > 1 ? lo + (hi - lo) * i / (n - 1) : hi) - 1;
	}
	return (struct eng_batch){ n, rows };
}

static void check_choice(const char *what, int n, int lo, int hi, int max_splits, int want_ns,
			 int want_len)
{
	struct eng_batch b = decode_rows(n, lo, hi);
	int ns = 0, len = 0;

	eng_decode_split_by_work(&b, 0, N_SM, NKV, max_splits, &ns, &len);
	tap_ok(ns == want_ns && len == want_len, "%s: %d splits of %d (want %d of %d)", what, ns,
	       len, want_ns, want_len);
}

int main(void)
{
	struct eng_batch b;
	int ns, len, ns2, len2;

	eng_split_keys(1000, 3, 64, &ns, &len);
	eng_split_keys(10, 5, 32, &ns2, &len2);
	tap_ok(ns == 3 && len == 384 && ns2 == 1 && len2 == 64,
	       "split keys: 1000 in about 3 -> 3 of 384; 10 in about 5 -> 1 of 64 (the least)");

	b = decode_rows(1, 8192, 8192);
	tap_ok(eng_decode_split_time(&b, 0, 8192, 1, SLOTS) == 8192 + ENG_DECODE_BLOCK_KEYS,
	       "one row of 8192 keys unsplit: its keys and one block's cost");
	b = decode_rows(16, 10240, 10240);
	tap_ok(eng_decode_split_time(&b, 0, 2048, 5, SLOTS) ==
		       2 * (2048 + ENG_DECODE_BLOCK_KEYS) &&
	       eng_decode_split_time(&b, 0, 2560, 4, SLOTS) == 2560 + ENG_DECODE_BLOCK_KEYS,
	       "16 rows of 10k: 5 splits (80 blocks a head for 66 slots) take two waves, 4 one");

	check_choice("one row of 1k", 1, 1024, 1024, 0, 16, 64);
	check_choice("one row of 10k", 1, 10240, 10240, 0, 54, 192);
	check_choice("16 rows of 10k", 16, 10240, 10240, 0, 4, 2560);
	check_choice("64 rows of 2k", 64, 2048, 2048, 0, 1, 2048);
	check_choice("64 rows of 512 to 8k", 64, 512, 8192, 0, 3, 2752);
	check_choice("64 rows of 512 to 8k, at most 2 splits", 64, 512, 8192, 2, 2, 4096);

	b = decode_rows(64, 512, 8192);
	eng_decode_split_by_work(&b, 0, N_SM, NKV, 0, &ns, &len);
	tap_ok(eng_decode_split_time(&b, 0, len, ns, SLOTS) * 10 <
		       eng_decode_split_time(&b, 0, 8192, 1, SLOTS) * 8,
	       "64 ragged rows: the split chosen is modelled over 20%% faster than none");

	/* a graph's padding row counts as a real row at position 0 */
	b = decode_rows(13, 30, 90);
	eng_decode_split_by_work(&b, 3, N_SM, NKV, 0, &ns, &len);
	rows[13].n_tokens = 1;
	rows[13].start_pos = 0;
	b.n_seqs = 14;
	eng_decode_split_by_work(&b, 2, N_SM, NKV, 0, &ns2, &len2);
	tap_ok(ns == ns2 && len == len2, "13 rows padded by 3 == 14 rows padded by 2 (%d of %d)",
	       ns, len);

	/* prompt rows (more than one token) are not decode rows */
	b = decode_rows(16, 10240, 10240);
	rows[16].n_tokens = 500;
	rows[16].start_pos = 30000;
	b.n_seqs = 17;
	eng_decode_split_by_work(&b, 0, N_SM, NKV, 0, &ns, &len);
	tap_ok(ns == 4 && len == 2560, "a prompt chunk beside 16 rows of 10k changes nothing");
	return tap_done();
}
