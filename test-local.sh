#!/usr/bin/env bash
# Run gtp5g-operator on this machine: a local Gthulhu API, the eBPF tracer
# and the daemon, printing the strategies the API holds as they change.
#
#   sudo ./test-local.sh [--demo] [--duration N]
#
# Builds first when the binaries are missing or older than the sources.
#
#   --demo        also start ran-sim, a UERANSIM stand-in: an nr-gnb, an
#                 active nr-ue (RLS user data to the gNB, GTP-U from the gNB
#                 to a UPF echo) and an idle nr-ue (heartbeats only); report
#                 how long after their first packet the active ones' ids
#                 reached the API, and that the idle UE's did not
#   --duration N  stop by itself after N seconds (default: until Ctrl-C)
#
# Environment: API_ENDPOINT (use that API instead of starting a local one;
# then PUBLIC_KEY_PATH names its public key), LOCAL_API_LISTEN (default
# 127.0.0.1:8081), CONFIG (default config/gtp5g-operator.toml),
# CARGO_TARGET_DIR (where the daemon binary is built).
#
# The strategies are shown by scripts/local-watch.sh, which asks the API
# with `gtp5g-operator api strategies`.
set -euo pipefail

cd "$(dirname "$(readlink -f "$0")")"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

TRACER=$TRACER_BUILD/gtp5g-tracer
RAN_SIM=$TRACER_BUILD/ran-sim
CONFIG=${CONFIG:-$GTP5G_REPO/config/gtp5g-operator.toml}
LOCAL_API_LISTEN=${LOCAL_API_LISTEN:-127.0.0.1:8081}

DEMO=0
DURATION=0
RUNDIR=

# The header comment above, up to its first non-comment line.
usage() { awk 'NR == 1 { next } !/^#/ { exit } { sub(/^# ?/, ""); print }' "$0"; }

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
			--demo) DEMO=1 ;;
			--duration)
				[ $# -ge 2 ] || die "--duration needs a number of seconds"
				[[ $2 =~ ^[0-9]+$ ]] || die "--duration: '$2' is not a number of seconds"
				DURATION=$2
				shift
				;;
			-h | --help)
				usage
				exit 0
				;;
			*)
				usage >&2
				die "unknown argument '$1'"
				;;
		esac
		shift
	done
}

check_prerequisites() {
	[ "$(id -u)" = 0 ] || die "must run as root (BPF programs and trace_pipe): sudo $0 $*"
	[ -r /sys/kernel/btf/vmlinux ] || die "the kernel has no BTF (/sys/kernel/btf/vmlinux): the tracer needs CONFIG_DEBUG_INFO_BTF=y"
}

# True when a source is newer than the binary built from it (after a pull).
stale() {
	[ -n "$(find src config Cargo.toml Cargo.lock -newer "$OPERATOR" -print -quit)" ] ||
		[ -n "$(find tracer-c -path tracer-c/build -prune -o \( -name '*.[ch]' -o -name Makefile \) -newer "$TRACER" -print -quit)" ]
}

# Builds when binaries are missing or older than their sources.
build_if_needed() {
	local why
	if ! [ -x "$OPERATOR" ] || ! [ -x "$TRACER" ] || ! [ -x "$RAN_SIM" ]; then
		why="binaries missing"
	elif stale; then
		why="sources newer than the binaries"
	else
		return 0
	fi
	if ! command -v cargo >/dev/null; then
		[ "$why" != "binaries missing" ] || die "binaries missing and cargo not in PATH (sudo resets PATH): run ./build.sh as your user first, or sudo env PATH=\"\$PATH\" $0"
		warn "$why, but cargo is not in PATH (sudo resets PATH): running the old binaries"
		return 0
	fi
	say "building ($why): ./build.sh build"
	./build.sh build
}

# Sets API_URL and API_KEY: API_ENDPOINT's, or a local API's.
start_api() {
	if [ -n "${API_ENDPOINT:-}" ] && [ "${API_ENDPOINT%/}" != "http://$LOCAL_API_LISTEN" ]; then
		API_URL=$API_ENDPOINT
		API_KEY=${PUBLIC_KEY_PATH:-/var/lib/gtp5g-operator/jwt_public_key.pem}
		[ -r "$API_KEY" ] || die "API_ENDPOINT=$API_URL is set: its public key $API_KEY is not readable (set PUBLIC_KEY_PATH)"
		say "using the Gthulhu API at $API_URL (key $API_KEY)"
		return
	fi
	say "starting the local Gthulhu API on $LOCAL_API_LISTEN"
	start_local_api "$RUNDIR" "$LOCAL_API_LISTEN" ||
		die "the local API did not start (port in use? set LOCAL_API_LISTEN=127.0.0.1:PORT)"
}

# Its output is the point of this script: on this terminal as it comes,
# and in $RUNDIR/watch.out.
start_watcher() {
	start_bg - scripts/local-watch.sh "$API_URL" "$API_KEY" "$RUNDIR/demo" "$T0" "$RUNDIR/watch.out"
}

