## engine/: the inference engine library.  Area fragments (engine/*.mk)
## append their sources to engine_libengine_a_SOURCES.
noinst_LIBRARIES += engine/libengine.a
engine_libengine_a_SOURCES = \
	engine/error.h engine/clock.h \
	engine/error.c

ENGINE_LIBS = engine/libengine.a $(PCRE2_LIBS) $(UTF8PROC_LIBS) $(JANSSON_LIBS) $(KERNELS_LIBS)

include engine/tokenizer.mk
include engine/model.mk
include engine/sched.mk
include engine/cuda.mk
include engine/router.mk
