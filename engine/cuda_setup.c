/*
 * cuda_setup.c: the CUDA backend's state: device buffers grown to the
 * largest batch seen (each growth drops the captured graphs, which hold
 * addresses), the ranks' devices, streams, weights and KV pools at
 * create, their release at destroy, and the per-op profile.  The forward
 * pass itself is in backend_cuda.c; cuda_int.h is what they share.
 */
#include <config.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda_int.h"

static const char *const prof_names[PROF_N] = {
	"embedding", "add + rmsnorm", "qkv gemm", "bias, q/k norm, rope, kv", "attention",
	"o gemm", "gate/up gemm", "silu * up", "down gemm", "all-reduce",
	"lm head, argmax, copies",
};

static void prof_free(struct prof *p);

/* ---------------------------------------------------------------- graphs */

void eng_cuda_graphs_drop(struct cuda_state *st)
{
	for (int i = 0; i < st->n_graphs; i++)
		kn_graph_destroy(st->graphs[i].g);
	st->n_graphs = 0;
}

/* ---------------------------------------------------------------- buffers */

static void free_rank_acts(struct rank *R)
{
	kn_free(R->x);
	kn_free(R->xb);
	kn_free(R->qkv);
	kn_free(R->q);
	kn_free(R->att);
	kn_free(R->proj);
	kn_free(R->gu);
	kn_free(R->act);
	kn_free(R->lp);
	kn_free(R->amax);
	kn_free(R->part);
	kn_free(R->xq);
	kn_free(R->xs);
	kn_free(R->qsync);
	R->xq = NULL;
	R->xs = NULL;
	R->qsync = NULL;
	R->x = R->proj = R->qkv = R->lp = NULL;
	R->xb = R->q = R->att = R->gu = R->act = NULL;
	R->amax = NULL;
	R->part = NULL;
}

static void free_acts(struct cuda_state *st)
{
	for (int r = 0; r < st->n_ranks; r++) {
		use_rank(st, r);
		free_rank_acts(&st->rk[r]);
	}
	free(st->sel_seq);
	free(st->sel_i);
	free(st->lp_h);
	free(st->amax_h);
	free(st->part_h);
	st->sel_seq = st->sel_i = NULL;
	st->lp_h = NULL;
	st->amax_h = NULL;
	st->part_h = NULL;
	st->cap_tokens = 0;
}

/* Rank R's activations for t rows. */
static int alloc_rank_acts(const struct cuda_state *st, struct rank *R, size_t t)
{
	size_t H = st->cfg.hidden, qd = (size_t)st->nh * st->cfg.head_dim;
	size_t kmax = H > qd ? H : qd;
	int rc;

	kmax = kmax > (size_t)st->inter ? kmax : (size_t)st->inter;
	if ((rc = kn_malloc((void **)&R->x, t * H * 4)) ||
	    (rc = kn_malloc((void **)&R->xb, t * H * 2)) ||
	    (rc = kn_malloc((void **)&R->qkv, t * qkv_dim(st) * 4)) ||
	    (rc = kn_malloc((void **)&R->q, t * qd * 2)) ||
	    (rc = kn_malloc((void **)&R->att, t * qd * 2)) ||
	    (rc = kn_malloc((void **)&R->proj, t * H * 4)) ||
	    (rc = kn_malloc((void **)&R->gu, t * 2 * st->inter * 2)) ||
	    (rc = kn_malloc((void **)&R->act, t * st->inter * 2)) ||
	    (rc = kn_malloc((void **)&R->lp, t * 4)) ||
	    (rc = kn_malloc((void **)&R->amax, t * 4)) ||
	    (st->n_ranks > 1 && (rc = kn_malloc((void **)&R->part, t * sizeof(*R->part)))) ||
	    (st->w_fp8 && ((rc = kn_malloc((void **)&R->xq, t * kmax)) ||
			   (rc = kn_malloc((void **)&R->xs, t * 4)) ||
			   (rc = kn_malloc((void **)&R->qsync, t * 8)) ||
			   (rc = kn_memset(R->qsync, 0, t * 8, R->stream)))))
		return rc;
	return 0;
}

