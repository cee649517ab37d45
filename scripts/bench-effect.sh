#!/usr/bin/env bash
# Does the boost help (root)? The run-queue wait the daemon exports for
# nr-gnb and nr-ue, and the UE's round-trip times, while stress-ng's CPU
# hogs contend for the CPUs, with and without a boost of exactly the ids
# the daemon published to the API.
#
#   scripts/bench-effect.sh [ROUNDS=3] [SECS=20]
#   (environment: HOGS=4 stress-ng --cpu workers, RATE=200 pings/s,
#    WARMUP=5 s, CONFIGS="quiet stress fifo nice")
#
# Runs the local API, `gtp5g-tracer --mode netdev` and the daemon (the
# release build, default settings, /metrics on a free loopback port) once;
# then, per round, each configuration in turn (rotated from round to round,
# so drift favours none) on a fresh `ran-sim --ues 1 --idle-ues 1 --rate
# RATE --warmup WARMUP`:
#
#   quiet   no hogs, no boost
#   stress  HOGS hogs, no boost
#   fifo    HOGS hogs; `chrt -f -p 10 TID` (SCHED_FIFO 10) on each id
#   nice    HOGS hogs; `renice -n -20 -p TID` on each id
#
# No sched_ext scheduler runs here: the two boosts stand in for Gthulhu's.
# The ids are the API's strategy list, once it equals nr-gnb's and the
# active nr-ue's threads as ran-sim reports them (the idle UE and the UPF
# stand-in, a thread of ran-sim itself, are not targets and stay
# unboosted). A thread's policy and nice value die with it: the boosts end
# with each run's ran-sim. The boost must be in place before the warmup
# ends; then the window opens at the daemon's next schedstat tick (the
# counters change), stays open SECS s and closes at a tick, so the
# counters' deltas over it are exact. Per run: ms of run-queue wait per
# second of the window, per target name, from
# gtp5g_operator_target_runqueue_wait_seconds_total; the UPF thread's
# (from /proc, for comparison); ran-sim's rtt_us over the pings sent after
# the warmup; the 1-minute load average. Once, the daemon's deltas beside
# the kernel's own schedstat sums over the same window. Then per
# configuration the medians over the rounds.
#
# Holds /tmp/gtp5g-bench.lock (and the trace_pipe lock: ran-sim's ports
# are fixed) throughout; stops everything it started on exit.
set -euo pipefail
# shellcheck source=bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"

ROUNDS=${1:-3}
SECS=${2:-20}
HOGS=${HOGS:-4}
RATE=${RATE:-200}
WARMUP=${WARMUP:-5}
read -ra CONFIGS <<<"${CONFIGS:-quiet stress fifo nice}"
TICK_TIMEOUT_S=5

for tool in stress-ng chrt renice curl jq; do
	command -v "$tool" >/dev/null || die "needs $tool (apt-get install stress-ng util-linux curl jq)"
done

# --- the daemon's figures ---------------------------------------------------

# "NAME SECONDS" for each target name's run-queue wait counter.
wait_counters() {
	curl -sf "http://$METRICS/metrics" |
		sed -n 's/^gtp5g_operator_target_runqueue_wait_seconds_total{name="\([^"]*\)"} \(.*\)/\1 \2/p'
}

# Waits for the daemon's next schedstat tick, seen as a change of its
# counters (CPU time grows on every tick while ran-sim runs); sets COUNTERS
# and TICK_US, when it was seen.
next_tick() {
	local before deadline=$(($(now_us) + TICK_TIMEOUT_S * 1000000))
	before=$(wait_counters)
	until COUNTERS=$(wait_counters) && [ "$COUNTERS" != "$before" ]; do
		[ "$(now_us)" -lt "$deadline" ] || die "the daemon's counters did not change in $TICK_TIMEOUT_S s"
		sleep 0.02
	done
	TICK_US=$(now_us)
}

# target_value NAME COUNTERS: NAME's value in a "NAME VALUE" listing (not
# bench-lib's counter, which reads the daemon's log).
target_value() {
	awk -v n="$1" '$1 == n {print $2}' <<<"$2"
}

# ms of wait per s: from $1 to $2 (seconds, or units of $4 s) over $3 us.
ms_per_s() {
	awk -v a="$1" -v b="$2" -v us="$3" -v unit="${4:-1}" 'BEGIN {printf "%.1f", (b - a) * unit * 1e9 / us}'
}

# --- ran-sim ----------------------------------------------------------------

