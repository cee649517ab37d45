//! Unix signals as control messages: SIGINT/SIGTERM stop, SIGHUP reloads.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Shutdown,
    Reload,
}

/// Resolves once `stop` turns true (or its sender is gone): how the
/// daemon's tasks learn of shutdown.
pub async fn stop_requested(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard wait_for returns is not Send: drop it before going on.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// Starts a thread that turns signals into `Control` messages.
pub fn listen() -> std::io::Result<mpsc::UnboundedReceiver<Control>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for sig in signals.forever() {
            let msg = if sig == SIGHUP { Control::Reload } else { Control::Shutdown };
            if tx.send(msg).is_err() {
                break;
            }
        }
    })?;
    Ok(rx)
}
