//! A tracing instance of the operator's own (`instances/NAME` in tracefs).
//!
//! Since Linux 5.9 every `bpf_printk` line is a `bpf_trace/bpf_trace_printk`
//! trace event, and an instance with that event enabled gets its own copy of
//! each line in its own ring buffer, with its own `trace_pipe`. Reading it
//! leaves the global trace_pipe, which admits one reader at a time, to
//! everyone else (a person's `cat`, `bpftool prog tracelog`).
//!
//! Making and configuring the instance needs uid 0 and a writable tracefs;
//! the daemon runs with neither write access nor capabilities, so a
//! privileged step does it first (`gtp5g-operator trace-instance create`):
//! [`prepare`] then finds everything as it should be and writes nothing.

use super::holders::Holders;
use std::io;
use std::path::{Path, PathBuf};

/// The one event the instance records.
const EVENT: &str = "bpf_trace:bpf_trace_printk";
const EVENT_DIR: &str = "events/bpf_trace/bpf_trace_printk";

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("the kernel has no bpf_trace/bpf_trace_printk event (Linux before 5.9), so bpf_printk lines reach only the global trace_pipe")]
    NoEvent,
    #[error("{} does not exist and cannot be created here ({source}); run `gtp5g-operator trace-instance create` as root with tracefs writable (the systemd unit's ExecStartPre and the pod's init container do)", dir.display())]
    Create { dir: PathBuf, source: io::Error },
    #[error("{}: {what}, and this process cannot change it ({source}); run `gtp5g-operator trace-instance create` as root with tracefs writable", dir.display())]
    Configure { dir: PathBuf, what: &'static str, source: io::Error },
    #[error("{} is in use ({holders}); stop gtp5g-operator first", dir.display())]
    Busy { dir: PathBuf, holders: Holders },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// An instance ready to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub dir: PathBuf,
    /// False when an instance of that name was there already (a previous
    /// run's, the privileged step's): it is reused, never duplicated.
    pub created: bool,
}

impl Prepared {
    pub fn trace_pipe(&self) -> PathBuf {
        self.dir.join("trace_pipe")
    }
}

/// Makes `instances/NAME` unless it exists, and has it record
/// bpf_trace_printk and nothing else, with tracing on. Only what differs is
/// written, so an instance set up beforehand is read through a read-only
/// tracefs. The buffer size is set only on an instance made here: resizing
/// someone's instance is for [`create`].
pub fn prepare(tracefs: &Path, name: &str, buffer_kb: u64) -> Result<Prepared, InstanceError> {
    if !tracefs.join(EVENT_DIR).is_dir() {
        return Err(InstanceError::NoEvent);
    }
    let dir = tracefs.join("instances").join(name);
    let created = match std::fs::create_dir(&dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(source) => return Err(InstanceError::Create { dir, source }),
    };
    if created {
        set(&dir, "buffer_size_kb", &buffer_kb.to_string(), "its buffer size is not set")?;
        tracing::info!(dir = %dir.display(), buffer_kb, "created a tracing instance");
    }
    configure(&dir)?;
    Ok(Prepared { dir, created })
}

/// [`prepare`], and the buffer size set on a reused instance too: the
/// privileged step, run before every start of the daemon.
pub fn create(tracefs: &Path, name: &str, buffer_kb: u64) -> Result<Prepared, InstanceError> {
    let prepared = prepare(tracefs, name, buffer_kb)?;
    if !prepared.created {
        set(&prepared.dir, "buffer_size_kb", &buffer_kb.to_string(), "its buffer size differs")?;
    }
    Ok(prepared)
}

/// Removes `instances/NAME`; false if there was none. The kernel refuses
/// while anyone has a file of it open: the error names who.
pub fn remove(tracefs: &Path, name: &str) -> Result<bool, InstanceError> {
    let dir = tracefs.join("instances").join(name);
    match std::fs::remove_dir(&dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            let holders = Holders::find(&dir.join("trace_pipe"));
            Err(InstanceError::Busy { dir, holders })
        }
        Err(source) => Err(InstanceError::Io { path: dir, source }),
    }
}

