//! Golden tests: every tests/fixtures/*.trace replayed through the daemon's
//! reader and pipeline must give its *.expected.json (processes found,
//! counts, and the exact strategy list).

use gtp5g_operator::config::{Config, Purpose, Sources};
use gtp5g_operator::replay::replay;
use std::path::{Path, PathBuf};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "trace"))
        .collect();
    out.sort();
    out
}

fn defaults() -> Config {
    Config::load(&Sources::default(), Purpose::Replay).unwrap()
}

#[test]
fn every_fixture_matches_its_golden_output() {
    let cfg = defaults();
    let all = fixtures();
    assert!(all.len() >= 6, "fixtures missing: {all:?}");
    for trace in all {
        let golden = trace.with_extension("expected.json");
        let expected: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&golden).unwrap_or_else(|e| panic!("{}: {e}", golden.display())),
        )
        .unwrap();
        let got = serde_json::to_value(replay(&trace, &cfg).unwrap()).unwrap();
        assert_eq!(got, expected, "{}", trace.display());
    }
}

fn pids(name: &str) -> Vec<i64> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    replay(&path, &defaults()).unwrap().strategies.iter().map(|s| s.pid).collect()
}

// The facts recorded with each shared trace (../shared/traces/README.md),
// checked independently of the golden files.
#[test]
fn known_processes_of_the_shared_recordings() {
    assert_eq!(pids("netdev-gtpu.trace"), vec![10012, 10013, 10135, 10136, 10137, 10138, 10139]);
    assert_eq!(
        pids("netdev-gtpu-record-tgid.trace"),
        vec![10147, 10148, 10270, 10271, 10272, 10274, 10275]
    );
    assert_eq!(pids("netdev-gtpu-no-irq-info.trace"), vec![10303, 10344]);
    assert_eq!(pids("netdev-unknown-comm-no-COMM-line.trace"), Vec::<i64>::new());
    assert_eq!(pids("step11-testbed.trace"), vec![365012, 365189, 1150348, 1150369]);
    // Recorded on this machine (tests/fixtures/live-netdev.md); the
    // bystander process 13127 / thread 13133 must not appear.
    assert_eq!(pids("live-netdev.trace"), vec![13125, 13126, 13128, 13129, 13130, 13131, 13132]);
    // ran-sim (tests/fixtures/live-ransim.md): nr-ue 21656 / 21658 from RLS
    // records alone; not the UPF stand-in ran-sim 21650 / 21664 (GTP-U), nor
    // the idle nr-ue 21660, which is in no line.
    assert_eq!(pids("live-ransim.trace"), vec![21651, 21653, 21656, 21658]);
    assert_eq!(pids("live-ransim-default.trace"), vec![21749, 21751, 21754, 21756]);
}

// Each netdev record has exactly one TEID or RLS line: the per-protocol
// counters must match a plain count of those lines.
#[test]
fn gtpu_and_rls_records_are_counted_per_protocol() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/live-ransim.trace");
    let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
    let count = |key: &str| text.lines().filter(|l| l.contains(key)).count() as u64;
    let c = replay(&path, &defaults()).unwrap().counts;
    assert_eq!((c.gtpu_records, c.rls_records), (count(": TEID="), count(": RLS=")));
    assert!(c.rls_records > 0, "the ran-sim recording has RLS records");
}

#[test]
fn quirks_fixture_counts_lost_skipped_malformed_and_oversized() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/header-quirks.trace");
    let r = replay(&path, &defaults()).unwrap();
    assert_eq!(r.counts.lost_events, 1240);
    assert_eq!(r.counts.oversized, 1);
    assert_eq!(r.counts.malformed, 2);
    assert_eq!(r.counts.skipped, 2);
    let pids: Vec<i64> = r.strategies.iter().map(|s| s.pid).collect();
    assert_eq!(
        pids,
        vec![4656, 4781, 4782, 4800, 4801],
        "not nr-gnb-helper (4790), nor bash with DEV=nr-gnb0 (4791)"
    );
}

#[test]
fn processes_only_option_sends_process_ids() {
    let mut cfg = defaults();
    cfg.targets.threads = false;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/netdev-gtpu.trace");
    let pids: Vec<i64> = replay(&path, &cfg).unwrap().strategies.iter().map(|s| s.pid).collect();
    assert_eq!(pids, vec![10012, 10013]);
}

#[test]
fn replay_of_a_missing_file_is_a_clear_error() {
    let e = replay(Path::new("/nonexistent/x.trace"), &defaults()).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/x.trace"), "{e}");
}
