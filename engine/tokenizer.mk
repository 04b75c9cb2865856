## engine/tokenizer: byte-level BPE tokenizer and chat templates.
engine_libengine_a_SOURCES += \
	engine/engine.h engine/ids.h engine/ids.c \
	engine/tokenizer.h \
	engine/tokenizer_int.h \
	engine/tokenizer.c \
	engine/tokenizer_encode.c \
	engine/pretok.c \
	engine/bpe.c \
	engine/chat.h \
	engine/chat_int.h \
	engine/chat.c \
	engine/chat_tmpl.c \
	engine/json_load.h \
	engine/json_load.c

check_PROGRAMS += tests/test-tokenizer
tests_test_tokenizer_SOURCES = tests/test-tokenizer.c
tests_test_tokenizer_LDADD = $(ENGINE_LIBS)
TESTS += tests/test-tokenizer

check_PROGRAMS += tests/test-chat
tests_test_chat_SOURCES = tests/test-chat.c
tests_test_chat_LDADD = $(ENGINE_LIBS)
TESTS += tests/test-chat

check_PROGRAMS += tests/test-chat-golden
tests_test_chat_golden_SOURCES = tests/test-chat-golden.c
tests_test_chat_golden_LDADD = $(ENGINE_LIBS)
TESTS += tests/test-chat-golden
EXTRA_DIST += tests/data/chat-golden tests/golden/gen-chat-golden.py tests/golden/encode-chat-golden.mjs
EXTRA_DIST += tests/data/tokenizer tests/tokenizer

# The encoding benchmark (run by `make bench-tokenizer`, pipelines/bench-tokenizer.mk).
noinst_PROGRAMS += tests/tokenizer/bench-tokenizer
tests_tokenizer_bench_tokenizer_SOURCES = tests/tokenizer/bench-tokenizer.c
tests_tokenizer_bench_tokenizer_LDADD = $(ENGINE_LIBS)

# Prompt rendering per turn, with and without block reuse (`make bench-chat-render`).
noinst_PROGRAMS += tests/tokenizer/bench-chat-render
tests_tokenizer_bench_chat_render_SOURCES = tests/tokenizer/bench-chat-render.c
tests_tokenizer_bench_chat_render_LDADD = $(ENGINE_LIBS)
EXTRA_DIST += samples/tokenizer
