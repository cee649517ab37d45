//! Shared by the integration tests: the project's local Gthulhu API on
//! 127.0.0.1 and the daemon run in process.
#![allow(dead_code)] // each test binary uses its own subset

use gtp5g_operator::api::Strategy;
use gtp5g_operator::config::{Config, Purpose, Sources};
use gtp5g_operator::daemon;
use gtp5g_operator::local_api::LocalApi;
use gtp5g_operator::signal::Control;
use gtp5g_operator::stats::Stats;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub const DAY: Duration = Duration::from_secs(86400);

/// A tracer-c binary (gtp5g-tracer, gtpu-traffic, ...), built with make
/// if missing (`./build.sh test` builds it first).
pub fn tracer_binary(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tracer-c");
    let path = dir.join("build").join(name);
    if !path.exists() {
        let ok = std::process::Command::new("make").arg("-C").arg(&dir).status().expect("run make").success();
        assert!(ok, "building tracer-c failed (run ./build.sh deps)");
    }
    path
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub struct Api {
    pub api: LocalApi,
    pub base: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn start_api(dir: &Path, port: u16) -> Api {
    let api = LocalApi::open(dir, DAY).unwrap();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = oneshot::channel::<()>();
    let server = api.clone();
    let task = tokio::spawn(async move {
        server
            .serve(listener, async {
                let _ = rx.await;
            })
            .await
    });
    Api { api, base, stop, task }
}

impl Api {
    pub async fn shut(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }

    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Waits until the API holds `want` (the GET view), or panics.
    pub async fn expect(&self, want: &[Strategy], within: Duration) {
        self.expect_ignoring(want, &[], within).await
    }

    /// Like `expect`, leaving the pids in `ignore` out of what the API holds.
    pub async fn expect_ignoring(&self, want: &[Strategy], ignore: &[u32], within: Duration) {
        let mut posts = self.api.posts();
        let deadline = tokio::time::Instant::now() + within;
        let held = || -> Option<Vec<Strategy>> {
            let list = self.api.strategies()?;
            Some(list.into_iter().filter(|s| !ignore.iter().any(|&p| i64::from(p) == s.pid)).collect())
        };
        loop {
            if held().as_deref() == Some(want) {
                return;
            }
            if tokio::time::timeout_at(deadline, posts.changed()).await.is_err() {
                panic!("API holds {:?}, want {:?}", self.api.strategies(), want);
            }
        }
    }
}

pub fn config(api: &Api, trace: &Path, key: &Path, check_proc: bool) -> Config {
    let sources = Sources {
        file: None,
        env: vec![],
        overrides: vec![
            ("api.endpoint", api.base.clone()),
            ("api.public_key_path", key.display().to_string()),
            ("trace.pipe", trace.display().to_string()),
            ("targets.check_proc", check_proc.to_string()),
            ("strategy.debounce_ms", "20".into()),
            ("strategy.interval_s", "1".into()),
            ("api.retry_max_s", "1".into()),
        ],
    };
    Config::load(&sources, Purpose::Daemon).unwrap()
}

pub fn start_daemon(cfg: Config) -> (mpsc::UnboundedSender<Control>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let reload_cfg = cfg.clone();
    let task = tokio::spawn(async move {
        daemon::run(cfg, Arc::new(Stats::default()), move || Ok(reload_cfg.clone()), rx, ()).await.unwrap();
    });
    (tx, task)
}

pub async fn stop_daemon(tx: mpsc::UnboundedSender<Control>, task: tokio::task::JoinHandle<()>) {
    tx.send(Control::Shutdown).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("daemon stops promptly").unwrap();
}

