use super::procfs::{Identity, NoProc, ProcessInfo, TaskInfo};
use super::*;
use crate::parse::{parse_line, parse_message, Line};
use std::sync::Mutex;

fn feed<P: ProcView>(t: &mut Tracker<P>, text: &str) -> bool {
    let mut grew = false;
    for l in text.lines() {
        if let Ok(Line::Trace(tl)) = parse_line(l.as_bytes()) {
            if let Ok(m) = parse_message(tl.message) {
                grew |= t.observe(&tl.header, &m).grew;
            }
        }
    }
    grew
}

fn replay_tracker() -> Tracker<NoProc> {
    Tracker::new(Targets::new(&["nr-gnb", "nr-ue"]), Limits::default(), NoProc)
}

#[test]
fn exact_names_only_not_substrings() {
    let mut t = replay_tracker();
    let grew = feed(
        &mut t,
        "nr-gnb-helper-5 [000] .... 1.0: bpf_trace_printk: fentry/gtp5g_encap_recv: PID=5, TGID=5, CPU=0
bash-6 [000] .... 1.0: bpf_trace_printk: fentry/gtp5g_encap_recv: DEV=nr-gnb0
bash-6 [000] .... 1.0: bpf_trace_printk: fentry/gtp5g_encap_recv: nr-gnb said hello
kworker-7 [000] .... 1.0: bpf_trace_printk: stop: pid=7 (nr_gnb)",
    );
    assert!(!grew);
    assert!(t.pids(true).is_empty());
}

#[test]
fn later_lines_complete_earlier_ones() {
    let mut t = replay_tracker();
    feed(
        &mut t,
        "<...>-10344 [001] 1711.413912: bpf_trace_printk: tp/net_dev_queue: DEV=lo, LEN=70
<...>-10344 [001] 1711.413944: bpf_trace_printk: tp/net_dev_queue: PID=10344, TGID=10303, CPU=1
<...>-10344 [001] 1711.413945: bpf_trace_printk: tp/net_dev_queue: COMM=nr-gnb",
    );
    assert_eq!(t.pids(true), vec![10303, 10344]);
    assert_eq!(t.pids(false), vec![10303]);
    assert_eq!(
        t.processes(),
        vec![TrackedProcess { name: "nr-gnb".into(), pid: Some(10303), threads: vec![10344] }]
    );
}

#[test]
fn header_name_then_tgid_moves_orphan_into_its_group() {
    let mut t = replay_tracker();
    feed(&mut t, "nr-gnb-1150369 [005] ..s21 34202.967769: bpf_trace_printk: fentry/gtp5g_encap_recv: DEV=n3");
    assert_eq!(t.processes()[0].pid, None);
    feed(&mut t, "nr-gnb-1150369 [005] ..s21 34202.967772: bpf_trace_printk: fentry/gtp5g_encap_recv: PID=1150369, TGID=1150348, CPU=5");
    assert_eq!(t.pids(true), vec![1150348, 1150369]);
    assert_eq!(t.stats().processes, 1);
}

#[test]
fn scheduler_subject_not_header_and_never_pid_zero() {
    let mut t = replay_tracker();
    feed(
        &mut t,
        "<idle>-0 [005] d.h51 21039.908232: bpf_trace_printk: enqueue: pid=365189 (nr-gnb)
<idle>-0       [001] b.s31 34202.971363: bpf_trace_printk: fentry/gtp5g_handle_skb_ipv4: PID=0, TGID=0, CPU=1
nr-gnb-9 [001] b.s31 34202.971363: bpf_trace_printk: enqueue: pid=0 (nr-gnb)",
    );
    assert_eq!(t.pids(true), vec![365189]);
}

#[test]
fn record_tgid_column_gives_the_group() {
    let mut t = replay_tracker();
    feed(&mut t, "nr-ue-10274   (  10148) [001] b..2.  1690.2: bpf_trace_printk: tp/net_dev_queue: DEV=lo, LEN=70");
    assert_eq!(t.pids(true), vec![10148, 10274]);
}

#[test]
fn process_bound_drops_and_counts() {
    let mut t = Tracker::new(
        Targets::new(&["nr-gnb"]),
        Limits { max_processes: 3, max_threads: 100 },
        NoProc,
    );
    for pid in 1..=10 {
        feed(
            &mut t,
            &format!("nr-gnb-{pid} [000] .... 1.0: bpf_trace_printk: stop: pid={pid} (nr-gnb)"),
        );
    }
    assert_eq!(t.stats().processes, 3);
    assert_eq!(t.stats().dropped, 7);
}

