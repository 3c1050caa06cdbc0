#!/usr/bin/env bash
# Relay benchmark: smtp-source -> {direct | byte relay | spamsurge} -> smtp-sink.
#
#   bash bench/relay/run.sh
#
# The proxy (and the byte relay) run pinned to core 1, smtp-source,
# smtp-sink and the latency client to core 0. For every round, the three
# paths x four variants (1/5 recipients, connection reused with -d / one
# connection per message) run interleaved, then the latency client runs
# over each path. Prints markdown tables of medians over the rounds.
# Everything listens on 127.0.0.1 only; every process started here is
# stopped on exit. See bench/README.md.
#
# Knobs (environment): ROUNDS (7), MSGS (4000, messages per smtp-source
# run), SESSIONS (20), SIZE (5120), LAT_MSGS (2000, measured messages per
# latency run), KEEP=1 keeps the work directory, PROXY_CORE (1),
# LOAD_CORE (0), REV=<git revision> builds spamsurge from that commit
# (git archive) instead of the working tree, NICE=-10 runs everything
# (this script and all it starts) at that nice value, so other work on a
# shared machine disturbs the measurement less (needs root).
set -euo pipefail
export LC_ALL=C

ROUNDS=${ROUNDS:-7}
MSGS=${MSGS:-4000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-5120}
LAT_MSGS=${LAT_MSGS:-2000}
PROXY_CORE=${PROXY_CORE:-1}
LOAD_CORE=${LOAD_CORE:-0}
KEEP=${KEEP:-0}
REV=${REV:-}
NICE=${NICE:-}

cd "$(dirname "$0")/../.."
for tool in smtp-source smtp-sink taskset go ss curl; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (smtp-source/smtp-sink: apt-get install postfix)" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/spamsurge-bench.XXXXXX)
PIDS=()
FAILED=0

cleanup() {
	local rc=$?
	set +e
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		# Give spamsurge its graceful shutdown, then insist.
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	if [[ $KEEP == 1 || $FAILED != 0 || $rc != 0 ]]; then
		echo "run.sh: work directory kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date +%T)] $*" >&2; }

# free_port prints a loopback TCP port nobody listens on, below the
# ephemeral range so outgoing connections cannot take it meanwhile.
TAKEN=" "
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 12000))
		[[ $TAKEN == *" $p "* ]] && continue
		if [[ -z $(ss -Htln "sport = :$p") ]]; then
			TAKEN+="$p "
			echo "$p"
			return
		fi
	done
	echo "run.sh: no free port" >&2
	return 1
}

wait_port() { # wait_port PORT PID NAME
	for _ in $(seq 100); do
		[[ -n $(ss -Htln "sport = :$1") ]] && return 0
		kill -0 "$2" 2>/dev/null || { echo "run.sh: $3 exited; log:" >&2; cat "$WORK/$3.log" >&2; return 1; }
		sleep 0.1
	done
	echo "run.sh: $3 does not listen on 127.0.0.1:$1" >&2
	return 1
}

# snap [PID]: one reading of /proc/stat (and /proc/PID/stat) -> "busy
# ticks of the proxy core, busy ticks of the load core, steal ticks of
# both, utime+stime of PID". Busy is user+nice+system+irq+softirq. In
# /proc/PID/stat utime and stime are fields 14 and 15 and count all of the
# process's threads; the command name (field 2) may hold spaces, so count
# from the closing parenthesis. One awk, so the reading is quick and the
# window it opens around a run stays small.
snap() {
	local f=()
	# A hop that has died reads as 0 (its runs fail and are reported).
	[[ -n ${1:-} && -r /proc/$1/stat ]] && f=("/proc/$1/stat")
	awk -v pc="cpu$PROXY_CORE" -v lc="cpu$LOAD_CORE" '
		FILENAME == "/proc/stat" {
			if ($1 == pc) { pb = $2 + $3 + $4 + $7 + $8; st += $9 }
			if ($1 == lc) { lb = $2 + $3 + $4 + $7 + $8; st += $9 }
			next
		}
		{ sub(/.*\) /, ""); ht = $12 + $13 }
		END { print pb + 0, lb + 0, st + 0, ht + 0 }' /proc/stat "${f[@]}"
}

