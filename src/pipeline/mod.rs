//! Frame -> parse -> track for a stream of chunks. `Pipeline` is the same
//! code for the kernel's trace_pipe, a FIFO, a replayed file and the
//! benchmarks; `thread` runs it on the daemon's tracker thread.

pub mod thread;

use crate::parse::{
    heartbeat, parse_line, parse_message, Body, Fields, Heartbeat, Line, LineBuffer, Message,
    Packet, ProbeEvent,
};
use crate::stats::Counts;
use crate::track::activity::Activity;
use crate::track::{procfs::ProcView, Tracker};

pub struct Pipeline {
    buffer: LineBuffer,
    side: Side,
    oversized_reported: u64,
}

/// What lines leave besides the tracked set.
#[derive(Debug, Default)]
struct Side {
    counts: Counts,
    activity: Activity,
    /// The last heartbeat since `take_heartbeats`, and how many.
    heartbeat: Option<Heartbeat>,
    heartbeats: u64,
    /// The chunk's wall-clock time, read once per chunk.
    now_ms: u64,
}

impl Pipeline {
    pub fn new(max_line: usize) -> Self {
        Pipeline { buffer: LineBuffer::new(max_line), side: Side::default(), oversized_reported: 0 }
    }

    /// Feeds one chunk; true when the tracked set grew.
    pub fn push<P: ProcView>(&mut self, chunk: &[u8], tracker: &mut Tracker<P>) -> bool {
        let side = &mut self.side;
        side.now_ms = crate::clock::unix_ms();
        let mut grew = false;
        self.buffer.push(chunk, |line| grew |= one_line(line, side, tracker));
        grew
    }

    /// End of input: a last line without its newline still counts.
    pub fn finish<P: ProcView>(&mut self, tracker: &mut Tracker<P>) -> bool {
        let side = &mut self.side;
        let mut grew = false;
        self.buffer.finish(|line| grew |= one_line(line, side, tracker));
        grew
    }

    /// Counts since the last call (for adding to shared totals).
    pub fn take_counts(&mut self) -> Counts {
        let mut out = std::mem::take(&mut self.side.counts);
        out.oversized = self.buffer.oversized() - self.oversized_reported;
        self.oversized_reported = self.buffer.oversized();
        out
    }

    /// The tracer's last heartbeat since the last call, and how many came.
    pub fn take_heartbeats(&mut self) -> (Option<Heartbeat>, u64) {
        (self.side.heartbeat.take(), std::mem::take(&mut self.side.heartbeats))
    }

    pub fn activity(&mut self) -> &mut Activity {
        &mut self.side.activity
    }
}

fn one_line<P: ProcView>(line: &[u8], side: &mut Side, tracker: &mut Tracker<P>) -> bool {
    let counts = &mut side.counts;
    counts.lines += 1;
    match parse_line(line) {
        Err(_) => {
            counts.malformed += 1;
            false
        }
        Ok(Line::Lost { events, .. }) => {
            counts.parsed += 1;
            counts.lost_events += events;
            false
        }
        Ok(Line::Trace(t)) => {
            counts.parsed += 1;
            if !t.is_printk() {
                counts.skipped += 1;
                if let Some(h) = heartbeat(&t) {
                    side.heartbeat = Some(h);
                    side.heartbeats += 1;
                }
                return false;
            }
            match parse_message(t.message) {
                Ok(m) => {
                    counts.events += 1;
                    count_packet(&m, counts);
                    let seen = tracker.observe(&t.header, &m);
                    side.activity.note(seen.tgid, &m, side.now_ms);
                    seen.grew
                }
                Err(_) => {
                    counts.skipped += 1;
                    false
                }
            }
        }
    }
}

fn count_packet(m: &Message<'_>, counts: &mut Counts) {
    if let Message::Probe(ProbeEvent {
        body: Body::Fields(Fields { packet: Some(p), .. }), ..
    }) = m
    {
        match p {
            Packet::GtpU => counts.gtpu_records += 1,
            Packet::Rls => counts.rls_records += 1,
        }
    }
}
