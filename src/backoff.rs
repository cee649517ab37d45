//! The one retry delay of the daemon: doubling from a start to a cap, reset
//! by success. The publisher jitters its waits so that many operators do
//! not retry in step; the reader's waits (reopen, tail) need no jitter.
//!
//! Hand-written rather than `backon`: every user needs `reset` after a
//! success and a wait it can cut short (poll(2) on a wake pipe, or a
//! `select!`), which backon's retry drivers do not give; its builder would
//! only replace these few lines with a dependency.

use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    start: Duration,
    next: Duration,
    cap: Duration,
    jitter: bool,
}

impl Backoff {
    /// Exact waits: start, 2 x start, ... up to cap.
    pub fn new(start: Duration, cap: Duration) -> Self {
        Backoff { start, next: start, cap, jitter: false }
    }

    /// Each wait drawn from 50-100 % of the exact one.
    pub fn jittered(start: Duration, cap: Duration) -> Self {
        Backoff { jitter: true, ..Backoff::new(start, cap) }
    }

    pub fn reset(&mut self) {
        self.next = self.start;
    }

    /// The next wait; the one after it doubles, up to the cap.
    pub fn wait(&mut self) -> Duration {
        let base = self.next.min(self.cap);
        self.next = (self.next * 2).min(self.cap);
        if self.jitter {
            base.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
        } else {
            base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_millis(300));
        let waits: Vec<u128> = (0..5).map(|_| b.wait().as_millis()).collect();
        assert_eq!(waits, vec![50, 100, 200, 300, 300]);
        b.reset();
        assert_eq!(b.wait(), Duration::from_millis(50));
    }

    #[test]
    fn jitter_stays_within_half_to_whole() {
        let mut b = Backoff::jittered(Duration::from_millis(500), Duration::from_secs(4));
        let bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0];
        for base in bases {
            let s = b.wait().as_secs_f64();
            assert!(s >= base * 0.5 - 1e-9 && s <= base + 1e-9, "{s} for {base}");
        }
        b.reset();
        assert!(b.wait() <= Duration::from_millis(500));
    }
}