median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# ---- build -----------------------------------------------------------------
log "building into $WORK/bin"
mkdir -p "$WORK/bin" "$WORK/runs"
if [[ -n $REV ]]; then
	# A committed revision, unaffected by edits in progress in the tree.
	mkdir -p "$WORK/src"
	git archive --format=tar "$REV" | tar -x -C "$WORK/src"
	(cd "$WORK/src" && go build -o "$WORK/bin/spamsurge" ./cmd/spamsurge)
	REV=$(git rev-parse --short "$REV")
else
	go build -o "$WORK/bin/spamsurge" ./cmd/spamsurge
	REV=$(git describe --always --dirty 2>/dev/null || echo unknown)
fi
go build -o "$WORK/bin/byterelay" ./bench/byterelay
go build -o "$WORK/bin/latency" ./bench/relay/latency
CLK_TCK=$(getconf CLK_TCK)

if [[ -n $NICE ]]; then
	renice -n "$NICE" -p $$ >/dev/null
fi

# ---- start the sink, the byte relay and spamsurge ------------------------------
SINK_PORT=$(free_port)
RELAY_PORT=$(free_port)
PROXY_PORT=$(free_port)
HTTP_PORT=$(free_port)

# No -c (counters), no -d/-D (dumps): the sink only answers.
taskset -c "$LOAD_CORE" smtp-sink -u "$(id -un)" -m 1000 127.0.0.1:"$SINK_PORT" 1024 >"$WORK/smtp-sink.log" 2>&1 &
SINK_PID=$!
PIDS+=("$SINK_PID")
wait_port "$SINK_PORT" "$SINK_PID" smtp-sink

taskset -c "$PROXY_CORE" "$WORK/bin/byterelay" -listen 127.0.0.1:"$RELAY_PORT" -to 127.0.0.1:"$SINK_PORT" >"$WORK/byterelay.log" 2>&1 &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
wait_port "$RELAY_PORT" "$RELAY_PID" byterelay

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
taskset -c "$PROXY_CORE" "$WORK/bin/spamsurge" serve --config "$WORK/spamsurge.yaml" >"$WORK/spamsurge.log" 2>&1 &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_port "$PROXY_PORT" "$PROXY_PID" spamsurge

declare -A PORT=([direct]=$SINK_PORT [relay]=$RELAY_PORT [spamsurge]=$PROXY_PORT)
declare -A PID=([direct]="" [relay]=$RELAY_PID [spamsurge]=$PROXY_PID)
PATHS=(direct relay spamsurge)
VARIANTS=("1 reuse" "1 conn" "5 reuse" "5 conn")
variant_name() { # "1 reuse" -> "1 rcpt, -d (reused)"
	local r=${1% *} m=${1#* }
	if [[ $m == reuse ]]; then echo "$r rcpt, reused (-d)"; else echo "$r rcpt, one conn/msg"; fi
}

# source_run PATH RCPT MODE MSGS OUTFILE -> "wall_us hop_ticks rc
# proxy_core_busy load_core_busy steal window_us": wall_us times
# smtp-source alone; the tick counters are read just outside it, over
# window_us. hop_ticks is the CPU of the byte relay or spamsurge over the
# run, 0 for direct.
source_run() {
	local path=$1 rcpt=$2 mode=$3 msgs=$4 out=$5 pid=${PID[$1]} d=() rc=0 w0 t0 t1 w1 a b
	[[ $mode == reuse ]] && d=(-d)
	w0=${EPOCHREALTIME/./}
	read -r -a a < <(snap "$pid")
	t0=${EPOCHREALTIME/./}
	taskset -c "$LOAD_CORE" smtp-source "${d[@]}" -s "$SESSIONS" -l "$SIZE" -m "$msgs" -r "$rcpt" \
		-f bench@source.example -t rcpt@sink.example 127.0.0.1:"${PORT[$path]}" >"$out" 2>&1 || rc=$?
	t1=${EPOCHREALTIME/./}
	read -r -a b < <(snap "$pid")
	w1=${EPOCHREALTIME/./}
	echo "$((t1 - t0)) $((b[3] - a[3])) $rc $((b[0] - a[0])) $((b[1] - a[1])) $((b[2] - a[2])) $((w1 - w0))"
}

# ---- warm-up (not recorded) ---------------------------------------------------
log "warm-up"
for path in "${PATHS[@]}"; do
	rc=999
	read -r _ _ rc _ < <(source_run "$path" 1 reuse 1000 "$WORK/runs/warmup-$path.out") || true
	[[ $rc == 0 ]] || { log "warm-up over $path failed (rc=$rc):"; cat "$WORK/runs/warmup-$path.out" >&2; FAILED=1; }
done

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date +%s)
# round variant path msgs wall_us hop_ticks rc proxy_core_busy load_core_busy steal window_us
RES=$WORK/results.tsv
LAT=$WORK/latency.tsv # round sessions path p50_us p99_us errors
: >"$RES"
: >"$LAT"

