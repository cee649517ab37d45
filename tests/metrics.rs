//! /metrics and /healthz scraped from the running binary while lines are
//! written into its FIFO and the API comes and goes.

mod common;

use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(10);

async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let r = reqwest::get(format!("http://{addr}{path}")).await.ok()?;
    Some((r.status().as_u16(), r.text().await.ok()?))
}

/// One sample's value, `name` including its labels.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

struct Scrape(SocketAddr);

impl Scrape {
    async fn value(&self, name: &str) -> f64 {
        let (_, text) = get(self.0, "/metrics").await.expect("scrape");
        sample(&text, name).unwrap_or_else(|| panic!("{name} not in:\n{text}"))
    }

    /// Polls until `name` satisfies `ok`.
    async fn until(&self, name: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let end = tokio::time::Instant::now() + LONG;
        loop {
            let v = self.value(name).await;
            if ok(v) || tokio::time::Instant::now() > end {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn health_until(&self, status: u16) -> (u16, String) {
        let end = tokio::time::Instant::now() + LONG;
        loop {
            let last = get(self.0, "/healthz").await.unwrap_or_default();
            if last.0 == status {
                return last;
            }
            assert!(tokio::time::Instant::now() < end, "healthz never {status}: {last:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn with_metrics(mut cmd: std::process::Command, addr: SocketAddr) -> std::process::Command {
    cmd.arg("--metrics-listen")
        .arg(addr.to_string())
        .env("GTP5G_OPERATOR__METRICS__MAX_POST_FAILURE_S", "1")
        .env("GTP5G_OPERATOR__METRICS__MAX_SOURCE_DOWN_S", "1")
        .env("GTP5G_OPERATOR__LOG__STATS_INTERVAL_S", "1");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_and_healthz_follows_the_api() {
    let dir = TempDir::new().unwrap();
    let mut fifo = Fifo::create(&dir.path().join("trace_pipe"));
    let target = Target::spawn("nr-gnb");
    fifo.write(&target.line());
    let mut api = Api::start().await;
    let addr = free_addr();
    let mut d =
        Daemon::spawn(with_metrics(daemon_command(&api.url(), &api.key_path(), &fifo.path), addr));
    let m = Scrape(addr);
    assert!(eventually(LONG, || api.pids() == vec![target.pid() as i64]).await);

    assert_eq!(m.until("gtp5g_operator_trace_lines_total", |v| v >= 1.0).await, 1.0);
    assert_eq!(m.value("gtp5g_operator_trace_events_total").await, 1.0);
    assert_eq!(m.value("gtp5g_operator_trace_source_up").await, 1.0);
    assert_eq!(m.until("gtp5g_operator_tracked_processes", |v| v == 1.0).await, 1.0);
    assert_eq!(m.value("gtp5g_operator_tracked_threads").await, 1.0);
    assert_eq!(m.value("gtp5g_operator_token_refreshes_total").await, 1.0);
    assert!(m.value("gtp5g_operator_seconds_since_last_trace_line").await < 10.0);
    let ok = m.value("gtp5g_operator_posts_ok_total").await;
    assert!(ok >= 1.0);
    assert!(
        m.until("gtp5g_operator_posts_ok_total", |v| v > ok).await > ok,
        "posts_ok does not move"
    );
    assert!(m.value("gtp5g_operator_seconds_since_last_post_ok").await < 2.0);
    let (status, body) = m.health_until(200).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    fifo.write("CPU:1 [LOST 42 EVENTS]\nnot a trace line\n");
    fifo.write(&trace_line("kworker/1:0", 99, 99));
    assert_eq!(m.until("gtp5g_operator_trace_lines_total", |v| v >= 4.0).await, 4.0);
    assert_eq!(m.value("gtp5g_operator_trace_lost_events_total").await, 42.0);
    assert_eq!(m.value("gtp5g_operator_trace_lines_malformed_total").await, 1.0);
    assert!(d.wait_log("lost_events=42", LONG).await, "lost events not in the counters log line");
    // One RLS record line (ran-sim's nr-ue uplink) moves only the RLS counter.
    let rls =
        trace_line("nr-ue", 98, 98).replace("PID=98, TGID=98, CPU=1", "RLS=DATA, PSI=1, LEN=84");
    fifo.write(&rls);
    assert_eq!(m.until("gtp5g_operator_trace_rls_records_total", |v| v >= 1.0).await, 1.0);
    assert_eq!(m.value("gtp5g_operator_trace_gtpu_records_total").await, 0.0);

    api.stop().await;
    let (status, body) = m.health_until(503).await;
    eprintln!("API down: healthz {status} {body:?}");
    assert!(body.starts_with("posts failing for ") && body.contains("(bound 1 s)"), "{body}");
    assert!(m.value("gtp5g_operator_posts_failed_total{reason=\"transport\"}").await >= 1.0);
    assert_eq!(m.value("gtp5g_operator_posts_failed_total{reason=\"http\"}").await, 0.0);

    api.serve().await;
    m.health_until(200).await;
    assert!(eventually(LONG, || api.pids() == vec![target.pid() as i64]).await);

    // Neither a scraper holding a keep-alive connection nor a client that
    // connected and sent nothing may hold up the exit.
    let scraper = reqwest::Client::new();
    assert!(scraper
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    let _silent = std::net::TcpStream::connect(addr).unwrap();
    d.signal(libc::SIGTERM);
    let sent = Instant::now();
    // Generous: a held-up exit would never come.
    let status = d.wait_exit(LONG).await;
    eprintln!("exit {:?} after SIGTERM with a keep-alive and a silent client", sent.elapsed());
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", d.log_text());
    assert!(get(addr, "/healthz").await.is_none(), "still serving after exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_metrics_address_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = TempDir::new().unwrap();
    let api = Api::start().await;
    let out =
        with_metrics(daemon_command(&api.url(), &api.key_path(), &dir.path().join("p")), addr)
            .output()
            .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("metrics.listen {addr}: Address already in use")), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_while_the_trace_source_is_down_past_its_bound() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("trace_pipe");
    let api = Api::start().await;
    let addr = free_addr();
    let _d = Daemon::spawn(with_metrics(daemon_command(&api.url(), &api.key_path(), &path), addr));
    let m = Scrape(addr);
    let (_, body) = m.health_until(503).await;
    assert!(body.starts_with("trace source down for ") && body.contains("(bound 1 s)"), "{body}");
    assert_eq!(m.value("gtp5g_operator_trace_source_up").await, 0.0);
    assert!(m.value("gtp5g_operator_trace_source_retries_total").await >= 1.0);

    let _fifo = Fifo::create(&path);
    m.health_until(200).await;
    assert_eq!(m.until("gtp5g_operator_trace_source_up", |v| v == 1.0).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_for_a_fifo_that_never_gets_a_writer() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("trace_pipe");
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path. No one ever opens it to write:
    // each of the daemon's reopens succeeds and reads end of file at once.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let api = Api::start().await;
    let addr = free_addr();
    let started = Instant::now();
    let mut cmd = with_metrics(daemon_command(&api.url(), &api.key_path(), &path), addr);
    // Longer than the reopen backoff's cap (2 s): only a "down since" kept
    // across the reopens can pass it.
    cmd.env("GTP5G_OPERATOR__METRICS__MAX_SOURCE_DOWN_S", "3");
    let _d = Daemon::spawn(cmd);
    let m = Scrape(addr);
    let (_, body) = m.health_until(503).await;
    eprintln!("503 after {} ms (bound 3 s): {body}", started.elapsed().as_millis());
    assert!(body.starts_with("trace source down for ") && body.contains("(bound 3 s)"), "{body}");
    assert!(m.value("gtp5g_operator_trace_source_retries_total").await >= 2.0);
    // A writer comes: the source stays open, and healthy.
    let _fifo = Fifo::open_existing(&path);
    m.health_until(200).await;
}
