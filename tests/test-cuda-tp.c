/*
 * test-cuda-tp.c: tensor parallelism of the CUDA backend on one GPU.
 *
 * NCCL refuses two ranks on one device, so the ranks here share GPU 0
 * (tp_devices 0,0[,0,0]): the all-reduce is then the sum kernel, and
 * everything else (sharded weights, per-rank KV heads, the vocab-parallel
 * LM head and its combine on the host) is what runs on several GPUs.
 *
 * Checked, on models written by the model writer (a Qwen2 shape with
 * q/k/v biases and an odd vocab, so that the vocab slices are uneven;
 * a tied-embedding Llama shape in f16 with o_proj bias; a Qwen3 shape
 * with q/k norms, whole on every rank, head_dim 64 != hidden / heads and
 * q/k/v/o biases):
 *   - tp 2 (and 4) against tp 1: last-token logits of a mixed batch
 *     (prompts of 100, 5 and 1 tokens) and of greedy decode steps,
 *     ||tp - tp1|| / ||tp1|| <= 1e-2 (bf16), the same greedy tokens;
 *   - the greedy tokens combined from the ranks' parts are the argmax of
 *     the logits gathered from the ranks' slices;
 *   - score-mode log-probs against tp 1 (relative error <= 1e-2);
 *   - chunked prefill == one shot at tp 2;
 *   - random (dummy) weights: tp 2 gives tp 1's logits (the ranks hold
 *     slices of the same random model);
 *   - the building blocks against host references: the shared-device
 *     all-reduce (exact), random slices == blocks of the full random
 *     tensor (exact), per-slice vocab parts (max, argmax, sum exp,
 *     target logit; the sum within 1e-4 relative);
 *   - refusals: a size that does not divide the heads, a rank on a GPU
 *     that is not there, the cpu backend with tp_size 2;
 *   - FP8 E4M3 KV pages with a different scale for every (layer, KV head)
 *     in the checkpoint: tp 2 and 4 against tp 1, each rank holding its
 *     heads' scales: logits within 6e-2 (the E4M3 rounding turns the ranks'
 *     fp32 differences into whole steps now and then: see
 *     test-cuda-forward), greedy tokens the same or near ties.
 * With two GPUs or more, also tp 2 on GPUs 0 and 1 through NCCL against
 * tp 1 (a diagnostic, not a failure, when NCCL cannot be loaded).
 * Prints "1..0 # SKIP no CUDA device" without a GPU.
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/comm.h"
#include "engine/cuda_backend.h"
#include "engine/model.h"
#include "tools/modelgen/model_writer.h"
#include "engine/sampler.h"
#include "kernels/kn.h"
#include "tests/tap.h"
#include "tests/test-cuda.h"
#include "tests/test-model-helper.h"

#define N_SEQS 3
#define STEPS 6
#define TOL 1e-2
#define TOL_FP8 6e-2
#define PAGES 384

static char scratch[] = "/tmp/test-cuda-tp-XXXXXX";
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static int n_devices;

/* ---------------------------------------------------------------- setup */

struct fixture {
	const char *name;
	struct eng_model *m;
	const struct eng_model_config *c;
	int32_t tables[N_SEQS][PAGES / N_SEQS];   /* disjoint block tables */
	int32_t tok[N_SEQS][128];
	int len[N_SEQS];
};

static struct eng_backend_params params_tp(int tp, const int *devs)
{
	struct eng_backend_params p = eng_backend_default_params();

	p.page_size = 16;
	p.n_pages = PAGES;
	p.tp_size = tp;
	for (int r = 0; r < tp; r++)
		p.tp_devices[r] = devs ? devs[r] : 0;
	return p;
}

static struct eng_backend *open_tp(const struct fixture *F, int tp, const int *devs,
				   struct eng_error *err)
{
	struct eng_backend_params p = params_tp(tp, devs);
	struct eng_backend *be = NULL;

	if (eng_backend_create(&eng_backend_cuda_ops, F->m, &p, &be, err))
		return NULL;
	return be;
}

