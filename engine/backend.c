/*
 * backend.c: what all backends share: default parameters, the dispatch
 * through struct eng_backend_ops, and the validation of a batch, done once
 * here so that no backend indexes pages or the vocabulary with
 * unchecked numbers.
 */
#include "engine/backend.h"

#include <stdlib.h>
#include <string.h>

struct eng_backend {
	const struct eng_backend_ops *ops;
	const struct eng_model *model;
	struct eng_backend_params params;
	void *state;
};

struct eng_backend_params eng_backend_default_params(void)
{
	struct eng_backend_params p = {
		.n_threads = 0, .page_size = 16, .n_pages = 256, .device = 0,
		.cuda_graph_max_bs = 64, .disable_cuda_graph = 0, .tp_size = 1,
	};

	for (int r = 0; r < ENG_TP_MAX; r++)
		p.tp_devices[r] = -1;
	return p;
}

int eng_backend_create(const struct eng_backend_ops *ops, const struct eng_model *model,
		       const struct eng_backend_params *params, struct eng_backend **out,
		       struct eng_error *err)
{
	struct eng_backend *be = calloc(1, sizeof(*be));
	int rc;

	*out = NULL;
	if (!be)
		return eng_error_set(err, ENG_E_NOMEM, ops->name, 0, "out of memory");
	be->ops = ops;
	be->model = model;
	be->params = params ? *params : eng_backend_default_params();
	if (be->params.page_size < 1 || be->params.n_pages < 1 || be->params.n_threads < 0 ||
	    be->params.cuda_graph_max_bs < 0) {
		free(be);
		return eng_error_set(err, ENG_E_INVALID, ops->name, 0,
				     "page_size and n_pages must be positive, n_threads and "
				     "cuda_graph_max_bs >= 0");
	}
	if (be->params.kv_dtype < ENG_KV_DTYPE_AUTO || be->params.kv_dtype > ENG_KV_DTYPE_FP8_E4M3) {
		int dt = be->params.kv_dtype;

		free(be);
		return eng_error_set(err, ENG_E_INVALID, ops->name, 0, "kv_dtype %d: no such dtype",
				     dt);
	}
	if (be->params.tp_size < 1 || be->params.tp_size > ENG_TP_MAX ||
	    (be->params.tp_size > 1 && !ops->tensor_parallel)) {
		int tp = be->params.tp_size;

		free(be);
		if (tp < 1 || tp > ENG_TP_MAX)
			return eng_error_set(err, ENG_E_INVALID, ops->name, 0,
					     "tp_size %d: must be 1 to %d", tp, ENG_TP_MAX);
		return eng_error_set(err, ENG_E_INVALID, ops->name, 0,
				     "the %s backend has no tensor parallelism (tp_size %d); "
				     "it needs the cuda backend", ops->name, tp);
	}
	rc = ops->create(model, &be->params, &be->state, err);
	if (rc) {
		free(be);
		return rc;
	}
	*out = be;
	return 0;
}

void eng_backend_free(struct eng_backend *be)
{
	if (!be)
		return;
	be->ops->destroy(be->state);
	free(be);
}

static int check_ids(const int32_t *ids, int n, int limit, int s, const char *what,
		     struct eng_error *err)
{
	int i;

	for (i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= limit)
			return eng_error_set(err, ENG_E_INVALID, "batch", 0,
					     "sequence %d: %s %d is %d, outside [0, %d)",
					     s, what, i, (int)ids[i], limit);
	return 0;
}

static int check_seq(const struct eng_model_config *cfg, const struct eng_backend_params *p,
		     const struct eng_seq_input *q, int s, struct eng_error *err)
{
	long end = (long)q->start_pos + q->n_tokens;
	int rc;

	if (!q->tokens || q->n_tokens < 1 || q->start_pos < 0 || !q->block_table ||
	    !q->targets != !q->logprobs)
		return eng_error_set(err, ENG_E_INVALID, "batch", 0,
				     "sequence %d: needs tokens, n_tokens >= 1, start_pos >= 0, "
				     "a block table, and logprobs exactly with targets", s);
	if (end > cfg->max_positions)
		return eng_error_set(err, ENG_E_RANGE, "batch", 0,
				     "sequence %d: positions up to %ld exceed the context of %d",
				     s, end, cfg->max_positions);
	if ((long)q->n_blocks * p->page_size < end)
		return eng_error_set(err, ENG_E_RANGE, "batch", 0,
				     "sequence %d: %d pages of %d tokens cannot hold %ld positions",
				     s, q->n_blocks, p->page_size, end);
	if ((rc = check_ids(q->tokens, q->n_tokens, cfg->vocab, s, "token", err)) ||
	    (rc = check_ids(q->block_table, (int)((end + p->page_size - 1) / p->page_size),
			    p->n_pages, s, "page", err)))
		return rc;
	if (q->targets)
		return check_ids(q->targets, q->n_tokens, cfg->vocab, s, "target", err);
	return 0;
}

int eng_batch_check(const struct eng_model_config *cfg, const struct eng_backend_params *p,
		    const struct eng_batch *batch, struct eng_error *err)
{
	long total = 0;
	int s, rc;

	if (batch->n_seqs < 0 || (batch->n_seqs > 0 && !batch->seqs))
		return eng_error_set(err, ENG_E_INVALID, "batch", 0, "no sequences");
	for (s = 0; s < batch->n_seqs; s++) {
		if ((rc = check_seq(cfg, p, &batch->seqs[s], s, err)))
			return rc;
		total += batch->seqs[s].n_tokens;
		if (total > (1L << 30))
			return eng_error_set(err, ENG_E_RANGE, "batch", 0, "too many tokens");
	}
	return 0;
}

int eng_backend_forward(struct eng_backend *be, const struct eng_batch *batch,
			struct eng_error *err)
{
	int rc = eng_batch_check(eng_model_config(be->model), &be->params, batch, err);

	if (rc || batch->n_seqs == 0)
		return rc;
	return be->ops->forward(be->state, batch, err);
}

int eng_backend_forward_next(struct eng_backend *be, const struct eng_batch *batch,
			     const uint8_t *want, int32_t *next, struct eng_error *err)
{
	int rc = eng_batch_check(eng_model_config(be->model), &be->params, batch, err);

	if (rc)
		return rc;
	if (!want || !next)
		return eng_error_set(err, ENG_E_INVALID, "batch", 0, "want and next are required");
	if (!be->ops->forward_next)
		return eng_error_set(err, ENG_E_INVALID, be->ops->name, 0,
				     "this backend cannot pick greedy tokens");
	for (int s = 0; s < batch->n_seqs; s++)
		next[s] = -1;
	if (batch->n_seqs == 0)
		return 0;
	return be->ops->forward_next(be->state, batch, want, next, err);
}

const char *eng_backend_name(const struct eng_backend *be)
{
	return be->ops->name;
}

const struct eng_backend_params *eng_backend_params(const struct eng_backend *be)
{
	return &be->params;
}

int eng_backend_roofline(struct eng_backend *be, struct eng_roofline *out,
			 struct eng_error *err)
{
	memset(out, 0, sizeof(*out));
	return be->ops->roofline ? be->ops->roofline(be->state, out, err) : 0;
}
