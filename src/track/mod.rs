//! Track stage: which nr-gnb / nr-ue processes and threads to boost.

pub mod activity;
pub mod memory;
pub mod procfs;
pub mod schedstat;
pub mod state;

use crate::config::TargetConfig;
use crate::parse::{Body, Header, Message};
use memory::Memory;
use procfs::{Identity, ProcView};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A kernel task name: at most 15 bytes plus NUL in the kernel, so a fixed
/// array keeps the hot path free of allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Comm {
    bytes: [u8; 16],
    len: u8,
}

impl Comm {
    pub fn new(name: &[u8]) -> Self {
        let len = name.len().min(16);
        let mut bytes = [0u8; 16];
        bytes[..len].copy_from_slice(&name[..len]);
        Comm { bytes, len: len as u8 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Task names to boost, matched exactly (never as a substring), and who
/// may carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    names: Vec<Comm>,
    admission: Admission,
}

impl Targets {
    /// Any process with one of `names`.
    pub fn new<S: AsRef<[u8]>>(names: &[S]) -> Self {
        Targets {
            names: names.iter().map(|n| Comm::new(n.as_ref())).collect(),
            admission: Admission::default(),
        }
    }

    /// `targets.names`, `targets.exe_paths` and `targets.uids` of `cfg`.
    pub fn from_config(cfg: &TargetConfig) -> Self {
        Targets::new(&cfg.names).admitting(cfg.exe_paths.clone(), cfg.uids.clone())
    }

    /// Only processes of these executables and users (empty: any).
    pub fn admitting(self, exe_paths: Vec<PathBuf>, uids: Vec<u32>) -> Self {
        Targets { admission: Admission { exe_paths, uids }, ..self }
    }

    pub fn matches(&self, name: &[u8]) -> bool {
        self.names.iter().any(|t| t.as_bytes() == name)
    }
}

/// Who may be boosted, as /proc tells it: a task name is no credential (any
/// process can take one with `prctl(PR_SET_NAME)`), its executable and its
/// user are. Empty lists admit anyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// Executables, or directories when ending in `/`.
    exe_paths: Vec<PathBuf>,
    uids: Vec<u32>,
}

impl Admission {
    fn admits_anyone(&self) -> bool {
        self.exe_paths.is_empty() && self.uids.is_empty()
    }

    fn admits(&self, id: &Identity) -> bool {
        let user = self.uids.is_empty()
            || (self.uids.contains(&id.real_uid) && self.uids.contains(&id.effective_uid));
        let exe =
            self.exe_paths.is_empty() || self.exe_paths.iter().any(|p| exe_matches(p, &id.exe));
        user && exe
    }
}

/// `allowed` is the executable itself, or a directory (ending in `/`) that
/// holds it at any depth.
fn exe_matches(allowed: &Path, exe: &Path) -> bool {
    let (allowed, exe) = (allowed.as_os_str().as_bytes(), exe.as_os_str().as_bytes());
    if allowed.ends_with(b"/") {
        exe.starts_with(allowed)
    } else {
        exe == allowed
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_processes: usize,
    pub max_threads: usize,
}

impl Limits {
    pub fn from_config(cfg: &TargetConfig) -> Self {
        Limits { max_processes: cfg.max_processes, max_threads: cfg.max_threads }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_processes: 1024, max_threads: 16384 }
    }
}

/// A tracked process as the state file keeps it: enough to tell, after a
/// restart, the same process from another one that got its pid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Persisted {
    pub pid: u32,
    pub start_time: u64,
    pub name: String,
}

/// A tracked process, as reported by `processes()`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrackedProcess {
    pub name: String,
    /// The process (thread group) id; `None` when only a thread id is known
    /// (a replayed `stop: pid=N (comm)` line says nothing of the group).
    pub pid: Option<u32>,
    pub threads: Vec<u32>,
}

/// What the publisher sends: the tracked ids at one moment, with and
/// without thread ids (`targets.threads` picks one, and may change on reload).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracked {
    with_threads: Vec<u32>,
    processes: Vec<u32>,
}

impl Tracked {
    pub fn from_pids(with_threads: Vec<u32>, processes: Vec<u32>) -> Self {
        Tracked { with_threads, processes }
    }

