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
#    CAP_BPF + CAP_PERFMON in its own pid namespace (as its DaemonSet), the
#    operator in another with no capabilities, a
#    read-only tracefs and the host's pid namespace, boosting a host process
#    named nr-gnb in a local API on the host; then SIGTERM, as the kubelet
#    sends it, within terminationGracePeriodSeconds. Prints both programs'
#    peak RSS and CPU time.
# Without root or an engine the image part is skipped with the reason;
# GTP5G_REQUIRE_LIVE=1 turns that skip into a failure.
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"
. "$REPO/scripts/container-lib.sh"
cd "$REPO"

K8S_VERSION=1.37.0
KV_PIN="kubernetes-validate==1.37.0"
MANIFESTS=(deploy/kubernetes/deployment.yaml)
VENV=${CARGO_TARGET_DIR:-$REPO/target}/venv-kubernetes-validate
GRACE_S=15
RUN_ID=gtp5g-ct-$$
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
        ct_is_debian_root || fail "python3 -m venv fails: install python3-venv"
        ct_apt_install python3-venv || fail "apt-get install python3-venv failed"
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

wait_for_log() {
    local name=$1 pattern=$2
    for _ in $(seq 100); do
        ct logs "$name" 2>&1 | grep -q "$pattern" && return 0
        sleep 0.1
    done
    fail "$name: no '$pattern' in its log: $(ct logs "$name" 2>&1 | tail -5)"
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

    out=$(ct run --rm -v "$REPO/tests/fixtures:/fixtures:ro" "$IMAGE" \
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

start_tracer_container() {
    ct run -d --name "$RUN_ID-tracer" --cap-drop all --cap-add CAP_BPF,CAP_PERFMON \
        --security-opt no-new-privileges --security-opt seccomp=unconfined --read-only \
        -v /sys/kernel/btf:/sys/kernel/btf:ro -v "$TRACEFS:/sys/kernel/tracing:ro" \
        --entrypoint /usr/local/bin/gtp5g-tracer "$IMAGE" --mode auto >/dev/null ||
        fail "could not start the tracer container"
    wait_for_log "$RUN_ID-tracer" "probes attached"
    TRACER_PID=$(container_pid "$RUN_ID-tracer")
    # CAP_PERFMON is bit 38, CAP_BPF bit 39.
    [ "$(cap_eff "$TRACER_PID")" = 000000c000000000 ] ||
        fail "tracer CapEff $(cap_eff "$TRACER_PID"), expected CAP_BPF+CAP_PERFMON only"
    pass "tracer attached with CAP_BPF + CAP_PERFMON only: $(ct logs "$RUN_ID-tracer" 2>&1 | grep -m1 'probes attached')"
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
        -e PUBLIC_KEY_PATH=/etc/gtp5g-operator/key/jwt_public_key.pem -e "API_ENDPOINT=$API_URL" \
        -e "GTP5G_OPERATOR__METRICS__LISTEN=127.0.0.1:$METRICS_PORT" \
        "$IMAGE" run --config /etc/gtp5g-operator/config/config.toml >/dev/null ||
        fail "could not start the operator container"
    wait_for_log "$RUN_ID-operator" "reading trace lines"
    OPERATOR_PID=$(container_pid "$RUN_ID-operator")
    [ "$(cap_eff "$OPERATOR_PID")" = 0000000000000000 ] ||
        fail "operator CapEff $(cap_eff "$OPERATOR_PID"), expected none"
    pass "operator reads trace_pipe with no capabilities (CapEff 0), read-only tracefs and root"
}

# Prints the pids (tasks) the local API holds.
api_pids() {
    python3 - "$API_URL" "$API_KEY" <<'PY'
import json, sys, urllib.request

url, key = sys.argv[1], sys.argv[2]

def call(path, body=None, token=None):
    req = urllib.request.Request(url + path, data=body and json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)

auth = call("/api/v1/auth/token", {"public_key": open(key).read()})
token = auth.get("token") or auth["data"]["token"]
for s in call("/api/v1/scheduling/strategies", token=token).get("scheduling") or []:
    print(s["pid"])
PY
}

# A host process named nr-gnb sending GTP-U over loopback must end up in
# the API with all of its thread ids.
check_boost() {
    "$TRACER_BUILD/gtpu-traffic" --name nr-gnb --threads 2 --interval-ms 20 >"$WORK/nr-gnb.out" 2>&1 &
    STARTED+=($!)
    local json ids missing t0=$SECONDS
    for _ in $(seq 50); do
        json=$(grep -m1 '"pid"' "$WORK/nr-gnb.out" || true)
        [ -n "$json" ] && break
        sleep 0.1
    done
    [[ $json =~ \"pid\":([0-9]+),\"tids\":\[([0-9,]*)\] ]] || fail "gtpu-traffic printed: $(cat "$WORK/nr-gnb.out")"
    NR_GNB_PID=${BASH_REMATCH[1]}
    ids="$NR_GNB_PID ${BASH_REMATCH[2]//,/ }"
    while [ $((SECONDS - t0)) -lt 30 ]; do
        missing=$(comm -23 <(tr ' ' '\n' <<<"$ids" | sort) <(api_pids | sort))
        [ -z "$missing" ] && break
        sleep 0.2
    done
    [ -z "$missing" ] || fail "nr-gnb ids $ids: $missing not in the API after 30 s; operator log: $(ct logs "$RUN_ID-operator" 2>&1 | tail -5)"
    pass "host nr-gnb (ids $ids) boosted in the local API within $((SECONDS - t0)) s"
}

check_metrics() {
    local base=http://127.0.0.1:$METRICS_PORT
    curl -sf "$base/healthz" >/dev/null || fail "/healthz: $(curl -s "$base/healthz")"
    curl -sf "$base/metrics" | grep -Eq '^gtp5g_operator_trace_events_total [1-9]' ||
        fail "/metrics counts no trace events"
    pass "/healthz answers 200, /metrics counts trace events"
}

report_usage() {
    local name pid
    for name in tracer operator; do
        pid=$([ "$name" = tracer ] && echo "$TRACER_PID" || echo "$OPERATOR_PID")
        echo "usage: $name: peak RSS $(peak_rss_kb "$pid") kB, CPU user/sys ticks $(cpu_ticks "$pid") (1/$CLK_TCK s)"
    done
}

# The kubelet's SIGTERM: each container must exit 0 on its own well within
# terminationGracePeriodSeconds (engine stop sends SIGKILL after GRACE_S).
check_graceful_stop() {
    local name t0 code
    for name in "$RUN_ID-operator" "$RUN_ID-tracer"; do
        t0=$(date +%s%N)
        ct stop -t "$GRACE_S" "$name" >/dev/null
        code=$(ct inspect --format '{{.State.ExitCode}}' "$name")
        [ "$code" = 0 ] || fail "$name exit code $code after SIGTERM: $(ct logs "$name" 2>&1 | tail -3)"
        pass "$name: SIGTERM -> exit 0 in $(( ($(date +%s%N) - t0) / 1000000 )) ms (grace ${GRACE_S} s)"
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
    [ -x "$OPERATOR" ] || OPERATOR=${CARGO_TARGET_DIR:-$REPO/target}/debug/gtp5g-operator
    start_local_api
    # Fed by the real tracer: hold the trace_pipe lock from attach to detach.
    lock_trace_pipe
    start_tracer_container
    start_operator_container
    check_boost
    check_metrics
    report_usage
    check_graceful_stop
    exec 9>&-
    check_state_saved
}

skip() {
    [ "${GTP5G_REQUIRE_LIVE:-0}" = 1 ] || echo "test-container: $PASSED passed, 0 failed, 1 skipped"
    ct_skip "$@"
}

trap 'remove_containers; cleanup' EXIT
check_manifests
[ "$(id -u)" = 0 ] || skip "the image checks need root (container engine, BPF, trace_pipe)"
ct_engine_setup any || skip "$CT_SKIP_REASON"
IMAGE=gtp5g-operator:$(./build.sh version)
IMAGE=$IMAGE ./build.sh image || fail "./build.sh image"
pass "./build.sh image built $IMAGE"
smoke_offline
smoke_live
echo "test-container: $PASSED passed, 0 failed"
