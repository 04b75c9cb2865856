#!/bin/sh
# bench-extract.sh FILE TRAJ_EXTRACT JQ_FILTER RUNS: time traj-extract and
# `jq -c -f JQ_FILTER` over FILE (output to a scratch file, page cache warm)
# and print the input throughput of each, best of RUNS runs.
set -u
file=$1 bin=$2 filter=$3 runs=${4:-3}
out=${TMPDIR:-/tmp}/bench-extract.$$
trap 'rm -f "$out"' EXIT
bytes=$(wc -c <"$file")
lines=$(wc -l <"$file")
cat "$file" >/dev/null

now() { date +%s.%N; }

# best NAME CMD...: runs CMD RUNS times, prints the best time and its MB/s.
best() {
	name=$1
	shift
	b=""
	i=0
	while [ "$i" -lt "$runs" ]; do
		t0=$(now)
		"$@" >"$out" || { echo "bench-extract: $name failed" >&2; return 1; }
		t1=$(now)
		b=$(echo "$t0 $t1 ${b:-1e9}" | awk '{ d = $2 - $1; print (d < $3) ? d : $3 }')
		i=$((i + 1))
	done
	echo "$b $bytes $(wc -l <"$out")" | awk -v name="$name" \
		'{ printf "%-14s %8.3f s  %8.1f MB/s  (%d records)\n", name, $1, $2 / $1 / 1e6, $3 }'
	echo "$b" >"$out.t"
}

printf 'input: %s, %d lines, %.1f MB (%.1f KB a line), best of %d runs\n' "$file" "$lines" \
	"$(echo "$bytes" | awk '{ print $1 / 1e6 }')" "$(echo "$bytes $lines" | awk '{ print $1 / $2 / 1e3 }')" "$runs"
best traj-extract "$bin" "$file" || exit 1
te=$(cat "$out.t")
if command -v jq >/dev/null 2>&1; then
	best "jq -c" jq -c -f "$filter" "$file" || exit 1
	tj=$(cat "$out.t")
	echo "$tj $te" | awk '{ printf "traj-extract is %.1fx the speed of jq -c\n", $1 / $2 }'
else
	echo "jq -c: jq not found, not measured"
fi
rm -f "$out.t"
