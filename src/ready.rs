//! The ready file (`run --ready-file`): readiness for scripts and tests, at
//! the moment systemd gets READY=1, without grepping the log. One JSON line
//! (`{"pid":N,"source":"<path>"}`), written atomically, gone on exit.

use crate::daemon::{Lifecycle, Readiness};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The environment's way to ask for a ready file (`--ready-file` wins).
pub const ENV: &str = "GTP5G_OPERATOR_READY_FILE";

#[derive(Debug, thiserror::Error)]
#[error("ready file {}: {source}", path.display())]
pub struct ReadyFileError {
    path: PathBuf,
    source: io::Error,
}

#[derive(Debug)]
pub struct ReadyFile {
    path: PathBuf,
}

impl ReadyFile {
    /// Removes what a killed earlier run left at `path`, so that a waiter
    /// never takes it for this run's; fails if `path` cannot be written.
    pub fn create(path: PathBuf) -> Result<ReadyFile, ReadyFileError> {
        let file = ReadyFile { path };
        file.remove().map_err(|source| file.error(source))?;
        let dir =
            file.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !dir.is_dir() {
            let missing = io::Error::new(io::ErrorKind::NotFound, "no such directory");
            return Err(file.error(missing));
        }
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// write PATH.tmp, fsync, rename: a reader sees all of it or nothing.
    pub fn write(&self, ready: &Readiness) -> Result<(), ReadyFileError> {
        let line =
            serde_json::json!({ "pid": ready.pid, "source": ready.source.display().to_string() });
        let mut tmp_name = self.path.clone().into_os_string();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            writeln!(f, "{line}")?;
            f.sync_all()
        });
        written
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })
            .map_err(|source| self.error(source))
    }

    fn remove(&self) -> io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn error(&self, source: io::Error) -> ReadyFileError {
        ReadyFileError { path: self.path.clone(), source }
    }
}

impl Lifecycle for ReadyFile {
    fn ready(&mut self, ready: &Readiness) {
        if let Err(e) = self.write(ready) {
            tracing::error!(error = %e, "cannot write the ready file");
        }
    }

    fn stopping(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!(error = %e, path = %self.path.display(), "cannot remove the ready file");
        }
    }
}

impl Drop for ReadyFile {
    /// Any exit the daemon controls, an early error too, takes the file away.
    fn drop(&mut self) {
        let _ = self.remove();
    }
}
