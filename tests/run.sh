#!/bin/bash
# The test runner: unit test binaries, fuzz corpus replays, integration tests. Each prints TAP
# ("ok N - …" / "not ok N - …"); this counts them and ends with "N passed, N failed".
#   tests/run.sh [unit|integration] [NAME-FILTER]
# Environment: O (build dir, default build/default), SANITIZE.
set -u
cd "$(dirname "$0")/.."
O=${O:-build/default}
export DFR_BIN="$PWD/$O/bin"
export DFR_BUILD="$PWD/$O"
export DFR_ROOT="$PWD"
export DFR_FIXTURES="${DFR_FIXTURES:-$(cd .. && pwd)/shared/fixtures/core}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# Sanitized daemons are slower: integration tests scale their waits by this.
[ "${SANITIZE:-0}" = 1 ] && export DFR_SLOW=3 || export DFR_SLOW=1
PY=/usr/bin/python3
what=${1:-all}
filter=${2:-}

passed=0
failed=0
failures=()
logdir="$O/test-logs"
mkdir -p "$logdir"

# run_one NAME TIMEOUT CMD...: runs a TAP producer, echoes its output, counts its results.
run_one() {
	local name=$1 tmo=$2 out rc p f
	shift 2
	[ -n "$filter" ] && [[ "$name" != *"$filter"* ]] && return
	out="$logdir/$(echo "$name" | tr '/ ' '__').log"
	echo "### $name"
	timeout --kill-after=10 "$tmo" "$@" >"$out" 2>&1
	rc=$?
	p=$(grep -c '^ok ' "$out")
	f=$(grep -c '^not ok ' "$out")
	grep -E '^(not ok|#)' "$out" | head -40
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name exited with status $rc"
		tail -20 "$out"
	fi
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name ran no check"
	fi
	echo "    $name: $p passed, $f failed"
	passed=$((passed + p))
	failed=$((failed + f))
	[ "$f" -gt 0 ] && failures+=("$name")
}

if [ "$what" = all ] || [ "$what" = unit ]; then
	for t in "$O"/tests/unit/*/test_*; do
		[ -x "$t" ] || continue
		case "$t" in *.o|*.d) continue ;; esac
		run_one "unit/${t#"$O"/tests/unit/}" 300 "$t"
	done
	for r in "$O"/fuzz/replay_*; do
		[ -x "$r" ] || continue
		case "$r" in *.o|*.d) continue ;; esac
		name=${r##*/replay_}
		run_one "fuzz-replay/$name" 300 "$r" "fuzz/corpus/$name"
	done
fi

if [ "$what" = all ] || [ "$what" = integration ]; then
	for t in tests/integration/test_*; do
		case "$t" in
		*.py) run_one "integration/${t##*/}" 600 "$PY" "$t" ;;
		*.sh) run_one "integration/${t##*/}" 600 bash "$t" ;;
		esac
	done
fi

if [ ${#failures[@]} -gt 0 ]; then
	echo "failed: ${failures[*]} (logs in $logdir)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
