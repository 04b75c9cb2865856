## pipelines/bench.mk: `make bench` runs the CUDA backend's benchmark
## (tests/bench-cuda) on a GPU: the ceilings measured first (copy bandwidth,
## cuBLAS bf16 GEMM rate at 8192^3), then decode at batch 1 / 64 / 16 and a
## 4k prefill on random weights of the Qwen2.5-7B shape, each as achieved
## against its ceiling, the host overhead per step, the device time per op,
## bf16 against fp8_e4m3 KV pages (decode b16 at 10k and b64 at 2k, and
## their attention, with the bytes model's speed-up), and the
## tensor-parallel table.  The table goes to standard output and to
## $(BENCH_OUT)/bench.txt.  BENCH_DEVICE picks the GPU; BENCH_ARGS=--no-pdl
## gives the ablation without programmatic dependent launch, and
## BENCH_ARGS=--kv-cache-dtype=fp8_e4m3 the main table on FP8 pages.
BENCH_OUT = out/bench
BENCH_DEVICE = 0
BENCH_ARGS =

if HAVE_CUDA
bench: tests/bench-cuda$(EXEEXT)
	@$(MKDIR_P) $(BENCH_OUT)
	tests/bench-cuda $(BENCH_DEVICE) $(BENCH_ARGS) >$(BENCH_OUT)/bench.txt.tmp; \
	rc=$$?; cat $(BENCH_OUT)/bench.txt.tmp; \
	test $$rc -eq 0 && mv $(BENCH_OUT)/bench.txt.tmp $(BENCH_OUT)/bench.txt
else
bench:
	@echo "bench: this build has no CUDA backend (configure found no CUDA)" >&2; exit 1
endif
.PHONY: bench
