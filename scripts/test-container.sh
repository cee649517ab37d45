#!/usr/bin/env bash
# The container image and the Kubernetes manifests; ./build.sh test runs it
# after cargo test.
#
#   scripts/test-container.sh
#
# 1. Manifests (always): deploy/kubernetes/*.yaml against the schemas of
#    Kubernetes $K8S_VERSION (PyPI kubernetes-validate, installed in a venv
#    under target/), then scripts/check-manifests.py (ConfigMap = config
#    file, privileges, ports, probes).
# 2. Image (root and a container engine): ./build.sh image, then in it:
#    --version, check-config (good and bad), a fixture replay, and a live run
#    set up as the DaemonSet does: the real tracer in a container with only
#    CAP_BPF + CAP_PERFMON in its own pid namespace, the init step making
#    the operator's tracing instance with no capabilities and a writable
#    tracefs, the operator with
#    no capabilities, a read-only tracefs and the host's pid namespace
#    reading that instance while a `cat` holds the global trace_pipe,
#    boosting a host process named nr-gnb in a local API on the host; then
#    SIGTERM, as the kubelet sends it, within terminationGracePeriodSeconds;
#    the instance removed. Prints both programs' peak RSS and CPU time.
# Without root or an engine the image part is skipped with the reason;
# GTP5G_REQUIRE_LIVE=1 turns that skip into a failure.
set -euo pipefail
# shellcheck source=container-lib.sh
. "$(dirname "$0")/container-lib.sh"
cd "$GTP5G_REPO"

K8S_VERSION=1.37.0
KV_PIN="kubernetes-validate==1.37.0"
MANIFESTS=(deploy/kubernetes/deployment.yaml)
VENV=${CARGO_TARGET_DIR:-$GTP5G_REPO/target}/venv-kubernetes-validate
GRACE_S=15
RUN_ID=gtp5g-ct-$$
# The operator's tracing instance in this run (trace.instance), so that it
# never meets an installed operator's.
INSTANCE=$RUN_ID
INSTANCE_PIPE=$TRACEFS/instances/$INSTANCE/trace_pipe
PASSED=0

pass() {
	PASSED=$((PASSED + 1))
	echo "ok: $*"
}
fail() {
	echo "FAIL: $*" >&2
	echo "test-container: $PASSED passed, 1 failed" >&2
	exit 1
}

# Debian 12's pip refuses to install into the system Python (PEP 668).
venv_setup() {
	[ -x "$VENV/bin/kubernetes-validate" ] && return 0
	if ! python3 -m venv "$VENV" 2>/dev/null; then
		is_debian_root || fail "python3 -m venv fails: install python3-venv"
		apt_install python3-venv || fail "apt-get install python3-venv failed"
		rm -rf "$VENV"
		python3 -m venv "$VENV" || fail "python3 -m venv $VENV failed"
	fi
	"$VENV/bin/pip" install --quiet --disable-pip-version-check "$KV_PIN" ||
		fail "pip install $KV_PIN failed"
}

check_manifests() {
	venv_setup
	local m
	for m in "${MANIFESTS[@]}"; do
		"$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$m" ||
			fail "$m does not validate against Kubernetes $K8S_VERSION"
		pass "$m validates against Kubernetes $K8S_VERSION (strict)"
	done
	# A validator that passes everything would make the check above hollow.
	sed 's/^\(      hostPID\): true/\1s: true/' "${MANIFESTS[0]}" >"$WORK/bad.yaml"
	if "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$WORK/bad.yaml" >/dev/null 2>&1; then
		fail "kubernetes-validate accepted an unknown field (hostPIDs)"
	fi
	pass "kubernetes-validate rejects an unknown field"
	"$VENV/bin/python" scripts/check-manifests.py || fail "scripts/check-manifests.py"
	pass "scripts/check-manifests.py"
}

