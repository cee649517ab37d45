#!/usr/bin/env bash
# What the tracer costs the user plane (root).
#
#   scripts/bench-overhead.sh [ROUNDS=5] [SECONDS=5] [FLOOD_SECONDS=60]
#   scripts/bench-overhead.sh startup [RUNS=11] [TRACER_BINARY...]
#   (environment: FLOOD_THREADS=4, BUFFER_KB=1408 per-CPU ring buffer,
#   RANSIM_ARGS= extra ran-sim arguments, e.g. "--gnb ::1 --upf ::1",
#   BPF_STATS=0 to leave bpf_stats off: its clock reads slow the traced
#   runs; FLOOD_SECONDS 0 skips the flood)
#
# Rate: packets/s of a one-thread GTP-U sender (`gtpu-traffic --threads 1
# --interval-ms 0`, counted as the kernel's Udp OutDatagrams over SECONDS)
# and round trips/s of the UERANSIM stand-in (`ran-sim --ues 1 --rate 0`,
# its own count; four traced UDP hops each), with no tracer, with
# `gtp5g-tracer --every-event` and with the default (de-duplicated); the
# daemon reads trace_pipe throughout. Each round runs the three in a
# rotated order, so drift in the machine's load favours none of them; the
# summary gives medians over ROUNDS and each mode's cost against no tracer.
# On a shared machine the rates drift by tens of percent between runs, so
# the tracer's own cost is also measured directly: kernel.bpf_stats_enabled
# is on for the runs (restored after), and the nanoseconds its programs ran
# per packet (per round trip for ran-sim) are set against the time a packet
# takes without a tracer. bpf_stats adds two clock reads per call, so this
# is an upper bound.
#
# Flood: FLOOD_THREADS GTP-U threads at full speed for FLOOD_SECONDS under
# each tracer mode: trace_pipe lines/s delivered (the ring buffer's "read
# events") and events lost ("overrun": what the reader sees as
# `CPU:N [LOST M EVENTS]`), plus the tracer's own printed/suppressed counts.
#
# startup: wall time from exec to "probes attached" and the tracer's CPU
# time until then (schedstat), netdev mode; then the time fentry mode takes
# to fail on a machine without gtp5g. For each binary given (default: this
# tree's), alternating, RUNS each.
set -euo pipefail
# shellcheck source=bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"

MODES=(none every-event default)

# The kernel's count of UDP datagrams sent, all sockets.
udp_out() {
	awk '/^Udp:/ { if (seen) print $5; seen = 1 }' /proc/net/snmp
}

load1() {
	cut -d' ' -f1 /proc/loadavg
}

# Attaches the tracer for mode $1 (nothing for "none").
tracer_on() {
	case $1 in
		none) TRACER_PID= ;;
		every-event) start_tracer "$WORK/tracer.log" --mode netdev --every-event ;;
		default) start_tracer "$WORK/tracer.log" --mode netdev ;;
	esac
}

# Nanoseconds the tracer's programs ran and how often (kernel.bpf_stats_enabled
# must be on): "NS CALLS".
bpf_run() {
	bpftool prog show -j | jq -r '[.[] | select(.name == "tp_net_dev_queue" or .name == "tp_netif_receive_skb")]
		| "\(map(.run_time_ns // 0) | add // 0) \(map(.run_cnt // 0) | add // 0)"'
}

# Detaches it; sets COUNTS to its exit counts ("printed=N,suppressed=M")
# or "-". Not to be run in a subshell: only this shell can wait for it.
tracer_off() {
	COUNTS=-
	[ -n "$TRACER_PID" ] || return 0
	local run
	run=$(bpf_run)
	stop_pid "$TRACER_PID"
	COUNTS=$(grep -o 'printed=[0-9]* suppressed=[0-9]*' "$WORK/tracer.log" | tail -1 | tr ' ' ,)
	COUNTS="$COUNTS,bpf_ns=${run% *},bpf_calls=${run#* }"
}

