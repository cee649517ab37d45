//! The daemon owns the boost list (issue 10): the real binary, the
//! project's local API on 127.0.0.1 and real processes. Each test prints
//! what it measured; the bounds are generous (a loaded 2-core machine).

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(10);

fn holds(pid: u32) -> impl Fn(&[i64]) -> bool {
    move |pids| pids.contains(&i64::from(pid))
}

fn lacks(pid: u32) -> impl Fn(&[i64]) -> bool {
    move |pids| !pids.contains(&i64::from(pid))
}

struct Scene {
    _dir: TempDir,
    fifo: Fifo,
    api: Api,
}

async fn scene() -> Scene {
    let dir = TempDir::new().unwrap();
    let fifo = Fifo::create(&dir.path().join("trace_pipe"));
    Scene { _dir: dir, fifo, api: Api::start().await }
}

impl Scene {
    fn command(&self) -> Command {
        daemon_command(&self.api.url(), &self.api.key_path(), &self.fifo.path)
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Kills a traced target `trials` times and measures the time from the
/// kill until the API no longer holds it.
async fn exit_to_removed(pidfd: bool, trials: usize, bound: Duration) {
    let mut s = scene().await;
    let mut cmd = s.command();
    cmd.env("GTP5G_OPERATOR__TARGETS__PIDFD", pidfd.to_string());
    let _d = Daemon::spawn(cmd);
    let mut took = Vec::new();
    for _ in 0..trials {
        let mut target = Target::spawn("nr-gnb");
        s.fifo.write(&target.line());
        s.api.until("tracked", LONG, holds(target.pid())).await;
        let killed = Instant::now();
        target.kill();
        s.api.until("removed", bound, lacks(target.pid())).await;
        took.push(killed.elapsed());
    }
    took.sort();
    eprintln!(
        "exit -> removed at the API, pidfd={pidfd}, {trials} trials: p50 {} ms, p99 {} ms, max {} ms \
         (debounce 20 ms)",
        percentile(&took, 50).as_millis(),
        percentile(&took, 99).as_millis(),
        took[took.len() - 1].as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exited_target_is_removed_at_once_through_its_pidfd() {
    exit_to_removed(true, 20, Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pidfds_the_proc_poll_removes_an_exited_target() {
    exit_to_removed(false, 5, Duration::from_secs(4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreaped_zombie_is_not_boosted() {
    let mut s = scene().await;
    let _d = Daemon::spawn(s.command());
    let target = Target::spawn("nr-ue");
    s.fifo.write(&target.line());
    s.api.until("tracked", LONG, holds(target.pid())).await;
    // SAFETY: signalling our own child; it stays a zombie until the Drop.
    unsafe { libc::kill(target.pid() as i32, libc::SIGKILL) };
    s.api.until("zombie removed", Duration::from_secs(3), lacks(target.pid())).await;
    let state = std::fs::read_to_string(format!("/proc/{}/stat", target.pid())).unwrap();
    assert!(state.contains(") Z "), "still a zombie while the API dropped it: {state}");
}

/// A thread of this test process that lives until `stop` is sent.
fn parked_thread() -> (u32, std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() } as u32).unwrap();
        let _ = stop_rx.recv();
    });
    (tid_rx.recv().unwrap(), stop_tx, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_created_and_exiting_in_a_target_show_within_a_second() {
    // This very process is the target: it can start and end threads on
    // demand, which a copied /bin/sleep cannot.
    let me = std::process::id();
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap().trim().to_string();
    let mut s = scene().await;
    let mut cmd = s.command();
    cmd.env("GTP5G_OPERATOR__TARGETS__NAMES", &comm);
    let _d = Daemon::spawn(cmd);
    s.fifo.write(&trace_line(&comm, me, me));
    s.api.until("process tracked", LONG, holds(me)).await;
    let (tid, stop, handle) = parked_thread();
    let started = s.api.until("new thread at the API", Duration::from_secs(3), holds(tid)).await;
    stop.send(()).unwrap();
    handle.join().unwrap();
    let ended = s.api.until("exited thread gone", Duration::from_secs(3), lacks(tid)).await;
    // The tracker re-reads /proc every 0.5 s; debounce 20 ms here.
    assert!(started < Duration::from_secs(3) && ended < Duration::from_secs(3));
}

/// The pids in the state file; none before the daemon first writes it
/// (that happens just after it publishes, so a test can get there first).
fn saved_pids(dir: &Path) -> Vec<u64> {
    let Ok(text) = std::fs::read(dir.join("tracked.json")) else { return Vec::new() };
    let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let mut pids: Vec<u64> =
        v["processes"].as_array().unwrap().iter().map(|p| p["pid"].as_u64().unwrap()).collect();
    pids.sort_unstable();
    pids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_boosts_idle_live_targets_again_and_not_dead_ones() {
    let mut s = scene().await;
    let state = TempDir::new().unwrap();
    let mut idle = Target::spawn("nr-gnb");
    let mut dies = Target::spawn("nr-ue");
    let mut cmd = s.command();
    cmd.env(STATE_DIR_ENV, state.path());
    let mut d = Daemon::spawn(cmd);
    s.fifo.write(&format!("{}{}", idle.line(), dies.line()));
    let both = [i64::from(idle.pid()), i64::from(dies.pid())];
    s.api.until("both tracked", LONG, |p| both.iter().all(|x| p.contains(x))).await;
    let mut want = vec![u64::from(idle.pid()), u64::from(dies.pid())];
    want.sort_unstable();
    assert!(eventually(LONG, || saved_pids(state.path()) == want).await, "state file");

    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(LONG).await.expect("stopped").success());
    dies.kill();
    // A new API process holds nothing: what follows comes from the state
    // file alone, since no trace line arrives for the idle target.
    s.api.restart().await;
    let mut cmd = s.command();
    cmd.env(STATE_DIR_ENV, state.path());
    let started = Instant::now();
    let d = Daemon::spawn(cmd);
    let only_idle = [i64::from(idle.pid())];
    s.api.until("restored", LONG, |p| p == only_idle).await;
    eprintln!(
        "restart -> idle live target boosted again: {} ms from start",
        started.elapsed().as_millis()
    );
    assert!(d.wait_log("restored=1", LONG).await, "{}", d.log_text());
    assert!(eventually(LONG, || saved_pids(state.path()) == [u64::from(idle.pid())]).await);
    idle.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_file_is_logged_and_replaced() {
    let mut s = scene().await;
    let state = TempDir::new().unwrap();
    std::fs::write(state.path().join("tracked.json"), "{not json").unwrap();
    let target = Target::spawn("nr-gnb");
    let mut cmd = s.command();
    cmd.env(STATE_DIR_ENV, state.path());
    let d = Daemon::spawn(cmd);
    s.fifo.write(&target.line());
    s.api.until("tracked", LONG, holds(target.pid())).await;
    assert!(d.log_text().contains("ignoring the state file"), "{}", d.log_text());
    assert!(d.log_text().contains("not a tracked-process list"), "{}", d.log_text());
    assert!(eventually(LONG, || saved_pids(state.path()) == [u64::from(target.pid())]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_list_is_replaced_at_start_even_with_nothing_to_boost() {
    let s = scene().await;
    s.api.post_as_other_client(424242).await;
    assert_eq!(s.api.pids(), vec![424242]);
    let started = Instant::now();
    let _d = Daemon::spawn(s.command());
    s.api.until("stale list replaced", LONG, |p| p.is_empty()).await;
    eprintln!("stale list replaced: {} ms from start", started.elapsed().as_millis());
}

async fn stop_with(on_stop: &str) -> (Api, u32) {
    let mut s = scene().await;
    let target = Target::spawn("nr-gnb");
    let mut cmd = s.command();
    cmd.env("GTP5G_OPERATOR__STRATEGY__ON_STOP", on_stop);
    let mut d = Daemon::spawn(cmd);
    s.fifo.write(&target.line());
    s.api.until("tracked", LONG, holds(target.pid())).await;
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(LONG).await.expect("stopped");
    assert!(status.success(), "{status:?}");
    (s.api, target.pid())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_stop_keep_leaves_the_boosts_and_clear_removes_them() {
    let (api, pid) = stop_with("keep").await;
    assert_eq!(api.pids(), vec![i64::from(pid)], "keep");
    let (api, _) = stop_with("clear").await;
    assert_eq!(api.pids(), Vec::<i64>::new(), "clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_proc_checks_entries_expire_after_the_ttl() {
    let mut s = scene().await;
    let mut cmd = s.command();
    cmd.env("GTP5G_OPERATOR__TARGETS__CHECK_PROC", "false")
        .env("GTP5G_OPERATOR__TARGETS__TTL_S", "5");
    let _d = Daemon::spawn(cmd);
    // Pids of no process here: only the trace speaks for them.
    let seen = Instant::now();
    s.fifo.write(&format!(
        "{}{}",
        trace_line("nr-gnb", 900001, 900001),
        trace_line("nr-ue", 900002, 900002)
    ));
    s.api.until("both tracked", LONG, |p| p == [900001, 900002]).await;
    // One keeps appearing in the trace (as the tracer re-prints a busy
    // thread each refresh period); the other goes quiet.
    let mut fifo = s.fifo;
    let keep_alive = tokio::spawn(async move {
        loop {
            fifo.write(&trace_line("nr-ue", 900002, 900002));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    s.api.until("quiet entry expired", Duration::from_secs(15), |p| p == [900002]).await;
    let after = seen.elapsed();
    eprintln!("expired {} ms after its last line (ttl 5 s)", after.as_millis());
    assert!(after >= Duration::from_secs(5), "expired before the ttl: {after:?}");
    keep_alive.abort();
}

#[test]
fn a_scheduler_line_about_the_header_task_takes_the_record_tgid() {
    let dir = TempDir::new().unwrap();
    let trace = dir.path().join("t.trace");
    std::fs::write(
        &trace,
        "          nr-gnb-4781    (   4656) [001] d..31  1.000000: bpf_trace_printk: stop: pid=4781 (nr-gnb)\n\
                   <idle>-0     (-------) [002] d.h51  1.000001: bpf_trace_printk: enqueue: pid=5000 (nr-ue)\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["replay", "--config", "/dev/null", "--json"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let processes = &report["processes"];
    assert_eq!(processes[0]["pid"], 4656, "{report}");
    assert_eq!(processes[0]["threads"], serde_json::json!([4781]));
    // The idle task's line says nothing of nr-ue's group.
    assert_eq!(processes[1]["pid"], serde_json::Value::Null, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_line_before_a_reopen_is_not_glued_to_the_next_one() {
    let mut s = scene().await;
    let d = Daemon::spawn(s.command());
    let target = Target::spawn("nr-gnb");
    // Once nothing holds the FIFO open its data is gone: wait for the reader.
    d.wait_ready(LONG).await;
    // The writer leaves mid-line; the daemon reopens the FIFO for the next.
    s.fifo
        .write("          nr-ue-1     [001] b..2.  1.0: bpf_trace_printk: tp/net_dev_queue: PID=1");
    s.fifo.close_writer();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.fifo.write(&target.line());
    s.api.until("the new source's first line counted", LONG, holds(target.pid())).await;
}
