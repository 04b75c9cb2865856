/*
 * bench-cpu-forward.c: prefill and decode throughput of the CPU backend.
 *
 *   bench-cpu-forward [-t THREADS] [-p PROMPT_TOKENS] [-n DECODE_TOKENS] [MODEL_DIR]
 *
 * Without MODEL_DIR it writes a small random bf16 Llama-shaped model
 * (hidden 512, 8 layers, GQA 8:2, intermediate 1408, vocab 32000) into a
 * temporary directory.  Prints one line per figure; asserts nothing.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "tests/test-model-helper.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static struct tm_spec bench_spec(void)
{
	struct tm_spec s = tm_spec_llama();

	s.n_layers = 8;
	s.hidden = 512;
	s.n_heads = 8;
	s.n_kv_heads = 2;
	s.head_dim = 64;
	s.intermediate = 1408;
	s.vocab = 32000;
	s.max_positions = 4096;
	s.dtype = ENG_DTYPE_BF16;
	return s;
}

/* n_seqs sequences: prefill n_prompt tokens each, then decode n_dec steps. */
static int run(struct eng_backend *be, int V, int n_seqs, int n_prompt, int n_dec,
	       double *prefill_tps, double *decode_tps)
{
	int ps = eng_backend_params(be)->page_size, nb = (n_prompt + n_dec + ps - 1) / ps;
	int32_t *tok = malloc((size_t)n_seqs * (n_prompt + n_dec) * sizeof(int32_t));
	int32_t *bt = malloc((size_t)n_seqs * nb * sizeof(int32_t));
	float *lg = malloc((size_t)n_seqs * V * sizeof(float));
	struct eng_seq_input *q = calloc((size_t)n_seqs, sizeof(*q));
	struct eng_batch b = { n_seqs, q };
	struct eng_error err;
	int s, i, rc = 0;
	double t0;

	for (i = 0; i < n_seqs * (n_prompt + n_dec); i++)
		tok[i] = (int32_t)((i * 7919) % V);
	for (i = 0; i < n_seqs * nb; i++)
		bt[i] = i;
	for (s = 0; s < n_seqs; s++)
		q[s] = (struct eng_seq_input){ tok + (size_t)s * (n_prompt + n_dec), n_prompt, 0,
					       bt + (size_t)s * nb, nb, lg + (size_t)s * V,
					       NULL, NULL };
	t0 = now_s();
	rc = eng_backend_forward(be, &b, &err);
	*prefill_tps = (double)n_seqs * n_prompt / (now_s() - t0);
	t0 = now_s();
	for (i = 0; !rc && i < n_dec; i++) {
		for (s = 0; s < n_seqs; s++) {
			q[s].start_pos = n_prompt + i;
			q[s].n_tokens = 1;
			q[s].tokens = tok + (size_t)s * (n_prompt + n_dec) + n_prompt + i;
		}
		rc = eng_backend_forward(be, &b, &err);
	}
	*decode_tps = (double)n_seqs * n_dec / (now_s() - t0);
	if (rc)
		fprintf(stderr, "bench-cpu-forward: %s\n", err.msg);
	free(tok);
	free(bt);
	free(lg);
	free(q);
	return rc;
}

int main(int argc, char **argv)
{
	struct eng_backend_params bp = eng_backend_default_params();
	struct tm_spec spec = bench_spec();
	int n_prompt = 256, n_dec = 32, c, rc = 1;
	struct eng_backend *be = NULL;
	struct eng_model *m = NULL;
	struct eng_error err;
	char *tmp = NULL;
	const char *dir;
	double pf, dc, t0;

	while ((c = getopt(argc, argv, "t:p:n:")) != -1) {
		if (c == 't')
			bp.n_threads = atoi(optarg);
		else if (c == 'p')
			n_prompt = atoi(optarg);
		else if (c == 'n')
			n_dec = atoi(optarg);
		else
			return 2;
	}
	if (optind < argc) {
		dir = argv[optind];
	} else {
		tmp = tm_mkdtemp("bench");
		if (!tmp || tm_write_model(tmp, &spec, NULL))
			return 2;
		dir = tmp;
	}
	bp.n_pages = 8 * ((n_prompt + n_dec) / bp.page_size + 1);
	t0 = now_s();
	if (eng_model_load(dir, &m, &err) ||
	    eng_backend_create(&eng_backend_cpu_ops, m, &bp, &be, &err)) {
		fprintf(stderr, "bench-cpu-forward: %s: %s\n", err.file, err.msg);
		goto out;
	}
	printf("model %s: %d layers, hidden %d, vocab %d, %.1f MB of weights, load %.3f s, %d threads\n",
	       dir, eng_model_config(m)->n_layers, eng_model_config(m)->hidden,
	       eng_model_config(m)->vocab, eng_model_weight_bytes(m) / 1e6, now_s() - t0,
	       eng_backend_params(be)->n_threads);
	if (run(be, eng_model_config(m)->vocab, 1, n_prompt, n_dec, &pf, &dc))
		goto out;
	printf("batch 1: prefill %d tokens %.1f tok/s, decode %d tokens %.1f tok/s\n",
	       n_prompt, pf, n_dec, dc);
	if (run(be, eng_model_config(m)->vocab, 8, n_prompt / 8, n_dec, &pf, &dc))
		goto out;
	printf("batch 8: prefill 8 x %d tokens %.1f tok/s, decode %.1f tok/s (all sequences)\n",
	       n_prompt / 8, pf, dc);
	rc = 0;
out:
	eng_backend_free(be);
	eng_model_free(m);
	if (tmp)
		tm_rmtree(tmp);
	free(tmp);
	return rc;
}
