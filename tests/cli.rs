//! The command line as users run it: replay, --json, --version, and a
//! reader that goes away early.

use std::io::Read;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_gtp5g-operator");

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn replay(args: &[&str]) -> std::process::Output {
    // /dev/null: an installed /etc/gtp5g-operator/config.toml stays out.
    Command::new(BIN).args(["replay", "--config", "/dev/null"]).args(args).output().unwrap()
}

#[test]
fn replay_json_is_the_golden_document() {
    let out = replay(&["--json", &fixture("netdev-gtpu-record-tgid.trace")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture("netdev-gtpu-record-tgid.expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(got, want);
}

#[test]
fn replay_prints_processes_and_the_exact_post_body() {
    let out = replay(&[&fixture("netdev-gtpu-no-irq-info.trace")]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("nr-gnb   process 10303    threads 10344"), "{text}");
    let body = text.lines().last().unwrap();
    assert_eq!(
        body,
        r#"{"strategies":[{"priority":true,"execution_time":20000000,"pid":10303},{"priority":true,"execution_time":20000000,"pid":10344}]}"#
    );
}

#[test]
fn replay_into_a_closed_pipe_is_not_a_crash() {
    // The read end is closed before the child starts: its first write fails
    // with EPIPE, as with `replay ... | head -1` once head has exited.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = Command::new(BIN)
        .args(["replay", "--config", "/dev/null", "--json", &fixture("live-netdev.trace")])
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success() && !err.contains("panicked"), "{status:?} {err}");
}

#[test]
fn replay_of_a_missing_file_names_it_and_fails() {
    let out = replay(&["/nonexistent/cap.trace"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/cap.trace"));
}

#[test]
fn version_and_help() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("gtp5g-operator {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for sub in ["run", "replay", "check-config", "local-api"] {
        assert!(help.contains(sub), "{help}");
    }
}
