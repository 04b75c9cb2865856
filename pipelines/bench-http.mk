## pipelines/bench-http.mk: `make bench-http` measures the HTTP front against
## the Unix-socket front of one server on the same requests (throughput,
## TTFT, the first token's round trip, 1000 idle kept-alive connections);
## see pipelines/bench-http.sh for what runs and its variables (MODEL=,
## DEVICE=, THREADS=, CONC=, MAX_TOKENS=, REPS=, IDLE=, SERVER_ARGS=).
BENCH_HTTP_OUT = out/bench-http

bench-http: tools/gpu-batch-infer$(EXEEXT) tools/model-writer$(EXEEXT) \
		tools/gen-trajectories$(EXEEXT) tools/traj-extract$(EXEEXT) \
		tools/prompt-render$(EXEEXT) tests/bench-http$(EXEEXT)
	TOOLS=tools BENCH=tests/bench-http $(SHELL) $(srcdir)/pipelines/bench-http.sh $(BENCH_HTTP_OUT)
.PHONY: bench-http
EXTRA_DIST += pipelines/bench-http.sh
