/*
 * infer.c: the loaded engine and the runs over it (see infer.h).
 *
 * A run adapts the runner's session callbacks to NDJSON: input lines are
 * parsed and tokenized lazily, only when the session has room for another
 * conversation, so memory follows the batch size, not the input size.
 */
#include <config.h>
#include "engine/infer.h"
#include "engine/backend.h"
#include "engine/chat.h"
#include "engine/conv.h"
#include "engine/model.h"
#include "engine/router.h"
#include "engine/remote.h"
#include "engine/step.h"
#include "engine/tokenizer.h"
#include "engine/clock.h"
#include "engine/cuda_plugin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void eng_infer_default_params(struct eng_infer_params *p)
{
	memset(p, 0, sizeof(*p));
	p->device = "cpu";
	p->page_size = 16;
	p->chunked_prefill_size = 8192;
	p->policy = ENG_SCHED_POLICY_FCFS;
	p->load_format = "auto";
	p->mem_fraction_static = 0.85;
	p->cuda_graph_max_bs = 64;
	p->tp_size = 1;
	p->kv_cache_dtype = "auto";
	p->quantization = "none";
}

/* p->quantization -> e->weight_fp8; fp8 is refused with tensor
 * parallelism, which does not split the FP8 weights and scales yet. */
static int parse_quantization(struct eng_infer *e, struct eng_error *err)
{
	const char *q = e->p.quantization ? e->p.quantization : "none";

	e->weight_fp8 = !strcmp(q, "fp8");
	if (!e->weight_fp8 && strcmp(q, "none"))
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "quantization \"%s\" is not supported (none or fp8)", q);
	if (e->weight_fp8 && e->p.tp_size > 1)
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "quantization fp8 with tensor parallelism (tp_size %d) is "
				     "not supported yet", (int)e->p.tp_size);
	return 0;
}

static bool is_dummy(const struct eng_infer_params *p)
{
	return p->load_format && !strcmp(p->load_format, "dummy");
}

/* "cpu: <model name>, N threads" from /proc/cpuinfo where it exists. */
static void describe_cpu(char *buf, size_t n, int threads)
{
	char line[512], name[256] = "unknown cpu";
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) == 0 && colon) {
			snprintf(name, sizeof(name), "%s", colon + 2);
			name[strcspn(name, "\n")] = '\0';
			break;
		}
	}
	if (f)
		fclose(f);
	snprintf(buf, n, "cpu: %s, %d threads", name, threads);
}

static int open_text_side(struct eng_infer *e, struct eng_error *err)
{
	const char *tdir = e->p.tokenizer ? e->p.tokenizer : e->p.model_dir;
	struct eng_chat_spec spec;
	int rc = eng_tokenizer_load(tdir, &e->tok, err);

	if (rc != 0)
		return rc;
	rc = e->p.chat_template ? eng_chat_spec_from_name(e->p.chat_template, &spec, err)
				: eng_chat_spec_from_dir(tdir, e->tok, &spec, err);
	if (rc != 0)
		return rc;
	return eng_chat_new(e->tok, &spec, &e->chat, err);
}

/* The KV pool on the CPU: max_total_tokens when given, else room for 64
 * full contexts, so that a study's largest batch of conversations keeps
 * all its histories cached (64 of the tiny model's 4k contexts: 128 MiB;
 * its default study at batch 16 holds under 50k tokens), capped at an
 * eighth of the machine's memory for fp32 K and V (an FP8 cache keeps its
 * rounded values in fp32 there too).  The pages are touched only as the
 * cache fills. */
static int64_t cpu_pool_tokens(struct eng_infer *e, const struct eng_model_config *cfg)
{
	int64_t per_token = 2LL * cfg->n_layers * cfg->n_kv_heads * cfg->head_dim * 4;
	int64_t n = 64LL * e->sp.max_context;
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
	int64_t cap = pages > 0 && page > 0 ? (int64_t)pages * page / 8 : (1LL << 30);

	e->kv_token_bytes = per_token;
	if (e->p.max_total_tokens > 0)
		return e->p.max_total_tokens;
	if (n * per_token > cap)
		n = cap / per_token;
	return n;
}

