//! `/metrics` (OpenMetrics text), `/healthz` and `/status` (see
//! [`crate::status`]), served on the configured loopback address. All read
//! the shared `Stats` at request time, so nothing on the hot path knows this
//! module exists.

use crate::clock::unix_ms;
use crate::config::MetricsConfig;
use crate::server::Limits;
use crate::stats::Stats;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// A scraper and the kubelet's probes, each a request every few seconds.
const LIMITS: Limits = Limits {
    max_connections: 64,
    head: Duration::from_secs(30),
    request: Duration::from_secs(10),
    drain: Duration::from_secs(1),
};

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics.listen {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// When /healthz turns 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthBounds {
    pub max_post_failure: Duration,
    pub max_source_down: Duration,
    pub max_tracer_silence: Duration,
}

impl From<&MetricsConfig> for HealthBounds {
    fn from(cfg: &MetricsConfig) -> Self {
        HealthBounds {
            max_post_failure: Duration::from_secs(cfg.max_post_failure_s),
            max_source_down: Duration::from_secs(cfg.max_source_down_s),
            max_tracer_silence: Duration::from_secs(cfg.max_tracer_silence_s),
        }
    }
}

/// Why the daemon is unhealthy, or None. `now_ms` is unix milliseconds.
pub fn unhealthy(stats: &Stats, bounds: HealthBounds, now_ms: u64) -> Option<String> {
    // Whole seconds since `since`, if that is past `bound`.
    let longer_than = |since: &AtomicU64, bound: Duration| {
        let since = since.load(Relaxed);
        let age_ms = now_ms.saturating_sub(since);
        (since != 0 && age_ms > bound.as_millis() as u64).then_some(age_ms / 1000)
    };
    if let Some(why) = stats.untrusted_api.get() {
        return Some(why);
    }
    if !stats.source_up.load(Relaxed) {
        if let Some(s) = longer_than(&stats.source_down_since_unix_ms, bounds.max_source_down) {
            let why = stats.source_error.lock().map(|e| e.clone()).unwrap_or_default();
            return Some(format!(
                "trace source down for {s} s (bound {} s): {why}",
                bounds.max_source_down.as_secs()
            ));
        }
    }
    if let Some(s) = crate::status::tracer_silent(stats, bounds, now_ms) {
        return Some(format!(
            "tracer silent for {s} s: no heartbeat (bound {} s)",
            bounds.max_tracer_silence.as_secs()
        ));
    }
    longer_than(&stats.first_failure_unix_ms, bounds.max_post_failure)
        .map(|s| format!("posts failing for {s} s (bound {} s)", bounds.max_post_failure.as_secs()))
}

/// The daemon's runtime checks its loops every second; this long without a
/// check means the runtime itself is stuck.
const MAX_LOOP_CHECK_AGE: Duration = Duration::from_secs(15);

/// Why the daemon is not alive, or None: one of its loops ended, or its
/// runtime stopped checking them. Nothing about the API: an API outage
/// must never restart the daemon.
pub fn dead(stats: &Stats, now_ms: u64) -> Option<String> {
    if let Some(which) = stats.loop_ended.get() {
        return Some(format!("{which} ended\n"));
    }
    let checked = stats.loops_checked_unix_ms.load(Relaxed);
    let age = Duration::from_millis(now_ms.saturating_sub(checked));
    (checked != 0 && age > MAX_LOOP_CHECK_AGE)
        .then(|| format!("the runtime has not checked its loops for {} s\n", age.as_secs()))
}

/// Encodes `Stats` at scrape time.
#[derive(Debug)]
struct StatsCollector(Arc<Stats>);

pub(crate) fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

pub(crate) fn gauge<N: prometheus_client::encoding::EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: N,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// Seconds from a unix-ms stamp to now; absent while the stamp was never set.
fn age_s(stamp: &AtomicU64, now_ms: u64) -> Option<f64> {
    let t = stamp.load(Relaxed);
    (t != 0).then(|| now_ms.saturating_sub(t) as f64 / 1000.0)
}

