/*
 * test-forward.c: the CPU backend's batched, paged forward pass against a
 * naive dense reference written here, and against itself under chunking,
 * decoding, batching, page sizes, thread counts and score mode.
 *
 * The reference is deliberately plain: one sequence, double precision,
 * every K/V kept in a dense array, its own RoPE frequencies (llama3
 * scaling included) computed from the formula, Qwen3's per-head q/k
 * RMSNorm applied before RoPE.  Relative error is max |ours - ref| /
 * max |ref| over a logits vector.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/model.h"
#include "tests/tap.h"
#include "tests/test-model-helper.h"

/* ---------------------------------------------------------------- reference */

static void ref_matvec(double *out, const float *W, const float *b, const double *x,
		       int rows, int cols)
{
	int i, j;

	for (i = 0; i < rows; i++) {
		double s = b ? b[i] : 0;

		for (j = 0; j < cols; j++)
			s += (double)W[(size_t)i * cols + j] * x[j];
		out[i] = s;
	}
}

static void ref_rmsnorm(double *out, const double *x, const float *w, int n, double eps)
{
	double ss = 0;
	int i;

	for (i = 0; i < n; i++)
		ss += x[i] * x[i];
	ss = 1.0 / sqrt(ss / n + eps);
	for (i = 0; i < n; i++)
		out[i] = w[i] * x[i] * ss;
}

static double ref_inv_freq(const struct tm_spec *s, int i)
{
	double inv = pow(s->rope_theta, -2.0 * i / s->head_dim), wl, sm;

	if (!s->llama3_rope)
		return inv;
	/* factor 8, low 1, high 4, original 64, as tm_write_config writes */
	wl = 2 * M_PI / inv;
	if (wl < 64.0 / 4)
		return inv;
	if (wl > 64.0 / 1)
		return inv / 8;
	sm = (64.0 / wl - 1) / (4 - 1);
	return (1 - sm) * inv / 8 + sm * inv;
}

static void ref_rope(const struct tm_spec *s, double *v, int n_heads, int pos)
{
	int h, i, half = s->head_dim / 2;

	for (h = 0; h < n_heads; h++)
		for (i = 0; i < half; i++) {
			double *x = v + h * s->head_dim, a = x[i], b = x[i + half];
			double ang = pos * ref_inv_freq(s, i);

			x[i] = a * cos(ang) - b * sin(ang);
			x[i + half] = b * cos(ang) + a * sin(ang);
		}
}

/* Qwen3: each (head_dim) head of v normalized by the shared weight w. */
static void ref_norm_heads(const struct tm_spec *s, double *v, int n_heads, const float *w)
{
	int h;

	for (h = 0; h < n_heads; h++)
		ref_rmsnorm(v + h * s->head_dim, v + h * s->head_dim, w, s->head_dim, s->rms_eps);
}

/* Attention of position p over K, V (n, kv_dim) into out (q_dim). */
static void ref_attend(const struct tm_spec *s, const double *q, const double *K,
		       const double *V, int p, double *out)
{
	int hd = s->head_dim, kd = s->n_kv_heads * hd, h, t, d;
	double *sc = malloc((size_t)(p + 1) * sizeof(double));

	for (h = 0; h < s->n_heads; h++) {
		int kh = h / (s->n_heads / s->n_kv_heads);
		double mx = -INFINITY, sum = 0;

		for (t = 0; t <= p; t++) {
			double dot = 0;

			for (d = 0; d < hd; d++)
				dot += q[h * hd + d] * K[(size_t)t * kd + kh * hd + d];
			sc[t] = dot / sqrt((double)hd);
			mx = sc[t] > mx ? sc[t] : mx;
		}
		for (t = 0; t <= p; t++)
			sum += (sc[t] = exp(sc[t] - mx));
		for (d = 0; d < hd; d++) {
			double acc = 0;

			for (t = 0; t <= p; t++)
				acc += sc[t] / sum * V[(size_t)t * kd + kh * hd + d];
			out[h * hd + d] = acc;
		}
	}
	free(sc);
}

