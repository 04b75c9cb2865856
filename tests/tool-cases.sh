#!/bin/sh
# tool-cases.sh TOOL: run the tool cases under tests/TOOL/ and print TAP.
#
# A case is a directory tests/TOOL/NNNN-name/ holding
#   args          the command-line arguments, shell words (optional);
#                 may use $top_srcdir and $top_builddir
#   input         fed to standard input (optional; else /dev/null)
#   expected.out  standard output, compared byte for byte
#   expected.err  standard error, compared byte for byte (optional: empty)
#   status        the expected exit status (optional: 0)
# The tool runs with the case directory as its working directory, so files
# named in args are relative to it and diagnostics name them the same way
# on every machine.
set -u
tool=$1
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$(pwd)}"
export top_srcdir top_builddir
bin="$top_builddir/tools/$tool"
[ -x "$bin" ] || { echo "1..0 # SKIP $bin not built"; exit 0; }

tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT

n=0
fail=0
for dir in "$top_srcdir/tests/$tool"/*/; do
	[ -d "$dir" ] || continue
	name=$(basename "$dir")
	n=$((n + 1))
	args=""
	[ -f "$dir/args" ] && args=$(cat "$dir/args")
	input=/dev/null
	[ -f "$dir/input" ] && input="$dir/input"
	want_status=0
	[ -f "$dir/status" ] && want_status=$(cat "$dir/status")
	(cd "$dir" && eval "exec \"\$bin\" $args" <"$input" >"$tmp/out" 2>"$tmp/err")
	status=$?
	[ -f "$dir/expected.err" ] || : >"$tmp/empty"
	experr="$dir/expected.err"
	[ -f "$experr" ] || experr="$tmp/empty"
	why=""
	[ "$status" = "$want_status" ] || why="exit status $status, expected $want_status"
	cmp -s "$tmp/out" "$dir/expected.out" || why="${why:+$why; }stdout differs"
	cmp -s "$tmp/err" "$experr" || why="${why:+$why; }stderr differs"
	if [ -z "$why" ]; then
		echo "ok $n - $tool $name"
	else
		fail=1
		echo "not ok $n - $tool $name: $why"
		diff -u "$dir/expected.out" "$tmp/out" 2>&1 | head -20 | sed 's/^/# /'
		diff -u "$experr" "$tmp/err" 2>&1 | head -20 | sed 's/^/# /'
	fi
done
echo "1..$n"
exit $fail
