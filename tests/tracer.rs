//! The netdev tracer itself, live: the real BPF programs, real UDP packets
//! on loopback from named threads of this test process, the real
//! trace_pipe. What is checked is what the daemon relies on: the record
//! format (unchanged with --every-event), the per-thread de-duplication
//! (default, and with a map smaller than the number of threads), the
//! RLS user-data records and the ready file. Needs root, tracefs and BPF.

mod common;

use common::tracer::Tracer;
use common::*;
use std::io::Read;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Reads trace_pipe on a thread until stopped: the lines are the ones this
/// test's tracer printed (and whatever else the kernel printed meanwhile).
struct PipeReader {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<String>>,
}

impl PipeReader {
    fn start() -> PipeReader {
        let path = gtp5g_operator::source::locate(None, false).unwrap();
        let mut pipe = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut bytes = Vec::new();
            let mut buf = vec![0u8; 1 << 16];
            // A last pass after the stop request drains what is buffered.
            let mut last = false;
            loop {
                let mut pfd =
                    libc::pollfd { fd: pipe.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, 100) };
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    bytes.extend_from_slice(&buf[..n]);
                }
                if last {
                    break;
                }
                last = flag.load(Ordering::Relaxed);
            }
            String::from_utf8_lossy(&bytes).lines().map(str::to_owned).collect()
        });
        PipeReader { stop, thread }
    }

    fn finish(self) -> Vec<String> {
        // The kernel's buffer reaches trace_pipe a moment after the event.
        thread::sleep(Duration::from_millis(300));
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// One line split as the kernel prints it: `<comm>-<pid> [<cpu>] <flags>
/// <ts>: bpf_trace_printk: <message>`.
struct Line<'a> {
    comm: &'a str,
    pid: u32,
    cpu: u32,
    /// The flags and timestamp, which no test can predict.
    middle: &'a str,
    message: &'a str,
}

fn split(line: &str) -> Option<Line<'_>> {
    let (head, message) = line.split_once(": bpf_trace_printk: ")?;
    let open = head.find(" [")?;
    let (task, rest) = head[..open].trim().rsplit_once('-')?;
    let close = head.find("] ")?;
    Some(Line {
        comm: task,
        pid: rest.trim().parse().ok()?,
        cpu: head[open + 2..close].parse().ok()?,
        middle: &head[close + 2..],
        message,
    })
}

/// The messages of thread `tid`, in order.
fn messages_of(lines: &[String], tid: u32) -> Vec<&str> {
    lines.iter().filter_map(|l| split(l)).filter(|l| l.pid == tid).map(|l| l.message).collect()
}

fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// A GTP-U G-PDU with a 20-byte inner packet: the size gtpu-traffic sends,
/// so the DEV lines' LEN match the recorded fixture.
fn gpdu(teid: u32) -> Vec<u8> {
    let mut p = vec![0x30, 0xff, 0, 20];
    p.extend_from_slice(&teid.to_be_bytes());
    p.extend_from_slice(&[0x45; 20]);
    p
}

/// An RLS message as UERANSIM builds it: magic 3, version 3.2.6, type,
/// sender id; PDU_TRANSMISSION (6) adds the PDU type, id, payload field,
/// length and the PDU.
fn rls(msg_type: u8, pdu_type: u8, psi: u32, pdu: &[u8]) -> Vec<u8> {
    let mut p = vec![3, 3, 2, 6, msg_type];
    p.extend_from_slice(&0x1122_3344_5566_7788u64.to_be_bytes());
    match msg_type {
        6 => {
            p.push(pdu_type);
            p.extend_from_slice(&9u32.to_be_bytes());
            p.extend_from_slice(&psi.to_be_bytes());
            p.extend_from_slice(&(pdu.len() as u32).to_be_bytes());
            p.extend_from_slice(pdu);
        }
        4 => p.extend_from_slice(&[0; 12]), // heartbeat: 25 bytes
        _ => p.extend_from_slice(&[0; 4]),  // acks: 17 bytes
    }
    p
}

/// Runs `send` on a new thread named `name` (its comm); returns its tid.
fn sender(name: &str, send: impl FnOnce(&UdpSocket) + Send + 'static) -> JoinHandle<u32> {
    thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            send(&sock);
            gettid()
        })
        .unwrap()
}

