/*
 * kn_mma.cuh: the tensor-core product of the attention kernels: mma.sync
 * m16n8k16 with fp32 accumulators, on bf16 or f16 operands.  Fragment layouts (PTX ISA): lane (g = lane / 4,
 * t = lane % 4) holds rows g and g + 8 of A and C, columns 2t, 2t + 1
 * (and + 8 for A); B column g, rows 2t, 2t + 1 (and + 8).
 */
#ifndef TRAJBENCH_KN_MMA_CUH
#define TRAJBENCH_KN_MMA_CUH

#include <stdint.h>

/* d (16 x 8) += a (16 x 16, row-major) . b (16 x 8, col-major): bf16
 * operands, or f16 (F16). */
template <bool F16>
static __device__ __forceinline__ void mma_t(float *d, const uint32_t *a, uint32_t b0,
					     uint32_t b1)
{
	if constexpr (F16)
		asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
			     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
			     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
			     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
	else
		asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
			     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
			     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
			     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#endif