    pub fn pids(&self, threads: bool) -> &[u32] {
        if threads {
            &self.with_threads
        } else {
            &self.processes
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    pub processes: usize,
    pub threads: usize,
    pub dropped: u64,
    pub exited: u64,
    pub reused: u64,
}

#[derive(Debug)]
struct Process {
    name: Comm,
    /// From /proc in live mode: a different start time means a reused pid.
    start_time: Option<u64>,
    threads: BTreeSet<u32>,
}

/// How often /proc is asked about a thread whose trace name is not a target
/// (it may be stale, or `<...>`).
const PROC_RECHECK: Duration = Duration::from_secs(1);

/// A tracked thread: its group (0 for an orphan) and when a trace line last
/// named it (what `expire` goes by when /proc is not consulted).
#[derive(Debug, Clone, Copy)]
struct Member {
    tgid: u32,
    seen: Instant,
}

pub struct Tracker<P> {
    targets: Targets,
    limits: Limits,
    proc: P,
    memory: Memory,
    processes: BTreeMap<u32, Process>,
    /// Threads whose group is not known (replay only): tid -> name.
    orphans: BTreeMap<u32, Comm>,
    /// Every tracked thread: the hot path's check.
    index: HashMap<u32, Member, BuildHasherDefault<TidHasher>>,
    /// The time of the chunk being fed (stamps what lines say, paces /proc
    /// rechecks); set once per chunk by the owner, so that the hot path
    /// does not read the clock per line.
    now: Instant,
    dropped: u64,
    exited: u64,
    reused: u64,
}

/// The index is looked up for every target line. Its keys are thread ids
/// the kernel hands out, not chosen by an adversary, so a multiplicative
/// hash serves instead of SipHash at a fraction of the cost.
#[derive(Default)]
struct TidHasher(u64);

impl Hasher for TidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(u32::from(b) ^ (self.0 as u32).rotate_left(8));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// What one line told us about a task.
struct Subject<'a> {
    tid: u32,
    tgid: Option<u32>,
    /// Said by the tracer or scheduler themselves (`COMM=`, `pid=N (comm)`).
    told_name: Option<&'a [u8]>,
    /// The header's comm, when the line is about the header's task.
    header_name: Option<&'a [u8]>,
    from_probe: bool,
}

fn subject<'a>(header: &Header<'a>, msg: &Message<'a>) -> Subject<'a> {
    let header_name = known_comm(header.comm);
    match msg {
        Message::Sched { pid, comm, .. } => Subject {
            tid: *pid,
            // Only when the header's task is the subject does its
            // record-tgid column speak of the subject's group.
            tgid: if *pid == header.pid { header.tgid.flatten() } else { None },
            told_name: Some(comm),
            header_name: None,
            from_probe: false,
        },
        Message::Probe(p) => {
            let fields = match &p.body {
                Body::Fields(f) => Some(f),
                Body::Note(_) => None,
            };
            let tid = fields.and_then(|f| f.pid).unwrap_or(header.pid);
            let same_task = tid == header.pid;
            let header_tgid = if same_task { header.tgid.flatten() } else { None };
            Subject {
                tid,
                tgid: fields.and_then(|f| f.tgid).or(header_tgid),
                told_name: fields.and_then(|f| f.comm),
                header_name: header_name.filter(|_| same_task),
                from_probe: true,
            }
        }
    }
}

/// What `Tracker::observe` learned from one line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// The tracked set grew.
    pub grew: bool,
    /// The tracked process the line names, when its group is known.
    pub tgid: Option<u32>,
}

/// `<...>` and `<idle>` are placeholders, not names.
fn known_comm(comm: &[u8]) -> Option<&[u8]> {
    (!comm.starts_with(b"<")).then_some(comm)
}

impl<P: ProcView> Tracker<P> {
    pub fn new(targets: Targets, limits: Limits, proc: P) -> Self {
        Tracker {
            targets,
            limits,
            proc,
            memory: Memory::default(),
            processes: BTreeMap::new(),
            orphans: BTreeMap::new(),
            index: HashMap::default(),
            now: Instant::now(),
            dropped: 0,
            exited: 0,
            reused: 0,
        }
    }

