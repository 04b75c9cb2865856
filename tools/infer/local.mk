## tools/infer: gpu-batch-infer's front over the engine: the run options,
## the in-process run, the worker and its client, the tokenizer modes
## (--tokenize, --detokenize, --render).  It sees only engine/engine.h.
noinst_LIBRARIES += tools/infer/libinfer.a
tools_infer_libinfer_a_SOURCES = \
	tools/infer/nd_infer.h tools/infer/nd_infer.c tools/infer/nd_router.c \
	tools/infer/nd_progress.h tools/infer/nd_progress.c \
	tools/infer/nd_tokmodes.h tools/infer/nd_tokmodes.c
INFER_LIBS = tools/infer/libinfer.a $(ENGINE_LIBS) $(ND_LIBS) -lm -lpthread
