## tools/modelgen: model-writer's library: deterministic random-weight
## models in HF layout and the byte-level BPE trainer behind their
## tokenizers.  No engine code calls it; the tests use it to make models.
noinst_LIBRARIES += tools/modelgen/libmodelgen.a
tools_modelgen_libmodelgen_a_SOURCES = \
	tools/modelgen/bpe_train.h tools/modelgen/bpe_train.c \
	tools/modelgen/model_writer.h tools/modelgen/model_writer_int.h \
	tools/modelgen/model_writer.c tools/modelgen/model_writer_tok.c \
	tools/modelgen/mw_files.c
MODELGEN_LIBS = tools/modelgen/libmodelgen.a $(ENGINE_LIBS) $(PCRE2_LIBS) $(UTF8PROC_LIBS) \
	$(JANSSON_LIBS) -lm
