## tools/render: prompt-render's library: the agent's YAML config, its
## prompt templates, and the R2E-Gym conversation and request rendering.
noinst_LIBRARIES += tools/render/librender.a
tools_render_librender_a_SOURCES = \
	tools/render/nd_render.h tools/render/nd_render.c \
	tools/render/nd_yaml.h tools/render/nd_yaml.c
RENDER_LIBS = tools/render/librender.a $(ND_LIBS) $(YAML_LIBS) $(JANSSON_LIBS)

check_PROGRAMS += tests/test-nd-template tests/test-nd-yaml tests/test-prompt-render-r2egym
tests_test_nd_template_LDADD = $(RENDER_LIBS)
tests_test_nd_yaml_LDADD = $(RENDER_LIBS)
tests_test_prompt_render_r2egym_SOURCES = tests/test-prompt-render-r2egym.c \
	tests/test-prompt-render-helper.h
tests_test_prompt_render_r2egym_LDADD = $(RENDER_LIBS)
TESTS += tests/test-nd-template tests/test-nd-yaml tests/test-prompt-render-r2egym
