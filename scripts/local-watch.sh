#!/usr/bin/env bash
# test-local.sh's watcher: prints the pids the Gthulhu API holds whenever
# they change, grouped by process, and for each demo process in DEMO_FILE
# how long after it started all of its ids were in the API; for the idle
# UE and the UPF stand-in, that they are still not there 5 s later. Asks
# the API with `gtp5g-operator api strategies` 10 times a second.
#
#   scripts/local-watch.sh API_URL API_KEY DEMO_FILE T0_US LOG
#
# DEMO_FILE (written by test-local.sh, may not exist yet): a line a process,
# "<start time, us> <gnb|active-ue|idle-ue|upf> <name> <pid> <tid>...".
# Times printed are seconds since T0_US; every line also goes to LOG.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

[ $# = 5 ] || die "usage: $0 API_URL API_KEY DEMO_FILE T0_US LOG"
API_URL=$1
API_KEY=$2
DEMO_FILE=$3
T0_US=$4
LOG=$5
IDLE_CHECK_US=5000000

# seconds US DECIMALS: US microseconds as seconds.
seconds() {
	local us=$1 scale=$((10 ** $2))
	printf '%d.%0*d' $((us / 1000000)) "$2" $((us % 1000000 * scale / 1000000))
}

report() {
	local line
	line=$(printf '[%7ss] %s' "$(seconds $(($(now_us) - T0_US)) 2)" "$*")
	printf '%s\n' "$line"
	printf '%s\n' "$line" >>"$LOG"
}

tgid_of() {
	local key value
	while read -r key value; do
		[ "$key" != Tgid: ] || { echo "$value"; return 0; }
	done <"/proc/$1/status"
}

# PIDS grouped by process: "nr-gnb 1234 threads [1235 1236]; ...".
describe() {
	local pid tgid order=() parts=() comm main others id
	local -A ids=()
	for pid in "$@"; do
		tgid=$(tgid_of "$pid" 2>/dev/null) || tgid=exited
		[ -n "${ids[$tgid]+set}" ] || order+=("$tgid")
		ids[$tgid]+=" $pid"
	done
	for tgid in ${order[@]+"${order[@]}"}; do
		if [ "$tgid" = exited ]; then
			parts+=("exited${ids[$tgid]}")
			continue
		fi
		comm=$(cat "/proc/$tgid/comm" 2>/dev/null || echo '?')
		main="($tgid)"
		others=()
		for id in ${ids[$tgid]}; do
			if [ "$id" = "$tgid" ]; then main=$tgid; else others+=("$id"); fi
		done
		parts+=("$comm $main threads [${others[*]}]")
	done
	[ ${#parts[@]} -gt 0 ] || parts=(none)
	local joined
	joined=$(printf '%s; ' "${parts[@]}")
	echo "${joined%; }"
}

label() {
	case $1 in
		gnb) echo gNB ;;
		active-ue) echo "active UE" ;;
		idle-ue) echo "idle UE" ;;
		*) echo "UPF stand-in" ;;
	esac
}

# Reports each demo process once: boosted (nr-gnb, active nr-ue), or
# (idle nr-ue, UPF) wrongly boosted, or after IDLE_CHECK_US still not.
check_demo() {
	[ -e "$DEMO_FILE" ] || return 0
	local row started kind name pid id held total now what
	while read -ra row; do
		started=${row[0]} kind=${row[1]} name=${row[2]} pid=${row[3]}
		held=0
		total=0
		for id in $(printf '%s\n' "${row[@]:3}" | sort -un); do
			total=$((total + 1))
			[ -z "${HELD[$id]+set}" ] || held=$((held + 1))
		done
		now=$(now_us)
		what="$name pid $pid ($(label "$kind"))"
		case $kind in
			gnb | active-ue)
				if [ -z "${REPORTED[$pid]+set}" ] && [ "$held" = "$total" ]; then
					REPORTED[$pid]=1
					report "BOOSTED $what: all $total ids in the API $(seconds $((now - started)) 2)s after ran-sim started"
				fi
				;;
			*)
				if [ "$held" -gt 0 ] && [ -z "${WRONGLY[$pid]+set}" ]; then
					WRONGLY[$pid]=1
					report "UNEXPECTED: $what is in the API ($held of $total ids)"
				elif [ "$held" = 0 ] && [ -z "${REPORTED[$pid]+set}" ] && [ $((now - started)) -ge $IDLE_CHECK_US ]; then
					REPORTED[$pid]=1
					report "not boosted, as expected: $what: none of its $total ids in the API $(seconds $((now - started)) 1)s after the start"
				fi
				;;
		esac
	done <"$DEMO_FILE"
}

declare -A HELD=() REPORTED=() WRONGLY=()
last=-
last_error=
while :; do
	if ! out=$(api_strategies 2>&1); then
		error="API: $(tail -n 1 <<<"$out")"
		[ "$error" = "$last_error" ] || report "$error"
		last_error=$error
		sleep 0.5
		continue
	fi
	last_error=
	read -ra pids <<<"${out//$'\n'/ }"
	if [ "$out" != "$last" ]; then
		report "API holds ${#pids[@]} pid strategies: $(describe ${pids[@]+"${pids[@]}"})"
		last=$out
	fi
	HELD=()
	for id in ${pids[@]+"${pids[@]}"}; do
		HELD[$id]=1
	done
	check_demo
	sleep 0.1
done