impl Collector for StatsCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &*self.0;
        let now = unix_ms();
        for row in s.counts().rows().into_iter().chain(s.counters()) {
            counter(&mut e, row.metric, row.help, row.value)?;
        }
        gauge(
            &mut e,
            "trace_source_up",
            "1 while the trace source is open",
            u64::from(s.source_up.load(Relaxed)),
        )?;
        if let Some(age) = age_s(&s.last_line_unix_ms, now) {
            gauge(
                &mut e,
                "seconds_since_last_trace_line",
                "Seconds since the last trace line",
                age,
            )?;
        }
        gauge(
            &mut e,
            "tracked_processes",
            "Target processes tracked",
            s.tracked_processes.load(Relaxed),
        )?;
        gauge(
            &mut e,
            "tracked_threads",
            "Target threads tracked",
            s.tracked_threads.load(Relaxed),
        )?;
        let mut family = e.encode_descriptor(
            "posts_failed",
            "Strategy list sends that failed, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in s.posts_failed() {
            ConstCounter::new(n).encode(family.encode_family(&[("reason", reason)])?)?;
        }
        if let Some(age) = age_s(&s.last_post_ok_unix_ms, now) {
            gauge(
                &mut e,
                "seconds_since_last_post_ok",
                "Seconds since the API last accepted a list",
                age,
            )?;
        }
        Ok(())
    }
}

struct Shared {
    registry: Registry,
    stats: Arc<Stats>,
    bounds: HealthBounds,
}

fn router(stats: Arc<Stats>, bounds: HealthBounds) -> Router {
    let mut registry = Registry::with_prefix("gtp5g_operator");
    registry.register_collector(Box::new(StatsCollector(stats.clone())));
    registry.register_collector(Box::new(crate::status::TargetCollector(stats.clone())));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/livez", get(livez))
        .with_state(Arc::new(Shared { registry, stats, bounds }))
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &s.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {e}\n")).into_response()
        }
    }
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    match unhealthy(&s.stats, s.bounds, unix_ms()) {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

async fn livez(State(s): State<Arc<Shared>>) -> Response {
    match dead(&s.stats, unix_ms()) {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

async fn status(State(s): State<Arc<Shared>>) -> Response {
    axum::Json(crate::status::report(&s.stats, s.bounds, unix_ms())).into_response()
}

/// Binds `addr` now (so that a taken port fails the start) and returns the
/// server future, which ends when `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    stats: Arc<Stats>,
    bounds: HealthBounds,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Future<Output = std::io::Result<()>>, MetricsError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(%bound, "serving /metrics, /healthz, /livez and /status");
    Ok(crate::server::serve(listener, router(stats, bounds), LIMITS, shutdown))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: HealthBounds = HealthBounds {
        max_post_failure: Duration::from_secs(60),
        max_source_down: Duration::from_secs(30),
        max_tracer_silence: Duration::from_secs(15),
    };

    #[test]
    fn healthy_until_a_bound_is_passed() {
        let s = Stats::default();
        s.source_up.store(true, Relaxed);
        assert_eq!(unhealthy(&s, BOUNDS, 1_000_000), None);
        s.first_failure_unix_ms.store(1_000_000, Relaxed);
        assert_eq!(unhealthy(&s, BOUNDS, 1_060_000), None, "at the bound is still healthy");
        let why = unhealthy(&s, BOUNDS, 1_061_000).unwrap();
        assert!(why.contains("posts failing for 61 s"), "{why}");
    }

    #[test]
    fn liveness_is_the_loops_and_never_the_api() {
        let s = Stats::default();
        assert_eq!(dead(&s, 1_000_000), None, "not checked yet: starting");
        s.first_failure_unix_ms.store(1, Relaxed);
        s.untrusted_api.set(Some("impostor".into()));
        s.loops_checked_unix_ms.store(1_000_000, Relaxed);
        assert_eq!(dead(&s, 1_015_000), None, "API failures do not count");
        assert!(dead(&s, 1_016_000).unwrap().contains("not checked its loops for 16 s"));
        s.loop_ended.set(Some("the tracker thread".into()));
        assert_eq!(dead(&s, 1_000_000).unwrap(), "the tracker thread ended\n");
    }

    #[test]
    fn source_down_counts_only_while_down() {
        let s = Stats::default();
        s.source_down_since_unix_ms.store(1_000_000, Relaxed);
        let why = unhealthy(&s, BOUNDS, 1_031_000).unwrap();
        assert!(why.contains("trace source down for 31 s"), "{why}");
        s.source_up.store(true, Relaxed);
        assert_eq!(unhealthy(&s, BOUNDS, 1_031_000), None);
    }
}