# Host pid of a running container (it shares no pid namespace with us
# unless --pid host, but /proc shows it either way).
container_pid() {
	ct inspect --format '{{.State.Pid}}' "$1"
}

# wait_container_ready NAME FILE: FILE (under $WORK/run, the containers'
# /run/gtp5g) is the ready file of container NAME's program.
wait_container_ready() {
	local pid
	pid=$(container_pid "$1")
	# An exited container's pid is 0.
	if [ "$pid" = 0 ] || ! wait_ready "$WORK/run/$2" "$pid" 20; then
		fail "$1 not ready: $(ct logs "$1" 2>&1 | tail -5)"
	fi
}

remove_containers() {
	local name
	for name in "$RUN_ID-tracer" "$RUN_ID-operator"; do
		ct rm -f "$name" >/dev/null 2>&1 || true
	done
}

smoke_offline() {
	local out version
	version=$(./build.sh version)
	out=$(ct run --rm "$IMAGE" --version) || fail "--version: $out"
	[ "$out" = "gtp5g-operator $version" ] || fail "--version printed '$out'"
	pass "--version: $out"

	out=$(ct run --rm -v "$GTP5G_REPO/tests/fixtures:/fixtures:ro" "$IMAGE" \
		replay /fixtures/netdev-gtpu.trace --json) || fail "replay: $out"
	python3 -c 'import json, sys; sys.exit(json.loads(sys.argv[1]) != json.load(open(sys.argv[2])))' \
		"$out" tests/fixtures/netdev-gtpu.expected.json ||
		fail "replay in the image differs from tests/fixtures/netdev-gtpu.expected.json: $out"
	pass "replay of tests/fixtures/netdev-gtpu.trace matches its expected.json"

	# As the DaemonSet mounts them: the ConfigMap's file and the Secret's key.
	install -d "$WORK/config" "$WORK/key"
	cp config/gtp5g-operator.toml "$WORK/config/config.toml"
	cp tests/fixtures/other_public_key.pem "$WORK/key/jwt_public_key.pem"
	out=$(ct run --rm -v "$WORK/config:/etc/gtp5g-operator/config:ro" \
		-v "$WORK/key:/etc/gtp5g-operator/key:ro" \
		-e PUBLIC_KEY_PATH=/etc/gtp5g-operator/key/jwt_public_key.pem \
		"$IMAGE" check-config --config /etc/gtp5g-operator/config/config.toml 2>&1) ||
		fail "check-config: $out"
	grep -q '"public_key_path": "/etc/gtp5g-operator/key/jwt_public_key.pem"' <<<"$out" ||
		fail "check-config did not take PUBLIC_KEY_PATH: $out"
	pass "check-config with the ConfigMap file and the Secret's key"

	if out=$(ct run --rm -v "$WORK/config:/etc/gtp5g-operator/config:ro" "$IMAGE" \
		check-config --config /etc/gtp5g-operator/config/config.toml 2>&1); then
		fail "check-config without the key file exited 0: $out"
	fi
	grep -q public_key_path <<<"$out" || fail "check-config's error does not name the key: $out"
	pass "check-config without the Secret fails naming api.public_key_path"

	out=$(ct run --rm --entrypoint /usr/local/bin/gtp5g-tracer "$IMAGE" --list 2>&1) ||
		fail "gtp5g-tracer --list: $out"
	grep -q 'mode netdev' <<<"$out" || fail "gtp5g-tracer --list: $out"
	pass "gtp5g-tracer --list runs in the image"
}

# uid 0 is the least privilege that reads trace_pipe (0440 root in a 0700
# root directory): another uid is refused at open. replay reads any file and
# fails at once here, so nothing waits on the pipe.
check_nonroot_refused() {
	local out
	if out=$(ct run --rm --user 65534 --cap-drop all -v "$TRACEFS:/sys/kernel/tracing:ro" \
		"$IMAGE" replay /sys/kernel/tracing/trace_pipe 2>&1); then
		fail "uid 65534 read trace_pipe: $out"
	fi
	grep -qi 'permission denied' <<<"$out" || fail "uid 65534: unexpected error: $out"
	pass "uid 65534 without capabilities cannot open trace_pipe (uid 0 is needed): ${out##*: }"
}

