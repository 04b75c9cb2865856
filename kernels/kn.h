/*
 * kn.h: the CUDA kernels and device runtime wrappers, as seen from C.
 *
 * Every entry point checks its arguments, enqueues its work on the given
 * stream and returns 0 or a negative status (KN_E_*, numerically equal to
 * the engine's ENG_E_* codes).  On failure kn_last_error() describes it
 * as "call: library message (file:line)"; the text is per thread.
 *
 * Storage is bf16 (uint16_t here, the upper half of an IEEE fp32) for
 * weights, KV pages and GEMM inputs; arithmetic is fp32.  KV pages may
 * instead hold FP8 E4M3 bytes (KN_KV_FP8_E4M3) with per-head scales.
 * Matrices are row-major.  Nothing here knows about models or batches beyond the
 * arrays passed in: the engine's CUDA backend builds those.
 */
#ifndef TRAJBENCH_KN_H
#define TRAJBENCH_KN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
	KN_OK = 0,
	KN_E_INVALID = -4,   /* bad argument (== ENG_E_INVALID) */
	KN_E_DEVICE = -7,    /* CUDA / cuBLAS failure, no device, out of device memory */
};

typedef struct CUstream_st *kn_stream;   /* a cudaStream_t; NULL: the default stream */
typedef struct CUevent_st *kn_event;     /* a cudaEvent_t */

/* The message of this thread's last failure ("" when none). */
const char *kn_last_error(void);

/* ---------------------------------------------------------------- runtime */

/* Number of devices; 0 with KN_E_DEVICE when the driver has none. */
int kn_device_count(int *n);
int kn_set_device(int dev);
/* Name, multiprocessor count and memory of device dev. */
int kn_device_info(int dev, char *name, size_t name_len, int *n_sm, size_t *mem_bytes);
int kn_mem_info(size_t *free_bytes, size_t *total_bytes);

/* Programmatic dependent launch (on by default): each kernel may be
 * scheduled while the one before it in its stream drains, and waits for
 * it (griddepcontrol) before touching memory; kn_set_pdl(0) launches them
 * plainly, for comparison.  Process-wide; takes effect at the next launch
 * (graphs keep what they were captured with). */
void kn_set_pdl(int on);
int kn_pdl(void);

int kn_malloc(void **p, size_t n);
void kn_free(void *p);                   /* NULL is allowed */
int kn_host_alloc(void **p, size_t n);   /* pinned host memory */
void kn_host_free(void *p);

int kn_memcpy_h2d(void *dst, const void *src, size_t n, kn_stream s);
int kn_memcpy_d2h(void *dst, const void *src, size_t n, kn_stream s);
int kn_memcpy_d2d(void *dst, const void *src, size_t n, kn_stream s);
int kn_memset(void *dst, int byte, size_t n, kn_stream s);

int kn_stream_create(kn_stream *s);
void kn_stream_destroy(kn_stream s);
int kn_stream_sync(kn_stream s);

int kn_event_create(kn_event *e);
void kn_event_destroy(kn_event e);
int kn_event_record(kn_event e, kn_stream s);
/* Milliseconds between two recorded events (synchronizes on end). */
int kn_event_elapsed_ms(kn_event start, kn_event end, float *ms);

/* ---------------------------------------------------------------- GEMM */

/* A cuBLAS handle bound to one stream, with its workspace. */
struct kn_gemm;

int kn_gemm_create(struct kn_gemm **out, kn_stream s);
void kn_gemm_free(struct kn_gemm *g);

/* y (m, n) = x (m, k) . w (n, k)^T, bf16 operands, fp32 accumulation;
 * y is bf16 (y_f32 0), fp32 (KN_Y_F32), or fp32 with the product added
 * to what it holds (KN_Y_F32_ADD: y += x . w^T, e.g. straight into a
 * residual stream).  ldy >= n is y's row stride. */
#define KN_Y_F32 1
#define KN_Y_F32_ADD 2
int kn_gemm_bf16(struct kn_gemm *g, void *y, int y_f32, int ldy, const uint16_t *x,
		 const uint16_t *w, int m, int n, int k);

