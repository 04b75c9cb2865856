/*
 * bench-cuda.c: the CUDA backend's speed against ceilings measured in the
 * same run, on random weights of the real Qwen2.5-7B shape
 * (--load-format dummy: no weight files).
 *
 * Measured first: device-to-device copy bandwidth (bytes read + written)
 * and the cuBLAS bf16 GEMM rate at 8192^3.  Then, each as the median of
 * several runs of eng_cuda_forward (host wall clock around a call that
 * ends synchronized, so host overhead counts):
 *   decode, batch 1, 1k context    vs (weights read + KV read) / copy BW
 *   decode, batch 64, 2k context   vs max(bytes / BW, FLOPs / GEMM rate)
 *   decode, batch 16, 10k context  likewise (long agent contexts)
 *   prefill of one 4k prompt       vs FLOPs / GEMM rate
 * Weights read per decode step are all weights but the embedding table
 * (one row of it is read).  Decode reads KV pages filled with random
 * values by the dummy loader, so no prefill is needed to time it.
 *
 * The decode figures are taken with the forward replayed from CUDA graphs
 * and op by op.  Host overhead per decode step: the wall time of a step
 * through eng_cuda_forward (metadata built and sent, launches, copies
 * back, host work after the sync) against the device time of the step
 * (events around its device work), at batch 1 and 64, graphs on and off.
 *
 * Then the device time of each workload per op class (op by op).
 * Beside them, the ablations: b16 at 10k with the decode splits by count
 * (eng_cuda_splits_by_work(0)).
 *
 * Then a ragged decode batch (96 rows of 512 to 8k keys, op by op) with
 * the decode splits sized by the batch's keys and by count, and 64 such
 * rows (and 64 of 2k) through graphs whose splits go by count, aimed at
 * 1, 2 and 4 blocks an SM (eng_cuda_decode_blocks), then by work (the
 * default), each against its bytes ceiling.
 *
 * Then the KV cache's dtype: decode at batch 16 with 10k context and at
 * batch 64 with 2k, through graphs, on bf16 pages and on FP8 E4M3 pages
 * (--kv-cache-dtype fp8_e4m3: half the KV bytes), each against its bytes
 * ceiling (weights + KV, over the copy bandwidth measured above), the
 * speed-up against the speed-up the bytes model predicts, and the
 * attention alone (profiled, op by op) against the KV bytes / bandwidth.
 * The weights count in every step's bytes: with bf16 weights, halving the
 * KV bytes cannot give a step the 2x the attention gets.
 *
 * Then the prefill attention's split over the keys: extend steps of one
 * sequence of 512 new tokens and of four of 128, each on 10k cached
 * tokens, with the splits on and off (eng_cuda_prefill_split, the
 * ablation): step time, the attention's time (profiled), its causal
 * TFLOP/s and their share of the cuBLAS rate.
 *
 * Then the prefill attention alone (profiled, op by op) of a 4k prompt
 * on the warp-specialized wgmma kernel (the default), the first wgmma
 * kernel and the mma.sync kernel (eng_cuda_prefill_wgmma's ablations):
 * causal TFLOP/s, their share of the cuBLAS rate and the speed-ups.
 *
 * Then bf16 against FP8 weights (and FP8 weights with FP8 pages) on
 * decode b1, b16 at 10k and the 4k prefill, with the FP8 b1 step's
 * profile and its ablation (each product quantizing its own input,
 * eng_cuda_fuse_quant(0)), and FP8 b1 with the FP8 skinny products
 * keeping 8 loads in flight a lane against 4 (eng_cuda_skinny_wide),
 * and bf16 b1 with the skinny products at one warp a row and 4 loads
 * against the forms picked (eng_cuda_skinny_splits), and with SwiGLU
 * within the gate/up product's kernel against launched after it
 * (eng_cuda_skinny_glu).
 *
 * Then the weight-streaming products alone on the layer shapes (qkv,
 * o, gate/up, down) at m = 1 and 16: bf16 weights, the FP8 skinny
 * kernel and cuBLASLt FP8, each as device time a product (launches back
 * to back over 8 copies of the weights, so that they come from memory,
 * not L2), weight bytes a second and their share of the copy bandwidth;
 * and the bf16 skinny kernel at m = 1 by warps a row and loads a lane,
 * with its SwiGLU form on the gate/up shape.
 *
 * Last, tensor parallelism: decode at batch 1 with a 1k context and the
 * prefill of a 4k prompt at tp 1, 2 and 4 over GPUs device, device + 1,
 * ... (where the host has them and NCCL loads), op by op, with the
 * speed-up over tp 1 and the share of device time in the all-reduce
 * (events on rank 0's stream in a profiled run).  With one GPU, tp 2
 * with both ranks on it is run instead: it checks the path and shows the
 * cost of the extra launches, not a scaling.
 *
 * Usage: bench-cuda [device] [--no-pdl] [--kv-cache-dtype=auto|bf16|fp8_e4m3]
 * Prints a table; exit 3 without a GPU.  --no-pdl launches the kernels
 * without programmatic dependent launch (kn_set_pdl), for the ablation;
 * --kv-cache-dtype picks the pages of the main table (default bf16; the
 * dtype comparison runs both either way).
 */
#include <config.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/model_config.h"
#include "engine/cuda_backend.h"
#include "engine/kv_fp8.h"
#include "kernels/kn.h"

#define PAGE 16

static int kv_dtype = ENG_KV_DTYPE_AUTO;   /* of the main table */

static const char qwen7b_json[] =
	"{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":3584,"
	"\"intermediate_size\":18944,\"num_hidden_layers\":28,\"num_attention_heads\":28,"
	"\"num_key_value_heads\":4,\"vocab_size\":152064,\"max_position_embeddings\":32768,"
	"\"rope_theta\":1000000.0,\"rms_norm_eps\":1e-06,\"tie_word_embeddings\":false,"
	"\"hidden_act\":\"silu\",\"bos_token_id\":151643,\"eos_token_id\":151645}";

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(double), cmp_d);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int die_kn(const char *what)
{
	fprintf(stderr, "bench-cuda: %s: %s\n", what, kn_last_error());
	return 3;
}

/* Copy bandwidth in bytes/s: read + written bytes of 1 GiB copies. */
static int copy_bw(double *bw)
{
	size_t n = (size_t)1 << 30;
	void *a, *b;
	kn_event e0, e1;
	double t[10];
	float ms;

	if (kn_malloc(&a, n) || kn_malloc(&b, n) || kn_event_create(&e0) || kn_event_create(&e1) ||
	    kn_fill_random_bf16(a, n / 2, 1, 0, 1, NULL))
		return die_kn("copy bandwidth setup");
	for (int i = 0; i < 12; i++) {
		if (kn_event_record(e0, NULL) || kn_memcpy_d2d(b, a, n, NULL) ||
		    kn_event_record(e1, NULL) || kn_event_elapsed_ms(e0, e1, &ms))
			return die_kn("copy");
		if (i >= 2)
			t[i - 2] = ms * 1e-3;
	}
	*bw = 2.0 * n / median(t, 10);
	kn_free(a);
	kn_free(b);
	kn_event_destroy(e0);
	kn_event_destroy(e1);
	return 0;
}

