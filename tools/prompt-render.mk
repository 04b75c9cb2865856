## tools/prompt-render: trajectory records -> conversations / chat requests.
noinst_LIBRARIES += tools/common/libndrender.a
tools_common_libndrender_a_SOURCES = \
	tools/common/nd_render.h \
	tools/common/nd_render.c \
	tools/common/nd_yaml.h \
	tools/common/nd_yaml.c

PROMPT_RENDER_LIBS = tools/common/libndrender.a $(ND_LIBS) $(YAML_LIBS) $(JANSSON_LIBS)

bin_PROGRAMS += tools/prompt-render
tools_prompt_render_SOURCES = tools/prompt-render.c
tools_prompt_render_LDADD = $(PROMPT_RENDER_LIBS)

dist_man_MANS += man/man1/prompt-render.1 man/man5/trajbench-records.5

check_PROGRAMS += tests/test-nd-template tests/test-nd-yaml tests/test-prompt-render-r2egym \
	tests/test-prompt-render-tokens
tests_test_nd_template_LDADD = $(PROMPT_RENDER_LIBS)
tests_test_nd_yaml_LDADD = $(PROMPT_RENDER_LIBS)
tests_test_prompt_render_r2egym_LDADD = $(PROMPT_RENDER_LIBS)
tests_test_prompt_render_r2egym_SOURCES = tests/test-prompt-render-r2egym.c \
	tests/test-prompt-render-helper.h
tests_test_prompt_render_tokens_SOURCES = tests/test-prompt-render-tokens.c \
	tests/test-prompt-render-helper.h
tests_test_prompt_render_tokens_LDADD = $(ENGINE_LIBS) -lm
TESTS += tests/test-nd-template tests/test-nd-yaml tests/test-prompt-render-r2egym \
	tests/test-prompt-render-tokens \
	tests/prompt-render-cases.test
EXTRA_DIST += tests/prompt-render-cases.test tests/prompt-render
