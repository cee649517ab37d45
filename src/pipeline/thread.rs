//! The tracker thread, the pipeline's one owner: it frames and parses the
//! chunks the reader hands it, feeds the tracker, asks /proc, watches each
//! tracked process with a pidfd and hands the publisher the tracked set
//! whenever it changes. No lock is shared with the reader and no /proc read
//! runs on the async runtime's workers.

use super::Pipeline;
use crate::stats::Stats;
use crate::track::procfs::ProcView;
use crate::track::schedstat::{self, Sampler};
use crate::track::state::StateFilePath;
use crate::track::{Limits, Persisted, Targets, Tracked, Tracker};
use crate::wake::{self, WakeFd, Waker};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often tracked processes are re-read in /proc (new and exited
/// threads; exits too where pidfds are missing) or, without /proc, how
/// often entries past their ttl are dropped. Half a second plus the
/// publisher's debounce keeps a thread change under 1 s from the API.
pub const TICK: Duration = Duration::from_millis(500);

/// Chunks queued for the tracker before the reader waits (64 KiB each):
/// room for seconds of a busy trace while the tracker reads /proc.
const INBOX: usize = 256;

/// The longest the tracker spends on its inbox in one wake before exits,
/// ticks, publishing and saving get their turn: an inbox that never empties
/// (a thread storm, a flood of lines) must not hold them back.
const INPUT_BUDGET: Duration = Duration::from_millis(50);

/// What the tracker thread is handed.
#[derive(Debug)]
pub enum Input {
    Chunk(Vec<u8>),
    /// The source was (re)opened: a partial line left by the previous one
    /// ends there instead of being glued onto the next line.
    SourceOpened,
    Targets(Targets, Limits),
}

/// The sending side; dropping every clone ends the tracker thread.
#[derive(Debug, Clone)]
pub struct Inbox {
    // Dropped before the waker, so that the thread woken by the pipe's
    // hang-up finds the channel closed.
    tx: SyncSender<Input>,
    waker: Waker,
    closing: Arc<AtomicBool>,
}

impl Inbox {
    pub fn send(&self, input: Input) {
        if self.tx.send(input).is_ok() {
            self.waker.wake();
        }
    }

    /// Shutting down: chunks still queued are dropped unread, so that a
    /// full inbox (a flood) does not hold the exit back; nothing they say
    /// could be published any more.
    pub fn close(&self) {
        self.closing.store(true, Relaxed);
        self.waker.wake();
    }
}

#[derive(Debug, Clone)]
pub struct ThreadSettings {
    pub max_line: usize,
    /// Without /proc: how long an entry lives after its last trace line.
    pub ttl: Duration,
    /// Watch exits with pidfds; false leaves them to the /proc poll.
    pub pidfd: bool,
    /// Where the tracked set survives restarts (with /proc only).
    pub state: Option<StateFilePath>,
}

/// Starts the tracker thread. It restores the state file and publishes a
/// first set before it takes any input; `out` holds None until then.
pub fn spawn<P: ProcView + 'static>(
    tracker: Tracker<P>,
    settings: ThreadSettings,
    stats: Arc<Stats>,
    out: watch::Sender<Option<Tracked>>,
) -> io::Result<(Inbox, std::thread::JoinHandle<()>)> {
    let (wake, waker) = wake::pipe()?;
    let (tx, rx) = mpsc::sync_channel(INBOX);
    let closing = Arc::new(AtomicBool::new(false));
    let owner = Owner {
        closing: closing.clone(),
        pipeline: Pipeline::new(settings.max_line),
        pidfds: HashMap::new(),
        use_pidfd: settings.pidfd && tracker.is_live(),
        saved: None,
        sampler: Sampler::default(),
        save_failed: false,
        tracker,
        settings,
        stats,
        out,
    };
    let thread =
        std::thread::Builder::new().name("tracker".into()).spawn(move || owner.run(&rx, &wake))?;
    Ok((Inbox { tx, waker, closing }, thread))
}

struct Owner<P> {
    tracker: Tracker<P>,
    pipeline: Pipeline,
    settings: ThreadSettings,
    stats: Arc<Stats>,
    out: watch::Sender<Option<Tracked>>,
    pidfds: HashMap<u32, OwnedFd>,
    use_pidfd: bool,
    /// What the state file holds, as far as this run knows.
    saved: Option<Vec<Persisted>>,
    sampler: Sampler,
    /// The last save failed: retried every tick until one succeeds.
    save_failed: bool,
    closing: Arc<AtomicBool>,
}