/* Bytes of the model in bf16 on each GPU of tp ranks: the layers and the
 * LM head split, the embedding whole on every rank.  With FP8 weights the
 * layers' linear weights take a byte an element and an fp32 scale per
 * output row, the embedding and the LM head still two. */
static int64_t gpu_weight_bytes(const struct eng_model_config *c, int tp, bool fp8)
{
	int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
	int64_t layer = c->hidden * (q + 2 * kv) + q * c->hidden + 3LL * c->hidden * c->intermediate;
	int64_t rows = q + 2 * kv + 2LL * c->hidden + 2LL * c->intermediate;
	int64_t vh = (int64_t)c->vocab * c->hidden;
	int64_t layers = fp8 ? layer + rows * (int64_t)sizeof(float) : 2 * layer;

	return 2 * (vh + (c->tie_embeddings ? 0 : vh / tp)) + (int64_t)c->n_layers * layers / tp;
}

/* The KV pool on the GPU, as SGLang sizes it: mem_fraction_static of the
 * device's memory holds the weights and the pool; what is left holds the
 * activations (4 GiB kept free for them at least).  A cached token takes
 * 2 bytes an element of K and V in bf16, 1 in fp8_e4m3 (twice the tokens
 * in the same memory).  With tp ranks each GPU holds 1/tp of every
 * token's K and V; the tightest GPU decides. */
static int gpu_pool_tokens(struct eng_infer *e, const struct eng_cuda_plugin *cu,
			   const struct eng_model_config *cfg, int64_t *out, struct eng_error *err)
{
	int tp = e->p.tp_size > 1 ? e->p.tp_size : 1;
	int64_t elem = e->kv_dtype == ENG_KV_DTYPE_FP8_E4M3 ? 1 : 2;
	int64_t per_token = 2LL * cfg->n_layers * cfg->n_kv_heads * cfg->head_dim * elem / tp;
	int64_t w = gpu_weight_bytes(cfg, tp, e->weight_fp8), budget = INT64_MAX, room;
	size_t free_b = 0, total_b = 0;

	e->kv_token_bytes = per_token * tp;
	if (e->p.max_total_tokens > 0) {
		*out = e->p.max_total_tokens;
		return 0;
	}
	for (int d = 0; d < tp; d++) {
		if (cu->mem_info(d, &free_b, &total_b) != 0)
			return eng_error_set(err, ENG_E_DEVICE, NULL, 0, "no CUDA device %d%s", d,
					     tp > 1 ? " for the tensor-parallel ranks" : "");
		room = (int64_t)((double)total_b * e->p.mem_fraction_static) - w;
		budget = room < budget ? room : budget;
		room = (int64_t)free_b - w - (4LL << 30);
		budget = room < budget ? room : budget;
	}
	if (budget < per_token * e->sp.page_size)
		return eng_error_set(err, ENG_E_DEVICE, NULL, 0,
				     "no GPU memory left for the KV cache after %.1f GiB of weights",
				     (double)w / (1 << 30));
	*out = budget / per_token;
	return 0;
}

static void describe_gpu(const struct eng_cuda_plugin *cu, char *buf, size_t n, int tp)
{
	char name[256] = "unknown GPU";
	int n_sm = 0;
	size_t mem = 0;

	cu->device_info(0, name, sizeof(name), &n_sm, &mem);
	if (tp > 1)
		snprintf(buf, n, "cuda: %d x %s, %d SMs, %.1f GiB, tensor parallel", tp, name, n_sm,
			 (double)mem / (1 << 30));
	else
		snprintf(buf, n, "cuda: %s, %d SMs, %.1f GiB", name, n_sm, (double)mem / (1 << 30));
}

/* The backend for the device, and the KV pool size in tokens.  The CUDA
 * backend is loaded here, the first time a run needs it (cuda_plugin.h). */
