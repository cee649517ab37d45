#!/usr/bin/env bash
# Runs inside the test guest (scripts/test-vm.sh boots it with virtme-ng
# over the host's root file system): the project's tests against the
# host's build outputs, then gtp5g-tracer's fentry mode against the gtp5g
# module in $WORK (the stand-in, or GTP5G_KO's).
#
#   guest.sh WORK      (WORK: the run's writable directory, with env.sh)
#
# Writes WORK/status, "STEP start" as a step begins, one "STEP RC SECONDS"
# line as it ends and "done" last (virtme-ng's own exit status means nothing
# under TCG), WORK/STEP.log per step and WORK/results: what the tracer did,
# for the report.
set -uo pipefail

WORK=$1
# modprobe, bpftool, ip and iptables live in sbin.
export PATH=/usr/sbin:/sbin:$PATH
# shellcheck source=/dev/null
. "$WORK/env.sh"
: "${REPO:?}" "${TRACER_BUILD:?}" "${OPERATOR:?}" "${TEST_BINS:=}" "${KO:=}" "${KO_IS_STANDIN:=0}" "${LINK_TOOL:=}"
# start_local_api, start_daemon, api_strategies (with env.sh's OPERATOR).
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"

STATUS=$WORK/status
RESULTS=$WORK/results
TRACING=/sys/kernel/tracing
# gtp5g's N3 address: 127.0.0.1:2152 stays free for ran-sim's UPF echo.
N3=127.0.0.2
UE_NET=10.60.0.254/16
UE=10.60.0.1
: >"$STATUS"
: >"$RESULTS"

now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
# A result line, stamped with the guest's uptime: where a slow guest spends
# its time shows in the report.
note() { printf '[%5.0fs] %s\n' "$(now)" "$*" | tee -a "$RESULTS"; }

# step NAME CMD...: runs CMD with its output in WORK/NAME.log.
step() {
	local name=$1 start rc
	shift
	start=$(now)
	echo "$name start" >>"$STATUS"
	"$@" >"$WORK/$name.log" 2>&1
	rc=$?
	echo "$name $rc $(since "$start")" >>"$STATUS"
	return $rc
}

setup() {
	# The tracer reads CONFIG_HZ from /boot/config-<release>; the guest's
	# /boot is the host's.
	mount -t tmpfs none /boot
	cp "$WORK/config" "/boot/config-$(uname -r)"
	[ -e $TRACING/trace_pipe ] || mount -t tracefs nodev $TRACING
	ip link set lo up
	sysctl -qw kernel.bpf_stats_enabled=1
	# The kernel's own account (a task blocked in a module's exit, a device
	# still referenced at unregister), kept where the host reads it even
	# when the guest never finishes. Hung tasks are reported after 60 s.
	sysctl -qw kernel.hung_task_timeout_secs=60 2>/dev/null
	dmesg -w >"$WORK/dmesg.log" 2>&1 &
	DMESG_PID=$!
	save_symbols
}

# The kernel's symbols where the host can name a stalled guest's CPUs
# (scripts/vm/cpu-samples.py); again once gtp5g is loaded, for its own.
save_symbols() {
	cat /proc/kallsyms >"$WORK/kallsyms"
}

# A test binary that hangs fails alone, with its output so far, instead of
# stalling the guest until the host's timeout (the slowest binary takes 70 s
# on a quiet host, 105 s at load 6).
BIN_TIMEOUT_S=600

# run_bin BIN ARGS...: the test binary, bounded.
run_bin() {
	timeout -k 10 $BIN_TIMEOUT_S "$@"
	local rc=$?
	[ $rc != 124 ] || echo "== $1: still running after $BIN_TIMEOUT_S s: killed"
	return $rc
}

# The host's cargo test binaries, one at a time (they share trace_pipe).
cargo_tests() {
	local bin rc=0
	cd "$REPO" || return 1
	for bin in $TEST_BINS; do
		echo "== $bin"
		# Emulated guests run about 10x slower: the tests' waits stretch
		# (behaviour is checked here, never timing).
		GTP5G_REQUIRE_LIVE=1 GTP5G_TEST_SLOWDOWN=10 run_bin "$bin" --test-threads=1 || rc=1
	done
	return $rc
}

# A real gtp5g forwards only what a session's rules match; the stand-in
# matches every TEID. The session's uplink TEIDs: gtpu-traffic's two
# threads and ran-sim's two UEs (0x1000, 0x1001), and the one the tracer
# tests' byte-for-byte record sends (0x7e50, tests/tracer.rs); downlink to
# the UE goes to the gNB on 127.0.0.1 with TEID 1, as the stand-in's does.
SESSION="-t 0x1000 -t 0x1001 -t 0x7e50 -d $UE,127.0.0.1,1"

