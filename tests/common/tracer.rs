//! The netdev-mode tracer for the live tests, and children whose stdout the
//! tests read.

use super::tracer_binary;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};

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
    /// What it printed up to and including "probes attached".
    pub report: String,
}

impl Tracer {
    pub fn start(args: &[&str]) -> Tracer {
        let (mut child, mut out) = spawn_piped(
            Command::new(tracer_binary("gtp5g-tracer")).args(["--mode", "netdev"]).args(args),
        );
        let mut report = String::new();
        while out.read_line(&mut report).unwrap() > 0 {
            if report.lines().last().is_some_and(|l| l.contains("probes attached")) {
                eprint!("tracer: {report}");
                return Tracer { child, out: Some(out), report };
            }
        }
        panic!("gtp5g-tracer {args:?} exited before attaching: {:?}", child.wait());
    }

    /// Stops the tracer; returns its final (printed, suppressed) counts.
    pub fn stop(mut self) -> (u64, u64) {
        self.signal_and_wait();
        let mut rest = String::new();
        self.out.take().unwrap().read_to_string(&mut rest).unwrap();
        eprint!("tracer: {rest}");
        let line = rest
            .lines()
            .rfind(|l| l.contains("events printed="))
            .unwrap_or_else(|| panic!("no counts in the tracer's exit output: {rest:?}"));
        (field(line, "printed="), field(line, "suppressed="))
    }

    fn signal_and_wait(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "gtp5g-tracer exited with {status:?}");
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

fn field(line: &str, key: &str) -> u64 {
    let rest = &line[line.find(key).unwrap() + key.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}