/// What one wake's share of the inbox did.
struct Taken {
    changed: bool,
    /// Inputs are still waiting: poll without blocking.
    more: bool,
}

impl<P: ProcView> Owner<P> {
    fn run(mut self, rx: &Receiver<Input>, wake: &WakeFd) {
        self.restore();
        self.sync_pidfds();
        self.publish();
        let mut next_tick = Instant::now() + TICK;
        let mut more = false;
        loop {
            let watched: Vec<u32> = self.pidfds.keys().copied().collect();
            let mut fds: Vec<libc::pollfd> = std::iter::once(wake.fd())
                .chain(watched.iter().map(|t| self.pidfds[t].as_raw_fd()))
                .map(wake::pollin)
                .collect();
            // Nothing to re-read, expire or retry: sleep until woken.
            let idle = self.tracker.stats().processes == 0 && !self.save_failed;
            let timeout = if more {
                Some(Duration::ZERO)
            } else {
                (!idle).then(|| next_tick.saturating_duration_since(Instant::now()))
            };
            wake::poll(&mut fds, timeout);
            wake.take_all();
            let Some(taken) = self.take_inputs(rx) else { return };
            more = taken.more;
            let mut changed = taken.changed | self.take_exits(&watched, &fds[1..]);
            let ticked = !idle && Instant::now() >= next_tick;
            if idle {
                // Nothing to re-read or expire: what this wake added was just
                // read from /proc, so its first tick is a full TICK away.
                next_tick = Instant::now() + TICK;
            } else if ticked {
                changed |= self.tick();
                self.sample();
                next_tick = Instant::now() + TICK;
                if self.save_failed && !changed {
                    self.save();
                }
            }
            if changed {
                self.sync_pidfds();
                self.publish();
                self.save();
            }
            // Per tick, not per chunk: a busy trace pays nothing for it.
            if changed || ticked {
                self.publish_status();
            }
        }
    }

    /// The processes whose pidfd (`fds`, in the order of `watched`) said
    /// they exited; true when the set changed.
    fn take_exits(&mut self, watched: &[u32], fds: &[libc::pollfd]) -> bool {
        let mut changed = false;
        for (tgid, fd) in watched.iter().zip(fds) {
            if fd.revents != 0 {
                // Exited (or, rarely, reaped and reused): /proc says which.
                self.pidfds.remove(tgid);
                changed |= self.tracker.refresh_process(*tgid);
            }
        }
        changed
    }