/* The same product for skinny x (1 <= m <= 4) by the weight-streaming
 * kernel alone on path: 1, 2 or 4 warps a row of w, with
 * KN_SKINNY_LOADS8 added for 8 loads in flight a lane instead of 4
 * (kn_gemm_bf16 times the paths against cuBLAS once per shape and uses
 * the fastest): k a multiple of 8, x and w 16-byte aligned.  Every path
 * gives the same bits run after run. */
#define KN_SKINNY_LOADS8 8
int kn_gemm_skinny_bf16(void *y, int y_f32, int ldy, const uint16_t *x, const uint16_t *w,
			int m, int n, int k, int path, kn_stream s);

/* act (m, inter) bf16 = silu(gate) * up of the product x (m, k) . w^T,
 * w (2 inter, k) holding the gate rows then the up rows (the fused
 * gate/up projection), bias (2 inter) or NULL added to both first: the
 * bits of kn_gemm_bf16 into gu (m, 2 inter, bf16) followed by
 * kn_silu_mul.  Where kn_gemm_bf16 picks the skinny kernel for the
 * product, one launch computes both halves and writes act alone (gu
 * untouched); else those two calls. */
int kn_gemm_glu_bf16(struct kn_gemm *g, uint16_t *act, uint16_t *gu, const uint16_t *x,
		     const uint16_t *w, const float *bias, int m, int inter, int k);

/* kn_gemm_glu_bf16's fused launch alone on a kn_gemm_skinny_bf16 path
 * (1, 2 or 4 warps an output; each warp's gate and up rows together keep
 * the path's loads in flight a lane), 1 <= m <= 4, k a multiple of 8, x
 * and w 16-byte aligned. */
int kn_gemm_skinny_glu_bf16(uint16_t *act, const uint16_t *x, const uint16_t *w,
			    const float *bias, int m, int inter, int k, int path, kn_stream s);

/* Whether kn_gemm_glu_bf16 fuses SiLU into the skinny kernel (on) or
 * launches the product and kn_silu_mul (off, the default: on one H100
 * the fused form was no faster).  Process-wide, for measuring; the bits
 * are the same. */
void kn_skinny_glu(int on);

/* Whether kn_gemm_bf16 may split a skinny product's rows over 2 or 4
 * warps and keep 8 loads in flight a lane (on, the default) or keeps one
 * warp a row at 4 loads (off: the ablation).  Process-wide, for measuring
 * (bench-cuda); shapes are picked again under the new setting. */
void kn_skinny_splits(int on);

/* Loads in flight a lane of the FP8 skinny weight-streaming product for
 * products of up to 16384 rows of w (the qkv, o and down projections): 4
 * (wide 0, the default) or 8 (wide 1).  Process-wide, for measuring
 * (bench-cuda); the sums are the same either way.  (The bf16 kernel's
 * loads are picked per shape with its splits.) */
void kn_skinny_wide(int wide);

/* FP8 weights (W8A8): a row of n values is quantized as engine/kv_fp8.c's
 * eng_fp8_quantize_row does, bit for bit: scale = max |x| / 448 (at least
 * 1e-12), bytes e4m3(x * (1 / scale)).  q (rows, cols) bytes and scale
 * (rows) from x (rows, cols) bf16. */
int kn_quant_rows_e4m3(uint8_t *q, float *scale, const uint16_t *x, int rows, int cols,
		       kn_stream s);

/* y (m, n) = xs[i] ws[j] sum_k e4m3(xq[i][k]) e4m3(w[j][k]), fp32 sums,
 * where x (m, k) bf16 is first quantized by rows into xq (m, k) bytes
 * and xs (m) (the caller's scratch), and w (n, k) holds E4M3 bytes with
 * row scales ws (n).  y bf16 (y_f32 0) or fp32 (KN_Y_F32); ldy >= n.
 * k a multiple of 16; w and xq 16-byte aligned.  path: KN_FP8_AUTO (the
 * weight-streaming tensor-core kernel up to KN_FP8_SKINNY_M rows when k is
 * a multiple of 64, else cuBLASLt), or either one forced (for tests and
 * benchmarks). */