int eng_cuda_ensure_tokens(struct cuda_state *st, int T, struct eng_error *err)
{
	size_t t = (size_t)T;
	int rc = 0;

	if (T <= st->cap_tokens)
		return 0;
	free_acts(st);
	st->buf_gen++;
	t = t < 64 ? 64 : t + t / 4;
	for (int r = 0; !rc && r < st->n_ranks; r++)
		if (!(rc = use_rank(st, r)))
			rc = alloc_rank_acts(st, &st->rk[r], t);
	if (rc) {
		eng_cuda_error(rc, err);
		free_acts(st);
		return ENG_E_DEVICE;
	}
	st->sel_seq = malloc(t * sizeof(int));
	st->sel_i = malloc(t * sizeof(int));
	st->lp_h = malloc(t * sizeof(float));
	st->amax_h = malloc(t * sizeof(int32_t));
	st->part_h = malloc((size_t)st->n_ranks * t * sizeof(*st->part_h));
	if (!st->sel_seq || !st->sel_i || !st->lp_h || !st->amax_h || !st->part_h) {
		free_acts(st);
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	}
	st->cap_tokens = (int)t;
	return 0;
}

static void free_meta(struct cuda_state *st)
{
	kn_host_free(st->meta_h);
	st->meta_h = NULL;
	for (int r = 0; r < st->n_ranks; r++) {
		use_rank(st, r);
		kn_free(st->rk[r].meta_d);
		st->rk[r].meta_d = NULL;
	}
	st->cap_meta = 0;
}

int eng_cuda_ensure_meta(struct cuda_state *st, size_t n, struct eng_error *err)
{
	int rc;

	if (n <= st->cap_meta)
		return 0;
	free_meta(st);
	st->buf_gen++;
	n += n / 4 + 1024;
	if ((rc = use_rank(st, 0)) || (rc = kn_host_alloc((void **)&st->meta_h, n * 4)))
		return eng_cuda_error(rc, err);
	for (int r = 0; r < st->n_ranks; r++)
		if ((rc = use_rank(st, r)) || (rc = kn_malloc((void **)&st->rk[r].meta_d, n * 4)))
			return eng_cuda_error(rc, err);
	st->cap_meta = n;
	return 0;
}

/* Every rank's attention partials hold n floats. */
int eng_cuda_ensure_partial(struct cuda_state *st, size_t n, struct eng_error *err)
{
	int rc;

	if (n <= st->cap_partial)
		return 0;
	st->buf_gen++;
	n += n / 4;
	for (int r = 0; r < st->n_ranks; r++) {
		struct rank *R = &st->rk[r];

		if ((rc = use_rank(st, r)))
			return eng_cuda_error(rc, err);
		kn_free(R->partial);
		R->partial = NULL;
		st->cap_partial = 0;
		if ((rc = kn_malloc((void **)&R->partial, n * 4)))
			return eng_cuda_error(rc, err);
	}
	st->cap_partial = n;
	return 0;
}

/* ---------------------------------------------------------------- create */

static void free_rank(struct cuda_state *st, int r)
{
	struct rank *R = &st->rk[r];

	if (use_rank(st, r))
		return;
	if (R->stream)
		kn_stream_sync(R->stream);
	kn_event_destroy(R->done);
	kn_free(R->partial);
	kn_free(R->logits);
	kn_free(R->inv_freq);
	kn_free(R->k_pool);
	kn_free(R->v_pool);
	kn_free(R->kv_scale);
	eng_cuda_weights_free(&R->w);
	kn_gemm_free(R->gemm);
	if (own_stream(st, r))
		kn_stream_destroy(R->stream);
	R->stream = NULL;
}

