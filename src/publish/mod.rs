//! Publish stage: keeps the API's strategy list in step with the tracked
//! set — promptly (debounced) on change, every interval otherwise, with
//! jittered exponential backoff while the API fails.

pub mod client;

use crate::api::Strategy;
use crate::backoff::Backoff;
use crate::clock::unix_ms;
use crate::config::{ApiConfig, OnStop, StrategyConfig};
use crate::stats::Stats;
use crate::track::Tracked;
use client::{ApiClient, FailureKind, PublishError};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

/// Turns tracked ids into the POST body: one strategy per pid, sorted, then
/// the configured static strategies so that the overwrite keeps them.
pub fn strategies(pids: &[u32], cfg: &StrategyConfig) -> Vec<Strategy> {
    let mut sorted = pids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
        .into_iter()
        .filter(|&p| p != 0)
        .map(|pid| Strategy {
            priority: cfg.priority,
            execution_time: cfg.execution_time_ns,
            pid: pid.into(),
            selectors: Vec::new(),
            command_regex: String::new(),
        })
        .chain(cfg.static_strategies.iter().cloned())
        .collect()
}

/// Settings the publisher takes from the config; replaced on SIGHUP.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub api: ApiConfig,
    pub strategy: StrategyConfig,
    pub threads: bool,
}

/// The first retry waits about this long; the cap is `api.retry_max_s`.
const BACKOFF_START: Duration = Duration::from_millis(500);

fn backoff(api: &ApiConfig) -> Backoff {
    Backoff::jittered(BACKOFF_START, Duration::from_secs(api.retry_max_s))
}

pub struct Publisher {
    settings: watch::Receiver<Settings>,
    /// None until the tracker has restored its state and published a set.
    tracked: watch::Receiver<Option<Tracked>>,
    stats: Arc<Stats>,
    /// How long POSTs may still run once a stop is asked.
    drain: Duration,
    stopped_at: OnceLock<Instant>,
    /// Told when the first POST has been answered (readiness).
    first_answer: Option<oneshot::Sender<()>>,
}

impl Publisher {
    pub fn new(
        settings: watch::Receiver<Settings>,
        tracked: watch::Receiver<Option<Tracked>>,
        stats: Arc<Stats>,
        drain: Duration,
    ) -> Self {
        Publisher {
            settings,
            tracked,
            stats,
            drain,
            stopped_at: OnceLock::new(),
            first_answer: None,
        }
    }

    /// `answered` is told once the first POST has its answer, good or bad.
    pub fn on_first_answer(mut self, answered: oneshot::Sender<()>) -> Self {
        self.first_answer = Some(answered);
        self
    }

