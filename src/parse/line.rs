//! One trace_pipe line: the ftrace header, the event name and the message.
//!
//! ```text
//!   <comm>-<pid> [(<tgid>)] [<cpu>] [<flags>] <timestamp>: <event>: <message>
//!   CPU:<n> [LOST <m> EVENTS]
//! ```

use super::scan::{dec, find, find_then_space, spaces0, spaces1};
use nom::{
    branch::alt,
    bytes::complete::{tag, take_till1, take_while, take_while1},
    character::complete::{char, digit1},
    combinator::{map, opt, recognize, value},
    sequence::{delimited, preceded, terminated},
    IResult, Parser,
};

/// The ftrace columns before the event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The kernel's comm cache entry: may be `<...>`, `<idle>`, or stale.
    pub comm: &'a [u8],
    /// Thread id of the task that was running.
    pub pid: u32,
    /// Present only with `options/record-tgid`; `None` inside for `(-------)`.
    pub tgid: Option<Option<u32>>,
    pub cpu: u32,
    /// Absent with `options/irq-info` off.
    pub flags: Option<&'a [u8]>,
    pub timestamp: &'a [u8],
}

const PRINTK: &[u8] = b"bpf_trace_printk";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceLine<'a> {
    pub header: Header<'a>,
    pub event: &'a [u8],
    pub message: &'a [u8],
}

impl TraceLine<'_> {
    /// bpf_printk output: `bpf_trace_printk` today, the probe address
    /// (`0x...`) or nothing on old kernels.
    pub fn is_printk(&self) -> bool {
        self.event == PRINTK || self.event.is_empty() || self.event.starts_with(b"0x")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    Trace(TraceLine<'a>),
    Lost { cpu: u32, events: u64 },
}

/// The line is not a trace_pipe line this parser knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed trace line: {0}")]
pub struct Malformed(pub &'static str);

pub fn parse_line(line: &[u8]) -> Result<Line<'_>, Malformed> {
    let line = trim_start(line);
    if line.starts_with(b"CPU:") {
        return lost(line)
            .map(|(_, (cpu, events))| Line::Lost { cpu, events })
            .map_err(|_| Malformed("bad LOST EVENTS line"));
    }
    let (comm, pid, tgid, cpu, rest) = task_columns(line)?;
    let (rest, (flags, timestamp)) =
        flags_and_timestamp(rest).map_err(|_| Malformed("no timestamp after cpu"))?;
    let (event, message) = event_and_message(rest);
    Ok(Line::Trace(TraceLine {
        header: Header { comm, pid, tgid, cpu, flags, timestamp },
        event,
        message,
    }))
}

fn trim_start(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|&b| b != b' ').unwrap_or(line.len());
    &line[start..]
}

fn lost(line: &[u8]) -> IResult<&[u8], (u32, u64)> {
    (
        preceded(tag("CPU:"), dec),
        delimited((spaces1, tag("[LOST ")), dec, (tag(" EVENTS]"), spaces0)),
    )
        .parse(line)
}

type TaskColumns<'a> = (&'a [u8], u32, Option<Option<u32>>, u32, &'a [u8]);

/// The comm may itself hold dashes, digits, spaces and brackets, so the pid
/// is the first `-<digits>` that is followed by the cpu column.
fn task_columns(line: &[u8]) -> Result<TaskColumns<'_>, Malformed> {
    let mut from = 0;
    while let Some(at) = find(&line[from..], b'-') {
        let dash = from + at;
        if let Ok((rest, (pid, tgid, cpu))) = pid_tgid_cpu(&line[dash + 1..]) {
            return Ok((&line[..dash], pid, tgid, cpu, rest));
        }
        from = dash + 1;
    }
    Err(Malformed("no <comm>-<pid> [<cpu>] columns"))
}

/// pid, the record-tgid column if present, cpu.
type PidTgidCpu = (u32, Option<Option<u32>>, u32);

