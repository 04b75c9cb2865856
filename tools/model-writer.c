/*
 * model-writer: write a deterministic random-weight model in HF layout.
 *
 * A thin main over tools/modelgen/model_writer.h: options are collected first and
 * applied after the preset, so "--num-layers 4 --preset tiny" and
 * "--preset tiny --num-layers 4" mean the same.  Without --tokenizer and
 * --train-text the BPE is trained on the .jsonl and .yaml files in samples/
 * when the current directory has them, else on a built-in text.
 * stdout stays empty; progress and the write rate go to stderr when it is
 * a terminal or --progress is given.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/modelgen/model_writer.h"
#include "tools/common/nd.h"

enum {
	OPT_PRESET = 256, OPT_ARCH, OPT_HIDDEN, OPT_INTER, OPT_LAYERS, OPT_HEADS, OPT_KV_HEADS,
	OPT_HEAD_DIM, OPT_VOCAB, OPT_MAX_POS, OPT_ROPE_THETA, OPT_RMS_EPS, OPT_TIE, OPT_NO_TIE,
	OPT_ATTN_BIAS, OPT_ROPE_SCALING, OPT_DTYPE, OPT_SEED, OPT_SHARD, OPT_TOKENIZER,
	OPT_TRAIN_TEXT, OPT_TOK_VOCAB, OPT_PROGRESS, OPT_NO_WEIGHTS,
};

static const struct option long_opts[] = {
	{ "output", required_argument, NULL, 'o' },
	{ "force", no_argument, NULL, 'f' },
	{ "no-weights", no_argument, NULL, OPT_NO_WEIGHTS },
	{ "preset", required_argument, NULL, OPT_PRESET },
	{ "arch", required_argument, NULL, OPT_ARCH },
	{ "hidden-size", required_argument, NULL, OPT_HIDDEN },
	{ "intermediate-size", required_argument, NULL, OPT_INTER },
	{ "num-layers", required_argument, NULL, OPT_LAYERS },
	{ "num-heads", required_argument, NULL, OPT_HEADS },
	{ "num-kv-heads", required_argument, NULL, OPT_KV_HEADS },
	{ "head-dim", required_argument, NULL, OPT_HEAD_DIM },
	{ "vocab-size", required_argument, NULL, OPT_VOCAB },
	{ "max-position-embeddings", required_argument, NULL, OPT_MAX_POS },
	{ "rope-theta", required_argument, NULL, OPT_ROPE_THETA },
	{ "rms-norm-eps", required_argument, NULL, OPT_RMS_EPS },
	{ "tie-word-embeddings", no_argument, NULL, OPT_TIE },
	{ "no-tie-word-embeddings", no_argument, NULL, OPT_NO_TIE },
	{ "attention-bias", no_argument, NULL, OPT_ATTN_BIAS },
	{ "rope-scaling", required_argument, NULL, OPT_ROPE_SCALING },
	{ "dtype", required_argument, NULL, OPT_DTYPE },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "shard-size", required_argument, NULL, OPT_SHARD },
	{ "tokenizer", required_argument, NULL, OPT_TOKENIZER },
	{ "train-text", required_argument, NULL, OPT_TRAIN_TEXT },
	{ "tokenizer-vocab", required_argument, NULL, OPT_TOK_VOCAB },
	{ "progress", no_argument, NULL, OPT_PROGRESS },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static void usage(void)
{
	printf("Usage: %s [OPTION]... -o DIR\n"
	       "   or: %s [OPTION]... DIR\n"
	       "Write a deterministic random-weight model in Hugging Face layout into DIR.\n\n"
	       "  -o, --output DIR            the model directory to create\n"
	       "  -f, --force                 replace DIR if it exists (plain files only)\n"
	       "      --no-weights            config and tokenizer only, for engines that make\n"
	       "                              random weights themselves (--load-format dummy)\n"
	       "      --preset NAME           tiny (default), tiny-llama, qwen3-tiny, qwen2.5-7b,\n"
	       "                              qwen3-8b, llama3-8b\n"
	       "      --arch qwen2|qwen3|llama   architecture\n"
	       "      --hidden-size N         --intermediate-size N   --num-layers N\n"
	       "      --num-heads N           --num-kv-heads N        --head-dim N\n"
	       "      --vocab-size N          embedding rows (default: the tokenizer's size\n"
	       "                              rounded up to 128, or the preset's)\n"
	       "      --max-position-embeddings N   --rope-theta X   --rms-norm-eps X\n"
	       "      --tie-word-embeddings, --no-tie-word-embeddings\n"
	       "      --attention-bias        llama, qwen3: biases on q, k, v and o projections\n"
	       "      --rope-scaling none|llama3   llama: rope_scaling in config.json\n"
	       "      --dtype bf16|f16|f32    weight type (default bf16)\n"
	       "      --seed N                random seed (default 0)\n"
	       "      --shard-size BYTES      split weights into shards of at most BYTES\n"
	       "                              (suffixes K, M, G, KiB, MiB, GiB)\n"
	       "      --tokenizer DIR         copy this HF tokenizer instead of training one\n"
	       "      --train-text FILE       train the BPE on FILE (repeatable; default:\n"
	       "                              samples/*.jsonl samples/*.yaml, else built-in)\n"
	       "      --tokenizer-vocab N     BPE size incl. 256 byte tokens (default 512)\n"
	       "      --progress              report progress and the write rate on stderr\n"
	       "  -h, --help                  display this help and exit\n"
	       "  -V, --version               output version information and exit\n\n"
	       "Exit status: 0 ok, 1 a tokenizer or text file is malformed, 2 usage or system error.\n",
	       nd_progname(), nd_progname());
}

/* "1000", "5G" (10^9), "64MiB" (2^20) -> bytes; -1 when malformed. */
static long long parse_size(const char *s)
{
	static const struct { const char *suf; long long mul; } sufs[] = {
		{ "", 1 }, { "K", 1000 }, { "KB", 1000 }, { "M", 1000000 }, { "MB", 1000000 },
		{ "G", 1000000000 }, { "GB", 1000000000 }, { "KiB", 1024 }, { "MiB", 1 << 20 },
		{ "GiB", 1 << 30 },
	};
	char *end;
	long long v = strtoll(s, &end, 10);

	if (end == s || v < 0)
		return -1;
	for (size_t i = 0; i < sizeof(sufs) / sizeof(sufs[0]); i++)
		if (!strcmp(end, sufs[i].suf))
			return v <= (1LL << 50) / sufs[i].mul ? v * sufs[i].mul : -1;
	return -1;
}

