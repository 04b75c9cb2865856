## tools/model-writer: deterministic random-weight models in HF layout, the
## BPE trainer behind their tokenizers, and the tiny model of the demos.
engine_libengine_a_SOURCES += \
	engine/bpe_train.h engine/bpe_train.c \
	engine/model_writer.h engine/model_writer_int.h \
	engine/model_writer.c engine/model_writer_tok.c

bin_PROGRAMS += tools/model-writer
tools_model_writer_SOURCES = tools/model-writer.c
tools_model_writer_LDADD = engine/libengine.a $(ND_LIBS) $(PCRE2_LIBS) $(UTF8PROC_LIBS) \
	$(YAML_LIBS) $(JANSSON_LIBS) -lm
dist_man_MANS += man/man1/model-writer.1

check_PROGRAMS += tests/test-bpe-train tests/test-model-writer tests/test-model-writer-load
TESTS += tests/test-bpe-train tests/test-model-writer tests/test-model-writer-load \
	tests/model-writer-cases.test tests/model-writer-templates.test
tests_test_bpe_train_SOURCES = tests/test-bpe-train.c
tests_test_bpe_train_LDADD = $(ENGINE_LIBS) -lm
tests_test_model_writer_SOURCES = tests/test-model-writer.c
tests_test_model_writer_LDADD = $(ENGINE_LIBS) -lm
tests_test_model_writer_load_SOURCES = tests/test-model-writer-load.c
tests_test_model_writer_load_LDADD = $(ENGINE_LIBS) -lm
EXTRA_DIST += tests/model-writer-cases.test tests/model-writer-templates.test \
	tests/model-writer samples/tiny-model.args

## The tiny model of the demos and `make report`: one line of model-writer
## arguments in samples/tiny-model.args, trained on the samples.
TINY_MODEL_TEXT = $(wildcard $(srcdir)/samples/*.jsonl $(srcdir)/samples/*.yaml)
out/models/tiny/config.json: tools/model-writer$(EXEEXT) $(srcdir)/samples/tiny-model.args \
		$(TINY_MODEL_TEXT)
	$(AM_V_GEN)$(MKDIR_P) out/models && \
	tools/model-writer$(EXEEXT) --force `cat $(srcdir)/samples/tiny-model.args` \
		$(patsubst %,--train-text %,$(TINY_MODEL_TEXT)) -o out/models/tiny
tiny-model: out/models/tiny/config.json
.PHONY: tiny-model
