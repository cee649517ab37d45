//! Frame -> parse -> track for a stream of chunks. `Pipeline` is the same
//! code for the kernel's trace_pipe, a FIFO, a replayed file and the
//! benchmarks; `thread` runs it on the daemon's tracker thread.

pub mod thread;

use crate::parse::{
    heartbeat, parse_line, parse_message, Body, Fields, Heartbeat, Line, LineBuffer, Message,
    Packet, ProbeEvent, TraceLine,
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
    side.counts.lines += 1;
    match parse_line(line) {
        Err(_) => {
            side.counts.malformed += 1;
            false
        }
        Ok(Line::Lost { events, .. }) => {
            side.counts.parsed += 1;
            side.counts.lost_events += events;
            false
        }
        Ok(Line::Trace(t)) => {
            side.counts.parsed += 1;
            if !t.is_printk() {
                not_an_event(&t, side);
                return false;
            }
            match parse_message(t.message) {
                Ok(m) => {
                    side.counts.events += 1;
                    count_packet(&m, &mut side.counts);
                    let seen = tracker.observe(&t.header, &m);
                    side.activity.note(seen.tgid, &m, side.now_ms);
                    seen.grew
                }
                Err(_) => {
                    not_an_event(&t, side);
                    false
                }
            }
        }
    }
}

/// A line that is no tracer event: the tracer's heartbeat (a marker write
/// or, from its own BPF program, a printk line: never a record of the
/// tracer's traffic), or skipped. Tried only after the events, so that the
/// per-packet lines pay nothing for it.
fn not_an_event(t: &TraceLine<'_>, side: &mut Side) {
    match heartbeat(t) {
        Some(h) => {
            side.heartbeat = Some(h);
            side.heartbeats += 1;
        }
        None => side.counts.skipped += 1,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::{procfs::NoProc, Limits, Targets};

    #[test]
    fn heartbeats_in_either_form_are_counted_as_such_and_track_nothing() {
        // Tracking the tracer's own name: a heartbeat taken for a record of
        // its traffic would track it.
        let mut tracker = Tracker::new(Targets::new(&["gtp5g-tracer"]), Limits::default(), NoProc);
        let mut pipeline = Pipeline::new(4096);
        let text = "\
  gtp5g-tracer-41 [001] ...2. 10.0: bpf_trace_printk: gtp5g-tracer heartbeat: pid=41 interval_s=5
  gtp5g-tracer-42 [000] ..... 11.0: tracing_mark_write: gtp5g-tracer heartbeat: pid=42 interval_s=1
  bash-7 [000] ..... 12.0: tracing_mark_write: hello
  bash-7 [000] ..... 12.5: bpf_trace_printk: hello
";
        assert!(!pipeline.push(text.as_bytes(), &mut tracker));
        let c = pipeline.take_counts();
        assert_eq!((c.lines, c.parsed, c.events, c.skipped, c.malformed), (4, 4, 0, 2, 0));
        assert_eq!(pipeline.take_heartbeats(), (Some(Heartbeat { pid: 42, interval_s: 1 }), 2));
        assert_eq!(pipeline.take_heartbeats(), (None, 0));
        assert_eq!(tracker.stats().processes, 0);

        // The same process's real record is tracked.
        let record = "  gtp5g-tracer-41 [001] b..2. 13.0: bpf_trace_printk: tp/net_dev_queue: PID=41, TGID=41, CPU=1\n";
        assert!(pipeline.push(record.as_bytes(), &mut tracker));
        assert_eq!(pipeline.take_counts().events, 1);
    }
}
