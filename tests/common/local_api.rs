//! `gtp5g-operator local-api` as a child process: the real server binary,
//! on an ephemeral port, with the fixture key (no RSA key generation).

use super::{BIN, SERVER_PRIVATE_KEY};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Stdio};
use tempfile::TempDir;

/// The child, its address (from its log) and its stderr, which the caller
/// reads on or drops.
pub struct LocalApiProcess {
    child: Child,
    pub base: String,
    /// Taken by the test: read on, or dropped to close the pipe.
    pub stderr: Option<std::io::BufReader<ChildStderr>>,
    /// The server's public key, as the daemon trades it for a token.
    pub pem: String,
    dir: TempDir,
}

impl LocalApiProcess {
    /// `gtp5g-operator local-api ARGS`; returns once it listens.
    pub fn spawn(args: &[&str]) -> LocalApiProcess {
        let dir = TempDir::new().unwrap();
        super::install_private_key(dir.path(), SERVER_PRIVATE_KEY);
        let mut child = Command::new(BIN)
            .args(["local-api", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(dir.path())
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("listening on ") {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "exited before listening");
        }
        let addr = line.split("listening on ").nth(1).unwrap().split(',').next().unwrap();
        let pem = std::fs::read_to_string(dir.path().join("jwt_public_key.pem")).unwrap();
        LocalApiProcess { child, base: format!("http://{addr}"), stderr: Some(stderr), pem, dir }
    }

    /// Like `spawn`, its log read on and dropped by a thread of its own.
    pub fn spawn_quiet(args: &[&str]) -> LocalApiProcess {
        let mut server = LocalApiProcess::spawn(args);
        let mut log = server.stderr.take().unwrap();
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        server
    }

    /// Where the server keeps its public key (the daemon's PUBLIC_KEY_PATH).
    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("jwt_public_key.pem")
    }
}

impl Drop for LocalApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
