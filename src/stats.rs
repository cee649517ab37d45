//! Counters shared between the reader thread, the publisher and whoever
//! reports them (periodic log line, /metrics).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Stats {
    pub bytes: AtomicU64,
    pub lines: AtomicU64,
    pub parsed: AtomicU64,
    pub events: AtomicU64,
    pub skipped: AtomicU64,
    pub malformed: AtomicU64,
    pub lost_events: AtomicU64,
    pub oversized: AtomicU64,
    pub gtpu_records: AtomicU64,
    pub rls_records: AtomicU64,
    pub source_reopens: AtomicU64,
    pub source_up: AtomicBool,
    /// When the source went down (0 while up): for /healthz.
    pub source_down_since_unix_ms: AtomicU64,
    pub last_line_unix_ms: AtomicU64,
    pub posts_ok: AtomicU64,
    pub posts_failed_http: AtomicU64,
    pub posts_failed_transport: AtomicU64,
    pub posts_failed_auth: AtomicU64,
    pub posts_failed_body: AtomicU64,
    pub token_refreshes: AtomicU64,
    pub last_post_ok_unix_ms: AtomicU64,
    pub first_failure_unix_ms: AtomicU64,
    pub tracked_processes: AtomicU64,
    pub tracked_threads: AtomicU64,
    pub tracker_dropped: AtomicU64,
    /// Why the API was last refused as an impostor (None once a list is
    /// delivered): /healthz says it at once, as no retry will fix it.
    pub untrusted_api: Note,
    /// When the daemon's runtime last checked its loops (/livez).
    pub loops_checked_unix_ms: AtomicU64,
    /// Which of the daemon's loops ended while it runs (/livez).
    pub loop_ended: Note,
}

/// A reason, set and read across threads.
#[derive(Debug, Default)]
pub struct Note(std::sync::Mutex<Option<String>>);

impl Note {
    pub fn set(&self, why: Option<String>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = why;
    }

    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Per-chunk counts kept in plain integers on the hot path and added to the
/// shared atomics once per chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub lines: u64,
    pub parsed: u64,
    pub events: u64,
    pub skipped: u64,
    pub malformed: u64,
    pub lost_events: u64,
    pub oversized: u64,
    pub gtpu_records: u64,
    pub rls_records: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.lines += other.lines;
        self.parsed += other.parsed;
        self.events += other.events;
        self.skipped += other.skipped;
        self.malformed += other.malformed;
        self.lost_events += other.lost_events;
        self.oversized += other.oversized;
        self.gtpu_records += other.gtpu_records;
        self.rls_records += other.rls_records;
    }
}

impl Stats {
    pub fn add_counts(&self, c: &Counts) {
        self.lines.fetch_add(c.lines, Relaxed);
        self.parsed.fetch_add(c.parsed, Relaxed);
        self.events.fetch_add(c.events, Relaxed);
        self.skipped.fetch_add(c.skipped, Relaxed);
        self.malformed.fetch_add(c.malformed, Relaxed);
        self.lost_events.fetch_add(c.lost_events, Relaxed);
        self.oversized.fetch_add(c.oversized, Relaxed);
        self.gtpu_records.fetch_add(c.gtpu_records, Relaxed);
        self.rls_records.fetch_add(c.rls_records, Relaxed);
        if c.lines > 0 {
            self.last_line_unix_ms.store(crate::clock::unix_ms(), Relaxed);
        }
    }

    pub fn counts(&self) -> Counts {
        Counts {
            lines: self.lines.load(Relaxed),
            parsed: self.parsed.load(Relaxed),
            events: self.events.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            lost_events: self.lost_events.load(Relaxed),
            oversized: self.oversized.load(Relaxed),
            gtpu_records: self.gtpu_records.load(Relaxed),
            rls_records: self.rls_records.load(Relaxed),
        }
    }
}