# Starts ran-sim (output to $1) and waits for its process lines; sets
# RAN_PID, RAN_GO_US (ran-sim's go: the warmup starts), GNB, UE, UPF (pids)
# and WANT (the ids that should be boosted, sorted).
start_ran_sim() {
	local out=$1
	start_bg "$out" "$TRACER_BUILD/ran-sim" --ues 1 --idle-ues 1 --rate "$RATE" --warmup "$WARMUP"
	RAN_PID=$BG_PID
	poll "$RAN_PID" "$out" 10 "ran-sim's processes" ran_sim_reported "$out"
	RAN_GO_US=$(now_us)
	GNB=$(ran_sim_json "$out" 'select(.role == "gnb") | .pid')
	UE=$(ran_sim_json "$out" 'select(.role == "ue" and .idle == false) | .pid')
	UPF=$(ran_sim_json "$out" 'select(.role == "upf") | .pid')
	WANT=$(ran_sim_json "$out" 'select(.role == "gnb" or (.role == "ue" and .idle == false)) | .tids[]' | sort -n)
}

# ran-sim_json FILE FILTER: jq on ran-sim's JSON lines (stderr is there too).
ran_sim_json() {
	grep '^{"role"' "$1" | jq -r "$2"
}

ran_sim_reported() {
	[ "$(grep -c '^{"role":"ue"' "$1")" -ge 2 ]
}

published() {
	[ "$(api_strategies | sort -n)" = "$WANT" ]
}

# --- the boosts -------------------------------------------------------------

# boost CONFIG: the configuration's boost on each id the API holds; checks
# that the kernel took it.
boost() {
	local id ids
	ids=$(api_strategies)
	for id in $ids; do
		case $1 in
		fifo) chrt -f -p 10 "$id" ;;
		nice) renice -n -20 -p "$id" >/dev/null ;;
		esac
		boosted "$1" "$id" || die "tid $id: the $1 boost did not take: $(sched_of "$id")"
	done
}

# "NICE POLICY" of a thread (fields 19 and 41 of stat; policy 1 is FIFO).
sched_of() {
	sed 's/.*) //' "/proc/$1/stat" | awk '{print $17, $39}'
}

boosted() {
	case $1 in
	fifo) [ "$(sched_of "$2" | cut -d' ' -f2)" = 1 ] ;;
	nice) [ "$(sched_of "$2" | cut -d' ' -f1)" = -20 ] ;;
	*) true ;;
	esac
}

# --- one run ----------------------------------------------------------------

# run CONFIG ROUND: prints the run's row and appends it to $WORK/rows.
run() {
	local config=$1 round=$2 out=$WORK/ran-sim-$1-$2.out hogs=- c0 us0 gnb0 ue0 upf0 c1 us rtt name row
	if [ "$config" != quiet ]; then
		start_bg /dev/null stress-ng --cpu "$HOGS" --quiet
		hogs=$BG_PID
	fi
	start_ran_sim "$out"
	wait_until 15 "the API holding exactly nr-gnb's and the active nr-ue's ids ${WANT//$'\n'/ }" published
	boost "$config"
	[ "$(now_us)" -lt $((RAN_GO_US + WARMUP * 1000000)) ] ||
		die "$config: the ids were published and boosted after the warmup of $WARMUP s: raise WARMUP"
	sleep "$(awk -v us=$((RAN_GO_US + WARMUP * 1000000 - $(now_us))) 'BEGIN {print us / 1e6}')"

	next_tick
	c0=$COUNTERS us0=$TICK_US
	gnb0=$(schedstat_sum 2 "$GNB") ue0=$(schedstat_sum 2 "$UE") upf0=$(schedstat_sum 2 "$UPF")
	sleep "$SECS"
	next_tick
	c1=$COUNTERS us=$((TICK_US - us0))
	if [ -z "${CHECKED:-}" ] && [ "$config" = stress ]; then
		echo "cross-check ($config, round $round): run-queue wait over the same $((us / 1000)) ms window, ms"
		cross_check nr-gnb "$GNB" "$gnb0" "$c0" "$c1"
		cross_check nr-ue "$UE" "$ue0" "$c0" "$c1"
		CHECKED=1
	fi
	row="$config $round"
	for name in nr-gnb nr-ue; do
		row+=" $(ms_per_s "$(target_value "$name" "$c0")" "$(target_value "$name" "$c1")" "$us")"
	done
	row+=" $(ms_per_s "$upf0" "$(schedstat_sum 2 "$UPF")" "$us" 1e-9)"
	stop_pid "$RAN_PID"
	[ "$hogs" = - ] || stop_pid "$hogs"
	rtt=$(ran_sim_json "$out" 'select(.role == "summary") | .rtt_us | "\(.p50) \(.p99) \(.max) \(.count)"')
	[ -n "$rtt" ] || die "ran-sim printed no summary: $(tail -3 "$out")"
	row+=" $rtt $(cut -d' ' -f1 /proc/loadavg)"
	echo "$row" >>"$WORK/rows"
	# shellcheck disable=SC2086 # the row is its fields
	printf '%-7s %5s %12.1f %12.1f %12.1f %9.1f %9.1f %9.1f %7d %5s\n' $row
	# The daemon sees the exits and posts the shorter list.
	wait_until 10 "the API dropping ran-sim's ids" api_empty
}