/// Sends G-PDUs to 127.0.0.1:2152 every `every` until `until`.
fn gtpu_until(sock: &UdpSocket, teid: u32, every: Duration, until: Instant) -> u32 {
    let mut sent = 0;
    while Instant::now() < until {
        sock.send_to(&gpdu(teid), "127.0.0.1:2152").unwrap();
        sent += 1;
        thread::sleep(every);
    }
    sent
}

/// Timestamps (s) of the egress records of `tid`.
fn egress_times(lines: &[String], tid: u32) -> Vec<f64> {
    lines
        .iter()
        .filter_map(|l| split(l))
        .filter(|l| l.pid == tid && l.message.starts_with("tp/net_dev_queue: DEV="))
        .map(|l| l.middle.split_whitespace().last().unwrap().trim_end_matches(':').parse().unwrap())
        .collect()
}

fn records_of(lines: &[String], tid: u32) -> usize {
    messages_of(lines, tid).iter().filter(|m| m.contains(": DEV=")).count()
}

/// Skips (or fails under GTP5G_REQUIRE_LIVE=1) where BPF cannot run.
fn live() -> Option<std::fs::File> {
    if let Some(why) = missing_live_capability() {
        skip_unless_live(&why);
        return None;
    }
    Some(lock_trace_pipe())
}

#[test]
fn every_event_prints_todays_records_byte_for_byte() {
    let Some(_lock) = live() else { return };
    // The recorded fixture holds today's records; thread 13128 of process
    // 13125 sent TEID 0x1000 with this size, egress then ingress.
    let fixture = std::fs::read_to_string(fixture("live-netdev.trace")).unwrap();
    let template: Vec<&str> =
        fixture.lines().filter(|l| l.contains("nr-gnb-13128 ")).take(8).collect();
    assert_eq!(template.len(), 8);

    // A TEID of this run's own, to tell its ingress records from others'
    // traffic when ksoftirqd runs them.
    let teid = 0x7e50_0000 | (std::process::id() & 0xffff);
    let tracer = Tracer::start(&["--every-event"]);
    let reader = PipeReader::start();
    let packets = 3;
    let tid = sender("dp-evt", move |s| {
        for _ in 0..packets {
            s.send_to(&gpdu(teid), "127.0.0.1:2152").unwrap();
            thread::sleep(Duration::from_millis(20));
        }
    })
    .join()
    .unwrap();
    let lines = reader.finish();
    let (printed, suppressed) = tracer.stop();

    let pid = std::process::id();
    let mine: Vec<&String> =
        lines.iter().filter(|l| split(l).is_some_and(|s| s.pid == tid)).collect();
    let egress: Vec<&&String> = mine.iter().filter(|l| l.contains("tp/net_dev_queue:")).collect();
    assert_eq!(egress.len(), 4 * packets, "egress lines of {tid}: {mine:#?}");
    // Ingress runs in this thread's softirq on loopback, unless ksoftirqd
    // takes it: then those records are another task's, checked by count.
    let ingress_here = mine.len() - egress.len();
    let ingress_elsewhere = lines
        .iter()
        .filter(|l| l.contains(&format!("tp/netif_receive_skb: TEID={teid:#x},")))
        .filter(|l| split(l).is_some_and(|s| s.pid != tid))
        .count();
    assert_eq!(ingress_here / 4 + ingress_elsewhere, packets, "ingress: {lines:#?}");
    assert_eq!(ingress_here % 4, 0);

    for chunk in mine.chunks(4) {
        let offset = if chunk[0].contains("tp/net_dev_queue:") { 0 } else { 4 };
        for (got, want) in chunk.iter().zip(&template[offset..offset + 4]) {
            let g = split(got).unwrap();
            let w = split(want).unwrap();
            let want_header = format!("{:>16}-{:<7} [{:03}] ", w.comm, w.pid, w.cpu);
            assert!(want.starts_with(&want_header), "fixture header shape: {want:?}");
            let message = w
                .message
                .replace(
                    "PID=13128, TGID=13125, CPU=1",
                    &format!("PID={tid}, TGID={pid}, CPU={}", g.cpu),
                )
                .replace("COMM=nr-gnb", "COMM=dp-evt")
                .replace("TEID=0x1000,", &format!("TEID={teid:#x},"));
            // The header's comm is the kernel's, not the tracer's: looked up
            // by pid in its saved-cmdlines cache when trace_pipe is read, so
            // `<...>` when uncached or a stale name when a pid's slot was
            // reused. Everything else in the line is compared exactly.
            let expected = format!(
                "{:>16}-{:<7} [{:03}] {}: bpf_trace_printk: {message}",
                g.comm, tid, g.cpu, g.middle
            );
            assert_eq!(got.as_str(), expected);
        }
    }
    assert_eq!(suppressed, 0, "--every-event suppressed events");
    assert!(printed >= 2 * packets as u64, "printed {printed}");
}

