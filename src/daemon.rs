//! The daemon: source thread -> parse -> track, and the publisher task,
//! until told to stop.

use crate::config::{Config, ConfigError};
use crate::pipeline::thread::{self, Inbox, Input, ThreadSettings};
use crate::publish::{Publisher, Settings};
use crate::signal::Control;
use crate::source::{AtEnd, Choice, Event, Reader};
use crate::stats::Stats;
use crate::track::procfs::{LiveProc, NoProc, ProcView};
use crate::track::state::StateFilePath;
use crate::track::{Limits, Targets, Tracker};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

/// How long POSTs may still run after SIGTERM (an in-flight one, and the
/// clearing one of `strategy.on_stop = "clear"`).
pub const DRAIN: Duration = Duration::from_secs(5);

/// A source that stayed open this long before failing had been up: its
/// next failure starts a new "down since". A FIFO without a writer ends at
/// once on every reopen and so stays down.
const SOURCE_UP_AFTER: Duration = Duration::from_secs(1);

/// The reader thread's handler: chunks go to the tracker thread as they
/// are; the source's ups and downs go to the stats and the log.
/// The first open is announced, and its path sent to `opened`.
fn forward(
    inbox: Inbox,
    stats: Arc<Stats>,
    opened: oneshot::Sender<PathBuf>,
) -> impl FnMut(Event<'_>) + Send + 'static {
    // The last problem reported, so that a source that keeps failing the
    // same way (a FIFO without writer) is reported once, not per retry.
    let mut last_error = String::new();
    let mut opened = Some(opened);
    let mut opened_at = Instant::now();
    move |event| match event {
        Event::Data(chunk) => {
            if !last_error.is_empty() {
                tracing::info!("trace source delivering again");
                last_error.clear();
            }
            stats.source_down_since_unix_ms.store(0, Relaxed);
            inbox.send(Input::Chunk(chunk.to_vec()));
        }
        Event::Opened(path) => {
            stats.source_up.store(true, Relaxed);
            opened_at = Instant::now();
            inbox.send(Input::SourceOpened);
            if let Some(first) = opened.take() {
                tracing::info!(path = %path.display(), "reading trace lines");
                let _ = first.send(path.to_path_buf());
            } else {
                tracing::debug!(path = %path.display(), "reopened trace source");
            }
        }
        Event::Down { error, retry_in } => {
            stats.source_up.store(false, Relaxed);
            let now = crate::clock::unix_ms();
            if opened_at.elapsed() >= SOURCE_UP_AFTER {
                stats.source_down_since_unix_ms.store(now, Relaxed);
            } else {
                let _ = stats.source_down_since_unix_ms.compare_exchange(0, now, Relaxed, Relaxed);
            }
            stats.source_reopens.fetch_add(1, Relaxed);
            let text = error.to_string();
            text.clone_into(&mut stats.source_error.lock().unwrap_or_else(|p| p.into_inner()));
            if text != last_error {
                tracing::warn!(error = %text, retry_in_ms = retry_in.as_millis() as u64, "trace source unavailable; retrying");
                last_error = text;
            } else {
                tracing::debug!(error = %text, "trace source still unavailable");
            }
        }
        Event::End => {}
    }
}

fn settings(cfg: &Config) -> Settings {
    Settings { api: cfg.api.clone(), strategy: cfg.strategy.clone(), threads: cfg.targets.threads }
}

fn thread_settings(cfg: &Config) -> ThreadSettings {
    ThreadSettings {
        max_line: cfg.trace.max_line_bytes,
        ttl: Duration::from_secs(cfg.targets.ttl_s),
        pidfd: cfg.targets.pidfd,
        state: Some(StateFilePath::in_dir(&cfg.state.dir)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("starting the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
}

/// What the daemon knows once it is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub pid: u32,
    /// The trace source opened (the kernel's trace_pipe, or a file or FIFO).
    pub source: PathBuf,
}

/// Hooks the daemon calls as its state changes (systemd notification, the
/// ready file). `ready` comes once the trace source is open and the first
/// POST has had its answer, and again after each reload.
pub trait Lifecycle: Send {
    fn ready(&mut self, _: &Readiness) {}
    fn reloading(&mut self) {}
    fn stopping(&mut self) {}
}

impl Lifecycle for () {}

impl<L: Lifecycle> Lifecycle for Option<L> {
    fn ready(&mut self, r: &Readiness) {
        self.iter_mut().for_each(|l| l.ready(r));
    }
    fn reloading(&mut self) {
        self.iter_mut().for_each(L::reloading);
    }
    fn stopping(&mut self) {
        self.iter_mut().for_each(L::stopping);
    }
}

impl<A: Lifecycle, B: Lifecycle> Lifecycle for (A, B) {
    fn ready(&mut self, r: &Readiness) {
        self.0.ready(r);
        self.1.ready(r);
    }
    fn reloading(&mut self) {
        self.0.reloading();
        self.1.reloading();
    }
    fn stopping(&mut self) {
        self.0.stopping();
        self.1.stopping();
    }
}

/// Ready when the source has opened and the first POST has been answered
/// (either way); None if the reader or the publisher ended first.
async fn readiness(
    opened: oneshot::Receiver<PathBuf>,
    answered: oneshot::Receiver<()>,
) -> Option<Readiness> {
    let source = opened.await.ok()?;
    answered.await.ok()?;
    Some(Readiness { pid: std::process::id(), source })
}

/// Runs the daemon until `control.stop` is cancelled. `reload` re-reads
/// the configuration when `control.reload` is notified (SIGHUP).
pub async fn run(
    cfg: Config,
    stats: Arc<Stats>,
    reload: impl Fn() -> Result<Config, ConfigError>,
    control: Control,
    lifecycle: impl Lifecycle,
) -> Result<(), DaemonError> {
    if cfg.targets.check_proc {
        run_with(LiveProc::default(), cfg, stats, reload, control, lifecycle).await
    } else {
        run_with(NoProc, cfg, stats, reload, control, lifecycle).await
    }
}

async fn run_with<P: ProcView + 'static>(
    proc: P,
    cfg: Config,
    stats: Arc<Stats>,
    reload: impl Fn() -> Result<Config, ConfigError>,
    control: Control,
    mut lifecycle: impl Lifecycle,
) -> Result<(), DaemonError> {
    let stop = control.stop.clone();
    show_endpoint(&stats, &cfg);
    let metrics = match cfg.metrics.listen {
        Some(addr) => Some(tokio::spawn(
            crate::metrics::serve(
                addr,
                stats.clone(),
                (&cfg.metrics).into(),
                stop.clone().cancelled_owned(),
            )
            .await?,
        )),
        None => None,
    };
    let (tracked_tx, tracked_rx) = watch::channel(None);
    let (inbox, tracker_thread) = thread::spawn(
        Tracker::from_config(&cfg.targets, proc),
        thread_settings(&cfg),
        stats.clone(),
        tracked_tx,
    )
    .map_err(|e| DaemonError::Thread("tracker", e))?;
    let (opened_tx, opened_rx) = oneshot::channel();
    let t = &cfg.trace;
    let mut choice =
        Choice::new(t.pipe.clone(), t.instance.clone(), t.instance_buffer_kb, t.mount_tracefs);
    let reader = Reader::spawn(
        move || choice.path(),
        AtEnd::Follow,
        forward(inbox.clone(), stats.clone(), opened_tx),
    )
    .map_err(|e| DaemonError::Thread("trace reader", e))?;

    let (settings_tx, settings_rx) = watch::channel(settings(&cfg));
    let (answered_tx, answered_rx) = oneshot::channel();
    let publisher =
        Publisher::new(settings_rx, tracked_rx, stats.clone(), DRAIN).on_first_answer(answered_tx);
    let publisher = tokio::spawn(publisher.run(stop.clone()));
    let stats_log = tokio::spawn(log_stats(
        stats.clone(),
        Duration::from_secs(cfg.log.stats_interval_s),
        stop.clone(),
    ));
    tracing::info!(targets = ?cfg.targets.names, endpoint = %cfg.api.endpoint, "gtp5g-operator running");
    let mut ready = None;
    tokio::select! {
        _ = stop.cancelled() => {}
        Some(r) = readiness(opened_rx, answered_rx) => {
            lifecycle.ready(&r);
            tracing::info!(source = %r.source.display(), "ready");
            ready = Some(r);
        }
    }

    let mut current = cfg;
    let mut check_loops = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = check_loops.tick() => {
                let ended = [
                    ("the trace reader thread", reader.is_finished()),
                    ("the tracker thread", tracker_thread.is_finished()),
                    ("the publisher", publisher.is_finished()),
                ];
                note_loops(&stats, &ended);
            }
            _ = control.reload.notified() => {
                lifecycle.reloading();
                match reload() {
                    Ok(new) => {
                        apply_reload(&current, &new, &inbox, &settings_tx);
                        show_endpoint(&stats, &new);
                        current = new;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reload rejected; keeping the running configuration")
                    }
                }
                if let Some(r) = &ready {
                    lifecycle.ready(r);
                }
            }
            _ = control.stall.notified() => stall_runtime(),
        }
    }

    lifecycle.stopping();
    tracing::info!("shutting down");
    inbox.close();
    drop(inbox);
    // The tracker thread ends once the reader, the last sender, is gone.
    let _ = tokio::task::spawn_blocking(move || {
        reader.stop_and_join();
        let _ = tracker_thread.join();
    })
    .await;
    if tokio::time::timeout(DRAIN + Duration::from_secs(1), publisher).await.is_err() {
        tracing::warn!("publisher did not stop within the drain deadline");
    }
    let _ = stats_log.await;
    if let Some(m) = metrics {
        let _ = m.await;
    }
    stats.log_counters();
    Ok(())
}

