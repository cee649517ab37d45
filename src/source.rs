//! Source stage: finds and tails trace_pipe (or any file or FIFO) on a
//! dedicated thread. The thread blocks in poll(2) on the data and on a wake
//! pipe, so it never busy-waits and still stops at once on shutdown.
//!
//! By default the trace_pipe read is that of a tracing instance of the
//! operator's own ([`instance`]), so that other readers of the global one
//! and the operator never lock each other out; when a trace_pipe is busy,
//! [`holders`] names who holds it.

pub mod holders;
pub mod instance;

use crate::backoff::Backoff;
use crate::wake::{self, WakeFd, Waker};
use holders::Holders;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where tracefs lives, newest first.
pub const TRACEFS_DIRS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// trace_pipe hands out at most a page per read; a larger buffer serves
/// files and FIFOs.
const READ_BUF: usize = 64 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

fn backoff() -> Backoff {
    Backoff::new(BACKOFF_MIN, BACKOFF_MAX)
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("tracefs is not mounted: none of {} has trace_pipe (mount it with `mount -t tracefs nodev /sys/kernel/tracing`, or set trace.mount_tracefs = true)", TRACEFS_DIRS.join(", "))]
    NotMounted,
    #[error("mounting tracefs on {path}: {source}")]
    Mount { path: String, source: io::Error },
    #[error("opening {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("opening {}: busy, as a trace_pipe has one reader at a time: {holders}{}", path.display(), busy_advice(path))]
    Busy { path: PathBuf, holders: Holders },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

fn busy_advice(path: &Path) -> &'static str {
    let in_instance = path.parent().and_then(Path::parent).and_then(Path::file_name)
        == Some("instances".as_ref());
    if in_instance {
        "; stop that reader (another gtp5g-operator?)"
    } else {
        "; stop that reader to free it, or leave it the global trace_pipe and have the operator \
         read a tracing instance of its own (trace.instance with trace.pipe unset; made by \
         `gtp5g-operator trace-instance create` as root)"
    }
}

/// The global trace_pipe to read: the configured one, else the first
/// tracefs that has it, mounting tracefs first when allowed.
pub fn locate(configured: Option<&Path>, mount: bool) -> Result<PathBuf, SourceError> {
    match configured {
        Some(p) => Ok(p.to_path_buf()),
        None => Ok(tracefs_dir(mount)?.join("trace_pipe")),
    }
}

/// The first tracefs mounted, mounting it first when allowed.
pub fn tracefs_dir(mount: bool) -> Result<PathBuf, SourceError> {
    if let Some(d) = mounted_tracefs() {
        return Ok(d);
    }
    if mount {
        mount_tracefs(TRACEFS_DIRS[0])?;
        if let Some(d) = mounted_tracefs() {
            return Ok(d);
        }
    }
    Err(SourceError::NotMounted)
}

fn mounted_tracefs() -> Option<PathBuf> {
    TRACEFS_DIRS.iter().map(PathBuf::from).find(|d| d.join("trace_pipe").exists())
}

/// What the daemon reads, decided again at every (re)open: `trace.pipe` if
/// set; else the tracing instance `trace.instance` (made here when missing
/// and allowed); else, or when the instance cannot be used, the global
/// trace_pipe. A fallback is logged once per reason.
pub struct Choice {
    pipe: Option<PathBuf>,
    /// "" for the global trace_pipe.
    instance: String,
    buffer_kb: u64,
    mount: bool,
    fallback: Option<String>,
}

impl Choice {
    pub fn new(pipe: Option<PathBuf>, instance: String, buffer_kb: u64, mount: bool) -> Choice {
        Choice { pipe, instance, buffer_kb, mount, fallback: None }
    }

    pub fn path(&mut self) -> Result<PathBuf, SourceError> {
        if let Some(p) = &self.pipe {
            return Ok(p.clone());
        }
        let tracefs = tracefs_dir(self.mount)?;
        if self.instance.is_empty() {
            return Ok(tracefs.join("trace_pipe"));
        }
        match instance::prepare(&tracefs, &self.instance, self.buffer_kb) {
            Ok(prepared) => {
                if self.fallback.take().is_some() {
                    tracing::info!(dir = %prepared.dir.display(), "tracing instance usable again");
                }
                Ok(prepared.trace_pipe())
            }
            Err(e) => {
                let reason = e.to_string();
                if self.fallback.as_ref() != Some(&reason) {
                    tracing::warn!(reason = %reason, instance = %self.instance, "reading the global trace_pipe, shared with any other reader, instead of the operator's tracing instance");
                    self.fallback = Some(reason);
                }
                Ok(tracefs.join("trace_pipe"))
            }
        }
    }
}

