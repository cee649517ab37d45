//! bpf_printk messages: the gtp5g tracer's `<probe>/<function>: ...` lines
//! and the Gthulhu scheduler's `stop:` / `enqueue:` lines.

use super::scan::{dec, find, find_then_space, spaces1};
use nom::{
    branch::alt,
    bytes::complete::{tag, take_while1},
    character::complete::char,
    combinator::{all_consuming, opt, value},
    sequence::{preceded, terminated},
    IResult, Parser,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    Probe(ProbeEvent<'a>),
    /// The scheduler names its subject task: `stop: pid=N (comm)`.
    Sched {
        kind: SchedKind,
        pid: u32,
        comm: &'a [u8],
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedKind {
    Stop,
    Enqueue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Fentry,
    Fexit,
    /// The netdev mode's tracepoint programs (`tp/net_dev_queue`).
    Tracepoint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeEvent<'a> {
    pub kind: ProbeKind,
    pub function: &'a [u8],
    pub body: Body<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    Fields(Fields<'a>),
    /// Free text such as `GTP packet detected (len >= 8)`.
    Note(&'a [u8]),
}

/// The `KEY=VALUE` fields the tracker reads, absent ones `None`, and which
/// user-plane protocol the line reports (for the per-protocol counters). The
/// other keys the tracers print (CPU, DEV, LEN, TS, RET, PDR, Route, TYPE,
/// PSI) name no task, so they are stepped over unparsed: this runs for every
/// trace line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    pub pid: Option<u32>,
    pub tgid: Option<u32>,
    pub comm: Option<&'a [u8]>,
    pub packet: Option<Packet>,
}

/// The user-plane packet a tracer line reports: a `TEID=` key (GTP-U, both
/// modes) or an `RLS=` key (UERANSIM's radio link, netdev mode). The key
/// alone decides: its value is not read, so a future RLS PDU type still
/// counts as RLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    GtpU,
    Rls,
}

/// Why a message was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown message: {0}")]
pub struct UnknownMessage(pub &'static str);

pub fn parse_message(msg: &[u8]) -> Result<Message<'_>, UnknownMessage> {
    if let Ok((_, m)) = sched(msg) {
        return Ok(m);
    }
    let (body, (kind, function)) =
        probe_prefix(msg).map_err(|_| UnknownMessage("no <probe>/<function>: prefix"))?;
    let body = if starts_with_key(body) { Body::Fields(fields(body)?) } else { Body::Note(body) };
    Ok(Message::Probe(ProbeEvent { kind, function, body }))
}

fn sched(msg: &[u8]) -> IResult<&[u8], Message<'_>> {
    let (rest, (kind, pid)) = (
        terminated(
            alt((value(SchedKind::Stop, tag("stop")), value(SchedKind::Enqueue, tag("enqueue")))),
            tag(": pid="),
        ),
        terminated(dec, (spaces1, char('('))),
    )
        .parse(msg)?;
    // The comm may hold ')' itself: it ends at the last one.
    match memchr::memrchr(b')', rest) {
        Some(end) => Ok((&rest[end + 1..], Message::Sched { kind, pid, comm: &rest[..end] })),
        None => Err(nom::Err::Error(nom::error::Error::new(rest, nom::error::ErrorKind::Char))),
    }
}

fn probe_prefix(msg: &[u8]) -> IResult<&[u8], (ProbeKind, &[u8])> {
    (
        terminated(
            alt((
                value(ProbeKind::Fentry, tag("fentry")),
                value(ProbeKind::Fexit, tag("fexit")),
                value(ProbeKind::Tracepoint, tag("tp")),
            )),
            char('/'),
        ),
        terminated(take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'_'), tag(": ")),
    )
        .parse(msg)
}

fn starts_with_key(body: &[u8]) -> bool {
    let key_len = body.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    key_len > 0 && body.get(key_len) == Some(&b'=')
}

fn fields(mut body: &[u8]) -> Result<Fields<'_>, UnknownMessage> {
    let mut f = Fields::default();
    loop {
        let eq = find(body, b'=').ok_or(UnknownMessage("field without '='"))?;
        let key = &body[..eq];
        let after = &body[eq + 1..];
        // COMM is printed last and alone: its value may hold anything.
        let next = if key == b"COMM" { None } else { find_then_space(after, b',') };
        let (val, rest) = match next {
            None => (after, None),
            Some(at) => (&after[..at], Some(&after[at + 2..])),
        };
        set_field(&mut f, key, val)?;
        match rest {
            Some(r) => body = r,
            None => return Ok(f),
        }
    }
}

fn set_field<'a>(f: &mut Fields<'a>, key: &[u8], val: &'a [u8]) -> Result<(), UnknownMessage> {
    match key {
        b"PID" => f.pid = Some(number(val)?),
        b"TGID" => f.tgid = Some(number(val)?),
        b"COMM" => f.comm = Some(val),
        b"TEID" => f.packet = Some(Packet::GtpU),
        b"RLS" => f.packet = Some(Packet::Rls),
        _ => {}
    }
    Ok(())
}

