//! `GET /status`: what is boosted right now and since when, from which
//! traffic, how long its threads wait for a CPU, and how the API and the
//! tracer are doing; and the table `gtp5g-operator status` prints of it.
//! The tracker thread, the publisher and the daemon put their parts in
//! `Stats::status` (a `Live`); the metrics listener reads it per request.

use crate::clock::unix_ms;
use crate::metrics::{unhealthy, HealthBounds};
use crate::stats::Stats;
use crate::track::activity::Activity;
use crate::track::schedstat::{NameUsage, Sampler};
use crate::track::TrackedProcess;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;

/// The parts of `/status` that are not counters.
#[derive(Debug, Default)]
pub struct Live {
    pub targets: Vec<Target>,
    pub usage: Vec<NameUsage>,
    pub config_file: Option<PathBuf>,
    pub endpoint: String,
    /// The last failed send: when (unix ms) and why.
    pub last_error: Option<(u64, String)>,
    /// The last heartbeat's tracer: its pid and interval.
    pub tracer: Option<(u32, u32)>,
    /// The scheduler's last `/api/v1/metrics` report, as the API holds it.
    pub scheduler: Option<serde_json::Value>,
}

/// One tracked process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub tgid: u32,
    pub threads: Vec<u32>,
    pub first_seen_unix_ms: u64,
    pub last_record_unix_ms: Option<u64>,
    /// "GTP-U", "RLS", "scheduler": the records that named it.
    pub protocols: Vec<String>,
    /// Over the last tick; None until its second tick.
    pub runqueue_wait_ms_per_s: Option<f64>,
    pub cpu_ms_per_s: Option<f64>,
}

/// The tracker thread's view, made on each tick and each change.
pub fn targets(
    processes: &[TrackedProcess],
    activity: &mut Activity,
    sampler: &Sampler,
    now_ms: u64,
) -> Vec<Target> {
    let mut tgids: Vec<u32> = processes.iter().filter_map(|p| p.pid).collect();
    tgids.sort_unstable();
    activity.retain(&tgids);
    processes
        .iter()
        .filter_map(|p| {
            let tgid = p.pid?;
            let seen = *activity.seen(tgid, now_ms);
            let interval = sampler.interval(tgid);
            Some(Target {
                name: p.name.clone(),
                tgid,
                threads: p.threads.clone(),
                first_seen_unix_ms: seen.first_unix_ms,
                last_record_unix_ms: seen.last_record_unix_ms,
                protocols: seen.protocols.names().into_iter().map(String::from).collect(),
                runqueue_wait_ms_per_s: interval.map(|i| i.wait_ms_per_s),
                cpu_ms_per_s: interval.map(|i| i.cpu_ms_per_s),
            })
        })
        .collect()
}

