//! Live end to end, no fakes in the data path: the netdev-mode BPF tracer,
//! ran-sim's nr-gnb / nr-ue processes sending real RLS and GTP-U on
//! loopback, the real trace_pipe, the daemon with /proc checks, and the
//! local API.
//! Needs root, tracefs and BPF; CI runs as root.

mod common;

use common::tracer::{spawn_piped, Tracer};
use common::*;
use gtp5g_operator::api::Strategy;
use gtp5g_operator::signal::Control;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command};
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

/// One process ran-sim reported before sending anything.
#[derive(Debug, Clone)]
struct SimProcess {
    role: String,
    idle: bool,
    pid: u32,
    tids: Vec<u32>,
}

impl SimProcess {
    fn parse(line: &str) -> SimProcess {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("ran-sim printed {line:?}: {e}"));
        let id = |v: &serde_json::Value| v.as_u64().unwrap() as u32;
        SimProcess {
            role: v["role"].as_str().unwrap().to_owned(),
            idle: v["idle"].as_bool().unwrap_or(false),
            pid: id(&v["pid"]),
            tids: v["tids"].as_array().unwrap().iter().map(id).collect(),
        }
    }

    /// The process id and every thread id (the main thread's is the pid).
    fn ids(&self) -> Vec<u32> {
        let mut ids = self.tids.clone();
        ids.push(self.pid);
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// ran-sim (tracer-c/ran-sim.c), the UERANSIM stand-in: nr-gnb, nr-ue
/// processes and the UPF echo in the ran-sim process itself.
struct RanSim {
    proc: Proc,
    out: BufReader<ChildStdout>,
    processes: Vec<SimProcess>,
}

impl RanSim {
    fn start(ues: u32, idle_ues: u32, extra: &[&str]) -> RanSim {
        let (child, mut out) = spawn_piped(
            Command::new(tracer_binary("ran-sim"))
                .args(["--ues", &ues.to_string(), "--idle-ues", &idle_ues.to_string()])
                .args(["--rate", "20"])
                .args(extra),
        );
        let proc = Proc(child);
        // upf, gnb, then one line per UE.
        let processes = (0..2 + ues + idle_ues)
            .map(|_| {
                let mut line = String::new();
                out.read_line(&mut line).unwrap();
                SimProcess::parse(&line)
            })
            .collect();
        RanSim { proc, out, processes }
    }

    fn process(&self, role: &str, idle: bool) -> SimProcess {
        let found = self.processes.iter().find(|p| p.role == role && p.idle == idle);
        found.unwrap_or_else(|| panic!("no {role} (idle {idle}) in {:?}", self.processes)).clone()
    }

    /// Stops it and returns its summary line's counters.
    fn stop(mut self) -> serde_json::Value {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.proc.0.id() as i32, libc::SIGTERM) };
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.out, &mut rest).unwrap();
        let last = rest.lines().last().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("ran-sim ended with {rest:?}: {e}"));
        assert_eq!(v["role"], "summary", "{rest}");
        v
    }
}

fn kill_process(pid: u32) {
    // SAFETY: signalling a process this test started (through ran-sim).
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
}

/// Thread ids of nr-gnb / nr-ue processes that were running before the test
/// (a developer's UERANSIM, a benchmark): the daemon rightly boosts them
/// too when they send, so the comparisons leave them out.
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

/// What a live test runs against, started in this order: the trace_pipe
/// lock, the local API, the netdev tracer, and the in-process daemon
/// checking /proc.
struct Live {
    _lock: std::fs::File,
    api: Api,
    _tracer: Tracer,
    /// Left out of every comparison (`foreign_target_ids`).
    foreign: Vec<u32>,
    daemon: (Control, tokio::task::JoinHandle<()>),
}

impl Live {
    async fn start() -> Live {
        let lock = lock_trace_pipe();
        let api = Api::start().await;
        let pipe = gtp5g_operator::source::locate(None, false).unwrap();
        let tracer = Tracer::start(&[]);
        let foreign = foreign_target_ids();
        if !foreign.is_empty() {
            eprintln!("note: nr-gnb / nr-ue tasks already running, left out: {foreign:?}");
        }
        let daemon = start_daemon(config(&api, &pipe, true));
        Live { _lock: lock, api, _tracer: tracer, foreign, daemon }
    }

    /// Waits until the API holds exactly `ids` (besides foreign ones).
    async fn expect(&self, ids: &[u32], within: Duration) {
        self.api.expect_ignoring(&strategies_for(ids), &self.foreign, within).await
    }

    /// What the API holds, without foreign ids, sorted.
    fn held(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .api
            .pids()
            .into_iter()
            .map(|p| p as u32)
            .filter(|p| !self.foreign.contains(p))
            .collect();
        ids.sort_unstable();
        ids
    }

