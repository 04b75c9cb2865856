/*
 * gpu-batch-infer: the trajbench inference engine as a filter
 * (gpu-batch-infer(1)).
 *
 * A thin main: options are parsed here, the work is done by
 *   tools/infer/nd_tokmodes.c  --tokenize, --detokenize, --render
 *                               (tokenizer and chat template only)
 *   tools/infer/nd_infer.c     replay and generate runs, in-process
 *                               (--model), through a worker (--connect
 *                               PATH) or against an OpenAI-compatible
 *                               server (--connect http://...), the server
 *                               itself (--serve: the Unix socket, HTTP, or
 *                               both), --status, --shutdown
 * Flag names follow SGLang's and vLLM's where one exists.
 */
#include "config.h"
#include "tools/common/nd.h"
#include "tools/infer/nd_infer.h"
#include "tools/infer/nd_tokmodes.h"

#include <errno.h>
#include <getopt.h>
#include <sys/stat.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum action {
	ACT_NONE, ACT_TOKMODE, ACT_LOCAL, ACT_SERVE, ACT_REMOTE, ACT_HTTP, ACT_STATUS, ACT_SHUTDOWN,
};

enum {
	OPT_TOKENIZE = 256, OPT_DETOKENIZE, OPT_RENDER, OPT_TOKENIZER, OPT_CHAT_TEMPLATE,
	OPT_KEEP_GOING, OPT_SKIP_SPECIAL, OPT_MODEL, OPT_DEVICE, OPT_THREADS, OPT_PAGE_SIZE,
	OPT_MAX_TOTAL_TOKENS, OPT_CHUNKED_PREFILL, OPT_STEP_RATIO, OPT_MAX_RUNNING, OPT_CONTEXT_LENGTH,
	OPT_POLICY, OPT_NO_RADIX, OPT_SERVE, OPT_SOCKET, OPT_CONNECT, OPT_STATUS, OPT_SHUTDOWN,
	OPT_MODE, OPT_RUN, OPT_BATCH_SIZE, OPT_MAX_CONCURRENCY, OPT_REQUEST_RATE, OPT_ENV_SCALE,
	OPT_OUTPUT_LEN, OPT_REPLAY_OUTPUT, OPT_TEMPERATURE, OPT_TOP_K, OPT_TOP_P, OPT_SEED,
	OPT_OUTPUT_DETAILS, OPT_PROGRESS, OPT_NO_PROGRESS, OPT_KEEP_CACHE, OPT_WARMUP,
	OPT_LOAD_FORMAT, OPT_MEM_FRACTION, OPT_GRAPH_MAX_BS, OPT_NO_GRAPH, OPT_TP_SIZE,
	OPT_REPEAT, OPT_KV_DTYPE, OPT_MAX_CONNECTIONS, OPT_IDLE_TIMEOUT, OPT_ALLOW_ROOT,
	OPT_API_KEY, OPT_ENDPOINT, OPT_REQUEST_TIMEOUT, OPT_MAX_RETRIES, OPT_NUM_PROMPTS,
	OPT_ROUTER, OPT_WORKER, OPT_RT_POLICY, OPT_CACHE_THRESHOLD, OPT_BAL_ABS, OPT_BAL_REL,
	OPT_EVICTION, OPT_TREE_SIZE, OPT_RANDOM_SEED, OPT_HC_INTERVAL, OPT_HC_TIMEOUT,
	OPT_HC_FAIL, OPT_HC_OK, OPT_REQ_TIMEOUT, OPT_RETRIES, OPT_STARTUP_TIMEOUT, OPT_DP_SIZE,
	OPT_HOST, OPT_PORT, OPT_SERVED_NAME, OPT_METRICS, OPT_LOG_REQUESTS, OPT_LOG_FILE,
	OPT_MAX_BODY, OPT_MAX_QUEUED, OPT_GRACEFUL, OPT_QUANTIZATION,
};

