//! Deterministic trace_pipe corpus for the benchmarks: the same seed gives
//! the same bytes on every machine. Shared by `benches/throughput.rs` and
//! `examples/gen-corpus.rs` through `#[path]`.
//!
//! Mix by line: ~30% from nr-gnb threads (one process, several threads),
//! ~10% nr-ue, ~60% other tasks (`<idle>-0`, ksoftirqd, kworkers, `<...>`,
//! a comm with a space); every gtp5g tracer message format, the
//! scheduler's `stop:` / `enqueue:` lines, a few non-printk events, and
//! 0.01% `CPU:N [LOST M EVENTS]` lines. Headers use the kernel's exact
//! column layout.

use std::io::{self, Write};

/// splitmix64: tiny, seedable, good enough to shuffle a benchmark corpus.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A task as the header shows it.
#[derive(Clone, Copy)]
struct Task {
    comm: &'static str,
    tid: u32,
    tgid: u32,
}

const GNB_TGID: u32 = 365_180;
const GNB: [Task; 6] = [
    Task { comm: "nr-gnb", tid: 365_180, tgid: GNB_TGID },
    Task { comm: "nr-gnb", tid: 365_185, tgid: GNB_TGID },
    Task { comm: "nr-gnb", tid: 365_186, tgid: GNB_TGID },
    Task { comm: "nr-gnb", tid: 365_187, tgid: GNB_TGID },
    Task { comm: "nr-gnb", tid: 365_189, tgid: GNB_TGID },
    Task { comm: "nr-gnb", tid: 365_190, tgid: GNB_TGID },
];
const UE_TGID: u32 = 365_012;
const UE: [Task; 3] = [
    Task { comm: "nr-ue", tid: 365_012, tgid: UE_TGID },
    Task { comm: "nr-ue", tid: 365_015, tgid: UE_TGID },
    Task { comm: "nr-ue", tid: 365_016, tgid: UE_TGID },
];
const OTHERS: [Task; 9] = [
    Task { comm: "<idle>", tid: 0, tgid: 0 },
    Task { comm: "<idle>", tid: 0, tgid: 0 },
    Task { comm: "ksoftirqd/0", tid: 15, tgid: 15 },
    Task { comm: "ksoftirqd/1", tid: 22, tgid: 22 },
    Task { comm: "kworker/u8:2", tid: 12, tgid: 12 },
    Task { comm: "kworker/1:1-12", tid: 4711, tgid: 4711 },
    Task { comm: "<...>", tid: 3497, tgid: 3497 },
    Task { comm: "Web Content", tid: 777, tgid: 760 },
    Task { comm: "sshd", tid: 1022, tgid: 1022 },
];

const FLAGS: [&str; 8] = ["b..2.", "bN.2.", "..s21", "d.h51", "d..31", ".Ns3.", ".....", "dNs2."];
const FUNCTIONS: [&str; 7] = [
    "gtp5g_encap_recv",
    "gtp5g_xmit_skb_ipv4",
    "gtp5g_handle_skb_ipv4",
    "gtp5g_push_header",
    "pdr_find_by_gtp1u",
    "policePacket",
    "ip4_find_route",
];
const NETDEV: [&str; 2] = ["tp/net_dev_queue", "tp/netif_receive_skb"];

