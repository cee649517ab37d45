//! `gtp5g-operator api`: the daemon's own client as a command, against the
//! real `gtp5g-operator local-api` binary, in both token schemas, with the
//! daemon's configuration keys and environment.

mod common;

use common::local_api::LocalApiProcess;
use common::{fixture, free_addr, BIN};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

/// `gtp5g-operator api ARGS` with only `env` set of the configuration's
/// environment, and no installed config file.
fn api(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("api").args(args);
    if !args.contains(&"--config") {
        cmd.args(["--config", "/dev/null"]);
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("GTP5G_OPERATOR") || key == "API_ENDPOINT" || key == "PUBLIC_KEY_PATH" {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG").envs(env.iter().copied()).output().unwrap()
}

fn stdout_of(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr_of_failure(out: &Output) -> String {
    assert!(!out.status.success(), "succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Posts and reads back as a script would: `API_ENDPOINT` and
/// `PUBLIC_KEY_PATH`, the token from `token` (v0) or `data.token` (current).
fn posts_and_reads_back(schema: &[&str], served_true: Value) {
    let server = LocalApiProcess::spawn_quiet(schema);
    let key = server.key_path();
    let env = [("API_ENDPOINT", Path::new(&server.base)), ("PUBLIC_KEY_PATH", key.as_path())];
    assert_eq!(stdout_of(&api(&["strategies"], &env)), "", "nothing in force yet");

    let posted = api(&["post", "--pid", "7", "--pid", "3"], &env);
    assert_eq!(stdout_of(&posted), "", "a POST prints nothing");
    assert_eq!(stdout_of(&api(&["strategies"], &env)), "3\n7\n");

    let whole: Value = serde_json::from_str(&stdout_of(&api(&["strategies", "--json"], &env)))
        .expect("--json prints the answer as JSON");
    assert_eq!(whole["success"], true, "{whole}");
    let served = |pid| json!({"priority": served_true, "execution_time": 20_000_000, "pid": pid});
    assert_eq!(whole["scheduling"], json!([served(3), served(7)]), "sorted, as the daemon sends");
    assert!(whole["timestamp"].is_string(), "the whole answer, not only the list: {whole}");

    stdout_of(&api(&["post"], &env));
    assert_eq!(stdout_of(&api(&["strategies"], &env)), "", "no --pid clears the list");
}

#[test]
fn posts_and_reads_back_from_the_v0_api() {
    posts_and_reads_back(&[], json!(true));
}

#[test]
fn posts_and_reads_back_from_the_current_api() {
    posts_and_reads_back(&["--schema", "current", "--priority-level", "4"], json!(4));
}

/// The daemon's keys: `api.endpoint` from the file, the key from
/// GTP5G_OPERATOR__API__PUBLIC_KEY_PATH, the POST's `strategy.*` and
/// static strategies as the daemon would send them.
#[test]
fn takes_the_daemons_configuration_file_and_environment() {
    let server = LocalApiProcess::spawn_quiet(&[]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let toml = format!(
        "[api]\nendpoint = \"{}\"\n[strategy]\nexecution_time_ns = 5000000\n\
         [[strategy.static]]\npriority = true\nexecution_time = 9\npid = 1\n",
        server.base
    );
    std::fs::write(&config, toml).unwrap();
    let key = server.key_path();
    let env = [("GTP5G_OPERATOR__API__PUBLIC_KEY_PATH", key.as_path())];
    let config = config.to_str().unwrap();
    stdout_of(&api(&["post", "--pid", "42", "--config", config], &env));
    let whole: Value =
        serde_json::from_str(&stdout_of(&api(&["strategies", "--json", "--config", config], &env)))
            .unwrap();
    assert_eq!(
        whole["scheduling"],
        json!([
            {"priority": true, "execution_time": 5_000_000, "pid": 42},
            {"priority": true, "execution_time": 9, "pid": 1},
        ]),
        "{whole}"
    );
}

#[test]
fn an_unreachable_api_or_a_refused_key_is_a_clear_failure() {
    let nobody = format!("http://{}", free_addr());
    let key = fixture("other_public_key.pem");
    let down =
        api(&["strategies", "--api-endpoint", &nobody], &[("PUBLIC_KEY_PATH", key.as_path())]);
    let err = stderr_of_failure(&down);
    assert!(err.contains(&format!("token request {nobody}/api/v1/auth/token")), "{err}");
    assert!(err.contains("Connection refused"), "{err}");

    let server = LocalApiProcess::spawn_quiet(&[]);
    let refused = api(
        &["post", "--pid", "1", "--public-key", key.to_str().unwrap()],
        &[("API_ENDPOINT", Path::new(&server.base))],
    );
    let err = stderr_of_failure(&refused);
    assert!(err.contains("the API rejected the public key"), "{err}");
    assert!(err.contains("other_public_key.pem"), "names the key file: {err}");
}

#[test]
fn a_missing_key_file_is_named_before_any_request() {
    let err = stderr_of_failure(&api(
        &["strategies"],
        &[("PUBLIC_KEY_PATH", Path::new("/nonexistent/key.pem"))],
    ));
    assert!(err.contains("api.public_key_path") && err.contains("/nonexistent/key.pem"), "{err}");
}