void eng_cuda_destroy(void *state)
{
	struct cuda_state *st = state;

	if (!st)
		return;
	kn_set_device(st->rk[0].dev);
	if (st->rk[0].stream)
		kn_stream_sync(st->rk[0].stream);
	eng_cuda_graphs_drop(st);
	free(st->graphs);
	kn_event_destroy(st->ev_t0);
	kn_event_destroy(st->ev_t1);
	free_acts(st);
	free_meta(st);
	use_rank(st, 0);
	prof_free(st->prof);
	eng_comm_free(st->comm);
	/* shared ranks use rank 0's stream: free it last */
	for (int r = st->n_ranks - 1; r >= 0; r--)
		free_rank(st, r);
	free(st);
}

static int check_shape(const struct eng_model_config *c, int tp, struct eng_error *err)
{
	if (c->head_dim % 8 || c->head_dim > 256 || c->head_dim < 8 ||
	    kn_attn_tile_rows(c->n_heads, c->n_kv_heads) < 1)
		return eng_error_set(err, ENG_E_INVALID, "cuda", 0,
				     "head_dim %d with %d heads over %d kv heads: the kernels need "
				     "head_dim a multiple of 8 up to 256 and at most 32 heads per kv head",
				     c->head_dim, c->n_heads, c->n_kv_heads);
	if (tp < 1 || tp > ENG_TP_MAX || tp > KN_TP_MAX)
		return eng_error_set(err, ENG_E_INVALID, "cuda", 0,
				     "tensor-parallel size %d: must be 1 to %d", tp, KN_TP_MAX);
	return eng_cuda_shard_check(c, tp, err);
}

/* Rank r's stream and GEMM handle on its device (the device checked). */
static int open_rank(struct cuda_state *st, int r, int n_dev, struct eng_error *err)
{
	struct rank *R = &st->rk[r];
	int rc;

	if (R->dev < 0 || R->dev >= n_dev)
		return eng_error_set(err, ENG_E_DEVICE, "cuda", 0,
				     "device %d requested%s, %d present", R->dev,
				     st->n_ranks > 1 ? " for a tensor-parallel rank" : "", n_dev);
	if ((rc = kn_set_device(R->dev)) ||
	    (r == 0 && (rc = kn_device_info(R->dev, st->device_name, sizeof(st->device_name),
					    &st->n_sm, NULL))) ||
	    (own_stream(st, r) ? (rc = kn_stream_create(&R->stream))
			       : (R->stream = st->rk[0].stream, 0)) ||
	    (rc = kn_gemm_create(&R->gemm, R->stream)) ||
	    (st->n_ranks > 1 && (rc = kn_event_create(&R->done))))
		return eng_cuda_error(rc, err);
	return 0;
}

/* The ranks' devices, streams and GEMM handles, and their all-reduce. */
static int open_devices(struct cuda_state *st, struct eng_error *err)
{
	int n = 0, rc, devs[ENG_TP_MAX];
	kn_stream streams[ENG_TP_MAX];

	if ((rc = kn_device_count(&n)) || n == 0)
		return eng_error_set(err, ENG_E_DEVICE, "cuda", 0, "no CUDA device%s%s",
				     rc ? ": " : "", rc ? kn_last_error() : "");
	st->shared = st->n_ranks > 1;
	for (int r = 0; r < st->n_ranks; r++) {
		int d = st->params.tp_devices[r];

		st->rk[r].dev = st->n_ranks == 1 ? st->params.device
			      : d >= 0 ? d : st->params.device + r;
		st->shared &= st->rk[r].dev == st->rk[0].dev;
	}
	for (int r = 0; r < st->n_ranks; r++) {
		if ((rc = open_rank(st, r, n, err)))
			return rc;
		devs[r] = st->rk[r].dev;
		streams[r] = st->rk[r].stream;
	}
	return eng_comm_create(st->n_ranks, devs, streams, &st->comm, err);
}