static struct eng_seq_input seq(const struct fixture *F, int s, const int32_t *tok, int n,
				int start, float *logits)
{
	struct eng_seq_input q = { tok, n, start, F->tables[s], PAGES / N_SEQS, logits, NULL,
				   NULL };
	return q;
}

static int run(struct eng_backend *be, struct eng_seq_input *q, int n, int32_t *next)
{
	struct eng_batch b = { n, q };
	struct eng_error err;
	uint8_t want[N_SEQS] = { 1, 1, 1 };
	int rc = next ? eng_backend_forward_next(be, &b, want, next, &err)
		      : eng_backend_forward(be, &b, &err);

	if (rc)
		tap_diag("forward: %s", err.msg);
	return rc == 0;
}

/* ---------------------------------------------------------------- vs tp 1 */

/* Prompts, then greedy decode steps (tp 1's tokens fed to both). */
static void test_mixed(const struct fixture *F, struct eng_backend *one, struct eng_backend *tp,
		       const char *what)
{
	size_t V = F->c->vocab;
	float *l1 = malloc(N_SEQS * V * 4), *lt = malloc(N_SEQS * V * 4);
	struct eng_seq_input q1[N_SEQS], qt[N_SEQS];
	int32_t cur[N_SEQS], n1[N_SEQS], nt[N_SEQS];
	int pos[N_SEQS], ok = 1, same = 1, combined = 1;
	double worst = 0;

	for (int step = 0; ok && step <= STEPS; step++) {
		for (int s = 0; s < N_SEQS; s++) {
			q1[s] = step ? seq(F, s, &cur[s], 1, pos[s], l1 + s * V)
				     : seq(F, s, F->tok[s], F->len[s], 0, l1 + s * V);
			qt[s] = q1[s];
			qt[s].logits = lt + s * V;
		}
		ok = run(one, q1, N_SEQS, n1) && run(tp, qt, N_SEQS, nt);
		for (int s = 0; ok && s < N_SEQS; s++) {
			double e = test_rel_err(lt + s * V, l1 + s * V, V);

			worst = e > worst ? e : worst;
			if (nt[s] != n1[s])
				tap_diag("%s %s step %d seq %d: token %d, tp 1 %d", F->name, what, step,
					 s, nt[s], n1[s]);
			same &= nt[s] == n1[s];
			combined &= nt[s] == eng_argmax(lt + s * V, (int)V);
			cur[s] = n1[s];
			pos[s] = step == 0 ? F->len[s] : pos[s] + 1;
		}
	}
	tap_ok(ok && worst <= TOL, "%s: %s: %d prompts + %d decode steps: logits vs tp 1 %.2e",
	       F->name, what, N_SEQS, STEPS, worst);
	tap_ok(ok && same, "%s: %s: the greedy tokens of tp 1", F->name, what);
	tap_ok(ok && combined, "%s: %s: tokens combined from the ranks == argmax of the "
	       "gathered logits", F->name, what);
	free(l1);
	free(lt);
}

static void test_score(const struct fixture *F, struct eng_backend *one, struct eng_backend *tp,
		       const char *what)
{
	int n = F->len[0], ok;
	int32_t *tg = malloc(n * 4);
	float *l1 = malloc(n * 4), *lt = malloc(n * 4);
	struct eng_seq_input q1 = seq(F, 0, F->tok[0], n, 0, NULL), qt;

	for (int i = 0; i < n; i++)
		tg[i] = test_irand(&rng, F->c->vocab);
	q1.targets = tg;
	qt = q1;
	q1.logprobs = l1;
	qt.logprobs = lt;
	ok = run(one, &q1, 1, NULL) && run(tp, &qt, 1, NULL);
	tap_ok(ok && test_rel_err(lt, l1, n) <= TOL,
	       "%s: %s: score-mode log-probs of %d targets (all vocab slices) vs tp 1: %.2e",
	       F->name, what, n, ok ? test_rel_err(lt, l1, n) : 0.0);
	free(tg);
	free(l1);
	free(lt);
}