struct cli {
	struct mw_params p;
	const char *out;
	const char *preset;
	bool progress;
	const char **texts;     /* (n_texts) --train-text files, then globbed samples */
	int n_texts;
	glob_t g;
	bool globbed;
};

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno ? -1 : 0;
}

static int bad_value(const char *opt, const char *arg)
{
	char name[64];

	snprintf(name, sizeof(name), "--%s", opt);
	return nd_invalid_value(name, arg, NULL);
}

static int set_int(int *dst, const char *arg, const char *opt, long max)
{
	long v;

	if (nd_parse_long(arg, 1, max, &v) < 0)
		return bad_value(opt, arg);
	*dst = (int)v;
	return 0;
}

/* Options that set a size of the model. */
static int apply_size(struct mw_params *p, int opt, const char *arg)
{
	long v;

	switch (opt) {
	case OPT_HIDDEN: return set_int(&p->hidden_size, arg, "hidden-size", 1 << 20);
	case OPT_INTER: return set_int(&p->intermediate_size, arg, "intermediate-size", 1 << 22);
	case OPT_LAYERS: return set_int(&p->num_layers, arg, "num-layers", 4096);
	case OPT_HEADS: return set_int(&p->num_heads, arg, "num-heads", 4096);
	case OPT_KV_HEADS: return set_int(&p->num_kv_heads, arg, "num-kv-heads", 4096);
	case OPT_HEAD_DIM: return set_int(&p->head_dim, arg, "head-dim", 1 << 16);
	case OPT_TOK_VOCAB: return set_int(&p->tokenizer_vocab, arg, "tokenizer-vocab", 1 << 20);
	case OPT_VOCAB:
		if (nd_parse_long(arg, 1, 1L << 24, &v) < 0)
			return bad_value("vocab-size", arg);
		p->vocab_size = v;
		return 0;
	case OPT_MAX_POS:
		if (nd_parse_long(arg, 1, 1L << 30, &v) < 0)
			return bad_value("max-position-embeddings", arg);
		p->max_position_embeddings = v;
		return 0;
	}
	return -1;
}

