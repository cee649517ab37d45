//! Hostile neighbours of the tracker (issue 18): a process that names itself
//! nr-gnb, another user's process, a thread storm under a flood of lines, a
//! leader that ended with `pthread_exit`, a state directory that refuses
//! writes, a source that never runs dry, a hung-up tracer. Real parts: the
//! daemon binary (or `daemon::run` in process), the local API, real
//! processes, FIFOs and, where the traffic matters, the netdev tracer and
//! the kernel's trace_pipe. Each test prints what it measured.

mod common;

use common::tracer::{spawn_piped, Tracer};
use common::*;
use gtp5g_operator::signal::Control;
use gtp5g_operator::source::{AtEnd, Event, Reader};
use gtp5g_operator::stats::Stats;
use std::io::{BufRead, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(10);

fn holds(pid: u32) -> impl Fn(&[i64]) -> bool {
    move |pids| pids.contains(&i64::from(pid))
}

fn lacks(pid: u32) -> impl Fn(&[i64]) -> bool {
    move |pids| !pids.contains(&i64::from(pid))
}

/// A child killed and reaped when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// gtpu-traffic run from `exe`: it renames itself `nr-gnb` (prctl
/// PR_SET_NAME) and sends real GTP-U to 127.0.0.1:2152 every 20 ms from two
/// threads. Returns the process and its ids (pid first).
fn gtpu_sender(exe: &Path) -> (Proc, Vec<u32>) {
    let (child, mut out) = spawn_piped(Command::new(exe).args([
        "--name",
        "nr-gnb",
        "--threads",
        "2",
        "--interval-ms",
        "20",
    ]));
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let mut ids = vec![v["pid"].as_u64().unwrap() as u32];
    ids.extend(v["tids"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32));
    (Proc(child), ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_process_outside_exe_paths_is_never_boosted_and_takes_no_slot() {
    if let Some(why) = missing_live_capability() {
        return skip_unless_live(&why);
    }
    let _lock = lock_trace_pipe();
    let api = Api::start().await;
    let pipe = gtp5g_operator::source::locate(None, false).unwrap();
    let _tracer = Tracer::start(&[]);
    // The real one: gtpu-traffic installed where UERANSIM's build puts
    // nr-gnb. The impostor: the same program from anywhere else.
    let install = TempDir::new().unwrap();
    let build = install.path().join("UERANSIM/build");
    std::fs::create_dir_all(&build).unwrap();
    let real_exe = build.join("nr-gnb");
    std::fs::copy(tracer_binary("gtpu-traffic"), &real_exe).unwrap();
    let mut cfg = config(&api, &pipe, true);
    cfg.targets.exe_paths = vec![PathBuf::from(format!("{}/", build.display()))];
    cfg.targets.max_processes = 1;
    let stats = Arc::new(Stats::default());
    let control = Control::default();
    let daemon = {
        let (cfg, stats, control) = (cfg.clone(), stats.clone(), control.clone());
        tokio::spawn(async move {
            gtp5g_operator::daemon::run(cfg.clone(), stats, move || Ok(cfg.clone()), control, ())
                .await
                .unwrap()
        })
    };
    let gtpu_before = stats.counts().gtpu_records;
    let (_impostor, impostor_ids) = gtpu_sender(&tracer_binary("gtpu-traffic"));
    let seen = eventually(LONG, || stats.counts().gtpu_records >= gtpu_before + 20).await;
    assert!(seen, "the impostor's GTP-U never reached the daemon");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let gtpu_seen = stats.counts().gtpu_records - gtpu_before;
    assert_eq!(stats.tracked_processes.load(Relaxed), 0, "the impostor is tracked");
    assert_eq!(stats.tracker_dropped.load(Relaxed), 0, "the impostor was weighed for a slot");

    // The only slot is still free for the real nr-gnb.
    let (_real, real_ids) = gtpu_sender(&real_exe);
    let took = api.until("the real nr-gnb boosted", LONG, holds(real_ids[0])).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = api.pids();
    for id in &real_ids {
        assert!(held.contains(&i64::from(*id)), "real id {id} missing from {held:?}");
    }
    assert!(!impostor_ids.iter().any(|id| held.contains(&i64::from(*id))), "{held:?}");
    eprintln!(
        "impostor {impostor_ids:?} (exe {}): {gtpu_seen} GTP-U records in 2 s, never tracked, \
         no slot taken; real nr-gnb {real_ids:?} at the API {} ms after it started",
        tracer_binary("gtpu-traffic").display(),
        took.as_millis()
    );
    control.stop.cancel();
    tokio::time::timeout(LONG, daemon).await.unwrap().unwrap();
}

/// /bin/sleep copied as `nr-gnb` into a directory anyone may enter, started
/// as `uid`.
fn sleeper_as(dir: &Path, uid: u32) -> Proc {
    let sub = dir.join(uid.to_string());
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = sub.join("nr-gnb");
    std::fs::copy("/bin/sleep", &exe).unwrap();
    std::os::unix::process::CommandExt::uid(&mut Command::new(&exe), uid)
        .arg("600")
        .spawn()
        .map(Proc)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_process_outside_uids_is_not_boosted() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip_unless_live("needs root to start a process as another user");
    }
    let dir = TempDir::new().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut fifo = Fifo::create(&dir.path().join("trace_pipe"));
    let api = Api::start().await;
    let mut cmd = daemon_command(&api.url(), &api.key_path(), &fifo.path);
    cmd.env("GTP5G_OPERATOR__TARGETS__UIDS", "0")
        .env("GTP5G_OPERATOR__TARGETS__MAX_PROCESSES", "1");
    let _d = Daemon::spawn(cmd);
    let nobody = sleeper_as(dir.path(), 65534);
    let root = sleeper_as(dir.path(), 0);
    let (nobody_pid, root_pid) = (nobody.0.id(), root.0.id());
    // In this order through one FIFO: by the time root's line is tracked,
    // nobody's was weighed, and the one slot was left for root.
    fifo.write(&trace_line("nr-gnb", nobody_pid, nobody_pid));
    fifo.write(&trace_line("nr-gnb", root_pid, root_pid));
    api.until("root's nr-gnb boosted", LONG, holds(root_pid)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(api.pids(), vec![i64::from(root_pid)], "uid 65534's pid is {nobody_pid}");
}

/// This process's name, as /proc (and a trace line) shows it.
fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm").unwrap().trim().to_string()
}

/// Starts `per_s` short threads a second in this process until `stop`; each
/// hands the trace line the tracer would print for it to `lines` and ends.
/// Returns how many were started.
fn thread_storm(
    per_s: u64,
    stop: Arc<AtomicBool>,
    lines: mpsc::Sender<String>,
) -> std::thread::JoinHandle<u64> {
    let (comm, me) = (own_comm(), std::process::id());
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut n = 0u64;
        while !stop.load(Relaxed) {
            let due = started.elapsed().as_millis() as u64 * per_s / 1000;
            while n < due {
                let (tx, comm) = (lines.clone(), comm.clone());
                let spawned = std::thread::Builder::new().spawn(move || {
                    // SAFETY: gettid has no preconditions.
                    let tid = unsafe { libc::gettid() } as u32;
                    tx.send(trace_line(&comm, tid, me))
                });
                if spawned.is_ok() {
                    n += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        n
    })
}

/// Writes into the FIFO, never blocking, as fast as the daemon reads: the
/// lines handed to `lines` (one for every storm thread, as the tracer
/// prints a new thread), and in between 64 KiB blocks of lines about this
/// process's main thread (a busy user plane, every packet printed).
fn flood(
    fifo: &Path,
    me: u32,
    stop: Arc<AtomicBool>,
    lines: mpsc::Receiver<String>,
    written: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let mut w = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .unwrap();
    let comm = own_comm();
    let line = trace_line(&comm, me, me);
    let block = line.repeat(65536 / line.len());
    std::thread::spawn(move || {
        while !stop.load(Relaxed) {
            let mut chunk: String = lines.try_iter().collect();
            chunk.push_str(&block);
            let mut rest = chunk.as_bytes();
            while !rest.is_empty() && !stop.load(Relaxed) {
                match w.write(rest) {
                    Ok(n) => {
                        rest = &rest[n..];
                        written.fetch_add(n as u64, Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_micros(200))
                    }
                    Err(e) => panic!("writing the FIFO: {e}"),
                }
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_storm_under_a_line_flood_delays_neither_exits_nor_sigterm() {
    let me = std::process::id();
    let dir = TempDir::new().unwrap();
    let mut fifo = Fifo::create(&dir.path().join("trace_pipe"));
    let api = Api::start().await;
    let mut cmd = daemon_command(&api.url(), &api.key_path(), &fifo.path);
    cmd.env("GTP5G_OPERATOR__TARGETS__NAMES", format!("nr-gnb,{}", own_comm()));
    let mut d = Daemon::spawn(cmd);
    fifo.write(&trace_line(&own_comm(), me, me));
    api.until("this process tracked", LONG, holds(me)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let (line_tx, line_rx) = mpsc::channel();
    let storm = thread_storm(5000, stop.clone(), line_tx.clone());
    let writer = flood(&fifo.path, me, stop.clone(), line_rx, written.clone());
    let storm_start = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut removal = Vec::new();
    for _ in 0..3 {
        let mut target = Target::spawn("nr-gnb");
        line_tx.send(target.line()).unwrap();
        api.until("target tracked under the storm", LONG, holds(target.pid())).await;
        let killed = Instant::now();
        target.kill();
        api.until("exited target removed under the storm", LONG, lacks(target.pid())).await;
        removal.push(killed.elapsed());
    }
    let asked = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(10)).await;
    let sigterm = asked.elapsed();
    stop.store(true, Relaxed);
    let threads = storm.join().unwrap();
    writer.join().unwrap();
    let secs = storm_start.elapsed().as_secs_f64();
    eprintln!(
        "storm: {:.0} threads/s, flood {:.0} MB/s for {secs:.1} s; exit -> removed {:?} ms; \
         SIGTERM -> exit {} ms ({status:?})",
        threads as f64 / secs,
        written.load(Relaxed) as f64 / secs / 1e6,
        removal.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
        sigterm.as_millis()
    );
    assert!(threads as f64 / secs >= 4000.0, "the storm fell short: {threads} in {secs:.1} s");
    assert!(removal.iter().all(|d| *d < Duration::from_secs(1)), "{removal:?}");
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(sigterm < Duration::from_secs(3), "SIGTERM took {sigterm:?}");
}

/// A C program that names itself nr-gnb, starts a thread that lives on,
/// then ends its main thread with `pthread_exit` once its stdin closes.
const LEADER_EXITS: &str = r#"
#include <pthread.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>
static void *live(void *arg) { (void)arg; for (;;) pause(); return NULL; }
int main(void) {
    pthread_t t;
    char c;
    prctl(PR_SET_NAME, "nr-gnb", 0, 0, 0);
    pthread_create(&t, NULL, live, NULL);
    printf("ready\n");
    fflush(stdout);
    while (read(0, &c, 1) > 0)
        ;
    pthread_exit(NULL);
}
"#;

fn build_leader_exits(dir: &Path) -> PathBuf {
    let src = dir.join("leader-exits.c");
    let exe = dir.join("leader-exits");
    std::fs::write(&src, LEADER_EXITS).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let ok = Command::new(&cc).arg("-pthread").arg(&src).arg("-o").arg(&exe).status();
    assert!(ok.is_ok_and(|s| s.success()), "{cc} could not build {}", src.display());
    exe
}

fn state_of(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()).unwrap_or('?')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_called_pthread_exit_leaves_its_live_process_boosted() {
    let dir = TempDir::new().unwrap();
    let exe = build_leader_exits(dir.path());
    let mut fifo = Fifo::create(&dir.path().join("trace_pipe"));
    let api = Api::start().await;
    let _d = Daemon::spawn(daemon_command(&api.url(), &api.key_path(), &fifo.path));
    let mut child =
        Command::new(&exe).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    out.read_line(&mut ready).unwrap();
    let stdin = child.stdin.take().unwrap();
    let process = Proc(child);
    let pid = process.0.id();
    let tasks: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect();
    let thread = *tasks.iter().find(|&&t| t != pid).unwrap();
    fifo.write(&trace_line("nr-gnb", thread, pid));
    api.until("process and thread boosted", LONG, |p| holds(pid)(p) && holds(thread)(p)).await;

    drop(stdin);
    assert!(eventually(LONG, || state_of(pid) == 'Z').await, "the leader never ended");
    // Three of the tracker's 0.5 s re-reads of /proc.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let held = api.pids();
    assert!(holds(thread)(&held) && holds(pid)(&held), "dropped while running: {held:?}");
    eprintln!("leader {pid} in state Z, thread {thread} running: still boosted {held:?}");

    // When the last thread goes, the process has exited: its pidfd says so.
    drop(process);
    let took = api.until("the ended process removed", Duration::from_secs(3), lacks(pid)).await;
    assert!(lacks(thread)(&api.pids()));
    eprintln!("removed {} ms after the kill", took.as_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_state_save_is_retried_until_it_succeeds() {
    let dir = TempDir::new().unwrap();
    let mut fifo = Fifo::create(&dir.path().join("trace_pipe"));
    let api = Api::start().await;
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    // Where the temporary goes, a directory: every save fails (root ignores
    // permissions, so a mode would not do).
    let blocker = state.join("tracked.json.tmp");
    std::fs::create_dir(&blocker).unwrap();
    let mut cmd = daemon_command(&api.url(), &api.key_path(), &fifo.path);
    cmd.env(STATE_DIR_ENV, &state);
    let d = Daemon::spawn(cmd);
    let target = Target::spawn("nr-gnb");
    fifo.write(&target.line());
    api.until("tracked", LONG, holds(target.pid())).await;
    assert!(d.wait_log("cannot save the tracked processes", LONG).await, "{}", d.log_text());
    assert!(!state.join("tracked.json").exists());

    // The set does not change again; only a retry can write it now.
    std::fs::remove_dir(&blocker).unwrap();
    let cleared = Instant::now();
    let saved = eventually(Duration::from_secs(3), || {
        std::fs::read_to_string(state.join("tracked.json"))
            .is_ok_and(|t| t.contains(&format!("\"pid\": {}", target.pid())))
    })
    .await;
    assert!(saved, "tracked.json not written 3 s after the fault cleared: {}", d.log_text());
    eprintln!("saved {} ms after the fault cleared", cleared.elapsed().as_millis());
    assert_eq!(d.count("cannot save the tracked processes"), 1, "said once, not per retry");
}

#[test]
fn the_reader_stops_on_a_source_that_never_runs_dry() {
    // Sparse: a terabyte of zeros, read as fast as the disk cache allows, so
    // no read ever finds it at its end.
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(1 << 40).unwrap();
    let path = f.path().to_path_buf();
    let (tx, rx) = mpsc::channel();
    let reader = Reader::spawn(
        move || Ok(path.clone()),
        AtEnd::Follow,
        move |ev| {
            if let Event::Data(_) = ev {
                let _ = tx.send(());
            }
        },
    )
    .unwrap();
    rx.recv_timeout(LONG).expect("no data");
    let (done_tx, done_rx) = mpsc::channel();
    let asked = Instant::now();
    std::thread::spawn(move || {
        reader.stop_and_join();
        let _ = done_tx.send(());
    });
    assert!(done_rx.recv_timeout(Duration::from_secs(3)).is_ok(), "still reading 3 s after stop");
    eprintln!("reader stopped {} ms after the stop", asked.elapsed().as_millis());
}

#[test]
fn the_tracer_fails_on_sighup_so_that_restart_on_failure_restarts_it() {
    if let Some(why) = missing_live_capability() {
        return skip_unless_live(&why);
    }
    let _lock = lock_trace_pipe();
    let status = Tracer::start(&[]).end_with(libc::SIGHUP);
    assert_eq!(status.code(), Some(128 + libc::SIGHUP), "{status:?}");
    let status = Tracer::start(&[]).end_with(libc::SIGTERM);
    assert!(status.success(), "an asked-for stop: {status:?}");
}

#[test]
fn local_api_refuses_token_hours_that_would_overflow() {
    for hours in ["18446744073709551615", "0", "8761"] {
        let out = Command::new(BIN).args(["local-api", "--token-hours", hours]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{hours}: {err}");
        assert!(err.contains("--token-hours") && err.contains("1..=8760"), "{hours}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exe_paths_from_a_reload_drop_a_tracked_process_they_leave_out() {
    let dir = TempDir::new().unwrap();
    let mut fifo = Fifo::create(&dir.path().join("trace_pipe"));
    let api = Api::start().await;
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let cmd = daemon_command_with_config(&api.url(), &api.key_path(), &fifo.path, &config);
    let d = Daemon::spawn(cmd);
    let target = Target::spawn("nr-gnb");
    fifo.write(&target.line());
    api.until("tracked (exe_paths empty: any)", LONG, holds(target.pid())).await;
    std::fs::write(&config, "[targets]\nexe_paths = [\"/opt/UERANSIM/build/\"]\n").unwrap();
    let sent = Instant::now();
    d.signal(libc::SIGHUP);
    api.until("dropped after the reload", Duration::from_secs(3), lacks(target.pid())).await;
    eprintln!("SIGHUP -> dropped at the API: {} ms", sent.elapsed().as_millis());
}
