//! Who holds a trace_pipe open: since Linux 6.5 a second reader of a
//! trace_pipe gets EBUSY, and the operator's log should name the first.
//!
//! Found through /proc/PID/fd: each fd followed to its file, compared by
//! device and inode, so a holder in another mount namespace (a container
//! with tracefs bound elsewhere) counts too. Following another process's fd
//! passes the ptrace access check, which a daemon without capabilities
//! fails for a root process with a full capability set (a `sudo cat`):
//! those are only listed as likely holders when their command line names a
//! trace pipe.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub comm: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holders {
    pub path: PathBuf,
    /// Processes with an fd on the file.
    pub found: Vec<Holder>,
    /// Processes whose fds this process may not follow, and whose command
    /// line mentions a trace pipe (`cat .../trace_pipe`, `bpftool prog
    /// tracelog`).
    pub likely: Vec<Holder>,
    /// How many processes' fds could not be followed.
    pub hidden: usize,
}

impl Holders {
    /// Scans /proc for processes holding `path` open (not this one).
    pub fn find(path: &Path) -> Holders {
        let mut holders = Holders { path: path.to_path_buf(), ..Holders::default() };
        let Ok(target) = std::fs::metadata(path) else { return holders };
        let me = std::process::id();
        let pids = std::fs::read_dir("/proc").into_iter().flatten().flatten();
        for pid in pids.filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()) {
            if pid == me {
                continue;
            }
            match holds(pid, (target.dev(), target.ino())) {
                Some(true) => holders.found.push(holder(pid)),
                Some(false) => {}
                None => {
                    holders.hidden += 1;
                    if names_a_trace_pipe(pid) {
                        holders.likely.push(holder(pid));
                    }
                }
            }
        }
        holders
    }
}

/// Whether `pid` has an fd on the file; None when its fds cannot be
/// followed (ptrace access denied), Some(false) when it is gone.
fn holds(pid: u32, file: (u64, u64)) -> Option<bool> {
    let fd_dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let fds = match std::fs::read_dir(&fd_dir) {
        Ok(fds) => fds,
        // Another user's process: its fd directory is theirs alone.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return None,
        Err(_) => return Some(false),
    };
    let mut denied = false;
    for fd in fds.flatten() {
        match std::fs::metadata(fd.path()) {
            Ok(m) if (m.dev(), m.ino()) == file => return Some(true),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => denied = true,
            Err(_) => {}
        }
    }
    (!denied).then_some(false)
}

fn holder(pid: u32) -> Holder {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    Holder { pid, comm: comm.trim_end().to_string() }
}

fn names_a_trace_pipe(pid: u32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let text = String::from_utf8_lossy(&cmdline);
    text.contains("trace_pipe") || text.contains("tracelog")
}

fn list(f: &mut fmt::Formatter<'_>, holders: &[Holder]) -> fmt::Result {
    for (i, h) in holders.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        write!(f, "{sep}pid {} ({})", h.pid, h.comm)?;
    }
    Ok(())
}

impl fmt::Display for Holders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.found.is_empty() {
            f.write_str("held by ")?;
            list(f, &self.found)?;
        } else if !self.likely.is_empty() {
            write!(
                f,
                "held by a process this one may not inspect (without CAP_SYS_PTRACE), likely "
            )?;
            list(f, &self.likely)?;
        } else if self.hidden > 0 {
            write!(f, "held by one of {} processes this one may not inspect", self.hidden)?;
        } else {
            f.write_str("held by a process not visible here (another pid namespace?)")?;
        }
        write!(f, "; `fuser -v {}` as root names every holder", self.path.display())
    }
}

/// Rescanning /proc costs a stat per fd on the host: while the same path
/// stays busy, its holders are looked up again at most this often.
const RESCAN: Duration = Duration::from_secs(30);

/// The last scan, for the reader's retries.
#[derive(Debug, Default)]
pub struct Cache(Option<(Instant, Holders)>);

impl Cache {
    pub fn of(&mut self, path: &Path) -> Holders {
        match &self.0 {
            Some((at, h)) if h.path == path && at.elapsed() < RESCAN => h.clone(),
            _ => {
                let h = Holders::find(path);
                self.0 = Some((Instant::now(), h.clone()));
                h
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn a_child_holding_a_file_is_named_with_its_comm() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::from(std::fs::File::open(f.path()).unwrap()))
            .spawn()
            .unwrap();
        let mut found = Holders::find(f.path());
        let _ = child.kill();
        let _ = child.wait();
        found.found.retain(|h| h.pid == child.id());
        assert_eq!(found.found, vec![Holder { pid: child.id(), comm: "sleep".into() }]);
        let text = found.to_string();
        assert!(text.starts_with(&format!("held by pid {} (sleep)", child.id())), "{text}");
        assert!(text.contains("fuser -v"), "{text}");
    }

    #[test]
    fn an_unopened_file_has_no_holder() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(Holders::find(f.path()).found.is_empty());
    }

    #[test]
    fn likely_holders_are_labelled_as_such() {
        let h = Holders {
            path: "/t/trace_pipe".into(),
            found: vec![],
            likely: vec![Holder { pid: 7, comm: "cat".into() }],
            hidden: 3,
        };
        let text = h.to_string();
        assert!(text.contains("may not inspect") && text.contains("likely pid 7 (cat)"), "{text}");
    }
}