#define KN_FP8_SKINNY_M 32
enum { KN_FP8_AUTO = 0, KN_FP8_SKINNY = 1, KN_FP8_CUBLASLT = 2 };
int kn_gemm_fp8(struct kn_gemm *g, void *y, int y_f32, int ldy, const uint16_t *x,
		const uint8_t *w, const float *ws, int m, int n, int k, uint8_t *xq, float *xs,
		int path);
/* The same product of rows already quantized: xq (m, k) bytes, xs (m). */
int kn_gemm_fp8_q(struct kn_gemm *g, void *y, int y_f32, int ldy, const uint8_t *xq,
		  const float *xs, const uint8_t *w, const float *ws, int m, int n, int k,
		  int path);

/* ---------------------------------------------------------------- ops */

/* x (n_rows, hidden) fp32 = table (vocab, hidden) bf16 rows ids (n_rows).
 * Ids outside [0, vocab) give zero rows. */
int kn_embed(float *x, const uint16_t *table, const int32_t *ids, int n_rows, int hidden,
	     int vocab, kn_stream s);

/* Residual add fused with RMSNorm.  For each of n_rows rows r:
 *   src = rows ? rows[r] : r
 *   if y: x[src] += y[src] (+ bias)                   x (., hidden) fp32, y fp32
 *   if out: out[r] = bf16(w * x[src] / rms(x[src]))  w (hidden) fp32
 * rows (a gather, for the LM head) is allowed only when y is NULL. */
int kn_add_rmsnorm(float *x, const float *y, const float *bias, const float *w,
		   uint16_t *out, const int32_t *rows, int n_rows, int hidden, float eps,
		   kn_stream s);
/* The add and the norm, the output row going out as an FP8 product's
 * input: q (n_rows, hidden) bytes and qs (n_rows) scales, those
 * kn_quant_rows_e4m3 gives for the bf16 out of kn_add_rmsnorm. */
int kn_add_rmsnorm_e4m3(float *x, const float *y, const float *bias, const float *w,
			uint8_t *q, float *qs, int n_rows, int hidden, float eps, kn_stream s);

/* RoPE (rotate-half) on the q and k parts of qkv, fused with the bias add
 * and the write of k and v into the paged cache:
 *   qkv (n_rows, (n_heads + 2 n_kv) head_dim) fp32: [q | k | v] per row
 *   bias (same row shape) fp32 or NULL
 *   q_norm, k_norm (head_dim) fp32, both or neither (Qwen3): each q head
 *     and each k head x (head_dim) becomes w * x / sqrt(mean(x^2) + eps),
 *     bias added first, before the rotation; head_dim <= 256
 *   q_out (n_rows, n_heads head_dim) bf16
 *   k_cache, v_cache (n_slots, n_kv, head_dim) bf16: one layer's pages,
 *     row slot[r] = page * page_size + pos % page_size
 *   pos (n_rows) token positions, inv_freq (head_dim / 2) fp32 */
int kn_rope_qkv(const float *qkv, const float *bias, const float *q_norm, const float *k_norm,
		float eps, const int32_t *pos, const int32_t *slot, const float *inv_freq,
		uint16_t *q_out, uint16_t *k_cache, uint16_t *v_cache, int n_rows, int n_heads,
		int n_kv, int head_dim, kn_stream s);

/* The same with K and V stored as FP8 E4M3 bytes (k_cache, v_cache
 * (n_slots, n_kv, head_dim) uint8): element x of KV head h is written as
 * e4m3(x * (1 / k_scale[h])) (v_scale[h] for V), 1 / scale in fp32,
 * rounded to nearest even and saturated to +-448 (NaN: 0x7f), as
 * __nv_cvt_float_to_fp8(.., __NV_SATFINITE, __NV_E4M3) and the host's
 * eng_f32_to_e4m3 do.  k_scale, v_scale (n_kv) fp32, positive.  q_out as
 * kn_rope_qkv. */
