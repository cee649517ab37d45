"""What deploy/kubernetes/deployment.yaml promises beyond schema validity.

    python3 scripts/check-manifests.py [--write]
        (needs PyYAML; scripts/test-container.sh runs it in its
        kubernetes-validate venv; --write first copies config/gtp5g-operator.toml
        into the ConfigMap)

Checks that the ConfigMap is config/gtp5g-operator.toml verbatim, that the
image tag follows Cargo.toml's version, and that the privileges, mounts,
probes, scrape annotations and API settings hang together (a port or path
changed in one place and not in the other fails here, not on a cluster).
Prints one line per check and exits 1 if any failed.
"""

import pathlib
import re
import sys

import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
MANIFEST = REPO / "deploy/kubernetes/deployment.yaml"
CONFIG = REPO / "config/gtp5g-operator.toml"

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok' if ok else 'FAIL'}: {name}" + ("" if ok else f": {detail}"))


def by_name(items):
    return {i["name"]: i for i in items or []}


def env_value(container, name):
    return by_name(container.get("env")).get(name, {})


def write_config_map():
    """Replaces the ConfigMap's config.toml block (up to the next document)."""
    text = MANIFEST.read_text()
    head, rest = text.split("  config.toml: |\n", 1)
    tail = rest[rest.index("\n---\n") + 1:]
    block = "".join("    " + line if line.strip() else "\n"
                    for line in CONFIG.read_text().splitlines(True))
    MANIFEST.write_text(head + "  config.toml: |\n" + block + tail)


