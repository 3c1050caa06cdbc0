#!/usr/bin/env bash
# Runs every fuzz target for a set time each and keeps what the fuzzer
# found interesting: the corpus go test builds in its cache is copied into
# the target's testdata/fuzz/NAME, so the next `go test` (and CI) replays
# it as seeds. A crash stops the script with the failing input already in
# testdata (go test writes it there) and a non-zero status.
#
#   scripts/fuzz.sh [DURATION] [TARGET...]     (default 10m; all targets)
#
# Example: scripts/fuzz.sh 30s FuzzSession FuzzDataReader
# FUZZ_PARALLEL=N limits the fuzzing workers (default: one per CPU).
# -timeout 0: go test's default 10-minute timeout would otherwise end a
# 10-minute run with "context deadline exceeded", which is no crash.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10m}
shift || true
want=" $* "
cache=$(go env GOCACHE)/fuzz
log=${TMPDIR:-/tmp}/spamsurge-fuzz.log
: > "$log"

# dir target module-path-of-dir
targets=$(
	grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
		dir=$(dirname "$f")
		for t in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
			echo "$dir $t"
		done
	done
)
status=0
while read -r dir target; do
	[ -n "$dir" ] || continue
	if [ "$want" != "  " ] && [[ "$want" != *" $target "* ]]; then
		continue
	fi
	pkg=$(cd "$dir" && go list .)
	start=$(date +%s)
	printf '%-22s %-32s ' "$target" "$pkg"
	if ! (cd "$dir" && go test -run '^$' -timeout 0 -fuzz "^${target}\$" -fuzztime "$dur" ${FUZZ_PARALLEL:+-parallel "$FUZZ_PARALLEL"} . >>"$log" 2>&1); then
		echo "FAILED (see $log; the input is under $dir/testdata/fuzz/$target)"
		status=1
		continue
	fi
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	src="$cache/$pkg/$target"
	kept=0
	if [ -d "$src" ]; then
		mkdir -p "$dir/testdata/fuzz/$target"
		cp -n "$src"/* "$dir/testdata/fuzz/$target"/ 2>/dev/null || true
		kept=$(ls "$dir/testdata/fuzz/$target" | wc -l)
	fi
	echo "ok: $(( $(date +%s) - start ))s, ${execs:-?} execs, $kept inputs in testdata"
done <<< "$targets"
exit $status
