# shellcheck shell=bash
# What scripts/bench-*.sh share beyond scripts/lib.sh (sourced, not run):
# their set-up and clean-up, schedstat and tracefs readings. Sourcing only
# defines; bench_init makes the temp dir and sets the EXIT trap.
#
#   . scripts/bench-lib.sh
#   bench_init
#   require_tools gtp5g-tracer ran-sim

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Checks root and the daemon, mounts tracefs and creates WORK, removed on
# exit with what the benchmark started stopped and the ring buffer size
# restored.
bench_init() {
	[ "$(id -u)" = 0 ] || die "needs root (BPF, tracefs)"
	[ -x "$OPERATOR" ] || die "no $OPERATOR: cargo build --release (or set OPERATOR=)"
	mount_tracefs
	WORK=$(mktemp -d /tmp/gtp5g-bench.XXXXXX)
	trap bench_cleanup EXIT
}

# require_tools TOOL...: the tracer-c programs the benchmark runs.
require_tools() {
	local tool
	for tool in "$@"; do
		[ -x "$TRACER_BUILD/$tool" ] || die "no $TRACER_BUILD/$tool: make -C tracer-c"
	done
}

bench_cleanup() {
	stop_started
	[ -z "${RESTORE_BUFFER_KB:-}" ] || echo "$RESTORE_BUFFER_KB" >"$TRACEFS/buffer_size_kb"
	rm -rf "$WORK"
}

# bench_daemon SOURCE LOG [ARGS...]: the daemon on SOURCE (trace_pipe or a
# FIFO) against the local API, logging JSON to LOG (see start_daemon).
bench_daemon() {
	start_daemon "$2" --trace-pipe "$1" --log-format json --log-level info "${@:3}"
}

# The kernel's per-CPU ring buffer size for the run, restored on exit. A
# buffer nobody has expanded is a few kB, which overflows within
# microseconds of a flood whoever reads it; 1408 kB is what the kernel
# expands it to when tracing is first used.
set_ring_buffer_kb() {
	local old
	old=$(awk '{print $1}' "$TRACEFS/buffer_size_kb")
	if [ "$old" != "$1" ]; then
		echo "$1" >"$TRACEFS/buffer_size_kb"
		RESTORE_BUFFER_KB=$old
	fi
}

# Nanoseconds on CPU, summed over the process's live threads (schedstat:
# finer than the 10 ms ticks of /proc/PID/stat).
run_ns() {
	schedstat_sum 1 "$1"
}

# schedstat_sum FIELD PID...: field FIELD of schedstat (1: ns on CPU, 2: ns
# waiting on a run queue) summed over the live threads of the processes; an
# integer, as awk's default format turns sums past 2^31 into 3.6e+09.
schedstat_sum() {
	local field=$1 pid
	shift
	for pid; do
		cat /proc/"$pid"/task/*/schedstat
	done | awk -v f="$field" '{s += $f} END {printf "%.0f\n", s}'
}

# Sum of a per-CPU ring buffer statistic ("read events", "overrun").
ring_stat() {
	cat "$TRACEFS"/per_cpu/cpu*/stats | awk -v k="$1:" 'index($0, k) == 1 {s += $NF} END {print s + 0}'
}

# A field of the daemon's last "counters" log line.
counter() {
	jq -r "select(.message == \"counters\") | .$1" "$2" | tail -1
}
