## tools/prompt-render: trajectory records -> conversations / chat requests.
bin_PROGRAMS += tools/prompt-render
tools_prompt_render_SOURCES = tools/prompt-render.c
tools_prompt_render_LDADD = $(RENDER_LIBS)

dist_man_MANS += man/man1/prompt-render.1 man/man5/trajbench-records.5

check_PROGRAMS += tests/test-prompt-render-tokens
tests_test_prompt_render_tokens_SOURCES = tests/test-prompt-render-tokens.c \
	tests/test-prompt-render-helper.h
tests_test_prompt_render_tokens_LDADD = $(ENGINE_LIBS) -lm
TESTS += tests/test-prompt-render-tokens tests/prompt-render-cases.test
EXTRA_DIST += tests/prompt-render-cases.test tests/prompt-render
