#!/usr/bin/env bash
# Profiles spamsurge under the relay benchmark's load:
#
#   bash bench/relay/profile.sh [OUTDIR]
#
# Builds spamsurge with -tags pprof (cmd/spamsurge/pprof.go), runs it
# pinned to PROXY_CORE in front of smtp-sink, drives it with smtp-source
# on LOAD_CORE as bench/relay/run.sh does (default: -d, 1 recipient, 20
# sessions, 5 KB), and while the load runs takes a CPU profile, then the
# allocation profile. OUTDIR (default: a new /tmp/spamsurge-profile.XXXXXX)
# gets spamsurge (the binary, for go tool pprof), cpu.pprof, allocs.pprof,
# trace.out (with TRACE=1) and summary.txt: CPU µs per message over the
# profiled window, bytes allocated per message and GC cycles over the
# whole run, and the top of both profiles.
#
# Knobs (environment): MSGS (100000 messages in the profiled run), SECS
# (15, CPU profile length; the run must outlast it), SESSIONS (20), SIZE
# (5120), RCPT (1), REUSE (1: smtp-source -d; 0: one connection per
# message), PROXY_CORE (1), LOAD_CORE (0), REV (build from this commit;
# one older than cmd/spamsurge/pprof.go gets it from the working tree),
# TRACE=1 (also a 3 s execution trace: go tool trace OUTDIR/trace.out).
set -euo pipefail
export LC_ALL=C

MSGS=${MSGS:-100000}
SECS=${SECS:-15}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-5120}
RCPT=${RCPT:-1}
REUSE=${REUSE:-1}
PROXY_CORE=${PROXY_CORE:-1}
LOAD_CORE=${LOAD_CORE:-0}
REV=${REV:-}
TRACE=${TRACE:-0}

cd "$(dirname "$0")/../.."
for tool in smtp-source smtp-sink taskset go ss curl; do
	command -v "$tool" >/dev/null || { echo "profile.sh: $tool not found (smtp-source/smtp-sink: apt-get install postfix)" >&2; exit 2; }
done
OUT=${1:-$(mktemp -d /tmp/spamsurge-profile.XXXXXX)}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/spamsurge-profile-work.XXXXXX)
PIDS=()
cleanup() {
	set +e
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "[$(date +%T)] $*" >&2; }

if [[ -n $REV ]]; then
	mkdir -p "$WORK/src"
	git archive --format=tar "$REV" | tar -x -C "$WORK/src"
	# Commits from before the pprof hook get it from the working tree.
	[[ -e $WORK/src/cmd/spamsurge/pprof.go ]] || cp cmd/spamsurge/pprof.go "$WORK/src/cmd/spamsurge/"
	(cd "$WORK/src" && go build -tags pprof -o "$OUT/spamsurge" ./cmd/spamsurge)
else
	go build -tags pprof -o "$OUT/spamsurge" ./cmd/spamsurge
fi

port() { # a loopback port nobody listens on, below the ephemeral range
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		[[ -z $(ss -Htln "sport = :$p") && " ${TAKEN:-} " != *" $p "* ]] && { TAKEN+=" $p"; echo "$p"; return; }
	done
}
wait_port() {
	for _ in $(seq 100); do
		[[ -n $(ss -Htln "sport = :$1") ]] && return 0
		sleep 0.1
	done
	echo "profile.sh: nothing listens on $1; see $OUT/spamsurge.log" >&2
	exit 1
}
SINK_PORT=$(port) PROXY_PORT=$(port) HTTP_PORT=$(port) PPROF_PORT=$(port)

taskset -c "$LOAD_CORE" smtp-sink -u "$(id -un)" -m 1000 127.0.0.1:"$SINK_PORT" 1024 >"$WORK/smtp-sink.log" 2>&1 &
PIDS+=($!)
wait_port "$SINK_PORT"
cat >"$WORK/spamsurge.yaml" <<EOF
smtp:
  listen: 127.0.0.1:$PROXY_PORT
  max_connections: 2000
downstream:
  address: 127.0.0.1:$SINK_PORT
http:
  listen: 127.0.0.1:$HTTP_PORT
store:
  path: $WORK/store
EOF
SPAMSURGE_PPROF=127.0.0.1:$PPROF_PORT taskset -c "$PROXY_CORE" "$OUT/spamsurge" serve --config "$WORK/spamsurge.yaml" >"$OUT/spamsurge.log" 2>&1 &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_port "$PROXY_PORT"
wait_port "$PPROF_PORT"

d=()
[[ $REUSE == 1 ]] && d=(-d)
source_run() {
	taskset -c "$LOAD_CORE" smtp-source "${d[@]}" -s "$SESSIONS" -l "$SIZE" -m "$1" -r "$RCPT" \
		-f bench@source.example -t rcpt@sink.example 127.0.0.1:"$PROXY_PORT"
}
metric() { curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
relayed() { metric 'spamsurge_messages_total{result="relayed"}'; }
ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' /proc/"$PROXY_PID"/stat; }

log "warm-up"
source_run 2000
log "load: $MSGS messages, $SESSIONS sessions, $SIZE bytes, $RCPT recipient(s), reuse=$REUSE; CPU profile for $SECS s"
a0=$(metric go_memstats_alloc_bytes_total) g0=$(metric go_gc_duration_seconds_count) m0=$(relayed)
source_run "$MSGS" >"$WORK/source.out" 2>&1 &
LOAD_PID=$!
sleep 2
t0=$(ticks) r0=$(relayed)
curl -fsS -o "$OUT/cpu.pprof" "http://127.0.0.1:$PPROF_PORT/debug/pprof/profile?seconds=$SECS"
t1=$(ticks) r1=$(relayed)
if [[ $TRACE == 1 ]]; then
	curl -fsS -o "$OUT/trace.out" "http://127.0.0.1:$PPROF_PORT/debug/pprof/trace?seconds=3"
fi
kill -0 "$LOAD_PID" 2>/dev/null || log "warning: the load ended before the profile did; raise MSGS"
wait "$LOAD_PID" || { log "smtp-source failed:"; cat "$WORK/source.out" >&2; exit 1; }
curl -fsS -o "$OUT/allocs.pprof" "http://127.0.0.1:$PPROF_PORT/debug/pprof/allocs"
a1=$(metric go_memstats_alloc_bytes_total) g1=$(metric go_gc_duration_seconds_count) m1=$(relayed)

{
	awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v r0="$r0" -v r1="$r1" -v s="$SECS" \
		'BEGIN {n = r1 - r0; printf "profiled window: %d messages, %.0f msg/s, %.1f µs CPU per message\n", n, n / s, t * 1e6 / hz / n}'
	awk -v a0="$a0" -v a1="$a1" -v g0="$g0" -v g1="$g1" -v m0="$m0" -v m1="$m1" \
		'BEGIN {n = m1 - m0; printf "whole run: %d messages, %.0f bytes allocated per message, %d GC cycles\n", n, (a1 - a0) / n, g1 - g0}'
	echo
	go tool pprof -top -nodecount 40 "$OUT/spamsurge" "$OUT/cpu.pprof" 2>/dev/null
	echo
	go tool pprof -sample_index=alloc_space -top -nodecount 20 "$OUT/spamsurge" "$OUT/allocs.pprof" 2>/dev/null
} >"$OUT/summary.txt"
head -2 "$OUT/summary.txt"
log "profiles and summary.txt in $OUT"