    /// The tracker the daemon and replay both run: `targets.*` of `cfg`.
    pub fn from_config(cfg: &TargetConfig, proc: P) -> Self {
        Tracker::new(Targets::from_config(cfg), Limits::from_config(cfg), proc)
    }

    pub fn set_targets(&mut self, targets: Targets, limits: Limits) {
        self.targets = targets;
        self.limits = limits;
    }

    /// The time that lines fed from now on are stamped with.
    pub fn set_clock(&mut self, now: Instant) {
        self.now = now;
    }

    /// Whether /proc is consulted (else `expire` is how entries go).
    pub fn is_live(&self) -> bool {
        self.proc.is_live()
    }

    /// Feeds one recognised event: whether the tracked set grew, and the
    /// tracked process the line names, found on the way (callers that stamp
    /// per-process activity need no second lookup).
    pub fn observe(&mut self, header: &Header, msg: &Message) -> Observed {
        if let Message::Sched { comm, .. } = msg {
            // The scheduler prints a line for every task: reject early.
            if !self.targets.matches(comm) {
                return Observed::default();
            }
        }
        let s = subject(header, msg);
        if s.tid == 0 {
            return Observed::default();
        }
        let recent = self.memory.entry(s.tid);
        if let Some(tgid) = s.tgid {
            recent.tgid = tgid;
        }
        if let Some(name) = s.told_name {
            recent.name = Some(Comm::new(name));
        }
        let recent = *recent;
        let name = recent.name.or_else(|| s.header_name.map(Comm::new));
        let tgid = (recent.tgid != 0).then_some(recent.tgid);
        match name {
            Some(n) if self.targets.matches(n.as_bytes()) => self.track(s.tid, tgid, n),
            _ if s.from_probe && self.proc_recheck_due(s.tid) => {
                let grew = self.track_from_proc(s.tid);
                self.grown(s.tid, grew)
            }
            _ => Observed { grew: false, tgid: self.group_of(s.tid) },
        }
    }

    /// After a (rare) attempt to add `tid`: the lookup of where it went.
    fn grown(&self, tid: u32, grew: bool) -> Observed {
        Observed { grew, tgid: self.group_of(tid) }
    }

    fn proc_recheck_due(&mut self, tid: u32) -> bool {
        if !self.proc.is_live() || self.index.contains_key(&tid) {
            return false;
        }
        let now = self.now;
        let recent = self.memory.entry(tid);
        let due = recent.proc_checked.is_none_or(|t| now.duration_since(t) >= PROC_RECHECK);
        if due {
            recent.proc_checked = Some(now);
        }
        due
    }

    fn track(&mut self, tid: u32, tgid: Option<u32>, name: Comm) -> Observed {
        if let Some(m) = self.index.get_mut(&tid) {
            m.seen = self.now;
            if m.tgid != 0 || tgid.is_none() {
                // The hot path: a tracked thread's next line.
                return Observed { grew: false, tgid: (m.tgid != 0).then_some(m.tgid) };
            }
        }
        let grew = if self.proc.is_live() {
            // Lines of a dead task can trail it: ask /proc at a bounded rate.
            self.proc_recheck_due(tid) && self.track_from_proc(tid)
        } else {
            self.track_as_told(tid, tgid, name)
        };
        self.grown(tid, grew)
    }

    /// Replay: the trace is the only witness.
    fn track_as_told(&mut self, tid: u32, tgid: Option<u32>, name: Comm) -> bool {
        let Some(tgid) = tgid else {
            if !self.room_for_process() {
                return false;
            }
            self.orphans.insert(tid, name);
            self.index.insert(tid, Member { tgid: 0, seen: self.now });
            return true;
        };
        if self.orphans.remove(&tid).is_some() {
            self.index.remove(&tid);
        }
        if !self.processes.contains_key(&tgid) && !self.room_for_process() {
            return false;
        }
        let mut members = BTreeSet::from([tid]);
        if tgid != tid && self.orphans.remove(&tgid).is_some() {
            members.insert(tgid);
        }
        self.add_threads(tgid, name, None, members)
    }