static int pick_backend(struct eng_infer *e, const struct eng_backend_ops **ops,
			int64_t *pool, struct eng_error *err)
{
	const struct eng_model_config *cfg = eng_model_config(e->model);
	const struct eng_cuda_plugin *cu;
	int rc = eng_kv_dtype_from_name(e->p.kv_cache_dtype ? e->p.kv_cache_dtype : "auto",
					&e->kv_dtype, err);

	if (rc == 0)
		rc = parse_quantization(e, err);
	if (rc != 0)
		return rc;
	if (!strcmp(e->p.device, "cpu") && !is_dummy(&e->p)) {
		*ops = &eng_backend_cpu_ops;
		*pool = cpu_pool_tokens(e, cfg);
		return 0;
	}
	if (!strcmp(e->p.device, "cpu"))
		return eng_error_set(err, ENG_E_INVALID, NULL, 0,
				     "--load-format dummy needs --device cuda");
	if (!strcmp(e->p.device, "cuda")) {
		if ((rc = eng_cuda_load(&cu, err)) != 0)
			return rc;
		*ops = is_dummy(&e->p) ? cu->dummy_ops : cu->ops;
		describe_gpu(cu, e->device, sizeof(e->device), e->p.tp_size);
		return gpu_pool_tokens(e, cu, cfg, pool, err);
	}
	return eng_error_set(err, ENG_E_DEVICE, NULL, 0,
			     "device %s is not available in this build", e->p.device);
}

static int open_compute_side(struct eng_infer *e, struct eng_error *err)
{
	const struct eng_model_config *cfg = eng_model_config(e->model);
	struct eng_backend_params bp = eng_backend_default_params();
	const struct eng_backend_ops *ops = NULL;
	int32_t stop[ENG_MAX_EOS + 1];
	int64_t pool = 0;
	int n_stop = 0, rc;

	eng_sched_default_params(&e->sp);
	e->sp.page_size = e->p.page_size;
	e->sp.chunked_prefill_size = e->p.chunked_prefill_size;
	e->sp.prefill_step_ratio = e->p.prefill_step_ratio;
	e->sp.max_running_requests = e->p.max_running_requests;
	e->sp.policy = e->p.policy;
	e->sp.disable_radix_cache = e->p.disable_radix_cache;
	e->sp.max_context = e->p.context_length > 0 && e->p.context_length < cfg->max_positions
			    ? e->p.context_length : cfg->max_positions;
	rc = pick_backend(e, &ops, &pool, err);
	if (rc != 0)
		return rc;
	if (pool / e->sp.page_size > INT32_MAX)
		pool = (int64_t)INT32_MAX * e->sp.page_size;
	e->sp.n_pages = (int32_t)((pool + e->sp.page_size - 1) / e->sp.page_size);
	bp.n_threads = e->p.n_threads;
	bp.page_size = e->sp.page_size;
	bp.n_pages = e->sp.n_pages;
	bp.cuda_graph_max_bs = e->p.cuda_graph_max_bs;
	bp.disable_cuda_graph = e->p.disable_cuda_graph;
	bp.tp_size = e->p.tp_size > 0 ? e->p.tp_size : 1;
	bp.kv_dtype = e->kv_dtype;
	bp.weight_fp8 = e->weight_fp8;
	rc = eng_backend_create(ops, e->model, &bp, &e->be, err);
	/* The roofline is a figure of the report, not a condition to run: a
	 * failed measurement leaves it out (rates 0, the records say null). */
	if (rc == 0 && eng_backend_roofline(e->be, &e->sp.roofline, err) != 0) {
		memset(&e->sp.roofline, 0, sizeof(e->sp.roofline));
		eng_error_clear(err);
	}
	if (rc == 0)
		rc = eng_stepper_create(e->be, cfg->vocab, &e->stepper, err);
	for (int i = 0; i < cfg->n_eos; i++)
		stop[n_stop++] = cfg->eos_ids[i];
	stop[n_stop++] = eng_chat_end_id(e->chat);
	if (rc == 0)
		rc = eng_runner_create(&e->sp, stop, n_stop, eng_stepper_step, e->stepper,
				       &e->runner, err);
	if (rc == 0 && ops == &eng_backend_cpu_ops)
		describe_cpu(e->device, sizeof(e->device), eng_backend_params(e->be)->n_threads);
	return rc;
}

int eng_infer_open(const struct eng_infer_params *p, struct eng_infer **out,
		   struct eng_error *err)
{
	struct eng_infer *e = calloc(1, sizeof(*e));
	double t0 = eng_mono_s();
	int rc;

	*out = NULL;
	if (!e)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	e->p = *p;
	rc = is_dummy(p) ? eng_model_load_config(p->model_dir, &e->model, err)
			 : eng_model_load(p->model_dir, &e->model, err);
	if (rc == 0)
		rc = open_text_side(e, err);
	if (rc == 0)
		rc = open_compute_side(e, err);
	if (rc != 0) {
		eng_infer_close(e);
		return rc;
	}
	e->load_time = eng_mono_s() - t0;
	*out = e;
	return 0;
}

