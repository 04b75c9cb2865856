#!/bin/sh
# bench-thrash.sh INFER OUT "BATCH_SIZES" "POOLS" ENGINE_ARGS...: replays
# OUT/conversations.jsonl with INFER ENGINE_ARGS at every batch size and
# KV pool (tokens; 0: the engine's default) and prints one table row per
# run; with THRASH_VERIFY=1, also one run per batch size on a pool too
# large to evict (its computed tokens: the optimum, measured).  Runs go to
# OUT/runs/, the table to standard output and OUT/bench-thrash.txt.
#
# The optimum column is computed_prompt_tokens - recomputed_prompt_tokens
# of the same run: what an unbounded prefix cache would have prefilled for
# the same requests in the same order.  "ws <=" bounds the working set:
# the longest conversations in flight at once at their full length.
# "roofl" is the run's roofline fraction; "pf time" the share of its step
# time in steps with prefill chunks, "pf rl" and "dec rl" the roofline
# fractions of those steps and of the decode steps alone; "TTFT p99" and
# "TPOT p99" (ms) come from timing-stats over the run's requests.
set -u
infer=$1 out=$2 batches=$3 pools=$4
shift 4
convs=$out/conversations.jsonl
table=$out/bench-thrash.txt
huge=4194304
mkdir -p "$out/runs" || exit 2

# field NAME FILE [TYPE]: a number of the record of TYPE (default run) in
# FILE, null when it has none.
field() {
	v=$(sed -n '/"type":"'"${3:-run}"'"/s/.*"'"$1"'":\([-0-9.e+]*\).*/\1/p' "$2" | tail -n 1)
	echo "${v:-null}"
}

# timing-stats beside INFER: each run's summary goes to FILE.stats
stats=$(dirname "$infer")/timing-stats

# working_set BATCH FILE: sum of the BATCH largest conversations' full
# lengths (prompt + reply of their last turn).
working_set() {
	awk -v b="$1" '
	/"type":"request"/ {
		id = $0; sub(/.*"conversation_id":"/, "", id); sub(/".*/, "", id)
		p = $0; sub(/.*"prompt_len":/, "", p); sub(/[,}].*/, "", p)
		o = $0; sub(/.*"output_len":/, "", o); sub(/[,}].*/, "", o)
		if (p + o > len[id]) len[id] = p + o
	}
	END {
		n = 0
		for (id in len) v[++n] = len[id]
		for (i = 1; i <= n; i++)
			for (j = i + 1; j <= n; j++)
				if (v[j] > v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		s = 0
		for (i = 1; i <= n && i <= b; i++) s += v[i]
		print s
	}' "$2"
}

# run BATCH POOL ENGINE_ARGS...: one run; prints its row.
run() {
	b=$1 p=$2
	shift 2
	f=$out/runs/bs-$b-pool-$p.jsonl
	if [ "$p" = 0 ]; then pool_arg=; else pool_arg="--max-total-tokens $p"; fi
	# shellcheck disable=SC2086
	"$infer" "$@" $pool_arg --batch-size "$b" --run "bs-$b-pool-$p" "$convs" \
		>"$f" 2>"$f.err"
	rc=$?
	if [ "$rc" -ge 2 ] || ! grep -q '"type":"run"' "$f"; then
		echo "bench-thrash: the run at batch $b, pool $p failed (exit $rc):" >&2
		tail -n 3 "$f.err" >&2
		return 1
	fi
	failed=$(grep -c '"success":false' "$f")
	{ [ -x "$stats" ] && "$stats" "$f" 2>/dev/null; } >"$f.stats"
	echo "$b $(field kv_pool_tokens "$f") $(working_set "$b" "$f") \
$(field computed_prompt_tokens "$f") $(field recomputed_prompt_tokens "$f") \
$(field retractions "$f") $(field peak_kv_tokens "$f") $(field duration "$f") \
$(field roofline_fraction "$f") $failed $(field step_time "$f") \
$(field prefill_step_time "$f") $(field prefill_roofline_fraction "$f") \
$(field decode_roofline_fraction "$f") $(field p99_ttft_ms "$f.stats" summary) $(field p99_tpot_ms "$f.stats" summary)" | awk '
	function pct(v) { return v == "" || v == "null" ? "n/a" : sprintf("%.1f%%", 100 * v) }
	function ms(v) { return v == "" || v == "null" ? "n/a" : sprintf("%.1f", v) }
	{
		opt = $4 - $5
		printf "%5d %10d %10d %10d %10d %6.3f %8d %6d %10d %8.1f %7s %6d %7s %7s %7s %9s %9s\n",
			$1, $2, $3, $4, opt, (opt > 0 ? $4 / opt : 0), $5, $6, $7, $8,
			pct($9), $10, ($11 > 0 ? pct($12 / $11) : "n/a"), pct($13), pct($14),
			ms($15), ms($16) }'
}

: >"$table.tmp" || exit 2
emit() { tee -a "$table.tmp"; }
printf 'conversations: %s (%d); engine: %s\n' "$convs" "$(wc -l <"$convs")" "$*" | emit
printf '%5s %10s %10s %10s %10s %6s %8s %6s %10s %8s %7s %6s %7s %7s %7s %9s %9s\n' batch pool \
	"ws <=" computed optimum ratio again retr "peak KV" "time s" roofl failed "pf time" "pf rl" \
	"dec rl" "TTFT p99" "TPOT p99" | emit
for p in $pools; do
	for b in $batches; do
		row=$(run "$b" "$p" "$@") || exit 1
		echo "$row" | emit
	done
done
if [ "${THRASH_VERIFY:-0}" = 1 ]; then
	echo "verify: a pool of $huge tokens, never evicted (computed there = the optimum)" | emit
	for b in $batches; do
		row=$(run "$b" "$huge" "$@") || exit 1
		echo "$row" | emit
	done
fi
mv "$table.tmp" "$table"