/// What `str::parse` accepts for an unsigned type: an optional `+`, then
/// digits only.
fn number<T: TryFrom<u64>>(val: &[u8]) -> Result<T, UnknownMessage> {
    all_consuming(preceded(opt(char('+')), dec))
        .parse(val)
        .map(|(_, n)| n)
        .map_err(|_| UnknownMessage("field value is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(msg: &str) -> ProbeEvent<'_> {
        match parse_message(msg.as_bytes()) {
            Ok(Message::Probe(p)) => p,
            other => panic!("{msg:?} gave {other:?}"),
        }
    }

    fn fields_of(msg: &str) -> Fields<'_> {
        match probe(msg).body {
            Body::Fields(f) => f,
            other => panic!("{msg:?} gave {other:?}"),
        }
    }

    #[test]
    fn every_gtp5g_tracer_format() {
        let f = fields_of("fentry/gtp5g_encap_recv: PID=1150369, TGID=1150348, CPU=5");
        assert_eq!((f.pid, f.tgid), (Some(1150369), Some(1150348)));
        // Keys that name no task are stepped over, whatever their value.
        for msg in [
            "fentry/gtp5g_encap_recv: DEV=n3",
            "fentry/gtp5g_encap_recv: LEN=120",
            "fentry/gtp5g_xmit_skb_ipv4: LEN=84, TS=34202967771000",
            "fexit/gtp5g_push_header: RET=0x0 (skb ptr), LEN=99, TS=5",
        ] {
            assert_eq!(fields_of(msg), Fields::default(), "{msg}");
        }
        let f = fields_of("fexit/gtp5g_handle_skb_ipv4: PID=7, TGID=6, RET=0x0 (skb ptr)");
        assert_eq!((f.pid, f.tgid), (Some(7), Some(6)));
        let f = fields_of("fentry/gtp5g_push_header: PID=7, TGID=6, LEN=99");
        assert_eq!((f.pid, f.tgid), (Some(7), Some(6)));
        assert_eq!(fields_of("fexit/pdr_find_by_gtp1u: PID=7, PDR=Found").pid, Some(7));
        assert_eq!(fields_of("fexit/pdr_find_by_gtp1u: PID=7, PDR=Not Found").pid, Some(7));
        assert_eq!(fields_of("fexit/ip4_find_route: PID=8, Route=Not Found").pid, Some(8));
        assert_eq!(fields_of("fentry/policePacket: PID=7, TGID=6, CPU=0").tgid, Some(6));
        let p = probe("fexit/gtp5g_encap_recv: PID=1, TGID=2, CPU=3");
        assert_eq!((p.kind, p.function), (ProbeKind::Fexit, &b"gtp5g_encap_recv"[..]));
    }

    #[test]
    fn free_text_notes() {
        for note in ["GTP packet detected (len >= 8)", "skb is NULL", "pktinfo exists"] {
            let msg = format!("fentry/gtp5g_encap_recv: {note}");
            assert_eq!(probe(&msg).body, Body::Note(note.as_bytes()));
        }
    }

    #[test]
    fn netdev_formats_and_comm_lines() {
        let p = probe("tp/net_dev_queue: DEV=lo, LEN=70");
        assert_eq!(p.kind, ProbeKind::Tracepoint);
        let gtpu = Fields { packet: Some(Packet::GtpU), ..Fields::default() };
        assert_eq!(fields_of("tp/net_dev_queue: TEID=0x1000, TYPE=255"), gtpu);
        let rls = Fields { packet: Some(Packet::Rls), ..Fields::default() };
        assert_eq!(fields_of("tp/net_dev_queue: RLS=DATA, PSI=1, LEN=40"), rls);
        assert_eq!(fields_of("tp/netif_receive_skb: COMM=nr-gnb").comm, Some(&b"nr-gnb"[..]));
        assert_eq!(fields_of("fentry/policePacket: COMM=a, B=c").comm, Some(&b"a, B=c"[..]));
    }

    #[test]
    fn netdev_rls_record_names_its_thread_like_a_gtpu_one() {
        // The four lines the netdev tracer prints for one RLS user-data
        // packet (nr-ue -> nr-gnb:4997): the RLS line names no task and only
        // says RLS, whatever a newer tracer puts in its values; PID/TGID and
        // COMM name the sending thread, as for GTP-U.
        assert_eq!(fields_of("tp/net_dev_queue: DEV=lo, LEN=152"), Fields::default());
        let rls = Fields { packet: Some(Packet::Rls), ..Fields::default() };
        for msg in [
            "tp/net_dev_queue: RLS=DATA, PSI=1, LEN=84",
            "tp/net_dev_queue: RLS=RRC, PSI=4294967296, LEN=x, QFI=9",
        ] {
            assert_eq!(probe(msg).kind, ProbeKind::Tracepoint);
            assert_eq!(fields_of(msg), rls, "{msg}");
        }
        let f = fields_of("tp/net_dev_queue: PID=5181, TGID=5179, CPU=0");
        assert_eq!((f.pid, f.tgid), (Some(5181), Some(5179)));
        assert_eq!(fields_of("tp/netif_receive_skb: COMM=nr-ue").comm, Some(&b"nr-ue"[..]));
    }

    #[test]
    fn scheduler_lines_name_their_subject() {
        assert_eq!(
            parse_message(b"stop: pid=365189 (nr-gnb)"),
            Ok(Message::Sched { kind: SchedKind::Stop, pid: 365189, comm: b"nr-gnb" })
        );
        assert_eq!(
            parse_message(b"enqueue: pid=5 (a (b))"),
            Ok(Message::Sched { kind: SchedKind::Enqueue, pid: 5, comm: b"a (b)" })
        );
    }

    #[test]
    fn unknown_messages_are_errors_not_panics() {
        for bad in [
            "hello",
            "kprobe/foo: PID=1",
            "fentry/: PID=1",
            "fentry/f: PID=abc",
            "fentry/f: TGID=-1",
            "stop: pid=1 (unterminated",
            "",
        ] {
            assert!(parse_message(bad.as_bytes()).is_err(), "{bad:?} parsed");
        }
        let f = fields_of("fentry/f: PID=1, NEWKEY=x");
        assert_eq!(f.pid, Some(1));
    }
}