static void ref_mlp(const struct tm_spec *s, const struct tm_layer *L, double *x)
{
	int H = s->hidden, I = s->intermediate, i;
	double *xb = malloc(H * sizeof(double)), *g = malloc(I * sizeof(double));
	double *u = malloc(I * sizeof(double)), *o = malloc(H * sizeof(double));

	ref_rmsnorm(xb, x, L->mlp_norm, H, s->rms_eps);
	ref_matvec(g, L->wg, L->bg, xb, I, H);
	ref_matvec(u, L->wu, L->bu, xb, I, H);
	for (i = 0; i < I; i++)
		g[i] = g[i] / (1 + exp(-g[i])) * u[i];
	ref_matvec(o, L->wd, L->bd, g, H, I);
	for (i = 0; i < H; i++)
		x[i] += o[i];
	free(xb);
	free(g);
	free(u);
	free(o);
}

/* logits (n, vocab): the model's logits at every position of tok (n). */
static void ref_forward(const struct tm_spec *s, const struct tm_weights *w,
			const int *tok, int n, double *logits)
{
	int H = s->hidden, qd = s->n_heads * s->head_dim, kd = s->n_kv_heads * s->head_dim;
	double *x = calloc((size_t)n * H, sizeof(double)), *xb = malloc(H * sizeof(double));
	double *Q = malloc((size_t)n * qd * sizeof(double)), *att = malloc(qd * sizeof(double));
	double *K = malloc((size_t)n * kd * sizeof(double)), *o = malloc(H * sizeof(double));
	double *V = malloc((size_t)n * kd * sizeof(double));
	int p, l, i;

	for (p = 0; p < n; p++)
		for (i = 0; i < H; i++)
			x[(size_t)p * H + i] = w->embed[(size_t)tok[p] * H + i];
	for (l = 0; l < s->n_layers; l++) {
		const struct tm_layer *L = &w->layers[l];

		for (p = 0; p < n; p++) {
			ref_rmsnorm(xb, x + (size_t)p * H, L->attn_norm, H, s->rms_eps);
			ref_matvec(Q + (size_t)p * qd, L->wq, L->bq, xb, qd, H);
			ref_matvec(K + (size_t)p * kd, L->wk, L->bk, xb, kd, H);
			ref_matvec(V + (size_t)p * kd, L->wv, L->bv, xb, kd, H);
			if (s->arch == ENG_ARCH_QWEN3) {
				ref_norm_heads(s, Q + (size_t)p * qd, s->n_heads, L->q_norm);
				ref_norm_heads(s, K + (size_t)p * kd, s->n_kv_heads, L->k_norm);
			}
			ref_rope(s, Q + (size_t)p * qd, s->n_heads, p);
			ref_rope(s, K + (size_t)p * kd, s->n_kv_heads, p);
		}
		for (p = 0; p < n; p++) {
			ref_attend(s, Q + (size_t)p * qd, K, V, p, att);
			ref_matvec(o, L->wo, L->bo, att, H, qd);
			for (i = 0; i < H; i++)
				x[(size_t)p * H + i] += o[i];
			ref_mlp(s, L, x + (size_t)p * H);
		}
	}
	for (p = 0; p < n; p++) {
		ref_rmsnorm(xb, x + (size_t)p * H, w->final_norm, H, s->rms_eps);
		ref_matvec(logits + (size_t)p * s->vocab, w->lm_head, NULL, xb, s->vocab, H);
	}
	free(x);
	free(xb);
	free(Q);
	free(K);
	free(V);
	free(att);
	free(o);
}

/* ---------------------------------------------------------------- helpers */

static double rel_err(const float *a, const double *b, int n)
{
	double num = 0, den = 0;
	int i;

	for (i = 0; i < n; i++) {
		double d = fabs(a[i] - b[i]);

		num = d > num ? d : num;
		den = fabs(b[i]) > den ? fabs(b[i]) : den;
	}
	return den > 0 ? num / den : num;
}

