//! `tracked.json` in the state directory: the tracked processes, so that a
//! restarted daemon boosts running targets again before their next packet.
//! Losing it only costs that head start, so every failure here is logged
//! and the daemon goes on.

use super::Persisted;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "tracked.json";

/// Far more than `targets.max_processes` entries ever take (about 70 bytes
/// each): a larger file is not one this daemon wrote.
pub const MAX_BYTES: u64 = 4 << 20;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StateFile {
    processes: Vec<Persisted>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("reading {path}: {reason}")]
    NotAFile { path: PathBuf, reason: String },
    #[error("{path} is not a tracked-process list: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// The state file of `dir`.
#[derive(Debug, Clone)]
pub struct StateFilePath(PathBuf);

impl StateFilePath {
    pub fn in_dir(dir: &Path) -> Self {
        StateFilePath(dir.join(FILE_NAME))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// What an earlier run saved; no file at all is an empty list.
    pub fn load(&self) -> Result<Vec<Persisted>, StateError> {
        let path = &self.0;
        let text = match read_bounded(path) {
            Ok(t) => t,
            Err(Unreadable::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(Unreadable::Io(source)) => {
                return Err(StateError::Read { path: path.clone(), source })
            }
            Err(Unreadable::Kind(reason)) => {
                return Err(StateError::NotAFile { path: path.clone(), reason })
            }
        };
        let file: StateFile = serde_json::from_slice(&text)
            .map_err(|source| StateError::Corrupt { path: path.clone(), source })?;
        Ok(file.processes)
    }

    /// Replaces the file whole: written to a temporary beside it, synced,
    /// renamed over it and the directory synced, so that a crash leaves
    /// the old list or the new one, never a torn one.
    pub fn save(&self, processes: &[Persisted]) -> Result<(), StateError> {
        let path = &self.0;
        let err = |source| StateError::Write { path: path.clone(), source };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(&StateFile { processes: processes.to_vec() })
            .map_err(|e| err(io::Error::other(e)))?;
        let mut f = create_private(&tmp).map_err(err)?;
        f.write_all(&body).and_then(|()| f.sync_all()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)
    }
}

enum Unreadable {
    Io(io::Error),
    Kind(String),
}

/// The file's bytes, if it is a regular file of at most MAX_BYTES. Opened
/// without following a symlink and without blocking (a FIFO put in its
/// place would otherwise hang the tracker thread until a writer came).
fn read_bounded(path: &Path) -> Result<Vec<u8>, Unreadable> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Unreadable::Kind("a symbolic link, not a file".into()),
            _ => Unreadable::Io(e),
        })?;
    let meta = f.metadata().map_err(Unreadable::Io)?;
    if !meta.is_file() {
        return Err(Unreadable::Kind(format!("not a regular file ({:?})", meta.file_type())));
    }
    if meta.len() > MAX_BYTES {
        return Err(Unreadable::Kind(format!("{} bytes, more than {MAX_BYTES}", meta.len())));
    }
    let mut text = Vec::new();
    // The size can still grow after the check: take no more than the bound.
    f.take(MAX_BYTES + 1).read_to_end(&mut text).map_err(Unreadable::Io)?;
    if text.len() as u64 > MAX_BYTES {
        return Err(Unreadable::Kind(format!("more than {MAX_BYTES} bytes")));
    }
    Ok(text)
}

/// A new file at `path`, 0600, replacing whatever was there: a symlink
/// planted in its place is removed, never followed.
fn create_private(path: &Path) -> io::Result<File> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: u32) -> Persisted {
        Persisted { pid, start_time: 42, name: "nr-gnb".into() }
    }

    #[test]
    fn saved_list_loads_back_and_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFilePath::in_dir(&dir.path().join("new"));
        assert!(file.load().unwrap().is_empty());
        file.save(&[entry(1), entry(2)]).unwrap();
        assert_eq!(file.load().unwrap(), vec![entry(1), entry(2)]);
        file.save(&[entry(3)]).unwrap();
        assert_eq!(file.load().unwrap(), vec![entry(3)]);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("new"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![FILE_NAME], "no temporary left behind");
    }

    #[test]
    fn corrupt_and_unreadable_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFilePath::in_dir(dir.path());
        std::fs::write(file.path(), b"{\"processes\": [{\"pid\": \"x\"}").unwrap();
        let e = file.load().unwrap_err().to_string();
        assert!(e.contains("tracked.json") && e.contains("not a tracked-process list"), "{e}");
        std::fs::remove_file(file.path()).unwrap();
        std::fs::create_dir(file.path()).unwrap();
        let e = file.load().unwrap_err().to_string();
        assert!(e.starts_with("reading ") && e.contains("tracked.json"), "{e}");
    }

    #[test]
    fn a_symlink_planted_as_the_temporary_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFilePath::in_dir(dir.path());
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("tracked.json.tmp")).unwrap();
        file.save(&[entry(1)]).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(file.load().unwrap(), vec![entry(1)]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_fifo_a_symlink_or_a_huge_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFilePath::in_dir(dir.path());
        let c = std::ffi::CString::new(file.path().to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let f = file.clone();
        std::thread::spawn(move || tx.send(f.load().map_err(|e| e.to_string())));
        let e = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("load blocked on a FIFO");
        assert!(e.unwrap_err().contains("not a regular file"));

        std::fs::remove_file(file.path()).unwrap();
        let other = dir.path().join("other.json");
        std::fs::write(&other, b"{\"processes\": []}").unwrap();
        std::os::unix::fs::symlink(&other, file.path()).unwrap();
        assert!(file.load().unwrap_err().to_string().contains("symbolic link"));

        std::fs::remove_file(file.path()).unwrap();
        // Sparse: a terabyte that would take the daemon's memory if read.
        File::create(file.path()).unwrap().set_len(1 << 40).unwrap();
        let e = file.load().unwrap_err().to_string();
        assert!(e.contains("more than") && e.contains("tracked.json"), "{e}");
    }
}