fn configure(dir: &Path) -> Result<(), InstanceError> {
    if read(dir, "set_event")?.trim() != EVENT {
        set(dir, "events/enable", "0", "other events are enabled in it")?;
        set(dir, &format!("{EVENT_DIR}/enable"), "1", "bpf_trace_printk is not enabled in it")?;
    }
    // Another tracer would fill the buffer with its own lines.
    if read(dir, "current_tracer")?.trim() != "nop" {
        set(dir, "current_tracer", "nop", "a tracer is set in it")?;
    }
    if read(dir, "tracing_on")?.trim() != "1" {
        set(dir, "tracing_on", "1", "tracing is off in it")?;
    }
    Ok(())
}

fn read(dir: &Path, file: &str) -> Result<String, InstanceError> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|source| InstanceError::Io { path, source })
}

fn set(dir: &Path, file: &str, value: &str, what: &'static str) -> Result<(), InstanceError> {
    std::fs::write(dir.join(file), value).map_err(|source| InstanceError::Configure {
        dir: dir.to_path_buf(),
        what,
        source,
    })
}

/// Whether `name` can be an instance's directory name: tracefs takes any
/// name, the config allows a portable subset.
pub fn name_error(name: &str) -> Option<String> {
    let portable = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.len() > 64 || name.starts_with('.') || !name.chars().all(portable) {
        return Some(format!(
            "{name:?}: an instance name is 1 to 64 of A-Z a-z 0-9 - _ . not starting with a dot \
             (or \"\" for the global trace_pipe)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory laid out like tracefs, for the logic that needs no
    /// kernel: the live tests in tests/instance.rs use the real one.
    fn fake_tracefs(with_event: bool) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("instances")).unwrap();
        if with_event {
            std::fs::create_dir_all(t.path().join(EVENT_DIR)).unwrap();
        }
        t
    }

    #[test]
    fn without_the_event_there_is_no_instance() {
        let t = fake_tracefs(false);
        let err = prepare(t.path(), "op", 1024).unwrap_err();
        assert!(matches!(err, InstanceError::NoEvent), "{err}");
        assert!(err.to_string().contains("5.9"), "{err}");
        assert!(!t.path().join("instances/op").exists());
    }

    #[test]
    fn an_instance_set_up_beforehand_is_read_without_a_write() {
        let t = fake_tracefs(true);
        let dir = t.path().join("instances/op");
        std::fs::create_dir(&dir).unwrap();
        for (file, text) in [
            ("set_event", "bpf_trace:bpf_trace_printk\n"),
            ("current_tracer", "nop\n"),
            ("tracing_on", "1\n"),
        ] {
            std::fs::write(dir.join(file), text).unwrap();
        }
        // No events/ under the instance: any write would fail.
        let p = prepare(t.path(), "op", 1024).unwrap();
        assert_eq!(p, Prepared { dir: dir.clone(), created: false });
        assert_eq!(p.trace_pipe(), dir.join("trace_pipe"));
    }

    #[test]
    fn an_unfixable_instance_says_what_is_wrong() {
        let t = fake_tracefs(true);
        let dir = t.path().join("instances/op");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("set_event"), "sched:sched_switch\n").unwrap();
        let err = prepare(t.path(), "op", 1024).unwrap_err().to_string();
        assert!(
            err.contains("other events are enabled") && err.contains("trace-instance create"),
            "{err}"
        );
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(name_error("gtp5g-operator"), None);
        for bad in ["a/b", "..", ".hidden", "white space", &"x".repeat(65)] {
            assert!(name_error(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn removing_what_is_not_there_is_not_an_error() {
        let t = fake_tracefs(true);
        assert!(!remove(t.path(), "op").unwrap());
    }
}
