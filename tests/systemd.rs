//! The shipped systemd units: `systemd-analyze verify` accepts them without
//! a single warning (with ExecStart pointing at the binaries just built, as
//! verify checks that they exist), and the directives the daemon's
//! behaviour depends on are there. And the daemon's readiness: READY=1
//! and, at the same moment, the ready file that scripts wait on.

mod common;

use common::{
    daemon_command, skip_unless_live, tracer_binary, wrapping, Api, Daemon, Fifo, BIN,
    READY_FILE_ENV,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const UNITS: [&str; 3] =
    ["gtp5g-tracer.service", "gtp5g-operator.service", "gtp5g-local-api.service"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn unit_text(name: &str) -> String {
    let path = repo().join("systemd").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The units with their installed binary paths replaced by the built ones.
fn units_for_verify(dir: &Path) -> Vec<PathBuf> {
    let operator = env!("CARGO_BIN_EXE_gtp5g-operator");
    let tracer = tracer_binary("gtp5g-tracer");
    UNITS
        .iter()
        .map(|name| {
            let text = unit_text(name)
                .replace("/usr/local/bin/gtp5g-operator", operator)
                .replace("/usr/local/bin/gtp5g-tracer", &tracer.display().to_string());
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

#[test]
fn systemd_analyze_verify_is_silent() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        return skip_unless_live("systemd-analyze is not installed (apt-get install systemd)");
    }
    let dir = tempfile::tempdir().unwrap();
    let units = units_for_verify(dir.path());
    // --man=no: verify would otherwise run man(1) for Documentation= pages.
    let out =
        Command::new("systemd-analyze").args(["verify", "--man=no"]).args(&units).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed ({}):\n{stdout}{stderr}",
        out.status
    );
    assert!(
        stdout.trim().is_empty() && stderr.trim().is_empty(),
        "systemd-analyze verify warned:\n{stdout}{stderr}"
    );
}

/// `key=value` lines of a unit, comments dropped.
fn directives(name: &str) -> Vec<String> {
    unit_text(name)
        .lines()
        .map(str::trim)
        .filter(|l| l.contains('=') && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

fn assert_has(name: &str, wanted: &[&str]) {
    let have = directives(name);
    for w in wanted {
        assert!(have.iter().any(|d| d == w), "{name}: missing `{w}`");
    }
}

#[test]
fn operator_unit_keeps_its_contract_with_the_daemon() {
    assert_has(
        "gtp5g-operator.service",
        &[
            "Wants=gtp5g-tracer.service network-online.target",
            // The daemon sends READY=1 and feeds the watchdog (src/main.rs).
            "Type=notify",
            "WatchdogSec=30",
            "Restart=on-failure",
            // The shell builtin: /bin/kill is missing from minimal installs.
            "ExecReload=/bin/sh -c 'kill -HUP $MAINPID'",
            // The daemon reads the instance this privileged step makes.
            "ExecStartPre=-+/usr/local/bin/gtp5g-operator trace-instance create --config /etc/gtp5g-operator/config.toml",
            "ExecStart=/usr/local/bin/gtp5g-operator run --config /etc/gtp5g-operator/config.toml",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "ProtectKernelModules=yes",
            "ProtectControlGroups=yes",
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
            "LockPersonality=yes",
            "MemoryDenyWriteExecute=yes",
            "SystemCallArchitectures=native",
            // Reading trace_pipe and other users' /proc entries needs none.
            "CapabilityBoundingSet=",
            // The tracker has to see every pid.
            "ProtectProc=default",
            "ProcSubset=all",
        ],
    );
    let after = directives("gtp5g-operator.service")
        .into_iter()
        .find(|d| d.starts_with("After="))
        .unwrap_or_default();
    assert!(
        after.split_whitespace().any(|u| u.ends_with("gtp5g-tracer.service")),
        "operator not ordered after the tracer: {after}"
    );
}

#[test]
fn tracer_unit_gets_only_the_bpf_capabilities() {
    assert_has(
        "gtp5g-tracer.service",
        &[
            // The heartbeat on (its default), through bpf(): no
            // writable tracefs for it.
            "ExecStart=/usr/local/bin/gtp5g-tracer --mode auto",
            "ProtectKernelTunables=yes",
            "CapabilityBoundingSet=CAP_BPF CAP_PERFMON",
            // The loader reads CONFIG_HZ from /proc/config.gz.
            "ProcSubset=all",
            "AmbientCapabilities=CAP_BPF CAP_PERFMON",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "Restart=on-failure",
        ],
    );
}

#[test]
fn local_api_keeps_its_key_where_the_operator_looks() {
    assert_has(
        "gtp5g-local-api.service",
        &[
            "ExecStart=/usr/local/bin/gtp5g-operator local-api --listen 127.0.0.1:8081 --state-dir /var/lib/gtp5g-operator --schema ${GTP5G_LOCAL_API_SCHEMA} $GTP5G_LOCAL_API_ARGS",
            "StateDirectory=gtp5g-operator",
            // Started only with the key the operator checks at start.
            "ExecStartPost=/bin/sh -c 'until [ -s /var/lib/gtp5g-operator/jwt_public_key.pem ]; do sleep 0.1; done'",
        ],
    );
    // The operator keeps tracked.json in the same directory (state.dir).
    assert_has("gtp5g-operator.service", &["StateDirectory=gtp5g-operator"]);
    assert!(std::fs::read_to_string(repo().join("config/gtp5g-operator.toml"))
        .unwrap()
        .contains("dir = \"/var/lib/gtp5g-operator\""));
    // Default api.public_key_path and endpoint of the shipped configuration.
    let config = std::fs::read_to_string(repo().join("config/gtp5g-operator.toml")).unwrap();
    assert!(config.contains("public_key_path = \"/var/lib/gtp5g-operator/jwt_public_key.pem\""));
    assert!(config.contains("endpoint = \"http://localhost:8081\""));
}

/// The schema comes from the optional environment file, v0 when it is
/// absent; the shipped example names only values the binary accepts.
#[test]
fn local_api_takes_its_schema_from_its_environment_file() {
    assert_has(
        "gtp5g-local-api.service",
        &[
            "Environment=GTP5G_LOCAL_API_SCHEMA=v0",
            "Environment=GTP5G_LOCAL_API_ARGS=",
            "EnvironmentFile=-/etc/default/gtp5g-local-api",
        ],
    );
    let example = std::fs::read_to_string(repo().join("systemd/gtp5g-local-api.default")).unwrap();
    let values: Vec<&str> = example
        .lines()
        .filter_map(|l| l.trim_start_matches('#').split_once('='))
        .filter(|(k, _)| k.starts_with("GTP5G_LOCAL_API_"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, ["current", "--priority-level 1"]);
    let mut args = vec!["local-api", "--schema", values[0]];
    args.extend(values[1].split(' '));
    args.push("--help");
    let out = Command::new(env!("CARGO_BIN_EXE_gtp5g-operator")).args(&args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The next notification that mentions `state`, skipping the others.
async fn next_notice(sock: &tokio::net::UnixDatagram, state: &str) -> String {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), sock.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {state} notification within 10 s"))
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.lines().any(|l| l == state) {
            return text;
        }
    }
}

/// `Type=notify` against a real notification socket: READY once running
/// (the ready file already there), WATCHDOG again and again, RELOADING then
/// READY on SIGHUP, STOPPING on SIGTERM (the ready file gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_notifies_ready_watchdog_reload_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let sock = tokio::net::UnixDatagram::bind(&notify_path).unwrap();
    let fifo = Fifo::create(&dir.path().join("trace_pipe"));
    let mut api = Api::start().await;
    let daemon_cmd = daemon_command(&api.url(), &api.key_path(), &fifo.path);
    // systemd names the watched process in WATCHDOG_PID; the pid is only
    // known once started, so a shell exports its own and execs the daemon.
    let mut sh = Command::new("sh");
    sh.args(["-c", r#"WATCHDOG_PID=$$ exec "$@""#, "sh"]);
    let mut cmd = wrapping(sh, &daemon_cmd);
    cmd.env("NOTIFY_SOCKET", &notify_path).env("WATCHDOG_USEC", "400000");
    let mut daemon = Daemon::spawn(cmd);

    next_notice(&sock, "READY=1").await;
    let said = daemon.ready_at(&daemon.ready).expect("the ready file is written before READY=1");
    assert_eq!(said["source"], fifo.path.display().to_string(), "{said}");
    next_notice(&sock, "WATCHDOG=1").await;
    let first = Instant::now();
    next_notice(&sock, "WATCHDOG=1").await;
    eprintln!("WATCHDOG=1 every {:?} (WATCHDOG_USEC 400 ms: every 200 ms)", first.elapsed());
    daemon.signal(libc::SIGHUP);
    next_notice(&sock, "RELOADING=1").await;
    next_notice(&sock, "READY=1").await;
    daemon.signal(libc::SIGTERM);
    next_notice(&sock, "STOPPING=1").await;
    let status = daemon.wait_exit(Duration::from_secs(10)).await.expect("daemon exits");
    assert!(status.success(), "{status:?}");
    assert!(!daemon.ready.exists(), "the ready file outlived the daemon");
    api.stop().await;
}

/// `--ready-file` (over the environment's): a file a killed run left is
/// not taken for this one's; the new one comes once the FIFO is open and
/// the API has answered the first POST; no temporary file stays; SIGTERM
/// takes it away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_file_replaces_a_stale_one_and_follows_the_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = Fifo::create(&dir.path().join("trace_pipe"));
    let mut api = Api::start().await;
    let path = dir.path().join("operator.ready");
    std::fs::write(&path, "{\"pid\":1,\"source\":\"/stale\"}\n").unwrap();
    let mut cmd = daemon_command(&api.url(), &api.key_path(), &fifo.path);
    cmd.arg("--ready-file").arg(&path);
    let mut daemon = Daemon::spawn(cmd);
    let posts = api.api.posts();

    let said = daemon.wait_ready_at(&path, Duration::from_secs(10)).await;
    assert_eq!(
        said,
        serde_json::json!({"pid": daemon.pid(), "source": fifo.path.display().to_string()})
    );
    assert!(*posts.borrow() >= 1, "ready before the API had a POST");
    assert!(!daemon.ready.exists(), "--ready-file must win over {READY_FILE_ENV}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(10)).await.expect("daemon exits");
    assert!(status.success(), "{status:?}");
    assert!(!path.exists(), "the ready file outlived the daemon");
    api.stop().await;
}

#[test]
fn a_ready_file_in_a_missing_directory_fails_the_start() {
    let out = Command::new(BIN)
        .args(["run", "--config", "/dev/null", "--ready-file", "/nonexistent-dir/op.ready"])
        .env("PUBLIC_KEY_PATH", common::fixture("other_public_key.pem"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("ready file /nonexistent-dir/op.ready: no such directory"), "{stderr}");
}
