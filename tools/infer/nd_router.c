/*
 * nd_router.c: gpu-batch-infer --serve --router, and --dp-size (see
 * nd_infer.h).
 *
 * A router serves the same socket (and runs) as a worker; only its engine
 * is the router over --worker addresses.  --dp-size N first starts N
 * workers of this same program, one per GPU (CUDA_VISIBLE_DEVICES; with
 * --tp-size T, T GPUs each) or N CPU workers sharing the cores, each on
 * SOCKET.dpK, and stops them when the router stops: they are children that
 * the kernel also stops if the router dies (PR_SET_PDEATHSIG).
 */
#include <config.h>
#include "tools/infer/nd_infer.h"
#include "tools/common/nd.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define DP_MAX 64

/* The worker's command line: this program, --serve, and every engine
 * option that differs from its default. */
static int worker_argv(const struct nd_infer_opts *o, const char *sock, int threads,
		       char **argv, char (*buf)[64], int cap)
{
	const struct eng_infer_params *e = &o->engine;
	struct eng_infer_params d;
	int n = 0, b = 0;

#define ARG(s) do { if (n < cap - 1) argv[n++] = (char *)(s); } while (0)
#define NUM(flag, fmt, v) do { snprintf(buf[b], 64, fmt, v); ARG(flag); ARG(buf[b++]); } while (0)
	eng_infer_default_params(&d);
	ARG(nd_progname());
	ARG("--serve");
	ARG("--socket");
	ARG(sock);
	ARG("--model");
	ARG(e->model_dir);
	ARG("--device");
	ARG(e->device);
	if (e->tokenizer) { ARG("--tokenizer"); ARG(e->tokenizer); }
	if (e->chat_template) { ARG("--chat-template"); ARG(e->chat_template); }
	if (threads > 0) NUM("--threads", "%d", threads);
	if (e->page_size != d.page_size) NUM("--page-size", "%d", (int)e->page_size);
	if (e->max_total_tokens) NUM("--max-total-tokens", "%lld", (long long)e->max_total_tokens);
	if (e->chunked_prefill_size != d.chunked_prefill_size)
		NUM("--chunked-prefill-size", "%d", (int)e->chunked_prefill_size);
	if (e->prefill_step_ratio != d.prefill_step_ratio)
		NUM("--prefill-step-ratio", "%.17g", e->prefill_step_ratio);
	if (e->max_running_requests)
		NUM("--max-running-requests", "%d", (int)e->max_running_requests);
	if (e->context_length) NUM("--context-length", "%d", (int)e->context_length);
	if (e->policy == ENG_SCHED_POLICY_LPM) { ARG("--schedule-policy"); ARG("lpm"); }
	if (e->disable_radix_cache) ARG("--disable-radix-cache");
	if (strcmp(e->load_format, d.load_format)) { ARG("--load-format"); ARG(e->load_format); }
	if (e->mem_fraction_static != d.mem_fraction_static)
		NUM("--mem-fraction-static", "%.17g", e->mem_fraction_static);
	if (e->cuda_graph_max_bs != d.cuda_graph_max_bs)
		NUM("--cuda-graph-max-bs", "%d", (int)e->cuda_graph_max_bs);
	if (e->disable_cuda_graph) ARG("--disable-cuda-graph");
	if (e->tp_size > 1) NUM("--tp-size", "%d", (int)e->tp_size);
	if (e->kv_cache_dtype && strcmp(e->kv_cache_dtype, "auto")) {
		ARG("--kv-cache-dtype");
		ARG(e->kv_cache_dtype);
	}
	if (e->quantization && strcmp(e->quantization, "none")) {
		ARG("--quantization");
		ARG(e->quantization);
	}
#undef NUM
#undef ARG
	argv[n] = NULL;
	return n;
}

/* Starts worker k; its pid, or -1. */
static pid_t start_worker(const struct nd_infer_opts *o, int k, const char *sock, int threads)
{
	char *argv[64], buf[32][64], gpus[256] = "";
	int tp = o->engine.tp_size > 1 ? o->engine.tp_size : 1;
	pid_t pid;

	worker_argv(o, sock, threads, argv, buf, 64);
	for (int g = 0; g < tp; g++) {
		size_t len = strlen(gpus);

		snprintf(gpus + len, sizeof(gpus) - len, g ? ",%d" : "%d", k * tp + g);
	}
	pid = fork();
	if (pid != 0)
		return pid;
#ifdef __linux__
	prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
	if (!strcmp(o->engine.device, "cuda"))
		setenv("CUDA_VISIBLE_DEVICES", gpus, 1);
	execv("/proc/self/exe", argv);
	nd_error("cannot start a worker: %s", strerror(errno));
	_exit(ND_EXIT_USAGE);
}

