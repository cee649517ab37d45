//! What the trace said of each tracked process, for `/status`: when it was
//! first seen, when a trace record last named one of its threads, and which
//! traffic did (GTP-U, RLS, the scheduler's own lines). Fed per event line
//! by the pipeline with the process `Tracker::observe` found for the line
//! (so a line costs the tracker's one lookup, none here for untracked tasks).

use crate::parse::{Body, Fields, Message, Packet, ProbeEvent, ProbeKind};
use std::collections::HashMap;

/// The kinds of record that named a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Protocols(u8);

const GTPU: u8 = 1;
const RLS: u8 = 2;
const SCHEDULER: u8 = 4;

impl Protocols {
    /// As `/status` spells them, in a fixed order.
    pub fn names(self) -> Vec<&'static str> {
        [(GTPU, "GTP-U"), (RLS, "RLS"), (SCHEDULER, "scheduler")]
            .into_iter()
            .filter(|(bit, _)| self.0 & bit != 0)
            .map(|(_, name)| name)
            .collect()
    }
}

/// What one line says about the traffic of its task: fentry/fexit probes
/// sit on gtp5g's GTP-U functions; a netdev line says TEID= or RLS=; the
/// scheduler's lines are its own kind. Lines naming no traffic (a netdev
/// PID= or DEV= line) only stamp the record time.
fn protocol_of(msg: &Message<'_>) -> u8 {
    match msg {
        Message::Sched { .. } => SCHEDULER,
        Message::Probe(ProbeEvent { kind: ProbeKind::Fentry | ProbeKind::Fexit, .. }) => GTPU,
        Message::Probe(ProbeEvent { body: Body::Fields(Fields { packet, .. }), .. }) => {
            match packet {
                Some(Packet::GtpU) => GTPU,
                Some(Packet::Rls) => RLS,
                None => 0,
            }
        }
        Message::Probe(_) => 0,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub first_unix_ms: u64,
    /// The last trace record naming one of its threads (None: tracked from
    /// /proc or the state file, not yet named since).
    pub last_record_unix_ms: Option<u64>,
    pub protocols: Protocols,
}

/// Keyed by process id; entries of processes no longer tracked go at `retain`.
#[derive(Debug, Default)]
pub struct Activity {
    by_tgid: HashMap<u32, Seen>,
}

impl Activity {
    /// After the tracker has seen the line: stamps the process it named.
    pub fn note(&mut self, tgid: Option<u32>, msg: &Message<'_>, now_ms: u64) {
        let Some(tgid) = tgid else { return };
        let seen = self.seen(tgid, now_ms);
        seen.last_record_unix_ms = Some(now_ms);
        seen.protocols.0 |= protocol_of(msg);
    }

    /// The entry of `tgid`, created as first seen `now_ms`.
    pub fn seen(&mut self, tgid: u32, now_ms: u64) -> &mut Seen {
        self.by_tgid.entry(tgid).or_insert(Seen {
            first_unix_ms: now_ms,
            last_record_unix_ms: None,
            protocols: Protocols::default(),
        })
    }

    pub fn retain(&mut self, tracked: &[u32]) {
        self.by_tgid.retain(|tgid, _| tracked.binary_search(tgid).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_message;

    #[test]
    fn each_record_kind_names_its_protocol() {
        let of = |m: &str| Protocols(protocol_of(&parse_message(m.as_bytes()).unwrap())).names();
        assert_eq!(of("fentry/gtp5g_encap_recv: PID=1, TGID=1, CPU=0"), ["GTP-U"]);
        assert_eq!(of("tp/net_dev_queue: TEID=0x1, TYPE=255"), ["GTP-U"]);
        assert_eq!(of("tp/net_dev_queue: RLS=DATA, PSI=1, LEN=40"), ["RLS"]);
        assert_eq!(of("stop: pid=5 (nr-gnb)"), ["scheduler"]);
        assert!(of("tp/net_dev_queue: PID=1, TGID=1, CPU=0").is_empty());
        assert_eq!(Protocols(GTPU | RLS | SCHEDULER).names(), ["GTP-U", "RLS", "scheduler"]);
    }
}