# The UERANSIM stand-in: nr-gnb, one active and one idle nr-ue, and the
# UPF echo (the ran-sim process itself). Each goes into $RUNDIR/demo for
# the watcher.
start_ran_sim() {
	local started json lines=4
	started=$(now_us)
	start_bg "$RUNDIR/ran-sim.log" "$RAN_SIM" --ues 1 --idle-ues 1 --rate 10
	poll "$BG_PID" "$RUNDIR/ran-sim.log" 10 "ran-sim printing its processes" ran_sim_printed $lines ||
		die "ran-sim did not start"
	while read -r json; do
		[[ $json =~ \"name\":\"([^\"]+)\".*\"pid\":([0-9]+).*\"tids\":\[([0-9,]*)\] ]] ||
			die "unexpected ran-sim output: $json"
		printf '%s %s %s %s %s\n' "$started" "$(demo_kind "$json")" "${BASH_REMATCH[1]}" \
			"${BASH_REMATCH[2]}" "${BASH_REMATCH[3]//,/ }" >>"$RUNDIR/demo"
		say "demo: $(describe_demo "$json") pid ${BASH_REMATCH[2]}, threads ${BASH_REMATCH[3]//,/ }"
	done < <(grep -m $lines '"role":' "$RUNDIR/ran-sim.log")
}

# True once ran-sim has printed N JSON lines (one per process).
ran_sim_printed() {
	[ "$(grep -c '"role":' "$RUNDIR/ran-sim.log")" -ge "$1" ]
}

demo_kind() {
	case $1 in
		*'"role":"gnb"'*) echo gnb ;;
		*'"idle":true'*) echo idle-ue ;;
		*'"role":"ue"'*) echo active-ue ;;
		*) echo upf ;;
	esac
}

describe_demo() {
	case $(demo_kind "$1") in
		gnb) echo "nr-gnb (RLS on 127.0.0.1:4997, GTP-U to the UPF)" ;;
		idle-ue) echo "nr-ue, IDLE (heartbeats only: must not be boosted)" ;;
		active-ue) echo "nr-ue, ACTIVE (10 pings/s as RLS user data to nr-gnb)" ;;
		*) echo "ran-sim, UPF stand-in on 127.0.0.1:2152 (not a target)" ;;
	esac
}

stop_all() {
	trap - EXIT INT TERM
	[ -n "${STARTED[*]+set}" ] || return 0
	say "stopping"
	stop_started
	if grep -q '"role":"summary"' "$RUNDIR/ran-sim.log" 2>/dev/null; then
		say "ran-sim: $(grep -m1 '"role":"summary"' "$RUNDIR/ran-sim.log")"
	fi
	# The tracer's exit counters.
	if [ -s "$RUNDIR/tracer.log" ]; then
		say "tracer: $(tail -n 1 "$RUNDIR/tracer.log")"
	fi
	# The daemon's tracing instance, made for this run (after the daemon
	# stopped: the kernel keeps an instance that is being read).
	if [ -n "${GTP5G_OPERATOR__TRACE__INSTANCE:-}" ]; then
		"$OPERATOR" trace-instance remove --config "$CONFIG" || warn "could not remove the tracing instance $GTP5G_OPERATOR__TRACE__INSTANCE"
	fi
	say "all stopped; logs in $RUNDIR"
}

main() {
	parse_args "$@"
	check_prerequisites "$@"
	build_if_needed
	[ -x "$OPERATOR" ] || die "$OPERATOR missing after the build (CARGO_TARGET_DIR differs from the build's?)"
	mount_tracefs

	RUNDIR=$(mktemp -d /tmp/gtp5g-local.XXXXXX)
	trap stop_all EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	lock_trace_pipe
	say "logs in $RUNDIR"
	# The time origin of the watcher's timestamps: after any build.
	T0=$(now_us)

	start_api
	say "starting the tracer: gtp5g-tracer --mode auto"
	start_tracer "$RUNDIR/tracer.log" --mode auto || die "gtp5g-tracer did not attach (log: $RUNDIR/tracer.log)"
	say "tracer ready: $(cat "$RUNDIR/tracer.ready")"
	say "starting the daemon: gtp5g-operator run (API $API_URL)"
	# A tracing instance of this run's own (an installed operator keeps its
	# own): the daemon gets every tracer line whoever else reads the global
	# trace_pipe, and the instance goes when the run stops.
	export GTP5G_OPERATOR__TRACE__INSTANCE=gtp5g-local-$$
	start_daemon "$RUNDIR/operator.log" --config "$CONFIG" || die "gtp5g-operator did not start (log: $RUNDIR/operator.log)"
	start_watcher
	if [ "$DEMO" = 1 ]; then
		start_ran_sim
	fi
	if [ "$DURATION" -gt 0 ]; then
		say "running for ${DURATION}s"
	else
		say "running; Ctrl-C stops everything"
	fi
	local end=$((SECONDS + DURATION))
	while [ "$DURATION" = 0 ] || [ $SECONDS -lt $end ]; do
		sleep 0.5 &
		wait $! || true
	done
}

main "$@"