    /// Runs until `stop` is cancelled, then applies `strategy.on_stop`;
    /// POSTs get `drain` from the stop to finish.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut settings = self.settings.borrow_and_update().clone();
        let mut client = self.new_client(&settings);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = self.tracked.wait_for(Option::is_some) => {}
        }
        let mut backoff = backoff(&settings.api);
        // None: not known, as at start (another client or an earlier run may
        // have left anything), so the first list always goes out.
        let mut in_force: Option<Vec<Strategy>> = None;
        let mut next_periodic = Instant::now();
        let mut retry_at: Option<Instant> = None;
        // Until the API answers 404: only some servers keep the scheduler's report.
        let mut scheduler_offered = true;
        while !stop.is_cancelled() {
            let list = strategies(&self.current_pids(settings.threads), &settings.strategy);
            let due = retry_at.is_some_and(|t| Instant::now() >= t)
                || (retry_at.is_none()
                    && (Instant::now() >= next_periodic || in_force.as_ref() != Some(&list)));
            // An empty list is not repeated: the API already holds it, and
            // repeating it would only erase another client's list.
            let worth_sending = !list.is_empty() || in_force.as_ref() != Some(&list);
            if due && worth_sending {
                let outcome = match client.as_mut() {
                    Ok(c) => self.send(c, &list, &stop).await,
                    Err(e) => Some(Err(PublishError::Setup(e.to_string()))),
                };
                if let Some(answered) = self.first_answer.take().filter(|_| outcome.is_some()) {
                    let _ = answered.send(());
                }
                match outcome {
                    None => return,
                    Some(Ok(())) => {
                        in_force = Some(list);
                        backoff.reset();
                        retry_at = None;
                        next_periodic = Instant::now() + interval(&settings);
                        if let (Ok(c), false) = (client.as_mut(), stop.is_cancelled()) {
                            self.read_scheduler(c, &mut scheduler_offered).await;
                        }
                    }
                    Some(Err(e)) => {
                        let wait = backoff.wait();
                        self.record_failure(&e, wait);
                        retry_at = Some(Instant::now() + wait);
                    }
                }
            } else if due {
                // The API holds the list wanted: nothing is failing any more,
                // and no retry is pending (a stale retry time would wake this
                // loop at once).
                retry_at = None;
                backoff.reset();
                self.stats.first_failure_unix_ms.store(0, Relaxed);
                next_periodic = Instant::now() + interval(&settings);
            }
            let wake_at = retry_at.unwrap_or(next_periodic);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = sleep_until(wake_at) => {}
                Ok(()) = self.tracked.changed() => {
                    // Let a burst of changes (a process starting its threads) settle.
                    let debounce = Duration::from_millis(settings.strategy.debounce_ms);
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(debounce) => {}
                    }
                }
                Ok(()) = self.settings.changed() => {
                    let new = self.settings.borrow_and_update().clone();
                    if new.api != settings.api {
                        client = self.new_client(&new);
                        backoff = self::backoff(&new.api);
                        retry_at = None;
                        in_force = None;
                    }
                    settings = new;
                }
            }
        }
        if settings.strategy.on_stop == OnStop::Clear {
            self.clear(client.as_mut().ok(), &settings, &stop).await;
        }
    }

    fn current_pids(&mut self, threads: bool) -> Vec<u32> {
        self.tracked
            .borrow_and_update()
            .as_ref()
            .map(|t| t.pids(threads).to_vec())
            .unwrap_or_default()
    }

    /// `on_stop = "clear"`: leave only the static strategies in force.
    async fn clear(
        &self,
        client: Option<&mut ApiClient>,
        settings: &Settings,
        stop: &CancellationToken,
    ) {
        let list = strategies(&[], &settings.strategy);
        let Some(client) = client else { return };
        match self.send(client, &list, stop).await {
            Some(Ok(())) => tracing::info!("stopping: boosts cleared (strategy.on_stop = clear)"),
            Some(Err(e)) => tracing::warn!(error = %e, "stopping: clearing the boosts failed"),
            None => {}
        }
    }

    fn new_client(&self, settings: &Settings) -> Result<ApiClient, PublishError> {
        ApiClient::new(&settings.api)
            .inspect_err(|e| tracing::error!(error = %e, "cannot build the API client"))
    }

    /// When POSTs must be done by: `drain` after the stop was first seen.
    fn drain_deadline(&self) -> Instant {
        *self.stopped_at.get_or_init(Instant::now) + self.drain
    }

    /// None when the stop's drain deadline cut the POST off.
    async fn send(
        &self,
        client: &mut ApiClient,
        list: &[Strategy],
        stop: &CancellationToken,
    ) -> Option<Result<(), PublishError>> {
        let post = client.post_strategies(list);
        tokio::pin!(post);
        let drained = async {
            stop.cancelled().await;
            sleep_until(self.drain_deadline()).await;
        };
        let result = tokio::select! {
            r = &mut post => r,
            _ = drained => {
                tracing::warn!(deadline_ms = self.drain.as_millis() as u64, "shutdown: abandoned a POST still in flight");
                return None;
            }
        };
        Some(result.map(|posted| {
            if posted.authenticated {
                self.stats.token_refreshes.fetch_add(1, Relaxed);
            }
            self.stats.posts_ok.fetch_add(1, Relaxed);
            self.stats.last_post_ok_unix_ms.store(unix_ms(), Relaxed);
            self.stats.first_failure_unix_ms.store(0, Relaxed);
            self.stats.untrusted_api.set(None);
            let pids: Vec<i64> = list.iter().map(|s| s.pid).filter(|&p| p != 0).collect();
            tracing::info!(strategies = list.len(), ?pids, "strategies in force at the API");
        }))
    }

    /// After an accepted list: the scheduler's report the API holds, for
    /// /status. A 404 means this API keeps none: asked no more.
    async fn read_scheduler(&self, client: &mut ApiClient, offered: &mut bool) {
        if !*offered {
            return;
        }
        match client.scheduler_metrics().await {
            Ok(report) => {
                self.stats.status.lock().unwrap_or_else(|x| x.into_inner()).scheduler = Some(report)
            }
            Err(PublishError::Http { status: 404, .. }) => {
                tracing::info!("the API keeps no scheduler metrics (404); not asking again");
                *offered = false;
            }
            Err(e) => tracing::debug!(error = %e, "no scheduler metrics"),
        }
    }

    fn record_failure(&self, e: &PublishError, retry_in: Duration) {
        let counter = match e.kind() {
            FailureKind::Transport => &self.stats.posts_failed_transport,
            FailureKind::Http => &self.stats.posts_failed_http,
            FailureKind::Auth => &self.stats.posts_failed_auth,
            FailureKind::Body => &self.stats.posts_failed_body,
        };
        counter.fetch_add(1, Relaxed);
        if let PublishError::Untrusted { .. } = e {
            self.stats.untrusted_api.set(Some(e.to_string()));
        }
        let _ = self.stats.first_failure_unix_ms.compare_exchange(0, unix_ms(), Relaxed, Relaxed);
        self.stats.status.lock().unwrap_or_else(|x| x.into_inner()).last_error =
            Some((unix_ms(), e.to_string()));
        tracing::warn!(error = %e, retry_in_ms = retry_in.as_millis() as u64, "sending strategies failed");
    }
}

