//! /status, `gtp5g-operator status` and the per-target schedstat metrics,
//! against the running binary with real processes; and the tracer's
//! heartbeat through the kernel's trace_pipe.

mod common;

use common::tracer::Tracer;
use common::*;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(15);

/// The tracker's tick (pipeline::thread::TICK), which the samples follow.
const TICK: Duration = Duration::from_millis(500);

async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let r = reqwest::get(format!("http://{addr}{path}")).await.ok()?;
    Some((r.status().as_u16(), r.text().await.ok()?))
}

async fn status(addr: SocketAddr) -> serde_json::Value {
    let (code, body) = get(addr, "/status").await.expect("GET /status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (_, text) = get(addr, "/metrics").await.expect("scrape");
    sample(&text, name).unwrap_or_else(|| panic!("{name} not in:\n{text}"))
}

/// Killed and reaped when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process named nr-gnb (it renames itself) with a sleeping main thread
/// and one thread that spins: CPU-bound, so it waits whenever the CPUs are
/// taken.
fn spinning_target() -> Reaped {
    let script = "import threading, time\n\
                  open('/proc/self/comm', 'w').write('nr-gnb')\n\
                  def spin():\n    while True: pass\n\
                  threading.Thread(target=spin, daemon=True).start()\n\
                  time.sleep(600)\n";
    let child = Command::new("/usr/bin/python3").arg("-c").arg(script).spawn().unwrap();
    Reaped(child)
}

/// One CPU hog per core, and one more: whatever else runs waits for a CPU.
fn hogs() -> Vec<Reaped> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (0..=cores)
        .map(|_| {
            Reaped(
                Command::new("/bin/sh")
                    .args(["-c", "while :; do :; done"])
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect()
}

fn thread_ids(pid: u32) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// The kernel's run-queue wait of every thread of `pid`, in seconds.
fn kernel_wait_s(pid: u32) -> f64 {
    thread_ids(pid)
        .iter()
        .map(|tid| {
            let text =
                std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).unwrap();
            text.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() as f64 / 1e9
        })
        .sum()
}

fn daemon(api: &Api, pipe: &std::path::Path, addr: SocketAddr, silence_s: &str) -> Daemon {
    let mut cmd = daemon_command(&api.url(), &api.key_path(), pipe);
    cmd.arg("--metrics-listen")
        .arg(addr.to_string())
        .env("GTP5G_OPERATOR__METRICS__MAX_TRACER_SILENCE_S", silence_s);
    Daemon::spawn(cmd)
}

fn status_command(addr: SocketAddr) -> std::process::Output {
    Command::new(BIN).args(["status", "--url", &format!("http://{addr}")]).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_bound_targets_wait_agrees_with_schedstat_and_status_lists_its_ids() {
    let dir = TempDir::new().unwrap();
    let mut fifo = Fifo::create(&dir.path().join("trace_pipe"));
    let target = spinning_target();
    let pid = target.0.id();
    assert!(
        eventually(LONG, || thread_ids(pid).len() == 2
            && std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap() == "nr-gnb\n")
        .await,
        "the target did not start its thread"
    );
    let _hogs = hogs();
    let api = Api::start().await;
    let addr = free_addr();
    let d = daemon(&api, &fifo.path, addr, "20");
    fifo.write(&trace_line("nr-gnb", pid, pid));
    assert!(eventually(LONG, || api.pids().contains(&(pid as i64))).await, "{}", d.log_text());

    // Exactly the tracked ids, in /status and in the table.
    let listed = loop {
        let s = status(addr).await;
        if s["targets"][0]["runqueue_wait_ms_per_s"].is_number() {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("/status: {listed:#}");
    let targets = listed["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{listed}");
    assert_eq!(targets[0]["name"], "nr-gnb");
    assert_eq!(targets[0]["tgid"], pid);
    let threads: Vec<u64> =
        targets[0]["threads"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap()).collect();
    assert_eq!(threads, thread_ids(pid));
    assert_eq!(targets[0]["protocols"], serde_json::json!([]), "a PID= line names no traffic");
    assert!(targets[0]["last_record_unix_ms"].is_u64());
    assert_eq!(listed["api"]["endpoint"], api.url());
    assert!(listed["unhealthy"].is_null(), "{listed}");

    let out = status_command(addr);
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("gtp5g-operator status:\n{table}");
    assert!(out.status.success(), "{table}{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("api:"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert_eq!(rows[0][..3], ["nr-gnb", &pid.to_string(), "2"], "{table}");
    assert!(table.contains(&format!("api: {}", api.url())), "{table}");

    // Let it wait a while, then compare with the kernel's own figure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let name = "gtp5g_operator_target_runqueue_wait_seconds_total{name=\"nr-gnb\"}";
    let before = kernel_wait_s(pid);
    let exported = metric(addr, name).await;
    let after = kernel_wait_s(pid);
    eprintln!("run-queue wait: kernel {before:.3}..{after:.3} s, exported {exported:.3} s");
    assert!(exported > 0.1, "a spinning thread among hogs waited {exported} s only");
    assert!(exported <= after + 1e-9, "exported {exported} s > kernel {after} s");
    // The sample is at most a tick (plus the scrape's latency) old, and
    // only the spinning thread can wait meanwhile: at most 1 s per second.
    let slack = TICK.as_secs_f64() + 0.3;
    assert!(
        exported >= before - slack,
        "exported {exported} s lags kernel {before} s by > {slack} s"
    );
    assert_eq!(metric(addr, "gtp5g_operator_target_threads{name=\"nr-gnb\"}").await, 2.0);
    let cpu = metric(addr, "gtp5g_operator_target_cpu_seconds_total{name=\"nr-gnb\"}").await;
    assert!(cpu > 0.1, "cpu {cpu}");

    // The process exits: its time stays in the counters, its threads go.
    drop(target);
    let threads = "gtp5g_operator_target_threads{name=\"nr-gnb\"}";
    let mut gone = false;
    for _ in 0..100 {
        if metric(addr, threads).await == 0.0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "threads gauge still up after the exit");
    assert!(metric(addr, name).await >= exported, "the counter went down on exit");
    assert_eq!(status(addr).await["targets"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exits_non_zero_when_the_daemon_is_unreachable_or_unhealthy() {
    let addr = free_addr();
    let out = status_command(addr);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("daemon unreachable at http://{addr}/status")), "{stderr}");

    // A daemon whose trace source never opens: unhealthy after 1 s.
    let dir = TempDir::new().unwrap();
    let api = Api::start().await;
    let mut cmd = daemon_command(&api.url(), &api.key_path(), &dir.path().join("missing"));
    cmd.arg("--metrics-listen")
        .arg(addr.to_string())
        .env("GTP5G_OPERATOR__METRICS__MAX_SOURCE_DOWN_S", "1");
    let _d = Daemon::spawn(cmd);
    let mut last = None;
    let end = Instant::now() + LONG;
    while Instant::now() < end {
        let out = status_command(addr);
        if out.status.code() == Some(1) && !out.stdout.is_empty() {
            last = Some(out);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = last.expect("status never said unhealthy");
    let (table, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(table.contains("(nothing tracked)") && table.contains("trace source DOWN"), "{table}");
    assert!(stderr.contains("unhealthy: trace source down for"), "{stderr}");
}

/// A tracing instance of this test's own, recording bpf_trace_printk as the
/// daemon's own does; removed at the end.
struct OwnInstance {
    name: String,
    dir: std::path::PathBuf,
}

impl OwnInstance {
    fn new() -> OwnInstance {
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("gtp5g-status-test-{}-{n}", std::process::id());
        let global = gtp5g_operator::source::locate(None, true).unwrap();
        let made = gtp5g_operator::source::instance::create(global.parent().unwrap(), &name, 256)
            .unwrap_or_else(|e| panic!("tracing instance {name}: {e}"));
        OwnInstance { name, dir: made.dir }
    }
}

impl Drop for OwnInstance {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A daemon reading a tracing instance of this test's own (as by default it
/// reads its own: the heartbeat must land there, not only in the global
/// buffer) and a tracer run by `cmd` with a heartbeat every second, once
/// the daemon's /status names that tracer. Dropped in field order: the
/// tracer, the daemon, then the instance it read.
struct HeartbeatScene {
    tracer: Option<Tracer>,
    _daemon: Daemon,
    addr: SocketAddr,
    _api: Api,
    _instance: OwnInstance,
}

async fn heartbeat_scene(cmd: Command, silence_s: &str) -> HeartbeatScene {
    let instance = OwnInstance::new();
    let api = Api::start().await;
    let addr = free_addr();
    let d = daemon(&api, &instance.dir.join("trace_pipe"), addr, silence_s);
    d.wait_ready(LONG).await;
    let tracer = Tracer::start_as(cmd, &["--heartbeat-s", "1", "--instance", &instance.name]);
    let tracer_pid = tracer.pid();
    let mut s = status(addr).await;
    let end = Instant::now() + LONG;
    while s["tracer"]["pid"] != tracer_pid && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s = status(addr).await;
    }
    assert_eq!(s["tracer"]["pid"], tracer_pid, "no heartbeat of ours: {s:#}\n{}", d.log_text());
    assert_eq!(s["tracer"]["heartbeat_interval_s"], 1);
    HeartbeatScene { tracer: Some(tracer), _daemon: d, addr, _api: api, _instance: instance }
}

fn tracer_command() -> Command {
    Command::new(tracer_binary("gtp5g-tracer"))
}

/// The tracer's heartbeat lines in what it printed at start.
fn heartbeat_reports(tracer: &Tracer) -> Vec<&str> {
    tracer.report.lines().filter(|l| l.contains(" heartbeat ")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tracer_shows_as_silent_within_the_heartbeat_bound_and_no_traffic_does_not() {
    if let Some(why) = missing_live_capability() {
        return skip_unless_live(&why);
    }
    let _lock = lock_trace_pipe();
    // Silent past 3 s.
    let mut scene = heartbeat_scene(tracer_command(), "3").await;
    let addr = scene.addr;

    // No user-plane traffic for longer than the bound: still healthy.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (code, body) = get(addr, "/healthz").await.unwrap();
    assert_eq!((code, body.as_str()), (200, "ok\n"), "no traffic is not a silent tracer");
    let s = status(addr).await;
    assert_eq!(s["tracer"]["silent"], false, "{s:#}");
    assert!(s["tracer"]["seconds_since_heartbeat"].as_f64().unwrap() < 2.0, "{s:#}");
    assert!(metric(addr, "gtp5g_operator_tracer_heartbeats_total").await >= 4.0);

    // Killed (no goodbye): silent within bound + one interval.
    let killed = Instant::now();
    scene.tracer.take().unwrap().kill();
    let (code, body) = loop {
        let got = get(addr, "/healthz").await.unwrap();
        if got.0 == 503 || killed.elapsed() > LONG {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let after = killed.elapsed();
    eprintln!("tracer SIGKILLed: /healthz {code} after {} ms: {body:?}", after.as_millis());
    assert_eq!(code, 503, "{body}");
    assert!(body.starts_with("tracer silent for ") && body.contains("(bound 3 s)"), "{body}");
    assert!(after <= Duration::from_secs(3 + 1 + 1), "took {after:?}");
    let s = status(addr).await;
    assert_eq!(s["tracer"]["silent"], true, "{s:#}");
    let out = status_command(addr);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("tracer: SILENT"));
}

/// Run by `unshare -m`: tracefs read-only in the tracer's own mount
/// namespace, as `ProtectKernelTunables=yes` leaves it under the systemd
/// unit, checked (a trace_marker write fails) before the tracer is exec'd.
const READ_ONLY_TRACEFS: &str =
    "mount -o bind,ro /sys/kernel/tracing /sys/kernel/tracing || exit 97
if (echo x > /sys/kernel/tracing/trace_marker) 2>/dev/null; then
    echo 'trace_marker still writable' >&2; exit 98
fi
exec \"$0\" \"$@\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bpf_heartbeat_arrives_where_trace_marker_is_read_only() {
    if let Some(why) = missing_live_capability() {
        return skip_unless_live(&why);
    }
    let _lock = lock_trace_pipe();
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", READ_ONLY_TRACEFS])
        .arg(tracer_binary("gtp5g-tracer"));
    let scene = heartbeat_scene(cmd, "20").await;
    let tracer = scene.tracer.as_ref().unwrap();
    assert_eq!(
        heartbeat_reports(tracer),
        ["gtp5g-tracer: heartbeat every 1 s: bpf_printk from a BPF program run on demand (BPF_PROG_TEST_RUN)"],
        "{}",
        tracer.report
    );
    let heartbeats = "gtp5g_operator_tracer_heartbeats_total";
    let before = metric(scene.addr, heartbeats).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = metric(scene.addr, heartbeats).await;
    assert!(after - before >= 2.0, "heartbeats {before} -> {after} in 3 s");
    let s = status(scene.addr).await;
    assert!(s["tracer"]["seconds_since_heartbeat"].as_f64().unwrap() < 2.0, "{s:#}");
}

/// The tracer in a sandbox whose seccomp policy refuses one bpf() command,
/// BPF_PROG_TEST_RUN, and allows every other call: the kernel refuses the
/// heartbeat's test run as one without raw_tp test runs would, while the
/// probes load and attach as ever.
fn refusing_test_runs(mut cmd: Command) -> Command {
    use std::os::unix::process::CommandExt;
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xc000_00b7;
    const BPF_PROG_TEST_RUN: u32 = 10;
    // Classic BPF: load a word of struct seccomp_data, jump if equal, return.
    const LD_ABS: u16 = 0x20;
    const JEQ: u16 = 0x15;
    const RET: u16 = 0x06;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let filter = [
        op(LD_ABS, 0, 0, 4), // arch
        op(JEQ, 0, 5, AUDIT_ARCH),
        op(LD_ABS, 0, 0, 0), // syscall number
        op(JEQ, 0, 3, libc::SYS_bpf as u32),
        op(LD_ABS, 0, 0, 16), // bpf()'s command: args[0], its low half
        op(JEQ, 0, 1, BPF_PROG_TEST_RUN),
        op(RET, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        op(RET, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    // SAFETY: between fork and exec only prctl runs, on data built before
    // the fork.
    unsafe {
        cmd.pre_exec(move || {
            let prog =
                libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_falls_back_to_trace_marker_saying_so_once_where_it_cannot_be_test_run() {
    if let Some(why) = missing_live_capability() {
        return skip_unless_live(&why);
    }
    let _lock = lock_trace_pipe();
    // The daemon's instance gets the marker write only through --instance.
    let scene = heartbeat_scene(refusing_test_runs(tracer_command()), "20").await;
    let tracer = scene.tracer.as_ref().unwrap();
    assert_eq!(
        heartbeat_reports(tracer),
        ["gtp5g-tracer: heartbeat every 1 s: written to trace_marker instead (needs a writable \
          tracefs): its BPF program's test run failed: Operation not permitted"],
        "{}",
        tracer.report
    );
    let heartbeats = "gtp5g_operator_tracer_heartbeats_total";
    let before = metric(scene.addr, heartbeats).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(metric(scene.addr, heartbeats).await - before >= 2.0);
}

/// POSTs `body` to the API's /api/v1/metrics as the scheduler does.
async fn post_metrics(api: &Api, token: Option<&str>, body: &str) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{}", api.url(), gtp5g_operator::api::METRICS_PATH))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedulers_report_is_kept_by_the_local_api_and_shown_by_status() {
    let current = gtp5g_operator::local_api::Schema::Current { priority_level: 1 };
    let api = Api::start_schema(current).await;
    let token = api.request_token().await["data"]["token"].as_str().unwrap().to_owned();
    // The body the scheduler's plugin sends every second.
    let report = r#"{"usersched_last_run_at":4050881978519621,"nr_queued":7,"nr_scheduled":0,
        "nr_running":52796,"nr_online_cpus":4,"nr_user_dispatches":15001,
        "nr_kernel_dispatches":3,"nr_cancel_dispatches":0,"nr_bounce_dispatches":0,
        "nr_failed_dispatches":0,"nr_sched_congested":2}"#;

    let (code, body) = post_metrics(&api, None, report).await;
    assert_eq!((code, &body["error"]), (401, &"Authorization header is required".into()));
    let (code, body) = post_metrics(&api, Some(&token), r#"{"nr_queued":"7"}"#).await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with("Invalid request payload: "), "{body}");
    assert_eq!(api.api.scheduler_metrics(), None, "a refused report is not kept");
    let (code, body) = post_metrics(&api, Some(&token), report).await;
    assert_eq!((code, &body["success"]), (200, &true.into()), "{body}");
    assert_eq!(api.api.scheduler_metrics().unwrap().0.nr_running, 52796);

    let dir = TempDir::new().unwrap();
    let fifo = Fifo::create(&dir.path().join("trace_pipe"));
    let addr = free_addr();
    let d = daemon(&api, &fifo.path, addr, "20");
    let mut s = serde_json::Value::Null;
    let end = Instant::now() + LONG;
    while s["scheduler"].is_null() && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s = status(addr).await;
    }
    assert_eq!(s["scheduler"]["nr_queued"], 7, "{s:#}\n{}", d.log_text());
    assert_eq!(s["scheduler"]["nr_sched_congested"], 2);
    assert!(s["scheduler"]["metrics_timestamp"].is_string(), "{s:#}");
    let table = String::from_utf8(status_command(addr).stdout).unwrap();
    assert!(table.contains("scheduler: queued 7, running 52796, user dispatches 15001"), "{table}");
}

/// Every metric name in `text` (a dashboard, or a scrape's sample lines).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("gtp5g_operator_") {
        let name: String =
            rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_names_a_metric_the_daemon_exports() {
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/gtp5g-operator.json"),
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let wanted = metric_names(&dashboard);
    assert!(wanted.len() >= 10, "{wanted:?}");
    for panel in json["panels"].as_array().unwrap() {
        assert!(!panel["targets"].as_array().unwrap().is_empty(), "{panel}");
    }

    // A daemon with a target, a heartbeat and an accepted list: every
    // family has a sample.
    let dir = TempDir::new().unwrap();
    let mut fifo = Fifo::create(&dir.path().join("trace_pipe"));
    let target = Target::spawn("nr-gnb");
    let api = Api::start().await;
    let addr = free_addr();
    let _d = daemon(&api, &fifo.path, addr, "20");
    fifo.write(&target.line());
    fifo.write("  gtp5g-tracer-9 [000] ..... 1.0: tracing_mark_write: gtp5g-tracer heartbeat: pid=9 interval_s=5\n");
    let mut exported = Default::default();
    let end = Instant::now() + LONG;
    while Instant::now() < end {
        let (_, text) = get(addr, "/metrics").await.unwrap_or_default();
        let samples: String =
            text.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
        exported = metric_names(&samples);
        if wanted.is_subset(&exported) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing: Vec<&String> = wanted.difference(&exported).collect();
    assert!(missing.is_empty(), "the dashboard queries {missing:?}, not exported:\n{exported:?}");
}
