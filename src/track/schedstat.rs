//! Run-queue wait and CPU time of the tracked threads. The kernel keeps
//! both per thread for free (`/proc/<tgid>/task/<tid>/schedstat`: CPU ns,
//! run-queue wait ns, timeslices); the sampler reads them on the tracker's
//! ticks, which only run while something is tracked, and sums them per
//! target name, so the exported series are bounded by the configured names,
//! never by pids. A thread's last reading stays in its name's total after
//! it exits: the totals never go down.

use super::TrackedProcess;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

/// One thread's schedstat line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    pub cpu_ns: u64,
    pub wait_ns: u64,
}

/// `<cpu ns> <wait ns> <timeslices>`; None for anything else.
pub fn parse(text: &str) -> Option<Reading> {
    let mut f = text.split_ascii_whitespace().map(str::parse::<u64>);
    let cpu_ns = f.next()?.ok()?;
    let wait_ns = f.next()?.ok()?;
    Some(Reading { cpu_ns, wait_ns })
}

/// A thread's reading under the procfs at `root`; None once it has exited.
pub fn read(root: &Path, tgid: u32, tid: u32) -> Option<Reading> {
    let path = root.join(format!("{tgid}/task/{tid}/schedstat"));
    parse(&std::fs::read_to_string(path).ok()?)
}

/// A target name's totals: every tracked thread's time, exited ones
/// included, as of the last tick.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NameUsage {
    pub name: String,
    pub wait_ns: u64,
    pub cpu_ns: u64,
    /// Threads tracked under the name now.
    pub threads: u64,
}

/// One process over the last interval between two ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Interval {
    /// Run-queue wait of its threads per second of the interval, in ms
    /// (with 4 threads waiting all the time: 4000).
    pub wait_ms_per_s: f64,
    pub cpu_ms_per_s: f64,
}

#[derive(Debug)]
struct Thread {
    tgid: u32,
    last: Reading,
}

#[derive(Debug, Default)]
pub struct Sampler {
    threads: HashMap<u32, Thread>,
    totals: BTreeMap<String, (u64, u64)>,
    intervals: HashMap<u32, Interval>,
    at: Option<Instant>,
}

impl Sampler {
    /// Reads every thread of `processes` with `read(tgid, tid)`.
    pub fn sample(
        &mut self,
        processes: &[TrackedProcess],
        now: Instant,
        mut read: impl FnMut(u32, u32) -> Option<Reading>,
    ) {
        let elapsed = self.at.map(|t| now.saturating_duration_since(t).as_secs_f64());
        self.at = Some(now);
        let mut seen = HashSet::with_capacity(self.threads.len());
        let mut grown: HashMap<u32, Reading> = HashMap::new();
        for p in processes {
            let Some(tgid) = p.pid else { continue };
            for &tid in &p.threads {
                let Some(now_read) = read(tgid, tid) else { continue };
                let (delta, known) = self.advance(tid, tgid, now_read);
                let total = self.totals.entry(p.name.clone()).or_default();
                total.0 += delta.wait_ns;
                total.1 += delta.cpu_ns;
                if known {
                    let g = grown.entry(tgid).or_default();
                    g.wait_ns += delta.wait_ns;
                    g.cpu_ns += delta.cpu_ns;
                }
                seen.insert(tid);
            }
        }
        // Exited (or no longer tracked): what they had stays in the totals.
        self.threads.retain(|tid, _| seen.contains(tid));
        self.intervals = match elapsed.filter(|&s| s > 0.0) {
            Some(s) => grown
                .into_iter()
                .map(|(tgid, g)| {
                    let per_s = |ns: u64| ns as f64 / 1e6 / s;
                    (
                        tgid,
                        Interval { wait_ms_per_s: per_s(g.wait_ns), cpu_ms_per_s: per_s(g.cpu_ns) },
                    )
                })
                .collect(),
            None => HashMap::new(),
        };
    }

