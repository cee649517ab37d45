#!/usr/bin/env bash
# Detection latency (root): a new UERANSIM stand-in starts sending -> the
# thread ids of its nr-ue (found from RLS user data) and of its nr-gnb
# (GTP-U and RLS) are in the strategies the API serves.
#
#   scripts/bench-latency.sh [TRIALS=20] [DEBOUNCE_MS...=200 20]
#
# Runs the local API, `gtp5g-tracer --mode netdev` and the daemon; for each
# debounce setting (strategy.debounce_ms, via the environment) runs TRIALS
# fresh `ran-sim --ues 1 --rate 20` test beds. The clock starts when
# ran-sim has printed its JSON lines (the UE sends its first ping right
# after) and stops, per process, when `gtp5g-operator api strategies`,
# run in a loop 5 ms apart, lists its pid and all its thread ids (nr-ue: 4,
# nr-gnb: 5). One such call takes a few ms (a token and a GET): that is
# part of each figure, and printed first.
set -euo pipefail
# shellcheck source=bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"

TRIALS=${1:-20}
shift || true
DEBOUNCES=("$@")
[ $# -gt 0 ] || DEBOUNCES=(200 20)
ROLES=(ue gnb)
GIVE_UP_MS=5000

bench_init
require_tools gtp5g-tracer ran-sim
lock_trace_pipe
set_ring_buffer_kb "${BUFFER_KB:-1408}"
start_local_api "$WORK"
start_tracer "$WORK/tracer.log" --mode netdev

# Milliseconds, with one decimal, since $1 (now_us).
ms_since() {
	local us=$(($(now_us) - $1))
	printf '%d.%d' $((us / 1000)) $((us % 1000 / 100))
}

# Starts ran-sim as a coprocess and reads its JSON lines (upf, gnb, ue):
# sets RAN_PID, and IDS[role] and PID_OF[role] for the roles measured.
start_ran_sim() {
	local line
	coproc RAN { exec "$TRACER_BUILD/ran-sim" --ues 1 --rate 20 9>&-; }
	STARTED+=("$RAN_PID")
	for _ in 1 2 3; do
		IFS= read -r line <&"${RAN[0]}" || die "ran-sim exited before printing its processes"
		[[ $line =~ \"role\":\"([a-z]+)\".*\"pid\":([0-9]+).*\"tids\":\[([0-9,]*)\] ]] ||
			die "unexpected ran-sim output: $line"
		PID_OF[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
		IDS[${BASH_REMATCH[1]}]="${BASH_REMATCH[2]} ${BASH_REMATCH[3]//,/ }"
	done
}

# True when every id in $1 is a line of $2.
all_served() {
	local id
	for id in $1; do
		grep -qx "$id" <<<"$2" || return 1
	done
}

# One trial: prints its row and appends "role ms" (ms "inf" when not
# served within GIVE_UP_MS) to $WORK/latencies-$1.
trial() {
	local debounce=$1 n=$2 t0 served role row=""
	declare -A PID_OF=() IDS=() GOT=()
	start_ran_sim
	t0=$(now_us)
	while [ $(($(now_us) - t0)) -lt $((GIVE_UP_MS * 1000)) ] && [ ${#GOT[@]} -lt ${#ROLES[@]} ]; do
		served=$(api_strategies)
		for role in "${ROLES[@]}"; do
			[ -z "${GOT[$role]:-}" ] && all_served "${IDS[$role]}" "$served" && GOT[$role]=$(ms_since "$t0")
		done
		sleep 0.005
	done
	stop_pid "$RAN_PID"
	for role in "${ROLES[@]}"; do
		row+="${row:+, }nr-$role pid ${PID_OF[$role]}: ${GOT[$role]:+${GOT[$role]} ms}"
		[ -n "${GOT[$role]:-}" ] || row+="not served within $((GIVE_UP_MS / 1000)) s"
		echo "$role ${GOT[$role]:-inf}" >>"$WORK/latencies-$debounce"
	done
	printf 'trial %2d: %s\n' "$n" "$row"
	# Let the daemon see the exits and post the shorter list.
	sleep 0.5
}

# p50 and p99 by nearest rank (with fewer than 100 trials p99 is the
# maximum) and the minimum, per role.
summary() {
	local role
	for role in "${ROLES[@]}"; do
		awk -v r="$role" '$1 == r { print $2 }' "$WORK/latencies-$1" | sort -g |
			awk -v r="$role" '
				function rank(q,  k) { k = int(q * NR); if (k < q * NR) k++; return v[k < 1 ? 1 : k] }
				{ v[NR] = $1 }
				END { printf "nr-%s: p50 %.1f ms, p99 %.1f ms (nearest rank; with %d trials p99 is the maximum), min %.1f ms\n",
					r, rank(0.50), rank(0.99), NR, v[1] }'
	done
}

t0=$(now_us)
api_strategies >/dev/null
echo "one api strategies call: $(ms_since "$t0") ms"
for debounce in "${DEBOUNCES[@]}"; do
	GTP5G_OPERATOR__STRATEGY__DEBOUNCE_MS=$debounce bench_daemon "$TRACEFS/trace_pipe" "$WORK/daemon-$debounce.log"
	echo "== strategy.debounce_ms = $debounce"
	for n in $(seq "$TRIALS"); do
		trial "$debounce" "$n"
	done
	summary "$debounce"
	stop_pid "$DAEMON_PID"
done