fn mount_tracefs(dir: &str) -> Result<(), SourceError> {
    let err = |source| SourceError::Mount { path: dir.to_string(), source };
    let target = std::ffi::CString::new(dir)
        .map_err(|e| err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    // SAFETY: all pointers are valid NUL-terminated strings or null data.
    let rc = unsafe {
        libc::mount(c"nodev".as_ptr(), target.as_ptr(), c"tracefs".as_ptr(), 0, std::ptr::null())
    };
    if rc != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    tracing::info!(path = dir, "mounted tracefs");
    Ok(())
}

/// The reader's wake pipe: a byte in it means stop.
struct Wake(WakeFd);

impl Wake {
    fn stopped(&self) -> bool {
        self.0.take_one()
    }

    /// Blocks until `fd` is readable (true) or stop was asked or the
    /// timeout passed (false).
    fn wait(&self, fd: Option<RawFd>, timeout: Option<Duration>) -> bool {
        let mut fds = [wake::pollin(self.0.fd()), wake::pollin(fd.unwrap_or(-1))];
        wake::poll(&mut fds, timeout);
        fds[0].revents == 0 && fds[1].revents != 0
    }
}

/// What the reader does at end of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtEnd {
    /// Replay: the input is complete.
    Finish,
    /// Daemon: trace_pipe or a FIFO ended (tracing off, writer gone): reopen
    /// with backoff; a regular file is followed like `tail -f`.
    Follow,
}

/// Something the reader reports besides data.
#[derive(Debug)]
pub enum Event<'a> {
    Data(&'a [u8]),
    Opened(&'a Path),
    /// The source failed or ended; the reader retries after `retry_in`.
    Down {
        error: SourceError,
        retry_in: Duration,
    },
    /// Replay reached the end.
    End,
}

pub struct Reader {
    stopper: Waker,
    thread: std::thread::JoinHandle<()>,
}

impl Reader {
    /// Starts the reader thread; `on_event` runs on it.
    pub fn spawn(
        mut path: impl FnMut() -> Result<PathBuf, SourceError> + Send + 'static,
        at_end: AtEnd,
        mut on_event: impl FnMut(Event<'_>) + Send + 'static,
    ) -> io::Result<Reader> {
        let (wake, stopper) = wake::pipe()?;
        let thread = std::thread::Builder::new()
            .name("trace-reader".into())
            .spawn(move || read_loop(&Wake(wake), &mut path, at_end, &mut on_event))?;
        Ok(Reader { stopper, thread })
    }

    pub fn stop_and_join(self) {
        self.stopper.wake();
        let _ = self.thread.join();
    }

    pub fn join(self) {
        let _ = self.thread.join();
    }

    /// True once the thread has ended (for the daemon's liveness).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

fn read_loop(
    wake: &Wake,
    path: &mut dyn FnMut() -> Result<PathBuf, SourceError>,
    at_end: AtEnd,
    on_event: &mut dyn FnMut(Event<'_>),
) {
    let mut buf = vec![0u8; READ_BUF];
    let mut reopen = backoff();
    let mut holders = holders::Cache::default();
    while !wake.stopped() {
        let outcome = path().and_then(|p| {
            let file = open(&p, &mut holders)?;
            on_event(Event::Opened(&p));
            drain(wake, &file, &p, &mut buf, at_end, &mut reopen, on_event)
        });
        match outcome {
            Ok(Drained::Stopped) => return,
            Ok(Drained::End) => {
                on_event(Event::End);
                return;
            }
            Err(error) => {
                if at_end == AtEnd::Finish {
                    on_event(Event::Down { error, retry_in: Duration::ZERO });
                    on_event(Event::End);
                    return;
                }
                let retry_in = reopen.wait();
                on_event(Event::Down { error, retry_in });
                if !wake.wait(None, Some(retry_in)) && wake.stopped() {
                    return;
                }
            }
        }
    }
}

fn open(path: &Path, holders: &mut holders::Cache) -> Result<File, SourceError> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::EBUSY) => {
                SourceError::Busy { path: path.to_path_buf(), holders: holders.of(path) }
            }
            _ => SourceError::Open { path: path.to_path_buf(), source },
        })
}

enum Drained {
    Stopped,
    End,
}