gtpu_pps() {
	local pid out0 t0 out1 t1
	start_bg /dev/null "$TRACER_BUILD/gtpu-traffic" --name nr-gnb --threads 1 --interval-ms 0
	pid=$BG_PID
	sleep 0.3
	out0=$(udp_out)
	t0=$(date +%s%N)
	sleep "$SECS"
	out1=$(udp_out)
	t1=$(date +%s%N)
	stop_pid "$pid"
	echo $(( (out1 - out0) * 1000000000 / (t1 - t0) ))
}

ransim_pps() {
	# shellcheck disable=SC2086 # RANSIM_ARGS is a list of words
	"$TRACER_BUILD/ran-sim" --ues 1 --rate 0 --duration "$SECS" ${RANSIM_ARGS:-} >"$WORK/ran-sim.out" 2>&1 ||
		die "ran-sim failed: $(tail -3 "$WORK/ran-sim.out")"
	grep '"summary"' "$WORK/ran-sim.out" | jq -r '.pps | floor'
}

rates() {
	local round i mode sender pps
	echo "rate: $SECS s per run, $ROUNDS rounds; load average (1 min) per run"
	printf '%-8s %-12s %5s %9s %5s  %s\n' sender tracer round pkts/s load "tracer's counts" | tee "$WORK/rows"
	for round in $(seq "$ROUNDS"); do
		for i in 0 1 2; do
			mode=${MODES[$(( (round + i) % 3 ))]}
			for sender in gtpu ran-sim; do
				tracer_on "$mode"
				if [ "$sender" = gtpu ]; then pps=$(gtpu_pps); else pps=$(ransim_pps); fi
				tracer_off
				printf '%-8s %-12s %5s %9s %5s  %s\n' "$sender" "$mode" "$round" "$pps" "$(load1)" \
					"$COUNTS" | tee -a "$WORK/rows"
			done
		done
	done
	echo
	for sender in gtpu ran-sim; do
		[ "${BPF_STATS:-1}" = 0 ] || bpf_per_packet "$sender"
		awk -v s="$sender" 'NR > 1 && $1 == s { print $2, $4 }' "$WORK/rows" | sort -k1,1 -k2n |
			awk -v s="$sender" '
				{ v[$1, ++n[$1]] = $2 }
				END {
					for (m in n) med[m] = v[m, int((n[m] + 1) / 2)]
					printf "%s median pkts/s: none %d, every-event %d (%+.1f%%), default %d (%+.1f%%)\n", s,
						med["none"], med["every-event"], 100 * (med["every-event"] / med["none"] - 1),
						med["default"], 100 * (med["default"] / med["none"] - 1)
				}'
	done
}

# Median BPF nanoseconds per packet of sender $1 in each tracer mode.
bpf_per_packet() {
	local mode
	for mode in every-event default; do
		awk -v s="$1" -v m="$mode" -v secs="$SECS" 'NR > 1 && $1 == s && $2 == m {
				split($6, kv, ","); for (i in kv) { split(kv[i], p, "="); f[p[1]] = p[2] }
				print f["bpf_ns"] / ($4 * secs) }' "$WORK/rows" | sort -n |
			awk -v s="$1" -v m="$mode" '{ v[NR] = $1 } END {
				printf "%s %s: median %.0f ns of BPF per packet\n", s, m, v[int((NR + 1) / 2)] }'
	done
}

flood() {
	local mode pid read0 over0 read over
	echo
	echo "flood: $FLOOD_THREADS GTP-U threads at full speed, $FLOOD_SECS s per mode, ring buffer $(cat "$TRACEFS/buffer_size_kb") kB/CPU"
	printf '%-12s %10s %10s %9s %5s  %s\n' tracer lines lines/s overrun load "tracer's counts"
	for mode in every-event default; do
		echo > "$TRACEFS/trace"
		tracer_on "$mode"
		read0=$(ring_stat "read events")
		over0=$(ring_stat overrun)
		start_bg /dev/null "$TRACER_BUILD/gtpu-traffic" --name nr-gnb --threads "$FLOOD_THREADS" --interval-ms 0
		pid=$BG_PID
		sleep "$FLOOD_SECS"
		stop_pid "$pid"
		# The daemon drains what is still buffered.
		sleep 1
		read=$(( $(ring_stat "read events") - read0 ))
		over=$(( $(ring_stat overrun) - over0 ))
		tracer_off
		printf '%-12s %10s %10s %9s %5s  %s\n' "$mode" "$read" "$((read / FLOOD_SECS))" "$over" "$(load1)" \
			"$COUNTS"
	done
}

