## tools/gpu-batch-infer: the engine's command-line filter.  For now the
## tokenizer and chat-template modes (--tokenize, --detokenize, --render).
bin_PROGRAMS += tools/gpu-batch-infer
tools_gpu_batch_infer_SOURCES = tools/gpu-batch-infer.c
tools_gpu_batch_infer_LDADD = $(ENGINE_LIBS) $(ND_LIBS) -lm
dist_man_MANS += man/man1/gpu-batch-infer.1

TESTS += tests/gpu-batch-infer-cases.test tests/gpu-batch-infer-r2egym.test
EXTRA_DIST += tests/gpu-batch-infer-cases.test tests/gpu-batch-infer-r2egym.test \
	tests/gpu-batch-infer