static double rel_err_f(const float *a, const float *b, int n)
{
	double num = 0, den = 0;
	int i;

	for (i = 0; i < n; i++) {
		double d = fabs((double)a[i] - b[i]);

		num = d > num ? d : num;
		den = fabs(b[i]) > den ? fabs(b[i]) : den;
	}
	return den > 0 ? num / den : num;
}

struct fixture {
	struct tm_spec spec;
	char *dir;
	struct tm_weights w;
	struct eng_model *m;
	int V;
};

static int fx_open(struct fixture *fx, struct tm_spec spec, const char *tag)
{
	struct eng_error err;
	char buf[2048];

	memset(fx, 0, sizeof(*fx));
	fx->spec = spec;
	fx->V = spec.vocab;
	fx->dir = tm_mkdtemp(tag);
	if (!fx->dir || tm_write_model(fx->dir, &spec, &fx->w))
		return -1;
	if (eng_model_load(fx->dir, &fx->m, &err)) {
		tap_diag("%s", eng_error_format(&err, buf, sizeof(buf)));
		return -1;
	}
	return 0;
}

static void fx_close(struct fixture *fx)
{
	eng_model_free(fx->m);
	tm_weights_free(&fx->w);
	tm_rmtree(fx->dir);
	free(fx->dir);
}

static struct eng_backend *new_backend(struct fixture *fx, int page_size, int n_pages,
				       int n_threads)
{
	struct eng_backend_params p = eng_backend_default_params();
	struct eng_backend *be;
	struct eng_error err;
	char buf[2048];

	p.page_size = page_size;
	p.n_pages = n_pages;
	p.n_threads = n_threads;
	if (eng_backend_create(&eng_backend_cpu_ops, fx->m, &p, &be, &err)) {
		tap_diag("%s", eng_error_format(&err, buf, sizeof(buf)));
		return NULL;
	}
	return be;
}

/* Block table for sequence `seq`: pages scattered over the pool. */
static void make_bt(int32_t *bt, int n_blocks, int seq, int n_pages)
{
	int i;

	for (i = 0; i < n_blocks; i++)
		bt[i] = (int32_t)(((seq * n_blocks + i) * 7 + 3) % n_pages);
}

static int fwd1(struct eng_backend *be, const int32_t *tok, int n, int start,
		const int32_t *bt, int nb, float *logits)
{
	struct eng_seq_input q = { tok, n, start, bt, nb, logits, NULL, NULL };
	struct eng_batch b = { 1, &q };
	struct eng_error err;
	char buf[2048];
	int rc = eng_backend_forward(be, &b, &err);

	if (rc)
		tap_diag("%s", eng_error_format(&err, buf, sizeof(buf)));
	return rc;
}

#define N_TOK 29
#define N_PAGES 64

static void make_tokens(int32_t *tok, int n, int V, uint64_t seed)
{
	int i;

	for (i = 0; i < n; i++)
		tok[i] = (int32_t)((tm_uniform(&seed) + 1) * 0.5 * (V - 1));
}

/* ---------------------------------------------------------------- checks */

/* (1) one-shot prefill vs the reference; (3) prefill + decode vs reference. */
static void check_reference(struct fixture *fx, const char *name, const int32_t *tok,
			    const double *ref)
{
	struct eng_backend *be = new_backend(fx, 4, N_PAGES, 2);
	float *lg = malloc(fx->V * sizeof(float));
	int32_t bt[N_PAGES];
	double worst = 0;
	int p, prefill = 11;

	make_bt(bt, 8, 0, N_PAGES);
	worst = be && !fwd1(be, tok, N_TOK, 0, bt, 8, lg)
		? rel_err(lg, ref + (size_t)(N_TOK - 1) * fx->V, fx->V) : 1.0;
	tap_ok(worst <= 1e-5,
	       "%s: one-shot prefill of %d tokens matches the dense reference (rel err %.2g)",
	       name, N_TOK, worst);
	make_bt(bt, 8, 1, N_PAGES);
	worst = be && !fwd1(be, tok, prefill, 0, bt, 8, lg)
		? rel_err(lg, ref + (size_t)(prefill - 1) * fx->V, fx->V) : 1.0;
	for (p = prefill; be && p < N_TOK; p++) {
		double e;

		if (fwd1(be, tok + p, 1, p, bt, 8, lg)) {
			worst = 1;
			break;
		}
		e = rel_err(lg, ref + (size_t)p * fx->V, fx->V);
		worst = e > worst ? e : worst;
	}
	tap_ok(be && worst <= 1e-5,
	       "%s: prefill %d then decode to %d matches the reference at every position (worst %.2g)",
	       name, prefill, N_TOK, worst);
	eng_backend_free(be);
	free(lg);
}

