#!/usr/bin/env bash
# Checks that a change leaves detection output byte-identical: builds
# spamsurge at two revisions, replays the same simulated streams through
# both (`replay --dry-run --json`, with lists and sub-addresses so that
# attribution and canaries are in play) and diffs the incident events.
#
#   bench/identical/run.sh [OLD_REV [NEW_REV]]     (default: HEAD~1 and the work tree)
#
# Exits 1 on any difference. The streams are cached in $TMPDIR/spamsurge-identical.
set -euo pipefail
cd "$(dirname "$0")/../.."
old=${1:-HEAD~1}
new=${2:-}
work=${TMPDIR:-/tmp}/spamsurge-identical
mkdir -p "$work"
build() { # rev out
	if [ -z "$1" ]; then
		go build -o "$2" ./cmd/spamsurge
	else
		rm -rf "$work/src" && git worktree add -f -q --detach "$work/src" "$1"
		(cd "$work/src" && go build -o "$2" ./cmd/spamsurge)
		git worktree remove --force "$work/src"
	fi
}
build "$old" "$work/old"
build "$new" "$work/new"
status=0
for scen in baseline plusnet drip drip-mixed; do
	s="$work/$scen.jsonl"
	if [ ! -s "$s" ]; then
		"$work/old" simulate --scenario "$scen" --seed 1 --addresses 30000 --subaddresses --lists "$work/lists-$scen" --key-file "$work/key" --out "$s" 2>/dev/null
	fi
	cfg="$work/$scen.yaml"
	{ echo "store: {key_file: $work/key}"; echo "detector: {subaddress_separators: \"+\"}"; cat "$work/lists-$scen/attribution.yaml"; } > "$cfg"
	for b in old new; do
		"$work/$b" replay --config "$cfg" --dry-run --json --quiet "$s" > "$work/$scen.$b.json" 2> "$work/$scen.$b.err"
	done
	n=$(wc -l < "$work/$scen.old.json")
	if cmp -s "$work/$scen.old.json" "$work/$scen.new.json"; then
		echo "$scen: identical ($n events)"
	else
		echo "$scen: DIFFERENT"; diff "$work/$scen.old.json" "$work/$scen.new.json" | head -5; status=1
	fi
done
exit $status