    async fn stop(mut self) {
        let (control, task) = self.daemon;
        stop_daemon(control, task).await;
        self.api.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_ran_sim_boosts_nr_gnb_and_active_nr_ue_from_rls_but_not_an_idle_ue() {
    if let Some(why) = missing_live_capability() {
        return skip_unless_live(&why);
    }
    let live = Live::start().await;
    let started = std::time::Instant::now();
    let sim = RanSim::start(1, 1, &[]);
    let (gnb, ue) = (sim.process("gnb", false), sim.process("ue", false));
    let (idle, upf) = (sim.process("ue", true), sim.process("upf", false));
    // nr-ue only ever sends RLS to the gNB's port 4997, never GTP-U: the
    // tracer's RLS=DATA records are the only way to find it. Every thread
    // of nr-gnb and nr-ue, main threads included, and nothing else: not
    // the idle UE, not the UPF stand-in (ran-sim, which sends GTP-U), not
    // this test.
    let mut want = [gnb.ids(), ue.ids()].concat();
    // Generous bounds for a loaded 2-core machine; the figures are printed.
    live.expect(&want, common::slow(Duration::from_secs(10))).await;
    eprintln!(
        "API held all {} ids {want:?} {:?} after ran-sim started",
        want.len(),
        started.elapsed()
    );

    // Some more heartbeats (one a second) and acks from and to the idle UE:
    // still not boosted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    want.sort_unstable();
    let test_pid = std::process::id();
    assert_eq!(live.held(), want, "idle UE {idle:?}, UPF {upf:?}, test pid {test_pid}");

    // The active nr-ue exits: dropped at the next refresh (interval 1 s).
    kill_process(ue.pid);
    let exited = std::time::Instant::now();
    live.expect(&gnb.ids(), common::slow(Duration::from_secs(6))).await;
    eprintln!("nr-ue dropped {:?} after its exit (interval 1 s)", exited.elapsed());

    // ran-sim first: the ports it binds are free only once it is gone, and
    // stopping `live` releases the trace_pipe lock the next test waits on.
    let summary = sim.stop();
    live.stop().await;
    eprintln!("ran-sim: {summary}");
    // The idle UE was really there and heard: both UEs lived over 3 s and
    // sent a heartbeat at 0, 1, 2 and 3 s, each acked by the gNB.
    assert!(summary["heartbeat_acks"].as_u64().unwrap() >= 8, "{summary}");
    assert!(summary["ue_data_received"].as_u64().unwrap() > 0, "{summary}");
    // The active UE timed its echoes (the idle one sent none): ordered
    // percentiles of a non-empty histogram.
    let rtt = &summary["rtt_us"];
    let us = |k: &str| rtt[k].as_f64().unwrap_or_else(|| panic!("rtt_us.{k} in {summary}"));
    assert!(rtt["count"].as_u64().unwrap() > 0, "{summary}");
    assert!(us("p50") > 0.0 && us("p50") <= us("p99") && us("p99") <= us("max"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_ran_sim_over_ipv6_boosts_nr_gnb_and_nr_ue() {
    if let Some(why) = missing_live_capability() {
        return skip_unless_live(&why);
    }
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        return skip_unless_live("no IPv6 loopback (::1)");
    }
    let live = Live::start().await;
    let sim = RanSim::start(1, 0, &["--gnb", "::1", "--upf", "::1"]);
    let want = [sim.process("gnb", false).ids(), sim.process("ue", false).ids()].concat();
    live.expect(&want, common::slow(Duration::from_secs(10))).await;

    let summary = sim.stop();
    live.stop().await;
    assert!(summary["ue_data_received"].as_u64().unwrap() > 0, "{summary}");
}

/// Exited, or a zombie waiting for its new parent to reap it.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

#[tokio::test]
async fn ran_sim_children_exit_when_it_is_killed() {
    // No tracer here, but the RLS / GTP-U ports are fixed and a tracer of
    // another test could be watching them.
    let _lock = lock_trace_pipe();
    let sim = RanSim::start(1, 1, &[]);
    let children: Vec<u32> =
        sim.processes.iter().filter(|p| p.role != "upf").map(|p| p.pid).collect();
    assert_eq!(children.len(), 3, "{:?}", sim.processes);
    assert!(!children.iter().any(|&p| gone(p)));

    // SIGKILL: no chance to stop them itself; PR_SET_PDEATHSIG must.
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(sim.proc.0.id() as i32, libc::SIGKILL) };
    let killed = std::time::Instant::now();
    let all_gone =
        eventually(common::slow(Duration::from_secs(10)), || children.iter().all(|&p| gone(p)))
            .await;
    assert!(all_gone, "still running after 10 s: {children:?}");
    eprintln!("nr-gnb and both nr-ue gone {:?} after ran-sim was killed", killed.elapsed());
}
