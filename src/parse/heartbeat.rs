//! The tracer's heartbeat: a line it prints every few seconds, whatever the
//! traffic, so that a silent trace tells a dead tracer from an idle user
//! plane. A BPF program attached to nothing prints it when the tracer runs
//! it (a `bpf_trace_printk` line); where that cannot run, and from older
//! tracers, it is a `trace_marker` write.
//!
//! ```text
//!   gtp5g-tracer-4242 [001] ..... 812.5: bpf_trace_printk: gtp5g-tracer heartbeat: pid=4242 interval_s=5
//!   gtp5g-tracer-4242 [001] ..... 812.5: tracing_mark_write: gtp5g-tracer heartbeat: pid=4242 interval_s=5
//! ```

use super::scan::dec;
use super::TraceLine;
use nom::{bytes::complete::tag, sequence::preceded, Parser};

/// The event name ftrace gives a `trace_marker` write.
const MARKER_EVENT: &[u8] = b"tracing_mark_write";

/// What every heartbeat starts with (tracer-c/tracer/gtp5g_heartbeat.h; its
/// README documents the line).
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
    if line.event != MARKER_EVENT && !line.is_printk() {
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
    fn the_tracers_printk_line_is_a_heartbeat() {
        let line = "  gtp5g-tracer-4242 [001] ...2. 812.500001: bpf_trace_printk: gtp5g-tracer heartbeat: pid=4242 interval_s=5";
        assert_eq!(of(line), Some(Heartbeat { pid: 4242, interval_s: 5 }));
        // Kernels before 5.9 print no event name, or the program's address.
        let old = "  gtp5g-tracer-7 [000] .... 1.0: 0x00000001: gtp5g-tracer heartbeat: pid=7 interval_s=1";
        assert_eq!(of(old), Some(Heartbeat { pid: 7, interval_s: 1 }));
    }

    #[test]
    fn the_marker_line_of_the_fallback_and_older_tracers_is_a_heartbeat() {
        let line = "  gtp5g-tracer-4242 [001] ..... 812.500001: tracing_mark_write: gtp5g-tracer heartbeat: pid=4242 interval_s=5";
        assert_eq!(of(line), Some(Heartbeat { pid: 4242, interval_s: 5 }));
        let newer = "  <...>-7 [000] ..... 1.0: tracing_mark_write: gtp5g-tracer heartbeat: pid=7 interval_s=2 mode=netdev";
        assert_eq!(of(newer), Some(Heartbeat { pid: 7, interval_s: 2 }));
    }

    #[test]
    fn the_prefix_is_the_one_the_tracer_prints() {
        let header = include_str!("../../tracer-c/tracer/gtp5g_heartbeat.h");
        let define = format!("#define HEARTBEAT_PREFIX \"{HEARTBEAT_PREFIX}\"");
        assert!(header.lines().any(|l| l == define), "{define} not in:\n{header}");
    }

    #[test]
    fn other_lines_are_not() {
        for line in [
            "  bash-1 [000] ..... 1.0: tracing_mark_write: hello",
            "  bash-1 [000] ..... 1.0: tracing_mark_write: gtp5g-tracer heartbeat: pid=x interval_s=5",
            "  bash-1 [000] ..... 1.0: bpf_trace_printk: gtp5g-tracer heartbeat: pid=1",
            "  bash-1 [000] ..... 1.0: bpf_trace_printk: tp/net_dev_queue: gtp5g-tracer heartbeat: pid=1 interval_s=5",
            "  bash-1 [000] ..... 1.0: sched_switch: gtp5g-tracer heartbeat: pid=1 interval_s=5",
        ] {
            assert_eq!(of(line), None, "{line}");
        }
    }
}