static int apply_choice(struct cli *c, int opt, const char *arg)
{
	struct mw_params *p = &c->p;

	if (opt == OPT_ARCH && !strcmp(arg, "qwen2"))
		p->arch = MW_ARCH_QWEN2;
	else if (opt == OPT_ARCH && !strcmp(arg, "qwen3"))
		p->arch = MW_ARCH_QWEN3;
	else if (opt == OPT_ARCH && !strcmp(arg, "llama"))
		p->arch = MW_ARCH_LLAMA;
	else if (opt == OPT_ARCH)
		return bad_value("arch", arg);
	else if (opt == OPT_ROPE_SCALING && (!strcmp(arg, "none") || !strcmp(arg, "llama3")))
		p->rope_scaling_llama3 = !strcmp(arg, "llama3");
	else if (opt == OPT_ROPE_SCALING)
		return bad_value("rope-scaling", arg);
	else if (opt == OPT_DTYPE && !strcmp(arg, "bf16"))
		p->dtype = MW_DTYPE_BF16;
	else if (opt == OPT_DTYPE && !strcmp(arg, "f16"))
		p->dtype = MW_DTYPE_F16;
	else if (opt == OPT_DTYPE && !strcmp(arg, "f32"))
		p->dtype = MW_DTYPE_F32;
	else if (opt == OPT_DTYPE)
		return bad_value("dtype", arg);
	return 0;
}

static int apply_opt(struct cli *c, int opt, const char *arg)
{
	struct mw_params *p = &c->p;
	long long size;
	double d;

	switch (opt) {
	case 'o': c->out = arg; return 0;
	case 'f': p->force = true; return 0;
	case OPT_TIE: p->tie_word_embeddings = true; return 0;
	case OPT_NO_TIE: p->tie_word_embeddings = false; return 0;
	case OPT_ATTN_BIAS: p->attention_bias = true; return 0;
	case OPT_PROGRESS: c->progress = true; return 0;
	case OPT_NO_WEIGHTS: p->no_weights = true; return 0;
	case OPT_TOKENIZER: p->tokenizer_dir = arg; return 0;
	case OPT_TRAIN_TEXT: c->texts[c->n_texts++] = arg; return 0;
	case OPT_ARCH: case OPT_ROPE_SCALING: case OPT_DTYPE: return apply_choice(c, opt, arg);
	case OPT_ROPE_THETA: case OPT_RMS_EPS:
		if (nd_parse_double(arg, 1e-30, 1e30, &d) < 0)
			return bad_value(opt == OPT_RMS_EPS ? "rms-norm-eps" : "rope-theta", arg);
		*(opt == OPT_RMS_EPS ? &p->rms_norm_eps : &p->rope_theta) = d;
		return 0;
	case OPT_SEED:
		if (parse_u64(arg, &p->seed) < 0)
			return bad_value("seed", arg);
		return 0;
	case OPT_SHARD:
		if ((size = parse_size(arg)) < 1)
			return bad_value("shard-size", arg);
		p->shard_size = size;
		return 0;
	}
	return apply_size(p, opt, arg);
}

struct opt_arg {
	int opt;
	const char *arg;
};

/* Parses argv; the preset is applied before every other option.  Returns
 * -1 to go on, or the exit status. */