/// `strategy.interval_s`, no longer than config's bound even for settings
/// that skipped validation: an interval near u64::MAX would overflow the
/// clock and end the publisher in a panic while /healthz still said 200.
fn interval(settings: &Settings) -> Duration {
    Duration::from_secs(settings.strategy.interval_s.min(crate::config::MAX_SECONDS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Selector;
    use crate::local_api::LocalApi;

    fn cfg() -> StrategyConfig {
        StrategyConfig {
            priority: true.into(),
            execution_time_ns: 20_000_000,
            interval_s: 10,
            debounce_ms: 200,
            on_stop: OnStop::Keep,
            static_strategies: vec![Strategy {
                priority: true.into(),
                execution_time: 1,
                pid: 0,
                selectors: vec![Selector { key: "app".into(), value: "ueransim".into() }],
                command_regex: "nr-gnb|nr-ue".into(),
            }],
        }
    }

    #[test]
    fn one_sorted_strategy_per_pid_then_static_ones() {
        let s = strategies(&[30, 10, 20, 10, 0], &cfg());
        let pids: Vec<i64> = s.iter().map(|s| s.pid).collect();
        assert_eq!(pids, vec![10, 20, 30, 0]);
        assert!(s[..3].iter().all(|s| s.priority == true.into() && s.execution_time == 20_000_000));
        assert_eq!(s[3].selectors.len(), 1);
        assert_eq!(
            serde_json::to_string(&s[0]).unwrap(),
            r#"{"priority":true,"execution_time":20000000,"pid":10}"#
        );
    }

    fn settings(
        endpoint: String,
        public_key_path: std::path::PathBuf,
        debounce_ms: u64,
    ) -> Settings {
        Settings {
            api: ApiConfig {
                endpoint,
                public_key_path,
                ca_file: None,
                timeout_ms: 200,
                token_refresh_ahead_s: 300,
                retry_max_s: 1,
            },
            strategy: StrategyConfig { static_strategies: vec![], debounce_ms, ..cfg() },
            threads: true,
        }
    }

    fn other_key() -> std::path::PathBuf {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/other_public_key.pem").into()
    }

    fn tracked(pids: &[u32]) -> Option<Tracked> {
        Some(Tracked::from_pids(pids.to_vec(), pids.to_vec()))
    }

    struct Running {
        tracked: watch::Sender<Option<Tracked>>,
        stats: Arc<Stats>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
        _settings: watch::Sender<Settings>,
    }

    fn start(settings: Settings, first: &[u32]) -> Running {
        let (settings_tx, settings_rx) = watch::channel(settings);
        let (tracked_tx, tracked_rx) = watch::channel(tracked(first));
        let stats = Arc::new(Stats::default());
        let stop = CancellationToken::new();
        let publisher =
            Publisher::new(settings_rx, tracked_rx, stats.clone(), Duration::from_secs(2));
        let task = tokio::spawn(publisher.run(stop.clone()));
        Running { tracked: tracked_tx, stats, stop, task, _settings: settings_tx }
    }

    fn failures(stats: &Stats) -> u64 {
        stats.posts_failed_transport.load(Relaxed) + stats.posts_failed_auth.load(Relaxed)
    }

    #[tokio::test]
    async fn no_busy_loop_when_a_failed_list_empties() {
        // Nothing listens on port 1: every send fails.
        let p = start(settings("http://127.0.0.1:1".into(), other_key(), 200), &[5]);
        let started = Instant::now();
        while failures(&p.stats) == 0 && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The target exits before any post succeeded.
        p.tracked.send_replace(tracked(&[]));
        tokio::time::sleep(Duration::from_secs(3)).await;
        p.stop.cancel();
        p.task.await.unwrap();
        // Retries of the empty list (still owed: nothing was ever in force)
        // follow the backoff, 0.25-1 s apart; a busy loop makes thousands.
        let n = failures(&p.stats);
        eprintln!("{n} failed sends in about 3 s");
        assert!((1..=20).contains(&n), "{n} failed sends in about 3 s");
    }

    /// The local API, served in process on 127.0.0.1:0 until `stop`.
    async fn local_api(
        dir: &std::path::Path,
    ) -> (LocalApi, String, tokio::sync::oneshot::Sender<()>) {
        let key = include_str!("../../tests/fixtures/server_private_key.pem");
        let private = dir.join("jwt_private_key.pem");
        std::fs::write(&private, key).unwrap();
        std::fs::set_permissions(&private, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let api = LocalApi::open(dir, Duration::from_secs(3600)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = api.clone();
        tokio::spawn(async move {
            served
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await
        });
        (api, url, tx)
    }

    async fn wait_until(what: &str, mut f: impl FnMut() -> bool) -> Duration {
        let started = Instant::now();
        while !f() {
            assert!(started.elapsed() < Duration::from_secs(10), "{what}: not within 10 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        started.elapsed()
    }

    /// A publisher with nothing tracked, after its first POST: the empty
    /// list goes out at start (reconcile), so it is in force.
    async fn reconciled(
        dir: &std::path::Path,
        debounce_ms: u64,
    ) -> (LocalApi, tokio::sync::oneshot::Sender<()>, Running) {
        let (api, url, api_stop) = local_api(dir).await;
        let p = start(settings(url, api.public_key_path(), debounce_ms), &[]);
        wait_until("first POST", || p.stats.posts_ok.load(Relaxed) == 1).await;
        assert_eq!((*api.posts().borrow(), api.strategies()), (1, None));
        (api, api_stop, p)
    }

    #[tokio::test]
    async fn the_failure_time_clears_when_the_api_already_holds_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let (_api, api_stop, p) = reconciled(dir.path(), 20).await;
        let _ = api_stop.send(());
        p.tracked.send_replace(tracked(&[5]));
        wait_until("a failed send", || failures(&p.stats) > 0).await;
        assert_ne!(p.stats.first_failure_unix_ms.load(Relaxed), 0);
        // The target leaves: the list wanted is the one in force, nothing
        // is failing any more, so /healthz must not stay unhealthy.
        p.tracked.send_replace(tracked(&[]));
        let took =
            wait_until("failure time cleared", || p.stats.first_failure_unix_ms.load(Relaxed) == 0)
                .await;
        eprintln!("failure time cleared {} ms after the list emptied", took.as_millis());
        p.stop.cancel();
        p.task.await.unwrap();
    }

    #[tokio::test]
    async fn a_stop_during_the_debounce_starts_no_post() {
        let dir = tempfile::tempdir().unwrap();
        let (api, _api_stop, p) = reconciled(dir.path(), 5_000).await;
        p.tracked.send_replace(tracked(&[5]));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let asked = Instant::now();
        p.stop.cancel();
        p.task.await.unwrap();
        let took = asked.elapsed();
        eprintln!("stopped {} ms after the stop, debounce 5000 ms", took.as_millis());
        assert!(took < Duration::from_secs(3), "waited out the debounce: {took:?}");
        assert_eq!(p.stats.posts_ok.load(Relaxed), 1, "no POST after the stop");
        assert_eq!((*api.posts().borrow(), api.strategies()), (1, None));
    }

    #[tokio::test]
    async fn on_stop_clear_leaves_the_static_strategies_and_keep_leaves_all() {
        let dir = tempfile::tempdir().unwrap();
        let (api, url, _api_stop) = local_api(dir.path()).await;
        for on_stop in [OnStop::Keep, OnStop::Clear] {
            let mut s = settings(url.clone(), api.public_key_path(), 20);
            s.strategy = StrategyConfig { on_stop, ..cfg() };
            let before = *api.posts().borrow();
            let p = start(s, &[7]);
            wait_until("first POST", || *api.posts().borrow() > before).await;
            let posts = *api.posts().borrow();
            // The GET view leaves the static (selector) strategies out.
            let want =
                Some(strategies(&[7], &StrategyConfig { static_strategies: vec![], ..cfg() }));
            assert_eq!(api.strategies(), want);
            p.stop.cancel();
            p.task.await.unwrap();
            let (left, more) = if on_stop == OnStop::Keep { (want, 0) } else { (None, 1) };
            assert_eq!(api.strategies(), left, "{on_stop:?}");
            assert_eq!(*api.posts().borrow(), posts + more, "{on_stop:?}");
        }
    }

    #[tokio::test]
    async fn an_interval_near_u64_max_still_posts_and_follows_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (api, url, _api_stop) = local_api(dir.path()).await;
        let mut s = settings(url, api.public_key_path(), 20);
        s.strategy.interval_s = u64::MAX;
        let p = start(s, &[7]);
        wait_until("first POST", || p.stats.posts_ok.load(Relaxed) == 1).await;
        p.tracked.send_replace(tracked(&[7, 8]));
        wait_until("the change posted", || p.stats.posts_ok.load(Relaxed) == 2).await;
        assert!(!p.task.is_finished(), "the publisher ended");
        p.stop.cancel();
        p.task.await.expect("the publisher panicked");
    }
}
