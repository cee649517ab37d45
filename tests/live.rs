//! Live end to end, no fakes in the data path: the netdev-mode BPF tracer,
//! processes renamed nr-gnb / nr-ue sending real GTP-U on loopback, the real
//! trace_pipe, the daemon with /proc checks, and the local API.
//! Needs root, tracefs and BPF; CI runs as root.

mod common;

use common::*;
use gtp5g_operator::api::Strategy;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child killed (and reaped) when dropped, so a failing assertion leaves
/// nothing running.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn start_tracer() -> Proc {
    let mut child = Command::new(tracer_binary("gtp5g-tracer"))
        .args(["--mode", "netdev"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start gtp5g-tracer");
    let out = BufReader::new(child.stdout.take().unwrap());
    for line in out.lines() {
        let line = line.unwrap();
        eprintln!("tracer: {line}");
        if line.contains("probes attached") {
            return Proc(child);
        }
    }
    let status = child.wait();
    panic!("gtp5g-tracer exited before attaching: {status:?}");
}

struct Traffic {
    proc: Proc,
    pid: u32,
    tids: Vec<u32>,
}

fn start_traffic(name: &str, threads: u32) -> Traffic {
    let mut child = Command::new(tracer_binary("gtpu-traffic"))
        .args([
            "--name",
            name,
            "--threads",
            &threads.to_string(),
            "--interval-ms",
            "50",
            "--linger",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start gtpu-traffic");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    let tids = v["tids"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect();
    Traffic { pid: v["pid"].as_u64().unwrap() as u32, tids, proc: Proc(child) }
}

/// Thread ids of nr-gnb / nr-ue processes that were running before the test
/// (a developer's UERANSIM, a benchmark): the daemon rightly boosts them
/// too when they send GTP-U, so the comparison leaves them out.
fn foreign_target_ids() -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if matches!(comm.trim_end(), "nr-gnb" | "nr-ue") {
            out.push(pid);
            let tasks =
                std::fs::read_dir(entry.path().join("task")).into_iter().flatten().flatten();
            out.extend(tasks.filter_map(|t| t.file_name().to_string_lossy().parse::<u32>().ok()));
        }
    }
    out
}

fn strategies_for(ids: &[u32]) -> Vec<Strategy> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.iter()
        .map(|&pid| Strategy {
            priority: true.into(),
            execution_time: 20_000_000,
            pid: pid.into(),
            selectors: vec![],
            command_regex: String::new(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_gtpu_traffic_boosts_exactly_nr_gnb_and_nr_ue_threads() {
    if let Some(why) = missing_live_capability() {
        return skip_unless_live(&why);
    }
    let _lock = lock_trace_pipe();
    let mut api = Api::start().await;
    let pipe = gtp5g_operator::source::locate(None, false).unwrap();
    let _tracer = start_tracer();
    let foreign = foreign_target_ids();
    if !foreign.is_empty() {
        eprintln!(
            "note: nr-gnb / nr-ue tasks already running, left out of the comparison: {foreign:?}"
        );
    }
    let (tx, daemon) = start_daemon(config(&api, &pipe, true));

    let started = std::time::Instant::now();
    let gnb = start_traffic("nr-gnb", 3);
    let ue = start_traffic("nr-ue", 2);
    let bystander = start_traffic("bystander", 1);
    // Every thread of each target process, main thread included, and
    // nothing else: not this test (their parent), not the bystander.
    let mut want: Vec<u32> = vec![gnb.pid, ue.pid];
    want.extend(&gnb.tids);
    want.extend(&ue.tids);
    // Generous bounds for a loaded 2-core machine; the figures are printed.
    api.expect_ignoring(&strategies_for(&want), &foreign, Duration::from_secs(10)).await;
    eprintln!("API held all {} ids {:?} after the traffic started", want.len(), started.elapsed());
    let held: Vec<i64> = api.api.strategies().unwrap().iter().map(|s| s.pid).collect();
    assert!(!held.contains(&(std::process::id() as i64)));
    assert!(!held.contains(&(bystander.pid as i64)));

    // The nr-ue process exits: it is dropped at the next refresh (interval 1 s).
    drop(ue.proc);
    let exited = std::time::Instant::now();
    let mut still: Vec<u32> = vec![gnb.pid];
    still.extend(&gnb.tids);
    api.expect_ignoring(&strategies_for(&still), &foreign, Duration::from_secs(6)).await;
    eprintln!("nr-ue dropped {:?} after its exit (interval 1 s)", exited.elapsed());

    stop_daemon(tx, daemon).await;
    drop(gnb.proc);
    drop(bystander.proc);
    api.stop().await;
}
