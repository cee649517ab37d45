#!/usr/bin/env bash
# What the tracer costs the user plane (root).
#
#   scripts/bench-overhead.sh [ROUNDS=11] [SECONDS=3] [FLOOD_SECONDS=60]
#   scripts/bench-overhead.sh startup [RUNS=11] [TRACER_BINARY...]
#   (environment: SENDERS="gtpu ran-sim", SINK=tun or socket,
#   SENDER_THREADS=2 pinned from SENDER_CPU=0 on, BATCH=32 packets per
#   sendmmsg() for the line-rate sender, FLOOD_THREADS=4,
#   BUFFER_KB=1408 per-CPU ring buffer, RANSIM_ARGS= extra ran-sim
#   arguments, e.g. "--gnb ::1 --upf ::1"; FLOOD_SECONDS 0 skips the flood)
#
# Rate at line rate: SENDER_THREADS threads, each on a CPU of its own,
# handing 72-byte GTP-U G-PDUs, 32 per sendmmsg() call (`gtpu-traffic
# --interval-ms 0 --inner-len 64 --batch 32 --cpu N`, so the system call's
# cost is paid once per 32 packets), counting their own packets over
# SECONDS. SINK=tun (the default) sends them to a TUN device of the
# bench's own that nobody reads (198.18.0.2, RFC 2544's range): each packet
# takes the whole sending path through net_dev_queue, the tracer's hook, as
# onto a NIC, and is dropped at the device, so neither a receive path nor
# an ICMP error is timed. SINK=socket sends to a socket of the sender's own
# on 127.0.0.3:2152 (`--sink`), which adds loopback's receive path (about
# 3 us a packet here) to every packet and so hides a cost per packet. And
# round trips/s of the UERANSIM stand-in (`ran-sim --ues 1 --rate 0`, four
# traced UDP hops each). Four modes: no tracer; the floor, an empty
# tp_btf/net_dev_queue program of our own (`gtp5g-floor`: what any program
# on that hook costs); `gtp5g-tracer --every-event`; and the default
# (de-duplicated). The daemon reads trace_pipe throughout. Each round runs
# the modes in a rotated order, so drift in the machine's load favours
# none of them; the machine's rate swings by several percent from round to
# round, so rates are compared within a round: the summary gives each
# mode's median of its per-round ratio to no tracer (paired medians).
# kernel.bpf_stats_enabled is on for the runs (restored after): the
# nanoseconds the attached programs ran per packet sent (per round trip
# for ran-sim), medians, and the default's paired median over the floor.
# bpf_stats's own two clock reads per call are in every figure, the
# floor's included.
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

MODES=(none floor every-event default)

load1() {
	cut -d' ' -f1 /proc/loadavg
}

floor_attached() {
	local ids
	ids=$(bpftool prog show -j | jq -c '[.[] | select(.name == "floor_net_dev_queue") | .id]')
	bpftool link show -j | jq -e --argjson ids "$ids" 'any(.[]; .prog_id as $p | $ids | index($p))' >/dev/null
}

# Attaches what mode $1 runs (nothing for "none"); sets TRACER_PID. The
# tracer says it is ready in a file, the floor by having a link in the
# kernel: no log line is read.
tracer_on() {
	local log=$WORK/tracer.log
	TRACER_PID=
	case $1 in
		none) ;;
		floor)
			start_bg "$log" "$TRACER_BUILD/gtp5g-floor"
			TRACER_PID=$BG_PID
			poll "$TRACER_PID" "$log" 10 "gtp5g-floor attaching" floor_attached || die "gtp5g-floor did not attach"
			;;
		every-event) start_tracer "$log" --mode netdev --every-event || die "gtp5g-tracer did not attach" ;;
		default) start_tracer "$log" --mode netdev || die "gtp5g-tracer did not attach" ;;
	esac
}