def main():
    if "--write" in sys.argv[1:]:
        write_config_map()
    docs = {(d["kind"], d["metadata"]["name"]): d
            for d in yaml.safe_load_all(MANIFEST.read_text()) if d}
    config_map = docs["ConfigMap", "gtp5g-operator"]
    daemon_set, tracer_set = docs["DaemonSet", "gtp5g-operator"], docs["DaemonSet", "gtp5g-tracer"]
    shipped = CONFIG.read_text()
    check(
        "ConfigMap config.toml is config/gtp5g-operator.toml verbatim",
        config_map["data"]["config.toml"] == shipped,
        "they differ: run scripts/check-manifests.py --write",
    )

    pod, tracer_pod = daemon_set["spec"]["template"]["spec"], tracer_set["spec"]["template"]["spec"]
    operator, tracer = by_name(pod["containers"])["operator"], by_name(tracer_pod["containers"])["tracer"]
    volumes, tracer_volumes = by_name(pod["volumes"]), by_name(tracer_pod["volumes"])
    for ds in (daemon_set, tracer_set):
        name, labels = ds["metadata"]["name"], ds["spec"]["template"]["metadata"]["labels"]
        check(f"{name}: pods labelled app={name}", labels.get("app") == name, labels)
        check(f"{name}: selector matches the pod labels",
              ds["spec"]["selector"]["matchLabels"].items() <= labels.items())
    check("hostPID for the operator only (the tracer reads no pid)",
          pod.get("hostPID") is True and not tracer_pod.get("hostPID"))

    version = re.search(r'^version = "(.+)"$', (REPO / "Cargo.toml").read_text(), re.M)[1]
    images = {c["image"] for c in pod["containers"] + tracer_pod["containers"]}
    check(f"both containers run gtp5g-operator:{version} (Cargo.toml)",
          images == {f"gtp5g-operator:{version}"}, images)

    tracer_caps = tracer["securityContext"]["capabilities"]
    check("tracer: drop ALL, add only BPF and PERFMON",
          tracer_caps.get("drop") == ["ALL"] and sorted(tracer_caps.get("add", [])) == ["BPF", "PERFMON"],
          tracer_caps)
    check("seccomp: tracer Unconfined (the default profiles need SYS_ADMIN for bpf()), operator RuntimeDefault",
          tracer["securityContext"].get("seccompProfile") == {"type": "Unconfined"}
          and operator["securityContext"].get("seccompProfile") == {"type": "RuntimeDefault"})
    operator_sc = operator["securityContext"]
    check("operator: no capabilities, no escalation, read-only root",
          operator_sc["capabilities"] == {"drop": ["ALL"]}
          and operator_sc["allowPrivilegeEscalation"] is False
          and operator_sc["readOnlyRootFilesystem"] is True, operator_sc)
    check("no container is privileged",
          not any(c["securityContext"].get("privileged") for c in (tracer, operator)))

    init = by_name(pod.get("initContainers"))
    maker = init.get("trace-instance", {})
    maker_sc = maker.get("securityContext", {})
    maker_mounts = by_name(maker.get("volumeMounts"))
    check("init container makes the trace instance: same image and config, no capabilities, "
          "tracefs writable",
          maker.get("args", [])[:2] == ["trace-instance", "create"]
          and maker.get("image") == operator["image"]
          and maker_sc.get("capabilities") == {"drop": ["ALL"]}
          and maker_sc.get("allowPrivilegeEscalation") is False
          and not maker_sc.get("privileged")
          and maker_mounts.get("tracing", {}).get("mountPath") == "/sys/kernel/tracing"
          and not maker_mounts["tracing"].get("readOnly")
          and maker["args"][maker["args"].index("--config") + 1]
          == maker_mounts["config"]["mountPath"] + "/config.toml", maker)

    mounts = by_name(operator["volumeMounts"])
    check("operator reads tracefs from the host, read-only",
          volumes["tracing"]["hostPath"]["path"] == "/sys/kernel/tracing"
          and mounts["tracing"] == {"name": "tracing", "mountPath": "/sys/kernel/tracing",
                                    "readOnly": True}, mounts.get("tracing"))
    check("tracer's tracefs read-only (its heartbeat goes through bpf(), not trace_marker)",
          tracer_volumes["tracing"]["hostPath"]["path"] == "/sys/kernel/tracing"
          and by_name(tracer["volumeMounts"])["tracing"].get("readOnly") is True,
          by_name(tracer["volumeMounts"]).get("tracing"))
    check("tracer sees the host's BTF",
          tracer_volumes["btf"]["hostPath"]["path"] == "/sys/kernel/btf"
          and by_name(tracer["volumeMounts"])["btf"]["mountPath"] == "/sys/kernel/btf")

    config_arg = operator["args"][operator["args"].index("--config") + 1]
    check("--config is the ConfigMap's file",
          volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
          and config_arg == mounts["config"]["mountPath"] + "/config.toml", config_arg)
    key_path = env_value(operator, "PUBLIC_KEY_PATH").get("value", "")
    check("PUBLIC_KEY_PATH is in the Secret's mount",
          "secretName" in volumes["api-key"]["secret"]
          and key_path.startswith(mounts["api-key"]["mountPath"] + "/"), key_path)

    state_dir = re.search(r'^dir = "(.+)"$', shipped, re.M)[1]
    check("state.dir is a writable host directory",
          mounts.get("state", {}).get("mountPath") == state_dir
          and not mounts["state"].get("readOnly")
          and volumes["state"]["hostPath"]["path"] == state_dir, mounts.get("state"))

    node_ip = env_value(operator, "NODE_IP").get("valueFrom", {}).get("fieldRef", {})
    endpoint = env_value(operator, "API_ENDPOINT").get("value", "")
    check("API_ENDPOINT is the node's address from the downward API",
          node_ip.get("fieldPath") == "status.hostIP" and "$(NODE_IP)" in endpoint
          and list(by_name(operator["env"])).index("NODE_IP")
          < list(by_name(operator["env"])).index("API_ENDPOINT"), endpoint)

    port = by_name(operator["ports"])["metrics"]["containerPort"]
    listen = env_value(operator, "GTP5G_OPERATOR__METRICS__LISTEN").get("value", "")
    annotations = daemon_set["spec"]["template"]["metadata"]["annotations"]
    check("metrics: listen port = containerPort = scrape annotation",
          listen == f"0.0.0.0:{port}" and annotations.get("prometheus.io/port") == str(port)
          and annotations.get("prometheus.io/scrape") == "true"
          and annotations.get("prometheus.io/path") == "/metrics", (listen, port, annotations))
    # An API outage must never restart the pod: liveness asks only after the
    # daemon's own loops, readiness after the API.
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/healthz")):
        get = operator[probe]["httpGet"]
        check(f"{probe} on {path}", get == {"path": path, "port": "metrics"}, get)

    # The operator's SIGTERM drain gives an in-flight POST 5 s; the period
    # must leave room for it and for the exit itself.
    check("terminationGracePeriodSeconds leaves the 5 s drain room",
          pod["terminationGracePeriodSeconds"] >= 10, pod["terminationGracePeriodSeconds"])
    for c in (tracer, operator):
        res = c.get("resources", {})
        check(f"{c['name']}: memory request and limit, cpu request",
              {"cpu", "memory"} <= res.get("requests", {}).keys()
              and "memory" in res.get("limits", {}), res)

    failed = results.count(False)
    print(f"manifests: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