/* bf16 GEMM rate in FLOP/s at m = n = k = 8192, bf16 output. */
static int gemm_rate(double *rate)
{
	size_t n = 8192, sz = n * n * 2;
	void *a, *b, *c;
	struct kn_gemm *g;
	kn_event e0, e1;
	double t[20];
	float ms;

	if (kn_malloc(&a, sz) || kn_malloc(&b, sz) || kn_malloc(&c, sz) ||
	    kn_gemm_create(&g, NULL) || kn_event_create(&e0) || kn_event_create(&e1) ||
	    kn_fill_random_bf16(a, n * n, 2, 0, 1, NULL) ||
	    kn_fill_random_bf16(b, n * n, 3, 0, 1, NULL))
		return die_kn("gemm setup");
	for (int i = 0; i < 23; i++) {
		if (kn_event_record(e0, NULL) ||
		    kn_gemm_bf16(g, c, 0, (int)n, a, b, (int)n, (int)n, (int)n) ||
		    kn_event_record(e1, NULL) || kn_event_elapsed_ms(e0, e1, &ms))
			return die_kn("gemm");
		if (i >= 3)
			t[i - 3] = ms * 1e-3;
	}
	*rate = 2.0 * n * n * n / median(t, 20);
	kn_gemm_free(g);
	kn_free(a);
	kn_free(b);
	kn_free(c);
	kn_event_destroy(e0);
	kn_event_destroy(e1);
	return 0;
}

struct shape {
	double lin_flops;    /* per token, projections of all layers */
	double head_flops;   /* per LM-head row */
	double attn_flops;   /* per (query, key) pair over all layers and heads */
	double weight_read;  /* bytes of weights a decode step reads */
	double kv_token;     /* bytes of K and V per cached token */
};

/* kv_elem: bytes of a cached K or V element (2 bf16, 1 fp8). */
static struct shape shape_of(const struct eng_model_config *c, size_t weight_bytes, int kv_elem)
{
	double H = c->hidden, I = c->intermediate, L = c->n_layers, hd = c->head_dim;
	double qd = c->n_heads * hd, qkv = (c->n_heads + 2.0 * c->n_kv_heads) * hd;
	struct shape s;

	s.lin_flops = 2 * L * (H * qkv + qd * H + 2 * I * H + I * H);
	s.head_flops = 2.0 * c->vocab * H;
	s.attn_flops = 4 * hd * c->n_heads * L;
	s.weight_read = (double)weight_bytes - 2.0 * c->vocab * H;
	s.kv_token = 2.0 * L * c->n_kv_heads * hd * kv_elem;
	return s;
}

/* A workload of steps: batch sequences of n_new new tokens each from
 * position start; decode (n_new 1) moves on a token a step, longer chunks
 * run at the same positions every step. */
struct work {
	int batch, start, n_new;
	int start_hi;   /* > start: decode rows' positions spread evenly up to it */
};

/* Median seconds (wall, and device when dev is set) of n_steps forwards
 * of workload w. */
static int time_work(void *st, const struct work *w, int n_steps, int32_t *tables, int per_seq,
		     double *out, double *dev)
{
	struct eng_seq_input *q = calloc(w->batch, sizeof(*q));
	int32_t *tok = malloc(sizeof(int32_t) * w->batch * w->n_new), *next = malloc(w->batch * 4);
	double t[32], d[32];
	struct eng_error err;
	int rc = 0;

	for (int i = 0; i < w->batch * w->n_new; i++)
		tok[i] = (i * 7919 + 13) % 151000;
	for (int k = 0; k < n_steps + 2 && !rc; k++) {
		for (int s = 0; s < w->batch; s++) {
			int at = w->start_hi > w->start && w->batch > 1
					 ? w->start + (int)((int64_t)(w->start_hi - w->start) * s /
							    (w->batch - 1))
					 : w->start;

			q[s] = (struct eng_seq_input){ tok + s * w->n_new, w->n_new,
						       at + (w->n_new == 1 ? k : 0),
						       tables + s * per_seq, per_seq, NULL, NULL,
						       NULL };
		}
		struct eng_batch b = { w->batch, q };
		double t0 = now_s();

		if ((rc = eng_cuda_forward(st, &b, next, &err)))
			fprintf(stderr, "bench-cuda: forward: %s\n", err.msg);
		if (k >= 2) {
			t[k - 2] = now_s() - t0;
			if (eng_cuda_step_device_ms(st, &d[k - 2]))
				d[k - 2] = 0;
			d[k - 2] *= 1e-3;
		}
	}
	*out = rc ? 0 : median(t, n_steps);
	if (dev)
		*dev = rc ? 0 : median(d, n_steps);
	free(q);
	free(tok);
	free(next);
	return rc ? 3 : 0;
}

/* Median seconds of n_steps forwards of batch sequences at context ctx:
 * decode (one new token each) or one prefill chunk of ctx tokens. */
static int time_steps_dev(void *st, int batch, int ctx, int prefill, int n_steps,
			  int32_t *tables, int per_seq, double *out, double *dev)
{
	struct work w = { batch, prefill ? 0 : ctx, prefill ? ctx : 1, 0 };

	return time_work(st, &w, n_steps, tables, per_seq, out, dev);
}

/* The ceiling of a decode step of rows rows reading keys cached tokens in
 * all: max(bytes / bw, FLOPs / rate). */
static double decode_ceil(const struct shape *s, double bw, double rate, int rows, double keys)
{
	return fmax((s->weight_read + keys * s->kv_token) / bw,
		    (rows * (s->lin_flops + s->head_flops) + keys * s->attn_flops) / rate);
}

static void row(const char *fig, double got_s, double ceil_s, const char *extra)
{
	printf("%-30s %10.3f ms %10.3f ms %7.1f%%  %s\n", fig, got_s * 1e3, ceil_s * 1e3,
	       100.0 * ceil_s / got_s, extra);
}

static int time_steps(void *st, int batch, int ctx, int prefill, int n_steps, int32_t *tables,
		      int per_seq, double *out)
{
	return time_steps_dev(st, batch, ctx, prefill, n_steps, tables, per_seq, out, NULL);
}

/* Wall vs device time per decode step, graphs on and off.  The host
 * work of a step is the wall time past its device time; launching op by
 * op also leaves the GPU idle between ops, which shows as device time
 * over that of the graph replay: both are printed. */
static int host_overhead(void *st, int32_t *tables, int per)
{
	static const int batch[2] = { 1, 64 }, ctx[2] = { 1024, 2048 };
	double wall[2][2], dev[2][2];
	char fig[64], buf[200];
	int rc = 0;

	for (int g = 1; g >= 0 && !rc; g--)
		for (int i = 0; i < 2 && !rc; i++) {
			eng_cuda_use_graphs(st, g);
			rc = time_steps_dev(st, batch[i], ctx[i], 0, 20, tables, per, &wall[g][i],
					    &dev[g][i]);
		}
	eng_cuda_use_graphs(st, 1);
	if (rc)
		return rc;
	printf("\nhost overhead per decode step (wall time through the API vs device time of "
	       "the step):\n%-30s %13s %13s %8s\n", "figure", "wall", "device", "ratio");
	for (int g = 1; g >= 0; g--)
		for (int i = 0; i < 2; i++) {
			double w = wall[g][i], d = dev[g][i], r = dev[1][i];

			snprintf(fig, sizeof(fig), "b%d, %dk ctx, graphs %s", batch[i], ctx[i] / 1024,
				 g ? "on" : "off");
			snprintf(buf, sizeof(buf), "host %.2f%% (%.3f ms); wall over graph replay's "
				 "device time %.1f%%%s", 100 * (w - d) / d, (w - d) * 1e3,
				 100 * (w - r) / r, (w - r) / r < 0.05 ? "" : " (over 5%)");
			row(fig, w, d, buf);
		}
	return 0;
}