    /// Inputs until the inbox is empty or INPUT_BUDGET is spent; None once
    /// every sender is gone.
    fn take_inputs(&mut self, rx: &Receiver<Input>) -> Option<Taken> {
        let until = Instant::now() + INPUT_BUDGET;
        let mut changed = false;
        while Instant::now() < until {
            match rx.try_recv() {
                Ok(input) => changed |= self.handle(input),
                Err(TryRecvError::Empty) => return Some(Taken { changed, more: false }),
                Err(TryRecvError::Disconnected) => return None,
            }
        }
        Some(Taken { changed, more: true })
    }

    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Chunk(_) if self.closing.load(Relaxed) => false,
            Input::Chunk(chunk) => {
                self.tracker.set_clock(Instant::now());
                let grew = self.pipeline.push(&chunk, &mut self.tracker);
                self.stats.bytes.fetch_add(chunk.len() as u64, Relaxed);
                self.stats.add_counts(&self.pipeline.take_counts());
                self.take_heartbeats();
                grew
            }
            Input::SourceOpened => {
                let grew = self.pipeline.finish(&mut self.tracker);
                self.stats.add_counts(&self.pipeline.take_counts());
                grew
            }
            Input::Targets(targets, limits) => {
                self.tracker.set_targets(targets, limits);
                false
            }
        }
    }

    /// Live: re-read every tracked process. Otherwise: drop what the trace
    /// has not named for the ttl.
    fn tick(&mut self) -> bool {
        if self.tracker.is_live() {
            self.tracker.refresh()
        } else {
            self.tracker.set_clock(Instant::now());
            self.tracker.expire(self.settings.ttl)
        }
    }

    /// Live: every tracked thread's schedstat, on the tick that re-read
    /// /proc anyway (none while nothing is tracked).
    fn sample(&mut self) {
        if self.tracker.is_live() {
            let root = std::path::Path::new("/proc");
            self.sampler.sample(&self.tracker.processes(), Instant::now(), |tgid, tid| {
                schedstat::read(root, tgid, tid)
            });
        }
    }

    fn take_heartbeats(&mut self) {
        let (last, n) = self.pipeline.take_heartbeats();
        if let Some(h) = last {
            self.stats.heartbeats.fetch_add(n, Relaxed);
            self.stats.last_heartbeat_unix_ms.store(crate::clock::unix_ms(), Relaxed);
            self.stats.status.lock().unwrap_or_else(|e| e.into_inner()).tracer =
                Some((h.pid, h.interval_s));
        }
    }

    /// The tracked processes and their figures, for /status and /metrics.
    fn publish_status(&mut self) {
        let processes = self.tracker.processes();
        let targets = crate::status::targets(
            &processes,
            self.pipeline.activity(),
            &self.sampler,
            crate::clock::unix_ms(),
        );
        let usage = self.sampler.usage(&processes);
        let mut live = self.stats.status.lock().unwrap_or_else(|e| e.into_inner());
        live.targets = targets;
        live.usage = usage;
    }

    fn restore(&mut self) {
        let Some(file) = self.settings.state.clone().filter(|_| self.tracker.is_live()) else {
            return;
        };
        match file.load() {
            Ok(entries) => {
                let restored = self.tracker.restore(&entries);
                tracing::info!(
                    path = %file.path().display(),
                    saved = entries.len(),
                    restored,
                    "tracked processes restored (the others exited or their pid was reused)"
                );
                self.saved = Some(entries);
            }
            Err(e) => tracing::warn!(error = %e, "ignoring the state file"),
        }
        self.save();
    }

    fn save(&mut self) {
        let Some(file) = self.settings.state.as_ref().filter(|_| self.tracker.is_live()) else {
            return;
        };
        let now = self.tracker.persisted();
        if self.saved.as_ref() == Some(&now) {
            return;
        }
        match file.save(&now) {
            Ok(()) => {
                if self.save_failed {
                    tracing::info!(path = %file.path().display(), "tracked processes saved again");
                }
                self.save_failed = false;
                self.saved = Some(now);
            }
            // Said once; retried every tick, quietly, until it works.
            Err(e) if self.save_failed => tracing::debug!(error = %e, "saving still fails"),
            Err(e) => {
                tracing::warn!(error = %e, retry_ms = TICK.as_millis() as u64, "cannot save the tracked processes; a restart would not restore them; retrying");
                self.save_failed = true;
            }
        }
    }

    fn publish(&mut self) {
        let s = self.tracker.stats();
        self.stats.tracked_processes.store(s.processes as u64, Relaxed);
        self.stats.tracked_threads.store(s.threads as u64, Relaxed);
        self.stats.tracker_dropped.store(s.dropped, Relaxed);
        let now = self.tracker.tracked();
        self.out.send_if_modified(|held| {
            let differs = held.as_ref() != Some(&now);
            if differs {
                *held = Some(now);
            }
            differs
        });
    }

    /// One pidfd per tracked process, none for the forgotten ones. Run
    /// before `publish`: opening one can find the process already gone.
    fn sync_pidfds(&mut self) {
        if self.use_pidfd {
            for tgid in self.tracker.process_ids() {
                if !self.pidfds.contains_key(&tgid) && !self.watch(tgid) {
                    break;
                }
            }
        }
        let tracked = self.tracker.process_ids();
        self.pidfds.retain(|tgid, _| tracked.binary_search(tgid).is_ok());
    }

    /// Opens a pidfd for `tgid`; false when pidfds turn out to be missing.
    fn watch(&mut self, tgid: u32) -> bool {
        match pidfd_open(tgid) {
            Ok(fd) => {
                self.pidfds.insert(tgid, fd);
                // The pid may have changed hands between the /proc read and
                // the open: make sure it is still the same process.
                self.tracker.refresh_process(tgid);
                true
            }
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                self.tracker.refresh_process(tgid);
                true
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    poll_ms = TICK.as_millis() as u64,
                    "pidfd_open failed; noticing exits by polling /proc instead"
                );
                self.use_pidfd = false;
                false
            }
        }
    }
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just handed us this fd (close-on-exec by default).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
