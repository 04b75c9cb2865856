#!/bin/sh
# run-fuzz.sh SECONDS: runs each harness of $FUZZ_NAMES for SECONDS (make
# fuzz).  Each starts from its committed seeds, the inputs that once made
# it fail (regress/NAME, so that clang's sanitizers replay them too) and a
# working corpus of its own under tests/fuzz/work/NAME (kept between runs,
# never committed); an input that fails is saved under
# tests/fuzz/artifacts/.  Prints one line per harness (executions, seconds,
# failures) and exits 1 when any harness failed.  Extra libFuzzer flags:
# $FUZZ_FLAGS.
set -u
secs=${1:-60}
: "${top_srcdir:?}"
: "${FUZZ_NAMES:?}"
export top_srcdir
mkdir -p tests/fuzz/work tests/fuzz/artifacts
status=0
printf '%-16s %14s %8s %s\n' harness executions seconds result
for name in $FUZZ_NAMES; do
	work=tests/fuzz/work/$name
	log=tests/fuzz/work/$name.log
	mkdir -p "$work"
	# shellcheck disable=SC2086
	./tests/fuzz/fuzz-$name -max_total_time="$secs" -timeout=20 -rss_limit_mb=2560 \
		-print_final_stats=1 -artifact_prefix="tests/fuzz/artifacts/$name-" \
		${FUZZ_FLAGS:-} "$work" "$top_srcdir/tests/fuzz/corpus/$name" \
		$(ls -d "$top_srcdir/tests/fuzz/regress/$name" 2>/dev/null) >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	took=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -n 1)
	if [ $rc = 0 ]; then
		result=ok
	else
		result="FAILED (exit $rc): see $log"
		status=1
		grep -m 3 'ERROR\|fuzz check failed\|runtime error' "$log" | sed 's/^/    /'
	fi
	printf '%-16s %14s %8s %s\n' "$name" "${execs:-?}" "${took:-?}" "$result"
done
exit $status