# The command that loads gtp5g (its dependencies are loaded once, by
# load_module); the tracer tests run it again after an unload. The stand-in
# makes its N3 socket and device itself; a real gtp5g makes neither: as a
# UPF does, gtp5g-link binds the socket, creates the link with it and
# installs the session.
insmod_cmd() {
	local load="insmod $KO n3_addr=$N3 && ip link set upfgtp up"
	[ "$KO_IS_STANDIN" = 1 ] || load="insmod $KO && $LINK_TOOL $SESSION $N3 upfgtp"
	echo "$load && ip addr add $UE_NET dev upfgtp"
}

load_module() {
	local dep
	for dep in $(modinfo -F depends "$KO" | tr ',' ' '); do
		modprobe "$dep" || return 1
	done
	sh -c "$(insmod_cmd)" && save_symbols
}

# The tracer tests again, in fentry mode against the loaded module,
# including the ones only a gtp5g host can run.
fentry_tests() {
	local bin
	for bin in $TEST_BINS; do
		case $bin in */tracer-*) ;; *) continue ;; esac
		echo "== $bin (fentry bed)"
		GTP5G_REQUIRE_LIVE=1 GTP5G_TEST_SLOWDOWN=10 GTP5G_TRACER_BED=fentry \
			GTP5G_N3=$N3:2152 GTP5G_INSMOD="$(insmod_cmd)" \
			run_bin "$bin" --test-threads=1 --include-ignored || return 1
	done
}

# tracer_start LOG ARGS...: starts gtp5g-tracer, waits until it attached
# (or exited); sets TRACER_PID.
tracer_start() {
	local log=$1
	shift
	"$TRACER_BUILD/gtp5g-tracer" "$@" >"$log" 2>&1 &
	TRACER_PID=$!
	for _ in $(seq 600); do
		grep -q "probes attached" "$log" && return 0
		kill -0 $TRACER_PID 2>/dev/null || break
		sleep 0.1
	done
	wait $TRACER_PID
	echo "gtp5g-tracer $* did not attach (exit $?):"
	cat "$log"
	return 1
}

# A tracer that does not exit within 60 s of SIGTERM is a failure, said.
tracer_stop() {
	kill -TERM "$TRACER_PID" 2>/dev/null || return 0
	for _ in $(seq 600); do
		kill -0 "$TRACER_PID" 2>/dev/null || { wait "$TRACER_PID"; return; }
		sleep 0.1
	done
	echo "gtp5g-tracer (pid $TRACER_PID) still running 60 s after SIGTERM; its stack:"
	cat "/proc/$TRACER_PID/stack" 2>/dev/null
	kill -KILL "$TRACER_PID"
	wait "$TRACER_PID"
	return 1
}

