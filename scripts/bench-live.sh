#!/usr/bin/env bash
# Live drain benchmark (root): how many lines per second the daemon takes
# out of a flooded trace_pipe, against `cat trace_pipe > /dev/null`, in
# alternated rounds under the same flood.
#
#   scripts/bench-live.sh [ROUNDS=3] [SECONDS=5] [FLOOD_THREADS=1]
#   (environment: BUFFER_KB=1408 per-CPU ring buffer for the runs)
#
# Each run: clear the ring buffer, start the reader, flood for SECONDS
# with tracer-c/build/gtp5g-flood (named nr-gnb, so the daemon tracks and
# posts it for real), give the reader 1 s to drain, then read its CPU
# ticks and peak RSS and stop it. Delivered lines come from the ring
# buffer's per-CPU "read events" (the same count for both readers), lost
# ones from "overrun"; the daemon's own counters line is shown as a check.
set -euo pipefail
# shellcheck source=bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"

ROUNDS=${1:-3}
SECS=${2:-5}
FLOOD_THREADS=${3:-1}
bench_init
require_tools gtp5g-flood
lock_trace_pipe
set_ring_buffer_kb "${BUFFER_KB:-1408}"
start_local_api "$WORK"

# One run of reader $1 (cat | daemon) in round $2; appends a result row.
run_one() {
	local reader=$1 round=$2 pid log="$WORK/daemon-$2.log"
	echo > "$TRACEFS/trace"
	local read0 over0
	read0=$(ring_stat "read events")
	over0=$(ring_stat overrun)
	if [ "$reader" = cat ]; then
		start_bg /dev/null cat "$TRACEFS/trace_pipe"
		pid=$BG_PID
		sleep 0.2
	else
		bench_daemon "$TRACEFS/trace_pipe" "$log"
		pid=$DAEMON_PID
	fi
	local user0 sys0
	read -r user0 sys0 < <(cpu_ticks "$pid")
	local produced
	produced=$("$TRACER_BUILD/gtp5g-flood" --seconds "$SECS" --threads "$FLOOD_THREADS" --name nr-gnb 2>&1 |
		grep -oE '[0-9]+ lines\)' | grep -oE '[0-9]+' || echo 0)
	sleep 1
	local user1 sys1 rss
	read -r user1 sys1 < <(cpu_ticks "$pid")
	rss=$(peak_rss_kb "$pid")
	stop_pid "$pid"
	local read over
	read=$(( $(ring_stat "read events") - read0 ))
	over=$(( $(ring_stat overrun) - over0 ))
	local utime=$((user1 - user0)) stime=$((sys1 - sys0))
	local own="-"
	[ "$reader" = daemon ] && own="lines=$(counter lines "$log"),lost_events=$(counter lost_events "$log")"
	printf '%-6s %5s %10s %12s %10s %8s %7s %7s %9s  %s\n' "$reader" "$round" "$produced" "$read" \
		"$((read / SECS))" "$over" "$utime" "$stime" "$rss" "$own" | tee -a "$WORK/rows"
}

echo "flood: $SECS s per run, $FLOOD_THREADS thread(s), ring buffer $(cat "$TRACEFS/buffer_size_kb") kB/CPU, CPU in ticks of 1/$(clk_tck) s"
printf '%-6s %5s %10s %12s %10s %8s %7s %7s %9s  %s\n' reader round produced delivered lines/s overrun utime stime peakRSSkB "daemon's own counters"
for round in $(seq "$ROUNDS"); do
	# Alternate which reader goes first so drift in the machine's load
	# does not favour one of them.
	if [ $((round % 2)) = 1 ]; then order="cat daemon"; else order="daemon cat"; fi
	for reader in $order; do
		run_one "$reader" "$round"
	done
done

awk -v secs="$SECS" '
	{ n[$1]++; rate[$1] += $5; over[$1] += $6; u[$1] += $7; s[$1] += $8; if ($9 > rss[$1]) rss[$1] = $9 }
	END {
		printf "\nmean lines/s: cat %.0f, daemon %.0f -> daemon/cat = %.1f%%\n", rate["cat"] / n["cat"], rate["daemon"] / n["daemon"], 100 * rate["daemon"] / rate["cat"]
		printf "mean overrun per run: cat %.0f, daemon %.0f\n", over["cat"] / n["cat"], over["daemon"] / n["daemon"]
		printf "daemon CPU: user %d ticks, sys %d ticks -> user/sys = %.1f%% (cat: user %d, sys %d)\n", u["daemon"], s["daemon"], s["daemon"] ? 100 * u["daemon"] / s["daemon"] : 0, u["cat"], s["cat"]
		printf "peak RSS: daemon %d kB, cat %d kB\n", rss["daemon"], rss["cat"]
	}' "$WORK/rows"