static void test_chunked(const struct fixture *F, struct eng_backend *tp, const char *what)
{
	size_t V = F->c->vocab;
	float *one = malloc(V * 4), *three = malloc(V * 4);
	const int32_t *t = F->tok[0];
	int n = F->len[0], a = n / 3, b = 2 * n / 3, ok;
	struct eng_seq_input q = seq(F, 0, t, n, 0, one);

	ok = run(tp, &q, 1, NULL);
	q = seq(F, 0, t, a, 0, NULL);
	ok = ok && run(tp, &q, 1, NULL);
	q = seq(F, 0, t + a, b - a, a, NULL);
	ok = ok && run(tp, &q, 1, NULL);
	q = seq(F, 0, t + b, n - b, b, three);
	ok = ok && run(tp, &q, 1, NULL);
	tap_ok(ok && test_rel_err(three, one, V) <= TOL &&
	       eng_argmax(three, (int)V) == eng_argmax(one, (int)V),
	       "%s: %s: chunked prefill (%d+%d+%d) == one shot: %.2e", F->name, what, a, b - a,
	       n - b, ok ? test_rel_err(three, one, V) : 0.0);
	free(one);
	free(three);
}

/* The same seed at tp 1 and tp 2 (ranks on GPU 0): the same model. */
static void test_dummy(const struct fixture *F)
{
	size_t V = F->c->vocab;
	float *l[2];
	int ok = 1, devs[2] = { 0, 0 };

	for (int k = 0; k < 2; k++) {
		struct eng_backend_params p = params_tp(k + 1, devs);
		struct eng_seq_input q = seq(F, 1, F->tok[0], F->len[0], 0, NULL);
		struct eng_batch b = { 1, &q };
		struct eng_error err;
		void *st = NULL;

		l[k] = malloc(V * 4);
		q.logits = l[k];
		if (eng_cuda_create(F->c, NULL, 7, &p, &st, &err) ||
		    eng_cuda_forward(st, &b, NULL, &err)) {
			tap_diag("dummy tp %d: %s", k + 1, err.msg);
			ok = 0;
		}
		eng_cuda_destroy(st);
	}
	tap_ok(ok && test_rel_err(l[1], l[0], V) <= TOL && eng_argmax(l[1], (int)V) ==
	       eng_argmax(l[0], (int)V), "%s: dummy weights, one seed: tp 2 logits == tp 1: %.2e",
	       F->name, ok ? test_rel_err(l[1], l[0], V) : 0.0);
	free(l[0]);
	free(l[1]);
}

/* tp = size on devs against tp 1. */
static void check_tp(const struct fixture *F, struct eng_backend *one, int size,
		     const int *devs, const char *what)
{
	struct eng_error err;
	struct eng_backend *tp = open_tp(F, size, devs, &err);

	if (!tp) {
		tap_ok(0, "%s: %s: backend created: %s", F->name, what, err.msg);
		return;
	}
	test_mixed(F, one, tp, what);
	test_score(F, one, tp, what);
	if (size == 2)
		test_chunked(F, tp, what);
	eng_backend_free(tp);
}

/* tp 2 on GPUs 0 and 1: NCCL. */
static void check_nccl(const struct fixture *F, struct eng_backend *one)
{
	int devs[2] = { 0, 1 };
	struct eng_error err;
	struct eng_backend *tp;

	if (n_devices < 2)
		return;
	if (!(tp = open_tp(F, 2, devs, &err))) {
		tap_diag("tp 2 over GPUs 0 and 1 not checked: %s", err.msg);
		return;
	}
	test_mixed(F, one, tp, "tp 2 on GPUs 0, 1 (nccl)");
	eng_backend_free(tp);
}