/* The text side of an engine whose turns run elsewhere (a remote server,
 * a router's workers): params, tokenizer and chat template, and the
 * served model's shape for the run records where its config.json is at
 * hand (a tokenizer alone is enough).  what names the engine in the
 * error when there is no tokenizer. */
static int open_text_only(const struct eng_infer_params *p, const char *what,
			  struct eng_infer **out, struct eng_error *err)
{
	struct eng_infer *e = calloc(1, sizeof(*e));
	int rc;

	*out = NULL;
	if (!e)
		return eng_error_set(err, ENG_E_NOMEM, NULL, 0, "out of memory");
	e->p = *p;
	rc = p->tokenizer || p->model_dir ? open_text_side(e, err)
		: eng_error_set(err, ENG_E_INVALID, NULL, 0,
				"%s needs the model's tokenizer (--model or --tokenizer)", what);
	if (rc == 0 && eng_model_load_config(p->tokenizer ? p->tokenizer : p->model_dir, &e->model,
					     NULL) != 0)
		e->model = NULL;
	if (rc != 0) {
		eng_infer_close(e);
		return rc;
	}
	*out = e;
	return 0;
}

int eng_infer_open_remote(const struct eng_infer_params *p, const struct eng_remote_params *rp,
			  struct eng_infer **out, struct eng_error *err)
{
	double t0 = eng_mono_s();
	struct eng_infer *e;
	int rc = open_text_only(p, "a remote engine", &e, err);

	*out = NULL;
	if (rc != 0)
		return rc;
	rc = eng_remote_create(rp, e->tok, &eng_runner_callbacks, &e->remote, err);
	if (rc == 0) {
		snprintf(e->device, sizeof(e->device), "%s", eng_remote_url(e->remote));
		rc = eng_runner_create_exec(&eng_remote_ops, e->remote, &e->runner, err);
		if (rc != 0)
			e->remote = NULL; /* freed by eng_runner_create_exec */
	}
	if (rc != 0) {
		eng_infer_close(e);
		return rc;
	}
	e->load_time = eng_mono_s() - t0;
	*out = e;
	return 0;
}

/* What a router's fronts check requests against (e->sp: the HTTP front
 * refuses what cannot fit): the tightest context and KV pool its workers
 * reported, else the model's context and no pool bound. */
static void router_limits(struct eng_infer *e)
{
	int64_t ctx, pool;

	eng_router_limits(e->router, &ctx, &pool);
	if (ctx == 0)
		ctx = e->model ? eng_model_config(e->model)->max_positions : INT32_MAX;
	if (e->p.context_length > 0 && e->p.context_length < ctx)
		ctx = e->p.context_length;
	e->sp.max_context = ctx < INT32_MAX ? (int32_t)ctx : INT32_MAX;
	e->sp.page_size = 1;
	e->sp.n_pages = pool > 0 && pool < INT32_MAX ? (int32_t)pool : INT32_MAX;
}

int eng_infer_open_router(const struct eng_infer_params *ip, const struct eng_router_params *rp,
			  struct eng_infer **out, struct eng_error *err)
{
	struct eng_infer_params p = *ip;
	double t0 = eng_mono_s();
	struct eng_infer *e;
	int rc;

	*out = NULL;
	p.device = "router";
	if ((rc = open_text_only(&p, "a router", &e, err)) != 0)
		return rc;
	rc = eng_router_create(rp, e->tok, &eng_runner_callbacks, &e->router, err);
	if (rc == 0) {
		snprintf(e->device, sizeof(e->device), "router: %s over %d workers",
			 rp->policy, rp->n_workers);
		router_limits(e);
		rc = eng_runner_create_exec(&eng_router_ops, e->router, &e->runner, err);
		if (rc != 0)
			e->router = NULL; /* freed by eng_runner_create_exec */
	}
	if (rc != 0) {
		eng_router_free(e->router);
		eng_infer_close(e);
		return rc;
	}
	e->load_time = eng_mono_s() - t0;
	*out = e;
	return 0;
}

