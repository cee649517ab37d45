//! Hostile neighbours on the network (issue 18): clients that flood or
//! stall the servers, and servers that are not the API the daemon trusts.
//! Real parts only: the `gtp5g-operator local-api` binary, the project's
//! LocalApi in process, the daemon binary, and small axum servers that
//! play the impostor.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const FLOOD: usize = 1500;
/// The descriptor limit a unit without LimitNOFILE gets.
const UNIT_DEFAULT_NOFILE: u64 = 1024;

/// Raises this process's soft RLIMIT_NOFILE towards `want` (the flood's
/// client ends live here); the new soft limit.
fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_cur.max(want.min(lim.rlim_max));
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

/// `gtp5g-operator local-api` with the fixture key, its descriptor limit
/// set to `nofile`, listening once this returns.
struct LimitedLocalApi {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl LimitedLocalApi {
    fn spawn(nofile: u64) -> LimitedLocalApi {
        let dir = TempDir::new().unwrap();
        install_private_key(dir.path(), SERVER_PRIVATE_KEY);
        let addr = free_addr();
        let mut cmd = Command::new(BIN);
        cmd.args(["local-api", "--listen", &addr.to_string(), "--state-dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap());
        // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(move || {
                let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
                lim.rlim_cur = nofile.min(lim.rlim_max);
                match libc::setrlimit(libc::RLIMIT_NOFILE, &lim) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
        let child = cmd.spawn().unwrap();
        let up = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(up.elapsed() < Duration::from_secs(10), "local-api not listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        LimitedLocalApi { child, addr, dir }
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, Iterator::count)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// SIGTERM, then how long the process took to exit (None: not in `bound`).
    fn terminate(&mut self, bound: Duration) -> Option<Duration> {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let sent = Instant::now();
        while sent.elapsed() < bound {
            if self.child.try_wait().unwrap().is_some() {
                return Some(sent.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for LimitedLocalApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens up to `n` connections that never send a byte, for at most 20 s
/// (a server out of descriptors leaves the rest hanging in the backlog);
/// the ones that connected.
fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let started = Instant::now();
    (0..n)
        .take_while(|_| started.elapsed() < Duration::from_secs(20))
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok())
        .collect()
}

/// A client sending a request head one byte every 100 ms, forever.
fn slowloris(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut s) = TcpStream::connect(addr) else { return };
        let _ = s.write_all(b"POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\nX-Slow: ");
        while !stop.load(Relaxed) && s.write_all(b"a").is_ok() {
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// A token, then the strategy list, as a new client; how long both took.
async fn token_and_list(addr: SocketAddr, public_key: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let base = format!("http://{addr}");
    let answer: serde_json::Value = client
        .post(format!("{base}{}", gtp5g_operator::api::TOKEN_PATH))
        .json(&serde_json::json!({ "public_key": public_key }))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("token: {e}"))?
        .json()
        .await
        .map_err(|e| format!("token body: {e}"))?;
    let token = answer["token"].as_str().ok_or("no token")?.to_owned();
    client
        .get(format!("{base}{}", gtp5g_operator::api::STRATEGIES_PATH))
        .bearer_auth(token)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("list: {e}"))?;
    Ok(started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_floods_and_a_slowloris_neither_lock_out_a_client_nor_hold_up_sigterm() {
    // The flood's client ends, the server's ends and some slack.
    let nofile = raise_nofile(8192);
    if nofile < 2 * FLOOD as u64 + 200 {
        return skip_unless_live(&format!("RLIMIT_NOFILE hard limit {nofile} is below the flood"));
    }
    let mut server = LimitedLocalApi::spawn(UNIT_DEFAULT_NOFILE);
    let addr = server.addr;
    let public_key = std::fs::read_to_string(server.dir.path().join("jwt_public_key.pem")).unwrap();

    let flood = tokio::task::spawn_blocking(move || idle_connections(addr, FLOOD));
    let idle = flood.await.unwrap();
    eprintln!("idle connections opened: {}", idle.len());
    // A SYN the full accept queue drops is retried after 1 s, and a loaded
    // machine may let a few run out of time: the flood is what stays.
    assert!(idle.len() > FLOOD * 9 / 10, "the flood did not connect: {}", idle.len());
    let stop = Arc::new(AtomicBool::new(false));
    let slow = slowloris(addr, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let took = token_and_list(addr, &public_key).await;
    let fds = server.open_fds();
    eprintln!("token + list with {FLOOD} idle connections and a slowloris: {took:?}");
    eprintln!("server descriptors open under the flood: {fds} (limit {UNIT_DEFAULT_NOFILE})");
    let took = took.unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert!(took < Duration::from_secs(2), "token + list took {took:?}");

    let exited = server.terminate(Duration::from_secs(3));
    eprintln!("SIGTERM to exit with the slowloris mid-head: {exited:?}");
    assert!(exited.is_some(), "local-api still running 3 s after SIGTERM\n{}", server.log());
    stop.store(true, Relaxed);
    drop(idle);
    slow.join().unwrap();
}

/// Sends `head` and whatever body `start` holds, then reads the first
/// answer line; how long it took to arrive.
fn first_answer_line(addr: SocketAddr, head: &str, start: &[u8]) -> (String, Duration) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let sent = Instant::now();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(start).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    (text.lines().next().unwrap_or("<no answer>").to_owned(), sent.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_post_announcing_4_mb_is_refused_before_its_body() {
    let api = Api::start().await;
    let addr = api.addr;
    for auth in ["", "Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln\r\n"] {
        let head = format!(
            "POST /api/v1/scheduling/strategies HTTP/1.1\r\nHost: x\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            4 * 1024 * 1024
        );
        let (line, took) = tokio::task::spawn_blocking(move || {
            first_answer_line(addr, &head, br#"{"strategies":["#)
        })
        .await
        .unwrap();
        eprintln!("4 MB announced, {:?}: {line:?} after {took:?}", auth.trim());
        assert_eq!(line, "HTTP/1.1 401 Unauthorized");
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
    assert_eq!(*api.api.posts().borrow(), 0);
}

// ---- servers that are not the API ----

use common::faulty::{Faulty, Post, Token, SERVER_PUBLIC_KEY};

const LONG: Duration = Duration::from_secs(10);

/// The daemon against `endpoint` holding the fixture server's public key,
/// with /healthz on `metrics`, and one live nr-gnb in its trace.
fn daemon_at(endpoint: &str, metrics: SocketAddr) -> (Daemon, Target, Fifo, TempDir) {
    let dir = TempDir::new().unwrap();
    let mut fifo = Fifo::create(&dir.path().join("trace_pipe"));
    let target = Target::spawn("nr-gnb");
    fifo.write(&target.line());
    let key = std::path::Path::new(SERVER_PUBLIC_KEY);
    let mut cmd = daemon_command(endpoint, key, &fifo.path);
    cmd.arg("--metrics-listen").arg(metrics.to_string());
    (Daemon::spawn(cmd), target, fifo, dir)
}

async fn probe(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_that_cannot_sign_gets_no_strategies_and_healthz_says_why() {
    let impostor = Faulty::start(Post::Accept, Token::Forge).await;
    let metrics = free_addr();
    let (d, target, _fifo, _dir) = daemon_at(&impostor.url(), metrics);
    let said = Instant::now();
    assert!(d.wait_log("cannot sign", LONG).await, "{}", d.log_text());
    eprintln!("refused the impostor {:?} after start", said.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tokens = Faulty::n(&impostor.state.token_requests);
    eprintln!("impostor: {tokens} token requests, {} POSTs", Faulty::n(&impostor.state.posts));
    assert_eq!(Faulty::n(&impostor.state.posts), 0, "the impostor got a POST");
    assert!(tokens >= 2, "the daemon stopped trying: {tokens}");
    let log = d.log_text();
    assert!(log.contains("bad RS256 signature") && log.contains(SERVER_PUBLIC_KEY), "{log}");
    let (status, body) = probe(metrics, "/healthz").await;
    eprintln!("/healthz: {status} {body:?}");
    assert_eq!(status, 503);
    assert!(body.contains("cannot sign") && body.contains(&impostor.url()), "{body}");
    // The API's fault, not the daemon's: liveness stays, no restart.
    assert_eq!(probe(metrics, "/livez").await, (200, "ok\n".to_owned()));

    // The same server signing with the API's key is served and trusted again.
    impostor.set_token(Token::Issue);
    let want = vec![i64::from(target.pid())];
    assert!(eventually(LONG, || impostor.accepted_pids() == want).await, "{}", d.log_text());
    assert_eq!(probe(metrics, "/healthz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_307_to_another_server_is_not_followed() {
    let elsewhere = Faulty::start(Post::Accept, Token::Issue).await;
    let redirector = Faulty::start(Post::Accept, Token::Redirect(elsewhere.addr)).await;
    let (d, _target, _fifo, _dir) = daemon_at(&redirector.url(), free_addr());
    let want = format!(
        "token request {}/api/v1/auth/token: HTTP 307 redirect to {}/api/v1/auth/token: not followed",
        redirector.url(),
        elsewhere.url()
    );
    assert!(d.wait_log(&want, LONG).await, "{}", d.log_text());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let redirected = Faulty::n(&redirector.state.token_requests);
    let reached = Faulty::n(&elsewhere.state.token_requests) + Faulty::n(&elsewhere.state.posts);
    eprintln!("307s answered: {redirected}; requests that reached the other server: {reached}");
    assert!(redirected >= 2);
    assert_eq!(reached, 0, "the daemon followed the redirect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_past_the_cap_is_not_read_and_is_retried() {
    let api = Faulty::start(Post::HugeBody, Token::Issue).await;
    let (d, target, _fifo, _dir) = daemon_at(&api.url(), free_addr());
    let want = "posting strategies: unexpected answer (HTTP 200): answer larger than 64 KiB";
    assert!(d.wait_log(want, LONG).await, "{}", d.log_text());
    api.set_post(Post::Accept);
    let pids = vec![i64::from(target.pid())];
    assert!(eventually(LONG, || api.accepted_pids() == pids).await, "{}", d.log_text());
}

// ---- uninstall ----

/// What the README's Kubernetes uninstall leaves each pod with: the shipped
/// config file (the ConfigMap), `on_stop` rolled to `clear` through the
/// environment, then SIGTERM from the delete. Without the roll (the
/// shipped `keep`) the boost stays, which is why the uninstall needs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uninstall_clears_this_nodes_boosts() {
    let shipped =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/gtp5g-operator.toml");
    for (on_stop, left) in [(None, true), (Some("clear"), false)] {
        let api = Api::start().await;
        let dir = TempDir::new().unwrap();
        let mut fifo = Fifo::create(&dir.path().join("trace_pipe"));
        let target = Target::spawn("nr-gnb");
        fifo.write(&target.line());
        let mut cmd = daemon_command_with_config(&api.url(), &api.key_path(), &fifo.path, &shipped);
        if let Some(v) = on_stop {
            cmd.env("GTP5G_OPERATOR__STRATEGY__ON_STOP", v);
        }
        let mut d = Daemon::spawn(cmd);
        let pid = i64::from(target.pid());
        api.until("boosted", LONG, |p| p == [pid]).await;
        d.signal(libc::SIGTERM);
        let status = d.wait_exit(LONG).await.expect("the daemon exits on SIGTERM");
        assert!(status.success(), "{status:?}\n{}", d.log_text());
        eprintln!("on_stop {on_stop:?}: the API holds {:?} after SIGTERM", api.pids());
        assert_eq!(api.pids() == [pid], left, "on_stop {on_stop:?}: {:?}", api.pids());
    }
}
