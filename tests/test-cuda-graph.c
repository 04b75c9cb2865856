/*
 * test-cuda-graph.c: decode steps replayed from CUDA graphs against the
 * same steps run op by op, on two CUDA states built from the same model
 * (one with graphs, one with disable_cuda_graph).
 *
 * Checked, on a Qwen2 shape with 7 query heads per KV head and head_dim
 * 128 (the tensor-core decode kernel), on the tiny preset and on
 * qwen3-tiny (q/k norms in the captured RoPE kernel): batches of
 * 1, 3, 8, 13 and 24 sequences (3 and 13 padded to the buckets 4 and 16)
 * prefilled with prompts of different lengths, then 40 greedy decode
 * steps over 5-token pages, so that contexts cross pages and the 16-page
 * block-table class of the graphs (a recapture); logits of every step
 * ||graph - plain|| / ||plain|| <= 1e-2 (the paths differ in rounding:
 * the GEMMs of a padded batch sum in other orders, and so do the decode
 * splits, their length counting the padding rows); the device's greedy token is the argmax of the
 * logits returned with it, and equals the op-by-op token except at near
 * ties (the two plain logits within 5e-2 of the logits' rms, at most 2% of
 * the tokens); contexts outgrowing a graph's block table get a second
 * graph next to the first; padding rows change nothing (a batch of 3 padded to 4, of
 * 13 padded to 16, gives bitwise the logits of the same rows next to a
 * real 4th or 14th sequence); graphs really captured; prefills between
 * decode phases growing the buffers (the graphs are dropped and captured
 * again).  Through the backend
 * vtable: eng_backend_forward_next gives tokens only where asked (-1
 * elsewhere), equal to the argmax of the logits.  Prints "1..0 # SKIP no
 * CUDA device" without a GPU.
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/cuda_backend.h"
#include "engine/model.h"
#include "tools/modelgen/model_writer.h"
#include "engine/sampler.h"
#include "kernels/kn.h"
#include "tests/tap.h"
#include "tests/test-cuda.h"
#include "tests/test-model-helper.h"

#define MAX_SEQS 24
#define PER_SEQ 40     /* pages per sequence: 200 positions */
#define STEPS 40
#define PAGE 5
#define TOL 1e-2

static char scratch[] = "/tmp/test-cuda-graph-XXXXXX";

struct pair {
	const char *name;
	const struct eng_model_config *c;
	void *g, *p;           /* graphs on, graphs off */
	int32_t tables[MAX_SEQS * PER_SEQ];
};

static double rms(const float *a, size_t n)
{
	double s = 0;

	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * a[i];
	return sqrt(s / (n ? n : 1));
}

static int fwd(void *st, struct eng_seq_input *q, int n, int32_t *next)
{
	struct eng_batch b = { n, q };
	struct eng_error err;

	if (eng_cuda_forward(st, &b, next, &err) == 0)
		return 1;
	tap_diag("forward: %s", err.msg);
	return 0;
}

static struct eng_seq_input seq_in(struct pair *P, int s, const int32_t *tok, int n, int start,
				   float *logits)
{
	struct eng_seq_input q;

	memset(&q, 0, sizeof(q));
	q.tokens = tok;
	q.n_tokens = n;
	q.start_pos = start;
	q.block_table = P->tables + s * PER_SEQ;
	q.n_blocks = PER_SEQ;
	q.logits = logits;
	return q;
}

/* One more step of the n sequences (padded to a bucket that holds n + 1)
 * alone, then next to a real sequence n at position 0: the same logits,
 * bit for bit. */
static void check_padding(struct pair *P, int n, int32_t *cur, const int *len, float *a,
			  float *b)
{
	size_t V = P->c->vocab;
	struct eng_seq_input q[MAX_SEQS + 1];
	int32_t next[MAX_SEQS + 1], one = 1;
	int ok;

	for (int s = 0; s < n; s++)
		q[s] = seq_in(P, s, &cur[s], 1, len[s] + STEPS, a + s * V);
	ok = fwd(P->g, q, n, next);
	for (int s = 0; s < n; s++)
		q[s].logits = b + s * V;
	q[n] = seq_in(P, n, &one, 1, 0, b + n * V);
	ok = ok && fwd(P->g, q, n + 1, next);
	tap_ok(ok && !memcmp(a, b, n * V * 4),
	       "%s: %d sequences padded to their bucket == the same next to a real one, bitwise",
	       P->name, n);
}