/* Where the time of one workload goes, op class by op class. */
static int profile(void *st, const char *what, int batch, int ctx, int prefill,
		   int32_t *tables, int per)
{
	struct eng_error err;
	double t;
	int rc;

	if (eng_cuda_profile(st, 1, &err)) {
		fprintf(stderr, "bench-cuda: profile: %s\n", err.msg);
		return 3;
	}
	rc = time_steps(st, batch, ctx, prefill, 3, tables, per, &t);
	printf("%s:\n", what);
	eng_cuda_profile_print(st, stdout);
	eng_cuda_profile(st, 0, &err);
	return rc;
}

/* The Qwen2.5-7B config the benchmark runs (2 on a parse failure). */
static int qwen7b_config(struct eng_model_config *cfg)
{
	json_t *root = json_loads(qwen7b_json, 0, NULL);
	struct eng_error err;
	int rc = !root || eng_config_parse(root, "qwen2.5-7b", cfg, &err);

	if (rc)
		fprintf(stderr, "bench-cuda: config: %s\n", root ? err.msg : "bad json");
	json_decref(root);
	return rc ? 2 : 0;
}

/* nb block tables of per pages each, page i at index i. */
static int32_t *page_tables(int per, int nb)
{
	int32_t *t = malloc(sizeof(int32_t) * per * nb);

	for (int i = 0; t && i < per * nb; i++)
		t[i] = i;
	return t;
}

/* A dummy-weight state of cfg on device with n_pages pages of K and V in
 * kv (enum eng_kv_dtype), FP8 linear layers when wfp8 (3 on a failure). */
static int create_dummy(const struct eng_model_config *cfg, int device, int kv, int wfp8,
			int n_pages, void **st)
{
	struct eng_backend_params p = eng_backend_default_params();
	struct eng_error err;

	p.page_size = PAGE;
	p.n_pages = n_pages;
	p.device = device;
	p.kv_dtype = kv;
	p.weight_fp8 = wfp8;
	if (eng_cuda_create(cfg, NULL, 1, &p, st, &err)) {
		fprintf(stderr, "bench-cuda: create: %s\n", err.msg);
		return 3;
	}
	return 0;
}

static int run_model(int device, double bw, double rate)
{
	struct eng_model_config cfg;
	int per = 4160 / PAGE, nb = 64, rc;
	int32_t *tables;
	double d1, d64, d16, d16c, pf, g1, g64, g16, t0 = now_s();
	char buf[160];
	void *st;

	if ((rc = qwen7b_config(&cfg)))
		return rc;
	tables = page_tables(per, nb);
	if ((rc = create_dummy(&cfg, device, kv_dtype, 0, per * nb, &st))) {
		free(tables);
		return rc;
	}
	struct shape s = shape_of(&cfg, eng_cuda_weight_bytes(st),
				  kv_dtype == ENG_KV_DTYPE_FP8_E4M3 ? 1 : 2);

	printf("qwen2.5-7b dummy weights: %.2f GB on %s, created in %.1f s, KV pool %.2f GB (%s)\n",
	       eng_cuda_weight_bytes(st) / 1e9, eng_cuda_device_name(st), now_s() - t0,
	       s.kv_token * per * nb * PAGE / 1e9,
	       kv_dtype == ENG_KV_DTYPE_FP8_E4M3 ? "fp8_e4m3" : "bf16");
	eng_cuda_use_graphs(st, 0);
	if ((rc = time_steps(st, 1, 1024, 0, 20, tables, per, &d1)) ||
	    (rc = time_steps(st, 64, 2048, 0, 10, tables, per, &d64)) ||
	    (rc = time_steps(st, 16, 10240, 0, 10, tables, 4 * per, &d16))) {
		eng_cuda_destroy(st);
		return rc;
	}
	/* the ablation: decode splits by count */
	eng_cuda_splits_by_work(st, 0);
	rc = time_steps(st, 16, 10240, 0, 10, tables, 4 * per, &d16c);
	eng_cuda_splits_by_work(st, 1);
	if (rc) {
		eng_cuda_destroy(st);
		return rc;
	}
	eng_cuda_use_graphs(st, 1);
	if ((rc = time_steps(st, 1, 1024, 0, 20, tables, per, &g1)) ||
	    (rc = time_steps(st, 64, 2048, 0, 10, tables, per, &g64)) ||
	    (rc = time_steps(st, 16, 10240, 0, 10, tables, 4 * per, &g16)) ||
	    (rc = time_steps(st, 1, 4096, 1, 3, tables, per, &pf))) {
		eng_cuda_destroy(st);
		return rc;
	}
	printf("\n%-30s %13s %13s %8s\n", "figure", "measured", "ceiling", "ratio");
	double b1 = (s.weight_read + 1024 * s.kv_token) / bw;
	snprintf(buf, sizeof(buf), "%.1f tok/s; bytes/BW", 1 / d1);
	row("decode b1, 1k context", d1, b1, buf);
	snprintf(buf, sizeof(buf), "%.1f tok/s; bytes/BW; %d graphs held", 1 / g1,
		 eng_cuda_graph_count(st));
	row("decode b1, 1k, graphs", g1, b1, buf);
	double by64 = s.weight_read + 64.0 * 2048 * s.kv_token;
	double fl64 = 64 * (s.lin_flops + s.head_flops) + 64.0 * 2048 * s.attn_flops;
	snprintf(buf, sizeof(buf), "%.0f tok/s; max(%.2f ms bytes, %.2f ms flops)", 64 / d64,
		 by64 / bw * 1e3, fl64 / rate * 1e3);
	row("decode b64, 2k context", d64, by64 / bw > fl64 / rate ? by64 / bw : fl64 / rate, buf);
	snprintf(buf, sizeof(buf), "%.0f tok/s", 64 / g64);
	row("decode b64, 2k, graphs", g64, by64 / bw > fl64 / rate ? by64 / bw : fl64 / rate, buf);
	double by16 = s.weight_read + 16.0 * 10240 * s.kv_token;
	double fl16 = 16 * (s.lin_flops + s.head_flops) + 16.0 * 10240 * s.attn_flops;
	double c16 = by16 / bw > fl16 / rate ? by16 / bw : fl16 / rate;
	snprintf(buf, sizeof(buf), "%.0f tok/s; max(%.2f ms bytes, %.2f ms flops)", 16 / d16,
		 by16 / bw * 1e3, fl16 / rate * 1e3);
	row("decode b16, 10k context", d16, c16, buf);
	snprintf(buf, sizeof(buf), "%.0f tok/s; the decode splits by count", 16 / d16c);
	row("decode b16, 10k, ablation", d16c, c16, buf);
	snprintf(buf, sizeof(buf), "%.0f tok/s", 16 / g16);
	row("decode b16, 10k, graphs", g16, c16, buf);
	double flp = 4096 * s.lin_flops + s.head_flops + 4096.0 * 4097 / 2 * s.attn_flops;
	snprintf(buf, sizeof(buf), "%.0f tok/s; %.1f TFLOP (attention %.1f)", 4096 / pf,
		 flp / 1e12, 4096.0 * 4097 / 2 * s.attn_flops / 1e12);
	row("prefill 4k prompt", pf, flp / rate, buf);
	rc = host_overhead(st, tables, per);
	printf("\ndevice time per op class (events after every op, so a little slower):\n");
	if (!rc)
		rc = profile(st, "decode b1, 1k context", 1, 1024, 0, tables, per);
	if (!rc)
		rc = profile(st, "decode b64, 2k context", 64, 2048, 0, tables, per);
	if (!rc)
		rc = profile(st, "prefill 4k prompt", 1, 4096, 1, tables, per);
	eng_cuda_destroy(st);
	free(tables);
	return rc;
}

/* ---------------------------------------------------------------- ragged */

/* A decode batch of 96 rows whose contexts spread from 512 to 8k keys, as
 * agents' conversations do, op by op (past the graphs' 64 rows): the
 * decode splits sized by the batch's keys against by count (the ablation),
 * each against the bytes ceiling (weights + every row's K and V). */