    /// The growth since the thread's last reading, and whether it had one
    /// (a first reading is its whole life so far: in the totals, so that
    /// they match the kernel's, but not in the interval's rate).
    fn advance(&mut self, tid: u32, tgid: u32, now: Reading) -> (Reading, bool) {
        match self.threads.get_mut(&tid) {
            Some(t)
                if t.tgid == tgid
                    && now.wait_ns >= t.last.wait_ns
                    && now.cpu_ns >= t.last.cpu_ns =>
            {
                let delta = Reading {
                    wait_ns: now.wait_ns - t.last.wait_ns,
                    cpu_ns: now.cpu_ns - t.last.cpu_ns,
                };
                t.last = now;
                (delta, true)
            }
            // A thread id the kernel handed out again, or a first sighting.
            _ => {
                self.threads.insert(tid, Thread { tgid, last: now });
                (now, false)
            }
        }
    }

    /// Every name ever tracked, with its totals and the threads that
    /// `processes` (the tracked set now) has under it.
    pub fn usage(&self, processes: &[TrackedProcess]) -> Vec<NameUsage> {
        let mut names = self.totals.clone();
        for p in processes {
            names.entry(p.name.clone()).or_default();
        }
        names
            .into_iter()
            .map(|(name, (wait_ns, cpu_ns))| NameUsage {
                threads: processes
                    .iter()
                    .filter(|p| p.name == name)
                    .map(|p| p.threads.len() as u64)
                    .sum(),
                name,
                wait_ns,
                cpu_ns,
            })
            .collect()
    }

    /// A process's last interval; None before its second tick.
    pub fn interval(&self, tgid: u32) -> Option<Interval> {
        self.intervals.get(&tgid).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn process(name: &str, pid: u32, threads: &[u32]) -> TrackedProcess {
        TrackedProcess { name: name.into(), pid: Some(pid), threads: threads.to_vec() }
    }

    fn at(readings: &[(u32, u64, u64)]) -> impl FnMut(u32, u32) -> Option<Reading> + '_ {
        |_, tid| {
            readings
                .iter()
                .find(|r| r.0 == tid)
                .map(|&(_, cpu_ns, wait_ns)| Reading { cpu_ns, wait_ns })
        }
    }

    #[test]
    fn schedstat_lines_parse_and_junk_does_not() {
        assert_eq!(parse("123 456 7\n"), Some(Reading { cpu_ns: 123, wait_ns: 456 }));
        assert_eq!(parse("123\n"), None);
        assert_eq!(parse("a b c"), None);
    }

    #[test]
    fn totals_match_the_kernel_and_keep_exited_threads() {
        let mut s = Sampler::default();
        let t0 = Instant::now();
        let gnb = vec![process("nr-gnb", 10, &[10, 11])];
        s.sample(&gnb, t0, at(&[(10, 100, 1_000), (11, 50, 2_000)]));
        let first = &s.usage(&gnb)[0];
        assert_eq!((first.wait_ns, first.cpu_ns, first.threads), (3_000, 150, 2));
        assert_eq!(s.interval(10), None, "no interval before a second tick");

        // One second on: thread 11 waited 500 ms more, thread 10 ran 2 ms.
        s.sample(
            &gnb,
            t0 + Duration::from_secs(1),
            at(&[(10, 2_000_100, 1_000), (11, 50, 500_002_000)]),
        );
        let i = s.interval(10).unwrap();
        assert_eq!((i.wait_ms_per_s, i.cpu_ms_per_s), (500.0, 2.0));

        // Thread 11 exits: its time stays; the thread count drops.
        let before = s.usage(&gnb)[0].clone();
        s.sample(&gnb, t0 + Duration::from_secs(2), at(&[(10, 2_000_100, 1_000)]));
        let after = &s.usage(&[process("nr-gnb", 10, &[10])])[0];
        assert_eq!((after.wait_ns, after.cpu_ns), (before.wait_ns, before.cpu_ns));
        assert_eq!(after.threads, 1);

        // Its id handed to a new thread: counted afresh, never subtracted.
        s.sample(&gnb, t0 + Duration::from_secs(3), at(&[(10, 2_000_100, 1_000), (11, 5, 7)]));
        assert_eq!(s.usage(&gnb)[0].wait_ns, before.wait_ns + 7);
    }

    #[test]
    fn names_stay_once_their_processes_are_gone() {
        let mut s = Sampler::default();
        s.sample(&[process("nr-ue", 20, &[20])], Instant::now(), at(&[(20, 9, 4)]));
        s.sample(&[], Instant::now(), at(&[]));
        assert_eq!(
            s.usage(&[]),
            [NameUsage { name: "nr-ue".into(), wait_ns: 4, cpu_ns: 9, threads: 0 }]
        );
    }
}
