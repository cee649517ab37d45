//! Faults, bad input and secrets, each against real parts: the daemon
//! binary, live target processes, FIFOs, the project's LocalApi and a real
//! HTTP server that misbehaves on purpose (tests/common/faulty.rs). After
//! every fault the API must hold exactly the right set.

mod common;

use common::faulty::{Faulty, Post, Token, SERVER_PUBLIC_KEY};
use common::*;
use gtp5g_operator::clock::unix_secs;
use gtp5g_operator::pipeline::Pipeline;
use gtp5g_operator::track::procfs::NoProc;
use gtp5g_operator::track::{Limits, Targets, Tracker};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(10);

/// A FIFO already holding one live nr-gnb's trace line.
struct Scene {
    dir: TempDir,
    fifo: Fifo,
    target: Target,
}

fn scene() -> Scene {
    let dir = TempDir::new().unwrap();
    let mut fifo = Fifo::create(&dir.path().join("trace_pipe"));
    let target = Target::spawn("nr-gnb");
    fifo.write(&target.line());
    Scene { dir, fifo, target }
}

impl Scene {
    fn want(&self) -> Vec<i64> {
        vec![self.target.pid() as i64]
    }
}

fn faulty_daemon(f: &Faulty, s: &Scene) -> Daemon {
    Daemon::spawn(daemon_command(&f.url(), std::path::Path::new(SERVER_PUBLIC_KEY), &s.fifo.path))
}

/// Prints how long `what` took since `since`, and fails when that reached
/// `bound`. Bounds are generous for a loaded 2-core machine: the printed
/// figure is the measurement, the bound only catches a broken mechanism.
fn within(since: Instant, bound: Duration, what: &str) {
    let took = since.elapsed();
    eprintln!("{what}: {took:?}");
    assert!(took < bound, "{what}: {took:?}, not within {bound:?}");
}

