## kernels/: CUDA kernels, one op per .cu, built into a static convenience
## library (kernels/libkernels.a) through the .cu.o rule below.  CPU-only
## builds compile none of it.
if HAVE_CUDA
NVCCFLAGS = -O3 -std=c++17 $(NVCC_ARCH_FLAGS) -Xcompiler -Wall
SUFFIXES = .cu
.cu.o:
	$(AM_V_GEN)$(NVCC) $(NVCCFLAGS) $(CUDA_CPPFLAGS) -I$(srcdir) -MMD -MF $(@:.o=.d) -c -o $@ $<
KERNELS_LIBS = $(CUDA_LIBS)
else
KERNELS_LIBS =
endif
