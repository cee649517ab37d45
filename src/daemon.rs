//! The daemon: source thread -> parse -> track, and the publisher task,
//! until told to stop.

use crate::config::{Config, ConfigError};
use crate::pipeline::Pipeline;
use crate::publish::{PidSource, Publisher, Settings};
use crate::signal::{stop_requested, Control};
use crate::source::{self, AtEnd, Event, Reader};
use crate::stats::Stats;
use crate::track::procfs::{LiveProc, NoProc, ProcView};
use crate::track::{Limits, Targets, Tracker};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};

/// How long an in-flight POST may finish after SIGTERM.
pub const DRAIN: Duration = Duration::from_secs(5);

pub(crate) type Shared<P> = Arc<Mutex<Tracker<P>>>;

pub(crate) fn lock<P>(t: &Shared<P>) -> std::sync::MutexGuard<'_, Tracker<P>> {
    // A panic elsewhere must not stop the daemon from reading its state.
    t.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn tracker<P: ProcView>(cfg: &Config, proc: P) -> Shared<P> {
    Arc::new(Mutex::new(Tracker::new(Targets::new(&cfg.targets.names), limits(cfg), proc)))
}

fn limits(cfg: &Config) -> Limits {
    Limits { max_processes: cfg.targets.max_processes, max_threads: cfg.targets.max_threads }
}

/// The reader thread's handler: chunks go through the pipeline into the
/// tracker; growth wakes the publisher.
pub(crate) fn feeder<P: ProcView + 'static>(
    max_line: usize,
    tracker: Shared<P>,
    stats: Arc<Stats>,
    changed: Arc<Notify>,
) -> impl FnMut(Event<'_>) + Send + 'static {
    let mut pipeline = Pipeline::new(max_line);
    // The last problem reported, so that a source that keeps failing the
    // same way (a FIFO without writer) is reported once, not per retry.
    let mut last_error = String::new();
    let mut announced = false;
    move |event| match event {
        Event::Data(chunk) => {
            if !last_error.is_empty() {
                tracing::info!("trace source delivering again");
                last_error.clear();
            }
            let grew = pipeline.push(chunk, &mut lock(&tracker));
            stats.bytes.fetch_add(chunk.len() as u64, Relaxed);
            stats.add_counts(&pipeline.take_counts());
            if grew {
                changed.notify_one();
            }
        }
        Event::Opened(path) => {
            stats.source_up.store(true, Relaxed);
            stats.source_down_since_unix_ms.store(0, Relaxed);
            if !announced {
                tracing::info!(path = %path.display(), "reading trace lines");
                announced = true;
            } else {
                tracing::debug!(path = %path.display(), "reopened trace source");
            }
        }
        Event::Down { error, retry_in } => {
            stats.source_up.store(false, Relaxed);
            let _ = stats.source_down_since_unix_ms.compare_exchange(
                0,
                crate::stats::now_unix_ms(),
                Relaxed,
                Relaxed,
            );
            stats.source_reopens.fetch_add(1, Relaxed);
            let text = error.to_string();
            if text != last_error {
                tracing::warn!(error = %text, retry_in_ms = retry_in.as_millis() as u64, "trace source unavailable; retrying");
                last_error = text;
            } else {
                tracing::debug!(error = %text, "trace source still unavailable");
            }
        }
        Event::End => {
            if pipeline.finish(&mut lock(&tracker)) {
                changed.notify_one();
            }
            stats.add_counts(&pipeline.take_counts());
        }
    }
}

struct TrackerPids<P> {
    tracker: Shared<P>,
    stats: Arc<Stats>,
}

impl<P: ProcView> PidSource for TrackerPids<P> {
    fn current_pids(&mut self, threads: bool) -> Vec<u32> {
        let mut t = lock(&self.tracker);
        t.refresh();
        let s = t.stats();
        self.stats.tracked_processes.store(s.processes as u64, Relaxed);
        self.stats.tracked_threads.store(s.threads as u64, Relaxed);
        self.stats.tracker_dropped.store(s.dropped, Relaxed);
        t.pids(threads)
    }
}

fn settings(cfg: &Config) -> Settings {
    Settings { api: cfg.api.clone(), strategy: cfg.strategy.clone(), threads: cfg.targets.threads }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("starting the trace reader thread: {0}")]
    Reader(std::io::Error),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
}

/// Hooks the daemon calls as its state changes (systemd notification).
pub trait Lifecycle: Send {
    fn ready(&mut self) {}
    fn reloading(&mut self) {}
    fn stopping(&mut self) {}
}