static int parse_args(struct cli *c, int argc, char **argv)
{
	struct opt_arg *oa = calloc((size_t)argc + 1, sizeof(*oa));
	int n = 0, opt, rc = -1;

	c->texts = calloc((size_t)argc + 1, sizeof(char *));
	if (!oa || !c->texts) {
		free(oa);
		nd_error("out of memory");
		return ND_EXIT_USAGE;
	}
	opterr = 0; /* getopt would name argv[0] as given; we name the tool */
	while (rc < 0 && (opt = getopt_long(argc, argv, ":o:fhV", long_opts, NULL)) != -1) {
		if (opt == 'h' || opt == 'V') {
			opt == 'h' ? usage() : nd_print_version();
			rc = ND_EXIT_OK;
		} else if (opt == '?' && optopt && optopt < 256) {
			rc = nd_usage_error("invalid option -- '%c'", optopt);
		} else if (opt == '?') {
			rc = nd_usage_error("unrecognized option '%s'", argv[optind - 1]);
		} else if (opt == ':') {
			rc = nd_usage_error("option '%s' requires an argument", argv[optind - 1]);
		} else if (opt == OPT_PRESET) {
			c->preset = optarg;
		} else {
			oa[n++] = (struct opt_arg){ opt, optarg };
		}
	}
	if (rc < 0 && c->preset && mw_preset(c->preset, &c->p) < 0)
		rc = bad_value("preset", c->preset);
	for (int i = 0; rc < 0 && i < n; i++)
		if (apply_opt(c, oa[i].opt, oa[i].arg) > 0)
			rc = ND_EXIT_USAGE;
	free(oa);
	if (rc < 0 && optind < argc && !c->out)
		c->out = argv[optind++];
	if (rc < 0 && optind < argc)
		rc = nd_usage_error("extra operand '%s'", argv[optind]);
	if (rc < 0 && !c->out)
		rc = nd_usage_error("no output directory (-o DIR)");
	return rc;
}

/* The .jsonl and .yaml files in samples/ of the current directory, sorted. */
static void default_texts(struct cli *c)
{
	int fl = 0;

	if (glob("samples/*.jsonl", 0, NULL, &c->g) == 0)
		fl = GLOB_APPEND;
	if (glob("samples/*.yaml", fl, NULL, &c->g) == 0)
		fl = GLOB_APPEND;
	c->globbed = fl != 0;
	for (size_t i = 0; c->globbed && i < c->g.gl_pathc; i++)
		c->texts[c->n_texts++] = c->g.gl_pathv[i];
}

static void show_progress(void *ud, long long done, long long total)
{
	static int last = -1;
	int pct = total ? (int)(done * 100 / total) : 100;

	(void)ud;
	if (pct != last)
		fprintf(stderr, "\r%s: writing weights: %3d%% of %.1f MB", nd_progname(), pct,
			total / 1e6);
	last = pct;
	if (done == total)
		fputc('\n', stderr);
}

static volatile sig_atomic_t stop_signal;

/* SIGINT, SIGTERM, SIGHUP: the writer stops and removes its temporary
 * directory; main then dies of the same signal. */
static void on_stop_signal(int sig)
{
	stop_signal = sig;
	mw_request_stop();
}

static void catch_stop_signals(void)
{
	struct sigaction sa = { .sa_handler = on_stop_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* Dies of the signal that stopped the write, as if it had not been caught,
 * so that the shell sees it (exit status 128 + signal). */
static void die_of_stop_signal(void)
{
	int sig = stop_signal;

	signal(sig, SIG_DFL);
	raise(sig);
}

static int exit_status(int code)
{
	return code == ENG_E_FORMAT ? ND_EXIT_BAD_INPUT : ND_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	struct cli c = { 0 };
	struct mw_stats st;
	struct eng_error err;
	char msg[2048];
	int rc;

	nd_init(argv[0]);
	c.p = mw_default_params();
	if ((rc = parse_args(&c, argc, argv)) >= 0)
		goto out;
	if (!c.p.tokenizer_dir && c.n_texts == 0)
		default_texts(&c);
	c.p.train_text = c.texts;
	c.p.n_train_text = c.n_texts;
	c.progress = c.progress || isatty(2);
	if (c.progress)
		c.p.progress = show_progress;
	catch_stop_signals();
	if (mw_write(&c.p, c.out, &st, &err) < 0) {
		nd_error("%s", eng_error_format(&err, msg, sizeof(msg)));
		if (stop_signal)
			die_of_stop_signal();
		rc = exit_status(err.code);
		goto out;
	}
	if (c.progress)
		fprintf(stderr, "%s: wrote %s: %lld parameters, %.1f MB of weights in %.2f s"
			" (%.0f MB/s), vocab %ld, tokenizer %d ids\n", nd_progname(), c.out,
			st.n_params, st.weight_bytes / 1e6, st.write_s,
			st.write_s > 0 ? st.weight_bytes / 1e6 / st.write_s : 0.0, st.vocab_size,
			st.tokenizer_size);
	rc = ND_EXIT_OK;
out:
	if (c.globbed)
		globfree(&c.g);
	free(c.texts);
	return nd_finish(rc);
}