# Wall and CPU milliseconds from exec to "probes attached" (netdev mode).
attach_ms() {
	local t0 t1 line cpu_ns
	t0=$(date +%s%N)
	coproc TRACER { exec "$1" --mode netdev 2>&1; }
	while IFS= read -r line <&"${TRACER[0]}"; do
		[[ $line == *"probes attached"* ]] && break
	done
	t1=$(date +%s%N)
	cpu_ns=$(cut -d' ' -f1 "/proc/$TRACER_PID/schedstat")
	kill -TERM "$TRACER_PID"
	wait "$TRACER_PID" || true
	echo "$(( (t1 - t0) / 1000000 )) $(( cpu_ns / 1000000 ))"
}

# Wall, user+sys milliseconds until fentry mode gives up (no gtp5g here).
fentry_fail_ms() {
	local TIMEFORMAT='%3R %3U %3S'
	{ time "$1" --mode fentry >/dev/null 2>&1 || true; } 2>&1 |
		awk '{ printf "%d %d\n", $1 * 1000, ($2 + $3) * 1000 }'
}

startup() {
	local runs=$1 bin i
	shift
	[ $# -gt 0 ] || set -- "$TRACER_BUILD/gtp5g-tracer"
	: > "$WORK/startup"
	for i in $(seq "$runs"); do
		for bin in "$@"; do
			echo "$bin netdev $(attach_ms "$bin")" >> "$WORK/startup"
			echo "$bin fentry-fail $(fentry_fail_ms "$bin")" >> "$WORK/startup"
		done
	done
	echo "start-up, $runs runs each, load average now $(load1); medians (min-max), ms"
	for bin in "$@"; do
		for what in netdev fentry-fail; do
			printf '%s %-11s wall %s  cpu %s\n' "$bin" "$what" "$(column_median "$bin" "$what" 3)" \
				"$(column_median "$bin" "$what" 4)"
		done
	done
}

# "median (min-max)" of column $3 of the start-up rows for binary $1, case $2.
column_median() {
	awk -v b="$1" -v w="$2" -v c="$3" '$1 == b && $2 == w { print $c }' "$WORK/startup" | sort -n |
		awk '{ v[NR] = $1 } END { printf "%d (%d-%d)", v[int((NR + 1) / 2)], v[1], v[NR] }'
}

if [ "${1:-}" = startup ]; then
	shift
	RUNS=${1:-11}
	shift || true
	bench_init
	require_tools gtp5g-tracer
	lock_trace_pipe
	startup "$RUNS" "$@"
	exit 0
fi

ROUNDS=${1:-5}
SECS=${2:-5}
FLOOD_SECS=${3:-60}
FLOOD_THREADS=${FLOOD_THREADS:-4}
bench_init
require_tools gtp5g-tracer gtpu-traffic ran-sim
command -v jq >/dev/null || die "needs jq"
command -v bpftool >/dev/null || die "needs bpftool (in /usr/sbin)"
lock_trace_pipe
set_ring_buffer_kb "${BUFFER_KB:-1408}"
start_local_api "$WORK"
bench_daemon "$TRACEFS/trace_pipe" "$WORK/daemon.log"
BPF_STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -qw kernel.bpf_stats_enabled="$BPF_STATS_WAS"; bench_cleanup' EXIT
sysctl -qw kernel.bpf_stats_enabled="${BPF_STATS:-1}"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
rates
[ "$FLOOD_SECS" = 0 ] || flood
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