/// A stand-in for /proc where the test decides what exists: pid reuse and
/// exits cannot be staged on demand with real processes.
#[derive(Default)]
struct FakeProc {
    tasks: Mutex<HashMap<u32, (u32, &'static str, u64)>>,
    /// Executables other than /opt/UERANSIM/build/<comm>.
    exes: Mutex<HashMap<u32, &'static str>>,
}

impl FakeProc {
    fn set_exe(&self, tgid: u32, exe: &'static str) {
        self.exes.lock().unwrap().insert(tgid, exe);
    }
    fn set(&self, tid: u32, tgid: u32, comm: &'static str, start: u64) {
        self.tasks.lock().unwrap().insert(tid, (tgid, comm, start));
    }
    fn remove(&self, tid: u32) {
        self.tasks.lock().unwrap().remove(&tid);
    }
}

impl ProcView for &FakeProc {
    fn is_live(&self) -> bool {
        true
    }
    fn task(&self, tid: u32) -> Option<TaskInfo> {
        let m = self.tasks.lock().unwrap();
        m.get(&tid).map(|&(tgid, c, _)| TaskInfo {
            tgid,
            comm: Comm::new(c.as_bytes()),
            kernel_thread: c == "kthread",
        })
    }
    fn process(&self, tgid: u32) -> Option<ProcessInfo> {
        let m = self.tasks.lock().unwrap();
        m.get(&tgid)
            .map(|&(_, c, start)| ProcessInfo { comm: Comm::new(c.as_bytes()), start_time: start })
    }
    fn threads(&self, tgid: u32) -> Vec<(u32, Comm)> {
        let m = self.tasks.lock().unwrap();
        let mut v: Vec<_> = m
            .iter()
            .filter(|(_, t)| t.0 == tgid)
            .map(|(tid, t)| (*tid, Comm::new(t.1.as_bytes())))
            .collect();
        v.sort();
        v
    }
    fn identity(&self, tid: u32) -> Option<Identity> {
        let (tgid, comm, _) = *self.tasks.lock().unwrap().get(&tid)?;
        let exe = self.exes.lock().unwrap().get(&tgid).map(|e| e.to_string());
        let exe = exe.unwrap_or_else(|| format!("/opt/UERANSIM/build/{comm}"));
        Some(Identity { exe: exe.into(), real_uid: 0, effective_uid: 0 })
    }
}

fn live_line(tid: u32) -> String {
    format!("<...>-{tid} [000] .... 1.0: bpf_trace_printk: tp/net_dev_queue: DEV=lo, LEN=70")
}

#[test]
fn live_unknown_comm_is_looked_up_and_expanded_to_all_threads() {
    let proc = FakeProc::default();
    proc.set(100, 100, "nr-gnb", 7);
    proc.set(101, 100, "nr-gnb", 7);
    proc.set(102, 100, "nr-gnb", 7);
    let mut t = Tracker::new(Targets::new(&["nr-gnb"]), Limits::default(), &proc);
    assert!(feed(&mut t, &live_line(101)));
    assert_eq!(t.pids(true), vec![100, 101, 102]);
    assert_eq!(t.pids(false), vec![100]);
}

#[test]
fn live_exit_and_pid_reuse_are_dropped_on_refresh() {
    let proc = FakeProc::default();
    proc.set(100, 100, "nr-gnb", 7);
    proc.set(200, 200, "nr-ue", 9);
    let mut t = Tracker::new(Targets::new(&["nr-gnb", "nr-ue"]), Limits::default(), &proc);
    feed(&mut t, &format!("{}\n{}", live_line(100), live_line(200)));
    assert_eq!(t.pids(true), vec![100, 200]);
    assert!(!t.refresh(), "nothing changed yet");
    proc.remove(100);
    proc.set(200, 200, "nr-ue", 10); // same pid, another process
    assert!(t.refresh());
    assert!(t.pids(true).is_empty());
    assert_eq!((t.stats().exited, t.stats().reused), (1, 1));
}

#[test]
fn live_trace_name_is_not_trusted_over_proc() {
    let proc = FakeProc::default();
    proc.set(300, 300, "python3", 1);
    proc.set(301, 301, "kthread", 1);
    let mut t = Tracker::new(Targets::new(&["nr-gnb"]), Limits::default(), &proc);
    feed(
        &mut t,
        "nr-gnb-300 [000] .... 1.0: bpf_trace_printk: tp/net_dev_queue: COMM=nr-gnb
nr-gnb-301 [000] .... 1.0: bpf_trace_printk: tp/net_dev_queue: COMM=nr-gnb",
    );
    assert!(t.pids(true).is_empty());
}

#[test]
fn live_new_threads_are_picked_up_on_refresh() {
    let proc = FakeProc::default();
    proc.set(100, 100, "nr-gnb", 7);
    let mut t = Tracker::new(Targets::new(&["nr-gnb"]), Limits::default(), &proc);
    feed(&mut t, &live_line(100));
    proc.set(103, 100, "nr-gnb", 7);
    assert!(t.refresh());
    assert_eq!(t.pids(true), vec![100, 103]);
    proc.remove(103);
    assert!(t.refresh());
    assert_eq!(t.pids(true), vec![100]);
}

#[test]
fn restore_takes_back_only_the_same_live_target_processes() {
    let proc = FakeProc::default();
    proc.set(100, 100, "nr-gnb", 7); // alive, same start time
    proc.set(101, 100, "nr-gnb", 7);
    proc.set(200, 200, "nr-ue", 10); // pid reused: saved with start time 9
    proc.set(300, 300, "bash", 5); // same start time, no longer a target
    let mut t = Tracker::new(Targets::new(&["nr-gnb", "nr-ue"]), Limits::default(), &proc);
    let saved = |pid, start_time, name: &str| Persisted { pid, start_time, name: name.into() };
    let entries = [
        saved(100, 7, "nr-gnb"),
        saved(200, 9, "nr-ue"),
        saved(300, 5, "nr-gnb"),
        saved(400, 1, "nr-ue"), // exited while the daemon was down
    ];
    assert_eq!(t.restore(&entries), 1);
    assert_eq!(t.pids(true), vec![100, 101]);
    assert_eq!(t.persisted(), vec![saved(100, 7, "nr-gnb")]);
}

#[test]
fn replay_trackers_restore_nothing() {
    let mut t = replay_tracker();
    assert_eq!(t.restore(&[Persisted { pid: 1, start_time: 1, name: "nr-gnb".into() }]), 0);
}

#[test]
fn expire_drops_threads_not_named_within_the_ttl() {
    let mut t = replay_tracker();
    let start = Instant::now();
    t.set_clock(start);
    feed(&mut t, "nr-gnb-11 [000] .... 1.0: bpf_trace_printk: tp/net_dev_queue: PID=11, TGID=10, CPU=0\nnr-ue-20 [000] .... 1.0: bpf_trace_printk: stop: pid=20 (nr-ue)");
    t.set_clock(start + Duration::from_secs(4));
    feed(
        &mut t,
        "nr-gnb-11 [000] .... 1.0: bpf_trace_printk: tp/net_dev_queue: PID=11, TGID=10, CPU=0",
    );
    t.set_clock(start + Duration::from_secs(6));
    assert!(t.expire(Duration::from_secs(5)));
    assert_eq!(t.pids(true), vec![10, 11], "the orphan 20 expired, 11 was seen at 4 s");
    t.set_clock(start + Duration::from_secs(9));
    assert!(t.expire(Duration::from_secs(5)));
    assert!(t.pids(true).is_empty());
    assert!(!t.expire(Duration::from_secs(5)));
}

#[test]
fn scheduler_line_about_its_own_header_task_takes_the_record_tgid() {
    let mut t = replay_tracker();
    feed(&mut t, "nr-gnb-4781 (   4656) [001] d..31 1.0: bpf_trace_printk: stop: pid=4781 (nr-gnb)\nnr-gnb-4781 (   4656) [001] d..31 1.0: bpf_trace_printk: enqueue: pid=4790 (nr-gnb)");
    assert_eq!(t.pids(true), vec![4656, 4781, 4790]);
    assert_eq!(t.processes()[0].threads, vec![4781], "4790 is not the header's task");
    assert_eq!(t.processes()[1].pid, None);
}

#[test]
fn live_proc_recheck_goes_by_the_chunk_clock() {
    let proc = FakeProc::default();
    let mut t = Tracker::new(Targets::new(&["nr-gnb"]), Limits::default(), &proc);
    let start = Instant::now();
    t.set_clock(start);
    assert!(!feed(&mut t, &live_line(100)), "not in /proc yet");
    proc.set(100, 100, "nr-gnb", 7);
    t.set_clock(start + Duration::from_millis(500));
    assert!(!feed(&mut t, &live_line(100)), "recheck not due within a second");
    t.set_clock(start + Duration::from_secs(1));
    assert!(feed(&mut t, &live_line(100)), "recheck due a second later");
    assert_eq!(t.pids(true), vec![100]);
}

fn ueransim_only(names: &[&str]) -> Targets {
    Targets::new(names).admitting(vec!["/opt/UERANSIM/build/".into()], vec![0])
}

#[test]
fn a_renamed_process_outside_exe_paths_takes_no_slot() {
    let proc = FakeProc::default();
    proc.set(300, 300, "nr-gnb", 1); // prctl(PR_SET_NAME, "nr-gnb")
    proc.set_exe(300, "/tmp/x/impostor");
    proc.set(100, 100, "nr-gnb", 7);
    let one = Limits { max_processes: 1, max_threads: 100 };
    let mut t = Tracker::new(ueransim_only(&["nr-gnb"]), one, &proc);
    assert!(!feed(&mut t, &live_line(300)));
    assert!(feed(&mut t, &live_line(100)));
    assert_eq!(t.pids(true), vec![100]);
    assert_eq!(t.stats().dropped, 0, "the impostor was never a candidate for the slot");
}

#[test]
fn a_tracked_process_that_execs_outside_exe_paths_is_dropped_on_refresh() {
    let proc = FakeProc::default();
    proc.set(100, 100, "nr-gnb", 7);
    let mut t = Tracker::new(ueransim_only(&["nr-gnb"]), Limits::default(), &proc);
    feed(&mut t, &live_line(100));
    assert_eq!(t.pids(true), vec![100]);
    proc.set_exe(100, "/home/mallory/nr-gnb"); // execve keeps pid and start time
    assert!(t.refresh());
    assert!(t.pids(true).is_empty());
}

#[test]
fn exe_paths_match_whole_paths_or_directory_prefixes() {
    let allowed = |p: &str, exe: &str| exe_matches(Path::new(p), Path::new(exe));
    assert!(allowed("/opt/UERANSIM/build/", "/opt/UERANSIM/build/nr-gnb"));
    assert!(allowed("/opt/UERANSIM/build/", "/opt/UERANSIM/build/sub/nr-ue"));
    assert!(!allowed("/opt/UERANSIM/build/", "/opt/UERANSIM/build-evil/nr-gnb"));
    assert!(allowed("/ueransim/nr-gnb", "/ueransim/nr-gnb"));
    assert!(!allowed("/ueransim/nr-gnb", "/ueransim/nr-gnb2"));
    assert!(!allowed("/ueransim/nr-gnb", "/ueransim/nr-gnb/x"));
}

fn observe_line<P: ProcView>(t: &mut Tracker<P>, text: &str) -> Observed {
    let Ok(Line::Trace(tl)) = parse_line(text.as_bytes()) else { panic!("{text}") };
    t.observe(&tl.header, &parse_message(tl.message).unwrap())
}

#[test]
fn observe_names_the_tracked_process_of_each_line() {
    let mut t = replay_tracker();
    let first =
        "nr-gnb-11 [000] .... 1.0: bpf_trace_printk: tp/net_dev_queue: PID=11, TGID=10, CPU=0";
    assert_eq!(observe_line(&mut t, first), Observed { grew: true, tgid: Some(10) });
    assert_eq!(observe_line(&mut t, first), Observed { grew: false, tgid: Some(10) });
    // trace_pipe's comm cache can miss: the thread is still the one tracked.
    let unnamed = "<...>-11 [000] .... 1.1: bpf_trace_printk: tp/net_dev_queue: TEID=0x1, TYPE=255";
    assert_eq!(observe_line(&mut t, unnamed), Observed { grew: false, tgid: Some(10) });
    let other =
        "bash-12 [000] .... 1.2: bpf_trace_printk: tp/net_dev_queue: PID=12, TGID=12, CPU=0";
    assert_eq!(observe_line(&mut t, other), Observed::default());
}
