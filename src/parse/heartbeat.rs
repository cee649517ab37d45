//! The tracer's heartbeat: a line it writes to `trace_marker` every few
//! seconds, whatever the traffic, so that a silent trace tells a dead
//! tracer from an idle user plane. No BPF program fires for it.
//!
//! ```text
//!   gtp5g-tracer-4242 [001] ..... 812.5: tracing_mark_write: gtp5g-tracer heartbeat: pid=4242 interval_s=5
//! ```

use super::scan::dec;
use super::TraceLine;
use nom::{bytes::complete::tag, sequence::preceded, Parser};

/// The event name ftrace gives a `trace_marker` write.
const MARKER_EVENT: &[u8] = b"tracing_mark_write";

/// What every heartbeat starts with (tracer-c/README.md documents the line).
pub const HEARTBEAT_PREFIX: &str = "gtp5g-tracer heartbeat: ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// The tracer's process id.
    pub pid: u32,
    /// How often it writes one.
    pub interval_s: u32,
}

/// The heartbeat a trace line carries, if it is one. Fields after the two
/// known ones are left for newer tracers.
pub fn heartbeat(line: &TraceLine<'_>) -> Option<Heartbeat> {
    if line.event != MARKER_EVENT {
        return None;
    }
    let (_, (pid, interval_s)) = preceded(
        tag(HEARTBEAT_PREFIX.as_bytes()),
        (preceded(tag("pid="), dec), preceded(tag(" interval_s="), dec)),
    )
    .parse(line.message)
    .ok()?;
    Some(Heartbeat { pid, interval_s })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_line, Line};

    fn of(text: &str) -> Option<Heartbeat> {
        match parse_line(text.as_bytes()) {
            Ok(Line::Trace(t)) => heartbeat(&t),
            other => panic!("{text:?} gave {other:?}"),
        }
    }

    #[test]
    fn the_tracers_marker_line_is_a_heartbeat() {
        let line = "  gtp5g-tracer-4242 [001] ..... 812.500001: tracing_mark_write: gtp5g-tracer heartbeat: pid=4242 interval_s=5";
        assert_eq!(of(line), Some(Heartbeat { pid: 4242, interval_s: 5 }));
        let newer = "  <...>-7 [000] ..... 1.0: tracing_mark_write: gtp5g-tracer heartbeat: pid=7 interval_s=2 mode=netdev";
        assert_eq!(of(newer), Some(Heartbeat { pid: 7, interval_s: 2 }));
    }

    #[test]
    fn other_marker_writes_and_printk_lines_are_not() {
        for line in [
            "  bash-1 [000] ..... 1.0: tracing_mark_write: hello",
            "  bash-1 [000] ..... 1.0: tracing_mark_write: gtp5g-tracer heartbeat: pid=x interval_s=5",
            "  bash-1 [000] ..... 1.0: bpf_trace_printk: gtp5g-tracer heartbeat: pid=1 interval_s=5",
        ] {
            assert_eq!(of(line), None, "{line}");
        }
    }
}
