## tests/fuzz: libFuzzer harnesses, one per parser (tests/fuzz/fuzz.h).
## Every build makes replay-NAME, which `make check` runs over the seeds in
## corpus/NAME and the inputs that once failed in regress/NAME.  A build
## configured with --enable-fuzzing (clang, ASan, UBSan) also makes
## fuzz-NAME; `make fuzz FUZZ_SECONDS=N` runs each for N seconds.
## The program lists are spelled out because automake needs each name.
FUZZ_NAMES = traj jdoc safetensors model-config render tokenizer-load tokenizer sampler stats svg worker
FUZZ_SECONDS = 60
FUZZ_PREPROC = $(AM_CPPFLAGS) -DFUZZ_TOP_SRCDIR='"$(abs_top_srcdir)"'
FUZZ_LINKING = $(AM_LDFLAGS) -fsanitize=fuzzer
FUZZ_INCLUDES = tests/fuzz/fuzz.h
FUZZ_REPLAY_PROGS = tests/fuzz/replay-traj \
	tests/fuzz/replay-jdoc \
	tests/fuzz/replay-safetensors \
	tests/fuzz/replay-model-config \
	tests/fuzz/replay-render \
	tests/fuzz/replay-tokenizer-load \
	tests/fuzz/replay-tokenizer \
	tests/fuzz/replay-sampler \
	tests/fuzz/replay-stats \
	tests/fuzz/replay-svg \
	tests/fuzz/replay-worker
FUZZ_PROGS = tests/fuzz/fuzz-traj \
	tests/fuzz/fuzz-jdoc \
	tests/fuzz/fuzz-safetensors \
	tests/fuzz/fuzz-model-config \
	tests/fuzz/fuzz-render \
	tests/fuzz/fuzz-tokenizer-load \
	tests/fuzz/fuzz-tokenizer \
	tests/fuzz/fuzz-sampler \
	tests/fuzz/fuzz-stats \
	tests/fuzz/fuzz-svg \
	tests/fuzz/fuzz-worker
