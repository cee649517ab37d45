//! systemd `Type=notify`: the daemon's lifecycle told to systemd, and the
//! watchdog fed from the runtime (so a wedged runtime gets restarted).
//! Outside systemd (no NOTIFY_SOCKET) every call does nothing.

use crate::daemon::{Lifecycle, Readiness};
use std::time::Duration;

/// READY/RELOADING/STOPPING, and WATCHDOG=1 every half watchdog period.
#[derive(Default)]
pub struct Systemd {
    watchdog: Option<tokio::task::JoinHandle<()>>,
}

impl Systemd {
    fn notify(state: &[sd_notify::NotifyState]) {
        if let Err(e) = sd_notify::notify(false, state) {
            tracing::debug!(error = %e, "sd_notify failed");
        }
    }
}

impl Lifecycle for Systemd {
    fn ready(&mut self, _: &Readiness) {
        Self::notify(&[sd_notify::NotifyState::Ready]);
        let mut usec = 0u64;
        if self.watchdog.is_none() && sd_notify::watchdog_enabled(false, &mut usec) {
            let every = Duration::from_micros(usec / 2);
            self.watchdog = Some(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    Systemd::notify(&[sd_notify::NotifyState::Watchdog]);
                }
            }));
        }
    }

    fn reloading(&mut self) {
        Self::notify(&[sd_notify::NotifyState::Reloading]);
    }

    fn stopping(&mut self) {
        Self::notify(&[sd_notify::NotifyState::Stopping]);
        if let Some(w) = self.watchdog.take() {
            w.abort();
        }
    }
}