static int ragged_decode(int device, double bw, double rate)
{
	struct eng_model_config cfg;
	int batch = 96, lo = 512, hi = 8192, per = (8192 + 64) / PAGE + 1, rc;
	int32_t *tables;
	double t_work, t_count, t_graph[4], t_uni[4], keys = 0, keys64 = 0;
	void *st;

	if ((rc = qwen7b_config(&cfg)))
		return rc;
	tables = page_tables(per, batch);
	if ((rc = create_dummy(&cfg, device, kv_dtype, 0, per * batch, &st))) {
		free(tables);
		return rc;
	}
	struct shape s = shape_of(&cfg, eng_cuda_weight_bytes(st),
				  kv_dtype == ENG_KV_DTYPE_FP8_E4M3 ? 1 : 2);

	for (int r = 0; r < batch; r++)
		keys += lo + (double)(hi - lo) * r / (batch - 1);
	struct work rag = { batch, lo, 1, hi }, rag64 = { 64, lo, 1, hi };

	rc = time_work(st, &rag, 10, tables, per, &t_work, NULL);
	eng_cuda_splits_by_work(st, 0);
	if (!rc)
		rc = time_work(st, &rag, 10, tables, per, &t_count, NULL);
	/* graphs (64 rows): their splits by count aimed at 1, 2, 4 blocks an
	 * SM, then by work (the default) */
	for (int k = 0; k < 4 && !rc; k++) {
		eng_cuda_splits_by_work(st, k == 3);
		eng_cuda_decode_blocks(st, k == 3 ? 0 : 1 << k);
		rc = time_work(st, &rag64, 10, tables, per, &t_graph[k], NULL);
		if (!rc)
			rc = time_steps(st, 64, 2048, 0, 10, tables, per, &t_uni[k]);
	}
	eng_cuda_destroy(st);
	free(tables);
	if (rc)
		return rc;
	double c = decode_ceil(&s, bw, rate, batch, keys);

	printf("\nragged decode, %d rows of %d to %d keys (%.0f in all), op by op:\n", batch, lo,
	       hi, keys);
	row("splits sized by the keys", t_work, c, "");
	row("splits by count (ablation)", t_count, c, "");
	for (int r = 0; r < 64; r++)
		keys64 += lo + (double)(hi - lo) * r / 63;
	c = decode_ceil(&s, bw, rate, 64, keys64);
	double cu = decode_ceil(&s, bw, rate, 64, 64.0 * 2048);
	char fig[64];

	printf("graphs, 64 rows: ragged (%d to %d keys) and uniform (2k), splits by count aimed "
	       "at n blocks an SM (ablation), then by work:\n", lo, hi);
	for (int k = 0; k < 4; k++) {
		if (k < 3)
			snprintf(fig, sizeof(fig), "ragged, by count, n = %d", 1 << k);
		else
			snprintf(fig, sizeof(fig), "ragged, by work");
		row(fig, t_graph[k], c, "");
		if (k < 3)
			snprintf(fig, sizeof(fig), "uniform 2k, by count, n = %d", 1 << k);
		else
			snprintf(fig, sizeof(fig), "uniform 2k, by work");
		row(fig, t_uni[k], cu, "");
	}
	return 0;
}

/* ---------------------------------------------------------------- kv dtype */

/* One KV dtype's figures: seconds per decode step through graphs (b16 at
 * 10k, b64 at 2k) and the attention's device time per step (profiled). */
struct kv_fig {
	double b16, b64, a16, a64;
};

/* The attention's mean device time per step of a workload (profiled). */
static int attn_time(void *st, const struct work *w, int32_t *tables, int per, double *t)
{
	struct eng_error err;
	double wall, ms, share;
	int rc;

	if (eng_cuda_profile(st, 1, &err))
		return 3;
	rc = time_work(st, w, 3, tables, per, &wall, NULL);
	if (!rc && eng_cuda_profile_class(st, "attention", &ms, &share))
		rc = 3;
	*t = ms * 1e-3;
	eng_cuda_profile(st, 0, &err);
	return rc;
}

static int kv_figures(const struct eng_model_config *cfg, int device, int dtype, int32_t *tables,
		      int per, int nb, struct kv_fig *f, size_t *weight_bytes)
{
	struct work w16 = { 16, 10240, 1, 0 }, w64 = { 64, 2048, 1, 0 };
	void *st;
	int rc;

	if ((rc = create_dummy(cfg, device, dtype, 0, per * nb, &st)))
		return rc;
	*weight_bytes = eng_cuda_weight_bytes(st);
	if (!(rc = time_steps(st, 16, 10240, 0, 10, tables, 4 * per, &f->b16)) &&
	    !(rc = time_steps(st, 64, 2048, 0, 10, tables, per, &f->b64)) &&
	    !(rc = attn_time(st, &w16, tables, 4 * per, &f->a16)))
		rc = attn_time(st, &w64, tables, per, &f->a64);
	eng_cuda_destroy(st);
	return rc;
}

/* One decode workload on both dtypes: step time, tok/s and share of the
 * bytes ceiling of each, the speed-up and the bytes model's. */
static void kv_row(const char *fig, int batch, double t16, double t8, double c16, double c8)
{
	printf("%-24s %8.2f ms %6.0f tok/s %5.1f%%  %8.2f ms %6.0f tok/s %5.1f%%  %5.2fx  %5.2fx\n",
	       fig, t16 * 1e3, batch / t16, 100 * c16 / t16, t8 * 1e3, batch / t8, 100 * c8 / t8,
	       t16 / t8, c16 / c8);
}

static void kv_attn_row(const char *fig, double t16, double t8, double kv16)
{
	printf("%-24s %8.2f ms %12s %5.1f%%  %8.2f ms %12s %5.1f%%  %5.2fx  %5.2fx\n", fig,
	       t16 * 1e3, "", 100 * kv16 / t16, t8 * 1e3, "", 100 * kv16 / 2 / t8, t16 / t8, 2.0);
}

/* bf16 against fp8_e4m3 pages on the decode workloads where KV bytes
 * weigh: b16 at 10k context (the KV-bound figure) and b64 at 2k. */
static int kv_compare(int device, double bw, double rate)
{
	struct eng_model_config cfg;
	int per = 4160 / PAGE, nb = 64, rc;
	int32_t *tables;
	struct kv_fig f16, f8;
	size_t wb = 0;

	if ((rc = qwen7b_config(&cfg)))
		return rc;
	tables = page_tables(per, nb);
	if ((rc = kv_figures(&cfg, device, ENG_KV_DTYPE_BF16, tables, per, nb, &f16, &wb)) ||
	    (rc = kv_figures(&cfg, device, ENG_KV_DTYPE_FP8_E4M3, tables, per, nb, &f8, &wb))) {
		free(tables);
		return rc;
	}
	struct shape s16 = shape_of(&cfg, wb, 2), s8 = shape_of(&cfg, wb, 1);
	double kv16_16 = 16.0 * 10240 * s16.kv_token, kv16_64 = 64.0 * 2048 * s16.kv_token;
	double c16_16 = decode_ceil(&s16, bw, rate, 16, 16.0 * 10240);
	double c8_16 = decode_ceil(&s8, bw, rate, 16, 16.0 * 10240);
	double c16_64 = decode_ceil(&s16, bw, rate, 64, 64.0 * 2048);
	double c8_64 = decode_ceil(&s8, bw, rate, 64, 64.0 * 2048);

	printf("\nKV cache pages, bf16 vs fp8_e4m3 (decode through graphs; %% of the bytes "
	       "ceiling: weights %.2f GB + KV, over %.0f GB/s; attention op by op against its KV "
	       "bytes alone):\n%-24s %31s  %31s  %6s  %6s\n", s16.weight_read / 1e9, bw / 1e9,
	       "figure", "bf16", "fp8_e4m3", "speed", "bytes");
	kv_row("decode b16, 10k context", 16, f16.b16, f8.b16, c16_16, c8_16);
	kv_row("decode b64, 2k context", 64, f16.b64, f8.b64, c16_64, c8_64);
	kv_attn_row("attention b16, 10k", f16.a16, f8.a16, kv16_16 / bw);
	kv_attn_row("attention b64, 2k", f16.a64, f8.a64, kv16_64 / bw);
	printf("target: KV-bound decode (b16, 10k) >= 1.7x bf16 tok/s; the bytes model gives "
	       "%.2fx with bf16 weights (%.2f GB of weights and %.2f GB of KV a step in bf16), "
	       "%.2fx for the attention alone\n", c16_16 / c8_16, s16.weight_read / 1e9,
	       kv16_16 / 1e9, 2.0);
	free(tables);
	return 0;
}

