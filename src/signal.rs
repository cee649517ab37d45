//! Unix signals, through signal-hook only: SIGINT/SIGTERM cancel the one
//! stop token every task watches, SIGHUP asks for a reload.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
use signal_hook::iterator::Signals;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How the daemon is told to stop or to reload.
#[derive(Debug, Clone, Default)]
pub struct Control {
    pub stop: CancellationToken,
    /// One stored permit: reloads asked while one runs coalesce.
    pub reload: Arc<Notify>,
    /// Test only: wedge the async runtime (see [`STALL_ENV`]).
    pub stall: Arc<Notify>,
}

/// With this set to 1, SIGUSR2 wedges the daemon's runtime so that the
/// systemd watchdog test (scripts/test-systemd-container.sh) can watch
/// systemd kill and restart it. Unset, SIGUSR2 keeps its default action.
pub const STALL_ENV: &str = "GTP5G_OPERATOR_TEST_STALL";

/// Starts a thread that turns signals into `Control` calls.
pub fn listen() -> std::io::Result<Control> {
    let control = Control::default();
    let mut wanted = vec![SIGINT, SIGTERM, SIGHUP];
    if std::env::var(STALL_ENV).is_ok_and(|v| v == "1") {
        wanted.push(SIGUSR2);
    }
    let mut signals = Signals::new(wanted)?;
    let c = control.clone();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for sig in signals.forever() {
            match sig {
                SIGHUP => c.reload.notify_one(),
                SIGUSR2 => c.stall.notify_one(),
                _ => c.stop.cancel(),
            }
        }
    })?;
    Ok(control)
}