fn drain(
    wake: &Wake,
    mut file: &File,
    path: &Path,
    buf: &mut [u8],
    at_end: AtEnd,
    reopen: &mut Backoff,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<Drained, SourceError> {
    let regular = file.metadata().map(|m| m.file_type().is_file()).unwrap_or(false);
    let is_fifo = file.metadata().map(|m| m.file_type().is_fifo()).unwrap_or(false);
    let mut tail = backoff();
    loop {
        match file.read(buf) {
            Ok(0) if at_end == AtEnd::Finish => return Ok(Drained::End),
            Ok(0) if regular => {
                // Following a file: wait for it to grow, without spinning.
                if !wake.wait(None, Some(tail.wait())) && wake.stopped() {
                    return Ok(Drained::Stopped);
                }
            }
            Ok(0) => {
                let what = if is_fifo {
                    "writer closed the FIFO"
                } else {
                    "end of file (tracing switched off?)"
                };
                return Err(SourceError::Read {
                    path: path.to_path_buf(),
                    source: io::Error::new(io::ErrorKind::UnexpectedEof, what),
                });
            }
            Ok(n) => {
                reopen.reset();
                tail.reset();
                let filled = n + top_up(file, &mut buf[n..]);
                on_event(Event::Data(&buf[..filled]));
                // A source that never runs dry never blocks in poll either:
                // look for a stop after every chunk.
                if wake.stopped() {
                    return Ok(Drained::Stopped);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wake.wait(Some(file.as_raw_fd()), None) && wake.stopped() {
                    return Ok(Drained::Stopped);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(SourceError::Read { path: path.to_path_buf(), source }),
        }
    }
}

/// Reads more of what is ready now, while a page still fits: trace_pipe
/// hands out one page per read, and parsing many pages at a time keeps the
/// kernel's formatting path and the parser each warm in cache. EOF and
/// errors are left for the caller's next read to find.
fn top_up(mut file: &File, buf: &mut [u8]) -> usize {
    const PAGE: usize = 4096;
    let mut filled = 0;
    while buf.len() - filled >= PAGE {
        match file.read(&mut buf[filled..]) {
            Ok(n) if n > 0 => filled += n,
            _ => break,
        }
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::mpsc;

    fn collect(reader_path: PathBuf, at_end: AtEnd) -> (Reader, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel();
        let reader = Reader::spawn(
            move || Ok(reader_path.clone()),
            at_end,
            move |ev| {
                let msg = match ev {
                    Event::Data(d) => format!("data:{}", String::from_utf8_lossy(d)),
                    Event::Opened(_) => "opened".into(),
                    Event::Down { error, .. } => format!("down:{error}"),
                    Event::End => "end".into(),
                };
                let _ = tx.send(msg);
            },
        )
        .unwrap();
        (reader, rx)
    }

    #[test]
    fn replay_reads_a_file_to_the_end() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"a\nb\n").unwrap();
        let (reader, rx) = collect(f.path().to_path_buf(), AtEnd::Finish);
        reader.join();
        let got: Vec<String> = rx.iter().collect();
        assert_eq!(got, vec!["opened", "data:a\nb\n", "end"]);
    }

    #[test]
    fn missing_file_in_replay_is_reported() {
        let (reader, rx) = collect(PathBuf::from("/nonexistent/trace"), AtEnd::Finish);
        reader.join();
        let got: Vec<String> = rx.iter().collect();
        assert!(got[0].starts_with("down:opening /nonexistent/trace"), "{got:?}");
    }

    #[test]
    fn fifo_is_reopened_after_writer_leaves_and_stop_is_prompt() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (reader, rx) = collect(fifo.clone(), AtEnd::Follow);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "opened");
        for round in 0..2 {
            // Opened read-write, the writer neither blocks for a reader nor
            // lets the pipe (and its data) go while the reader is between
            // reopens; it leaves only once its line was read.
            let mut w = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
            writeln!(w, "line{round}").unwrap();
            let want = format!("data:line{round}\n");
            let saw_data = rx.iter().take(50).any(|m| m == want);
            assert!(saw_data, "round {round}");
            // Without a writer the FIFO reads as ended: the reader reopens it
            // with backoff until the next writer comes.
            drop(w);
            assert!(
                rx.iter().take(50).any(|m| m.starts_with("down:")),
                "no end of file after round {round}"
            );
        }
        // Blocked in poll with no writer: stop must still return promptly.
        let started = std::time::Instant::now();
        reader.stop_and_join();
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn regular_file_is_followed_like_tail() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"first\n").unwrap();
        let (reader, rx) = collect(f.path().to_path_buf(), AtEnd::Follow);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "opened");
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "data:first\n");
        f.write_all(b"second\n").unwrap();
        f.flush().unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "data:second\n");
        reader.stop_and_join();
    }

    #[test]
    fn configured_path_wins() {
        assert_eq!(locate(Some(Path::new("/x/y")), false).unwrap(), PathBuf::from("/x/y"));
    }
}