/* ---------------------------------------------------------------- prefill splits */

/* Extend steps of short chunks on long cached prefixes (multi-turn agent
 * replays), with the prefill attention's key splits on and off (the
 * ablation): the step's time and its attention's (profiled, op by op),
 * attention TFLOP/s (causal: 4 head_dim n_heads per (query, key) pair and
 * layer) against the cuBLAS rate, and the splits the backend takes. */
static int split_compare(int device, double rate)
{
	static const struct work works[3] = {
		{ 1, 10240, 512, 0 }, { 4, 10240, 128, 0 }, { 1, 10240, 128, 0 },
	};
	struct eng_model_config cfg;
	int per = (10240 + 512) / PAGE, rc = 0;
	int32_t *tables;
	void *st;

	if ((rc = qwen7b_config(&cfg)))
		return rc;
	tables = page_tables(per, 4);
	if ((rc = create_dummy(&cfg, device, ENG_KV_DTYPE_BF16, 0, per * 4, &st))) {
		free(tables);
		return rc;
	}
	struct shape s = shape_of(&cfg, eng_cuda_weight_bytes(st), 2);

	printf("\nprefill attention split over the keys, extend steps on 10k cached tokens "
	       "(attention op by op; %% of the bf16 GEMM rate %.0f TFLOP/s):\n%-26s %6s %10s "
	       "%10s %8s %6s\n", rate / 1e12, "figure", "splits", "step", "attention", "TFLOP/s",
	       "rate");
	for (int i = 0; i < 3 && !rc; i++) {
		const struct work *w = &works[i];
		double n = w->n_new;
		double fl = s.attn_flops * w->batch * (n * w->start + n * (n + 1) / 2);

		for (int on = 1; on >= 0 && !rc; on--) {
			struct eng_seq_input q[4];
			struct eng_batch b = { w->batch, q };
			double step, attn;
			char fig[64];

			for (int k = 0; k < w->batch; k++)
				q[k] = (struct eng_seq_input){ NULL, w->n_new, w->start,
							       tables + k * per, per, NULL, NULL,
							       NULL };
			eng_cuda_prefill_split(st, on);
			if ((rc = time_work(st, w, 5, tables, per, &step, NULL)) ||
			    (rc = attn_time(st, w, tables, per, &attn)))
				break;
			snprintf(fig, sizeof(fig), "%d x %d on 10k, split %s", w->batch, w->n_new,
				 on ? "on" : "off");
			printf("%-26s %6d %7.2f ms %7.2f ms %8.1f %5.1f%%\n", fig,
			       eng_cuda_prefill_splits(st, &b), step * 1e3, attn * 1e3,
			       fl / attn / 1e12, 100 * fl / attn / rate);
		}
	}
	eng_cuda_destroy(st);
	free(tables);
	return rc;
}

/* The prefill attention of one 4k prompt (causal: 4 head_dim n_heads
 * per (query, key) pair and layer, 4096 * 4097 / 2 pairs), op by op, on
 * the warp-specialized wgmma kernel, the first wgmma kernel and the
 * mma.sync one (t[form], form as eng_cuda_prefill_wgmma takes it): time,
 * TFLOP/s, share of the cuBLAS rate measured in the same run, and the
 * speed-up of the first over the others. */
static int wg_compare(int device, double rate)
{
	static const struct work w = { 1, 0, 4096, 0 };
	struct eng_model_config cfg;
	int per = 4160 / PAGE, rc;
	int32_t *tables;
	double t[3];
	void *st;

	if ((rc = qwen7b_config(&cfg)))
		return rc;
	tables = page_tables(per, 1);
	if ((rc = create_dummy(&cfg, device, ENG_KV_DTYPE_BF16, 0, per, &st))) {
		free(tables);
		return rc;
	}
	struct shape s = shape_of(&cfg, eng_cuda_weight_bytes(st), 2);
	double fl = s.attn_flops * 4096.0 * 4097 / 2;
	int wg = eng_cuda_prefill_wgmma_used(st);

	for (int form = ENG_CUDA_WGMMA_WS; form >= 0 && !rc; form--) {
		eng_cuda_prefill_wgmma(st, form);
		rc = attn_time(st, &w, tables, per, &t[form]);
	}
	eng_cuda_prefill_wgmma(st, ENG_CUDA_WGMMA_WS);
	if (!rc) {
		printf("\nprefill attention of a 4k prompt (op by op; %% of the bf16 GEMM rate %.0f "
		       "TFLOP/s):\n%-30s %10s %8s %6s\n", rate / 1e12, "figure", "attention",
		       "TFLOP/s", "rate");
		printf("%-30s %7.2f ms %8.1f %5.1f%%%s\n", "wgmma, warp-specialized", t[2] * 1e3,
		       fl / t[2] / 1e12, 100 * fl / t[2] / rate,
		       wg ? "" : "  (not taken here: mma.sync)");
		printf("%-30s %7.2f ms %8.1f %5.1f%%  warp-specialized %.2fx\n",
		       "wgmma, first (ablation)", t[1] * 1e3, fl / t[1] / 1e12,
		       100 * fl / t[1] / rate, t[1] / t[2]);
		printf("%-30s %7.2f ms %8.1f %5.1f%%  warp-specialized %.2fx, first %.2fx\n",
		       "mma.sync (ablation)", t[0] * 1e3, fl / t[0] / 1e12, 100 * fl / t[0] / rate,
		       t[0] / t[2], t[0] / t[1]);
	}
	eng_cuda_destroy(st);
	free(tables);
	return rc;
}

/* ---------------------------------------------------------------- skinny products */

#define SP_COPIES 8   /* weight copies cycled through: 8 layers' overflow L2 */
#define SP_ITERS 400  /* launches timed, back to back */

/* The products of one Qwen2.5-7B layer at decode. */
static const struct sp_shape {
	const char *name;
	int n, k;
} sp_shapes[] = {
	{ "qkv", 4608, 3584 }, { "o", 3584, 3584 }, { "gate/up", 37888, 3584 },
	{ "down", 3584, 18944 },
};

/* The products timed; SP_GLU (bf16 gate/up with SwiGLU) only as a form. */
enum { SP_BF16, SP_SKINNY, SP_LT, SP_PATHS, SP_GLU = SP_PATHS };

/* One shape's operands on the device. */
struct sp_bufs {
	uint16_t *wb;   /* (SP_COPIES, n, k) bf16 */
	uint8_t *w8;    /* (SP_COPIES, n, k) E4M3 */
	float *ws;      /* (n) row scales, shared by the copies */
	uint16_t *x;    /* (16, k) bf16 */
	uint8_t *xq;    /* (16, k) x quantized by rows */
	float *xs;      /* (16) */
	uint16_t *y;    /* (16, n) bf16 */
};