/* n sequences: prompts of 9 + 13 s % 71 tokens on both states, then STEPS
 * decode steps fed the plain path's tokens. */
static void check_batch(struct pair *P, int n, uint64_t *rng)
{
	size_t V = P->c->vocab;
	float *lg = malloc((n + 1) * V * 4), *lp = malloc((n + 1) * V * 4);
	int32_t tok[MAX_SEQS][128], cur[MAX_SEQS], ng[MAX_SEQS], np[MAX_SEQS];
	int len[MAX_SEQS], ok = 1, same = 1, flips = 0;
	struct eng_seq_input qg[MAX_SEQS], qp[MAX_SEQS];
	double worst = 0;

	for (int s = 0; s < n; s++) {
		len[s] = 9 + (13 * s + 7 * n) % 71;
		for (int i = 0; i < len[s]; i++) {
			*rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
			tok[s][i] = (int32_t)((*rng >> 33) % (uint64_t)P->c->vocab);
		}
		qg[s] = seq_in(P, s, tok[s], len[s], 0, NULL);
	}
	ok = fwd(P->g, qg, n, ng) && fwd(P->p, qg, n, np);
	for (int s = 0; s < n; s++)
		cur[s] = np[s];
	for (int step = 0; ok && step < STEPS; step++) {
		for (int s = 0; s < n; s++) {
			qg[s] = seq_in(P, s, &cur[s], 1, len[s] + step, lg + s * V);
			qp[s] = seq_in(P, s, &cur[s], 1, len[s] + step, lp + s * V);
		}
		ok = fwd(P->g, qg, n, ng) && fwd(P->p, qp, n, np);
		for (int s = 0; ok && s < n; s++) {
			double e = test_rel_err(lg + s * V, lp + s * V, V);

			worst = e > worst ? e : worst;
			same &= ng[s] == eng_argmax(lg + s * V, (int)V);
			if (ng[s] != np[s]) {
				const float *l = lp + s * V;
				double gap = fabs((double)l[np[s]] - l[ng[s]]) / rms(l, V);

				tap_diag("%s batch %d step %d seq %d: graph %d plain %d, plain logits "
					 "%.3g rms apart", P->name, n, step, s, ng[s], np[s], gap);
				flips++;
				same &= gap <= 5e-2;
			}
			cur[s] = np[s];
		}
	}
	tap_ok(ok && worst <= TOL && same && flips * 50 <= n * STEPS,
	       "%s: batch of %d (contexts %d..%d, pages of %d), %d decode steps: graph vs plain "
	       "logits %.2e, tokens the same but %d near ties; %d graphs held", P->name, n, len[0],
	       len[n - 1] + STEPS, PAGE, STEPS, worst, flips, eng_cuda_graph_count(P->g));
	if (n == 3)   /* contexts 30..96: the 16-page class (80 positions), then the 32 */
		tap_ok(ok && eng_cuda_graph_count(P->g) == 2,
		       "%s: contexts past the block table of a graph: a second graph captured (%d)",
		       P->name, eng_cuda_graph_count(P->g));
	if (ok && (n == 3 || n == 13))
		check_padding(P, n, cur, len, lg, lp);
	free(lg);
	free(lp);
}