/* Rank R's KV pool (zeroed), RoPE table and LM-head logits tile. */
static int alloc_rank_fixed(struct cuda_state *st, struct rank *R, const float *freq,
			    size_t per)
{
	const struct eng_model_config *c = &st->cfg;
	size_t half = (size_t)c->head_dim / 2;
	int rc;

	if ((rc = kn_malloc((void **)&R->inv_freq, half * 4)) ||
	    (rc = kn_memcpy_h2d(R->inv_freq, freq, half * 4, R->stream)) ||
	    (rc = kn_stream_sync(R->stream)) || (rc = kn_malloc((void **)&R->k_pool, per)) ||
	    (rc = kn_malloc((void **)&R->v_pool, per)) ||
	    (rc = kn_memset(R->k_pool, 0, per, R->stream)) ||
	    (rc = kn_memset(R->v_pool, 0, per, R->stream)) ||
	    (rc = kn_malloc((void **)&R->logits, (size_t)st->lm_tile * c->vocab * 4)) ||
	    (rc = kn_stream_sync(R->stream)))
		return rc;
	return 0;
}

/* Every rank's fixed buffers (alloc_rank_fixed). */
static int alloc_fixed(struct cuda_state *st, struct eng_error *err)
{
	const struct eng_model_config *c = &st->cfg;
	size_t half = (size_t)c->head_dim / 2;
	size_t per = (size_t)c->n_layers * kv_layer_bytes(st);
	float *h = malloc(half * sizeof(float));
	int rc = 0;

	if (!h)
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	eng_config_rope_inv_freq(c, h);
	st->lm_tile = (int)(LM_TILE_BYTES / ((size_t)c->vocab * 4));
	st->lm_tile = st->lm_tile < 1 ? 1 : st->lm_tile > 4096 ? 4096 : st->lm_tile;
	for (int r = 0; !rc && r < st->n_ranks; r++)
		if (!(rc = use_rank(st, r)))
			rc = alloc_rank_fixed(st, &st->rk[r], h, per);
	free(h);
	if (rc)
		return eng_cuda_error(rc, err);
	return 0;
}

/* The FP8 cache's scales (eng_kv_scales: the checkpoint's, or 1) to
 * every rank: its KV heads' k and v scales, (n_layers, 2, nkv). */
static int upload_kv_scales(struct cuda_state *st, const struct eng_model_weights *w,
			    struct eng_error *err)
{
	const struct eng_model_config *c = &st->cfg;
	size_t L = c->n_layers, n = (size_t)c->n_kv_heads, nr = st->nkv;
	float *all = malloc(2 * L * n * sizeof(float)), *mine = malloc(2 * L * nr * sizeof(float));
	int rc = 0;

	if (!all || !mine) {
		free(all);
		free(mine);
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	}
	if ((rc = eng_kv_scales(c, w, all, all + L * n, NULL, err)))
		goto out;
	for (int r = 0; r < st->n_ranks; r++) {
		struct rank *R = &st->rk[r];

		for (size_t l = 0; l < L; l++)
			for (size_t h = 0; h < nr; h++) {
				mine[(l * 2) * nr + h] = all[l * n + r * nr + h];
				mine[(l * 2 + 1) * nr + h] = all[L * n + l * n + r * nr + h];
			}
		if ((rc = use_rank(st, r)) ||
		    (rc = kn_malloc((void **)&R->kv_scale, 2 * L * nr * sizeof(float))) ||
		    (rc = kn_memcpy_h2d(R->kv_scale, mine, 2 * L * nr * sizeof(float), R->stream)) ||
		    (rc = kn_stream_sync(R->stream))) {
			rc = eng_cuda_error(rc, err);
			goto out;
		}
	}
out:
	free(all);
	free(mine);
	return rc;
}

/* The columns [c0, c0 + cols) of a random (rows, full) pool of unit
 * variance into pool, as bf16 or E4M3. */
static int fill_pages(const struct cuda_state *st, void *pool, size_t rows, size_t cols,
		      size_t full, size_t c0, uint64_t seed, kn_stream s)
{
	return st->kv_fp8 ? kn_fill_random_slice_e4m3(pool, rows, cols, full, 0, c0, seed, 0.0f,
						      1.0f, s)
			  : kn_fill_random_slice_bf16(pool, rows, cols, full, 0, c0, seed, 0.0f,
						      1.0f, s);
}

/* Random K/V in every page, so that benchmarks can time decode at any
 * context without a prefill (and never on zeros): each rank's KV heads
 * of the one random pool, whatever the number of ranks.  FP8 pages get
 * the same values rounded to E4M3 (scale 1, as random weights have). */