static void sp_free(struct sp_bufs *b)
{
	kn_free(b->wb), kn_free(b->w8), kn_free(b->ws);
	kn_free(b->x), kn_free(b->xq), kn_free(b->xs), kn_free(b->y);
}

static int sp_alloc(struct sp_bufs *b, int n, int k)
{
	size_t nk = (size_t)n * k;

	memset(b, 0, sizeof(*b));
	if (kn_malloc((void **)&b->wb, SP_COPIES * nk * 2) ||
	    kn_malloc((void **)&b->w8, SP_COPIES * nk) || kn_malloc((void **)&b->ws, n * 4) ||
	    kn_malloc((void **)&b->x, 16 * k * 2) || kn_malloc((void **)&b->xq, 16 * k) ||
	    kn_malloc((void **)&b->xs, 16 * 4) || kn_malloc((void **)&b->y, 16 * n * 2) ||
	    kn_fill_random_bf16(b->wb, SP_COPIES * nk, 11, 0, 0.02f, NULL) ||
	    kn_fill_random_slice_e4m3(b->w8, SP_COPIES * (size_t)n, k, k, 0, 0, 12, 0, 64, NULL) ||
	    kn_fill_random_f32(b->ws, n, 13, 1e-3f, 0, NULL) ||
	    kn_fill_random_bf16(b->x, 16 * (size_t)k, 14, 0, 1, NULL) ||
	    kn_quant_rows_e4m3(b->xq, b->xs, b->x, 16, k, NULL)) {
		sp_free(b);
		return die_kn("skinny products setup");
	}
	return 0;
}

/* One product of path, m rows, on weight copy c: bf16 as kn_gemm_bf16
 * picks, or with form > 0 the skinny kernel on that kn_gemm_skinny_bf16
 * path (SP_GLU: SwiGLU's kernel on it, n / 2 outputs). */
static int sp_run(struct kn_gemm *g, const struct sp_bufs *b, int path, int form, int m, int n,
		  int k, int c)
{
	static const int fp8_path[SP_PATHS] = { 0, KN_FP8_SKINNY, KN_FP8_CUBLASLT };
	size_t nk = (size_t)n * k;

	if (path == SP_GLU)
		return kn_gemm_skinny_glu_bf16(b->y, b->x, b->wb + c * nk, NULL, m, n / 2, k, form,
					       NULL);
	if (path != SP_BF16)
		return kn_gemm_fp8_q(g, b->y, 0, n, b->xq, b->xs, b->w8 + c * nk, b->ws, m, n, k,
				     fp8_path[path]);
	if (form)
		return kn_gemm_skinny_bf16(b->y, 0, n, b->x, b->wb + c * nk, m, n, k, form, NULL);
	return kn_gemm_bf16(g, b->y, 0, n, b->x, b->wb + c * nk, m, n, k);
}

/* Mean device seconds of a product over SP_ITERS launches (one untimed
 * round over the copies first: plans, picks, clocks). */
static int sp_time(struct kn_gemm *g, const struct sp_bufs *b, int path, int form, int m, int n,
		   int k, kn_event e0, kn_event e1, double *s)
{
	float ms;

	for (int i = 0; i < SP_COPIES; i++)
		if (sp_run(g, b, path, form, m, n, k, i))
			return die_kn("skinny product");
	if (kn_event_record(e0, NULL))
		return die_kn("event");
	for (int i = 0; i < SP_ITERS; i++)
		if (sp_run(g, b, path, form, m, n, k, i % SP_COPIES))
			return die_kn("skinny product");
	if (kn_event_record(e1, NULL) || kn_event_elapsed_ms(e0, e1, &ms))
		return die_kn("event");
	*s = ms * 1e-3 / SP_ITERS;
	return 0;
}

/* The bf16 skinny kernel (or with glu its SwiGLU form) at m = 1 on b's
 * shape: 1, 2 and 4 warps a row at 4 and 8 loads in flight a lane; then
 * (not glu) the FP8 one at 4 and 8 (kn_skinny_wide); as % of the copy
 * bandwidth (of each one's weight bytes). */
static int sp_forms(struct kn_gemm *g, const struct sp_bufs *b, int n, int k, int glu,
		    kn_event e0, kn_event e1, double bw)
{
	double t;
	int rc = 0;

	for (int loads8 = 0; loads8 < 2 && !rc; loads8++)
		for (int split = 1; split <= 4 && !rc; split *= 2)
			if (!(rc = sp_time(g, b, glu ? SP_GLU : SP_BF16,
					   split | (loads8 ? KN_SKINNY_LOADS8 : 0), 1, n, k, e0, e1,
					   &t)))
				printf("  %7.2f us %5.1f%%", t * 1e6, 100 * 2.0 * n * k / t / bw);
	for (int wide = 0; wide < 2 && !rc && !glu; wide++) {
		kn_skinny_wide(wide);
		if (!(rc = sp_time(g, b, SP_SKINNY, 0, 1, n, k, e0, e1, &t)))
			printf("  %7.2f us %5.1f%%", t * 1e6, 100 * (double)n * k / t / bw);
	}
	kn_skinny_wide(0);
	return rc;
}

/* The weight-streaming products alone, at m = 1 and 16, on the layer
 * shapes: bf16 weights (as kn_gemm_bf16 picks: the skinny kernel or
 * cuBLAS), the FP8 skinny kernel, cuBLASLt FP8 (m = 16), each as time a
 * product, weight bytes a second and their share of the copy bandwidth;
 * then the bf16 skinny kernel's forms at m = 1. */
static int skinny_compare(double bw)
{
	static const char *heads[SP_PATHS] = { "bf16 skinny/cuBLAS", "fp8 skinny",
					       "fp8 cuBLASLt" };
	static const int ms[2] = { 1, 16 };
	struct kn_gemm *g;
	kn_event e0, e1;
	int rc = 0;

	if (kn_gemm_create(&g, NULL) || kn_event_create(&e0) || kn_event_create(&e1))
		return die_kn("skinny products setup");
	printf("\nskinny products, device time a product (mean of %d back-to-back launches over "
	       "%d copies of the weights), weight GB/s, %% of the copy bandwidth:\n%-8s %5s %5s "
	       "%2s", SP_ITERS, SP_COPIES, "layer", "n", "k", "m");
	for (int p = 0; p < SP_PATHS; p++)
		printf("  %26s", heads[p]);
	printf("\n");
	for (size_t i = 0; i < sizeof(sp_shapes) / sizeof(sp_shapes[0]) && !rc; i++) {
		const struct sp_shape *sh = &sp_shapes[i];
		struct sp_bufs b;

		if ((rc = sp_alloc(&b, sh->n, sh->k)))
			break;
		for (int j = 0; j < 2 && !rc; j++) {
			printf("%-8s %5d %5d %2d", sh->name, sh->n, sh->k, ms[j]);
			for (int p = 0; p < SP_PATHS && !rc; p++) {
				double bytes = (double)sh->n * sh->k * (p == SP_BF16 ? 2 : 1), t;

				if (p == SP_LT && ms[j] == 1) {
					printf("  %26s", "-");
					continue;
				}
				if (!(rc = sp_time(g, &b, p, 0, ms[j], sh->n, sh->k, e0, e1, &t)))
					printf("  %9.2f us %5.0f %6.1f%%", t * 1e6, bytes / t / 1e9,
					       100 * bytes / t / bw);
			}
			printf("\n");
		}
		sp_free(&b);
	}
	printf("\nbf16 skinny kernel at m = 1, device time a product and %% of the copy bandwidth, "
	       "by warps a row of weights (1, 2, 4) and loads in flight a lane (4, 8); then the "
	       "FP8 skinny kernel at 4 and 8; gu+SiLU: SwiGLU in the kernel (a warp's gate "
	       "and up rows sharing the loads a lane):\n%-8s %5s %5s", "layer", "n", "k");
	for (int wide = 0; wide < 2; wide++)
		for (int split = 1; split <= 4; split *= 2)
			printf("  %11s %d x %d", "", split, wide ? 8 : 4);
	printf("  %12s fp8 4  %12s fp8 8\n", "", "");
	for (size_t i = 0; i < sizeof(sp_shapes) / sizeof(sp_shapes[0]) && !rc; i++) {
		const struct sp_shape *sh = &sp_shapes[i];
		struct sp_bufs b;

		if ((rc = sp_alloc(&b, sh->n, sh->k)))
			break;
		for (int glu = 0; glu < 1 + (sh->n == 37888) && !rc; glu++) {
			printf("%-8s %5d %5d", glu ? "gu+SiLU" : sh->name, sh->n, sh->k);
			rc = sp_forms(g, &b, sh->n, sh->k, glu, e0, e1, bw);
			printf("\n");
		}
		sp_free(&b);
	}
	kn_gemm_free(g);
	kn_event_destroy(e0);
	kn_event_destroy(e1);
	return rc;
}