#[test]
fn default_prints_a_busy_thread_once_per_refresh_period() {
    let Some(_lock) = live() else { return };
    let tracer = Tracer::start(&[]);
    let reader = PipeReader::start();
    let run = Duration::from_millis(3500);
    let until = Instant::now() + run;
    let sent = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let count = sent.clone();
    let tid = sender("dp-busy", move |s| {
        count.store(gtpu_until(s, 0x2000, Duration::from_millis(2), until), Ordering::Relaxed)
    })
    .join()
    .unwrap();
    let lines = reader.finish();
    let (printed, suppressed) = tracer.stop();

    let times = egress_times(&lines, tid);
    let sent = sent.load(Ordering::Relaxed);
    eprintln!(
        "sent {sent} packets in {run:?}; printed records of {tid}: {} at {times:?}; \
         tracer counts printed={printed} suppressed={suppressed}",
        records_of(&lines, tid)
    );
    // First sight, then at most once a second: 4 in 3.5 s.
    assert!((3..=4).contains(&records_of(&lines, tid)), "records: {lines:#?}");
    for pair in times.windows(2) {
        // The kernel counts the period in jiffies (HZ >= 100 gives 10 ms).
        assert!(pair[1] - pair[0] >= 0.99, "printed again after {} s", pair[1] - pair[0]);
    }
    assert!(suppressed as u32 + 4 >= sent, "suppressed {suppressed} of {sent} packets");
}