static int dummy_pages(struct cuda_state *st, uint64_t seed, struct eng_error *err)
{
	size_t hd = st->cfg.head_dim, cols = (size_t)st->nkv * hd;
	size_t rows = (size_t)st->cfg.n_layers * st->pool_pages * st->params.page_size;
	size_t full = (size_t)st->cfg.n_kv_heads * hd;
	int rc = 0;

	for (int r = 0; !rc && r < st->n_ranks; r++) {
		struct rank *R = &st->rk[r];
		size_t c0 = (size_t)r * cols;

		if ((rc = use_rank(st, r)) ||
		    (rc = fill_pages(st, R->k_pool, rows, cols, full, c0, seed ^ 0x4b56ull,
				     R->stream)) ||
		    (rc = fill_pages(st, R->v_pool, rows, cols, full, c0, seed ^ 0x5646ull,
				     R->stream)) ||
		    (rc = kn_stream_sync(R->stream)))
			break;
	}
	return rc ? eng_cuda_error(rc, err) : 0;
}

/* Every rank's weights: uploaded from w, or random from seed. */
static int load_weights(struct cuda_state *st, const struct eng_model_weights *w,
			uint64_t seed, struct eng_error *err)
{
	int rc;

	for (int r = 0; r < st->n_ranks; r++) {
		struct rank *R = &st->rk[r];
		struct eng_cuda_shard sh = { r, st->n_ranks };

		if ((rc = use_rank(st, r)))
			return eng_cuda_error(rc, err);
		rc = w ? eng_cuda_weights_upload(&R->w, &st->cfg, sh, w, st->params.weight_fp8,
						 R->stream, err)
		       : eng_cuda_weights_dummy(&R->w, &st->cfg, sh, seed,
						 st->params.weight_fp8, R->stream, err);
		if (rc)
			return rc;
	}
	return w ? 0 : dummy_pages(st, seed, err);
}

static int make_events(struct cuda_state *st, struct eng_error *err)
{
	int rc;

	if ((rc = kn_set_device(st->rk[0].dev)) || (rc = kn_event_create(&st->ev_t0)) ||
	    (rc = kn_event_create(&st->ev_t1)))
		return eng_cuda_error(rc, err);
	return 0;
}

int eng_cuda_create(const struct eng_model_config *cfg, const struct eng_model_weights *w,
		    uint64_t seed, struct eng_backend_params *params, void **state,
		    struct eng_error *err)
{
	struct cuda_state *st;
	int rc, tp = params->tp_size;

	*state = NULL;
	if ((rc = check_shape(cfg, tp, err)))
		return rc;
	if (!(st = calloc(1, sizeof(*st))))
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	st->cfg = *cfg;
	if (params->cuda_graph_max_bs < 0)
		params->cuda_graph_max_bs = 0;
	st->params = *params;
	st->n_ranks = tp;
	st->nh = cfg->n_heads / tp;
	st->nkv = cfg->n_kv_heads / tp;
	st->inter = cfg->intermediate / tp;
	st->pool_pages = params->n_pages + 1;
	st->tile_rows = kn_attn_tc_tile_rows(cfg->n_heads, cfg->n_kv_heads, cfg->head_dim);
	st->use_tc = st->tile_rows > 0;
	if (!st->use_tc)
		st->tile_rows = kn_attn_tile_rows(cfg->n_heads, cfg->n_kv_heads);
	st->use_tc_decode = kn_attn_decode_tc_ok(cfg->n_heads, cfg->n_kv_heads, cfg->head_dim);
	st->kv_fp8 = params->kv_dtype == ENG_KV_DTYPE_FP8_E4M3;
	st->w_fp8 = params->weight_fp8 != 0;
	st->fuse_quant = 1;
	st->splits_by_work = 1;
	st->prefill_split = 1;
	if ((rc = open_devices(st, err)) || (rc = alloc_fixed(st, err)) ||
	    (st->kv_fp8 && (rc = upload_kv_scales(st, w, err))) ||
	    (rc = make_events(st, err)) || (rc = load_weights(st, w, seed, err))) {
		eng_cuda_destroy(st);
		return rc;
	}
	kn_set_device(st->rk[0].dev);
	/* asks the device (its image of the kernel): once the devices are open */
	st->wg_ok = st->use_tc && kn_attn_prefill_wg_ok(cfg->n_heads, cfg->n_kv_heads,
							cfg->head_dim,
							st->kv_fp8 ? KN_KV_FP8_E4M3 : KN_KV_BF16);
	st->use_wg = st->wg_ok ? ENG_CUDA_WGMMA_WS : 0;
	*state = st;
	return 0;
}

