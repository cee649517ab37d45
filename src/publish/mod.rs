//! Publish stage: keeps the API's strategy list in step with the tracked
//! set — promptly (debounced) on change, every interval otherwise, with
//! jittered exponential backoff while the API fails.

pub mod client;

use crate::api::Strategy;
use crate::config::{ApiConfig, StrategyConfig};
use crate::signal::stop_requested;
use crate::stats::{now_unix_ms, Stats};
use client::{ApiClient, FailureKind, PublishError};
use rand::Rng;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::{sleep_until, Instant};

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

/// Where the publisher gets the ids to boost: the tracker, refreshed first.
pub trait PidSource: Send {
    fn current_pids(&mut self, threads: bool) -> Vec<u32>;
}

/// Doubling backoff from 0.5 s to a cap, each wait jittered to 50-100 % so
/// that many operators do not retry in step.
#[derive(Debug)]
struct Backoff {
    next: Duration,
    cap: Duration,
}

const BACKOFF_START: Duration = Duration::from_millis(500);

impl Backoff {
    fn new(cap: Duration) -> Self {
        Backoff { next: BACKOFF_START, cap }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_START;
    }

    fn wait(&mut self) -> Duration {
        let base = self.next.min(self.cap);
        self.next = (self.next * 2).min(self.cap);
        base.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

pub struct Publisher<S> {
    settings: watch::Receiver<Settings>,
    source: S,
    changed: Arc<Notify>,
    stats: Arc<Stats>,
    /// How long an in-flight POST may run on after shutdown is asked.
    drain: Duration,
}

impl<S: PidSource> Publisher<S> {
    pub fn new(
        settings: watch::Receiver<Settings>,
        source: S,
        changed: Arc<Notify>,
        stats: Arc<Stats>,
        drain: Duration,
    ) -> Self {
        Publisher { settings, source, changed, stats, drain }
    }

    /// Runs until `stop` turns true; a POST in flight then gets `drain` to
    /// finish.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut settings = self.settings.borrow_and_update().clone();
        let mut client = self.new_client(&settings);
        let mut backoff = Backoff::new(Duration::from_secs(settings.api.retry_max_s));
        let mut in_force: Option<Vec<Strategy>> = None;
        let mut next_periodic = Instant::now();
        let mut retry_at: Option<Instant> = None;
        loop {
            let list = strategies(&self.source.current_pids(settings.threads), &settings.strategy);
            let due = retry_at.is_some_and(|t| Instant::now() >= t)
                || (retry_at.is_none()
                    && (Instant::now() >= next_periodic || in_force.as_ref() != Some(&list)));
            // An empty list is sent once, to clear what was in force; never
            // repeatedly, and not at all if nothing was ever sent.
            let worth_sending =
                !list.is_empty() || in_force.as_ref().is_some_and(|l| !l.is_empty());
            if due && worth_sending {
                let outcome = match client.as_mut() {
                    Ok(c) => self.send(c, &list, stop.clone()).await,
                    Err(e) => Some(Err(PublishError::Setup(e.to_string()))),
                };
                match outcome {
                    None => return,
                    Some(Ok(())) => {
                        in_force = Some(list);
                        backoff.reset();
                        retry_at = None;
                        next_periodic =
                            Instant::now() + Duration::from_secs(settings.strategy.interval_s);
                    }
                    Some(Err(e)) => {
                        let wait = backoff.wait();
                        self.record_failure(&e, wait);
                        retry_at = Some(Instant::now() + wait);
                    }
                }
            } else if due {
                // Nothing to send (and nothing to clear): no retry pending
                // either, or a stale retry time would wake this loop at once.
                retry_at = None;
                backoff.reset();
                next_periodic = Instant::now() + Duration::from_secs(settings.strategy.interval_s);
            }
            let wake_at = retry_at.unwrap_or(next_periodic);
            tokio::select! {
                _ = stop_requested(&mut stop) => return,
                _ = sleep_until(wake_at) => {}
                _ = self.changed.notified() => {
                    // Let a burst of changes (a process starting its threads) settle.
                    tokio::time::sleep(Duration::from_millis(settings.strategy.debounce_ms)).await;
                }
                Ok(()) = self.settings.changed() => {
                    let new = self.settings.borrow_and_update().clone();
                    if new.api != settings.api {
                        client = self.new_client(&new);
                        backoff = Backoff::new(Duration::from_secs(new.api.retry_max_s));
                        retry_at = None;
                        in_force = None;
                    }
                    settings = new;
                }
            }
        }
    }

    fn new_client(&self, settings: &Settings) -> Result<ApiClient, PublishError> {
        ApiClient::new(&settings.api)
            .inspect_err(|e| tracing::error!(error = %e, "cannot build the API client"))
    }

    /// None when shutdown cut the POST off.
    async fn send(
        &self,
        client: &mut ApiClient,
        list: &[Strategy],
        mut stop: watch::Receiver<bool>,
    ) -> Option<Result<(), PublishError>> {
        let post = client.post_strategies(list);
        tokio::pin!(post);
        let drained = async {
            stop_requested(&mut stop).await;
            tokio::time::sleep(self.drain).await;
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
            self.stats.last_post_ok_unix_ms.store(now_unix_ms(), Relaxed);
            self.stats.first_failure_unix_ms.store(0, Relaxed);
            let pids: Vec<i64> = list.iter().map(|s| s.pid).filter(|&p| p != 0).collect();
            tracing::info!(strategies = list.len(), ?pids, "strategies in force at the API");
        }))
    }

    fn record_failure(&self, e: &PublishError, retry_in: Duration) {
        let counter = match e.kind() {
            FailureKind::Transport => &self.stats.posts_failed_transport,
            FailureKind::Http => &self.stats.posts_failed_http,
            FailureKind::Auth => &self.stats.posts_failed_auth,
            FailureKind::Body => &self.stats.posts_failed_body,
        };
        counter.fetch_add(1, Relaxed);
        let _ =
            self.stats.first_failure_unix_ms.compare_exchange(0, now_unix_ms(), Relaxed, Relaxed);
        tracing::warn!(error = %e, retry_in_ms = retry_in.as_millis() as u64, "sending strategies failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Selector;

    fn cfg() -> StrategyConfig {
        StrategyConfig {
            priority: true.into(),
            execution_time_ns: 20_000_000,
            interval_s: 10,
            debounce_ms: 200,
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

    /// Counts how often the publisher looks at the tracked set.
    struct Scripted {
        calls: Arc<std::sync::atomic::AtomicU64>,
    }

    impl PidSource for Scripted {
        fn current_pids(&mut self, _threads: bool) -> Vec<u32> {
            // A target appears once, then exits before any post succeeded.
            if self.calls.fetch_add(1, Relaxed) == 0 {
                vec![5]
            } else {
                vec![]
            }
        }
    }

    #[tokio::test]
    async fn no_busy_loop_when_a_failed_list_empties() {
        let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/other_public_key.pem");
        let settings = Settings {
            api: ApiConfig {
                // Nothing listens on port 1: every send fails.
                endpoint: "http://127.0.0.1:1".into(),
                public_key_path: key.into(),
                ca_file: None,
                timeout_ms: 200,
                token_refresh_ahead_s: 300,
                retry_max_s: 1,
            },
            strategy: StrategyConfig { static_strategies: vec![], ..cfg() },
            threads: true,
        };
        let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (_settings_tx, settings_rx) = watch::channel(settings);
        let (stop_tx, stop_rx) = watch::channel(false);
        let publisher = Publisher::new(
            settings_rx,
            Scripted { calls: calls.clone() },
            Arc::new(Notify::new()),
            Arc::new(Stats::default()),
            Duration::from_millis(100),
        );
        let task = tokio::spawn(publisher.run(stop_rx));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        // One failed send, one retry that finds the set empty, then quiet
        // until the 10 s interval.
        let n = calls.load(Relaxed);
        assert!((2..=4).contains(&n), "publisher looked {n} times in 1.5 s");
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_secs(4));
        let waits: Vec<Duration> = (0..6).map(|_| b.wait()).collect();
        let bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0];
        for (w, base) in waits.iter().zip(bases) {
            let s = w.as_secs_f64();
            assert!(s >= base * 0.5 - 1e-9 && s <= base + 1e-9, "{s} for {base}");
        }
        b.reset();
        assert!(b.wait() <= BACKOFF_START);
    }
}
