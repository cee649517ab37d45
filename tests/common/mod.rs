//! Real parts for the integration tests: the daemon binary as a subprocess
//! or in process, real target processes, FIFOs, the tracer-c binaries, the
//! project's LocalApi and a small HTTP server that misbehaves on purpose.
#![allow(dead_code)] // each test crate uses a different part of this module

pub mod faulty;
pub mod local_api;
pub mod tls;
pub mod tracer;

use gtp5g_operator::api::{Strategy, TokenResponse};
use gtp5g_operator::config::{Config, Purpose, Sources};
use gtp5g_operator::local_api::{LocalApi, Schema};
use gtp5g_operator::signal::Control;
use gtp5g_operator::stats::Stats;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const SERVER_PRIVATE_KEY: &str = include_str!("../fixtures/server_private_key.pem");
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
pub const BIN: &str = env!("CARGO_BIN_EXE_gtp5g-operator");

/// A bound for a machine `GTP5G_TEST_SLOWDOWN` times slower than this one
/// (the VM test bed's emulated guests set it): the tests check behaviour
/// there, not timing, so their waits stretch instead of failing.
pub fn slow(bound: Duration) -> Duration {
    let factor = std::env::var("GTP5G_TEST_SLOWDOWN").ok().and_then(|f| f.parse().ok());
    bound * factor.unwrap_or(1u32).max(1)
}

/// Puts `key` (PEM) in `dir` as the local API's private key, mode 0600 as
/// the server demands of it.
pub fn install_private_key(dir: &Path, key: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join("jwt_private_key.pem"))
        .unwrap();
    f.write_all(key.as_bytes()).unwrap();
}

/// Set to 1 (as `.ci/run` does) to turn every capability skip into a
/// failure, so CI cannot go green on a machine without root, tracefs, BPF
/// or a needed tool.
pub const REQUIRE_LIVE: &str = "GTP5G_REQUIRE_LIVE";

/// Called when this machine lacks a capability the test needs (root,
/// tracefs, BPF, a tool, a container engine), just before the test returns
/// early: prints `skipped: {why}`, or fails naming it when `REQUIRE_LIVE` is
/// 1. Use as `return skip_unless_live(&why);`.
pub fn skip_unless_live(why: &str) {
    if std::env::var(REQUIRE_LIVE).is_ok_and(|v| v == "1") {
        panic!("{REQUIRE_LIVE}=1 but this machine cannot run the test: {why}");
    }
    eprintln!("skipped: {why}");
}

/// Why this machine cannot load BPF programs and read trace_pipe, if it
/// cannot: not root, or no tracefs.
pub fn missing_live_capability() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root to load BPF programs and read trace_pipe".into());
    }
    gtp5g_operator::source::locate(None, true).err().map(|e| e.to_string())
}

/// trace_pipe is one consumer queue for the whole machine: whoever else
/// reads it (another test binary, a benchmark) waits for this lock.
pub fn lock_trace_pipe() -> std::fs::File {
    let f = std::fs::File::create("/tmp/gtp5g-operator-trace_pipe.lock").unwrap();
    // SAFETY: flock on an fd we own.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    f
}

/// Polls `f` every 20 ms until it holds or `timeout` passes; true if it held.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A trace_pipe line as the netdev tracer prints it.
pub fn trace_line(comm: &str, tid: u32, tgid: u32) -> String {
    format!("          {comm}-{tid}   [001] b..2.  1675.757067: bpf_trace_printk: tp/net_dev_queue: PID={tid}, TGID={tgid}, CPU=1\n")
}

/// Spawns a just-written executable. Another test thread's fork can still
/// hold the copy's write descriptor until its exec closes it, and exec then
/// fails with ETXTBSY: retried, as that window is a few milliseconds.
fn spawn_fresh_copy(cmd: &mut Command) -> Child {
    for _ in 0..100 {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(10))
            }
            other => return other.unwrap_or_else(|e| panic!("{cmd:?}: {e}")),
        }
    }
    panic!("{cmd:?}: still ETXTBSY after 1 s");
}