int kn_rope_qkv_e4m3(const float *qkv, const float *bias, const float *q_norm,
		     const float *k_norm, float eps, const int32_t *pos, const int32_t *slot,
		     const float *inv_freq, const float *k_scale, const float *v_scale,
		     uint16_t *q_out, uint8_t *k_cache, uint8_t *v_cache, int n_rows, int n_heads,
		     int n_kv, int head_dim, kn_stream s);

/* out (n) = e4m3(in * inv_scale) bytes, rounded as kn_rope_qkv_e4m3
 * rounds (the device's conversion, for tests against the host's). */
int kn_f32_to_e4m3(uint8_t *out, const float *in, size_t n, float inv_scale, kn_stream s);

/* out (n_rows, inter) bf16 = silu(g + bg) * (u + bu), where gu (n_rows,
 * 2 inter) bf16 holds [g | u] per row and bias (2 inter) fp32 or NULL. */
int kn_silu_mul(uint16_t *out, const uint16_t *gu, const float *bias, int n_rows, int inter,
		kn_stream s);
/* The same output as an FP8 product's input: q (n_rows, inter) bytes and
 * qs (n_rows) scales, those kn_quant_rows_e4m3 gives for kn_silu_mul's
 * out.  act (n_rows, inter) bf16 is scratch; sync (2 n_rows) must be
 * zero, and is zero again when the kernel ends.  inter % 8 == 0; q 8-byte,
 * gu and act 16-byte aligned. */
int kn_silu_mul_e4m3(uint8_t *q, float *qs, const uint16_t *gu, const float *bias, int n_rows,
		     int inter, uint16_t *act, uint32_t *sync, kn_stream s);

/* How KV pages hold their elements. */
enum {
	KN_KV_BF16 = 0,       /* bf16 */
	KN_KV_FP8_E4M3 = 1,   /* E4M3 bytes; element = e4m3 value * its head's scale */
};

/* Paged causal GQA attention.  A tile is up to 32 / (n_heads / n_kv)
 * consecutive rows of one sequence with consecutive positions; row r
 * attends to positions [0, pos[r]] of its sequence, whose block table
 * starts at block_tables[bt_off[r]].
 *   q (n_rows, n_heads head_dim) bf16 (already rotated)
 *   out (n_rows, n_heads head_dim) bf16, only the tiles' rows written
 *   tile_row0, tile_n (n_tiles)
 * head_dim must be a multiple of 8, at most 256.  Scale 1/sqrt(head_dim).
 * With kv_dtype KN_KV_FP8_E4M3 the pages are E4M3 bytes, dequantized on
 * load (k_scale and v_scale (n_kv) fp32, the values kn_rope_qkv_e4m3 was
 * given): the tensor-core kernels widen each tile to f16 in shared memory
 * (exactly), multiply in f16 with q turned to f16 times 2^-8 (so |q| up
 * to 2^24) and the probabilities packed as f16, and apply the scales to
 * the scores and the output; the CUDA-core kernel widens to fp32. */
struct kn_attn_args {
	uint16_t *out;
	const uint16_t *q;
	const void *k_cache, *v_cache;       /* (n_slots, n_kv, head_dim) bf16 or e4m3 */
	const int32_t *block_tables;
	const int32_t *pos, *bt_off;         /* (n_rows) */
	const int32_t *tile_row0, *tile_n;   /* (n_tiles) */
	int n_tiles, n_heads, n_kv, head_dim, page_size;
	int kv_dtype;                        /* KN_KV_BF16 (0) or KN_KV_FP8_E4M3 */
	const float *k_scale, *v_scale;      /* (n_kv) fp8 only */
	/* Decode only, may be NULL: where the launch's split length is read
	 * on the device, in place of the split_len argument (a captured
	 * graph's steps change it without a new capture). */
	const int32_t *split_len_at;
};