/// One message printed while `runner` was current. The tracer's PID/TGID/
/// COMM always describe the current task; only the scheduler's lines name
/// another one (`enqueue: pid=N (comm)` about `named`).
fn message(rng: &mut Rng, runner: Task, named: Task, cpu: u32, out: &mut Vec<u8>) {
    let Task { comm, tid, tgid } = runner;
    let f = *rng.pick(&FUNCTIONS);
    let len = 56 + rng.below(1400);
    let ts = 34_202_967_771_000 + rng.below(1_000_000_000);
    let found = if rng.below(8) == 0 { "Not Found" } else { "Found" };
    let w = &mut *out;
    let r = match rng.below(24) {
        0 => write!(w, "fentry/gtp5g_encap_recv: DEV=n3"),
        1 => write!(w, "fentry/gtp5g_encap_recv: GTP packet detected (len >= 8)"),
        2 => write!(w, "fentry/gtp5g_encap_recv: skb is NULL"),
        3 => write!(w, "fentry/gtp5g_encap_recv: LEN={len}"),
        4 => write!(w, "fentry/gtp5g_xmit_skb_ipv4: DEV=upfgtp"),
        5 => write!(w, "fentry/gtp5g_xmit_skb_ipv4: LEN={len}, TS={ts}"),
        6 => write!(w, "fentry/gtp5g_xmit_skb_ipv4: pktinfo exists"),
        7 => write!(w, "fexit/gtp5g_handle_skb_ipv4: PID={tid}, TGID={tgid}, RET=0x0 (skb ptr)"),
        8 => write!(w, "fentry/gtp5g_push_header: PID={tid}, TGID={tgid}, LEN={len}"),
        9 => write!(w, "fexit/gtp5g_push_header: RET=0x0 (skb ptr), LEN={len}, TS={ts}"),
        10 => write!(w, "fentry/pdr_find_by_gtp1u: PID={tid}, TGID={tgid}"),
        11 => write!(w, "fexit/pdr_find_by_gtp1u: PID={tid}, PDR={found}"),
        12 => write!(w, "fexit/ip4_find_route: PID={tid}, Route={found}"),
        13 | 14 => write!(w, "fentry/{f}: PID={tid}, TGID={tgid}, CPU={cpu}"),
        15 => write!(w, "fexit/{f}: PID={tid}, TGID={tgid}, CPU={cpu}"),
        16 => write!(w, "fentry/{f}: COMM={comm}"),
        17 => write!(w, "{}: DEV=lo, LEN={len}", rng.pick(&NETDEV)),
        18 => write!(w, "{}: TEID=0x{:x}, TYPE=255", rng.pick(&NETDEV), 0x1000 + rng.below(8)),
        19 => write!(w, "{}: PID={tid}, TGID={tgid}, CPU={cpu}", rng.pick(&NETDEV)),
        20 => write!(w, "{}: COMM={comm}", rng.pick(&NETDEV)),
        21 | 22 => write!(w, "stop: pid={} ({})", named.tid, named.comm),
        _ => write!(w, "enqueue: pid={} ({})", named.tid, named.comm),
    };
    r.expect("writing to a Vec cannot fail");
}

/// Appends one line (with its newline) to `out`.
fn line(rng: &mut Rng, clock_us: &mut u64, out: &mut Vec<u8>) {
    *clock_us += rng.below(4);
    let cpu = rng.below(8) as u32;
    let roll = rng.below(10_000);
    if roll == 0 {
        writeln!(out, "CPU:{cpu} [LOST {} EVENTS]", 1 + rng.below(5000)).expect("Vec write");
        return;
    }
    let (runner, named) = match roll {
        1..=2999 => {
            let t = *rng.pick(&GNB);
            (t, t)
        }
        3000..=3999 => {
            let t = *rng.pick(&UE);
            (t, t)
        }
        // The scheduler's lines from other tasks' context may name a
        // target (`enqueue: pid=N (nr-gnb)`).
        _ => {
            let runner = *rng.pick(&OTHERS);
            let named = match rng.below(10) {
                0 => *rng.pick(&GNB),
                1 => *rng.pick(&UE),
                _ => runner,
            };
            (runner, named)
        }
    };
    header(rng, runner, cpu, *clock_us, out);
    if rng.below(50) != 0 {
        out.extend_from_slice(b"bpf_trace_printk: ");
        message(rng, runner, named, cpu, out);
    } else {
        // Other events share the stream and must be passed over.
        out.extend_from_slice(b"tracing_mark_write: frame start");
    }
    out.push(b'\n');
}

/// `%16s-%-7d [%03d] %s %5lu.%06lu: ` as the kernel prints it.
fn header(rng: &mut Rng, t: Task, cpu: u32, clock_us: u64, out: &mut Vec<u8>) {
    let flags = rng.pick(&FLAGS);
    let (secs, micros) = (clock_us / 1_000_000, clock_us % 1_000_000);
    write!(out, "{:>16}-{:<7} [{cpu:03}] {flags} {secs:>5}.{micros:06}: ", t.comm, t.tid)
        .expect("Vec write");
}

/// Starts 34202 s after boot, like the reference trace.
const START_US: u64 = 34_202_000_000;

/// `lines` lines from `seed`, written in pieces so that a corpus larger
/// than memory can go to a file.
pub fn write(out: &mut impl Write, lines: usize, seed: u64) -> io::Result<()> {
    let mut rng = Rng::new(seed);
    let mut clock = START_US;
    let mut buf = Vec::with_capacity(1 << 20);
    for n in 0..lines {
        line(&mut rng, &mut clock, &mut buf);
        if buf.len() >= (1 << 20) - 512 || n + 1 == lines {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    Ok(())
}