# Nanoseconds run so far by the programs of any mode (one is attached at
# a time: the trace_pipe lock keeps other tracers out).
bpf_ns() {
	bpftool prog show -j | jq '[.[] | select(.name == "tp_net_dev_queue" or .name == "tp_netif_receive_skb"
		or .name == "floor_net_dev_queue") | .run_time_ns // 0] | add // 0'
}

# Detaches it; sets COUNTS to the tracer's exit counts
# ("printed=N,suppressed=M") or "-". Not to be run in a subshell: only this
# shell can wait for it.
tracer_off() {
	COUNTS=-
	[ -n "$TRACER_PID" ] || return 0
	stop_pid "$TRACER_PID"
	COUNTS=$({ grep -o 'printed=[0-9]* suppressed=[0-9]*' "$WORK/tracer.log" || echo -; } | tail -1 | tr ' ' ,)
}

# Until the daemon has read and parsed what the last mode printed
# (--every-event leaves a backlog, in trace_pipe and in the daemon's
# queues), so that its work is not charged to the next mode.
settled() {
	wait_until 60 "the daemon settling" daemon_idle || warn "the daemon is still busy after 60 s"
}

# trace_pipe empty and the daemon under 1% of a CPU for 200 ms.
daemon_idle() {
	local ns
	ns=$(run_ns "$DAEMON_PID")
	sleep 0.2
	[ "$(ring_stat entries)" = 0 ] && [ $(($(run_ns "$DAEMON_PID") - ns)) -lt 2000000 ]
}

ring_empty() { [ "$(ring_stat entries)" = 0 ]; }

TUN_DEV=gtp5g-bench0

# A TUN device with an address and nobody reading it: a packet routed to
# its peer passes net_dev_queue and is dropped at the device (no carrier).
make_tun_sink() {
	ip link del "$TUN_DEV" 2>/dev/null || true
	ip tuntap add dev "$TUN_DEV" mode tun || die "cannot create the TUN device $TUN_DEV (SINK=socket needs none)"
	ip addr add 198.18.0.1/30 dev "$TUN_DEV"
	ip link set "$TUN_DEV" up
}

sink_args() {
	if [ "$SINK" = tun ]; then echo --dest 198.18.0.2; else echo --dest 127.0.0.3 --sink; fi
}

# One run of the line-rate sender: "PKTS/S BPF-NS-PER-PACKET".
gtpu_run() {
	local ns0 ns1 out
	ns0=$(bpf_ns)
	# shellcheck disable=SC2046 # sink_args is a list of words
	out=$("$TRACER_BUILD/gtpu-traffic" --name nr-gnb --threads "$SENDER_THREADS" --interval-ms 0 \
		--inner-len 64 $(sink_args) --cpu "$SENDER_CPU" --batch "${BATCH:-32}" --seconds "$SECS" | tail -1)
	ns1=$(bpf_ns)
	jq -r --argjson ns $((ns1 - ns0)) '"\(.pps | floor) \($ns / .sent)"' <<<"$out"
}

# One ran-sim run: "ROUND-TRIPS/S BPF-NS-PER-ROUND-TRIP".
ransim_run() {
	local ns0 ns1
	ns0=$(bpf_ns)
	# shellcheck disable=SC2086 # RANSIM_ARGS is a list of words
	"$TRACER_BUILD/ran-sim" --ues 1 --rate 0 --duration "$SECS" ${RANSIM_ARGS:-} >"$WORK/ran-sim.out" 2>&1 ||
		die "ran-sim failed: $(tail -3 "$WORK/ran-sim.out")"
	ns1=$(bpf_ns)
	grep '"summary"' "$WORK/ran-sim.out" |
		jq -r --argjson ns $((ns1 - ns0)) '"\(.pps | floor) \($ns / ([.pps * .elapsed_s, 1] | max))"'
}