void eng_infer_close(struct eng_infer *e)
{
	if (!e)
		return;
	eng_runner_free(e->runner);
	eng_stepper_free(e->stepper);
	eng_backend_free(e->be);
	eng_chat_free(e->chat);
	eng_tokenizer_free(e->tok);
	eng_model_free(e->model);
	free(e);
}

int eng_infer_poll(struct eng_infer *e, double max_wait_s, struct eng_error *err)
{
	return eng_runner_poll(e->runner, max_wait_s, err);
}

void eng_infer_get_stats(const struct eng_infer *e, struct eng_sched_stats *st)
{
	eng_runner_get_stats(e->runner, st);
}

double eng_infer_load_time(const struct eng_infer *e)
{
	return e->load_time;
}

/* What the pages hold: "fp8_e4m3", "bf16", or auto's "fp32" on the CPU. */
static const char *kv_dtype_name(const struct eng_infer *e)
{
	if (e->kv_dtype == ENG_KV_DTYPE_FP8_E4M3)
		return "fp8_e4m3";
	return e->kv_dtype == ENG_KV_DTYPE_AUTO && strcmp(e->p.device, "cuda") ? "fp32" : "bf16";
}

/* Whether the checkpoint gave an FP8 cache's scales. */
static bool kv_scales_in_checkpoint(const struct eng_infer *e)
{
	const struct eng_model_weights *w = eng_model_weights(e->model);

	for (int l = 0; w->layers && l < eng_model_config(e->model)->n_layers; l++)
		if (w->layers[l].k_scale.data || w->layers[l].v_scale.data)
			return true;
	return false;
}

json_t *eng_infer_settings(const struct eng_infer *e)
{
	if (e->router) {
		json_t *j = eng_router_settings(e->router);

		json_object_set_new(j, "chat_template",
				    json_string(eng_chat_kind_name(eng_chat_kind(e->chat))));
		return j;
	}
	if (e->remote) {
		json_t *j = eng_remote_settings(e->remote);

		json_object_set_new(j, "chat_template", json_string(eng_chat_kind_name(eng_chat_kind(e->chat))));
		return j;
	}
	bool graphs = strcmp(e->p.device, "cuda") == 0 && !e->p.disable_cuda_graph &&
		      e->p.cuda_graph_max_bs > 0 && e->p.tp_size <= 1;
	json_t *s = json_pack("{s:s,s:s,s:f,s:i,s:i,s:I,s:i,s:f,s:i,s:i,s:s,s:b,s:b,s:i,s:i,s:s,s:s}",
			      "device", e->p.device, "load_format", e->p.load_format,
			      "mem_fraction_static", e->p.mem_fraction_static,
			      "page_size", e->sp.page_size,
			      "n_pages", e->sp.n_pages,
			      "max_total_tokens", (json_int_t)e->sp.n_pages * e->sp.page_size,
			      "chunked_prefill_size", e->sp.chunked_prefill_size,
			      "prefill_step_ratio", e->sp.prefill_step_ratio,
			      "max_running_requests", e->sp.max_running_requests,
			      "context_length", e->sp.max_context,
			      "schedule_policy", e->sp.policy == ENG_SCHED_POLICY_LPM ? "lpm" : "fcfs",
			      "radix_cache", !e->sp.disable_radix_cache,
			      "cuda_graph", graphs, "cuda_graph_max_bs", graphs ? e->p.cuda_graph_max_bs : 0,
			      "tp_size", e->p.tp_size > 0 ? e->p.tp_size : 1,
			      "chat_template", eng_chat_kind_name(eng_chat_kind(e->chat)),
			      "device_name", e->device);

	if (!s)
		return NULL;
	json_object_set_new(s, "kv_cache_dtype", json_string(kv_dtype_name(e)));
	json_object_set_new(s, "quantization", json_string(e->weight_fp8 ? "fp8" : "none"));
	json_object_set_new(s, "kv_cache_bytes",
			    json_integer((json_int_t)e->sp.n_pages * e->sp.page_size *
					 e->kv_token_bytes));
	if (e->kv_dtype == ENG_KV_DTYPE_FP8_E4M3)
		json_object_set_new(s, "kv_scales",
				    json_string(kv_scales_in_checkpoint(e) ? "checkpoint" : "1.0"));
	return s;
}
