//! Unix signals, through signal-hook only: SIGINT/SIGTERM cancel the one
//! stop token every task watches, SIGHUP asks for a reload.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
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
}

/// Starts a thread that turns signals into `Control` calls.
pub fn listen() -> std::io::Result<Control> {
    let control = Control::default();
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let c = control.clone();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for sig in signals.forever() {
            if sig == SIGHUP {
                c.reload.notify_one();
            } else {
                c.stop.cancel();
            }
        }
    })?;
    Ok(control)
}
