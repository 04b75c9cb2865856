## engine/: the inference engine library.  Area fragments (engine/*.mk)
## append their sources to engine_libengine_a_SOURCES.
noinst_LIBRARIES += engine/libengine.a
engine_libengine_a_SOURCES = \
	engine/error.h engine/clock.h \
	engine/error.c

# Position-independent, so that the CUDA backend's shared object
# (engine/cuda.mk) can link the engine code it calls.
engine_libengine_a_CFLAGS = $(AM_CFLAGS) -fPIC
AM_CPPFLAGS += -DTRAJBENCH_PKGLIBDIR='"$(pkglibdir)"'

# No CUDA here: the CUDA backend is loaded at run time (engine/cuda.mk).
ENGINE_LIBS = engine/libengine.a $(PCRE2_LIBS) $(UTF8PROC_LIBS) $(JANSSON_LIBS) $(MHD_LIBS) \
	-lpthread

include engine/tokenizer.mk
include engine/model.mk
include engine/sched.mk
include engine/cuda.mk
include engine/router.mk
include engine/remote.mk
include engine/http.mk