    /// Live: /proc decides, so a reused pid or a renamed task is not boosted
    /// on the strength of an old trace line.
    fn track_from_proc(&mut self, tid: u32) -> bool {
        let Some(task) = self.proc.task(tid) else { return false };
        if task.kernel_thread || task.tgid == 0 {
            return false;
        }
        let Some(leader) = self.proc.process(task.tgid) else { return false };
        if !self.targets.matches(task.comm.as_bytes())
            && !self.targets.matches(leader.comm.as_bytes())
        {
            return false;
        }
        let mut threads = BTreeSet::from([tid]);
        // A new thread of a tracked process is only that thread: listing
        // all of them for each new one would make a process that starts
        // thousands of short threads a second cost as many /proc scans
        // (the 0.5 s re-read catches any others).
        if !self.processes.contains_key(&task.tgid) {
            // Before a slot is taken: an impostor must not crowd out the real one.
            if !self.admitted([tid, task.tgid]) || !self.room_for_process() {
                return false;
            }
            threads.extend(self.proc.threads(task.tgid).into_iter().map(|(t, _)| t));
        }
        let name =
            if self.targets.matches(leader.comm.as_bytes()) { leader.comm } else { task.comm };
        self.add_threads(task.tgid, name, Some(leader.start_time), threads)
    }

    /// Whether the process of `tids` (its threads, the live ones first) is
    /// one that `targets.exe_paths` and `targets.uids` admit. Any live
    /// thread answers for the process: a leader that ended with
    /// `pthread_exit` has no executable left to read.
    fn admitted(&self, tids: impl IntoIterator<Item = u32>) -> bool {
        let admission = &self.targets.admission;
        admission.admits_anyone()
            || tids
                .into_iter()
                .find_map(|tid| self.proc.identity(tid))
                .is_some_and(|id| admission.admits(&id))
    }

    fn room_for_process(&mut self) -> bool {
        let room = self.processes.len() + self.orphans.len() < self.limits.max_processes;
        if !room {
            self.dropped += 1;
        }
        room
    }

    fn add_threads(
        &mut self,
        tgid: u32,
        name: Comm,
        start_time: Option<u64>,
        threads: BTreeSet<u32>,
    ) -> bool {
        let p = self.processes.entry(tgid).or_insert_with(|| Process {
            name,
            start_time,
            threads: BTreeSet::new(),
        });
        let mut grew = false;
        for tid in threads {
            if self.index.len() >= self.limits.max_threads && !self.index.contains_key(&tid) {
                self.dropped += 1;
                continue;
            }
            if p.threads.insert(tid) {
                self.index.insert(tid, Member { tgid, seen: self.now });
                grew = true;
            }
        }
        if p.threads.is_empty() {
            self.processes.remove(&tgid);
        }
        grew
    }

    /// Live mode: forget processes that exited, were replaced by a reused
    /// pid or renamed away from a target, and pick up their new threads.
    /// True when the set changed.
    pub fn refresh(&mut self) -> bool {
        if !self.proc.is_live() {
            return false;
        }
        let mut changed = false;
        let tgids: Vec<u32> = self.processes.keys().copied().collect();
        for tgid in tgids {
            changed |= self.refresh_process(tgid);
        }
        changed
    }

    /// `refresh` for one process (its pidfd said it exited). True when
    /// the set changed.
    pub fn refresh_process(&mut self, tgid: u32) -> bool {
        let Some(recorded) = self.processes.get(&tgid).map(|p| p.start_time) else {
            return false;
        };
        let live = self.proc.process(tgid);
        let threads = live.map(|_| self.proc.threads(tgid)).unwrap_or_default();
        let still_target = live.is_some_and(|l| self.targets.matches(l.comm.as_bytes()))
            || threads.iter().any(|(_, c)| self.targets.matches(c.as_bytes()));
        match live {
            None => self.exited += 1,
            Some(l) if Some(l.start_time) != recorded => self.reused += 1,
            // Renamed, or exec'd another program (or reloaded rules say no).
            Some(_) if !still_target || !self.admitted(threads.iter().map(|(t, _)| *t)) => {
                self.exited += 1
            }
            Some(_) => {
                return self.replace_threads(tgid, threads.into_iter().map(|(t, _)| t).collect())
            }
        }
        self.forget(tgid);
        true
    }