cap_eff() {
	awk '/^CapEff:/ {print $2}' "/proc/$1/status"
}

# The containers' ready files: /run/gtp5g in both, $WORK/run here.
start_tracer_container() {
	install -d "$WORK/run"
	ct run -d --name "$RUN_ID-tracer" --cap-drop all --cap-add CAP_BPF,CAP_PERFMON \
		--security-opt no-new-privileges --security-opt seccomp=unconfined --read-only \
		-v /sys/kernel/btf:/sys/kernel/btf:ro -v "$TRACEFS:/sys/kernel/tracing:ro" -v "$WORK/run:/run/gtp5g" \
		--entrypoint /usr/local/bin/gtp5g-tracer "$IMAGE" --mode auto --ready-file /run/gtp5g/tracer.ready >/dev/null ||
		fail "could not start the tracer container"
	wait_container_ready "$RUN_ID-tracer" tracer.ready
	TRACER_PID=$(container_pid "$RUN_ID-tracer")
	# CAP_PERFMON is bit 38, CAP_BPF bit 39.
	[ "$(cap_eff "$TRACER_PID")" = 000000c000000000 ] ||
		fail "tracer CapEff $(cap_eff "$TRACER_PID"), expected CAP_BPF+CAP_PERFMON only"
	pass "tracer attached with CAP_BPF + CAP_PERFMON only: $(cat "$WORK/run/tracer.ready")"
}

# The DaemonSet's init container: uid 0, no capabilities, tracefs writable.
make_trace_instance() {
	local out
	out=$(ct run --rm --cap-drop all --security-opt no-new-privileges --read-only \
		-v "$TRACEFS:/sys/kernel/tracing" -v "$WORK/config:/etc/gtp5g-operator/config:ro" \
		-e "GTP5G_OPERATOR__TRACE__INSTANCE=$INSTANCE" \
		"$IMAGE" trace-instance create --config /etc/gtp5g-operator/config/config.toml 2>&1) ||
		fail "trace-instance create in a container without capabilities: $out"
	[ "$(cat "$TRACEFS/instances/$INSTANCE/set_event")" = bpf_trace:bpf_trace_printk ] ||
		fail "instance $INSTANCE records: $(cat "$TRACEFS/instances/$INSTANCE/set_event")"
	pass "init step without capabilities: $out"
}

# A person's reader of the global trace_pipe, there before the operator.
start_global_reader() {
	start_bg "$WORK/global.cat" cat "$TRACEFS/trace_pipe"
	CAT_PID=$BG_PID
	wait_until 5 "cat holding $TRACEFS/trace_pipe" reads_pipe "$CAT_PID" "$TRACEFS/trace_pipe" ||
		fail "cat could not open $TRACEFS/trace_pipe (another reader?)"
}

check_global_reader() {
	kill -0 "$CAT_PID" 2>/dev/null || fail "the global trace_pipe's cat stopped"
	grep -q "TGID=$NR_GNB_PID" "$WORK/global.cat" || fail "the cat of the global trace_pipe saw no nr-gnb line"
	stop_pid "$CAT_PID"
	pass "a cat of the global trace_pipe ran throughout and got the nr-gnb's lines too"
}

remove_trace_instance() {
	local out
	out=$(GTP5G_OPERATOR__TRACE__INSTANCE=$INSTANCE "$OPERATOR" trace-instance remove --config /dev/null 2>&1) ||
		fail "trace-instance remove: $out"
	[ ! -e "$TRACEFS/instances/$INSTANCE" ] || fail "instance $INSTANCE still there: $out"
	pass "$out"
}