/* (2) chunked prefill == one-shot; (5) page sizes; thread counts. */
static void check_chunks_pages(struct fixture *fx, const char *name, const int32_t *tok)
{
	static const int chunks[] = { 5, 1, 9, 14 };
	static const int page_sizes[] = { 1, 3, 16, 64 };
	float *one = malloc(fx->V * sizeof(float)), *lg = malloc(fx->V * sizeof(float));
	struct eng_backend *be = new_backend(fx, 4, N_PAGES, 2);
	int32_t bt[N_PAGES];
	double worst = 0, e;
	int i, at = 0, ok = be != NULL;

	make_bt(bt, 8, 2, N_PAGES);
	ok = ok && !fwd1(be, tok, N_TOK, 0, bt, 8, one);
	make_bt(bt, 8, 3, N_PAGES);
	for (i = 0; ok && i < 4; at += chunks[i++])
		ok = !fwd1(be, tok + at, chunks[i], at, bt, 8, lg);
	e = ok ? rel_err_f(lg, one, fx->V) : 1;
	tap_ok(ok && at == N_TOK && e <= 1e-6,
	       "%s: prefill in chunks 5+1+9+14 equals one-shot prefill (rel err %.2g)", name, e);
	eng_backend_free(be);
	for (i = 0; i < 4; i++) {
		int ps = page_sizes[i], nb = (N_TOK + ps - 1) / ps;
		int np = nb * 2 + 1 + (((nb * 2 + 1) % 7) == 0); /* make_bt needs 7 coprime */
		int32_t *pbt = malloc((size_t)nb * sizeof(int32_t));

		be = new_backend(fx, ps, np, 1 + i % 3);
		make_bt(pbt, nb, 1, np);
		e = be && !fwd1(be, tok, N_TOK, 0, pbt, nb, lg) ? rel_err_f(lg, one, fx->V) : 1;
		worst = e > worst ? e : worst;
		eng_backend_free(be);
		free(pbt);
	}
	tap_ok(worst <= 1e-6,
	       "%s: page sizes 1, 3, 16, 64 and 1-3 threads give the same logits (worst %.2g)",
	       name, worst);
	free(one);
	free(lg);
}

#define N_SEQ 4