const char *eng_cuda_device_name(const void *state)
{
	return ((const struct cuda_state *)state)->device_name;
}

size_t eng_cuda_weight_bytes(const void *state)
{
	const struct cuda_state *st = state;
	size_t n = 0;

	for (int r = 0; r < st->n_ranks; r++)
		n += st->rk[r].w.bytes;
	return n;
}

/* ---------------------------------------------------------------- profile */

void eng_cuda_prof_mark(struct cuda_state *st, int cat)
{
	struct prof *p = st->prof;

	if (!p || p->n >= PROF_EVENTS || (!st->shared && use_rank(st, 0)) ||
	    kn_event_record(p->ev[p->n], st->rk[0].stream))
		return;
	p->cat[p->n++] = cat;
}


/* After a synchronized forward: event gaps into the per-class sums. */
void eng_cuda_prof_collect(struct cuda_state *st)
{
	struct prof *p = st->prof;
	float ms;

	if (!p)
		return;
	for (int i = 1; i < p->n; i++)
		if (p->cat[i] >= 0 && kn_event_elapsed_ms(p->ev[i - 1], p->ev[i], &ms) == 0)
			p->ms[p->cat[i]] += ms;
	p->n_fwd++;
	p->n = 0;
}

static void prof_free(struct prof *p)
{
	if (!p)
		return;
	for (int i = 0; i < PROF_EVENTS; i++)
		kn_event_destroy(p->ev[i]);
	free(p);
}

int eng_cuda_profile(void *state, int on, struct eng_error *err)
{
	struct cuda_state *st = state;
	int rc;

	prof_free(st->prof);
	st->prof = NULL;
	if (!on)
		return 0;
	if (!(st->prof = calloc(1, sizeof(*st->prof))))
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	for (int i = 0; i < PROF_EVENTS; i++)
		if ((rc = use_rank(st, 0)) || (rc = kn_event_create(&st->prof->ev[i]))) {
			prof_free(st->prof);
			st->prof = NULL;
			return eng_cuda_error(rc, err);
		}
	return 0;
}

int eng_cuda_profile_class(const void *state, const char *name, double *ms, double *share)
{
	const struct prof *p = ((const struct cuda_state *)state)->prof;
	double total = 0;

	if (!p || !p->n_fwd)
		return -1;
	for (int c = 0; c < PROF_N; c++)
		total += p->ms[c];
	for (int c = 0; c < PROF_N; c++)
		if (!strcmp(prof_names[c], name)) {
			*ms = p->ms[c] / p->n_fwd;
			*share = total > 0 ? p->ms[c] / total : 0;
			return 0;
		}
	return -1;
}

void eng_cuda_profile_print(void *state, FILE *f)
{
	struct prof *p = ((struct cuda_state *)state)->prof;
	double total = 0;

	if (!p || !p->n_fwd)
		return;
	for (int c = 0; c < PROF_N; c++)
		total += p->ms[c];
	for (int c = 0; c < PROF_N; c++)
		fprintf(f, "  %-26s %9.3f ms %5.1f%%\n", prof_names[c], p->ms[c] / p->n_fwd,
			total > 0 ? 100 * p->ms[c] / total : 0.0);
	fprintf(f, "  %-26s %9.3f ms (device time between ops, per forward)\n", "total",
		total / p->n_fwd);
	memset(p->ms, 0, sizeof(p->ms));
	p->n_fwd = 0;
}
