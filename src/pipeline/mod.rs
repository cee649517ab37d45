//! Frame -> parse -> track for a stream of chunks. `Pipeline` is the same
//! code for the kernel's trace_pipe, a FIFO, a replayed file and the
//! benchmarks; `thread` runs it on the daemon's tracker thread.

pub mod thread;

use crate::parse::{
    parse_line, parse_message, Body, Fields, Line, LineBuffer, Message, Packet, ProbeEvent,
};
use crate::stats::Counts;
use crate::track::{procfs::ProcView, Tracker};

pub struct Pipeline {
    buffer: LineBuffer,
    counts: Counts,
    oversized_reported: u64,
}

impl Pipeline {
    pub fn new(max_line: usize) -> Self {
        Pipeline {
            buffer: LineBuffer::new(max_line),
            counts: Counts::default(),
            oversized_reported: 0,
        }
    }

    /// Feeds one chunk; true when the tracked set grew.
    pub fn push<P: ProcView>(&mut self, chunk: &[u8], tracker: &mut Tracker<P>) -> bool {
        let counts = &mut self.counts;
        let mut grew = false;
        self.buffer.push(chunk, |line| grew |= one_line(line, counts, tracker));
        grew
    }

    /// End of input: a last line without its newline still counts.
    pub fn finish<P: ProcView>(&mut self, tracker: &mut Tracker<P>) -> bool {
        let counts = &mut self.counts;
        let mut grew = false;
        self.buffer.finish(|line| grew |= one_line(line, counts, tracker));
        grew
    }

    /// Counts since the last call (for adding to shared totals).
    pub fn take_counts(&mut self) -> Counts {
        let mut out = std::mem::take(&mut self.counts);
        out.oversized = self.buffer.oversized() - self.oversized_reported;
        self.oversized_reported = self.buffer.oversized();
        out
    }
}

fn one_line<P: ProcView>(line: &[u8], counts: &mut Counts, tracker: &mut Tracker<P>) -> bool {
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
                return false;
            }
            match parse_message(t.message) {
                Ok(m) => {
                    counts.events += 1;
                    count_packet(&m, counts);
                    tracker.observe(&t.header, &m)
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