impl Lifecycle for () {}

/// Runs the daemon until a `Control::Shutdown` arrives (or the channel
/// closes). `reload` re-reads the configuration for SIGHUP.
pub async fn run(
    cfg: Config,
    stats: Arc<Stats>,
    reload: impl Fn() -> Result<Config, ConfigError>,
    control: mpsc::UnboundedReceiver<Control>,
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
    mut control: mpsc::UnboundedReceiver<Control>,
    mut lifecycle: impl Lifecycle,
) -> Result<(), DaemonError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics = match cfg.metrics.listen {
        Some(addr) => Some(tokio::spawn(
            crate::metrics::serve(addr, stats.clone(), (&cfg.metrics).into(), {
                let mut stop = stop_rx.clone();
                async move { stop_requested(&mut stop).await }
            })
            .await?,
        )),
        None => None,
    };
    let tracker = tracker(&cfg, proc);
    let changed = Arc::new(Notify::new());
    let (pipe, mount) = (cfg.trace.pipe.clone(), cfg.trace.mount_tracefs);
    let reader = Reader::spawn(
        move || source::locate(pipe.as_deref(), mount),
        AtEnd::Follow,
        feeder(cfg.trace.max_line_bytes, tracker.clone(), stats.clone(), changed.clone()),
    )
    .map_err(DaemonError::Reader)?;

    let (settings_tx, settings_rx) = watch::channel(settings(&cfg));
    let publisher = Publisher::new(
        settings_rx,
        TrackerPids { tracker: tracker.clone(), stats: stats.clone() },
        changed,
        stats.clone(),
        DRAIN,
    );
    let publisher = tokio::spawn(publisher.run(stop_rx.clone()));
    let stats_log = tokio::spawn(log_stats(
        stats.clone(),
        Duration::from_secs(cfg.log.stats_interval_s),
        stop_rx.clone(),
    ));
    lifecycle.ready();
    tracing::info!(targets = ?cfg.targets.names, endpoint = %cfg.api.endpoint, "gtp5g-operator running");

    let mut current = cfg;
    while let Some(msg) = control.recv().await {
        match msg {
            Control::Shutdown => break,
            Control::Reload => {
                lifecycle.reloading();
                match reload() {
                    Ok(new) => {
                        apply_reload(&current, &new, &tracker, &settings_tx);
                        current = new;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reload rejected; keeping the running configuration")
                    }
                }
                lifecycle.ready();
            }
        }
    }

    lifecycle.stopping();
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = tokio::task::spawn_blocking(move || reader.stop_and_join()).await;
    if tokio::time::timeout(DRAIN + Duration::from_secs(1), publisher).await.is_err() {
        tracing::warn!("publisher did not stop within the drain deadline");
    }
    let _ = stats_log.await;
    if let Some(m) = metrics {
        let _ = m.await;
    }
    log_counts(&stats);
    Ok(())
}

fn apply_reload<P: ProcView>(
    old: &Config,
    new: &Config,
    tracker: &Shared<P>,
    settings: &watch::Sender<Settings>,
) {
    if old.trace != new.trace {
        tracing::warn!("trace.* changes take effect on restart");
    }
    if old.log != new.log {
        tracing::warn!("log.* changes take effect on restart");
    }
    if old.metrics != new.metrics {
        tracing::warn!("metrics.* changes take effect on restart");
    }
    lock(tracker).set_targets(Targets::new(&new.targets.names), limits(new));
    let _ = settings.send(self::settings(new));
    tracing::info!(targets = ?new.targets.names, endpoint = %new.api.endpoint, "configuration reloaded");
}

async fn log_stats(stats: Arc<Stats>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = tick.tick() => log_counts(&stats),
            _ = stop_requested(&mut stop) => return,
        }
    }
}

fn log_counts(s: &Stats) {
    let c = s.counts();
    tracing::info!(
        lines = c.lines,
        parsed = c.parsed,
        events = c.events,
        skipped = c.skipped,
        malformed = c.malformed,
        lost_events = c.lost_events,
        oversized = c.oversized,
        tracked_processes = s.tracked_processes.load(Relaxed),
        tracked_threads = s.tracked_threads.load(Relaxed),
        dropped = s.tracker_dropped.load(Relaxed),
        posts_ok = s.posts_ok.load(Relaxed),
        posts_failed = s.posts_failed_transport.load(Relaxed)
            + s.posts_failed_http.load(Relaxed)
            + s.posts_failed_auth.load(Relaxed)
            + s.posts_failed_body.load(Relaxed),
        "counters"
    );
}
