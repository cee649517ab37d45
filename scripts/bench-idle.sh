#!/usr/bin/env bash
# Idle cost (root): CPU the daemon uses in SECONDS with no trace lines.
#
#   scripts/bench-idle.sh [SECONDS=10]
#
# (1) a FIFO nobody writes to: the reader sees end of file and reopens
#     with backoff (50 ms doubling to 2 s);
# (2) the real trace_pipe, reported with the lines that did arrive (other
#     BPF programs' bpf_printk would show up there).
# The first 2 s after start (token, the one POST of the empty list) are
# left out; an empty list in force is not resent, so idle posts nothing.
set -euo pipefail
# shellcheck source=bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"

SECS=${1:-10}
bench_init
start_local_api "$WORK"

# Measures the daemon on $1 (label $2).
measure() {
	local label=$2 log="$WORK/idle-$2.log"
	bench_daemon "$1" "$log"
	sleep 2
	local user0 sys0 user1 sys1 ns0 ns1 lines
	read -r user0 sys0 < <(cpu_ticks "$DAEMON_PID")
	ns0=$(run_ns "$DAEMON_PID")
	sleep "$SECS"
	read -r user1 sys1 < <(cpu_ticks "$DAEMON_PID")
	ns1=$(run_ns "$DAEMON_PID")
	stop_pid "$DAEMON_PID"
	lines=$(counter lines "$log")
	printf '%-10s %3s s: utime %d + stime %d ticks (1/%s s); on-CPU %.3f ms (schedstat) = %.4f%% of one CPU; %s trace lines\n' \
		"$label" "$SECS" $((user1 - user0)) $((sys1 - sys0)) "$(clk_tck)" \
		"$(echo "($ns1 - $ns0) / 1000000" | bc -l)" "$(echo "($ns1 - $ns0) * 100 / ($SECS * 1000000000)" | bc -l)" "$lines"
}

mkfifo "$WORK/fifo"
measure "$WORK/fifo" fifo
lock_trace_pipe
measure "$TRACEFS/trace_pipe" trace_pipe
echo "BPF programs loaded during the trace_pipe run: $(bpftool prog show 2>/dev/null | grep -cE 'tracepoint|raw_tracepoint|tracing|kprobe' || true)"
