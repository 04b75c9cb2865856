## kernels/: CUDA kernels, one op per .cu, built into a static convenience
## library (kernels/libkernels.a) through the .cu.o rule below, position-
## independent for the CUDA backend's shared object.  CPU-only builds
## compile none of it.  That object, the GPU tests and the benchmark link
## it through $(KERNELS_LIBS) (engine/cuda.mk); nothing else does.
if HAVE_CUDA
NVCCFLAGS = -O3 -std=c++17 $(NVCC_ARCH_FLAGS) -Xcompiler -Wall -Xcompiler -fPIC
SUFFIXES = .cu
.cu.o:
	$(AM_V_GEN)$(NVCC) $(NVCCFLAGS) $(CUDA_CPPFLAGS) -I$(srcdir) -MMD -MF $(@:.o=.d) -c -o $@ $<

noinst_LIBRARIES += kernels/libkernels.a
kernels_libkernels_a_SOURCES = \
	kernels/kn.h kernels/kn_check.cuh \
	kernels/runtime.cu kernels/kn_gemm.cuh kernels/gemm.cu kernels/gemm_fp8.cu \
	kernels/embed.cu kernels/rmsnorm.cu kernels/rope_qkv.cu kernels/silu_mul.cu \
	kernels/kn_fp8.cuh kernels/kn_mma.cuh kernels/fp8_convert.cu \
	kernels/kn_attn.cuh kernels/attention.cu kernels/attn_prefill_tc.cu \
	kernels/kn_wgmma.cuh kernels/attn_prefill_wg.cu kernels/attn_prefill_wg2.cu \
	kernels/attn_decode_tc.cu kernels/argmax.cu kernels/logprob.cu kernels/fill_random.cu
kernels_libkernels_a_SOURCES += \
	kernels/tp_sum.cu kernels/fill_slice.cu kernels/vocab_partial.cu kernels/tp_runtime.cu
CLEANFILES += kernels/*.d
KERNELS_LIBS = kernels/libkernels.a $(CUDA_LIBS)
else
KERNELS_LIBS =
endif