/* Rows of one tile, for a given group size n_heads / n_kv. */
int kn_attn_tile_rows(int n_heads, int n_kv);

/* Prefill / extend: one pass over each tile's keys. */
int kn_attn_prefill(const struct kn_attn_args *a, kn_stream s);

/* Prefill / extend on the tensor cores: same arguments and result as
 * kn_attn_prefill, tiles of up to kn_attn_tc_tile_rows() rows; that
 * function returns 0 for shapes this kernel does not take (head_dim other
 * than 16, 32, 64, 128; more than 128 heads per KV head). */
int kn_attn_tc_tile_rows(int n_heads, int n_kv, int head_dim);
int kn_attn_prefill_tc(const struct kn_attn_args *a, kn_stream s);

/* The same, split-K over the keys, then a reduce: for extend chunks on
 * long cached prefixes, whose few tiles leave the GPU idle.  Split sp
 * takes keys [sp split_len, (sp + 1) split_len) of each row's causal
 * range (the last split every key after); split_len a multiple of
 * KN_ATTN_TC_SPLIT, splits past a row's context are empty.  partial
 * holds kn_attn_prefill_tc_partial_floats(...) floats.  n_splits 1 is
 * kn_attn_prefill_tc (split_len and partial unused). */
#define KN_ATTN_TC_SPLIT 64
size_t kn_attn_prefill_tc_partial_floats(int n_tiles, int n_kv, int head_dim, int n_splits);
int kn_attn_prefill_tc_split(const struct kn_attn_args *a, int n_splits, int split_len,
			     float *partial, kn_stream s);

/* The same on Hopper's warpgroup products (wgmma, sm_90a): same
 * arguments, tiles, splits, partials (kn_attn_prefill_tc_partial_floats)
 * and result as kn_attn_prefill_tc_split, for bf16 pages and head_dim 64
 * or 128.  kn_attn_prefill_wg_ok says whether it takes a model's shape
 * and KV dtype on the current device (1) or not (0: no sm_90a image for
 * it, or another shape); it reads the device, so call it once at setup. */
int kn_attn_prefill_wg_ok(int n_heads, int n_kv, int head_dim, int kv_dtype);
int kn_attn_prefill_wg_split(const struct kn_attn_args *a, int n_splits, int split_len,
			     float *partial, kn_stream s);

/* The same on a warp-specialized form of that kernel (a producer
 * warpgroup copying K and V through an mbarrier ring, two consumer
 * warpgroups taking turns on the tensor cores): same arguments, shapes
 * (kn_attn_prefill_wg_ok), splits and result; head_dim 64 runs on
 * kn_attn_prefill_wg_split's kernel.  The faster one; the first stays as
 * its ablation. */
int kn_attn_prefill_wg2_split(const struct kn_attn_args *a, int n_splits, int split_len,
			      float *partial, kn_stream s);

/* Decode: split-K over the keys in n_splits pieces of split_len (a
 * multiple of 32), then a reduce.  split_len 0 sizes the splits per row:
 * ceil(ctx / n_splits) rounded up to a multiple of 32, at least 64 (splits
 * past a row's context are empty), so that one launch shape serves any
 * context.  The last split takes every key after the others (a length at
 * a->split_len_at may cover fewer keys than the grid; at least 64, a
 * multiple of 32, or 0).  partial holds kn_attn_partial_floats(...)
 * floats; the splits past a row's keys write none of it. */
size_t kn_attn_partial_floats(int n_tiles, int n_heads, int n_kv, int head_dim, int n_splits);
int kn_attn_decode(const struct kn_attn_args *a, int n_splits, int split_len, float *partial,
		   kn_stream s);

/* Decode on the tensor cores: same arguments and result as
 * kn_attn_decode (tiles of one row), for the shapes kn_attn_decode_tc_ok
 * accepts (head_dim 16, 32, 64, 128; at most 16 heads per KV head). */
