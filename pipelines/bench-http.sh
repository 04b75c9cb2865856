#!/bin/sh
# bench-http.sh: the HTTP front against the Unix-socket front of one server,
# on the same requests, by the same client (tests/bench-http).
#
#   pipelines/bench-http.sh [OUT]
#
# The requests: every turn of synthetic agent conversations as an OpenAI
# chat request (gen-trajectories | traj-extract | prompt-render --format
# openai), sized for the model's context.  One server serves both fronts
# (gpu-batch-infer --serve --socket --port).  For REPS rounds, from a cold
# prefix cache each time, the requests run CONC at a time with MAX_TOKENS
# output tokens each (ignore_eos, greedy):
#   socket     one generate run on the socket
#   http       chat completions, streamed
#   http+idle  the same with IDLE more kept-alive connections open and idle
# then the first 40 requests one at a time with one output token each,
# whose client round trip is the time to the first token as a client sees
# it, over each front.  Prints one JSON line per measurement and a summary
# (medians over the rounds) to stdout; everything also goes to OUT
# (default out/bench-http).
#
# Environment: MODEL (default: a tiny model written here), DEVICE (cpu),
# THREADS (cpu threads, default 4), NUM (conversations, 24), CONC (16),
# MAX_TOKENS (32), REPS (3), IDLE (1000), SERVER_ARGS (more gpu-batch-infer
# options), TOOLS (the build's tools/), BENCH (the tests/bench-http
# program).  Needs no curl; jq only for the summary.
set -eu
out=${1:-out/bench-http}
TOOLS=${TOOLS:-tools}
BENCH=${BENCH:-tests/bench-http}
DEVICE=${DEVICE:-cpu}
THREADS=${THREADS:-4}
CONC=${CONC:-16}
MAX_TOKENS=${MAX_TOKENS:-32}
REPS=${REPS:-3}
NUM=${NUM:-24}
IDLE=${IDLE:-1000}
SERVER_ARGS=${SERVER_ARGS:-}
srcdir=$(cd "$(dirname "$0")/.." && pwd)

mkdir -p "$out"
if [ -z "${MODEL:-}" ]; then
	MODEL=$out/model
	[ -e "$MODEL/config.json" ] ||
		"$TOOLS/model-writer" --preset tiny --seed 1 -o "$MODEL" >/dev/null
fi
"$TOOLS/gen-trajectories" --num "$NUM" --seed 1 --steps-mean 5 --steps-sd 1 --max-steps 6 \
	--obs-median 30 --obs-mean 40 --obs-max 100 --thought-mean 20 --action-mean 15 |
	"$TOOLS/traj-extract" --min-steps 1 |
	"$TOOLS/prompt-render" --config "$srcdir/samples/agent.yaml" --format openai \
	>"$out/requests.jsonl"
head -n 40 "$out/requests.jsonl" >"$out/first40.jsonl"

rm -f "$out/w.sock" "$out/requests.log"
"$TOOLS/gpu-batch-infer" --serve --model "$MODEL" --device "$DEVICE" --threads "$THREADS" \
	--socket "$out/w.sock" --port 0 --max-connections $((IDLE + CONC + 64)) \
	--log-requests --log-file "$out/requests.log" $SERVER_ARGS 2>"$out/server.err" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
trap 'exit 1' INT TERM
port=
for i in $(seq 600); do
	port=$(sed -n 's|.*serving .* on http://127.0.0.1:\([0-9]*\).*|\1|p' "$out/server.err")
	[ -n "$port" ] && break
	kill -0 $server 2>/dev/null || break
	sleep 0.1
done
[ -n "$port" ] || { cat "$out/server.err" >&2; exit 1; }

# The server's CPU time so far, in clock ticks (user + system).
server_ticks() { awk '{ print $14 + $15 }' "/proc/$server/stat"; }

# measure LABEL ROUND BENCH-ARGS...: one run from a cold cache; the server's
# own TTFT p50 of the run's HTTP requests is added from its request log,
# and the server's CPU time during the run (which, on a loaded machine,
# compares the fronts' costs better than wall times do).
measure() {
	label=$1 round=$2
	shift 2
	before=$(wc -l <"$out/requests.log")
	t0=$(server_ticks)
	"$BENCH" --flush-port "$port" "$@" >"$out/last.json"
	cpu=$(awk -v a="$t0" -v b="$(server_ticks)" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "%.2f", (b - a) / hz }')
	engine_ttft=$(tail -n +$((before + 1)) "$out/requests.log" |
		sed -n 's/.*"ttft":\([-0-9.e]*\).*/\1/p' | sort -g |
		awk '{ v[NR] = $1 } END { if (NR) printf "%.3f", v[int((NR + 1) / 2)] * 1000; else printf "null" }')
	sed "s/^{/{\"run\":\"$label\",\"round\":$round,\"engine_ttft_p50_ms\":$engine_ttft,\"server_cpu_s\":$cpu,/" \
		"$out/last.json" | tee -a "$out/results.jsonl"
}

: >"$out/results.jsonl"
# Warm up (first allocations, CUDA graphs), unmeasured.
"$BENCH" --port "$port" --concurrency "$CONC" --max-tokens 4 "$out/first40.jsonl" >/dev/null
for r in $(seq "$REPS"); do
	measure socket "$r" --socket "$out/w.sock" --concurrency "$CONC" --max-tokens "$MAX_TOKENS" "$out/requests.jsonl"
	measure http "$r" --port "$port" --concurrency "$CONC" --max-tokens "$MAX_TOKENS" "$out/requests.jsonl"
	measure http+idle "$r" --port "$port" --concurrency "$CONC" --max-tokens "$MAX_TOKENS" --idle "$IDLE" "$out/requests.jsonl"
	measure socket-1tok "$r" --socket "$out/w.sock" --concurrency 1 --max-tokens 1 "$out/first40.jsonl"
	measure http-1tok "$r" --port "$port" --concurrency 1 --max-tokens 1 "$out/first40.jsonl"
done

command -v jq >/dev/null 2>&1 || exit 0
jq -s '
	def med(f): map(f) | sort | .[(length - 1) / 2 | floor];
	group_by(.run) | map({key: .[0].run, value: {
		output_tok_s: med(.output_tok_s), ttft_p50_ms: med(.ttft_p50_ms),
		e2e_p50_ms: med(.e2e_p50_ms), engine_ttft_p50_ms: med(.engine_ttft_p50_ms // null),
		server_cpu_us_per_token: med(.server_cpu_s / .output_tokens * 1e6)}})
	| from_entries
	| . + {summary: {
		http_over_socket_throughput: (.http.output_tok_s / .socket.output_tok_s),
		idle_over_http_throughput: (.["http+idle"].output_tok_s / .http.output_tok_s),
		http_over_socket_server_cpu: (.http.server_cpu_us_per_token / .socket.server_cpu_us_per_token),
		first_token_round_trip_overhead_ms: (.["http-1tok"].e2e_p50_ms - .["socket-1tok"].e2e_p50_ms)}}' \
	"$out/results.jsonl" | tee "$out/summary.json"