/* (4) a batch of sequences of different lengths, in two steps, == alone. */
static void check_batch(struct fixture *fx, const char *name, const int32_t *tok)
{
	static const int len1[N_SEQ] = { 23, 7, 1, 15 }, len2[N_SEQ] = { 1, 6, 1, 3 };
	struct eng_backend *be = new_backend(fx, 4, N_PAGES, 3), *alone = new_backend(fx, 4, N_PAGES, 1);
	struct eng_seq_input q[N_SEQ];
	struct eng_batch b = { N_SEQ, q };
	float *lg = malloc((size_t)N_SEQ * fx->V * sizeof(float)), *one = malloc(fx->V * sizeof(float));
	int32_t bt[N_SEQ][8];
	struct eng_error err;
	double worst = 0, e;
	int s, step, ok = be && alone;

	for (s = 0; s < N_SEQ; s++)
		make_bt(bt[s], 8, s, N_PAGES);
	for (step = 0; ok && step < 2; step++) {
		for (s = 0; s < N_SEQ; s++) {
			int start = step ? len1[s] : 0;

			q[s] = (struct eng_seq_input){ tok + s + start, step ? len2[s] : len1[s],
						       start, bt[s], 8, lg + (size_t)s * fx->V,
						       NULL, NULL };
		}
		ok = !eng_backend_forward(be, &b, &err);
		for (s = 0; ok && s < N_SEQ; s++) {
			/* alone: the whole sequence so far, fresh pages */
			int32_t abt[8];

			make_bt(abt, 8, 5, N_PAGES);
			ok = !fwd1(alone, tok + s, q[s].start_pos + q[s].n_tokens, 0, abt, 8, one);
			e = rel_err_f(lg + (size_t)s * fx->V, one, fx->V);
			worst = e > worst ? e : worst;
		}
	}
	tap_ok(ok && worst <= 1e-6,
	       "%s: a batch of 4 sequences (prefill then mixed chunk/decode) equals each alone (worst %.2g)",
	       name, worst);
	eng_backend_free(be);
	eng_backend_free(alone);
	free(lg);
	free(one);
}

/* (6) score mode: log-probs == log_softmax of the reference logits. */
static void check_score(struct fixture *fx, const char *name, const int32_t *tok,
			const double *ref)
{
	struct eng_backend *be = new_backend(fx, 4, N_PAGES, 2);
	int32_t bt[8], tgt[N_TOK];
	float lp[N_TOK], *lg = malloc(fx->V * sizeof(float));
	struct eng_seq_input q[2];
	struct eng_batch b = { 2, q };
	struct eng_error err;
	double worst = 0;
	int i, j, split = 12, ok = be != NULL;

	for (i = 0; i < N_TOK; i++)
		tgt[i] = i + 1 < N_TOK ? tok[i + 1] : 0;
	make_bt(bt, 8, 0, N_PAGES);
	/* two chunks of the same sequence can not share a batch; score the
	 * first part, then the rest, together with an unrelated decode */
	q[0] = (struct eng_seq_input){ tok, split, 0, bt, 8, NULL, tgt, lp };
	ok = ok && !eng_backend_forward(be, &(struct eng_batch){ 1, q }, &err);
	q[0] = (struct eng_seq_input){ tok + split, N_TOK - split, split, bt, 8, lg, tgt + split,
				       lp + split };
	{
		int32_t bt2[8];

		make_bt(bt2, 8, 3, N_PAGES);
		q[1] = (struct eng_seq_input){ tok, 3, 0, bt2, 8, NULL, NULL, NULL };
		ok = ok && !eng_backend_forward(be, &b, &err);
	}
	for (i = 0; ok && i < N_TOK; i++) {
		const double *r = ref + (size_t)i * fx->V;
		double mx = -INFINITY, sum = 0, want;

		for (j = 0; j < fx->V; j++)
			mx = r[j] > mx ? r[j] : mx;
		for (j = 0; j < fx->V; j++)
			sum += exp(r[j] - mx);
		want = r[tgt[i]] - mx - log(sum);
		worst = fabs(lp[i] - want) > worst ? fabs(lp[i] - want) : worst;
	}
	tap_ok(ok && worst <= 1e-4,
	       "%s: score-mode log-probs equal log_softmax of the reference logits (max abs err %.2g)",
	       name, worst);
	tap_ok(ok && rel_err(lg, ref + (size_t)(N_TOK - 1) * fx->V, fx->V) <= 1e-5,
	       "%s: logits and log-probs can be asked for together", name);
	eng_backend_free(be);
	free(lg);
}