#[test]
fn small_lru_map_keeps_working_when_more_threads_pass_than_it_holds() {
    let Some(_lock) = live() else { return };
    let map_size = 8;
    let threads = 48;
    let tracer = Tracer::start(&["--map-size", &map_size.to_string(), "--refresh-ms", "500"]);
    let reader = PipeReader::start();
    let until = Instant::now() + Duration::from_millis(2600);
    let steady = sender("dp-steady", move |s| {
        gtpu_until(s, 0x3000, Duration::from_millis(5), until);
    });
    // Short-lived threads, four at a time, each sending twice 700 ms apart
    // (past the refresh period, after many other threads went through the
    // map), so each must be printed on first sight and again after refresh.
    let mut churn = Vec::new();
    for wave in 0..threads / 4 {
        let batch: Vec<_> = (0..4)
            .map(|i| {
                sender("dp-churn", move |s| {
                    let teid = 0x4000 + wave * 4 + i;
                    for _ in 0..3 {
                        s.send_to(&gpdu(teid), "127.0.0.1:2152").unwrap();
                    }
                    thread::sleep(Duration::from_millis(700));
                    s.send_to(&gpdu(teid), "127.0.0.1:2152").unwrap();
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(30));
        churn.extend(batch);
    }
    let churn_tids: Vec<u32> = churn.into_iter().map(|h| h.join().unwrap()).collect();
    let steady_tid = steady.join().unwrap();
    let lines = reader.finish();
    let (printed, suppressed) = tracer.stop();

    let distinct: std::collections::HashSet<u32> = churn_tids.iter().copied().collect();
    eprintln!("{} distinct churn threads through a map of {map_size}", distinct.len());
    assert!(distinct.len() > 2 * map_size);
    for &tid in &churn_tids {
        let times = egress_times(&lines, tid);
        // First burst, then the send after 700 ms (> refresh).
        assert!(times.len() >= 2, "thread {tid} printed {times:?}");
        assert!(times[times.len() - 1] - times[0] >= 0.5, "thread {tid} printed {times:?}");
    }
    let steady_records = records_of(&lines, steady_tid);
    eprintln!(
        "steady thread {steady_tid}: {steady_records} records in 2.6 s at refresh 500 ms; \
         tracer counts printed={printed} suppressed={suppressed}"
    );
    // About 6: a thread evicted by the churn prints early once more, but
    // a map that stopped working would print each of its ~500 packets.
    assert!((5..=12).contains(&steady_records), "steady records: {steady_records}");
    assert!(suppressed > 0);
}

#[test]
fn rls_user_data_is_printed_and_signalling_is_not() {
    let Some(_lock) = live() else { return };
    let tracer = Tracer::start(&["--every-event"]);
    let reader = PipeReader::start();
    let tid = sender("dp-rls", |v4| {
        let v6 = UdpSocket::bind("[::1]:0").unwrap();
        let inner = [0x45u8; 84];
        for (sock, gnb) in [(v4, "127.0.0.1:4997"), (&v6, "[::1]:4997")] {
            sock.send_to(&rls(4, 0, 0, &[]), gnb).unwrap(); // heartbeat
            sock.send_to(&rls(5, 0, 0, &[]), gnb).unwrap(); // heartbeat ack
            sock.send_to(&rls(7, 0, 0, &[]), gnb).unwrap(); // PDU ack
            sock.send_to(&rls(6, 1, 0, &[0x20; 30]), gnb).unwrap(); // RRC
            sock.send_to(&rls(6, 2, 5, &inner), gnb).unwrap(); // user data
        }
    })
    .join()
    .unwrap();
    let lines = reader.finish();
    tracer.stop();

    let messages = messages_of(&lines, tid);
    let pid = std::process::id();
    let egress: Vec<&str> =
        messages.iter().copied().filter(|m| m.starts_with("tp/net_dev_queue:")).collect();
    // IPv4 then IPv6: 14 (Ethernet, on egress) + 20 or 40 (IP) + 8 (UDP)
    // + 26 (RLS header) + 84 (the PDU).
    assert_eq!(
        egress,
        [
            "tp/net_dev_queue: DEV=lo, LEN=152",
            "tp/net_dev_queue: RLS=DATA, PSI=5, LEN=84",
            format!("tp/net_dev_queue: PID={tid}, TGID={pid}, CPU={}", cpu_of(&lines, tid, 2))
                .as_str(),
            "tp/net_dev_queue: COMM=dp-rls",
            "tp/net_dev_queue: DEV=lo, LEN=172",
            "tp/net_dev_queue: RLS=DATA, PSI=5, LEN=84",
            format!("tp/net_dev_queue: PID={tid}, TGID={pid}, CPU={}", cpu_of(&lines, tid, 6))
                .as_str(),
            "tp/net_dev_queue: COMM=dp-rls",
        ],
        "all of {tid}: {messages:#?}"
    );
    // Whatever ingress ran in this thread is the same two data packets.
    let dev_lines = messages.iter().filter(|m| m.contains(": DEV=")).count();
    let data_lines = messages.iter().filter(|m| m.contains(": RLS=DATA, PSI=5, LEN=84")).count();
    assert_eq!(dev_lines, data_lines, "a signalling packet was printed: {messages:#?}");
}

/// GTP-U signalling on port 2152 is not user plane: echo requests and
/// responses, error indications and end markers print nothing, in either
/// mode; a G-PDU from the same thread does. The default mode would print a
/// thread on its first packet, so one thread sends only signalling there.
#[test]
fn gtpu_signalling_is_not_printed_only_g_pdus_are() {
    let Some(_lock) = live() else { return };
    let signalling = |s: &UdpSocket| {
        for msg_type in [1u8, 2, 26, 254] {
            let mut p = gpdu(0x6000 + u32::from(msg_type));
            p[1] = msg_type;
            s.send_to(&p, "127.0.0.1:2152").unwrap();
        }
    };
    for args in [&["--every-event"][..], &[]] {
        let tracer = Tracer::start(args);
        let reader = PipeReader::start();
        let quiet = sender("dp-sig", move |s| signalling(s)).join().unwrap();
        let mixed = sender("dp-sig-data", move |s| {
            signalling(s);
            s.send_to(&gpdu(0x6fff), "127.0.0.1:2152").unwrap();
        })
        .join()
        .unwrap();
        let lines = reader.finish();
        tracer.stop();
        assert_eq!(messages_of(&lines, quiet), Vec::<&str>::new(), "{args:?}: {lines:#?}");
        let egress: Vec<&str> = messages_of(&lines, mixed)
            .into_iter()
            .filter(|m| m.starts_with("tp/net_dev_queue: TEID="))
            .collect();
        assert_eq!(egress, ["tp/net_dev_queue: TEID=0x6fff, TYPE=255"], "{args:?}: {lines:#?}");
    }
}

/// The CPU of the `n`th egress line of `tid` (its header's).
fn cpu_of(lines: &[String], tid: u32, n: usize) -> u32 {
    lines
        .iter()
        .filter_map(|l| split(l))
        .filter(|l| l.pid == tid && l.message.starts_with("tp/net_dev_queue:"))
        .nth(n)
        .map_or(u32::MAX, |l| l.cpu)
}

/// The tracer's own options are checked before anything is loaded: no root
/// needed, a message naming the option, exit status 2.
#[test]
fn bad_tracer_options_exit_2_naming_the_option() {
    for (args, named) in [
        (&["--refresh-ms", "0"][..], "--refresh-ms"),
        (&["--map-size", "0"], "--map-size"),
        (&["--map-size", "99999999"], "--map-size"),
        (&["--rls-port", "70000"], "--rls-port"),
        (&["--port", "-1"], "--port"),
    ] {
        let out = Command::new(tracer_binary("gtp5g-tracer")).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(named) && err.contains("invalid value"), "{args:?}: {err}");
    }
}

/// One load per mode still says, probe by probe, what attached and why not:
/// here fentry has no gtp5g module to attach to; netdev attaches egress
/// only when de-duplicated, both hooks with --every-event.
#[test]
fn one_load_per_mode_keeps_the_per_probe_report() {
    if let Some(why) = missing_live_capability() {
        return skip_unless_live(&why);
    }
    let out =
        Command::new(tracer_binary("gtp5g-tracer")).args(["--mode", "fentry"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if std::path::Path::new("/sys/kernel/btf/gtp5g").exists() {
        eprintln!("gtp5g is loaded here: the fentry report is not checked\n{text}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{text}");
        let why = "not attached: no BTF for module gtp5g";
        assert_eq!(text.lines().filter(|l| l.contains(why)).count(), 13, "{text}");
    }
    let _lock = lock_trace_pipe();
    for (args, lines) in [
        (
            &[][..],
            [
                "gtp5g-tracer: tp/net_dev_queue: attached",
                "gtp5g-tracer: tp/netif_receive_skb: not attached: only with --every-event",
                "gtp5g-tracer: 1 probes attached (mode netdev, de-duplicated)",
            ],
        ),
        (
            &["--every-event"],
            [
                "gtp5g-tracer: tp/net_dev_queue: attached",
                "gtp5g-tracer: tp/netif_receive_skb: attached",
                "gtp5g-tracer: 2 probes attached (mode netdev, every event)",
            ],
        ),
    ] {
        let tracer = Tracer::start(args);
        let report = tracer.report.clone();
        tracer.stop();
        for line in lines {
            assert!(report.contains(line), "{args:?}: {line:?} not in {report}");
        }
    }
}

/// `--ready-file`: written once every probe is attached (a packet sent the
/// moment it exists is traced), one JSON line saying what is attached, no
/// temporary left beside it, gone when the tracer exits.
#[test]
fn ready_file_comes_after_the_probes_and_goes_with_the_tracer() {
    let Some(_lock) = live() else { return };
    for (args, dedup) in [(&["--every-event"][..], false), (&[], true)] {
        let reader = PipeReader::start();
        let tracer = Tracer::start(args);
        let tid = sender("dp-ready", |s| {
            s.send_to(&gpdu(0x5000), "127.0.0.1:2152").unwrap();
        })
        .join()
        .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&tracer.ready).unwrap();
        let attached = tracer.report.lines().filter(|l| l.ends_with(": attached")).count();
        assert_eq!(
            ready,
            serde_json::json!({"mode": "netdev", "probes": attached, "dedup": dedup}),
            "{args:?}: {}",
            tracer.ready
        );
        assert!(tracer.ready.ends_with("}\n") && tracer.ready.lines().count() == 1);
        let path = tracer.ready_file().to_owned();
        let tmp = path.with_file_name("tracer.ready.tmp");
        assert!(!tmp.exists(), "{} left behind", tmp.display());
        tracer.stop();
        assert!(!path.exists(), "{} still there after the tracer exited", path.display());
        let lines = reader.finish();
        let egress = egress_times(&lines, tid).len();
        assert_eq!(egress, 1, "{args:?}: the packet sent once ready: {lines:#?}");
    }
}

/// A ready file that cannot be written is an error naming it: exit 1, no
/// temporary left behind.
#[test]
fn unwritable_ready_file_fails_naming_it() {
    let Some(_lock) = live() else { return };
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("no-such-dir/tracer.ready");
    let out = Command::new(tracer_binary("gtp5g-tracer"))
        .args(["--mode", "netdev", "--ready-file"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("--ready-file {}", path.display())), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
    assert!(!path.with_file_name("tracer.ready.tmp").exists());
}