static const struct option long_options[] = {
	{"tokenize", no_argument, NULL, OPT_TOKENIZE},
	{"detokenize", no_argument, NULL, OPT_DETOKENIZE},
	{"render", no_argument, NULL, OPT_RENDER},
	{"tokenizer", required_argument, NULL, OPT_TOKENIZER},
	{"chat-template", required_argument, NULL, OPT_CHAT_TEMPLATE},
	{"keep-going", no_argument, NULL, OPT_KEEP_GOING},
	{"skip-special-tokens", no_argument, NULL, OPT_SKIP_SPECIAL},
	{"model", required_argument, NULL, OPT_MODEL},
	{"model-path", required_argument, NULL, OPT_MODEL},
	{"device", required_argument, NULL, OPT_DEVICE},
	{"threads", required_argument, NULL, OPT_THREADS},
	{"page-size", required_argument, NULL, OPT_PAGE_SIZE},
	{"max-total-tokens", required_argument, NULL, OPT_MAX_TOTAL_TOKENS},
	{"chunked-prefill-size", required_argument, NULL, OPT_CHUNKED_PREFILL},
	{"prefill-step-ratio", required_argument, NULL, OPT_STEP_RATIO},
	{"max-running-requests", required_argument, NULL, OPT_MAX_RUNNING},
	{"context-length", required_argument, NULL, OPT_CONTEXT_LENGTH},
	{"schedule-policy", required_argument, NULL, OPT_POLICY},
	{"disable-radix-cache", no_argument, NULL, OPT_NO_RADIX},
	{"load-format", required_argument, NULL, OPT_LOAD_FORMAT},
	{"mem-fraction-static", required_argument, NULL, OPT_MEM_FRACTION},
	{"cuda-graph-max-bs", required_argument, NULL, OPT_GRAPH_MAX_BS},
	{"disable-cuda-graph", no_argument, NULL, OPT_NO_GRAPH},
	{"tp-size", required_argument, NULL, OPT_TP_SIZE},
	{"kv-cache-dtype", required_argument, NULL, OPT_KV_DTYPE},
	{"quantization", required_argument, NULL, OPT_QUANTIZATION},
	{"serve", no_argument, NULL, OPT_SERVE},
	{"router", no_argument, NULL, OPT_ROUTER},
	{"worker", required_argument, NULL, OPT_WORKER},
	{"policy", required_argument, NULL, OPT_RT_POLICY},
	{"cache-threshold", required_argument, NULL, OPT_CACHE_THRESHOLD},
	{"balance-abs-threshold", required_argument, NULL, OPT_BAL_ABS},
	{"balance-rel-threshold", required_argument, NULL, OPT_BAL_REL},
	{"eviction-interval", required_argument, NULL, OPT_EVICTION},
	{"max-tree-size", required_argument, NULL, OPT_TREE_SIZE},
	{"random-seed", required_argument, NULL, OPT_RANDOM_SEED},
	{"health-check-interval-secs", required_argument, NULL, OPT_HC_INTERVAL},
	{"health-check-timeout-secs", required_argument, NULL, OPT_HC_TIMEOUT},
	{"health-failure-threshold", required_argument, NULL, OPT_HC_FAIL},
	{"health-success-threshold", required_argument, NULL, OPT_HC_OK},
	{"request-timeout-secs", required_argument, NULL, OPT_REQ_TIMEOUT},
	{"retry-max-retries", required_argument, NULL, OPT_RETRIES},
	{"worker-startup-timeout-secs", required_argument, NULL, OPT_STARTUP_TIMEOUT},
	{"dp-size", required_argument, NULL, OPT_DP_SIZE},
	{"host", required_argument, NULL, OPT_HOST},
	{"port", required_argument, NULL, OPT_PORT},
	{"served-model-name", required_argument, NULL, OPT_SERVED_NAME},
	{"enable-metrics", no_argument, NULL, OPT_METRICS},
	{"log-requests", no_argument, NULL, OPT_LOG_REQUESTS},
	{"log-file", required_argument, NULL, OPT_LOG_FILE},
	{"max-body-size", required_argument, NULL, OPT_MAX_BODY},
	{"max-queued-requests", required_argument, NULL, OPT_MAX_QUEUED},
	{"graceful-timeout", required_argument, NULL, OPT_GRACEFUL},
	{"socket", required_argument, NULL, OPT_SOCKET},
	{"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
	{"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
	{"allow-root-clients", no_argument, NULL, OPT_ALLOW_ROOT},
	{"connect", required_argument, NULL, OPT_CONNECT},
	{"status", no_argument, NULL, OPT_STATUS},
	{"api-key", required_argument, NULL, OPT_API_KEY},
	{"endpoint", required_argument, NULL, OPT_ENDPOINT},
	{"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
	{"max-retries", required_argument, NULL, OPT_MAX_RETRIES},
	{"shutdown", no_argument, NULL, OPT_SHUTDOWN},
	{"mode", required_argument, NULL, OPT_MODE},
	{"run", required_argument, NULL, OPT_RUN},
	{"batch-size", required_argument, NULL, OPT_BATCH_SIZE},
	{"max-concurrency", required_argument, NULL, OPT_MAX_CONCURRENCY},
	{"request-rate", required_argument, NULL, OPT_REQUEST_RATE},
	{"env-time-scale", required_argument, NULL, OPT_ENV_SCALE},
	{"output-len", required_argument, NULL, OPT_OUTPUT_LEN},
	{"replay-output", required_argument, NULL, OPT_REPLAY_OUTPUT},
	{"temperature", required_argument, NULL, OPT_TEMPERATURE},
	{"top-k", required_argument, NULL, OPT_TOP_K},
	{"top-p", required_argument, NULL, OPT_TOP_P},
	{"seed", required_argument, NULL, OPT_SEED},
	{"output-details", no_argument, NULL, OPT_OUTPUT_DETAILS},
	{"keep-cache", no_argument, NULL, OPT_KEEP_CACHE},
	{"warmup-requests", required_argument, NULL, OPT_WARMUP},
	{"num-prompts", required_argument, NULL, OPT_NUM_PROMPTS},
	{"repeat", required_argument, NULL, OPT_REPEAT},
	{"progress", no_argument, NULL, OPT_PROGRESS},
	{"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
	{"output", required_argument, NULL, 'o'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

struct opts {
	enum action action;
	struct nd_tok_opts tok;
	struct nd_infer_opts inf;
	const char *output;
	const char *bad_value;  /* the option whose value failed to parse */
	const char *http_only;  /* an HTTP option given (needs --port) */
};

static void usage(void)
{
	printf("Usage: %s --model=DIR [OPTION]... [FILE]...\n"
	       "  or:  %s --serve --model=DIR --socket=PATH [OPTION]...\n"
	       "  or:  %s --serve --router --worker=ADDR... --model=DIR --socket=PATH [OPTION]...\n"
	       "  or:  %s --serve --dp-size=N --model=DIR --socket=PATH [OPTION]...\n"
	       "  or:  %s --serve --model=DIR --port=N [--host=ADDR] [OPTION]...\n"
	       "  or:  %s --connect=PATH [RUN OPTION]... [FILE]\n"
	       "  or:  %s --connect=PATH --status|--shutdown\n"
	       "  or:  %s --connect=http://HOST:PORT --tokenizer=DIR [RUN OPTION]... [FILE]\n"
	       "  or:  %s --tokenize|--detokenize|--render --tokenizer=DIR [FILE]...\n",
	       nd_progname(), nd_progname(), nd_progname(), nd_progname(), nd_progname(),
	       nd_progname(), nd_progname(), nd_progname(), nd_progname());
	fputs("Replay conversations through the trajbench inference engine and write one\n"
	      "request record per turn, one conversation_result per conversation and a\n"
	      "run record (trajbench-records(5)).  Reads each FILE (standard input with\n"
	      "no FILE, or -).\n"
	      "\n"
	      "Engine (with --model or --serve):\n"
	      "      --model=DIR               HF model directory (config.json, *.safetensors,\n"
	      "                                tokenizer.json)\n"
	      "      --tokenizer=DIR           tokenizer of another directory\n"
	      "      --chat-template=NAME      chatml, qwen3 or llama3 (default: from the model)\n"
	      "      --device=cpu|cuda         compute device (default cpu)\n"
	      "      --threads=N               cpu threads (default: online CPUs)\n"
	      "      --page-size=N             tokens per KV page (default 16)\n"
	      "      --max-total-tokens=N      KV pool size in tokens\n"
	      "      --chunked-prefill-size=N  prompt tokens per step (default 8192)\n"
	      "      --prefill-step-ratio=R    R >= 1: beside decode rows, prompt tokens only\n"
	      "                                while the step's roofline stays within R times\n"
	      "                                theirs (default 0: the chunk size alone)\n"
	      "      --max-running-requests=N  requests in the batch at most (default: memory)\n"
	      "      --context-length=N        context limit (default: the model's)\n"
	      "      --schedule-policy=P       fcfs or lpm (longest prefix match)\n"
	      "      --disable-radix-cache     no prefix caching (ablation)\n"
	      "      --load-format=auto|dummy  dummy: random weights of the config's shape,\n"
	      "                                made on the GPU (no weight files read)\n"
	      "      --mem-fraction-static=F   cuda: share of GPU memory for weights and KV\n"
	      "                                cache (default 0.85)\n"
	      "      --cuda-graph-max-bs=N     cuda: decode batches up to N run as captured\n"
	      "                                CUDA graphs (default 64)\n"
	      "      --disable-cuda-graph      cuda: no graphs (ablation)\n"
	      "      --tp-size=N               cuda: tensor parallelism over GPUs 0..N-1\n"
	      "                                (default 1; NCCL needed when N > 1)\n"
	      "      --kv-cache-dtype=T        auto|bf16 (default) or fp8_e4m3: K and V\n"
	      "                                pages in FP8 with the checkpoint's scales\n"
	      "                                (1.0 without), twice the tokens\n"
	      "      --quantization=Q          none (default) or fp8: the linear layers'\n"
	      "                                weights in FP8 E4M3 (a scale per output\n"
	      "                                row) and their inputs per token (W8A8);\n"
	      "                                not with --tp-size > 1\n"
	      "\n"
	      "Run:\n"
	      "      --mode=MODE               replay: turns in order per conversation\n"
	      "                                (default); generate: every record is an\n"
	      "                                independent request; score: one prefill per\n"
	      "                                conversation, the log-probs of its replies\n"
	      "      --run=NAME                the records' \"run\" field (default run)\n"
	      "      --batch-size=N            conversations in flight (default 1; 0: all)\n"
	      "      --max-concurrency=N       generate: requests in flight (default: all)\n"
	      "      --request-rate=R          generate: Poisson arrivals per second (inf)\n"
	      "      --env-time-scale=S        wait S x the recorded env time between turns\n"
	      "                                (default 0)\n"
	      "      --output-len=N            tokens per turn (default: the recorded reply)\n"
	      "      --replay-output=WHAT      recorded: emit the recorded reply's tokens, so\n"
	      "                                the next turn's prompt is what was cached\n"
	      "                                (default); generated: the model's own tokens\n"
	      "      --temperature=T, --top-k=K, --top-p=P, --seed=N   sampling (greedy)\n"
	      "      --output-details          add output_ids and output_text to requests\n"
	      "      --warmup-requests=N       run N synthetic requests first, unreported\n"
	      "      --num-prompts=N           read the first N records only (default 0: all)\n"
	      "      --repeat=N                run the input N times, one run after the\n"
	      "                                other under the same --run name (default 1)\n"
	      "      --keep-cache              start from the worker's prefix cache as it is\n"
	      "                                (default: a run starts from a cold cache)\n"
	      "      --progress, --no-progress progress on stderr (default: if a terminal)\n"
	      "\n"
	      "Server:\n"
	      "      --serve                   load the model once and serve it, on a Unix\n"
	      "                                socket (--socket), over HTTP (--port), or both\n"
	      "      --socket=PATH             the worker's Unix socket, runs of NDJSON (PATH\n"
	      "                                must not exist, or be a socket no worker serves)\n"
	      "      --max-connections=N       --serve: clients at once on each front; more\n"
	      "                                are refused (default 256 on the socket, 4096\n"
	      "                                over HTTP)\n"
	      "      --idle-timeout=S          --serve: close a connection (socket or HTTP)\n"
	      "                                idle for S seconds with nothing in the engine;\n"
	      "                                a stream is not idle (default 600; 0: never)\n"
	      "      --allow-root-clients      --serve: serve root as well as this user\n"
	      "      --port=N                  serve OpenAI-compatible HTTP on port N (0: any\n"
	      "                                free port, printed on stderr)\n"
	      "      --host=ADDR               address to bind (default 127.0.0.1)\n"
	      "      --api-key=KEY             --serve: require Authorization: Bearer KEY;\n"
	      "                                --connect http://: send it\n"
	      "      --served-model-name=NAME  the model's name in replies (default: DIR)\n"
	      "      --enable-metrics          Prometheus metrics at GET /metrics\n"
	      "      --log-requests            a request record per finished HTTP request,\n"
	      "                                on stderr or in --log-file=FILE\n"
	      "      --max-body-size=BYTES     larger request bodies get 413 (default 64 MiB)\n"
	      "      --max-queued-requests=N   503 when more requests wait (default: no limit)\n"
	      "      --graceful-timeout=S      on SIGTERM, SIGINT or --shutdown: let requests\n"
	      "                                in flight finish for S seconds (default 30)\n"
	      "      --connect=PATH            run through the worker at PATH\n"
	      "      --status, --shutdown      ask the worker at --connect PATH\n"
	      "\n"
	      "Router (with --serve; SGLang router's options and defaults):\n"
	      "      --router                  serve turns on other workers, not a model:\n"
	      "                                --model (or --tokenizer) renders the turns\n"
	      "      --worker=ADDR             a worker's socket path (repeat for each)\n"
	      "      --dp-size=N               start N workers of --model (one per GPU with\n"
	      "                                --device cuda) and route over them\n"
	      "      --policy=P                cache_aware (default), round_robin, random,\n"
	      "                                shortest_queue or power_of_two\n"
	      "      --cache-threshold=F       cache_aware: match ratio that wins (0.5)\n"
	      "      --balance-abs-threshold=N, --balance-rel-threshold=F\n"
	      "                                load imbalanced above these (32, 1.0001)\n"
	      "      --eviction-interval=S, --max-tree-size=N\n"
	      "                                cut the routing trees every S seconds to N\n"
	      "                                tokens each (60, 16777216)\n"
	      "      --random-seed=N           random and power_of_two draws (0)\n"
	      "      --health-check-interval-secs=S, --health-check-timeout-secs=S (60, 5)\n"
	      "      --health-failure-threshold=N, --health-success-threshold=N (3, 2)\n"
	      "      --request-timeout-secs=S  a request slower than this fails its worker\n"
	      "                                and is re-sent (1800)\n"
	      "      --retry-max-retries=N     re-sends of one request at most (5)\n"
	      "      --worker-startup-timeout-secs=S\n"
	      "                                wait for the workers to answer (300)\n"
	      "OpenAI-compatible server (--connect http://HOST:PORT[/v1]):\n"
	      "      --tokenizer=DIR           the served model's tokenizer, to count prompt\n"
	      "                                tokens as the engine does (default: --model,\n"
	      "                                when it is a directory)\n"
	      "      --model=NAME              the served model (default: the first of\n"
	      "                                GET /v1/models)\n"
	      "      --endpoint=EP             chat (default: /v1/chat/completions, the\n"
	      "                                messages), completions (/v1/completions, our\n"
	      "                                token ids) or generate (SGLang's /generate)\n"
	      "      --api-key=KEY             bearer token (default: $OPENAI_API_KEY)\n"
	      "      --request-timeout=S       fail a request after S seconds (default: none)\n"
	      "      --max-retries=N           send a failed request again, N times at most\n"
	      "                                (default 0)\n"
	      "\n"
	      "Tokenizer modes (no model needed):\n"
	      "      --tokenize                add \"ids\" to records with a \"text\" string\n"
	      "      --detokenize              add \"text\" to records with an \"ids\" array\n"
	      "      --render                  one \"prompt\" record per turn: prompt and\n"
	      "                                reply lengths (chat templates: chatml, qwen3,\n"
	      "                                llama3)\n"
	      "      --skip-special-tokens     --detokenize leaves special tokens out\n"
	      "      --keep-going              go on after a bad record\n"
	      "\n"
	      "  -o, --output=FILE             write to FILE instead of standard output\n"
	      "  -h, --help                    display this help and exit\n"
	      "  -V, --version                 output version information and exit\n"
	      "\n"
	      "Exit status: 0 ok; 1 some records were bad or requests failed; 2 usage or\n"
	      "system error; 3 model, tokenizer, worker, server or GPU unavailable.\n", stdout);
}

/* Sets the action; two different ones are a usage error. */
static int set_action(struct opts *o, enum action a)
{
	if (o->action != ACT_NONE && o->action != a &&
	    !(o->action == ACT_REMOTE && (a == ACT_STATUS || a == ACT_SHUTDOWN)) &&
	    !(a == ACT_REMOTE && (o->action == ACT_STATUS || o->action == ACT_SHUTDOWN)))
		return nd_usage_error("conflicting modes; see --help");
	if (!(a == ACT_REMOTE && (o->action == ACT_STATUS || o->action == ACT_SHUTDOWN)))
		o->action = a;
	return 0;
}

static int num(const char *arg, long lo, long hi, long *v)
{
	return nd_parse_long(arg, lo, hi, v);
}

/* Engine options: 0 handled, 1 not an engine option, -1 bad value. */
static int engine_option(int c, const char *arg, struct opts *o)
{
	struct eng_infer_params *e = &o->inf.engine;
	long v = 0;

	switch (c) {
	case OPT_MODEL: e->model_dir = arg; return 0;
	case OPT_DEVICE:
		e->device = arg;
		return strcmp(arg, "cpu") && strcmp(arg, "cuda") ? -1 : 0;
	case OPT_THREADS: if (num(arg, 0, 1024, &v)) return -1; e->n_threads = (int)v; return 0;
	case OPT_PAGE_SIZE: if (num(arg, 1, 4096, &v)) return -1; e->page_size = (int32_t)v; return 0;
	case OPT_MAX_TOTAL_TOKENS:
		if (num(arg, 1, 1L << 40, &v)) return -1;
		e->max_total_tokens = v;
		return 0;
	case OPT_CHUNKED_PREFILL:
		if (num(arg, 1, 1 << 24, &v)) return -1;
		e->chunked_prefill_size = (int32_t)v;
		return 0;
	case OPT_MAX_RUNNING:
		if (num(arg, 0, 1 << 20, &v)) return -1;
		e->max_running_requests = (int32_t)v;
		return 0;
	case OPT_CONTEXT_LENGTH:
		if (num(arg, 1, 1 << 24, &v)) return -1;
		e->context_length = (int32_t)v;
		return 0;
	case OPT_POLICY:
		if (strcmp(arg, "fcfs") && strcmp(arg, "lpm")) return -1;
		e->policy = strcmp(arg, "lpm") ? ENG_SCHED_POLICY_FCFS : ENG_SCHED_POLICY_LPM;
		return 0;
	case OPT_NO_RADIX: e->disable_radix_cache = true; return 0;
	case OPT_NO_GRAPH: e->disable_cuda_graph = true; return 0;
	case OPT_GRAPH_MAX_BS:
		if (num(arg, 0, 4096, &v)) return -1;
		e->cuda_graph_max_bs = (int32_t)v;
		return 0;
	case OPT_TP_SIZE:
		if (num(arg, 1, 8, &v)) return -1;
		e->tp_size = (int32_t)v;
		return 0;
	case OPT_KV_DTYPE:
		if (strcmp(arg, "auto") && strcmp(arg, "bf16") && strcmp(arg, "fp8_e4m3")) return -1;
		e->kv_cache_dtype = arg;
		return 0;
	case OPT_QUANTIZATION:
		if (strcmp(arg, "none") && strcmp(arg, "fp8")) return -1;
		e->quantization = arg;
		return 0;
	case OPT_LOAD_FORMAT:
		if (strcmp(arg, "auto") && strcmp(arg, "dummy")) return -1;
		e->load_format = arg;
		return 0;
	case OPT_MEM_FRACTION: {
		double d;

		if (nd_parse_double(arg, 0.01, 1.0, &d)) return -1;
		e->mem_fraction_static = d;
		return 0;
	}
	case OPT_STEP_RATIO: {
		double d;

		if (nd_parse_double(arg, 0, 1e6, &d) || (d != 0 && d < 1)) return -1;
		e->prefill_step_ratio = d;
		return 0;
	}
	}
	return 1;
}

/* Run options: 0 handled, 1 not a run option, -1 bad value. */
static int run_option(int c, const char *arg, struct opts *o)
{
	struct eng_run_params *r = &o->inf.run;
	struct eng_session_params *s = &r->session;
	long v = 0;
	double d = 0;

	switch (c) {
	case OPT_MODE:
		if (strcmp(arg, "replay") && strcmp(arg, "generate") && strcmp(arg, "score"))
			return -1;
		r->mode = arg;
		return 0;
	case OPT_RUN: r->run_name = arg; return 0;
	case OPT_BATCH_SIZE:
	case OPT_MAX_CONCURRENCY:
		if (num(arg, 0, 1 << 20, &v)) return -1;
		s->batch_size = (int32_t)v;
		return 0;
	case OPT_REQUEST_RATE:
		if (nd_parse_double(arg, 1e-9, INFINITY, &d)) return -1;
		s->request_rate = d;
		return 0;
	case OPT_ENV_SCALE:
		if (nd_parse_double(arg, 0, ENG_MAX_ENV_TIME_SCALE, &d)) return -1;
		s->env_time_scale = d;
		return 0;
	case OPT_OUTPUT_LEN:
		if (num(arg, 1, 1 << 24, &v)) return -1;
		s->output_len = (int32_t)v;
		return 0;
	case OPT_REPLAY_OUTPUT:
		if (strcmp(arg, "recorded") && strcmp(arg, "generated")) return -1;
		s->recorded_output = !strcmp(arg, "recorded");
		return 0;
	case OPT_TEMPERATURE:
		if (nd_parse_double(arg, 0, 100, &d)) return -1;
		s->sampling.temperature = (float)d;
		return 0;
	case OPT_TOP_K: if (num(arg, 0, 1 << 24, &v)) return -1; s->sampling.top_k = (int32_t)v; return 0;
	case OPT_TOP_P:
		if (nd_parse_double(arg, 1e-6, 1, &d)) return -1;
		s->sampling.top_p = (float)d;
		return 0;
	case OPT_SEED:
		if (num(arg, 0, 0x7fffffffffffffffL, &v)) return -1;
		s->sampling.seed = (uint64_t)v;
		s->seed = (uint64_t)v;
		return 0;
	case OPT_OUTPUT_DETAILS: r->output_details = true; return 0;
	case OPT_KEEP_CACHE: r->keep_cache = true; return 0;
	case OPT_WARMUP:
		if (num(arg, 0, 1 << 20, &v)) return -1;
		r->warmup_requests = (int32_t)v;
		return 0;
	case OPT_NUM_PROMPTS:
		if (num(arg, 0, 0x7fffffffL, &v)) return -1;
		o->inf.num_prompts = v;
		return 0;
	case OPT_REPEAT:
		if (num(arg, 1, 10000, &v)) return -1;
		o->inf.repeat = (int32_t)v;
		return 0;
	case OPT_PROGRESS: o->inf.progress = true; return 0;
	case OPT_NO_PROGRESS: o->inf.progress = false; return 0;
	}
	return 1;
}

/* Router options: 0 handled, 1 not a router option, -1 bad value. */
static int router_option(int c, const char *arg, struct opts *o)
{
	struct eng_router_params *rp = &o->inf.router;
	long v = 0;

	switch (c) {
	case OPT_ROUTER: o->inf.router_mode = true; return 0;
	case OPT_WORKER:
		if (rp->n_workers == 64)
			return -1;
		o->inf.workers[rp->n_workers++] = arg;
		return 0;
	case OPT_RT_POLICY: rp->policy = arg; return 0;
	case OPT_CACHE_THRESHOLD:
		return nd_parse_double(arg, 0, 1, &rp->route.cache_threshold) ? -1 : 0;
	case OPT_BAL_ABS:
		if (num(arg, 0, 1 << 30, &v)) return -1;
		rp->route.balance_abs_threshold = (int32_t)v;
		return 0;
	case OPT_BAL_REL:
		return nd_parse_double(arg, 1, 1e9, &rp->route.balance_rel_threshold) ? -1 : 0;
	case OPT_EVICTION:
		return nd_parse_double(arg, 1e-3, 1e9, &rp->route.eviction_interval_s) ? -1 : 0;
	case OPT_TREE_SIZE:
		if (num(arg, 0, 1L << 40, &v)) return -1;
		rp->route.max_tree_size = v;
		return 0;
	case OPT_RANDOM_SEED:
		if (num(arg, 0, 0x7fffffffffffffffL, &v)) return -1;
		rp->route.seed = (uint64_t)v;
		return 0;
	case OPT_HC_INTERVAL:
		return nd_parse_double(arg, 1e-3, 1e9, &rp->health_check_interval_s) ? -1 : 0;
	case OPT_HC_TIMEOUT:
		return nd_parse_double(arg, 1e-3, 1e9, &rp->health_check_timeout_s) ? -1 : 0;
	case OPT_HC_FAIL:
		if (num(arg, 1, 1 << 20, &v)) return -1;
		rp->health_failure_threshold = (int32_t)v;
		return 0;
	case OPT_HC_OK:
		if (num(arg, 1, 1 << 20, &v)) return -1;
		rp->health_success_threshold = (int32_t)v;
		return 0;
	case OPT_RETRIES:
		if (num(arg, 0, 1 << 20, &v)) return -1;
		rp->retry_max_retries = (int32_t)v;
		return 0;
	case OPT_DP_SIZE:
		if (num(arg, 1, 64, &v)) return -1;
		o->inf.dp_size = (int32_t)v;
		return 0;
	case OPT_REQ_TIMEOUT:
		return nd_parse_double(arg, 1e-3, 1e9, &rp->request_timeout_s) ? -1 : 0;
	case OPT_STARTUP_TIMEOUT:
		return nd_parse_double(arg, 0, 1e9, &rp->worker_startup_timeout_s) ? -1 : 0;
	}
	return 1;
}

/* Worker options (--serve): 0 handled, 1 not a worker option, -1 bad value.
 * --max-connections and --idle-timeout apply to the HTTP front too. */
static int worker_option(int c, const char *arg, struct opts *o)
{
	struct eng_worker_params *w = &o->inf.worker;
	long v = 0;
	double d = 0;

	switch (c) {
	case OPT_MAX_CONNECTIONS:
		if (num(arg, 1, 1 << 20, &v)) return -1;
		w->max_connections = (int32_t)v;
		o->inf.serve.max_connections = (int32_t)v;
		return 0;
	case OPT_IDLE_TIMEOUT:
		if (nd_parse_double(arg, 0, 1e9, &d)) return -1;
		w->idle_timeout_s = d;
		o->inf.serve.idle_timeout_s = d;
		return 0;
	case OPT_ALLOW_ROOT: w->allow_root_clients = true; return 0;
	}
	return 1;
}

/* Options of --connect http://: 0 handled, 1 not one, -1 bad value.
 * --api-key is also the key the HTTP server requires. */
static int http_option(int c, const char *arg, struct opts *o)
{
	struct eng_remote_params *r = &o->inf.remote;
	long v = 0;

	switch (c) {
	case OPT_API_KEY: r->api_key = o->inf.serve.api_key = arg; return 0;
	case OPT_ENDPOINT: return eng_remote_endpoint_from_name(arg, &r->endpoint, NULL) ? -1 : 0;
	case OPT_REQUEST_TIMEOUT:
		return nd_parse_double(arg, 0, 1e7, &r->request_timeout_s) ? -1 : 0;
	case OPT_MAX_RETRIES:
		if (num(arg, 0, 1000, &v)) return -1;
		r->max_retries = (int32_t)v;
		return 0;
	}
	return 1;
}

/* HTTP server options: 0 handled, 1 not one, -1 bad value. */
static int serve_option(int c, const char *arg, struct opts *o)
{
	struct eng_serve_params *p = &o->inf.serve;
	long v = 0;
	double d = 0;

	switch (c) {
	case OPT_PORT:
		if (num(arg, 0, 65535, &v)) return -1;
		p->port = (int)v;
		return 0;
	case OPT_GRACEFUL:
		if (nd_parse_double(arg, 0, 1e6, &d)) return -1;
		p->graceful_timeout_s = d;
		return 0;
	case OPT_HOST: p->host = arg; o->http_only = "--host"; return 0;
	case OPT_SERVED_NAME: p->served_model_name = arg; o->http_only = "--served-model-name"; return 0;
	case OPT_METRICS: p->enable_metrics = true; o->http_only = "--enable-metrics"; return 0;
	case OPT_LOG_REQUESTS: o->inf.log_requests = true; o->http_only = "--log-requests"; return 0;
	case OPT_LOG_FILE: o->inf.log_file = arg; return 0;
	case OPT_MAX_BODY:
		if (num(arg, 1, 1L << 40, &v)) return -1;
		p->max_body_size = (size_t)v;
		o->http_only = "--max-body-size";
		return 0;
	case OPT_MAX_QUEUED:
		if (num(arg, 0, 1 << 30, &v)) return -1;
		p->max_queued_requests = (int32_t)v;
		o->http_only = "--max-queued-requests";
		return 0;
	}
	return 1;
}

/* Mode, worker and tokenizer-mode options: 0 handled, -2 usage error
 * (already reported), 1 not one of these. */
static int other_option(int c, const char *arg, struct opts *o)
{
	switch (c) {
	case OPT_TOKENIZE:
	case OPT_DETOKENIZE:
	case OPT_RENDER:
		if (o->tok.mode != ND_TOK_NONE && o->tok.mode != (enum nd_tok_mode)(c - OPT_TOKENIZE + 1))
			return nd_usage_error("only one of --tokenize, --detokenize and --render"), -2;
		o->tok.mode = (enum nd_tok_mode)(c - OPT_TOKENIZE + 1);
		return set_action(o, ACT_TOKMODE) ? -2 : 0;
	case OPT_TOKENIZER: o->tok.tokenizer = o->inf.engine.tokenizer = arg; return 0;
	case OPT_CHAT_TEMPLATE: o->tok.chat_template = o->inf.engine.chat_template = arg; return 0;
	case OPT_KEEP_GOING: o->tok.keep_going = true; return 0;
	case OPT_SKIP_SPECIAL: o->tok.skip_special = true; return 0;
	case OPT_SERVE: return set_action(o, ACT_SERVE) ? -2 : 0;
	case OPT_SOCKET: o->inf.socket = arg; return 0;
	case OPT_CONNECT:
		if (!strncmp(arg, "http://", 7) || !strncmp(arg, "https://", 8)) {
			o->inf.remote.url = arg;
			return set_action(o, ACT_HTTP) ? -2 : 0;
		}
		o->inf.socket = arg;
		return set_action(o, ACT_REMOTE) ? -2 : 0;
	case OPT_STATUS: return set_action(o, ACT_STATUS) ? -2 : 0;
	case OPT_SHUTDOWN: return set_action(o, ACT_SHUTDOWN) ? -2 : 0;
	case 'o': o->output = arg; return 0;
	}
	return 1;
}

/* --connect http://: --model names the served model; the tokenizer is
 * --tokenizer's, else --model's when that is a directory. */
static int check_http(struct opts *o)
{
	struct eng_infer_params *e = &o->inf.engine;
	struct stat sb;

	o->inf.remote.served_model = e->model_dir;
	if (!e->tokenizer && e->model_dir && stat(e->model_dir, &sb) == 0 && S_ISDIR(sb.st_mode))
		e->tokenizer = e->model_dir;
	e->model_dir = NULL;
	if (!e->tokenizer)
		return nd_usage_error("--connect %s needs --tokenizer=DIR: the served model's "
				      "tokenizer, to count prompt tokens", o->inf.remote.url);
	if (!o->inf.remote.api_key)
		o->inf.remote.api_key = getenv("OPENAI_API_KEY");
	if (!strcmp(o->inf.run.mode, "score") && o->inf.remote.endpoint == ENG_REMOTE_CHAT)
		return nd_usage_error("--mode score needs the prompt's log-probs: "
				      "--endpoint completions or generate");
	return 0;
}

/* What the options together mean; a usage error when they do not fit. */
static int check_options(struct opts *o, bool batch_given)
{
	const struct eng_infer_params *e = &o->inf.engine;

	if (o->action == ACT_NONE && e->model_dir)
		o->action = ACT_LOCAL;
	if (o->action == ACT_NONE)
		return nd_usage_error("nothing to do: give --model, --serve, --connect, or a "
				      "tokenizer mode");
	if (o->action == ACT_TOKMODE && !o->tok.tokenizer)
		return nd_usage_error("--tokenizer=DIR is required");
	if (o->action == ACT_TOKMODE && o->tok.chat_template && o->tok.mode != ND_TOK_RENDER)
		return nd_usage_error("--chat-template applies to --render only");
	if (o->action == ACT_TOKMODE && e->model_dir)
		return nd_usage_error("--model does not go with --tokenize, --detokenize, --render");
	if (o->inf.dp_size > 0)
		o->inf.router_mode = true;
	if ((o->inf.router_mode || o->inf.router.n_workers) && o->action != ACT_SERVE)
		return nd_usage_error("--router, --worker and --dp-size go with --serve");
	if (o->inf.router.n_workers && !o->inf.router_mode)
		return nd_usage_error("--worker needs --router");
	if (o->inf.router_mode && !o->inf.router.n_workers == !o->inf.dp_size)
		return nd_usage_error("a router needs --worker (each worker) or --dp-size, "
				      "not both");
	/* a router over given workers renders with --tokenizer alone */
	if ((o->action == ACT_LOCAL || o->action == ACT_SERVE) && !e->model_dir &&
	    !(o->inf.router_mode && !o->inf.dp_size && e->tokenizer))
		return nd_usage_error("--model=DIR is required");
	if (o->action == ACT_SERVE && !o->inf.socket && o->inf.serve.port < 0)
		return nd_usage_error("--serve needs --socket=PATH, --port=N, or both");
	if (o->action != ACT_SERVE && (o->http_only || o->inf.serve.port >= 0))
		return nd_usage_error("%s goes with --serve", o->http_only ? o->http_only : "--port");
	if (o->http_only && o->inf.serve.port < 0)
		return nd_usage_error("%s applies to the HTTP server: give --port", o->http_only);
	if (o->action == ACT_SERVE && o->inf.serve.api_key && o->inf.serve.port < 0)
		return nd_usage_error("--api-key applies to the HTTP server: give --port");
	if (o->inf.log_file && !o->inf.log_requests)
		return nd_usage_error("--log-file goes with --log-requests");
	if ((o->action == ACT_STATUS || o->action == ACT_SHUTDOWN) && !o->inf.socket)
		return nd_usage_error("--status and --shutdown need --connect=PATH");
	if (o->action == ACT_REMOTE && e->model_dir)
		return nd_usage_error("--model goes to the worker (--serve), not to --connect");
	if (o->action == ACT_HTTP && check_http(o) != 0)
		return ND_EXIT_USAGE;
	if (e->tp_size > 1 && strcmp(e->device, "cuda"))
		return nd_usage_error("--tp-size=%d needs --device=cuda", (int)e->tp_size);
	if (e->tp_size > 1 && !strcmp(e->quantization, "fp8"))
		return nd_usage_error("--quantization=fp8 with --tp-size=%d is not supported yet",
				      (int)e->tp_size);
	if (!batch_given && !strcmp(o->inf.run.mode, "generate"))
		o->inf.run.session.batch_size = 0;
	if (!strcmp(o->inf.run.mode, "replay") && isfinite(o->inf.run.session.request_rate))
		return nd_usage_error("--request-rate applies to --mode generate");
	return 0;
}

static int parse_options(int argc, char **argv, struct opts *o, int *status)
{
	bool batch_given = false;
	int c, li = -1;

	*status = ND_EXIT_OK;
	while ((c = getopt_long(argc, argv, ":o:hV", long_options, &li)) != -1) {
		char name[64];
		int rc;

		if (c == 'h' || c == 'V') {
			c == 'h' ? usage() : nd_print_version();
			return -1;
		}
		if (c == ':' || c == '?') {
			if (c == ':')
				*status = nd_usage_error("option '%s' requires an argument", argv[optind - 1]);
			else if (optopt)
				*status = nd_usage_error("invalid option -- '%c'", optopt);
			else
				*status = nd_usage_error("unrecognized option '%s'", argv[optind - 1]);
			return -1;
		}
		batch_given |= c == OPT_BATCH_SIZE || c == OPT_MAX_CONCURRENCY;
		rc = engine_option(c, optarg, o);
		if (rc == 1)
			rc = run_option(c, optarg, o);
		if (rc == 1)
			rc = router_option(c, optarg, o);
		if (rc == 1)
			rc = worker_option(c, optarg, o);
		if (rc == 1)
			rc = http_option(c, optarg, o);
		if (rc == 1)
			rc = serve_option(c, optarg, o);
		if (rc == 1)
			rc = other_option(c, optarg, o);
		if (rc == -2) {
			*status = ND_EXIT_USAGE;
			return -1;
		}
		if (rc != 0) {
			/* li is the long option's index; -1 for a short one */
			if (li >= 0)
				snprintf(name, sizeof(name), "--%s", long_options[li].name);
			else
				snprintf(name, sizeof(name), "-%c", c);
			*status = nd_invalid_value(name, optarg ? optarg : "", NULL);
			return -1;
		}
		li = -1;
	}
	if (check_options(o, batch_given) != 0) {
		*status = ND_EXIT_USAGE;
		return -1;
	}
	return optind;
}

int main(int argc, char **argv)
{
	struct opts o = { 0 };
	int first, status;
	char **files;
	int n_files;

	nd_init(argv[0]);
	nd_infer_default_opts(&o.inf);
	first = parse_options(argc, argv, &o, &status);
	if (first < 0)
		return status == ND_EXIT_OK ? nd_finish(status) : status;
	files = argv + first;
	n_files = argc - first;
	if ((status = nd_output_open(o.output, files, n_files)) != 0)
		return status;
	switch (o.action) {
	case ACT_TOKMODE: status = nd_tokmodes_run(&o.tok, files, n_files); break;
	case ACT_LOCAL:
	case ACT_HTTP: status = nd_infer_run_local(&o.inf, files, n_files); break;
	case ACT_SERVE:
		status = o.inf.router_mode ? nd_router_serve(&o.inf) : nd_infer_serve(&o.inf);
		break;
	case ACT_REMOTE: status = nd_infer_run_remote(&o.inf, files, n_files); break;
	case ACT_STATUS: status = nd_infer_command(&o.inf, "status"); break;
	case ACT_SHUTDOWN: status = nd_infer_command(&o.inf, "shutdown"); break;
	case ACT_NONE: status = ND_EXIT_USAGE; break;
	}
	return nd_finish(status);
}