static void stop_workers(pid_t *pids, int n)
{
	for (int k = 0; k < n; k++)
		if (pids[k] > 0)
			kill(pids[k], SIGTERM);
	for (int k = 0; k < n; k++)
		if (pids[k] > 0)
			waitpid(pids[k], NULL, 0);
}

/* The sockets of --dp-size workers: SOCKET.dp0, SOCKET.dp1, ..., or in a
 * directory of their own (dir, removed by the caller) when the router
 * serves only HTTP. */
static int start_dp(const struct nd_infer_opts *o, pid_t *pids, char (*socks)[256],
		    const char **workers, char *dir)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int threads = o->engine.n_threads;

	if (!o->socket && !mkdtemp(dir)) {
		nd_error("cannot make a directory for the workers' sockets: %s", strerror(errno));
		return ND_EXIT_USAGE;
	}
	/* CPU workers share the cores unless told otherwise */
	if (!strcmp(o->engine.device, "cpu") && threads == 0)
		threads = cpus > o->dp_size ? (int)(cpus / o->dp_size) : 1;
	for (int k = 0; k < o->dp_size; k++) {
		if (o->socket)
			snprintf(socks[k], sizeof(socks[k]), "%s.dp%d", o->socket, k);
		else
			snprintf(socks[k], sizeof(socks[k]), "%s/dp%d.sock", dir, k);
		workers[k] = socks[k];
		pids[k] = start_worker(o, k, socks[k], threads);
		if (pids[k] < 0) {
			nd_error("cannot start worker %d: %s", k, strerror(errno));
			stop_workers(pids, k);
			return ND_EXIT_USAGE;
		}
	}
	fprintf(stderr, "%s: started %d workers on %s .. %s\n", nd_progname(), o->dp_size,
		socks[0], socks[o->dp_size - 1]);
	return 0;
}

static void router_event(void *ctx, const char *msg)
{
	(void)ctx;
	nd_error("router: %s", msg);
}

static void router_state(void *ctx, enum eng_serve_state st, int port)
{
	const struct nd_infer_opts *o = ctx;

	char http[300] = "";

	if (st != ENG_SERVE_READY)
		return;
	if (port >= 0)
		snprintf(http, sizeof(http), "%shttp://%s:%d", o->socket ? " and " : "",
			 o->serve.host, port);
	fprintf(stderr, "%s: routing (%s) over %d workers on %s%s\n", nd_progname(),
		o->router.policy, o->dp_size ? o->dp_size : o->router.n_workers,
		o->socket ? o->socket : "", http);
}

/* Opens the router over rp's workers and serves it on the fronts of p. */
static int route(const struct nd_infer_opts *o, struct eng_router_params *rp,
		 struct eng_serve_params *p)
{
	struct eng_infer *e;
	struct eng_error err;
	char buf[1200];
	int rc;

	eng_error_clear(&err);
	rp->on_event = router_event;
	if (eng_infer_open_router(&o->engine, rp, &e, &err) != 0) {
		nd_error("cannot start the router: %s", eng_error_format(&err, buf, sizeof(buf)));
		return err.code == ENG_E_INVALID ? ND_EXIT_USAGE : ND_EXIT_UNAVAILABLE;
	}
	p->on_state = router_state;
	p->ctx = (void *)o;
	rc = eng_serve(e, p, &err);
	eng_infer_close(e);
	if (rc != 0) {
		nd_error("%s", eng_error_format(&err, buf, sizeof(buf)));
		return ND_EXIT_USAGE;
	}
	return ND_EXIT_OK;
}

int nd_router_serve(const struct nd_infer_opts *o)
{
	static pid_t pids[DP_MAX];
	static char socks[DP_MAX][256];
	const char *dp_workers[DP_MAX];
	char dir[] = "/tmp/gpu-batch-infer-XXXXXX";
	struct eng_router_params rp = o->router;
	struct eng_serve_params p = o->serve;
	struct eng_worker_params wp = o->worker;
	struct eng_worker *w = NULL;
	struct eng_error err;
	int rc = 0;

	/* the router's own socket first: a bad path fails before any worker starts */
	eng_error_clear(&err);
	wp.socket_path = o->socket;
	if (o->socket && eng_worker_listen(&wp, &w, &err) != 0) {
		nd_error("%s: %s", o->socket, err.msg);
		return ND_EXIT_USAGE;
	}
	p.worker = w;
	if (o->dp_size > 0) {
		rc = start_dp(o, pids, socks, dp_workers, dir);
		rp.workers = dp_workers;
		rp.n_workers = o->dp_size;
	}
	if (rc == 0)
		rc = route(o, &rp, &p);
	stop_workers(pids, o->dp_size);
	if (o->dp_size > 0 && !o->socket)
		rmdir(dir);
	eng_worker_close(w);
	return rc;
}
