## tools/gpu-batch-infer: the engine's command-line filter: replay and
## generate runs, the persistent worker and its client, and the tokenizer
## modes (--tokenize, --detokenize, --render).
bin_PROGRAMS += tools/gpu-batch-infer
tools_gpu_batch_infer_SOURCES = tools/gpu-batch-infer.c
tools_gpu_batch_infer_LDADD = $(INFER_LIBS)
dist_man_MANS += man/man1/gpu-batch-infer.1

TESTS += tests/gpu-batch-infer-cases.test tests/gpu-batch-infer-r2egym.test \
	tests/gpu-batch-infer-run.test tests/gpu-batch-infer-qwen3.test \
	tests/gpu-batch-infer-serve.test tests/gpu-batch-infer-repeat.test \
	tests/gpu-batch-infer-kv.test tests/gpu-batch-infer-worker.test tests/http-server.test
EXTRA_DIST += tests/gpu-batch-infer-cases.test tests/gpu-batch-infer-r2egym.test \
	tests/gpu-batch-infer-run.test tests/gpu-batch-infer-qwen3.test \
	tests/gpu-batch-infer-serve.test tests/gpu-batch-infer-repeat.test \
	tests/gpu-batch-infer-kv.test tests/gpu-batch-infer-worker.test tests/http-server.test \
	tests/gpu-batch-infer

# --quantization fp8 (FP8 weights, W8A8) on the CPU reference.
TESTS += tests/gpu-batch-infer-quant.test
EXTRA_DIST += tests/gpu-batch-infer-quant.test

# Recorded numbers out of range (env_exec_time, --env-time-scale).
TESTS += tests/gpu-batch-infer-numbers.test
EXTRA_DIST += tests/gpu-batch-infer-numbers.test