int kn_attn_decode_tc_ok(int n_heads, int n_kv, int head_dim);
int kn_attn_decode_tc(const struct kn_attn_args *a, int n_splits, int split_len,
		      float *partial, kn_stream s);

/* ---------------------------------------------------------------- graphs */

/* A CUDA graph captured from a stream's work, ready to replay. */
typedef struct CUgraphExec_st *kn_graph;

/* Starts capturing the work this thread enqueues on s (s must not be the
 * default stream). */
int kn_capture_begin(kn_stream s);
/* Ends the capture; when ok, instantiates it into *g, else discards it
 * (and *g is NULL).  Returns 0 or KN_E_DEVICE (also when the capture was
 * broken by an op that cannot be captured). */
int kn_capture_end(kn_stream s, int ok, kn_graph *g);
int kn_graph_launch(kn_graph g, kn_stream s);
void kn_graph_destroy(kn_graph g);   /* NULL is allowed */

/* out (n_rows) = argmax of each row of logits (n_rows, vocab) fp32; the
 * first index on ties, as eng_argmax. */
int kn_argmax(int32_t *out, const float *logits, int n_rows, int vocab, kn_stream s);

/* out[r] = logits[r][targets[r]] - logsumexp(logits[r]) for rows with
 * targets[r] >= 0; other rows are left alone. */
int kn_logprob(float *out, const float *logits, const int32_t *targets, int n_rows,
	       int vocab, kn_stream s);

/* Fills p (n) with mean + std * u, u uniform with unit variance, from a
 * counter-based hash of (seed, index): the same seed gives the same values. */
int kn_fill_random_bf16(uint16_t *p, size_t n, uint64_t seed, float mean, float std,
			kn_stream s);
int kn_fill_random_f32(float *p, size_t n, uint64_t seed, float mean, float std,
		       kn_stream s);

/* ---------------------------------------------------------------- tensor parallel */

/* Ranks of one tensor-parallel group at most. */
#define KN_TP_MAX 8

/* All-reduce of ranks that share one device: every bufs[k] (n floats,
 * k < n_bufs <= KN_TP_MAX) becomes the sum of all of them, added in rank
 * order.  All buffers on the current device; one launch on s. */
int kn_tp_sum_f32(float *const *bufs, int n_bufs, size_t n, kn_stream s);

/* p (rows, cols) = the block at (row0, col0) of a tensor with full_cols
 * columns filled by kn_fill_random_* from seed: the same values, so a
 * rank's slice of a random model matches the whole model's tensor. */
int kn_fill_random_slice_bf16(uint16_t *p, size_t rows, size_t cols, size_t full_cols,
			      size_t row0, size_t col0, uint64_t seed, float mean, float std,
			      kn_stream s);
int kn_fill_random_slice_f32(float *p, size_t rows, size_t cols, size_t full_cols,
			     size_t row0, size_t col0, uint64_t seed, float mean, float std,
			     kn_stream s);
/* The same values rounded to E4M3 bytes (random FP8 KV pages, scale 1). */
int kn_fill_random_slice_e4m3(uint8_t *p, size_t rows, size_t cols, size_t full_cols,
			      size_t row0, size_t col0, uint64_t seed, float mean, float std,
			      kn_stream s);

/* One rank's view of a logits row whose vocab slice [vocab0, vocab0 +
 * n_vocab) it holds: max and its index (vocab ids; first on ties),
 * sum of exp(x - max) over the slice, targets's logit when the target
 * lies in the slice (else 0). */
struct kn_vocab_part {
	float max, sum_exp, target;
	int32_t argmax;
};

/* out (n_rows) from logits (n_rows, n_vocab) fp32; targets (n_rows)
 * vocab ids, or NULL. */
int kn_vocab_partial(struct kn_vocab_part *out, const float *logits, const int32_t *targets,
		     int n_rows, int n_vocab, int vocab0, kn_stream s);

/* Stream s waits (on the device) for event e, which may have been
 * recorded on another device's stream. */
int kn_stream_wait_event(kn_stream s, kn_event e);

#ifdef __cplusplus
}
#endif

#endif