static void check_refusals(const struct fixture *F)
{
	struct eng_error err;
	int devs[2] = { 0, n_devices };
	struct eng_backend_params p = params_tp(2, NULL);
	struct eng_backend *be = NULL;

	be = open_tp(F, 3, NULL, &err);
	tap_ok(!be && err.code == ENG_E_INVALID && strstr(err.msg, "does not divide"),
	       "%s: tp 3 over %d heads refused: %s", F->name, F->c->n_heads, err.msg);
	eng_backend_free(be);
	be = open_tp(F, 2, devs, &err);
	tap_ok(!be && err.code == ENG_E_DEVICE, "%s: a rank on GPU %d (absent) refused: %s",
	       F->name, n_devices, err.msg);
	eng_backend_free(be);
	p.n_threads = 1;
	be = NULL;
	tap_ok(eng_backend_create(&eng_backend_cpu_ops, F->m, &p, &be, &err) == ENG_E_INVALID &&
	       !be, "cpu backend refuses tp_size 2: %s", err.msg);
	eng_backend_free(be);
}

/* ---------------------------------------------------------------- models */

/* The model of mp, written to a fresh directory, or (written == a
 * directory) the one already there. */
static int open_fixture(struct fixture *F, const char *name, const struct mw_params *mp,
			const char *written)
{
	char dir[4096];
	struct eng_error err;
	int32_t pages[PAGES];

	memset(F, 0, sizeof(*F));
	F->name = name;
	snprintf(dir, sizeof(dir), "%s", written ? written : "");
	if (!written)
		snprintf(dir, sizeof(dir), "%s/m%d", scratch, test_irand(&rng, 1 << 30));
	if ((!written && mw_write(mp, dir, NULL, &err)) || eng_model_load(dir, &F->m, &err)) {
		tap_ok(0, "%s: model written and loaded: %s", name, err.msg);
		return -1;
	}
	F->c = eng_model_config(F->m);
	for (int i = 0; i < PAGES; i++)
		pages[i] = i;
	for (int i = PAGES - 1; i > 0; i--) {
		int j = test_irand(&rng, i + 1), t = pages[i];

		pages[i] = pages[j];
		pages[j] = t;
	}
	memcpy(F->tables, pages, sizeof(F->tables));
	F->len[0] = 100;
	F->len[1] = 5;
	F->len[2] = 1;
	for (int s = 0; s < N_SEQS; s++)
		for (int i = 0; i < F->len[s]; i++)
			F->tok[s][i] = test_irand(&rng, F->c->vocab);
	return 0;
}

static void check_model(const char *name, const struct mw_params *mp, int tp4)
{
	static const int devs[4] = { 0, 0, 0, 0 };
	struct fixture F;
	struct eng_backend *one;
	struct eng_error err;

	if (open_fixture(&F, name, mp, NULL)) {
		eng_model_free(F.m);
		return;
	}
	if (!(one = open_tp(&F, 1, NULL, &err))) {
		tap_ok(0, "%s: tp 1 backend created: %s", name, err.msg);
		eng_model_free(F.m);
		return;
	}
	check_tp(&F, one, 2, devs, "tp 2 on GPU 0");
	if (tp4)
		check_tp(&F, one, 4, devs, "tp 4 on GPU 0");
	check_nccl(&F, one);
	test_dummy(&F);
	check_refusals(&F);
	eng_backend_free(one);
	eng_model_free(F.m);
}

/* ---------------------------------------------------------------- fp8 */

/* tp ranks on GPU 0 with FP8 pages (and the model's scales). */
static struct eng_backend *open_tp_fp8(const struct fixture *F, int tp, struct eng_error *err)
{
	static const int devs[4] = { 0, 0, 0, 0 };
	struct eng_backend_params p = params_tp(tp, devs);
	struct eng_backend *be = NULL;

	p.kv_dtype = ENG_KV_DTYPE_FP8_E4M3;
	if (eng_backend_create(&eng_backend_cuda_ops, F->m, &p, &be, err))
		return NULL;
	return be;
}

/* Greedy tokens of tp and tp 1 (logits lt, l1) agree: the same, or tp 1's
 * logit of tp's token within 5 RMS differences of its best. */
static int near_same(const float *lt, const float *l1, int V)
{
	int a = eng_argmax(lt, V), b = eng_argmax(l1, V);
	double d2 = 0;

	for (int j = 0; a != b && j < V; j++)
		d2 += ((double)lt[j] - l1[j]) * ((double)lt[j] - l1[j]);
	return a == b || (double)l1[b] - l1[a] <= 5.0 * sqrt(d2 / V);
}

