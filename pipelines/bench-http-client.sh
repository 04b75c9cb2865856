#!/bin/sh
# bench-http-client.sh: the cost of gpu-batch-infer --connect http:// itself.
#
#   pipelines/bench-http-client.sh [OUT_DIR]    (from the build directory)
#
# Replays synthetic conversations (tools/gen-trajectories) against
# tests/fake-openai, a server that answers every request at once, so that
# what is measured is the client: at 16 and at 256 conversations in flight
# (streams open at once), for the chat endpoint (the messages) and the
# completions endpoint (our token ids), it prints requests/s, streamed
# tokens/s, the client's CPU time per request and per token (client_cpu_time
# of the run record: reading and tokenizing the input, HTTP, SSE, records)
# and its share of one core over the run.  The fake server runs on the same
# machine, one thread, and takes CPU too: requests/s is a lower bound of what
# the client alone sustains (a client below 100% of a core was not the
# limit); CPU per request is the client's own.  Replies are OUTPUT_LEN
# tokens (default 32), one SSE chunk each.
set -eu
out=${1:-out/bench-http-client}
n_traj=${N_TRAJ:-1024}
output_len=${OUTPUT_LEN:-32}
model=${MODEL:-out/models/tiny}
mkdir -p "$out"
rm -f "$out/port"
[ -x tests/fake-openai ] || { echo "bench-http-client: build tests/fake-openai first (make check)" >&2; exit 2; }
[ -f "$model/tokenizer.json" ] || { echo "bench-http-client: no tokenizer in $model" >&2; exit 2; }

# Short steps, so that conversations of about 9 turns fit the tiny model's
# 1500-token prompts: many turns, and every stream busy.
tools/gen-trajectories --num "$n_traj" --seed 1 --max-token-limit 1500 \
	--obs-median 30 --obs-mean 50 --thought-mean 20 --action-mean 10 |
	tools/traj-extract --min-steps 1 |
	tools/prompt-render --config "${AGENT_CONFIG:-samples/agent.yaml}" >"$out/conv.jsonl"

tests/fake-openai --port-file "$out/port" &
fpid=$!
trap 'kill $fpid 2>/dev/null' EXIT
i=0
while [ ! -s "$out/port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
url="http://127.0.0.1:$(cat "$out/port")"

printf '%-12s %8s %10s %10s %10s %14s %14s %12s\n' endpoint streams requests "req/s" "tok/s" \
	"cpu/req (us)" "cpu/tok (us)" "client cpu"
for ep in chat completions; do
	for c in 16 256; do
		tools/gpu-batch-infer --connect "$url" --tokenizer "$model" --endpoint $ep \
			--batch-size $c --output-len "$output_len" --run "$ep-$c" \
			"$out/conv.jsonl" >"$out/$ep-$c.jsonl"
		tail -n 1 "$out/$ep-$c.jsonl" | jq -r --arg ep $ep --argjson c $c '
			[$ep, $c, .num_requests, .num_requests / .duration,
			 .num_requests * '"$output_len"' / .duration,
			 .engine_stats.client_cpu_time / .num_requests * 1e6,
			 .engine_stats.client_cpu_time / (.num_requests * '"$output_len"') * 1e6,
			 .engine_stats.client_cpu_time / .duration * 100]
			| @tsv' |
		awk -F'\t' '{ printf "%-12s %8d %10d %10.1f %10.0f %14.1f %14.2f %11.0f%%\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
	done
done | tee "$out/bench.txt"