/// `<pid> [(<tgid>) ][<cpu>]` after the dash.
fn pid_tgid_cpu(input: &[u8]) -> IResult<&[u8], PidTgidCpu> {
    (
        dec,
        preceded(spaces1, opt(terminated(tgid_column, spaces1))),
        delimited(char('['), preceded(spaces0, dec), char(']')),
    )
        .parse(input)
}

/// `(<tgid>)`, or `(-------)` when the kernel did not know it.
fn tgid_column(input: &[u8]) -> IResult<&[u8], Option<u32>> {
    delimited(
        char('('),
        preceded(spaces0, alt((map(dec, Some), value(None, take_while1(|b| b == b'-'))))),
        char(')'),
    )
    .parse(input)
}

type FlagsAndTimestamp<'a> = (Option<&'a [u8]>, &'a [u8]);

/// Flags (`d..1`, `..s21`) are one optional token before the timestamp; a
/// flags token never starts with a digit, a timestamp always does.
fn flags_and_timestamp(input: &[u8]) -> IResult<&[u8], FlagsAndTimestamp<'_>> {
    preceded(
        spaces1,
        alt((
            map(timestamp, |ts| (None, ts)),
            map((terminated(take_till1(|b| b == b' '), spaces1), timestamp), |(f, ts)| {
                (Some(f), ts)
            }),
        )),
    )
    .parse(input)
}

/// `<digits>[.<digits>]:` (the `counter` clock prints no fraction).
fn timestamp(input: &[u8]) -> IResult<&[u8], &[u8]> {
    terminated(recognize((digit1, take_while(|b: u8| b.is_ascii_digit() || b == b'.'))), char(':'))
        .parse(input)
}