/* Prompts then decode steps on tp 1 and tp ranks with FP8 pages. */
static void test_fp8_tp(const struct fixture *F, struct eng_backend *one, int size)
{
	size_t V = F->c->vocab;
	float *l1 = malloc(N_SEQS * V * 4), *lt = malloc(N_SEQS * V * 4);
	struct eng_seq_input q1[N_SEQS], qt[N_SEQS];
	struct eng_error err;
	struct eng_backend *tp = open_tp_fp8(F, size, &err);
	int32_t cur[N_SEQS];
	int pos[N_SEQS], ok = tp != NULL, same = 1;
	double worst = 0;

	if (!tp)
		tap_diag("tp %d fp8 backend: %s", size, err.msg);
	for (int step = 0; ok && step <= STEPS; step++) {
		for (int s = 0; s < N_SEQS; s++) {
			q1[s] = step ? seq(F, s, &cur[s], 1, pos[s], l1 + s * V)
				     : seq(F, s, F->tok[s], F->len[s], 0, l1 + s * V);
			qt[s] = q1[s];
			qt[s].logits = lt + s * V;
		}
		ok = run(one, q1, N_SEQS, NULL) && run(tp, qt, N_SEQS, NULL);
		for (int s = 0; ok && s < N_SEQS; s++) {
			double e = test_rel_err(lt + s * V, l1 + s * V, V);

			worst = e > worst ? e : worst;
			same &= near_same(lt + s * V, l1 + s * V, (int)V);
			cur[s] = eng_argmax(l1 + s * V, (int)V);
			pos[s] = step == 0 ? F->len[s] : pos[s] + 1;
		}
	}
	tap_ok(ok && worst <= TOL_FP8 && same,
	       "%s: tp %d on GPU 0, fp8_e4m3 kv with per-head scales: %d prompts + %d decode "
	       "steps: logits vs tp 1 %.2e (tolerance %.0e), greedy tokens the same or near ties",
	       F->name, size, N_SEQS, STEPS, worst, TOL_FP8);
	eng_backend_free(tp);
	free(l1);
	free(lt);
}

/* A model of mp whose every (layer, KV head) has its own k and v scales,
 * tp 2 and 4 against tp 1, all with FP8 pages. */
static void check_fp8(const char *name, struct mw_params mp)
{
	int L = mp.num_layers, n = mp.num_kv_heads;
	float *k = malloc((size_t)L * n * sizeof(float)), *v = malloc((size_t)L * n * sizeof(float));
	struct fixture F;
	struct eng_backend *one;
	struct eng_error err;
	char dir[4096];

	memset(&F, 0, sizeof(F));
	for (int i = 0; i < L * n; i++) {
		k[i] = 0.5f + 0.125f * (float)(i % 11);
		v[i] = 1.75f - 0.125f * (float)(i % 9);
	}
	mp.shard_size = 1 << 20;
	snprintf(dir, sizeof(dir), "%s/fp8-%d", scratch, test_irand(&rng, 1 << 30));
	if (mw_write(&mp, dir, NULL, &err) || tm_add_kv_scales(dir, L, n, k, v) ||
	    open_fixture(&F, name, &mp, dir)) {
		tap_ok(0, "%s: fp8 model with kv scales written and loaded", name);
	} else if (!(one = open_tp_fp8(&F, 1, &err))) {
		tap_ok(0, "%s: tp 1 fp8 backend created: %s", name, err.msg);
	} else {
		test_fp8_tp(&F, one, 2);
		test_fp8_tp(&F, one, 4);
		eng_backend_free(one);
	}
	eng_model_free(F.m);
	free(k);
	free(v);
}

/* ---------------------------------------------------------------- kernels */

