/*
 * cuda_graph.c: decode steps replayed from captured CUDA graphs.
 *
 * Decode-only batches (one token per sequence, no score targets) of up to
 * params->cuda_graph_max_bs sequences on one rank replay a graph of the
 * whole device side of the forward (embedding to argmax), one per
 * batch-size bucket and power-of-two block-table size (16 pages and up).
 * The metadata goes in a fixed layout (every row selected, each
 * sequence's block table padded to the class's length) through the same
 * pinned upload as op-by-op steps, outside the graph; the batch is padded
 * to its bucket with rows at position 0 of a scratch page kept past
 * params->n_pages.  The decode attention's grid of splits is fixed at
 * capture, with room for a ragged batch's longest row; each step writes
 * its split length, sized by the batch's keys, beside the metadata (per
 * row, without eng_cuda_splits_by_work).  A graph holds buffer addresses, so growing a buffer drops
 * every graph (captured again on next use); a capture that fails turns
 * graphs off for good and the step runs op by op.
 *
 * It refuses nothing itself: batches it cannot take go through
 * eng_cuda_plain_forward (backend_cuda.c).
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "engine/cuda_int.h"

/* The bucket of a decode batch of n: 1, 2, 4, 8, then multiples of 8 up to
 * 32, then of 16, never over cuda_graph_max_bs (itself the last bucket). */
static int graph_bucket(const struct cuda_state *st, int n)
{
	int b = n <= 1 ? 1 : n <= 2 ? 2 : n <= 4 ? 4 : n <= 8 ? 8 : n <= 32 ? (n + 7) / 8 * 8
											  : (n + 15) / 16 * 16;

	return b > st->params.cuda_graph_max_bs ? st->params.cuda_graph_max_bs : b;
}

/* Decode-only (one token each, no targets), small enough, not profiled,
 * one rank. */
int eng_cuda_graph_fits(const struct cuda_state *st, const struct eng_batch *b)
{
	if (st->n_ranks > 1 || st->params.disable_cuda_graph || st->prof ||
	    b->n_seqs > st->params.cuda_graph_max_bs ||
	    graph_bucket(st, b->n_seqs) > st->lm_tile)
		return 0;
	for (int s = 0; s < b->n_seqs; s++)
		if (b->seqs[s].n_tokens != 1 || b->seqs[s].targets)
			return 0;
	return 1;
}

/* The fixed layout of a captured decode batch of bs rows with pages
 * block-table entries each: every row selected, a grid of decode splits
 * (eng_cuda_graph_splits, at most one per 64 keys the table holds) whose
 * split length each step writes in the metadata. */
static void graph_plan(const struct cuda_state *st, int bs, int pages, struct step_meta *m)
{
	int max_split = pages * st->params.page_size / 64, want = eng_cuda_graph_splits(st, bs);
	size_t o = 0;

	memset(m, 0, sizeof(*m));
	m->T = m->n_sel = m->n_dec = bs;
	m->n_bt = bs * pages;
	m->argmax = 1;
	m->n_splits = want < max_split ? want : max_split < 1 ? 1 : max_split;
	m->split_len = 0;
	m->split_dev = 1;
	m->split_at = o, o += 1;
	m->tokens = o, o += bs;
	m->pos = o, o += bs;
	m->slot = o, o += bs;
	m->bt_off = o, o += bs;
	m->sel_rows = o, o += bs;
	m->sel_target = o, o += bs;
	m->pre_row0 = m->pre_n = o;
	m->dec_row0 = o, o += bs;
	m->dec_n = o, o += bs;
	m->bt = o, o += (size_t)m->n_bt;
	m->total = o;
}

/* Row r of the graph's metadata: sequence q, or (q NULL) a padding row at
 * position 0 of the scratch page. */