/// Every `retry_in_ms=N` the daemon logged.
fn retry_waits(log: &str) -> Vec<u64> {
    log.split("retry_in_ms=")
        .skip(1)
        .filter_map(|t| t.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_down_at_start_backs_off_then_delivers_as_soon_as_it_is_up() {
    let s = scene();
    let mut api = Api::new(free_addr());
    let d = Daemon::spawn(daemon_command(&api.url(), &api.key_path(), &s.fifo.path));
    assert!(d.wait_log("sending strategies failed", LONG).await, "no failure logged");
    assert!(eventually(LONG, || d.count("sending strategies failed") >= 4).await);
    let waits = retry_waits(&d.log_text());
    eprintln!("retry waits while down (ms): {waits:?}");
    // Doubling from 500 ms, jittered to 50-100 %, capped at api.retry_max_s = 1 s.
    assert!(waits.iter().all(|&w| (250..=1000).contains(&w)), "{waits:?}");
    assert!(waits.windows(2).any(|w| w[0] != w[1]), "no jitter: {waits:?}");
    assert!(d.log_text().contains("Connection refused"), "cause not logged");

    api.serve().await;
    let up = Instant::now();
    assert!(eventually(LONG, || api.pids() == s.want()).await, "not delivered: {:?}", api.pids());
    // An uncapped backoff would be past 8 s by now.
    within(up, Duration::from_secs(5), "delivered after the API came up (backoff cap 1 s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_restart_gets_the_list_back_within_one_interval() {
    let s = scene();
    let mut api = Api::start().await;
    let _d = Daemon::spawn(daemon_command(&api.url(), &api.key_path(), &s.fifo.path));
    assert!(eventually(LONG, || api.pids() == s.want()).await);
    api.restart().await;
    assert_eq!(api.pids(), Vec::<i64>::new(), "restarted server starts empty");
    let restarted = Instant::now();
    assert!(eventually(LONG, || api.pids() == s.want()).await);
    // The default interval (10 s) would miss it.
    within(restarted, Duration::from_secs(5), "list restored after the restart (interval 1 s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_500_and_hangs_are_logged_and_retried_one_request_at_a_time() {
    let s = scene();
    let f = Faulty::start(Post::Status500, Token::Issue).await;
    let d = faulty_daemon(&f, &s);
    assert!(d.wait_log("HTTP 500: database on fire", LONG).await, "status and body not logged");
    assert!(eventually(LONG, || Faulty::n(&f.state.posts) >= 3).await, "not retried");

    f.set_post(Post::Hang);
    let before = Faulty::n(&f.state.posts);
    assert!(d.wait_log("(timed out)", LONG).await, "timeout not logged");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = Faulty::n(&f.state.posts) - before;
    eprintln!(
        "posts during 3+ s of hanging: {during}; max concurrent: {}",
        Faulty::n(&f.state.max_in_flight)
    );
    // 500 ms timeout + 250-1000 ms backoff each: 2 to 4, and a loaded
    // machine may manage fewer; never a pile.
    assert!((1..=8).contains(&during), "{during}");

    f.set_post(Post::Accept);
    assert!(eventually(LONG, || f.accepted_pids() == s.want()).await);
    assert_eq!(Faulty::n(&f.state.max_in_flight), 1, "requests piled up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_means_one_reauthentication_and_a_retry() {
    let s = scene();
    let f = Faulty::start(Post::Accept, Token::Issue).await;
    let d = faulty_daemon(&f, &s);
    assert!(eventually(LONG, || f.accepted_pids() == s.want()).await);
    assert_eq!(Faulty::n(&f.state.tokens_issued), 1);

    f.invalidate_token();
    *f.state.accepted.lock().unwrap() = None;
    assert!(eventually(LONG, || f.accepted_pids() == s.want()).await, "not re-sent after the 401");
    assert_eq!(Faulty::n(&f.state.tokens_issued), 2, "exactly one re-authentication");
    assert_eq!(Faulty::n(&f.state.unauthorized), 1, "exactly one refused POST");
    assert!(d.log_text().contains("re-authenticating once"));
    assert!(!d.log_text().contains("sending strategies failed"), "the retry hid the 401");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_is_named_and_retried_slowly() {
    let s = scene();
    let f = Faulty::start(Post::Accept, Token::RejectKey).await;
    let d = faulty_daemon(&f, &s);
    let want = format!("the API rejected the public key {SERVER_PUBLIC_KEY}: HTTP 401");
    assert!(d.wait_log(&want, LONG).await, "{}", d.log_text());
    let first = Faulty::n(&f.state.token_requests);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let attempts = Faulty::n(&f.state.token_requests) - first;
    eprintln!("token requests in 3 s with the key rejected: {attempts}");
    // Still retried, at the backoff's pace (a loaded machine may manage one).
    assert!((1..=8).contains(&attempts), "{attempts}");

    f.set_token(Token::Issue);
    assert!(eventually(LONG, || f.accepted_pids() == s.want()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_with_a_body_that_is_not_json_is_a_failure_and_retried() {
    let s = scene();
    let f = Faulty::start(Post::BadBody, Token::Issue).await;
    let d = faulty_daemon(&f, &s);
    assert!(d.wait_log("unexpected answer (HTTP 200)", LONG).await);
    assert!(d.log_text().contains("<html>maintenance</html>"), "body not shown");
    assert!(eventually(LONG, || Faulty::n(&f.state.posts) >= 3).await, "not retried");
    f.set_post(Post::Accept);
    assert!(eventually(LONG, || f.accepted_pids() == s.want()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca_works_only_with_api_ca_file() {
    let mut s = scene();
    let pki_dir = TempDir::new().unwrap();
    let pki = tls::make_pki(pki_dir.path());
    let f = Faulty::start_tls(tls::acceptor(&pki)).await;
    let url = format!("https://{}", f.addr);
    let key = std::path::Path::new(SERVER_PUBLIC_KEY);

    let untrusting = Daemon::spawn(daemon_command(&url, key, &s.fifo.path));
    assert!(untrusting.wait_log("sending strategies failed", LONG).await);
    let log = untrusting.log_text();
    assert!(
        log.contains(&format!("token request {url}"))
            && log.contains("invalid peer certificate: UnknownIssuer"),
        "{log}"
    );
    assert_eq!(f.accepted_pids(), Vec::<i64>::new());
    drop(untrusting);

    // The first daemon consumed the line.
    s.fifo.write(&s.target.line());
    let mut cmd = daemon_command(&url, key, &s.fifo.path);
    cmd.env("GTP5G_OPERATOR__API__CA_FILE", &pki.ca);
    let _trusting = Daemon::spawn(cmd);
    assert!(eventually(LONG, || f.accepted_pids() == s.want()).await, "not delivered over TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_trace_pipe_is_reported_and_retried_until_it_appears() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("later/trace_pipe");
    let api = Api::start().await;
    let d = Daemon::spawn(daemon_command(&api.url(), &api.key_path(), &path));
    let want = format!("opening {}: No such file or directory", path.display());
    assert!(d.wait_log(&want, LONG).await, "{}", d.log_text());
    assert_eq!(d.count("trace source unavailable"), 1, "said once, not per retry");

    std::fs::create_dir(path.parent().unwrap()).unwrap();
    let mut fifo = Fifo::create(&path);
    let target = Target::spawn("nr-gnb");
    fifo.write(&target.line());
    let created = Instant::now();
    assert!(eventually(LONG, || api.pids() == vec![target.pid() as i64]).await);
    // Two full backoff periods and then some.
    within(created, Duration::from_secs(6), "delivered after the pipe appeared (backoff cap 2 s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_eof_is_reopened_with_backoff_and_no_busy_loop() {
    let mut s = scene();
    let api = Api::start().await;
    let d = Daemon::spawn(daemon_command(&api.url(), &api.key_path(), &s.fifo.path));
    assert!(eventually(LONG, || api.pids() == s.want()).await);

    s.fifo.close_writer();
    assert!(d.wait_log("writer closed the FIFO", LONG).await);
    let cpu_before = d.cpu_ticks();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu = d.cpu_ticks() - cpu_before;
    eprintln!("daemon CPU over 5 s with the writer gone: {cpu} ticks of 10 ms");
    assert!(cpu <= 10, "{cpu} ticks: busy loop?");

    let second = Target::spawn("nr-ue");
    s.fifo.write(&second.line());
    let mut want = vec![s.target.pid() as i64, second.pid() as i64];
    want.sort_unstable();
    assert!(eventually(LONG, || api.pids() == want).await, "not reopened: {:?}", api.pids());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exited_targets_drop_out_and_a_non_target_pid_is_never_boosted() {
    let mut s = scene();
    let api = Api::start().await;
    let other = Target::spawn("nr-ue");
    // A real process that is not a target, under a line that claims nr-gnb.
    let imposter = Target::spawn("sleepy");
    s.fifo.write(&other.line());
    s.fifo.write(&trace_line("nr-gnb", imposter.pid(), imposter.pid()));
    let d = Daemon::spawn(daemon_command(&api.url(), &api.key_path(), &s.fifo.path));
    let mut both = vec![s.target.pid() as i64, other.pid() as i64];
    both.sort_unstable();
    assert!(eventually(LONG, || api.pids() == both).await, "{:?}", api.pids());

    // Past the start-up debounce, so that only the periodic refresh can notice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.target.kill();
    let killed = Instant::now();
    assert!(eventually(LONG, || api.pids() == vec![other.pid() as i64]).await);
    // The default interval (10 s) would miss it.
    within(killed, Duration::from_secs(5), "exited pid dropped from the API (interval 1 s)");

    let sent: Vec<String> = d
        .log_text()
        .lines()
        .filter(|l| l.contains("strategies in force"))
        .map(str::to_string)
        .collect();
    assert!(!sent.is_empty());
    for l in &sent {
        let pids = l.split("pids=[").nth(1).unwrap().split(']').next().unwrap();
        assert!(
            !pids.split(", ").any(|p| p == imposter.pid().to_string()),
            "imposter boosted: {l}"
        );
    }
}

#[test]
fn a_flood_of_distinct_target_pids_stays_bounded_and_is_counted() {
    let limits = Limits { max_processes: 1024, max_threads: 16384 };
    let mut tracker = Tracker::new(Targets::new(&["nr-gnb"]), limits, NoProc);
    let mut pipeline = Pipeline::new(4096);
    const N: u32 = 100_000;
    let text: String = (1..=N).map(|p| trace_line("nr-gnb", p, p)).collect();
    for chunk in text.as_bytes().chunks(4096) {
        pipeline.push(chunk, &mut tracker);
    }
    let counts = pipeline.take_counts();
    let st = tracker.stats();
    eprintln!(
        "{N} pids: {} processes, {} threads tracked, {} dropped",
        st.processes, st.threads, st.dropped
    );
    assert_eq!(counts.events, u64::from(N));
    assert!(st.processes <= limits.max_processes && st.threads <= limits.max_threads);
    assert_eq!(
        st.dropped,
        u64::from(N) - st.processes as u64,
        "every pid beyond the bound is counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_post_in_flight_exits_zero_within_the_drain_deadline() {
    let s = scene();
    let f = Faulty::start(Post::Hang, Token::Issue).await;
    let mut cmd = daemon_command(&f.url(), std::path::Path::new(SERVER_PUBLIC_KEY), &s.fifo.path);
    cmd.env("GTP5G_OPERATOR__API__TIMEOUT_MS", "60000");
    let mut d = Daemon::spawn(cmd);
    assert!(eventually(LONG, || Faulty::n(&f.state.posts) == 1).await, "no POST in flight");
    d.signal(libc::SIGTERM);
    let sent = Instant::now();
    // The daemon abandons the POST after DRAIN; the margin is for a loaded machine.
    let status = d.wait_exit(gtp5g_operator::daemon::DRAIN + Duration::from_secs(5)).await;
    let took = sent.elapsed();
    eprintln!("exit {status:?} {took:?} after SIGTERM with a hung POST (drain 5 s)");
    assert_eq!(status.map(|s| s.code()), Some(Some(0)), "{}", d.log_text());
    assert!(d.log_text().contains("abandoned a POST still in flight"));
    assert!(!PathBuf::from(format!("/proc/{}", d.pid())).exists(), "process left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_an_invalid_config_keeps_the_old_one() {
    let s = scene();
    let api = Api::start().await;
    let config = s.dir.path().join("config.toml");
    std::fs::write(&config, "[strategy]\ninterval_s = 1\n").unwrap();
    let mut cmd = daemon_command_with_config(&api.url(), &api.key_path(), &s.fifo.path, &config);
    cmd.env_remove("GTP5G_OPERATOR__STRATEGY__INTERVAL_S");
    let d = Daemon::spawn(cmd);
    assert!(eventually(LONG, || api.pids() == s.want()).await);

    std::fs::write(&config, "[strategy]\ninterval_s = 0\n").unwrap();
    d.signal(libc::SIGHUP);
    assert!(d.wait_log("reload rejected", LONG).await);
    assert!(
        d.log_text().contains("config key `strategy.interval_s`: must be greater than zero"),
        "{}",
        d.log_text()
    );
    let posts = api.api.posts();
    let before = *posts.borrow();
    assert!(eventually(LONG, || *posts.borrow() >= before + 2).await, "stopped posting");
    assert_eq!(api.pids(), s.want());
}

/// `run` with a bad configuration: non-zero exit before doing anything,
/// and stderr names the key.
fn rejected(toml: &str, key_path: &std::path::Path) -> (Option<i32>, String) {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, toml).unwrap();
    let out = daemon_command_with_config(
        "http://127.0.0.1:9",
        key_path,
        &dir.path().join("pipe"),
        &config,
    )
    .env_remove("GTP5G_OPERATOR__STRATEGY__INTERVAL_S")
    .output()
    .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_config_is_rejected_before_start_naming_the_key() {
    let key = std::path::Path::new(SERVER_PUBLIC_KEY);
    let dir = TempDir::new().unwrap();
    let cases: [(&str, &std::path::Path, &str); 5] = [
        ("[api]\nendpont = \"http://x\"\n", key, "endpont"),
        ("[strategy]\ninterval_s = 0\n", key, "strategy.interval_s"),
        ("[strategy]\ninterval_s = -5\n", key, "interval_s"),
        ("", dir.path(), "api.public_key_path"),
        ("", key, "api.endpoint"),
    ];
    for (toml, key_path, want) in cases {
        let (code, stderr) = if want == "api.endpoint" {
            let out =
                daemon_command("not a url", key_path, &dir.path().join("pipe")).output().unwrap();
            (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
        } else {
            rejected(toml, key_path)
        };
        eprintln!("{want}: exit {code:?}: {}", stderr.trim());
        assert_eq!(code, Some(1), "{want}: {stderr}");
        assert!(stderr.contains(want) && stderr.contains("error"), "{want}: {stderr}");
    }
}

/// The token LocalApi issues at `now`: same claims, same key, and RS256 is
/// deterministic. (Checked against a token fetched over HTTP below.)
fn local_api_token(now: u64) -> String {
    // Field order is the server's: it decides the signed bytes.
    #[derive(serde::Serialize)]
    struct Claims {
        client_id: &'static str,
        exp: u64,
        iat: u64,
        nbf: u64,
        iss: &'static str,
        sub: &'static str,
    }
    let claims = Claims {
        client_id: "gthulhu-client",
        exp: now + TOKEN_LIFETIME.as_secs(),
        iat: now,
        nbf: now,
        iss: "bss-api-server",
        sub: "gthulhu-client",
    };
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(SERVER_PRIVATE_KEY.as_bytes()).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwt_never_appears_in_trace_level_logs() {
    let s = scene();
    let api = Api::start().await;
    // Our reconstruction of the server's token must be exact, or the check
    // below proves nothing.
    let fetched = loop {
        let before = unix_secs();
        let body = api.request_token().await;
        if unix_secs() == before {
            break (before, body["token"].as_str().unwrap().to_string());
        }
    };
    assert_eq!(local_api_token(fetched.0), fetched.1);

    let start = unix_secs();
    let mut cmd = daemon_command(&api.url(), &api.key_path(), &s.fifo.path);
    cmd.env("RUST_LOG", "trace");
    let mut d = Daemon::spawn(cmd);
    assert!(eventually(LONG, || api.pids() == s.want()).await);
    let posts = api.api.posts();
    let before = *posts.borrow();
    assert!(eventually(LONG, || *posts.borrow() >= before + 2).await);
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(LONG).await.is_some());
    let end = unix_secs();

    let log = d.log_text();
    eprintln!("trace log: {} lines, {} bytes", log.lines().count(), log.len());
    // reqwest's and hyper-util's own TRACE lines are in; header dumps are
    // not (reqwest's connection_verbose is off, hyper's tracing is a cfg).
    assert!(
        log.contains("obtained API token")
            && log.contains("TRACE hyper_util")
            && log.contains("TRACE reqwest"),
        "not a trace-level log:\n{log}"
    );
    for second in start.saturating_sub(1)..=end {
        assert!(
            !log.contains(&local_api_token(second)),
            "the token issued at {second} is in the log"
        );
    }
    // Any JWT (or a piece of one) starts its header with base64 of `{"`.
    assert!(!log.contains("eyJ"), "JWT-looking text in the log");
    assert!(!log.to_ascii_lowercase().contains("bearer "), "an Authorization header in the log");
}

// ---- Bad input: property tests over the parse + track path ----

mod bad_input {
    use super::*;
    use gtp5g_operator::parse::LineBuffer;
    use gtp5g_operator::stats::Counts;
    use gtp5g_operator::track::TrackedProcess;
    use proptest::prelude::*;

    const MAX_LINE: usize = 512;

    fn fixtures() -> Vec<Vec<u8>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "trace"))
            .collect();
        paths.sort();
        assert!(paths.len() >= 5, "fixtures missing");
        paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// Feeds `data` cut at `cuts` (offsets, any order) and returns what a
    /// replay reports; asserts the bounds after every chunk.
    fn run(data: &[u8], cuts: &[usize]) -> (Counts, Vec<TrackedProcess>, Vec<u32>) {
        let limits = Limits { max_processes: 64, max_threads: 256 };
        let mut tracker = Tracker::new(Targets::new(&["nr-gnb", "nr-ue"]), limits, NoProc);
        let mut pipeline = Pipeline::new(MAX_LINE);
        let mut lines = LineBuffer::new(MAX_LINE);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort_unstable();
        let mut at = 0;
        for end in cuts.into_iter().chain([data.len()]) {
            let chunk = &data[at..end];
            pipeline.push(chunk, &mut tracker);
            lines.push(chunk, |l| assert!(l.len() <= MAX_LINE));
            assert!(lines.pending_len() <= MAX_LINE, "{} pending", lines.pending_len());
            at = end;
        }
        pipeline.finish(&mut tracker);
        let counts = pipeline.take_counts();
        assert_eq!(counts.parsed + counts.malformed, counts.lines);
        let s = tracker.stats();
        assert!(s.processes <= limits.max_processes && s.threads <= limits.max_threads);
        (counts, tracker.processes(), tracker.pids(true))
    }

    /// A real line with a few bytes flipped, cut short, or spliced.
    fn mutate(line: &[u8], edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
        let mut l = line.to_vec();
        for &(at, b) in edits {
            if l.is_empty() {
                break;
            }
            let i = at % l.len();
            if b % 3 == 0 {
                l.insert(i, b)
            } else {
                l[i] = b
            }
        }
        if let Some(c) = cut {
            l.truncate(c % (l.len() + 1));
        }
        l
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn a_fixture_in_any_chunks_replays_the_same(which in 0usize..64, cuts in proptest::collection::vec(0usize..100_000, 0..40)) {
            let all = fixtures();
            let data = &all[which % all.len()];
            prop_assert_eq!(run(data, &cuts), run(data, &[]));
        }

        #[test]
        fn random_bytes_never_panic_nor_exceed_the_line_bound(
            data in proptest::collection::vec(any::<u8>(), 0..8192),
            cuts in proptest::collection::vec(0usize..8192, 0..20),
        ) {
            run(&data, &cuts);
        }

        #[test]
        fn mutated_real_lines_never_panic_nor_exceed_the_line_bound(
            picks in proptest::collection::vec((0usize..10_000, proptest::collection::vec((0usize..400, any::<u8>()), 0..4), proptest::option::of(0usize..400)), 1..40),
            cuts in proptest::collection::vec(0usize..20_000, 0..20),
        ) {
            let real: Vec<Vec<u8>> = fixtures().iter().flat_map(|f| f.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect::<Vec<_>>()).collect();
            let mut data = Vec::new();
            for (i, edits, cut) in &picks {
                data.extend(mutate(&real[i % real.len()], edits, *cut));
                data.push(b'\n');
            }
            run(&data, &cuts);
        }
    }
}