/* ---------------------------------------------------------------- fp8 weights */

struct w_fig {
	double b1, b16, pf;   /* seconds: decode b1 1k, b16 10k (graphs), prefill 4k */
	double b1_unfused;    /* FP8 weights: b1 with each product quantizing its input */
	double b1_wide;       /* FP8 b1 with 8 loads in flight a lane (kn_skinny_wide) */
	double b1_one;        /* bf16 b1 with one warp a row, 4 loads (kn_skinny_splits off) */
	double b1_glu;        /* bf16 b1 with SiLU in the gate/up kernel (kn_skinny_glu on) */
	size_t wb;            /* weight bytes on the GPU */
};

static int w_figures(const struct eng_model_config *cfg, int device, int wfp8, int kv,
		     int32_t *tables, int per, int nb, struct w_fig *f)
{
	void *st;
	int rc;

	if ((rc = create_dummy(cfg, device, kv, wfp8, per * nb, &st)))
		return rc;
	f->wb = eng_cuda_weight_bytes(st);
	f->b1_unfused = f->b1_wide = f->b1_one = f->b1_glu = 0;
	if (!(rc = time_steps(st, 1, 1024, 0, 20, tables, per, &f->b1)) &&
	    !(rc = time_steps(st, 16, 10240, 0, 10, tables, 4 * per, &f->b16)))
		rc = time_steps(st, 1, 4096, 1, 3, tables, per, &f->pf);
	if (!rc && wfp8 && kv == ENG_KV_DTYPE_BF16) {
		/* the FP8 skinny products with 8 loads in flight a lane */
		eng_cuda_skinny_wide(st, 1);
		rc = time_steps(st, 1, 1024, 0, 20, tables, per, &f->b1_wide);
		eng_cuda_skinny_wide(st, 0);
	}
	if (!rc && !wfp8) {
		/* the bf16 skinny products at one warp a row */
		eng_cuda_skinny_splits(st, 0);
		rc = time_steps(st, 1, 1024, 0, 20, tables, per, &f->b1_one);
		eng_cuda_skinny_splits(st, 1);
		/* SiLU in the gate/up product's kernel */
		eng_cuda_skinny_glu(st, 1);
		if (!rc)
			rc = time_steps(st, 1, 1024, 0, 20, tables, per, &f->b1_glu);
		eng_cuda_skinny_glu(st, 0);
	}
	if (!rc && wfp8 && kv == ENG_KV_DTYPE_BF16) {
		/* the ablation, and where an FP8 step's time goes */
		eng_cuda_fuse_quant(st, 0);
		rc = time_steps(st, 1, 1024, 0, 20, tables, per, &f->b1_unfused);
		eng_cuda_fuse_quant(st, 1);
		if (!rc)
			rc = profile(st, "FP8 weights, decode b1, 1k context", 1, 1024, 0, tables,
				     per);
	}
	eng_cuda_destroy(st);
	return rc;
}

static void w_row(const char *fig, double tb, double t8, double t88, double cb, double c8,
		  double c88)
{
	printf("%-24s %9.3f ms %5.1f%%  %9.3f ms %5.1f%%  %5.2fx %5.2fx  %9.3f ms %5.1f%%  %5.2fx "
	       "%5.2fx\n", fig, tb * 1e3, 100 * cb / tb, t8 * 1e3, 100 * c8 / t8, tb / t8, cb / c8,
	       t88 * 1e3, 100 * c88 / t88, tb / t88, cb / c88);
}

/* bf16 weights against FP8 weights (W8A8), then FP8 weights with FP8
 * pages, on decode b1 (weight-bound), b16 at 10k (weights and KV) and a
 * 4k prefill (compute-bound; its ceiling is the bf16 GEMM rate). */
static int w_compare(int device, double bw, double rate)
{
	struct eng_model_config cfg;
	int per = 4160 / PAGE, nb = 64, rc;
	int32_t *tables;
	struct w_fig fb, f8, f88;

	if ((rc = qwen7b_config(&cfg)))
		return rc;
	tables = page_tables(per, nb);
	if ((rc = w_figures(&cfg, device, 0, ENG_KV_DTYPE_BF16, tables, per, nb, &fb)) ||
	    (rc = w_figures(&cfg, device, 1, ENG_KV_DTYPE_BF16, tables, per, nb, &f8)) ||
	    (rc = w_figures(&cfg, device, 1, ENG_KV_DTYPE_FP8_E4M3, tables, per, nb, &f88))) {
		free(tables);
		return rc;
	}
	struct shape sb = shape_of(&cfg, fb.wb, 2), s8 = shape_of(&cfg, f8.wb, 2);
	struct shape s88 = shape_of(&cfg, f88.wb, 1);
	double flp = 4096 * sb.lin_flops + sb.head_flops + 4096.0 * 4097 / 2 * sb.attn_flops;

	printf("\nFP8 weights (--quantization fp8, W8A8), %% of each one's ceiling (bytes over %.0f "
	       "GB/s, or FLOPs over the bf16 GEMM rate %.0f TFLOP/s); weights %.2f GB bf16, %.2f "
	       "GB fp8:\n%-24s %19s  %19s %13s  %19s %13s\n", bw / 1e9, rate / 1e12,
	       sb.weight_read / 1e9, s8.weight_read / 1e9, "figure", "bf16 weights",
	       "fp8 weights", "speed  bytes", "fp8 w + fp8 kv", "speed  bytes");
	w_row("decode b1, 1k context", fb.b1, f8.b1, f88.b1, decode_ceil(&sb, bw, rate, 1, 1024),
	      decode_ceil(&s8, bw, rate, 1, 1024), decode_ceil(&s88, bw, rate, 1, 1024));
	w_row("decode b16, 10k context", fb.b16, f8.b16, f88.b16,
	      decode_ceil(&sb, bw, rate, 16, 16.0 * 10240),
	      decode_ceil(&s8, bw, rate, 16, 16.0 * 10240),
	      decode_ceil(&s88, bw, rate, 16, 16.0 * 10240));
	w_row("prefill 4k prompt", fb.pf, f8.pf, f88.pf, flp / rate, flp / rate, flp / rate);
	printf("targets: decode b1 >= 1.8x bf16 tok/s; KV-bound decode (b16, 10k) >= 1.7x; "
	       "prefill >= 1.5x\n");
	printf("FP8 decode b1 with the products' inputs quantized by the norms and SiLU: %.3f ms; "
	       "each product quantizing its own (the ablation): %.3f ms (%.2fx)\n", f8.b1 * 1e3,
	       f8.b1_unfused * 1e3, f8.b1_unfused / f8.b1);
	printf("FP8 decode b1 with the FP8 skinny products' 8 loads in flight a lane below 16384 "
	       "rows (eng_cuda_skinny_wide): %.3f ms, against 4: %.3f (%.3fx)\n",
	       f8.b1_wide * 1e3, f8.b1 * 1e3, f8.b1 / f8.b1_wide);
	printf("bf16 decode b1 with the skinny products at 1, 2 or 4 warps a row and 4 or 8 loads "
	       "a lane as picked: %.3f ms; one warp a row at 4 (eng_cuda_skinny_splits off): %.3f "
	       "ms (%.3fx)\n", fb.b1 * 1e3, fb.b1_one * 1e3, fb.b1_one / fb.b1);
	printf("bf16 decode b1 with SwiGLU in a launch of its own: %.3f ms; in the gate/up "
	       "product's kernel (eng_cuda_skinny_glu on): %.3f ms (%.3fx)\n", fb.b1 * 1e3,
	       fb.b1_glu * 1e3, fb.b1 / fb.b1_glu);
	free(tables);
	return 0;
}

