//! What the tracker asks of /proc, behind a trait so that a replay (whose
//! processes are not this machine's) can answer "unknown" for everything.

use super::Comm;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// One thread as /proc sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskInfo {
    pub tgid: u32,
    pub comm: Comm,
    /// `PF_KTHREAD`: never a process to schedule.
    pub kernel_thread: bool,
}

/// A thread group's leader: its name and start time, which together tell a
/// reused pid from the process that held it before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessInfo {
    pub comm: Comm,
    pub start_time: u64,
}

/// Who a task is, for `targets.exe_paths` and `targets.uids`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `/proc/PID/exe`, without the ` (deleted)` of a replaced binary.
    pub exe: PathBuf,
    pub real_uid: u32,
    pub effective_uid: u32,
}

pub trait ProcView: Send {
    /// Whether answers describe the processes the trace is about.
    fn is_live(&self) -> bool;
    fn task(&self, tid: u32) -> Option<TaskInfo>;
    fn process(&self, tgid: u32) -> Option<ProcessInfo>;
    /// Live thread ids of a process with the name of each.
    fn threads(&self, tgid: u32) -> Vec<(u32, Comm)>;
    /// None for a task without an executable (ended, or a kernel thread).
    fn identity(&self, tid: u32) -> Option<Identity>;
}

/// For replay: knows nothing, so only what the trace says counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProc;

impl ProcView for NoProc {
    fn is_live(&self) -> bool {
        false
    }
    fn task(&self, _: u32) -> Option<TaskInfo> {
        None
    }
    fn process(&self, _: u32) -> Option<ProcessInfo> {
        None
    }
    fn threads(&self, _: u32) -> Vec<(u32, Comm)> {
        Vec::new()
    }
    fn identity(&self, _: u32) -> Option<Identity> {
        None
    }
}

/// The machine's /proc (or another procfs mount, for tests).
#[derive(Debug, Clone)]
pub struct LiveProc {
    root: PathBuf,
}

impl Default for LiveProc {
    fn default() -> Self {
        LiveProc { root: PathBuf::from("/proc") }
    }
}

const PF_KTHREAD: u64 = 0x0020_0000;

impl LiveProc {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LiveProc { root: root.into() }
    }

    fn stat(&self, pid: u32) -> Option<Stat> {
        let text = std::fs::read(self.root.join(pid.to_string()).join("stat")).ok()?;
        Stat::parse(&text)
    }
}

impl ProcView for LiveProc {
    fn is_live(&self) -> bool {
        true
    }

    fn task(&self, tid: u32) -> Option<TaskInfo> {
        if tid == 0 {
            return None;
        }
        let stat = self.stat(tid)?;
        let status = std::fs::read(self.root.join(tid.to_string()).join("status")).ok()?;
        let tgid = status_field(&status, b"Tgid:")?;
        Some(TaskInfo { tgid, comm: stat.comm, kernel_thread: stat.flags & PF_KTHREAD != 0 })
    }

    fn process(&self, tgid: u32) -> Option<ProcessInfo> {
        let stat = self.stat(tgid)?;
        // A zombie has exited and only its parent has yet to reap it, unless
        // it is a leader that ended alone (`pthread_exit`): its other
        // threads still count in its thread total and still run.
        if stat.state == b'X' || (stat.state == b'Z' && stat.num_threads <= 1) {
            return None;
        }
        Some(ProcessInfo { comm: stat.comm, start_time: stat.start_time })
    }

    fn threads(&self, tgid: u32) -> Vec<(u32, Comm)> {
        let dir = self.root.join(tgid.to_string()).join("task");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out: Vec<(u32, Comm)> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter_map(|tid: u32| {
                let comm = std::fs::read(dir.join(tid.to_string()).join("comm")).ok()?;
                Some((tid, Comm::new(comm.strip_suffix(b"\n").unwrap_or(&comm))))
            })
            .collect();
        out.sort_unstable_by_key(|(tid, _)| *tid);
        out
    }

    fn identity(&self, tid: u32) -> Option<Identity> {
        let dir = self.root.join(tid.to_string());
        let link = std::fs::read_link(dir.join("exe")).ok()?;
        let bytes = link.as_os_str().as_bytes();
        let exe = bytes
            .strip_suffix(b" (deleted)")
            .map_or(link.clone(), |b| PathBuf::from(OsStr::from_bytes(b)));
        let status = std::fs::read(dir.join("status")).ok()?;
        let mut uids = status_line(&status, b"Uid:")?.split(u8::is_ascii_whitespace);
        let real_uid = number(uids.next()?)?;
        let effective_uid = number(uids.next()?)?;
        Some(Identity { exe, real_uid, effective_uid })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    comm: Comm,
    state: u8,
    flags: u64,
    num_threads: u64,
    start_time: u64,
}

impl Stat {
    /// `pid (comm) state ppid ...`: the comm may hold spaces and ')', so the
    /// fields start after the LAST ')'.
    fn parse(text: &[u8]) -> Option<Stat> {
        let open = memchr::memchr(b'(', text)?;
        let close = memchr::memrchr(b')', text)?;
        let comm = Comm::new(text.get(open + 1..close)?);
        let fields: Vec<&[u8]> = text.get(close + 2..)?.split(|&b| b == b' ').collect();
        // After the comm: state(3) ... flags(9) ... num_threads(20)
        // starttime(22), 1-based in proc(5).
        let state = *fields.first()?.first()?;
        let flags = number(fields.get(9 - 3)?)?;
        let num_threads = number(fields.get(20 - 3)?)?;
        let start_time = number(fields.get(22 - 3)?)?;
        Some(Stat { comm, state, flags, num_threads, start_time })
    }
}

fn status_field(status: &[u8], key: &[u8]) -> Option<u32> {
    number::<u32>(status_line(status, key)?)
}

/// The value of the `key` line of /proc/PID/status, trimmed.
fn status_line<'a>(status: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let line = status.split(|&b| b == b'\n').find(|l| l.starts_with(key))?;
    Some(line[key.len()..].trim_ascii())
}

fn number<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let s = Stat::parse(
            b"42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10\n",
        )
        .unwrap();
        assert_eq!(s.comm, Comm::new(b"a) b (c)"));
        assert_eq!(s.state, b'S');
        assert_eq!(s.flags, 4194560);
        assert_eq!(s.start_time, 98765);
    }

    #[test]
    fn this_process_as_seen_in_proc() {
        let me = std::process::id();
        let proc = LiveProc::default();
        let task = proc.task(me).expect("own task");
        assert_eq!(task.tgid, me);
        assert!(!task.kernel_thread);
        let info = proc.process(me).expect("own process");
        assert_eq!(proc.process(me).unwrap().start_time, info.start_time);
        assert!(proc.threads(me).iter().any(|(tid, _)| *tid == me));
        assert!(proc.task(0).is_none());
    }

    #[test]
    fn kernel_threads_are_flagged() {
        // kthreadd is pid 2 on Linux, when the pid namespace shows it.
        match LiveProc::default().task(2) {
            Some(t) if t.comm == Comm::new(b"kthreadd") => assert!(t.kernel_thread),
            _ => eprintln!("skipped: no kthreadd at pid 2 in this pid namespace"),
        }
    }
}