static void graph_row(struct cuda_state *st, const struct step_meta *m, int pages, int r,
		      const struct eng_seq_input *q)
{
	int32_t *h = st->meta_h, *bt = h + m->bt + (size_t)r * pages;
	int ps = st->params.page_size, scratch = st->params.n_pages, pos = q ? q->start_pos : 0;
	int nb = q ? pos / ps + 1 : 0, i;

	for (i = 0; i < nb; i++)
		bt[i] = q->block_table[i];
	for (; i < pages; i++)
		bt[i] = scratch;
	h[m->tokens + r] = q ? q->tokens[0] : 0;
	h[m->pos + r] = pos;
	h[m->slot + r] = bt[pos / ps] * ps + pos % ps;
	h[m->bt_off + r] = r * pages;
	h[m->sel_rows + r] = r;
	h[m->sel_target + r] = -1;
	h[m->dec_row0 + r] = r;
	h[m->dec_n + r] = 1;
}

/* What a graph holds: the forward of the bs rows of layout m, the LM head
 * on every row, the argmax of each. */
static int graph_ops(struct cuda_state *st, const struct step_meta *m)
{
	const struct eng_model_config *c = &st->cfg;
	const struct rank *R = &st->rk[0];
	int rc = eng_cuda_forward_body(st, m);

	if (!rc)
		rc = kn_add_rmsnorm(R->x, NULL, NULL, R->w.final_norm, R->xb, NULL, m->T,
				    c->hidden, (float)c->rms_eps, R->stream);
	if (!rc)
		rc = kn_gemm_bf16(R->gemm, R->logits, 1, c->vocab, R->xb, R->w.lm_head, m->T,
				  c->vocab, c->hidden);
	if (!rc)
		rc = kn_argmax(R->amax, R->logits, m->T, c->vocab, R->stream);
	return rc;
}

/* The captured forward of layout m (bs rows, pages entries), captured on
 * first use after one run of the same ops outside the capture (module
 * loads and library setup stay out of it; the run computes what the
 * replay will); NULL with err set when that fails. */
static kn_graph graph_get(struct cuda_state *st, const struct step_meta *m, int pages,
			  struct eng_error *err)
{
	struct graph_ent *e;
	kn_graph g = NULL;
	int rc, i;

	for (i = 0; i < st->n_graphs; i++)
		if (st->graphs[i].bs == m->T && st->graphs[i].pages == pages)
			return st->graphs[i].g;
	if (st->n_graphs == MAX_GRAPHS)
		eng_cuda_graphs_drop(st);
	if ((rc = graph_ops(st, m)) || (rc = kn_stream_sync(st->rk[0].stream)) ||
	    (rc = kn_capture_begin(st->rk[0].stream))) {
		eng_cuda_error(rc, err);
		return NULL;
	}
	rc = graph_ops(st, m);
	i = kn_capture_end(st->rk[0].stream, rc == 0, &g);
	if (rc || i) {
		eng_cuda_error(rc ? rc : i, err);
		return NULL;
	}
	e = &st->graphs[st->n_graphs++];
	e->bs = m->T;
	e->pages = pages;
	e->gen = st->buf_gen;
	e->g = g;
	return g;
}

/* Results of a replayed graph to the host: tokens, and logits where asked. */
static int graph_results(struct cuda_state *st, const struct eng_batch *b, const uint8_t *want,
			 int32_t *next)
{
	const struct rank *R = &st->rk[0];
	size_t V = st->cfg.vocab;
	int rc, s;

	if ((rc = kn_memcpy_d2h(st->amax_h, R->amax, (size_t)b->n_seqs * 4, R->stream)))
		return rc;
	for (s = 0; s < b->n_seqs; s++)
		if (b->seqs[s].logits &&
		    (rc = kn_memcpy_d2h(b->seqs[s].logits, R->logits + s * V, V * 4, R->stream)))
			return rc;
	if ((rc = kn_event_record(st->ev_t1, R->stream)) || (rc = kn_stream_sync(R->stream)))
		return rc;
	for (s = 0; next && s < b->n_seqs; s++)
		if (eng_cuda_wants_token(want, 1, s))
			next[s] = st->amax_h[s];
	return 0;
}

/* A decode batch through the graph of its bucket: metadata padded to the
 * bucket and uploaded, the graph replayed (captured first if new). */