/* Three ranks' buffers summed in place, against the host. */
static void test_allreduce(void)
{
	enum { N = 3, LEN = 1003 };
	float *h[N], *d[N], want[LEN], got[LEN];
	int devs[N] = { 0, 0, 0 }, ok = 1;
	kn_stream s[N] = { NULL, NULL, NULL };
	struct eng_comm *c = NULL;
	struct eng_error err;

	for (int r = 0; r < N; r++) {
		h[r] = malloc(LEN * 4);
		for (int i = 0; i < LEN; i++)
			h[r][i] = (float)(test_irand(&rng, 20001) - 10000) / 997.0f;
		ok &= kn_malloc((void **)&d[r], LEN * 4) == 0 &&
		      kn_memcpy_h2d(d[r], h[r], LEN * 4, NULL) == 0;
	}
	for (int i = 0; i < LEN; i++)
		want[i] = (h[0][i] + h[1][i]) + h[2][i];
	if (ok && (eng_comm_create(N, devs, s, &c, &err) ||
		   eng_comm_allreduce_f32(c, d, LEN, &err))) {
		tap_diag("comm: %s", err.msg);
		ok = 0;
	}
	for (int r = 0; ok && r < N; r++)
		ok &= kn_memcpy_d2h(got, d[r], LEN * 4, NULL) == 0 && kn_stream_sync(NULL) == 0 &&
		      memcmp(got, want, sizeof(got)) == 0;
	tap_ok(ok && c && !strcmp(eng_comm_kind(c), "local"),
	       "all-reduce of 3 ranks on one GPU (%d floats, odd length): every rank holds the "
	       "sum, exactly", LEN);
	eng_comm_free(c);
	for (int r = 0; r < N; r++) {
		kn_free(d[r]);
		free(h[r]);
	}
}

/* Blocks of a random tensor == the same block of the whole tensor. */
static void test_fill_slice(void)
{
	enum { R = 37, C = 50, R0 = 5, C0 = 7, NR = 11, NC = 23 };
	uint16_t *full_d, *blk_d, full[R * C], blk[NR * NC];
	float *f_full_d, *f_blk_d, f_full[C], f_blk[NC];
	int ok = kn_malloc((void **)&full_d, sizeof(full)) == 0 &&
		 kn_malloc((void **)&blk_d, sizeof(blk)) == 0 &&
		 kn_malloc((void **)&f_full_d, sizeof(f_full)) == 0 &&
		 kn_malloc((void **)&f_blk_d, sizeof(f_blk)) == 0 &&
		 kn_fill_random_bf16(full_d, R * C, 99, 0.1f, 0.5f, NULL) == 0 &&
		 kn_fill_random_slice_bf16(blk_d, NR, NC, C, R0, C0, 99, 0.1f, 0.5f, NULL) == 0 &&
		 kn_fill_random_f32(f_full_d, C, 5, 1.0f, 0.05f, NULL) == 0 &&
		 kn_fill_random_slice_f32(f_blk_d, 1, NC, C, 0, C0, 5, 1.0f, 0.05f, NULL) == 0 &&
		 kn_memcpy_d2h(full, full_d, sizeof(full), NULL) == 0 &&
		 kn_memcpy_d2h(blk, blk_d, sizeof(blk), NULL) == 0 &&
		 kn_memcpy_d2h(f_full, f_full_d, sizeof(f_full), NULL) == 0 &&
		 kn_memcpy_d2h(f_blk, f_blk_d, sizeof(f_blk), NULL) == 0 &&
		 kn_stream_sync(NULL) == 0;

	for (int i = 0; ok && i < NR; i++)
		ok &= memcmp(blk + i * NC, full + (R0 + i) * C + C0, NC * 2) == 0;
	ok &= ok && memcmp(f_blk, f_full + C0, NC * 4) == 0;
	tap_ok(ok, "random slices (bf16 %dx%d at %d,%d; f32) == blocks of the full random tensor",
	       NR, NC, R0, C0);
	kn_free(full_d);
	kn_free(blk_d);
	kn_free(f_full_d);
	kn_free(f_blk_d);
}