check_PROGRAMS += $(FUZZ_REPLAY_PROGS)
EXTRA_PROGRAMS = $(FUZZ_PROGS)
CLEANFILES += $(FUZZ_PROGS)
tests_fuzz_replay_traj_SOURCES = tests/fuzz/fuzz-traj.c tests/fuzz/replay.c $(FUZZ_INCLUDES)
tests_fuzz_replay_traj_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_replay_traj_LDADD = $(TRAJ_LIBS) $(JANSSON_LIBS)
tests_fuzz_fuzz_traj_SOURCES = tests/fuzz/fuzz-traj.c $(FUZZ_INCLUDES)
tests_fuzz_fuzz_traj_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_fuzz_traj_LDFLAGS = $(FUZZ_LINKING)
tests_fuzz_fuzz_traj_LDADD = $(TRAJ_LIBS) $(JANSSON_LIBS)
tests_fuzz_replay_jdoc_SOURCES = tests/fuzz/fuzz-jdoc.c tests/fuzz/replay.c $(FUZZ_INCLUDES)
tests_fuzz_replay_jdoc_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_replay_jdoc_LDADD = $(TRAJ_LIBS) $(JANSSON_LIBS)
tests_fuzz_fuzz_jdoc_SOURCES = tests/fuzz/fuzz-jdoc.c $(FUZZ_INCLUDES)
tests_fuzz_fuzz_jdoc_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_fuzz_jdoc_LDFLAGS = $(FUZZ_LINKING)
tests_fuzz_fuzz_jdoc_LDADD = $(TRAJ_LIBS) $(JANSSON_LIBS)
tests_fuzz_replay_safetensors_SOURCES = tests/fuzz/fuzz-safetensors.c tests/fuzz/replay.c $(FUZZ_INCLUDES)
tests_fuzz_replay_safetensors_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_replay_safetensors_LDADD = $(ENGINE_LIBS)
tests_fuzz_fuzz_safetensors_SOURCES = tests/fuzz/fuzz-safetensors.c $(FUZZ_INCLUDES)
tests_fuzz_fuzz_safetensors_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_fuzz_safetensors_LDFLAGS = $(FUZZ_LINKING)
tests_fuzz_fuzz_safetensors_LDADD = $(ENGINE_LIBS)
tests_fuzz_replay_model_config_SOURCES = tests/fuzz/fuzz-model-config.c tests/fuzz/replay.c $(FUZZ_INCLUDES)
tests_fuzz_replay_model_config_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_replay_model_config_LDADD = $(ENGINE_LIBS)
tests_fuzz_fuzz_model_config_SOURCES = tests/fuzz/fuzz-model-config.c $(FUZZ_INCLUDES)
tests_fuzz_fuzz_model_config_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_fuzz_model_config_LDFLAGS = $(FUZZ_LINKING)
tests_fuzz_fuzz_model_config_LDADD = $(ENGINE_LIBS)
tests_fuzz_replay_render_SOURCES = tests/fuzz/fuzz-render.c tests/fuzz/replay.c $(FUZZ_INCLUDES)
tests_fuzz_replay_render_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_replay_render_LDADD = $(RENDER_LIBS)
tests_fuzz_fuzz_render_SOURCES = tests/fuzz/fuzz-render.c $(FUZZ_INCLUDES)
tests_fuzz_fuzz_render_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_fuzz_render_LDFLAGS = $(FUZZ_LINKING)
tests_fuzz_fuzz_render_LDADD = $(RENDER_LIBS)
tests_fuzz_replay_tokenizer_load_SOURCES = tests/fuzz/fuzz-tokenizer-load.c tests/fuzz/replay.c $(FUZZ_INCLUDES)
tests_fuzz_replay_tokenizer_load_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_replay_tokenizer_load_LDADD = $(ENGINE_LIBS)
tests_fuzz_fuzz_tokenizer_load_SOURCES = tests/fuzz/fuzz-tokenizer-load.c $(FUZZ_INCLUDES)
tests_fuzz_fuzz_tokenizer_load_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_fuzz_tokenizer_load_LDFLAGS = $(FUZZ_LINKING)
tests_fuzz_fuzz_tokenizer_load_LDADD = $(ENGINE_LIBS)
tests_fuzz_replay_tokenizer_SOURCES = tests/fuzz/fuzz-tokenizer.c tests/fuzz/replay.c $(FUZZ_INCLUDES)
tests_fuzz_replay_tokenizer_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_replay_tokenizer_LDADD = $(ENGINE_LIBS)
tests_fuzz_fuzz_tokenizer_SOURCES = tests/fuzz/fuzz-tokenizer.c $(FUZZ_INCLUDES)
tests_fuzz_fuzz_tokenizer_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_fuzz_tokenizer_LDFLAGS = $(FUZZ_LINKING)
tests_fuzz_fuzz_tokenizer_LDADD = $(ENGINE_LIBS)
tests_fuzz_replay_sampler_SOURCES = tests/fuzz/fuzz-sampler.c tests/fuzz/replay.c $(FUZZ_INCLUDES)
tests_fuzz_replay_sampler_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_replay_sampler_LDADD = $(ENGINE_LIBS)
tests_fuzz_fuzz_sampler_SOURCES = tests/fuzz/fuzz-sampler.c $(FUZZ_INCLUDES)
tests_fuzz_fuzz_sampler_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_fuzz_sampler_LDFLAGS = $(FUZZ_LINKING)
tests_fuzz_fuzz_sampler_LDADD = $(ENGINE_LIBS)
tests_fuzz_replay_stats_SOURCES = tests/fuzz/fuzz-stats.c tests/fuzz/replay.c $(FUZZ_INCLUDES)
tests_fuzz_replay_stats_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_replay_stats_LDADD = $(STATS_LIBS) $(JANSSON_LIBS)
tests_fuzz_fuzz_stats_SOURCES = tests/fuzz/fuzz-stats.c $(FUZZ_INCLUDES)
tests_fuzz_fuzz_stats_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_fuzz_stats_LDFLAGS = $(FUZZ_LINKING)
tests_fuzz_fuzz_stats_LDADD = $(STATS_LIBS) $(JANSSON_LIBS)
tests_fuzz_replay_svg_SOURCES = tests/fuzz/fuzz-svg.c tests/fuzz/replay.c $(FUZZ_INCLUDES)
tests_fuzz_replay_svg_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_replay_svg_LDADD = $(REPORT_LIBS)
tests_fuzz_fuzz_svg_SOURCES = tests/fuzz/fuzz-svg.c $(FUZZ_INCLUDES)
tests_fuzz_fuzz_svg_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_fuzz_svg_LDFLAGS = $(FUZZ_LINKING)
tests_fuzz_fuzz_svg_LDADD = $(REPORT_LIBS)
tests_fuzz_replay_worker_SOURCES = tests/fuzz/fuzz-worker.c tests/fuzz/replay.c $(FUZZ_INCLUDES)
tests_fuzz_replay_worker_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_replay_worker_LDADD = $(ENGINE_LIBS)
tests_fuzz_fuzz_worker_SOURCES = tests/fuzz/fuzz-worker.c $(FUZZ_INCLUDES)
tests_fuzz_fuzz_worker_CPPFLAGS = $(FUZZ_PREPROC)
tests_fuzz_fuzz_worker_LDFLAGS = $(FUZZ_LINKING)
tests_fuzz_fuzz_worker_LDADD = $(ENGINE_LIBS)
TESTS += tests/fuzz/replay.test
EXTRA_DIST += tests/fuzz/replay.test tests/fuzz/run-fuzz.sh tests/fuzz/corpus tests/fuzz/regress

if ENABLE_FUZZING
fuzz: $(FUZZ_PROGS)
	@FUZZ_NAMES='$(FUZZ_NAMES)' top_srcdir='$(abs_top_srcdir)' \
		$(SHELL) $(top_srcdir)/tests/fuzz/run-fuzz.sh $(FUZZ_SECONDS)
else
fuzz:
	@echo "make fuzz: configure with --enable-fuzzing (./bootstrap --enable-fuzzing)" >&2; exit 2
endif
.PHONY: fuzz

clean-local: clean-fuzz
clean-fuzz:
	-rm -rf tests/fuzz/work tests/fuzz/artifacts
.PHONY: clean-fuzz