/// After the timestamp: ` <event>: <message>`; the event may be empty.
fn event_and_message(rest: &[u8]) -> (&[u8], &[u8]) {
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    // Nearly every line: the event name holds no ':', so this is the first ": ".
    if let Some(message) = rest.strip_prefix(b"bpf_trace_printk: ") {
        return (&rest[..PRINTK.len()], message);
    }
    match find_then_space(rest, b':') {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (rest.strip_suffix(b":").unwrap_or(rest), &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(line: &str) -> TraceLine<'_> {
        match parse_line(line.as_bytes()) {
            Ok(Line::Trace(t)) => t,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    #[test]
    fn kernel_padded_line_with_five_char_flags() {
        let t = trace("          nr-gnb-10137   [001] b..2.  1675.758315: bpf_trace_printk: tp/net_dev_queue: DEV=lo, LEN=70");
        assert_eq!(t.header.comm, b"nr-gnb");
        assert_eq!(t.header.pid, 10137);
        assert_eq!(t.header.tgid, None);
        assert_eq!(t.header.cpu, 1);
        assert_eq!(t.header.flags, Some(&b"b..2."[..]));
        assert_eq!(t.header.timestamp, b"1675.758315");
        assert_eq!(t.event, b"bpf_trace_printk");
        assert_eq!(t.message, b"tp/net_dev_queue: DEV=lo, LEN=70");
        assert!(t.is_printk());
    }

    #[test]
    fn trimmed_line_with_four_char_flags() {
        let t = trace(
            "nr-ue-365012 [004] d..3 22353.878390: bpf_trace_printk: stop: pid=365012 (nr-ue)",
        );
        assert_eq!((t.header.comm, t.header.pid, t.header.cpu), (&b"nr-ue"[..], 365012, 4));
        assert_eq!(t.header.flags, Some(&b"d..3"[..]));
        assert_eq!(t.message, b"stop: pid=365012 (nr-ue)");
    }

    #[test]
    fn idle_and_unknown_comm() {
        let t = trace("<idle>-0       [001] b.s31 34202.971363: bpf_trace_printk: x");
        assert_eq!((t.header.comm, t.header.pid), (&b"<idle>"[..], 0));
        let t = trace("           <...>-3497    [001] b..2.   275.626732: bpf_trace_printk: y");
        assert_eq!((t.header.comm, t.header.pid), (&b"<...>"[..], 3497));
    }

    #[test]
    fn comm_with_spaces_dashes_digits_and_brackets() {
        let t = trace("     Web Content-777     [002] d..1   10.000001: bpf_trace_printk: m");
        assert_eq!((t.header.comm, t.header.pid), (&b"Web Content"[..], 777));
        let t = trace("  kworker/u8:2-12-345   [000] ....   10.5: sched_switch: prev_comm=a");
        assert_eq!((t.header.comm, t.header.pid), (&b"kworker/u8:2-12"[..], 345));
        assert_eq!(t.event, b"sched_switch");
        let t = trace("a [1]-b-9 [003] .... 1.2: e: m");
        assert_eq!((t.header.comm, t.header.pid, t.header.cpu), (&b"a [1]-b"[..], 9, 3));
        let t = trace("nr-gnb-helper-55 [000] .... 1.2: e: m");
        assert_eq!((t.header.comm, t.header.pid), (&b"nr-gnb-helper"[..], 55));
    }

    #[test]
    fn record_tgid_column_number_or_dashes() {
        let t = trace(
            "          nr-gnb-10271   (  10147) [001] b..2.  1690.276973: bpf_trace_printk: m",
        );
        assert_eq!((t.header.pid, t.header.tgid), (10271, Some(Some(10147))));
        let t =
            trace("           <...>-4781    (-------) [001] d..1  5.000000: bpf_trace_printk: m");
        assert_eq!((t.header.pid, t.header.tgid), (4781, Some(None)));
    }

    #[test]
    fn no_flags_column() {
        let t = trace("           <...>-10344   [001]   1711.413912: bpf_trace_printk: tp/net_dev_queue: COMM=nr-gnb");
        assert_eq!(t.header.flags, None);
        assert_eq!(t.header.timestamp, b"1711.413912");
        assert_eq!(t.message, b"tp/net_dev_queue: COMM=nr-gnb");
    }

    #[test]
    fn counter_clock_and_old_event_names() {
        let t = trace("  bash-1 [000] d..1 123456789: 0x00000001: hello");
        assert_eq!(
            (t.header.timestamp, t.event, t.message),
            (&b"123456789"[..], &b"0x00000001"[..], &b"hello"[..])
        );
        assert!(t.is_printk());
        let t = trace("  bash-1 [000] d..1 5.5: : hello there");
        assert_eq!((t.event, t.message), (&b""[..], &b"hello there"[..]));
        assert!(t.is_printk());
        assert!(!trace("  bash-1 [000] .... 5.5: tracing_mark_write: x").is_printk());
    }

    #[test]
    fn non_utf8_message_bytes() {
        let mut l = b"  a-1 [000] .... 1.0: bpf_trace_printk: DEV=".to_vec();
        l.extend_from_slice(&[0xff, 0xfe, b'x']);
        match parse_line(&l).unwrap() {
            Line::Trace(t) => {
                assert_eq!(t.message, &[b'D', b'E', b'V', b'=', 0xff, 0xfe, b'x'][..])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lost_events_line() {
        assert_eq!(
            parse_line(b"CPU:3 [LOST 1234 EVENTS]"),
            Ok(Line::Lost { cpu: 3, events: 1234 })
        );
        assert_eq!(parse_line(b"  CPU:0 [LOST 1 EVENTS]  "), Ok(Line::Lost { cpu: 0, events: 1 }));
        assert!(parse_line(b"CPU:3 [LOST many EVENTS]").is_err());
    }

    #[test]
    fn malformed_lines() {
        for bad in [
            "",
            "   ",
            "hello world",
            "a-1 [x] .... 1.0: e: m",
            "a-1 [000] .... notatime: e: m",
            "a-1 [000]",
            "# tracer: nop",
        ] {
            assert!(parse_line(bad.as_bytes()).is_err(), "{bad:?} parsed");
        }
    }
}