start_operator_container() {
	METRICS_PORT=$(free_port)
	install -d "$WORK/apikey"
	cp "$API_KEY" "$WORK/apikey/jwt_public_key.pem"
	install -d "$WORK/state"
	ct run -d --name "$RUN_ID-operator" --pid host --network host --cap-drop all \
		--security-opt no-new-privileges --read-only \
		-v "$TRACEFS:/sys/kernel/tracing:ro" -v "$WORK/config:/etc/gtp5g-operator/config:ro" \
		-v "$WORK/apikey:/etc/gtp5g-operator/key:ro" -v "$WORK/state:/var/lib/gtp5g-operator" \
		-v "$WORK/run:/run/gtp5g" -e GTP5G_OPERATOR_READY_FILE=/run/gtp5g/operator.ready \
		-e PUBLIC_KEY_PATH=/etc/gtp5g-operator/key/jwt_public_key.pem -e "API_ENDPOINT=$API_URL" \
		-e "GTP5G_OPERATOR__METRICS__LISTEN=127.0.0.1:$METRICS_PORT" \
		-e "GTP5G_OPERATOR__TRACE__INSTANCE=$INSTANCE" \
		"$IMAGE" run --config /etc/gtp5g-operator/config/config.toml >/dev/null ||
		fail "could not start the operator container"
	wait_container_ready "$RUN_ID-operator" operator.ready
	OPERATOR_PID=$(container_pid "$RUN_ID-operator")
	[ "$(cap_eff "$OPERATOR_PID")" = 0000000000000000 ] ||
		fail "operator CapEff $(cap_eff "$OPERATOR_PID"), expected none"
	reads_pipe "$OPERATOR_PID" "$INSTANCE_PIPE" || fail "operator ready but not reading $INSTANCE_PIPE: $(cat "$WORK/run/operator.ready")"
	pass "operator reads its instance's trace_pipe with no capabilities (CapEff 0), read-only tracefs and root: $(cat "$WORK/run/operator.ready")"
}

# Whether process $1 has trace pipe $2 open (the container's tracefs is the
# host's, so the link reads the same).
reads_pipe() {
	[ -n "$(find "/proc/$1/fd" -lname "$2" -print -quit 2>/dev/null)" ]
}

