#!/bin/sh
# bench-router.sh: what routing costs and what it buys, on synthetic agent
# conversations (make bench-router; the variables are pipelines/routing.mk's
# BENCH_ROUTER_*).
#
# 1. Overhead: the same replay at batch size 1 through a router over one
#    worker and on that worker directly, runs interleaved (the order
#    alternates), REPS of each; per turn, the router's E2E latency and TTFT
#    minus the direct ones, median and mean; and the router process's CPU
#    time per request (it renders and tokenizes the turns, which the worker
#    does when it is used directly, and moves every token through its socket).
# 2. Policies: WORKERS workers with KV pools of POOL tokens each, one run per
#    policy at BATCH conversations in flight: trajectories/s, cache hit rate,
#    TTFT median and p99, turns per worker; then one worker alone with the
#    same pool, for the cache hit rate routing is measured against.
set -eu
B=${TOOLS:-tools}
MODEL=${MODEL:-out/models/tiny}
DEVICE=${DEVICE:-cpu}
OUT=${OUT:-out/bench-router}
REPS=${REPS:-4}
WORKERS=${WORKERS:-3}
POOL=${POOL:-4096}
BATCH=${BATCH:-6}
POLICIES=${POLICIES:-cache_aware round_robin random shortest_queue power_of_two}
THREADS=${THREADS:-1}
CONV=$OUT/conversations.jsonl
mkdir -p "$OUT"
pids=
trap 'st=$?; for p in $pids; do kill $p 2>/dev/null; done; wait 2>/dev/null; rm -f "$OUT"/*.sock; exit $st' EXIT
up() { for i in $(seq 300); do "$B/gpu-batch-infer" --connect "$1" --status >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
worker() { # worker SOCK [ARGS]
	s=$1; shift
	"$B/gpu-batch-infer" --serve --model "$MODEL" --device "$DEVICE" --threads "$THREADS" \
		--socket "$s" "$@" 2>>"$OUT/workers.log" &
	pids="$pids $!"
	up "$s"
}
router() { # router SOCK POLICY WORKER...
	s=$1; p=$2; shift 2
	args=
	for w in "$@"; do args="$args --worker $w"; done
	# shellcheck disable=SC2086
	"$B/gpu-batch-infer" --serve --router --policy "$p" --model "$MODEL" --socket "$s" $args \
		2>>"$OUT/router.log" &
	rpid=$!
	pids="$pids $rpid"
	up "$s"
}
stop() { "$B/gpu-batch-infer" --connect "$1" --shutdown >/dev/null 2>&1 || :; }
summary() { # summary FILE: one line of figures
	"$B/timing-stats" "$1" | jq -r --argjson w "$(jq -c 'select(.type=="run") | [(.workers // [])[] | .requests]' "$1")" \
		'"\(.run)\t\(.trajectories_per_s * 1000 | floor / 1000)\t\(.cache_hit_rate * 1000 | floor / 10)%\t\(.median_ttft_ms | floor)\t\(.p99_ttft_ms | floor)\t\($w | map(tostring) | join("/"))"'
}

"$B/gen-trajectories" --num 12 --seed 1 --steps-mean 6 --steps-sd 2 --max-token-limit 1500 \
	--obs-median 60 --obs-mean 100 | "$B/traj-extract" --min-steps 1 |
	"$B/prompt-render" --config "${AGENT_CONFIG:-samples/agent.yaml}" >"$CONV"

echo "== router overhead: batch 1, one worker, direct and through a router, $REPS runs each"
worker "$OUT/one.sock"
router "$OUT/r1.sock" round_robin "$OUT/one.sock"
c0=$(awk '{print $14 + $15}' /proc/$rpid/stat)
: >"$OUT/pairs"
n=0
for rep in $(seq "$REPS"); do
	for via in $( [ $((rep % 2)) = 1 ] && echo "one r1" || echo "r1 one"); do
		"$B/gpu-batch-infer" --connect "$OUT/$via.sock" --batch-size 1 --output-len 8 --run "$via" \
			"$CONV" >"$OUT/$via.jsonl"
	done
	n=$((n + $(grep -c '"type":"request"' "$OUT/r1.jsonl")))
	jq -s '[.[] | select(.type=="request")] | map({key: "\(.conversation_id) \(.turn)", value: [.latency, .ttft]}) | from_entries' \
		"$OUT/one.jsonl" >"$OUT/one.map"
	jq -r --slurpfile d "$OUT/one.map" 'select(.type=="request") | "\(.latency - $d[0]["\(.conversation_id) \(.turn)"][0]) \(.ttft - $d[0]["\(.conversation_id) \(.turn)"][1])"' \
		"$OUT/r1.jsonl" >>"$OUT/pairs"
done
c1=$(awk '{print $14 + $15}' /proc/$rpid/stat)
sort -g "$OUT/pairs" | awk '{ v[NR] = $1; s += $1 } END { printf "E2E,  router - direct: median %+.3f ms, mean %+.3f ms over %d turns\n", v[int((NR + 1) / 2)] * 1e3, s / NR * 1e3, NR }'
sort -g -k2 "$OUT/pairs" | awk '{ v[NR] = $2; s += $2 } END { printf "TTFT, router - direct: median %+.3f ms, mean %+.3f ms\n", v[int((NR + 1) / 2)] * 1e3, s / NR * 1e3 }'
awk -v c=$((c1 - c0)) -v t="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "router CPU time: %.3f ms per request\n", c / t / n * 1e3 }'
stop "$OUT/r1.sock"
stop "$OUT/one.sock"

echo "== policies: $WORKERS workers, KV pool $POOL tokens each, batch $BATCH"
printf 'run\ttrajectories/s\tcache hit\tTTFT p50 ms\tTTFT p99 ms\tturns per worker\n'
ws=
for k in $(seq 0 $((WORKERS - 1))); do
	worker "$OUT/w$k.sock" --max-total-tokens "$POOL"
	ws="$ws $OUT/w$k.sock"
done
for p in $POLICIES; do
	# shellcheck disable=SC2086
	router "$OUT/r.sock" "$p" $ws
	"$B/gpu-batch-infer" --connect "$OUT/r.sock" --batch-size "$BATCH" --run "$p" "$CONV" >"$OUT/$p.jsonl"
	stop "$OUT/r.sock"
	wait "$rpid" 2>/dev/null || :
	summary "$OUT/$p.jsonl"
done
for k in $(seq 0 $((WORKERS - 1))); do stop "$OUT/w$k.sock"; done
worker "$OUT/alone.sock" --max-total-tokens "$POOL"
"$B/gpu-batch-infer" --connect "$OUT/alone.sock" --batch-size "$BATCH" --run one-worker "$CONV" >"$OUT/alone.jsonl"
stop "$OUT/alone.sock"
summary "$OUT/alone.jsonl"