/* ---------------------------------------------------------------- tp */

struct tp_fig {
	double dec, pf;            /* seconds: decode b1 1k, prefill 4k */
	double dec_ar, pf_ar;      /* all-reduce share of device time */
};

/* The all-reduce share of a profiled workload. */
static int ar_share(void *st, int batch, int ctx, int prefill, int32_t *tables, int per,
		    double *share)
{
	struct eng_error err;
	double t, ms;
	int rc;

	if (eng_cuda_profile(st, 1, &err))
		return 3;
	rc = time_steps(st, batch, ctx, prefill, 3, tables, per, &t);
	if (eng_cuda_profile_class(st, "all-reduce", &ms, share))
		*share = 0;
	eng_cuda_profile(st, 0, &err);
	return rc;
}

/* The figures at tp ranks on devs; 1 when the backend cannot be made. */
static int tp_run(const struct eng_model_config *cfg, int tp, const int *devs, struct tp_fig *f)
{
	struct eng_backend_params p = eng_backend_default_params();
	int per = 4160 / PAGE, rc;
	int32_t tables[4160 / PAGE];
	struct eng_error err;
	void *st;

	for (int i = 0; i < per; i++)
		tables[i] = i;
	p.page_size = PAGE;
	p.n_pages = per;
	p.tp_size = tp;
	p.device = devs[0];
	for (int r = 0; r < tp; r++)
		p.tp_devices[r] = devs[r];
	if (eng_cuda_create(cfg, NULL, 1, &p, &st, &err)) {
		printf("tp %d: not run: %s\n", tp, err.msg);
		return 1;
	}
	eng_cuda_use_graphs(st, 0);
	rc = time_steps(st, 1, 1024, 0, 20, tables, per, &f->dec);
	if (!rc)
		rc = time_steps(st, 1, 4096, 1, 3, tables, per, &f->pf);
	if (!rc)
		rc = ar_share(st, 1, 1024, 0, tables, per, &f->dec_ar);
	if (!rc)
		rc = ar_share(st, 1, 4096, 1, tables, per, &f->pf_ar);
	eng_cuda_destroy(st);
	return rc ? 3 : 0;
}

static void tp_row(const char *fig, const struct tp_fig *f, const struct tp_fig *one, int tp)
{
	printf("%-30s %10.3f ms %6.2fx %5.0f%% %5.1f%%   %10.3f ms %6.2fx %5.0f%% %5.1f%%\n", fig,
	       f->dec * 1e3, one->dec / f->dec, 100 * one->dec / f->dec / tp, 100 * f->dec_ar,
	       f->pf * 1e3, one->pf / f->pf, 100 * one->pf / f->pf / tp, 100 * f->pf_ar);
}

/* Decode b1 1k and prefill 4k at tp 1, 2, 4 (op by op). */
static int tp_scaling(int device)
{
	static const int sizes[3] = { 1, 2, 4 };
	struct eng_model_config cfg;
	struct tp_fig one = { 0 }, f;
	int n = 0, devs[4], rc;
	char fig[64];

	if ((rc = qwen7b_config(&cfg)))
		return rc;
	kn_device_count(&n);
	printf("\ntensor parallelism, op by op (speed-up over tp 1, efficiency, all-reduce share "
	       "of device time):\n%-30s %28s %5s   %28s %5s\n", "figure", "decode b1, 1k ctx",
	       "ar", "prefill 4k", "ar");
	for (int k = 0; k < 3; k++) {
		int tp = sizes[k];

		if (device + tp > n)
			break;
		for (int r = 0; r < tp; r++)
			devs[r] = device + r;
		if ((rc = tp_run(&cfg, tp, devs, &f)) == 1)
			break;
		if (rc)
			return rc;
		if (tp == 1)
			one = f;
		snprintf(fig, sizeof(fig), "tp %d (GPUs %d..%d)", tp, device, device + tp - 1);
		tp_row(fig, &f, &one, tp);
	}
	if (n - device >= 2)
		return 0;
	devs[0] = devs[1] = device;
	if ((rc = tp_run(&cfg, 2, devs, &f)) == 0)
		tp_row("tp 2, both ranks on one GPU", &f, &one, 2);
	return rc == 1 ? 0 : rc;
}

int main(int argc, char **argv)
{
	int n = 0, device = 0, n_sm, rc;
	char name[256];
	size_t mem;
	double bw = 0, rate = 0;

	for (int i = 1; i < argc; i++) {
		const char *kv = !strncmp(argv[i], "--kv-cache-dtype=", 17) ? argv[i] + 17
				 : !strcmp(argv[i], "--kv-cache-dtype") && i + 1 < argc ? argv[++i]
				 : NULL;
		enum eng_kv_dtype dt;
		struct eng_error err;

		if (!strcmp(argv[i], "--no-pdl")) {
			kn_set_pdl(0);
		} else if (kv) {
			if (eng_kv_dtype_from_name(kv, &dt, &err)) {
				fprintf(stderr, "bench-cuda: %s\n", err.msg);
				return 2;
			}
			kv_dtype = dt;
		} else {
			device = atoi(argv[i]);
		}
	}

	if (kn_device_count(&n) || n == 0) {
		fprintf(stderr, "bench-cuda: no CUDA device\n");
		return 3;
	}
	if (kn_set_device(device) || kn_device_info(device, name, sizeof(name), &n_sm, &mem))
		return die_kn("device");
	printf("device %d: %s, %d SMs, %.1f GiB\n", device, name, n_sm, mem / 1073741824.0);
	if (copy_bw(&bw) || gemm_rate(&rate))
		return 3;
	printf("copy bandwidth (read + write): %.0f GB/s\n", bw / 1e9);
	printf("cuBLAS bf16 GEMM 8192^3:       %.0f TFLOP/s\n", rate / 1e12);
	printf("programmatic dependent launch: %s\n", kn_pdl() ? "on" : "off (--no-pdl)");
	if ((rc = run_model(device, bw, rate)) || (rc = ragged_decode(device, bw, rate)) ||
	    (rc = kv_compare(device, bw, rate)) || (rc = split_compare(device, rate)) ||
	    (rc = wg_compare(device, rate)) ||
	    (rc = w_compare(device, bw, rate)) || (rc = skinny_compare(bw)))
		return rc;
	return tp_scaling(device);
}
