//! Counters shared between the tracker thread, the reader, the publisher
//! and whoever reports them (the periodic log line, /metrics, the replay
//! report). Every counter is declared once, in the `stats!` table at the
//! end: its field, its metric name and help, and for a per-line count its
//! words in the replay report. A new counter is one line there.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// One counter as the reports show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// Name in /metrics (after the `gtp5g_operator_` prefix).
    pub metric: &'static str,
    pub help: &'static str,
    /// Words after the number in the replay report.
    pub label: &'static str,
    pub value: u64,
}

macro_rules! stats {
    (
        $(#[doc = $counts_doc:literal])*
        counts { $( $c:ident $c_metric:literal $c_help:literal $c_label:literal, )* }
        $(#[doc = $counters_doc:literal])*
        counters { $( $n:ident $n_metric:literal $n_help:literal, )* }
        $(#[doc = $state_doc:literal])*
        state { $( $(#[doc = $s_doc:literal])* $s:ident: $s_type:ty, )* }
        $(#[doc = $log_doc:literal])*
        log($ls:ident) { $( $l:ident = $l_value:expr, )* }
    ) => {
        #[derive(Debug, Default)]
        pub struct Stats {
            $(pub $c: AtomicU64,)*
            $(pub $n: AtomicU64,)*
            $($(#[doc = $s_doc])* pub $s: $s_type,)*
        }

        $(#[doc = $counts_doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
        pub struct Counts {
            $(pub $c: u64,)*
        }

        impl Counts {
            pub fn add(&mut self, other: &Counts) {
                $(self.$c += other.$c;)*
            }

            /// Each count, in the table's order.
            pub fn rows(&self) -> Vec<Row> {
                vec![$(Row { metric: $c_metric, help: $c_help, label: $c_label, value: self.$c },)*]
            }
        }

        impl Stats {
            fn add_to_totals(&self, c: &Counts) {
                $(self.$c.fetch_add(c.$c, Relaxed);)*
            }

            pub fn counts(&self) -> Counts {
                Counts { $($c: self.$c.load(Relaxed),)* }
            }

            $(#[doc = $counters_doc])*
            pub fn counters(&self) -> Vec<Row> {
                vec![$(Row {
                    metric: $n_metric,
                    help: $n_help,
                    label: stringify!($n),
                    value: self.$n.load(Relaxed),
                },)*]
            }

            $(#[doc = $log_doc])*
            pub fn log_counters(&self) {
                let c = self.counts();
                let $ls = self;
                // The daemon's line, under the daemon's target as ever.
                tracing::info!(
                    target: "gtp5g_operator::daemon",
                    $($c = c.$c,)* $($l = $l_value,)* "counters"
                );
            }
        }
    };
}

stats! {
    /// Per-line counts, kept in plain integers on the hot path and added to
    /// the shared atomics once per chunk; all of them in /metrics, the log
    /// line and the replay report.
    counts {
        lines        "trace_lines"           "Trace lines read"                         "lines",
        parsed       "trace_lines_parsed"    "Trace lines parsed"                       "parsed",
        events       "trace_events"          "Tracer events recognised"                 "events",
        skipped      "trace_lines_skipped"
            "Parsed lines that are neither tracer events nor heartbeats"               "skipped",
        malformed    "trace_lines_malformed" "Lines that are not trace_pipe lines"      "malformed",
        lost_events  "trace_lost_events"
            "Events the kernel reported lost (CPU:N [LOST M EVENTS])"                   "lost events",
        oversized    "trace_lines_oversized"
            "Lines dropped for exceeding trace.max_line_bytes"                          "oversized",
        gtpu_records "trace_gtpu_records"
            "Tracer records of a GTP-U packet (netdev mode: one TEID line each)"        "GTP-U records",
        rls_records  "trace_rls_records"
            "Tracer records of an RLS user-data packet (netdev mode: one RLS line each)" "RLS records",
    }
    /// The daemon's other counters, each a /metrics counter.
    counters {
        bytes           "trace_bytes"          "Bytes read from the trace source",
        source_reopens  "trace_source_retries" "Times the trace source was found down and retried",
        tracker_dropped "tracker_dropped"      "Targets not tracked because a bound was reached",
        posts_ok        "posts_ok"             "Strategy lists the API accepted",
        token_refreshes "token_refreshes"      "Tokens obtained from the API",
        heartbeats      "tracer_heartbeats"    "Tracer heartbeat lines read",
    }
    /// State that /metrics and /healthz report in their own ways (gauges,
    /// ages, the labelled failure family).
    state {
        source_up: AtomicBool,
        /// When the source went down (0 while up): for /healthz.
        source_down_since_unix_ms: AtomicU64,
        /// Why it is down (the last error, naming a busy pipe's holders).
        source_error: Mutex<String>,
        last_line_unix_ms: AtomicU64,
        posts_failed_http: AtomicU64,
        posts_failed_transport: AtomicU64,
        posts_failed_auth: AtomicU64,
        posts_failed_body: AtomicU64,
        last_post_ok_unix_ms: AtomicU64,
        first_failure_unix_ms: AtomicU64,
        tracked_processes: AtomicU64,
        tracked_threads: AtomicU64,
        /// Why the API was last refused as an impostor (None once a list
        /// is delivered): /healthz says it at once, as no retry fixes it.
        untrusted_api: Note,
        /// When the daemon's runtime last checked its loops (/livez).
        loops_checked_unix_ms: AtomicU64,
        /// Which of the daemon's loops ended while it runs (/livez).
        loop_ended: Note,
        /// The last tracer heartbeat read (0: none yet).
        last_heartbeat_unix_ms: AtomicU64,
        /// What /status shows besides the counters.
        status: std::sync::Mutex<crate::status::Live>,
    }
    /// The periodic "counters" log line: every count, then these.
    log(s) {
        tracked_processes = s.tracked_processes.load(Relaxed),
        tracked_threads = s.tracked_threads.load(Relaxed),
        dropped = s.tracker_dropped.load(Relaxed),
        posts_ok = s.posts_ok.load(Relaxed),
        posts_failed = s.posts_failed().iter().map(|(_, n)| n).sum::<u64>(),
    }
}

impl Stats {
    pub fn add_counts(&self, c: &Counts) {
        self.add_to_totals(c);
        if c.lines > 0 {
            self.last_line_unix_ms.store(crate::clock::unix_ms(), Relaxed);
        }
    }

    /// Failed sends by reason, as /metrics labels them.
    pub fn posts_failed(&self) -> [(&'static str, u64); 4] {
        [
            ("transport", self.posts_failed_transport.load(Relaxed)),
            ("http", self.posts_failed_http.load(Relaxed)),
            ("auth", self.posts_failed_auth.load(Relaxed)),
            ("body", self.posts_failed_body.load(Relaxed)),
        ]
    }
}

/// A reason, set and read across threads.
#[derive(Debug, Default)]
pub struct Note(Mutex<Option<String>>);

impl Note {
    pub fn set(&self, why: Option<String>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = why;
    }

    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_are_unique_and_counts_add_up_in_every_report() {
        let s = Stats::default();
        let rows: Vec<Row> = s.counts().rows().into_iter().chain(s.counters()).collect();
        let mut names: Vec<&str> = rows.iter().map(|r| r.metric).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), rows.len(), "a metric name used twice");

        let chunk = Counts { lines: 3, oversized: 1, rls_records: 2, ..Counts::default() };
        s.add_counts(&chunk);
        s.add_counts(&chunk);
        let mut twice = chunk;
        twice.add(&chunk);
        assert_eq!(s.counts(), twice);
        let value = |label| s.counts().rows().iter().find(|r| r.label == label).unwrap().value;
        assert_eq!((value("lines"), value("oversized"), value("RLS records")), (6, 2, 4));
        assert_ne!(s.last_line_unix_ms.load(Relaxed), 0);
    }
}