    fn replace_threads(&mut self, tgid: u32, live: BTreeSet<u32>) -> bool {
        let Some(p) = self.processes.get_mut(&tgid) else { return false };
        if p.threads == live {
            return false;
        }
        for gone in p.threads.difference(&live) {
            self.index.remove(gone);
        }
        let name = p.name;
        let start_time = p.start_time;
        p.threads.retain(|t| live.contains(t));
        self.add_threads(tgid, name, start_time, live);
        true
    }

    fn forget(&mut self, tgid: u32) {
        if let Some(p) = self.processes.remove(&tgid) {
            for tid in p.threads {
                self.index.remove(&tid);
            }
        }
    }

    /// Drops threads no line has named for `ttl` (for when /proc is not
    /// consulted and exits go unseen). True when the set changed.
    pub fn expire(&mut self, ttl: Duration) -> bool {
        let now = self.now;
        let stale: Vec<(u32, u32)> = self
            .index
            .iter()
            .filter(|(_, m)| now.saturating_duration_since(m.seen) >= ttl)
            .map(|(&tid, m)| (tid, m.tgid))
            .collect();
        for &(tid, tgid) in &stale {
            self.index.remove(&tid);
            if tgid == 0 {
                self.orphans.remove(&tid);
            } else if let Some(p) = self.processes.get_mut(&tgid) {
                p.threads.remove(&tid);
                if p.threads.is_empty() {
                    self.processes.remove(&tgid);
                }
            }
        }
        self.exited += stale.len() as u64;
        !stale.is_empty()
    }

    /// The process of a tracked thread (None: untracked, or its group unknown).
    pub fn group_of(&self, tid: u32) -> Option<u32> {
        self.index.get(&tid).map(|m| m.tgid).filter(|&tgid| tgid != 0)
    }

    /// Process ids tracked (live mode: each one confirmed in /proc).
    pub fn process_ids(&self) -> Vec<u32> {
        self.processes.keys().copied().collect()
    }

    /// What the state file keeps: processes whose start time /proc gave.
    pub fn persisted(&self) -> Vec<Persisted> {
        self.processes
            .iter()
            .filter_map(|(&pid, p)| {
                Some(Persisted { pid, start_time: p.start_time?, name: p.name.to_string() })
            })
            .collect()
    }

    /// Takes back what an earlier run tracked, each entry re-checked in
    /// /proc: the same start time (not a reused pid) and a target name.
    /// Returns how many were restored.
    pub fn restore(&mut self, entries: &[Persisted]) -> usize {
        if !self.proc.is_live() {
            return 0;
        }
        let mut restored = 0;
        for e in entries {
            let same = self.proc.process(e.pid).is_some_and(|p| p.start_time == e.start_time);
            if same && self.track_from_proc(e.pid) {
                restored += 1;
            }
        }
        restored
    }

    /// Ids to boost, sorted: each process id and, with `threads`, every
    /// thread id (a sched_ext scheduler schedules threads).
    pub fn pids(&self, threads: bool) -> Vec<u32> {
        let mut out: Vec<u32> = self.processes.keys().copied().collect();
        if threads {
            out.extend(self.processes.values().flat_map(|p| p.threads.iter().copied()));
        }
        out.extend(self.orphans.keys().copied());
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn tracked(&self) -> Tracked {
        Tracked::from_pids(self.pids(true), self.pids(false))
    }

    pub fn processes(&self) -> Vec<TrackedProcess> {
        let groups = self.processes.iter().map(|(tgid, p)| TrackedProcess {
            name: p.name.to_string(),
            pid: Some(*tgid),
            threads: p.threads.iter().copied().collect(),
        });
        let orphans = self.orphans.iter().map(|(tid, name)| TrackedProcess {
            name: name.to_string(),
            pid: None,
            threads: vec![*tid],
        });
        groups.chain(orphans).collect()
    }

    pub fn stats(&self) -> TrackerStats {
        TrackerStats {
            processes: self.processes.len() + self.orphans.len(),
            threads: self.index.len(),
            dropped: self.dropped,
            exited: self.exited,
            reused: self.reused,
        }
    }
}

#[cfg(test)]
mod tests;