/* Parts of logits rows against the host, with a tie and a NaN row. */
static void test_vocab_partial(void)
{
	enum { ROWS = 4, NV = 3001, V0 = 1000 };
	float *lg = malloc(ROWS * NV * 4), *lg_d;
	int32_t tg[ROWS] = { V0 + 17, V0 - 1, V0 + NV - 1, -1 }, *tg_d;
	struct kn_vocab_part got[ROWS], *out_d;
	int ok;

	for (int i = 0; i < ROWS * NV; i++)
		lg[i] = (float)(test_irand(&rng, 100001) - 50000) / 5000.0f;
	lg[1 * NV + 10] = lg[1 * NV + 2000] = 50.0f;   /* a tie: the first wins */
	lg[3 * NV + 5] = NAN;                          /* never chosen */
	ok = kn_malloc((void **)&lg_d, ROWS * NV * 4) == 0 &&
	     kn_malloc((void **)&tg_d, sizeof(tg)) == 0 &&
	     kn_malloc((void **)&out_d, sizeof(got)) == 0 &&
	     kn_memcpy_h2d(lg_d, lg, ROWS * NV * 4, NULL) == 0 &&
	     kn_memcpy_h2d(tg_d, tg, sizeof(tg), NULL) == 0 &&
	     kn_vocab_partial(out_d, lg_d, tg_d, ROWS, NV, V0, NULL) == 0 &&
	     kn_memcpy_d2h(got, out_d, sizeof(got), NULL) == 0 && kn_stream_sync(NULL) == 0;
	for (int r = 0; ok && r < ROWS; r++) {
		const float *x = lg + r * NV;
		int best = -1;
		double sum = 0;

		for (int i = 0; i < NV; i++)
			if (x[i] == x[i] && (best < 0 || x[i] > x[best]))
				best = i;
		for (int i = 0; i < NV; i++)
			sum += x[i] == x[i] ? exp((double)x[i] - x[best]) : 0;
		ok &= got[r].argmax == V0 + best && got[r].max == x[best];
		ok &= r == 3 || fabs(got[r].sum_exp - sum) <= 1e-4 * sum;
		ok &= got[r].target == (tg[r] >= V0 && tg[r] < V0 + NV ? x[tg[r] - V0] : 0.0f);
		if (!ok)
			tap_diag("row %d: max %g argmax %d sum %g target %g", r, got[r].max,
				 got[r].argmax, got[r].sum_exp, got[r].target);
	}
	tap_ok(ok, "vocab parts of %d rows over slice [%d, %d): max, first argmax, sum exp, "
	       "target logit", ROWS, V0, V0 + NV);
	free(lg);
	kn_free(lg_d);
	kn_free(tg_d);
	kn_free(out_d);
}

int main(void)
{
	struct mw_params p;

	if (kn_device_count(&n_devices) || n_devices == 0)
		return tap_skip_all("no CUDA device");
	if (!mkdtemp(scratch))
		return tap_skip_all("cannot make a scratch directory");
	test_allreduce();
	test_fill_slice();
	test_vocab_partial();
	p = mw_default_params();
	p.hidden_size = 256;
	p.intermediate_size = 512;
	p.num_layers = 2;
	p.num_heads = 8;
	p.num_kv_heads = 4;
	p.head_dim = 64;
	p.vocab_size = 3001;
	p.seed = 21;
	check_model("qwen2 (8 heads, 4 kv heads, q/k/v bias, vocab 3001)", &p, 1);
	mw_preset("tiny-llama", &p);
	p.dtype = MW_DTYPE_F16;
	p.attention_bias = true;
	p.seed = 4;
	check_model("tiny-llama (tied embeddings, o bias, f16)", &p, 0);
	p = mw_default_params();
	mw_preset("qwen3-tiny", &p);
	p.hidden_size = 192;
	p.intermediate_size = 512;
	p.num_heads = 8;
	p.num_kv_heads = 4;
	p.head_dim = 64;
	p.vocab_size = 3001;
	p.attention_bias = true;
	p.seed = 23;
	check_model("qwen3 (q/k norms, 8 heads of 64 over hidden 192, biases, vocab 3001)", &p, 1);
	p.head_dim = 128;
	check_fp8("qwen3, head_dim 128, 4 kv heads, fp8 kv", p);
	tap_remove_dir(scratch);
	return tap_done();
}
