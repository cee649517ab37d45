//! A self-pipe for the two threads that block in poll(2) (the trace reader
//! and the tracker): the async side cannot hand them a future, so it writes
//! a byte instead.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

/// The writing end; cloned freely. When every clone is gone the reading
/// end polls as hung up, which tells its thread that no one is left.
#[derive(Debug, Clone)]
pub struct Waker {
    write: Arc<OwnedFd>,
}

impl Waker {
    pub fn wake(&self) {
        let byte = 1u8;
        // SAFETY: writing one byte from a valid buffer to an fd we own. A
        // full pipe (EAGAIN) already holds a wake-up, so the result is moot.
        unsafe { libc::write(self.write.as_raw_fd(), (&byte as *const u8).cast(), 1) };
    }
}

/// The reading end, polled by one thread.
#[derive(Debug)]
pub struct WakeFd {
    read: OwnedFd,
}

pub fn pipe() -> io::Result<(WakeFd, Waker)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid 2-element array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and ours alone.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((WakeFd { read: r }, Waker { write: Arc::new(w) }))
}

impl WakeFd {
    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Consumes one pending wake-up; true if there was one.
    pub fn take_one(&self) -> bool {
        let mut b = 0u8;
        // SAFETY: reading one byte into a valid buffer from a non-blocking fd.
        unsafe { libc::read(self.read.as_raw_fd(), (&mut b as *mut u8).cast(), 1) == 1 }
    }

    /// Consumes every pending wake-up.
    pub fn take_all(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reading into a valid buffer from a non-blocking fd.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
        }
    }
}

/// poll(2) on `fds` for up to `timeout` (None: no limit), retried on EINTR.
pub fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) {
    // Rounded up: a timeout cut to 0 ms would spin until the deadline.
    let ms = timeout.map_or(-1, |t| t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32);
    loop {
        // SAFETY: fds is a valid array of pollfd of the given length; a
        // negative fd in it is ignored by the kernel.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

pub fn pollin(fd: RawFd) -> libc::pollfd {
    libc::pollfd { fd, events: libc::POLLIN, revents: 0 }
}