api_empty() {
	[ -z "$(api_strategies)" ]
}

# cross_check NAME PID KERNEL0 COUNTERS0 COUNTERS1: the daemon's delta for
# NAME beside the kernel's schedstat sum over PID's threads, from KERNEL0 ns
# (read just after the first tick) to now (just after the second).
cross_check() {
	awk -v n="$1" -v pid="$2" -v k0="$3" -v k1="$(schedstat_sum 2 "$2")" -v a="$(target_value "$1" "$4")" \
		-v b="$(target_value "$1" "$5")" 'BEGIN {
			printf "  %-6s daemon %9.1f   sum of /proc/%s/task/*/schedstat %9.1f\n", n, (b - a) * 1e3, pid, (k1 - k0) / 1e6
		}'
}

# --- the medians ------------------------------------------------------------

median() {
	sort -g | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# Column $2 of configuration $1's rows, median over the rounds.
column_median() {
	awk -v c="$1" -v n="$2" '$1 == c {print $n}' "$WORK/rows" | median
}

summary() {
	local config col line
	echo
	echo "medians over $ROUNDS rounds (wait: ms of run-queue wait per s, all the process's threads summed; RTT: us)"
	echo "| configuration | nr-gnb wait | nr-ue wait | UPF wait (not a target) | RTT p50 | RTT p99 | RTT max | load |"
	echo "|---|---|---|---|---|---|---|---|"
	for config in "${CONFIGS[@]}"; do
		line="| $(describe "$config")"
		for col in 3 4 5 6 7 8 10; do
			line+=" | $(column_median "$config" "$col")"
		done
		echo "$line |"
	done
}

describe() {
	case $1 in
	quiet) echo "no hogs, no boost" ;;
	stress) echo "$HOGS hogs, no boost" ;;
	fifo) echo "$HOGS hogs, \`chrt -f -p 10\` on the published ids" ;;
	nice) echo "$HOGS hogs, \`renice -n -20\` on the published ids" ;;
	*) die "unknown configuration $1 (CONFIGS: quiet stress fifo nice)" ;;
	esac
}

# --- main -------------------------------------------------------------------

for config in "${CONFIGS[@]}"; do
	describe "$config" >/dev/null
done
bench_init
require_tools gtp5g-tracer ran-sim
lock_bench
lock_trace_pipe
set_ring_buffer_kb "${BUFFER_KB:-1408}"
start_local_api "$WORK"
start_tracer "$WORK/tracer.log" --mode netdev
METRICS=127.0.0.1:$(free_port)
# A state dir of its own: the host's tracked.json is not the benchmark's.
GTP5G_OPERATOR__STATE__DIR=$WORK/state bench_daemon "$TRACEFS/trace_pipe" "$WORK/daemon.log" --metrics-listen "$METRICS"

echo "settings: $ROUNDS rounds x ${#CONFIGS[@]} configurations, window $SECS s after a warmup of $WARMUP s;" \
	"ran-sim --ues 1 --idle-ues 1 --rate $RATE; stress-ng --cpu $HOGS ($(stress-ng --version | head -1)); $(nproc) CPUs, kernel $(uname -r)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-7s %5s %12s %12s %12s %9s %9s %9s %7s %5s\n' config round nr-gnb_ms/s nr-ue_ms/s upf_ms/s \
	p50_us p99_us max_us count load
: >"$WORK/rows"
for round in $(seq "$ROUNDS"); do
	for i in $(seq 0 $((${#CONFIGS[@]} - 1))); do
		run "${CONFIGS[$(((round - 1 + i) % ${#CONFIGS[@]}))]}" "$round"
	done
done
summary
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
