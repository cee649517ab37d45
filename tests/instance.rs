//! The operator's own tracing instance, live: the real tracer and ran-sim,
//! the real tracefs, the daemon binary and the local API, with a person's
//! `cat` of the global trace_pipe running throughout.
//! Needs root, tracefs and BPF; CI runs as root.

mod common;

use common::tracer::{spawn_piped, Tracer};
use common::*;
use gtp5g_operator::source::holders::Holders;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const INSTANCE_ENV: &str = "GTP5G_OPERATOR__TRACE__INSTANCE";
const LONG: Duration = Duration::from_secs(10);

fn global_pipe() -> PathBuf {
    gtp5g_operator::source::locate(None, false).unwrap()
}

/// `cat <trace_pipe>` as a person debugging runs it, its output gathered on
/// a thread; started once it holds the pipe.
struct Cat {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Cat {
    fn start(pipe: &Path) -> Cat {
        let (child, mut stdout) = spawn_piped(Command::new("cat").arg(pipe));
        let out = Arc::new(Mutex::new(String::new()));
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let cat = Cat { child, out };
        let deadline = Instant::now() + LONG;
        while !Holders::find(pipe).found.iter().any(|h| h.pid == cat.pid()) {
            assert!(Instant::now() < deadline, "cat never opened {}", pipe.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        cat
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Cat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tracing instance name of this test's own (other test runs share the
/// host's tracefs), removed when dropped if the test did not.
struct Instance {
    name: String,
    dir: PathBuf,
}

impl Instance {
    fn new(tag: &str) -> Instance {
        let name = format!("gtp5g-test-{}-{tag}", std::process::id());
        let dir = global_pipe().parent().unwrap().join("instances").join(&name);
        Instance { name, dir }
    }

    fn trace_pipe(&self) -> PathBuf {
        self.dir.join("trace_pipe")
    }

    /// The daemon reading this instance by default.
    fn daemon(&self, api: &Api) -> Command {
        let mut cmd =
            daemon_command_default_source(&api.url(), &api.key_path(), Path::new("/dev/null"));
        cmd.env(INSTANCE_ENV, &self.name);
        cmd
    }

    fn command(&self, action: &str) -> Output {
        Command::new(BIN)
            .args(["trace-instance", action, "--config", "/dev/null"])
            .env(INSTANCE_ENV, &self.name)
            .output()
            .unwrap()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// ran-sim with one UE, killed when dropped; `gnb` is its nr-gnb's pid.
struct RanSim {
    child: Child,
    _out: BufReader<ChildStdout>,
    gnb: u32,
}

impl RanSim {
    fn start() -> RanSim {
        let (child, mut out) = spawn_piped(Command::new(tracer_binary("ran-sim")).args([
            "--ues",
            "1",
            "--idle-ues",
            "0",
            "--rate",
            "20",
        ]));
        let gnb = loop {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "ran-sim ended before its nr-gnb");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["role"] == "gnb" {
                break v["pid"].as_u64().unwrap() as u32;
            }
        };
        RanSim { child, _out: out, gnb }
    }
}

impl Drop for RanSim {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn reading(path: &Path) -> String {
    format!("reading trace lines path={}", path.display())
}

async fn stop(mut daemon: Daemon) {
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(LONG).await.expect("daemon exits on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", daemon.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_start_boosts_a_new_nr_gnb_within_1_s_while_a_cat_keeps_the_global_pipe() {
    if let Some(why) = missing_live_capability() {
        return skip_unless_live(&why);
    }
    let _lock = lock_trace_pipe();
    let mut cat = Cat::start(&global_pipe());
    let api = Api::start().await;
    let _tracer = Tracer::start(&[]);
    let instance = Instance::new("default");
    let daemon = Daemon::spawn(instance.daemon(&api));
    assert!(daemon.wait_log(&reading(&instance.trace_pipe()), LONG).await, "{}", daemon.log_text());

    let started = Instant::now();
    let sim = RanSim::start();
    let gnb = i64::from(sim.gnb);
    api.until("nr-gnb boosted", Duration::from_secs(1), |p| p.contains(&gnb)).await;
    let took = started.elapsed();
    eprintln!("nr-gnb {gnb} in the API's list {took:?} after ran-sim was started");
    assert!(took <= Duration::from_secs(1), "{took:?}");

    // The cat was never disturbed: still running, and it got this very
    // nr-gnb's lines from the global trace_pipe.
    let gnb_line = format!("TGID={gnb}");
    assert!(eventually(LONG, || cat.text().contains(&gnb_line)).await, "cat saw no {gnb_line}");
    assert!(cat.running(), "the cat stopped");
    let log = daemon.log_text();
    assert!(!log.contains("busy") && !log.contains("global trace_pipe"), "{log}");

    drop(sim);
    stop(daemon).await;
    let out = instance.command("remove");
    assert!(out.status.success() && stderr(&out).contains("removed"), "{}", stderr(&out));
    assert!(!instance.dir.exists(), "{} still there", instance.dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_runs_instance_is_reused_and_remove_waits_for_its_reader() {
    if let Some(why) = missing_live_capability() {
        return skip_unless_live(&why);
    }
    if let Some(why) = missing_confinement() {
        return skip_unless_live(why);
    }
    let _lock = lock_trace_pipe();
    let api = Api::start().await;
    let _tracer = Tracer::start(&[]);
    let instance = Instance::new("crash");
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(instance.dir.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&instance.name))
            .collect();
        names.sort();
        names
    };

    let mut first = Daemon::spawn(instance.daemon(&api));
    assert!(first.wait_log(&reading(&instance.trace_pipe()), LONG).await, "{}", first.log_text());
    assert_eq!(first.count("created a tracing instance"), 1, "{}", first.log_text());
    first.signal(libc::SIGKILL);
    first.wait_exit(LONG).await.expect("killed");

    // As the unit and the pod run it after their privileged step: no
    // capabilities, tracefs read-only, so it reuses or falls back.
    let second = Daemon::spawn(confined(&instance.daemon(&api)));
    assert!(second.wait_log(&reading(&instance.trace_pipe()), LONG).await, "{}", second.log_text());
    let log = second.log_text();
    assert!(
        !log.contains("created a tracing instance") && !log.contains("global trace_pipe"),
        "{log}"
    );
    assert_eq!(listing(), vec![instance.name.clone()]);
    let sim = RanSim::start();
    let gnb = i64::from(sim.gnb);
    api.until("nr-gnb boosted through the reused instance", LONG, |p| p.contains(&gnb)).await;
    drop(sim);

    // The kernel keeps an instance someone reads; remove says who.
    let out = instance.command("remove");
    let holder = format!("pid {} (gtp5g-operator)", second.pid());
    assert!(!out.status.success() && stderr(&out).contains(&holder), "{}", stderr(&out));
    stop(second).await;
    let out = instance.command("remove");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(listing().is_empty() && !instance.dir.exists());
    let again = instance.command("remove");
    assert!(
        again.status.success() && stderr(&again).contains("nothing to remove"),
        "{}",
        stderr(&again)
    );
}

fn missing_confinement() -> Option<&'static str> {
    let runs = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
    (!runs("setpriv") || !runs("unshare")).then_some("setpriv or unshare (util-linux) is missing")
}

/// Runs `inner` as the systemd unit and the pod run the daemon: root with
/// no capabilities and tracefs read-only.
fn confined(inner: &Command) -> Command {
    let script = r#"mount -o remount,bind,ro /sys/kernel/tracing &&
        exec setpriv --bounding-set=-all --inh-caps=-all --ambient-caps=-all --no-new-privs "$@""#;
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", script, "sh"]);
    wrapping(cmd, inner)
}

/// /healthz's answer once it is 503 and names `holder`, or the last one.
async fn unhealthy_naming(addr: std::net::SocketAddr, holder: &str) -> (u16, String) {
    let end = Instant::now() + LONG;
    loop {
        let r = reqwest::get(format!("http://{addr}/healthz")).await;
        let last = match r {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        };
        if (last.0 == 503 && last.1.contains(holder)) || Instant::now() > end {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_instance_it_falls_back_once_and_names_the_global_pipes_holder() {
    if let Some(why) = missing_live_capability() {
        return skip_unless_live(&why);
    }
    if let Some(why) = missing_confinement() {
        return skip_unless_live(why);
    }
    let _lock = lock_trace_pipe();
    let global = global_pipe();
    let cat = Cat::start(&global);
    let api = Api::start().await;
    let instance = Instance::new("missing");
    let addr = free_addr();
    let mut cmd = confined(&instance.daemon(&api));
    cmd.arg("--metrics-listen")
        .arg(addr.to_string())
        .env("GTP5G_OPERATOR__METRICS__MAX_SOURCE_DOWN_S", "1");
    let daemon = Daemon::spawn(cmd);

    // Without ptrace rights over a root `cat`, the holder is a likely one.
    let likely = format!("likely pid {} (cat)", cat.pid());
    assert!(daemon.wait_log(&likely, LONG).await, "{}", daemon.log_text());
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    assert!(status.lines().any(|l| l == "CapEff:\t0000000000000000"), "{status}");
    let (code, body) = unhealthy_naming(addr, &likely).await;
    assert!(code == 503 && body.contains("trace source down"), "healthz {code}: {body}");
    eprintln!("healthz {code}: {body}");
    // Several reopens later, the fallback was still said once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = daemon.log_text();
    assert_eq!(log.matches("reading the global trace_pipe").count(), 1, "{log}");
    assert!(
        log.contains("Read-only file system") && log.contains("trace-instance create"),
        "{log}"
    );
    assert!(log.contains("fuser -v"), "{log}");
    assert!(!instance.dir.exists());
    stop(daemon).await;

    // Root with its capabilities, global pipe set explicitly: the holder
    // is found through its fd.
    let daemon = Daemon::spawn(daemon_command(&api.url(), &api.key_path(), &global));
    let found = format!("held by pid {} (cat)", cat.pid());
    assert!(daemon.wait_log(&found, LONG).await, "{}", daemon.log_text());
    assert!(daemon.log_text().contains("tracing instance of its own"), "{}", daemon.log_text());
    stop(daemon).await;
}