# A host process named nr-gnb sending GTP-U over loopback must end up in
# the API with all of its thread ids.
check_boost() {
	start_bg "$WORK/nr-gnb.out" "$TRACER_BUILD/gtpu-traffic" --name nr-gnb --threads 2 --interval-ms 20
	local json ids missing t0=$SECONDS
	wait_until 5 "gtpu-traffic printing its ids" grep -q '"pid"' "$WORK/nr-gnb.out" || true
	json=$(grep -m1 '"pid"' "$WORK/nr-gnb.out" || true)
	[[ $json =~ \"pid\":([0-9]+),\"tids\":\[([0-9,]*)\] ]] || fail "gtpu-traffic printed: $(cat "$WORK/nr-gnb.out")"
	NR_GNB_PID=${BASH_REMATCH[1]}
	ids="$NR_GNB_PID ${BASH_REMATCH[2]//,/ }"
	while [ $((SECONDS - t0)) -lt 30 ]; do
		missing=$(comm -23 <(tr ' ' '\n' <<<"$ids" | sort) <(api_strategies | sort))
		[ -z "$missing" ] && break
		sleep 0.2
	done
	[ -z "$missing" ] || fail "nr-gnb ids $ids: $missing not in the API after 30 s; operator log: $(ct logs "$RUN_ID-operator" 2>&1 | tail -5)"
	pass "host nr-gnb (ids $ids) boosted in the local API within $((SECONDS - t0)) s"
}

check_metrics() {
	local base=http://127.0.0.1:$METRICS_PORT
	curl -sf "$base/healthz" >/dev/null || fail "/healthz: $(curl -s "$base/healthz")"
	# Not grep -q: quitting early would kill curl with SIGPIPE (pipefail).
	curl -sf "$base/metrics" | grep -E '^gtp5g_operator_trace_events_total [1-9]' >/dev/null ||
		fail "/metrics counts no trace events"
	pass "/healthz answers 200, /metrics counts trace events"
}

report_usage() {
	local name pid
	for name in tracer operator; do
		pid=$([ "$name" = tracer ] && echo "$TRACER_PID" || echo "$OPERATOR_PID")
		echo "usage: $name: peak RSS $(peak_rss_kb "$pid") kB, CPU user/sys ticks $(cpu_ticks "$pid") (1/$(clk_tck) s)"
	done
}

# The kubelet's SIGTERM: each container must exit 0 on its own well within
# terminationGracePeriodSeconds (engine stop sends SIGKILL after GRACE_S),
# taking its ready file with it.
check_graceful_stop() {
	local name t0 code
	for name in operator tracer; do
		t0=$(date +%s%N)
		ct stop -t "$GRACE_S" "$RUN_ID-$name" >/dev/null
		code=$(ct inspect --format '{{.State.ExitCode}}' "$RUN_ID-$name")
		[ "$code" = 0 ] || fail "$name exit code $code after SIGTERM: $(ct logs "$RUN_ID-$name" 2>&1 | tail -3)"
		[ ! -e "$WORK/run/$name.ready" ] || fail "$name left its ready file behind after exit"
		pass "$name: SIGTERM -> exit 0 in $(( ($(date +%s%N) - t0) / 1000000 )) ms (grace ${GRACE_S} s), ready file removed"
	done
}

# The DaemonSet's state volume: what a restarted pod restores.
check_state_saved() {
	grep -Eq "\"pid\": *$NR_GNB_PID\b" "$WORK/state/tracked.json" 2>/dev/null ||
		fail "state.dir mount: no nr-gnb $NR_GNB_PID in tracked.json: $(cat "$WORK/state/tracked.json" 2>&1)"
	pass "tracked.json in the state mount holds nr-gnb $NR_GNB_PID"
}

smoke_live() {
	[ -e "$TRACEFS/trace_pipe" ] || mount -t tracefs nodev "$TRACEFS" || skip "no tracefs at $TRACEFS"
	[ -r /sys/kernel/btf/vmlinux ] || skip "no kernel BTF (/sys/kernel/btf/vmlinux): the tracer cannot load"
	check_nonroot_refused
	[ -x "$OPERATOR" ] || OPERATOR=${CARGO_TARGET_DIR:-$GTP5G_REPO/target}/debug/gtp5g-operator
	start_local_api "$WORK"
	# Fed by the real tracer: hold the trace_pipe lock from attach to detach.
	lock_trace_pipe
	start_tracer_container
	make_trace_instance
	start_global_reader
	start_operator_container
	check_boost
	check_global_reader
	check_metrics
	report_usage
	check_graceful_stop
	unlock_trace_pipe
	remove_trace_instance
	check_state_saved
}

skip() {
	[ "${GTP5G_REQUIRE_LIVE:-0}" = 1 ] || echo "test-container: $PASSED passed, 0 failed, 1 skipped"
	ct_skip "$@"
}

cleanup() {
	remove_containers
	stop_started
	rmdir "$TRACEFS/instances/$INSTANCE" 2>/dev/null || true
	rm -rf "$WORK"
}

WORK=$(mktemp -d /tmp/gtp5g-ct.XXXXXX)
trap cleanup EXIT
check_manifests
[ "$(id -u)" = 0 ] || skip "the image checks need root (container engine, BPF, trace_pipe)"
ct_engine_setup any || skip "$CT_SKIP_REASON"
IMAGE=gtp5g-operator:$(./build.sh version)
IMAGE=$IMAGE ./build.sh image || fail "./build.sh image"
pass "./build.sh image built $IMAGE"
smoke_offline
smoke_live
echo "test-container: $PASSED passed, 0 failed"
