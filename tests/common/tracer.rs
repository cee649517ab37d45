//! The netdev-mode tracer for the live tests, and children whose stdout the
//! tests read.

use super::tracer_binary;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Starts `cmd` with its stdout piped to the test.
pub fn spawn_piped(cmd: &mut Command) -> (Child, BufReader<ChildStdout>) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

/// The tracer, attached, with the rest of its stdout kept for the counts
/// it prints on exit. SIGTERMed (and reaped) when dropped.
pub struct Tracer {
    child: Child,
    out: Option<BufReader<ChildStdout>>,
    /// What it printed before it said it was ready.
    pub report: String,
    /// Its ready file's one line (`--ready-file`).
    pub ready: String,
    ready_file: PathBuf,
    _dir: TempDir,
}

impl Tracer {
    /// Starts the netdev tracer and waits for its ready file, as the
    /// scripts do, never for a log line.
    pub fn start(args: &[&str]) -> Tracer {
        Tracer::start_as(Command::new(tracer_binary("gtp5g-tracer")), args)
    }

    /// The same, run by `cmd`: the tracer's binary with its own settings
    /// (a pre_exec step), or a wrapper that execs the arguments after its
    /// own, so that the child's pid stays the tracer's.
    pub fn start_as(mut cmd: Command, args: &[&str]) -> Tracer {
        let dir = TempDir::new().unwrap();
        let ready_file = dir.path().join("tracer.ready");
        let (mut child, out) =
            spawn_piped(cmd.args(["--mode", "netdev", "--ready-file"]).arg(&ready_file).args(args));
        // Generous: in the VM test bed (TCG, about 10x slower) each object's
        // load parses the kernel's BTF again and verifies its programs.
        let deadline = Instant::now() + Duration::from_secs(120);
        let ready = loop {
            if let Ok(line) = std::fs::read_to_string(&ready_file) {
                break line;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("gtp5g-tracer {args:?} exited before it was ready: {status:?}");
            }
            assert!(Instant::now() < deadline, "gtp5g-tracer {args:?}: not ready in 120 s");
            thread::sleep(Duration::from_millis(10));
        };
        let mut tracer =
            Tracer { child, out: Some(out), report: String::new(), ready, ready_file, _dir: dir };
        tracer.report = tracer.read_report();
        eprint!("tracer: {}", tracer.report);
        tracer
    }

    /// The lines printed up to the ready line, which came before the file.
    fn read_report(&mut self) -> String {
        let out = self.out.as_mut().unwrap();
        let mut report = String::new();
        while !report.lines().last().is_some_and(|l| l.contains("probes attached")) {
            assert!(out.read_line(&mut report).unwrap() > 0, "tracer stdout closed: {report}");
        }
        report
    }

    /// SIGKILL, as a crash or the OOM killer would: no goodbye, no counts.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.out = None;
    }

    pub fn ready_file(&self) -> &Path {
        &self.ready_file
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the tracer; returns its final counts.
    pub fn stop(mut self) -> Counts {
        self.signal_and_wait();
        let mut rest = String::new();
        self.out.take().unwrap().read_to_string(&mut rest).unwrap();
        eprint!("tracer: {rest}");
        let line = rest
            .lines()
            .rfind(|l| l.contains("events printed="))
            .unwrap_or_else(|| panic!("no counts in the tracer's exit output: {rest:?}"));
        Counts {
            printed: field(line, "printed="),
            suppressed: field(line, "suppressed="),
            cache_hits: field(line, "cache_hits="),
        }
    }

    fn signal_and_wait(&mut self) {
        let status = self.kill_and_wait(libc::SIGTERM);
        assert!(status.success(), "gtp5g-tracer exited with {status:?}");
    }

    /// Sends `sig` and returns how the tracer ended.
    pub fn end_with(mut self, sig: i32) -> std::process::ExitStatus {
        let status = self.kill_and_wait(sig);
        self.out = None;
        status
    }

    fn kill_and_wait(&mut self, sig: i32) -> std::process::ExitStatus {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
        self.child.wait().unwrap()
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if self.out.is_some() {
            // SAFETY: as above; the test already failed, so no assertion.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}

/// The tracer's event counts at exit: `cache_hits` are the suppressed
/// events netdev's per-CPU cache answered without a helper call.
#[derive(Debug)]
pub struct Counts {
    pub printed: u64,
    pub suppressed: u64,
    pub cache_hits: u64,
}

fn field(line: &str, key: &str) -> u64 {
    let rest = &line[line.find(key).unwrap() + key.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}
