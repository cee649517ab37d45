//! `tracked.json` in the state directory: the tracked processes, so that a
//! restarted daemon boosts running targets again before their next packet.
//! Losing it only costs that head start, so every failure here is logged
//! and the daemon goes on.

use super::Persisted;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "tracked.json";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StateFile {
    processes: Vec<Persisted>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
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
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StateError::Read { path: path.clone(), source }),
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
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&body).and_then(|()| f.sync_all()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)
    }
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
}