rates() {
	local round i mode sender run
	echo "rate: $SECS s per run, $ROUNDS rounds, senders: $SENDERS; line-rate sender: $SENDER_THREADS threads from CPU $SENDER_CPU on, batch ${BATCH:-32}, sink $SINK ($(sink_args))"
	printf '%-8s %-12s %5s %9s %8s %5s  %s\n' sender mode round pkts/s bpf_ns load "tracer's counts" |
		tee "$WORK/rows"
	for round in $(seq "$ROUNDS"); do
		for i in 0 1 2 3; do
			mode=${MODES[$(((round + i) % 4))]}
			for sender in $SENDERS; do
				tracer_on "$mode"
				if [ "$sender" = gtpu ]; then run=$(gtpu_run); else run=$(ransim_run); fi
				tracer_off
				settled
				printf '%-8s %-12s %5s %9s %8.1f %5s  %s\n' "$sender" "$mode" "$round" "${run% *}" \
					"${run#* }" "$(load1)" "$COUNTS" | tee -a "$WORK/rows"
			done
		done
	done
	echo
	for sender in $SENDERS; do
		summary "$sender"
	done
}

# Medians over the rounds of sender $1: each mode's rate, its per-round
# ratio to no tracer, its BPF ns, and the default's per-round ns over the
# floor's.
summary() {
	awk -v s="$1" '
		function median(a, n,    i, j, t) {
			for (i = 2; i <= n; i++)
				for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}
		function over(m, by, what,    r, n, v) {
			for (r = 1; r <= rounds; r++)
				if ((m, r) in pps && (by, r) in pps)
					v[++n] = what == "ratio" ? pps[m, r] / pps[by, r] : ns[m, r] - ns[by, r]
			return median(v, n)
		}
		function of(m, arr,    r, n, v) {
			for (r = 1; r <= rounds; r++)
				if ((m, r) in pps)
					v[++n] = arr == "pps" ? pps[m, r] : ns[m, r]
			return median(v, n)
		}
		NR > 1 && $1 == s { pps[$2, $3] = $4; ns[$2, $3] = $5; if ($3 > rounds) rounds = $3 }
		END {
			unit = s == "gtpu" ? "packet" : "round trip"
			printf "%s, medians over %d rounds (paired: per round, then the median):\n", s, rounds
			printf "  none         %9d pkts/s\n", of("none", "pps")
			n = split("floor every-event default", modes, " ")
			for (i = 1; i <= n; i++)
				printf "  %-12s %9d pkts/s, %.3f of no tracer (paired), BPF %.1f ns per %s\n",
					modes[i], of(modes[i], "pps"), over(modes[i], "none", "ratio"), of(modes[i], "ns"), unit
			printf "  default over the floor: %+.1f ns per %s (paired)\n", over("default", "floor", "ns"), unit
		}' "$WORK/rows"
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

ROUNDS=${1:-11}
SECS=${2:-3}
FLOOD_SECS=${3:-60}
FLOOD_THREADS=${FLOOD_THREADS:-4}
SENDERS=${SENDERS:-gtpu ran-sim}
SENDER_CPU=${SENDER_CPU:-0}
SENDER_THREADS=${SENDER_THREADS:-2}
SINK=${SINK:-tun}
case $SINK in tun | socket) ;; *) echo "SINK=$SINK: expected tun or socket" >&2; exit 2 ;; esac
bench_init
require_tools gtp5g-tracer gtp5g-floor gtpu-traffic ran-sim
command -v jq >/dev/null || die "needs jq"
command -v bpftool >/dev/null || die "needs bpftool (in /usr/sbin)"
lock_trace_pipe
set_ring_buffer_kb "${BUFFER_KB:-1408}"
start_local_api "$WORK"
bench_daemon "$TRACEFS/trace_pipe" "$WORK/daemon.log"
BPF_STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -qw kernel.bpf_stats_enabled="$BPF_STATS_WAS"; [ "$SINK" != tun ] || ip link del "$TUN_DEV" 2>/dev/null; bench_cleanup' EXIT
[ "$SINK" != tun ] || make_tun_sink
sysctl -qw kernel.bpf_stats_enabled=1
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
rates
[ "$FLOOD_SECS" = 0 ] || flood
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