static void run_model(struct tm_spec spec, const char *name)
{
	struct fixture fx;
	int32_t tok[N_TOK + N_SEQ + 8];
	int ref_tok[N_TOK], i;
	double *ref;

	if (fx_open(&fx, spec, "fwd")) {
		tap_ok(0, "%s: write and load the model", name);
		fx_close(&fx);
		return;
	}
	make_tokens(tok, N_TOK + N_SEQ + 8, fx.V, spec.seed + 100);
	for (i = 0; i < N_TOK; i++)
		ref_tok[i] = tok[i];
	ref = malloc((size_t)N_TOK * fx.V * sizeof(double));
	ref_forward(&fx.spec, &fx.w, ref_tok, N_TOK, ref);
	check_reference(&fx, name, tok, ref);
	check_chunks_pages(&fx, name, tok);
	check_batch(&fx, name, tok);
	check_score(&fx, name, tok, ref);
	free(ref);
	fx_close(&fx);
}

/* Bad batches are refused before anything is computed. */
static void check_bad_batches(void)
{
	struct fixture fx;
	struct eng_backend *be;
	int32_t tok[4] = { 1, 2, 3, 4 }, bad_tok[2] = { 1, 97 }, bt[2] = { 0, 1 };
	int32_t bad_bt[2] = { 0, N_PAGES };
	float lg[97];
	struct eng_seq_input q = { tok, 4, 0, bt, 1, lg, NULL, NULL };
	struct eng_batch b = { 1, &q };
	struct eng_error err;

	if (fx_open(&fx, tm_spec_qwen2(), "bad") || !(be = new_backend(&fx, 4, N_PAGES, 1))) {
		tap_ok(0, "bad batches: model");
		fx_close(&fx);
		return;
	}
	tap_ok(eng_backend_forward(be, &b, &err) == 0, "a 4-token chunk fits one 4-token page");
	q.n_tokens = 5 - 1;
	q.start_pos = 1;
	tap_ok(eng_backend_forward(be, &b, &err) == ENG_E_RANGE,
	       "a block table too short for the positions is refused: %s", err.msg);
	q = (struct eng_seq_input){ bad_tok, 2, 0, bt, 1, lg, NULL, NULL };
	tap_ok(eng_backend_forward(be, &b, &err) == ENG_E_INVALID,
	       "a token outside the vocabulary is refused: %s", err.msg);
	q = (struct eng_seq_input){ tok, 4, 2, bad_bt, 2, lg, NULL, NULL };
	tap_ok(eng_backend_forward(be, &b, &err) == ENG_E_INVALID,
	       "a page id outside the pool is refused: %s", err.msg);
	q = (struct eng_seq_input){ tok, 4, 254, bt, 2, lg, NULL, NULL };
	tap_ok(eng_backend_forward(be, &b, &err) == ENG_E_RANGE,
	       "positions past max_position_embeddings are refused: %s", err.msg);
	q = (struct eng_seq_input){ tok, 4, 0, bt, 1, lg, tok, NULL };
	tap_ok(eng_backend_forward(be, &b, &err) == ENG_E_INVALID,
	       "targets without a log-prob buffer are refused");
	eng_backend_free(be);
	fx_close(&fx);
}

int main(void)
{
	struct tm_spec s;

	run_model(tm_spec_qwen2(), "qwen2 f32");
	s = tm_spec_llama();
	s.llama3_rope = true;
	s.attention_bias = true;
	s.mlp_bias = true;
	run_model(s, "llama f32 llama3-rope biases");
	s = tm_spec_llama();
	s.tie = true;
	s.dtype = ENG_DTYPE_BF16;
	s.head_dim = 8;
	s.head_dim_key = true;
	run_model(s, "llama bf16 tied head_dim=8");
	s = tm_spec_qwen2();
	s.tie = true;
	s.dtype = ENG_DTYPE_F16;
	s.n_shards = 3;
	run_model(s, "qwen2 f16 tied 3 shards");
	run_model(tm_spec_qwen3(), "qwen3 f32 head_dim 12 != hidden/heads");
	s = tm_spec_qwen3();
	s.dtype = ENG_DTYPE_BF16;
	s.tie = true;
	s.attention_bias = true;
	s.n_shards = 2;
	run_model(s, "qwen3 bf16 tied attention_bias 2 shards");
	check_bad_batches();
	return tap_done();
}
