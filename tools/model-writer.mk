## tools/model-writer: deterministic random-weight models in HF layout
## (tools/modelgen) and the tiny model of the demos.
bin_PROGRAMS += tools/model-writer
tools_model_writer_SOURCES = tools/model-writer.c
tools_model_writer_LDADD = $(MODELGEN_LIBS) $(ND_LIBS)
dist_man_MANS += man/man1/model-writer.1

check_PROGRAMS += tests/test-bpe-train tests/test-model-writer tests/test-model-writer-load
TESTS += tests/test-bpe-train tests/test-model-writer tests/test-model-writer-load \
	tests/model-writer-cases.test tests/model-writer-templates.test \
	tests/model-writer-signal.test
tests_test_bpe_train_SOURCES = tests/test-bpe-train.c
tests_test_bpe_train_LDADD = $(MODELGEN_LIBS)
tests_test_model_writer_SOURCES = tests/test-model-writer.c
tests_test_model_writer_LDADD = $(MODELGEN_LIBS)
tests_test_model_writer_load_SOURCES = tests/test-model-writer-load.c
tests_test_model_writer_load_LDADD = $(MODELGEN_LIBS)
EXTRA_DIST += tests/model-writer-cases.test tests/model-writer-templates.test \
	tests/model-writer-signal.test \
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