/// A live process whose comm is `name`: /bin/sleep copied under that name.
pub struct Target {
    child: Child,
    _dir: TempDir,
}

impl Target {
    pub fn spawn(name: &str) -> Target {
        let dir = TempDir::new().unwrap();
        let exe = dir.path().join(name);
        std::fs::copy("/bin/sleep", &exe).unwrap();
        Target { child: spawn_fresh_copy(Command::new(&exe).arg("600")), _dir: dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn line(&self) -> String {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", self.pid())).unwrap();
        trace_line(comm.trim(), self.pid(), self.pid())
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A FIFO the test writes trace lines into. The test holds it open for
/// reading and writing, so writes never block and never see "no reader",
/// and the daemon never sees its writer leave until `close_writer`.
pub struct Fifo {
    pub path: PathBuf,
    writer: Option<File>,
}

impl Fifo {
    pub fn create(path: &Path) -> Fifo {
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
        Fifo::open_existing(path)
    }

    /// A writer on a FIFO that already exists.
    pub fn open_existing(path: &Path) -> Fifo {
        let path = path.to_path_buf();
        let writer = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        Fifo { path, writer: Some(writer) }
    }

    pub fn write(&mut self, text: &str) {
        let w = self.writer.get_or_insert_with(|| {
            std::fs::OpenOptions::new().read(true).write(true).open(&self.path).unwrap()
        });
        w.write_all(text.as_bytes()).unwrap();
    }

    pub fn close_writer(&mut self) {
        self.writer = None;
    }
}

/// The project's local Gthulhu API on 127.0.0.1, restartable on its port
/// (a restart loses the in-memory list, as the real server's does).
pub struct Api {
    pub api: LocalApi,
    pub addr: SocketAddr,
    schema: Schema,
    dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Api {
    pub async fn start() -> Api {
        Api::start_schema(Schema::V0).await
    }

    pub async fn start_schema(schema: Schema) -> Api {
        let mut api = Api::new_schema("127.0.0.1:0".parse().unwrap(), schema);
        api.serve().await;
        api
    }

    /// Keys on disk, not yet listening on `addr`.
    pub fn new(addr: SocketAddr) -> Api {
        Api::new_schema(addr, Schema::V0)
    }

    pub fn new_schema(addr: SocketAddr, schema: Schema) -> Api {
        let dir = TempDir::new().unwrap();
        install_private_key(dir.path(), SERVER_PRIVATE_KEY);
        Api {
            api: LocalApi::open_schema(dir.path(), TOKEN_LIFETIME, schema).unwrap(),
            addr,
            schema,
            dir,
            stop: None,
            task: None,
        }
    }

    pub async fn serve(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let api = self.api.clone();
        self.task = Some(tokio::spawn(async move {
            api.serve(listener, async {
                let _ = rx.await;
            })
            .await
        }));
        self.stop = Some(tx);
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }

    /// A new server process on the same port and key: the list is gone.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.api = LocalApi::open_schema(self.dir.path(), TOKEN_LIFETIME, self.schema).unwrap();
        self.serve().await;
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn key_path(&self) -> PathBuf {
        self.api.public_key_path()
    }

    /// The pids in force (what a GET would answer), sorted.
    pub fn pids(&self) -> Vec<i64> {
        pids_of(self.api.strategies())
    }

    /// The answer to a token request with the server's own public key.
    pub async fn request_token(&self) -> serde_json::Value {
        reqwest::Client::new()
            .post(format!("{}{}", self.url(), gtp5g_operator::api::TOKEN_PATH))
            .json(&serde_json::json!({ "public_key": self.api.public_key_pem() }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// POSTs a one-pid list as another client would (someone else's list,
    /// a stale one), and checks it was taken.
    pub async fn post_as_other_client(&self, pid: i64) {
        let body = serde_json::json!({"strategies": [{"priority": true, "execution_time": 1, "pid": pid}]});
        let answer: TokenResponse = serde_json::from_value(self.request_token().await).unwrap();
        let (token, _) = answer.into_token().expect("a token in either schema's answer");
        let status = reqwest::Client::new()
            .post(format!("{}{}", self.url(), gtp5g_operator::api::STRATEGIES_PATH))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }

    pub fn state_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits until the pids the API holds satisfy `f`, or panics; prints and
    /// returns how long it took.
    pub async fn until(&self, what: &str, bound: Duration, f: impl Fn(&[i64]) -> bool) -> Duration {
        let started = Instant::now();
        let mut posts = self.api.posts();
        loop {
            if f(&self.pids()) {
                let took = started.elapsed();
                eprintln!("{what}: {} ms", took.as_millis());
                return took;
            }
            let left = bound.saturating_sub(started.elapsed());
            if tokio::time::timeout(left, posts.changed()).await.is_err() {
                panic!("{what}: not within {bound:?}; the API holds {:?}", self.pids());
            }
        }
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
            Some(
                list.into_iter()
                    .filter(|s| !ignore.iter().any(|&p| i64::from(p) == s.pid))
                    .collect(),
            )
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

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A tracer-c binary (gtp5g-tracer, gtpu-traffic, ...), built with make
/// if missing (`./build.sh test` builds it first).
pub fn tracer_binary(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tracer-c");
    let path = dir.join("build").join(name);
    if !path.exists() {
        let ok = Command::new("make").arg("-C").arg(&dir).status().expect("run make").success();
        assert!(ok, "building tracer-c failed (run ./build.sh deps)");
    }
    path
}

/// The in-process daemon's configuration, with the fast test knobs. An
/// empty config file keeps an installed /etc/gtp5g-operator out of it.
pub fn config(api: &Api, trace: &Path, check_proc: bool) -> Config {
    let sources = Sources {
        file: Some(PathBuf::from("/dev/null")),
        env: vec![],
        overrides: vec![
            ("api.endpoint", api.url()),
            ("api.public_key_path", api.key_path().display().to_string()),
            ("trace.pipe", trace.display().to_string()),
            ("targets.check_proc", check_proc.to_string()),
            // Beside the API's keys: gone with the test's Api.
            ("state.dir", api.state_dir().join("operator").display().to_string()),
            ("strategy.debounce_ms", "20".into()),
            ("strategy.interval_s", "1".into()),
            ("api.retry_max_s", "1".into()),
        ],
    };
    Config::load(&sources, Purpose::Daemon).unwrap()
}

/// `daemon::run` on this runtime; stop it with `stop_daemon`.
pub fn start_daemon(cfg: Config) -> (Control, tokio::task::JoinHandle<()>) {
    let control = Control::default();
    let reload_cfg = cfg.clone();
    let c = control.clone();
    let task = tokio::spawn(async move {
        gtp5g_operator::daemon::run(
            cfg,
            Arc::new(Stats::default()),
            move || Ok(reload_cfg.clone()),
            c,
            (),
        )
        .await
        .unwrap();
    });
    (control, task)
}

pub async fn stop_daemon(control: Control, task: tokio::task::JoinHandle<()>) {
    control.stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("daemon stops promptly")
        .unwrap();
}

pub fn pids_of(list: Option<Vec<Strategy>>) -> Vec<i64> {
    let mut p: Vec<i64> =
        list.unwrap_or_default().iter().map(|s| s.pid).filter(|&p| p != 0).collect();
    p.sort_unstable();
    p
}

/// A free loopback port: bound, read, released.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

pub const STATE_DIR_ENV: &str = "GTP5G_OPERATOR__STATE__DIR";
pub const READY_FILE_ENV: &str = gtp5g_operator::ready::ENV;

/// `gtp5g-operator run` with the fast test knobs; stderr goes to a file
/// that the test reads while the daemon runs.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
    /// Where the daemon says it is ready (GTP5G_OPERATOR_READY_FILE).
    pub ready: PathBuf,
    _dir: TempDir,
}

pub fn daemon_command(endpoint: &str, key: &Path, pipe: &Path) -> Command {
    // An empty file, so that an installed /etc/gtp5g-operator/config.toml
    // cannot leak into the tests.
    daemon_command_with_config(endpoint, key, pipe, Path::new("/dev/null"))
}

pub fn daemon_command_with_config(
    endpoint: &str,
    key: &Path,
    pipe: &Path,
    config: &Path,
) -> Command {
    let mut c = daemon_command_default_source(endpoint, key, config);
    c.arg("--trace-pipe").arg(pipe);
    c
}

/// The daemon reading what it reads by default (trace.instance).
pub fn daemon_command_default_source(endpoint: &str, key: &Path, config: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("run")
        .arg("--config")
        .arg(config)
        .arg("--api-endpoint")
        .arg(endpoint)
        .arg("--public-key")
        .arg(key)
        .env_remove("RUST_LOG")
        .env_remove("API_ENDPOINT")
        .env_remove("PUBLIC_KEY_PATH")
        .env("GTP5G_OPERATOR__STRATEGY__INTERVAL_S", "1")
        .env("GTP5G_OPERATOR__STRATEGY__DEBOUNCE_MS", "20")
        .env("GTP5G_OPERATOR__API__RETRY_MAX_S", "1")
        .env(
            "GTP5G_OPERATOR__API__TIMEOUT_MS",
            slow(Duration::from_millis(500)).as_millis().to_string(),
        )
        .env("GTP5G_OPERATOR__TARGETS__NAMES", "nr-gnb,nr-ue");
    c
}

/// `outer` running `inner`'s program and arguments with `inner`'s
/// environment (`outer` ends by exec'ing them).
pub fn wrapping(mut outer: Command, inner: &Command) -> Command {
    outer.arg(inner.get_program()).args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(v) => outer.env(key, v),
            None => outer.env_remove(key),
        };
    }
    outer
}

impl Daemon {
    /// Runs `cmd`; its state directory and ready file are in a fresh
    /// temporary directory unless the command names them.
    pub fn spawn(mut cmd: Command) -> Daemon {
        let dir = TempDir::new().unwrap();
        let log = dir.path().join("stderr.log");
        for (var, default) in [(STATE_DIR_ENV, "state"), (READY_FILE_ENV, "ready.json")] {
            if !cmd.get_envs().any(|(k, _)| k == var) {
                cmd.env(var, dir.path().join(default));
            }
        }
        let ready = cmd.get_envs().find(|(k, _)| *k == READY_FILE_ENV).unwrap().1.unwrap().into();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log, ready, _dir: dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.log_text().matches(needle).count()
    }

    pub async fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        eventually(timeout, || self.log_text().contains(needle)).await
    }

    /// What this daemon wrote to the ready file `path`, if it has (a file
    /// left by another process does not count).
    pub fn ready_at(&self, path: &Path) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(path).ok()?;
        let said: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: {e}: {text:?}", path.display()));
        (said["pid"] == self.pid()).then_some(said)
    }

    /// Waits for the ready file, the daemon's word that it reads the trace
    /// source and has had the API's first answer.
    pub async fn wait_ready(&self, timeout: Duration) -> serde_json::Value {
        self.wait_ready_at(&self.ready, timeout).await
    }

    /// `wait_ready` for a daemon told `--ready-file path`.
    pub async fn wait_ready_at(&self, path: &Path, timeout: Duration) -> serde_json::Value {
        let ready = eventually(timeout, || self.ready_at(path).is_some()).await;
        assert!(ready, "not ready within {timeout:?}:\n{}", self.log_text());
        self.ready_at(path).unwrap()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// User + system CPU time so far, in clock ticks (1/100 s).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            // A failed test shows what the daemon said.
            eprintln!("--- daemon stderr ---\n{}", self.log_text());
        }
    }
}
