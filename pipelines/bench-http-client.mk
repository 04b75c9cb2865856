## pipelines/bench-http-client.mk: `make bench-http-client` measures gpu-batch-infer's own
## cost as an HTTP client (pipelines/bench-http-client.sh): replays against
## tests/fake-openai, a server that answers at once, at 16 and 256 streams.
## The table goes to standard output and $(BENCH_HTTP_CLIENT_OUT)/bench.txt.
BENCH_HTTP_CLIENT_OUT = out/bench-http-client

bench-http-client: tests/fake-openai$(EXEEXT) tools/gpu-batch-infer$(EXEEXT) tools/gen-trajectories$(EXEEXT) \
		tools/traj-extract$(EXEEXT) tools/prompt-render$(EXEEXT) out/models/tiny/config.json
	AGENT_CONFIG=$(srcdir)/samples/agent.yaml MODEL=out/models/tiny \
		$(SHELL) $(srcdir)/pipelines/bench-http-client.sh $(BENCH_HTTP_CLIENT_OUT)
.PHONY: bench-http-client
EXTRA_DIST += pipelines/bench-http-client.sh