for round in $(seq "$ROUNDS"); do
	# Rotate the order of the paths each round, so none always runs first.
	order=()
	for i in 0 1 2; do order+=("${PATHS[$(((i + round) % 3))]}"); done
	for v in "${VARIANTS[@]}"; do
		rcpt=${v% *} mode=${v#* }
		for path in "${order[@]}"; do
			out=$WORK/runs/r$round-$rcpt-$mode-$path.out
			wall=0 ticks=0 rc=999 pbusy=0 lbusy=0 steal=0 window=1
			read -r wall ticks rc pbusy lbusy steal window < <(source_run "$path" "$rcpt" "$mode" "$MSGS" "$out") || true
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$v" "$path" "$MSGS" "$wall" "$ticks" "$rc" "$pbusy" "$lbusy" "$steal" "$window" >>"$RES"
			if [[ $rc != 0 || -s $out ]]; then
				FAILED=1
				log "round $round, $v, $path: smtp-source rc=$rc: $(head -c 300 "$out" | tr '\n' ' ')"
			fi
		done
	done
	for sessions in 1 "$SESSIONS"; do
		for path in "${order[@]}"; do
			out=$WORK/runs/r$round-lat$sessions-$path.out
			rc=0
			taskset -c "$LOAD_CORE" "$WORK/bin/latency" -addr 127.0.0.1:"${PORT[$path]}" -c "$sessions" \
				-n "$LAT_MSGS" -size "$SIZE" -rcpt 1 -reuse >"$out" 2>"$out.err" || rc=$?
			line=$(tail -n1 "$out")
			kv() { tr ' ' '\n' <<<"$line" | awk -F= -v k="$1" '$1 == k {print $2}'; }
			p50=$(kv p50_us) p99=$(kv p99_us) errs=$(kv errors)
			printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$sessions" "$path" "${p50:-nan}" "${p99:-nan}" "${errs:-nan}" >>"$LAT"
			if [[ $rc != 0 ]]; then
				FAILED=1
				log "round $round, latency -c $sessions, $path: rc=$rc: $(head -c 300 "$out.err" | tr '\n' ' ')"
			fi
		done
	done
	log "round $round/$ROUNDS done ($(($(date +%s) - START)) s)"
done
ELAPSED=$(($(date +%s) - START))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- proxy health after the run --------------------------------------------------
METRICS=$(curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" || true)
metric() { awk -v m="$1" '$1 == m {print $2; f = 1} END {if (!f) print "n/a"}' <<<"$METRICS"; }
hwm() { awk '/^VmHWM:/ {print $2 " " $3}' /proc/"$1"/status 2>/dev/null || echo "n/a (exited)"; }
PROXY_HWM=$(hwm "$PROXY_PID")
RELAY_HWM=$(hwm "$RELAY_PID")
kill -0 "$PROXY_PID" 2>/dev/null || { FAILED=1; log "spamsurge is no longer running"; }
WARNS=$(grep -cE '(WARN|ERROR|panic)' "$WORK/spamsurge.log" || true)

# ---- report ----------------------------------------------------------------------
# rate ROUND VARIANT PATH -> msgs/s ; cpu ... -> µs/msg
rate() { awk -F'\t' -v r="$1" -v v="$2" -v p="$3" '$1 == r && $2 == v && $3 == p && $7 == 0 {printf "%.1f\n", $4 * 1e6 / $5}' "$RES"; }
cpu() { awk -F'\t' -v r="$1" -v v="$2" -v p="$3" -v hz="$CLK_TCK" '$1 == r && $2 == v && $3 == p && $7 == 0 {printf "%.1f\n", $6 * 1e6 / hz / $4}' "$RES"; }
rates() { for r in $(seq "$ROUNDS"); do rate "$r" "$1" "$2"; done; }
cpus() { for r in $(seq "$ROUNDS"); do cpu "$r" "$1" "$2"; done; }
ratios() { # per-round ratio PATH_A / PATH_B, in percent
	for r in $(seq "$ROUNDS"); do
		a=$(rate "$r" "$1" "$2") b=$(rate "$r" "$1" "$3")
		[[ -n $a && -n $b ]] && awk -v a="$a" -v b="$b" 'BEGIN {printf "%.1f\n", 100 * a / b}'
	done
}
latv() { awk -F'\t' -v s="$1" -v p="$2" -v c="$3" '$2 == s && $3 == p && $6 == 0 {print $c}' "$LAT"; }
latdiff() { # per-round difference PATH_A - PATH_B in column C
	for r in $(seq "$ROUNDS"); do
		awk -F'\t' -v r="$r" -v s="$1" -v a="$2" -v b="$3" -v c="$4" '$1 == r && $2 == s && $6 == 0 {v[$3] = $c; n[$3] = 1} END {if (n[a] && n[b]) print v[a] - v[b]}' "$LAT"
	done
}
fmt0() { awk '{printf "%.0f", $1}'; }

echo
echo "## Results ($(date -u +%Y-%m-%d), $ROUNDS rounds, medians)"
echo
echo "$SESSIONS parallel smtp-source sessions, $SIZE-byte messages, $MSGS messages per run; proxy and byte relay on core $PROXY_CORE, smtp-source and smtp-sink on core $LOAD_CORE. Ratios and differences are medians of per-round pairs. spamsurge built from $REV; nice ${NICE:-0}. Rounds took $ELAPSED s; load average $LOAD_START at the start, $LOAD_END at the end."
echo
echo "| variant | direct msg/s | byte relay msg/s | spamsurge msg/s | spamsurge / byte relay | spamsurge / direct | byte relay / direct | byte relay CPU µs/msg | spamsurge CPU µs/msg |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for v in "${VARIANTS[@]}"; do
	printf '| %s | %s | %s | %s | %s %% | %s %% | %s %% | %s | %s |\n' "$(variant_name "$v")" \
		"$(rates "$v" direct | median | fmt0)" "$(rates "$v" relay | median | fmt0)" "$(rates "$v" spamsurge | median | fmt0)" \
		"$(ratios "$v" spamsurge relay | median | fmt0)" "$(ratios "$v" spamsurge direct | median | fmt0)" "$(ratios "$v" relay direct | median | fmt0)" \
		"$(cpus "$v" relay | median | fmt0)" "$(cpus "$v" spamsurge | median | fmt0)"
done
echo
echo "Latency: final \".\" to the 250 reply, 1 recipient, connection reused, $LAT_MSGS measured messages per run (bench/relay/latency), µs:"
echo
echo "| sessions | direct p50 / p99 | byte relay p50 / p99 | spamsurge p50 / p99 | added vs direct p50 / p99 | added vs byte relay p50 / p99 |"
echo "|---:|---:|---:|---:|---:|---:|"
for s in 1 "$SESSIONS"; do
	printf '| %s | %s / %s | %s / %s | %s / %s | %s / %s | %s / %s |\n' "$s" \
		"$(latv "$s" direct 4 | median | fmt0)" "$(latv "$s" direct 5 | median | fmt0)" \
		"$(latv "$s" relay 4 | median | fmt0)" "$(latv "$s" relay 5 | median | fmt0)" \
		"$(latv "$s" spamsurge 4 | median | fmt0)" "$(latv "$s" spamsurge 5 | median | fmt0)" \
		"$(latdiff "$s" spamsurge direct 4 | median | fmt0)" "$(latdiff "$s" spamsurge direct 5 | median | fmt0)" \
		"$(latdiff "$s" spamsurge relay 4 | median | fmt0)" "$(latdiff "$s" spamsurge relay 5 | median | fmt0)"
done
echo
busy() { # busy% of core column C (8: proxy core, 9: load core, 10: steal over both) per run
	awk -F'\t' -v v="$1" -v p="$2" -v c="$3" -v hz="$CLK_TCK" '$2 == v && $3 == p && $7 == 0 {printf "%.1f\n", 100 * $c / hz / ($11 / 1e6) / (c == 10 ? 2 : 1)}' "$RES"
}
echo "Core use during the smtp-source runs (median %; core $PROXY_CORE runs only the hop, core $LOAD_CORE smtp-source and smtp-sink; other users of the machine show up on both):"
echo
echo "| variant | direct: core $PROXY_CORE / core $LOAD_CORE | byte relay: core $PROXY_CORE / core $LOAD_CORE | spamsurge: core $PROXY_CORE / core $LOAD_CORE | steal (all runs) |"
echo "|---|---:|---:|---:|---:|"
for v in "${VARIANTS[@]}"; do
	printf '| %s | %s / %s | %s / %s | %s / %s | %s |\n' "$(variant_name "$v")" \
		"$(busy "$v" direct 8 | median | fmt0)" "$(busy "$v" direct 9 | median | fmt0)" \
		"$(busy "$v" relay 8 | median | fmt0)" "$(busy "$v" relay 9 | median | fmt0)" \
		"$(busy "$v" spamsurge 8 | median | fmt0)" "$(busy "$v" spamsurge 9 | median | fmt0)" \
		"$(for p in "${PATHS[@]}"; do busy "$v" "$p" 10; done | median | fmt0)"
done
echo
echo "Per-round msg/s (round 1 / 2 / ...), to judge the spread:"
echo
echo "| variant | direct | byte relay | spamsurge |"
echo "|---|---|---|---|"
for v in "${VARIANTS[@]}"; do
	row="| $(variant_name "$v") |"
	for p in "${PATHS[@]}"; do
		row+=" $(for r in $(seq "$ROUNDS"); do rate "$r" "$v" "$p" | fmt0; echo; done | paste -sd/ | sed 's|/| / |g') |"
	done
	echo "$row"
done
echo
FAILED_RUNS=$(awk -F'\t' '$7 != 0' "$RES" | wc -l)
echo "Proxy after the run: spamsurge_messages_total relayed=$(metric 'spamsurge_messages_total{result="relayed"}') tempfail=$(metric 'spamsurge_messages_total{result="tempfail"}') rejected=$(metric 'spamsurge_messages_total{result="rejected"}'); downstream failures (io)=$(metric 'spamsurge_downstream_failures_total{reason="io"}'); VmHWM spamsurge $PROXY_HWM, byte relay $RELAY_HWM; WARN/ERROR log lines: $WARNS; failed smtp-source runs: $FAILED_RUNS of $(wc -l <"$RES")."
if [[ $FAILED != 0 ]]; then
	echo
	echo "SOME RUNS FAILED: see the log lines above and $WORK/runs, $WORK/spamsurge.log"
	exit 1
fi