/* The vtable's forward_next: tokens where wanted, -1 elsewhere. */
static void check_vtable(struct pair *P, struct eng_model *m)
{
	struct eng_backend_params bp = eng_backend_default_params();
	struct eng_backend *be;
	struct eng_error err;
	size_t V = P->c->vocab;
	float *lg = malloc(3 * V * 4);
	int32_t tok[3] = { 1, 2, 3 }, next[3];
	uint8_t want[3] = { 1, 0, 1 };
	struct eng_seq_input q[3];
	struct eng_batch b = { 3, q };
	int ok;

	bp.page_size = PAGE;
	bp.n_pages = MAX_SEQS * PER_SEQ;
	if (eng_backend_create(&eng_backend_cuda_ops, m, &bp, &be, &err)) {
		tap_ok(0, "%s: cuda backend: %s", P->name, err.msg);
		free(lg);
		return;
	}
	for (int s = 0; s < 3; s++)
		q[s] = seq_in(P, s, &tok[s], 1, 0, NULL);
	q[0].logits = lg;                 /* greedy and logits */
	q[1].logits = lg + V;             /* logits only */
	ok = eng_backend_forward_next(be, &b, want, next, &err) == 0;
	for (int s = 0; s < 3; s++)
		q[s] = seq_in(P, s, &tok[s], 1, 1, s < 2 ? lg + s * V : NULL);
	ok = ok && eng_backend_forward_next(be, &b, want, next, &err) == 0;
	if (!ok)
		tap_diag("forward_next: %s", err.msg);
	tap_ok(ok && next[0] == eng_argmax(lg, (int)V) && next[1] == -1 && next[2] >= 0 &&
	       next[2] < (int)V, "%s: eng_backend_forward_next: tokens only where wanted (%d %d %d)",
	       P->name, next[0], next[1], next[2]);
	eng_backend_free(be);
	free(lg);
}

static void check_model(const char *name, const struct mw_params *mp)
{
	char dir[4096];
	struct eng_model *m;
	struct eng_error err;
	struct eng_backend_params p = eng_backend_default_params();
	struct pair P;
	uint64_t rng = 99;
	int sizes[] = { 1, 3, 8, 13, 24 };

	memset(&P, 0, sizeof(P));
	P.name = name;
	static int n_models;

	snprintf(dir, sizeof(dir), "%s/m%d", scratch, n_models++);
	if (mw_write(mp, dir, NULL, &err) || eng_model_load(dir, &m, &err)) {
		tap_ok(0, "%s: model written and loaded: %s", name, err.msg);
		return;
	}
	P.c = eng_model_config(m);
	p.page_size = PAGE;
	p.n_pages = MAX_SEQS * PER_SEQ;
	for (int i = 0; i < MAX_SEQS * PER_SEQ; i++)   /* interleaved: no two runs adjacent */
		P.tables[i] = (i % PER_SEQ) * MAX_SEQS + i / PER_SEQ;
	if (eng_cuda_create(P.c, eng_model_weights(m), 0, &p, &P.g, &err)) {
		tap_ok(0, "%s: create: %s", name, err.msg);
		eng_model_free(m);
		return;
	}
	p.disable_cuda_graph = 1;
	if (eng_cuda_create(P.c, eng_model_weights(m), 0, &p, &P.p, &err)) {
		tap_ok(0, "%s: create: %s", name, err.msg);
		eng_cuda_destroy(P.g);
		eng_model_free(m);
		return;
	}
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		check_batch(&P, sizes[k], &rng);
	tap_ok(eng_cuda_graph_count(P.g) > 0 && eng_cuda_graph_count(P.p) == 0,
	       "%s: graphs captured with graphs on (%d), none with disable_cuda_graph", name,
	       eng_cuda_graph_count(P.g));
	check_vtable(&P, m);
	eng_cuda_destroy(P.g);
	eng_cuda_destroy(P.p);
	eng_model_free(m);
}

int main(void)
{
	struct mw_params p;
	int n = 0;

	if (kn_device_count(&n) || n == 0)
		return tap_skip_all("no CUDA device");
	if (!mkdtemp(scratch))
		return tap_skip_all("cannot make a scratch directory");
	tm_mw_mid(&p, 0);
	p.seed = 5;
	check_model("mid (qwen2, 7 heads per kv head, head_dim 128)", &p);
	p = mw_default_params();   /* the tiny preset */
	p.seed = 3;
	check_model("tiny", &p);
	mw_preset("qwen3-tiny", &p);
	check_model("qwen3-tiny", &p);
	tap_remove_dir(scratch);
	return tap_done();
}