int eng_cuda_graph_forward(struct cuda_state *st, const struct eng_batch *b, const uint8_t *want,
			   int32_t *next, struct eng_error *err)
{
	int bs = graph_bucket(st, b->n_seqs), ps = st->params.page_size, need = 1, pages = 16, rc;
	struct step_meta m;
	kn_graph g;

	for (int s = 0; s < b->n_seqs; s++)
		need = b->seqs[s].start_pos / ps + 1 > need ? b->seqs[s].start_pos / ps + 1 : need;
	while (pages < need)
		pages *= 2;
	graph_plan(st, bs, pages, &m);
	if (!st->graphs && !(st->graphs = calloc(MAX_GRAPHS, sizeof(*st->graphs))))
		return eng_error_set(err, ENG_E_NOMEM, "cuda", 0, "out of memory");
	/* room for the next block-table class and for the most splits any
	 * class of this bucket takes: fewer recaptures */
	if ((rc = eng_cuda_ensure_tokens(st, bs, err)) ||
	    (rc = eng_cuda_ensure_meta(st, 2 * m.total, err)) ||
	    (rc = eng_cuda_ensure_partial(st, kn_attn_partial_floats(bs, st->nh, st->nkv,
								     st->cfg.head_dim,
								     eng_cuda_graph_splits(st, bs)),
					  err)))
		return rc;
	if (st->n_graphs && st->graphs[0].gen != st->buf_gen)
		eng_cuda_graphs_drop(st);
	for (int r = 0; r < bs; r++)
		graph_row(st, &m, pages, r, r < b->n_seqs ? &b->seqs[r] : NULL);
	st->meta_h[m.split_at] = eng_cuda_graph_split_len(st, b, bs, m.n_splits);
	if ((rc = kn_event_record(st->ev_t0, st->rk[0].stream)) ||
	    (rc = kn_memcpy_h2d(st->rk[0].meta_d, st->meta_h, m.total * 4, st->rk[0].stream)))
		return eng_cuda_error(rc, err);
	if (!(g = graph_get(st, &m, pages, err))) {
		/* an op that cannot be captured: op by op from now on */
		st->graph_failed = 1;
		return eng_cuda_plain_forward(st, b, want, next, err);
	}
	if ((rc = kn_graph_launch(g, st->rk[0].stream)) || (rc = graph_results(st, b, want, next)))
		return eng_cuda_error(rc, err);
	st->timed = 1;
	return 0;
}

void eng_cuda_use_graphs(void *state, int on)
{
	((struct cuda_state *)state)->params.disable_cuda_graph = !on;
}

/* A setting the captured graphs depend on: set, the graphs dropped when
 * it changes. */
static void set_captured(struct cuda_state *st, int *setting, int v)
{
	if (*setting != v)
		eng_cuda_graphs_drop(st);
	*setting = v;
}

void eng_cuda_fuse_quant(void *state, int on)
{
	struct cuda_state *st = state;

	set_captured(st, &st->fuse_quant, !!on);
}

void eng_cuda_prefill_split(void *state, int on)
{
	struct cuda_state *st = state;

	set_captured(st, &st->prefill_split, !!on);
}

void eng_cuda_prefill_wgmma(void *state, int form)
{
	struct cuda_state *st = state;

	if (form < 0 || form > ENG_CUDA_WGMMA_WS)
		form = ENG_CUDA_WGMMA_WS;
	set_captured(st, &st->use_wg, st->wg_ok ? form : 0);
}

int eng_cuda_prefill_wgmma_used(const void *state)
{
	return ((const struct cuda_state *)state)->use_wg;
}

void eng_cuda_skinny_wide(void *state, int on)
{
	eng_cuda_graphs_drop(state);
	kn_skinny_wide(on);
}

void eng_cuda_skinny_splits(void *state, int on)
{
	eng_cuda_graphs_drop(state);
	kn_skinny_splits(on);
}

void eng_cuda_skinny_glu(void *state, int on)
{
	eng_cuda_graphs_drop(state);
	kn_skinny_glu(on);
}

void eng_cuda_splits_by_work(void *state, int on)
{
	struct cuda_state *st = state;

	set_captured(st, &st->splits_by_work, !!on);
}

void eng_cuda_decode_blocks(void *state, int per_sm)
{
	struct cuda_state *st = state;

	set_captured(st, &st->decode_blocks_per_sm, per_sm);
}

int eng_cuda_graph_count(const void *state)
{
	const struct cuda_state *st = state;

	return st->graph_failed ? -1 : st->n_graphs;
}