/// The whole `/status` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub version: String,
    pub config_file: Option<PathBuf>,
    pub now_unix_ms: u64,
    /// None when healthy; else what `/healthz` says.
    pub unhealthy: Option<String>,
    pub targets: Vec<Target>,
    pub api: Api,
    pub tracer: Tracer,
    pub scheduler: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Api {
    pub endpoint: String,
    pub last_post_ok_unix_ms: Option<u64>,
    pub posts_ok: u64,
    pub posts_failed: u64,
    pub last_error: Option<String>,
    pub last_error_unix_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracer {
    pub source_up: bool,
    pub seconds_since_last_line: Option<f64>,
    /// None until a heartbeat was read (a tracer without one, or none yet).
    pub seconds_since_heartbeat: Option<f64>,
    pub pid: Option<u32>,
    pub heartbeat_interval_s: Option<u32>,
    /// Heartbeats stopped for longer than the bound: the tracer is gone,
    /// which no traffic alone never says.
    pub silent: bool,
}

fn stamp(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

fn age_s(stamp: Option<u64>, now_ms: u64) -> Option<f64> {
    stamp.map(|t| now_ms.saturating_sub(t) as f64 / 1000.0)
}

pub fn report(stats: &Stats, bounds: HealthBounds, now_ms: u64) -> Report {
    let live = stats.status.lock().unwrap_or_else(|e| e.into_inner());
    let heartbeat = stamp(stats.last_heartbeat_unix_ms.load(Relaxed));
    let (last_error_unix_ms, last_error) = live.last_error.clone().unzip();
    Report {
        version: env!("CARGO_PKG_VERSION").into(),
        config_file: live.config_file.clone(),
        now_unix_ms: now_ms,
        unhealthy: unhealthy(stats, bounds, now_ms),
        targets: live.targets.clone(),
        api: Api {
            endpoint: live.endpoint.clone(),
            last_post_ok_unix_ms: stamp(stats.last_post_ok_unix_ms.load(Relaxed)),
            posts_ok: stats.posts_ok.load(Relaxed),
            posts_failed: stats.posts_failed().iter().map(|(_, n)| n).sum(),
            last_error,
            last_error_unix_ms,
        },
        tracer: Tracer {
            source_up: stats.source_up.load(Relaxed),
            seconds_since_last_line: age_s(stamp(stats.last_line_unix_ms.load(Relaxed)), now_ms),
            seconds_since_heartbeat: age_s(heartbeat, now_ms),
            pid: live.tracer.map(|t| t.0),
            heartbeat_interval_s: live.tracer.map(|t| t.1),
            silent: tracer_silent(stats, bounds, now_ms).is_some(),
        },
        scheduler: live.scheduler.clone(),
    }
}

/// Asks the daemon whose metrics listener is at `base` (`http://ADDR`).
pub async fn fetch(base: &str) -> Result<Report, FetchError> {
    let url = format!("{base}/status");
    let unreachable = |e: reqwest::Error| FetchError::Unreachable(url.clone(), e.to_string());
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(unreachable)?;
    let answer = client.get(&url).send().await.map_err(unreachable)?;
    let code = answer.status();
    let body = answer.text().await.map_err(unreachable)?;
    if !code.is_success() {
        return Err(FetchError::Answer(url, format!("HTTP {code}: {}", body.trim())));
    }
    serde_json::from_str(&body)
        .map_err(|e| FetchError::Answer(url, format!("not a status document: {e}")))
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("daemon unreachable at {0}: {1}")]
    Unreachable(String, String),
    #[error("{0}: {1}")]
    Answer(String, String),
}

/// Seconds the tracer's heartbeats have been missing, past the bound.
pub fn tracer_silent(stats: &Stats, bounds: HealthBounds, now_ms: u64) -> Option<u64> {
    let last = stamp(stats.last_heartbeat_unix_ms.load(Relaxed))?;
    let age_ms = now_ms.saturating_sub(last);
    (age_ms > bounds.max_tracer_silence.as_millis() as u64).then_some(age_ms / 1000)
}

fn ago(stamp: Option<u64>, now_ms: u64) -> String {
    match age_s(stamp, now_ms) {
        Some(s) => format!("{s:.1} s ago"),
        None => "never".into(),
    }
}

fn rate(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

/// What `gtp5g-operator status` prints: one row per process, then the API,
/// tracer and health lines.
pub fn table(r: &Report) -> String {
    let now = r.now_unix_ms;
    let mut out = String::new();
    let row = |out: &mut String, c: [&str; 7]| {
        let _ = writeln!(
            out,
            "{:<15} {:>8} {:>7} {:>11} {:>10}  {:<18} {}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6]
        );
    };
    row(&mut out, ["NAME", "PID", "THREADS", "WAIT ms/s", "CPU ms/s", "SEEN VIA", "LAST RECORD"]);
    for t in &r.targets {
        let via = if t.protocols.is_empty() { "-".into() } else { t.protocols.join(",") };
        row(
            &mut out,
            [
                &t.name,
                &t.tgid.to_string(),
                &t.threads.len().to_string(),
                &rate(t.runqueue_wait_ms_per_s),
                &rate(t.cpu_ms_per_s),
                &via,
                &ago(t.last_record_unix_ms, now),
            ],
        );
    }
    if r.targets.is_empty() {
        let _ = writeln!(out, "(nothing tracked)");
    }
    let a = &r.api;
    let _ = write!(
        out,
        "api: {}  last POST ok {}  ({} ok, {} failed)",
        a.endpoint,
        ago(a.last_post_ok_unix_ms, now),
        a.posts_ok,
        a.posts_failed
    );
    if let Some(e) = &a.last_error {
        let _ = write!(out, "  last error {}: {e}", ago(a.last_error_unix_ms, now));
    }
    let t = &r.tracer;
    let _ = writeln!(out);
    let heartbeat = match (t.seconds_since_heartbeat, t.pid, t.heartbeat_interval_s) {
        (Some(s), Some(pid), Some(every)) => {
            let state = if t.silent { "SILENT" } else { "alive" };
            format!("{state}, heartbeat {s:.1} s ago (pid {pid}, every {every} s)")
        }
        _ => "no heartbeat seen".into(),
    };
    let line = t.seconds_since_last_line.map_or("never".into(), |s| format!("{s:.1} s ago"));
    let source = if t.source_up { "open" } else { "DOWN" };
    let _ = writeln!(out, "tracer: {heartbeat}; trace source {source}, last line {line}");
    if let Some(s) = &r.scheduler {
        let _ = writeln!(out, "scheduler: {}", scheduler_line(s));
    }
    let health = r.unhealthy.as_deref().unwrap_or("ok");
    let _ = writeln!(out, "health: {health}  (gtp5g-operator {})", r.version);
    out
}

/// The few figures of the scheduler's report a person looks at.
fn scheduler_line(s: &serde_json::Value) -> String {
    let field = |k: &str| s.get(k).map_or("-".into(), |v| v.to_string());
    format!(
        "queued {}, running {}, user dispatches {}, kernel dispatches {}, failed {}, congested {}",
        field("nr_queued"),
        field("nr_running"),
        field("nr_user_dispatches"),
        field("nr_kernel_dispatches"),
        field("nr_failed_dispatches"),
        field("nr_sched_congested")
    )
}

/// Per target name, at scrape time: run-queue wait and CPU time summed
/// over every thread ever tracked under the name (so they never go down),
/// the threads tracked now, and the tracer heartbeat's age.
#[derive(Debug)]
pub struct TargetCollector(pub std::sync::Arc<Stats>);

impl prometheus_client::collector::Collector for TargetCollector {
    fn encode(
        &self,
        mut e: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType};
        let usage = self.0.status.lock().unwrap_or_else(|x| x.into_inner()).usage.clone();
        type Family = (&'static str, &'static str, MetricType, fn(&NameUsage) -> f64);
        let families: [Family; 3] = [
            (
                "target_runqueue_wait_seconds",
                "Time the target's threads waited on a run queue (schedstat), by target name",
                MetricType::Counter,
                |u| u.wait_ns as f64 / 1e9,
            ),
            (
                "target_cpu_seconds",
                "CPU time of the target's threads (schedstat), by target name",
                MetricType::Counter,
                |u| u.cpu_ns as f64 / 1e9,
            ),
            ("target_threads", "Threads tracked, by target name", MetricType::Gauge, |u| {
                u.threads as f64
            }),
        ];
        for (name, help, kind, value) in families {
            let mut family = e.encode_descriptor(name, help, None, kind)?;
            for u in &usage {
                let labels = [("name", u.name.as_str())];
                let encoder = family.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => ConstCounter::new(value(u)).encode(encoder)?,
                    _ => ConstGauge::new(value(u)).encode(encoder)?,
                }
            }
        }
        let heartbeat = stamp(self.0.last_heartbeat_unix_ms.load(Relaxed));
        if let Some(age) = age_s(heartbeat, unix_ms()) {
            crate::metrics::gauge(
                &mut e,
                "seconds_since_tracer_heartbeat",
                "Seconds since the tracer's last heartbeat (traffic or not)",
                age,
            )?;
        }
        Ok(())
    }
}