/// For /livez: the time of this check, and the first loop found ended.
fn note_loops(stats: &Stats, ended: &[(&str, bool)]) {
    stats.loops_checked_unix_ms.store(crate::clock::unix_ms(), Relaxed);
    if let Some((which, _)) = ended.iter().find(|(_, ended)| *ended) {
        if stats.loop_ended.get().is_none() {
            tracing::error!("{which} ended while the daemon runs; /livez now fails");
            stats.loop_ended.set(Some((*which).to_owned()));
        }
    }
}

/// Test only (signal::STALL_ENV): blocks every worker thread for good, as a
/// deadlock in async code would, so the watchdog task stops feeding systemd.
fn stall_runtime() {
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::warn!(workers, "stalling the async runtime (test trigger)");
    for _ in 0..workers {
        tokio::spawn(async { std::thread::sleep(Duration::MAX) });
    }
}

fn apply_reload(old: &Config, new: &Config, inbox: &Inbox, settings: &watch::Sender<Settings>) {
    if old.trace != new.trace {
        tracing::warn!("trace.* changes take effect on restart");
    }
    if old.log != new.log {
        tracing::warn!("log.* changes take effect on restart");
    }
    if old.metrics != new.metrics {
        tracing::warn!("metrics.* changes take effect on restart");
    }
    if old.state != new.state
        || (old.targets.check_proc, old.targets.ttl_s, old.targets.pidfd)
            != (new.targets.check_proc, new.targets.ttl_s, new.targets.pidfd)
    {
        tracing::warn!(
            "state.dir and targets.check_proc/ttl_s/pidfd changes take effect on restart"
        );
    }
    inbox.send(Input::Targets(
        Targets::from_config(&new.targets),
        Limits::from_config(&new.targets),
    ));
    let _ = settings.send(self::settings(new));
    tracing::info!(targets = ?new.targets.names, endpoint = %new.api.endpoint, "configuration reloaded");
}

/// For /status: the API the strategies go to.
fn show_endpoint(stats: &Stats, cfg: &Config) {
    stats.status.lock().unwrap_or_else(|e| e.into_inner()).endpoint = cfg.api.endpoint.clone();
}

async fn log_stats(stats: Arc<Stats>, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = tick.tick() => stats.log_counters(),
            _ = stop.cancelled() => return,
        }
    }
}