# "NAME RUN_CNT" of each of the tracer's programs on a packet's path:
# run_cnt from its descriptors' fdinfo (Debian's bpftool shows no pids),
# names from bpftool. The tracer's own housekeeping programs are named
# gtp5g_* and run on no packet, e.g. the heartbeat (run by the tracer every
# few seconds, attached to nothing).
run_counts() {
	local f
	for f in /proc/"$TRACER_PID"/fdinfo/*; do
		awk '/^prog_id:/ { id = $2 } /^run_cnt:/ { print id, $2 }' "$f"
	done | sort -u | join - <(prog_names | sort) | awk '$3 !~ /^gtp5g_/ { print $3, $2 }'
}

prog_names() {
	bpftool -j prog show | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    print(p["id"], p.get("name", "?"))
'
}

sum_counts() { awk '{ s += $2 } END { print s + 0 }' "$@"; }

# gtpu SENDER DEST PORT PACKETS: G-PDUs from 2 threads of a process named
# SENDER; prints its JSON line (pid, tids).
gtpu() {
	"$TRACER_BUILD/gtpu-traffic" --name "$1" --threads 2 --count "$(($4 / 2))" \
		--interval-ms 5 --dest "$2" --port "$3"
}

json_pid() { python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["pid"])'; }

# Packets through the probed functions, seen in trace_pipe with the
# sender's TGID, and the programs' runs per packet.
fentry_traffic() {
	local label=$1 dest=$2 port=$3 probe=$4 n=200 before after pid lines
	run_counts >"$WORK/runs-before"
	pid=$(gtpu "gtp-$label" "$dest" "$port" $n | json_pid) || return 1
	sleep 1
	run_counts >"$WORK/runs-after"
	before=$(sum_counts "$WORK/runs-before")
	after=$(sum_counts "$WORK/runs-after")
	lines=$(grep -c "$probe: PID=[0-9]*, TGID=$pid\b" "$WORK/trace" || true)
	note "fentry $label: $n G-PDUs from pid $pid: $lines '$probe' lines with its TGID;" \
		"programs ran $((after - before)) times ($(awk -v r=$((after - before)) -v n=$n 'BEGIN { printf "%.2f", r / n }') per packet)"
	join <(sort "$WORK/runs-before") <(sort "$WORK/runs-after") |
		awk -v n=$n '$3 > $2 { printf "  %s: %.2f runs/packet\n", $1, ($3 - $2) / n }' | tee -a "$RESULTS"
	[ "$lines" -gt 0 ] || { echo "no $probe line from pid $pid"; return 1; }
}

attach_report() {
	grep -E "attached|mode auto|fall" "$1" | sed 's/^/  /' | tee -a "$RESULTS"
}

# The default start (no options) on a gtp5g host, against the module:
# fentry+rls; uplink G-PDUs to its N3 socket, ran-sim's nr-gnb and active
# nr-ue boosted by the daemon (the idle UE not); the UPF upgrade's unload with the tracer
# running and the reload traced without a restart. Then the full probe set
# (--every-event): downlink IP packets into its device too. Asserted; each
# set's program runs per packet recorded.
fentry_mode() {
	local trace_pid rc=0
	cat $TRACING/trace_pipe >"$WORK/trace" &
	trace_pid=$!
	tracer_start "$WORK/tracer.out" || { kill $trace_pid; return 1; }
	note "default start (no options), gtp5g loaded:"
	attach_report "$WORK/tracer.out"
	grep -q "mode fentry+rls" "$WORK/tracer.out" || { echo "the default start did not pick fentry+rls"; rc=1; }
	fentry_traffic uplink $N3 2152 fentry/gtp5g_encap_recv || rc=1
	# trace_pipe is one consumer queue: the daemon reads it alone.
	kill $trace_pid
	ran_sim_through_gtp5g || rc=1
	cat $TRACING/trace_pipe >>"$WORK/trace" &
	trace_pid=$!
	unload_and_reload || rc=1
	fentry_traffic reloaded $N3 2152 fentry/gtp5g_encap_recv || rc=1
	tracer_stop
	tracer_start "$WORK/tracer-every.out" --every-event || { kill $trace_pid; return 1; }
	note "--every-event (all 13 programs):"
	attach_report "$WORK/tracer-every.out"
	fentry_traffic every-uplink $N3 2152 fentry/gtp5g_encap_recv || rc=1
	fentry_traffic every-downlink $UE 9 fentry/gtp5g_handle_skb_ipv4 || rc=1
	tracer_stop
	kill $trace_pid
	return $rc
}

# A UPF upgrade with the tracer running: plain rmmod is refused (fentry
# links hold gtp5g), the one supported command unloads it, and a gtp5g
# loaded again is attached without a restart.
unload_and_reload() {
	local out
	out=$(rmmod gtp5g 2>&1) && { echo "rmmod worked with probes attached: unexpected"; return 1; }
	note "rmmod gtp5g with the tracer running: $out"
	out=$("$TRACER_BUILD/gtp5g-tracer" --unload-gtp5g 2>&1) || { echo "--unload-gtp5g failed: $out"; return 1; }
	[ ! -e /sys/module/gtp5g ] || { echo "--unload-gtp5g returned but gtp5g is loaded"; return 1; }
	note "gtp5g-tracer --unload-gtp5g: $(echo "$out" | tail -n 1)"
	sh -c "$(insmod_cmd)" || return 1
	for _ in $(seq 600); do
		[ "$(grep -c 'gtp5g: [0-9]* probes attached' "$WORK/tracer.out")" -ge 1 ] && break
		sleep 0.1
	done
	grep 'gtp5g: [0-9]* probes attached' "$WORK/tracer.out" | tail -n 1 | sed 's/^/  reloaded: /' | tee -a "$RESULTS" | grep -q . ||
		{ echo "the reloaded gtp5g was not attached:"; cat "$WORK/tracer.out"; return 1; }
}

# ran-sim's UPF echo keeps 127.0.0.1:2152; a DNAT sends nr-gnb's G-PDUs to
# gtp5g's N3 socket instead. The daemon, on the default tracer's output,
# must boost every thread of nr-gnb (seen by fentry in gtp5g) and of the
# active nr-ue (RLS at egress) and nothing else: not the idle nr-ue, not
# ran-sim's UPF.
ran_sim_through_gtp5g() {
	local sim want held rc=0 start
	if ! { start_local_api "$WORK" && start_daemon "$WORK/daemon.log"; }; then
		stop_started
		return 1
	fi
	iptables -t nat -A OUTPUT -p udp -d 127.0.0.1 --dport 2152 \
		-j DNAT --to-destination $N3:2152 || { stop_started; return 1; }
	start=$(now)
	"$TRACER_BUILD/ran-sim" --ues 1 --idle-ues 1 --rate 20 --duration 120 >"$WORK/ran-sim.out" 2>&1 &
	sim=$!
	wait_until 60 "ran-sim's processes" sim_roles 4 || rc=1
	# Sorted as api_strategies prints them.
	want=$({ sim_tids gnb false; sim_tids ue false; } | sort -n)
	POLL_S=0.5 wait_until 60 "the API holding nr-gnb's and the active nr-ue's threads" api_holds "$want" || rc=1
	# Heartbeats (one a second) and acks from and to the idle UE go on.
	sleep 5
	held=$(api_strategies)
	kill $sim
	wait $sim
	iptables -t nat -F OUTPUT
	stop_started
	note "daemon on the default tracer: the API holds $(echo "$held" | wc -l) ids" \
		"$(since "$start") s after ran-sim started: $(echo "$held" | paste -sd ' ')"
	note "  want nr-gnb's and the active nr-ue's threads: $(echo "$want" | paste -sd ' ')" \
		"(idle nr-ue: $(sim_tids ue true | paste -sd ' '), UPF: $(sim_tids upf false | paste -sd ' '))"
	[ "$held" = "$want" ] || { echo "the API holds other ids than nr-gnb's and the active nr-ue's"; rc=1; }
	return $rc
}

# The role lines ran-sim printed: at least $1.
sim_roles() {
	[ "$(grep -c '"role":"[a-z]*","name"' "$WORK/ran-sim.out")" -ge "$1" ]
}

# sim_tids ROLE IDLE: the thread ids of ran-sim's ROLE process, one a line.
sim_tids() {
	python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("role") == sys.argv[2] and str(m.get("idle", False)).lower() == sys.argv[3]:
        print("\n".join(map(str, m["tids"])))
' "$WORK/ran-sim.out" "$1" "$2"
}

api_holds() {
	[ "$(api_strategies)" = "$1" ]
}

# What the real module was given, for the report.
real_gtp5g_session() {
	echo "real gtp5g $(modinfo -F version "$KO"): N3 socket $N3:2152, link upfgtp and session" \
		"from gtp5g-link ($SESSION; one QER, MBR 1 Gbit/s, QoS on)"
}

# Without module BTF (before 5.11), fentry on gtp5g cannot work: what the
# tracer says, in both modes.
no_module_btf() {
	note "module BTF: /sys/kernel/btf/gtp5g $( [ -e /sys/kernel/btf/gtp5g ] && echo present || echo absent)"
	if tracer_start "$WORK/tracer-fentry.out" --mode fentry >/dev/null; then
		tracer_stop
		note "--mode fentry: attached:"
	else
		note "--mode fentry: exited without attaching:"
	fi
	sed 's/^/  /' "$WORK/tracer-fentry.out" | head -20 | tee -a "$RESULTS"
	tracer_start "$WORK/tracer-auto.out" || return 1
	tracer_stop
	note "default start:"
	sed 's/^/  /' "$WORK/tracer-auto.out" | head -20 | tee -a "$RESULTS"
	grep -q "gtp5g is loaded but has no BTF" "$WORK/tracer-auto.out" &&
		grep -q "mode netdev" "$WORK/tracer-auto.out"
}

main() {
	local start
	start=$(now)
	note "kernel $(uname -r), $(nproc) CPUs"
	step setup setup || { echo 'done' >>"$STATUS"; return; }
	[ -z "$TEST_BINS" ] || step cargo-tests cargo_tests
	if [ -n "$KO" ]; then
		if step load-module load_module; then
			note "gtp5g loaded: $(modinfo -F description "$KO")"
			[ "$KO_IS_STANDIN" = 1 ] || note "$(real_gtp5g_session)"
			if [ -e /sys/kernel/btf/gtp5g ]; then
				step fentry fentry_mode
				[ -z "$TEST_BINS" ] || step fentry-tests fentry_tests
			else
				step no-module-btf no_module_btf
			fi
		fi
	fi
	echo "guest-seconds 0 $(since "$start")" >>"$STATUS"
	kill "$DMESG_PID" 2>/dev/null
	echo 'done' >>"$STATUS"
}

main
