//! End to end for today's Gthulhu on a bare-metal testbed: a live target
//! process named nr-gnb, fed to the in-process daemon through a FIFO trace
//! source, the daemon posting to the local API in its `current` schema, and
//! a poller written to the current scheduler's contract reading it. No BPF:
//! the FIFO stands in for trace_pipe (the tracer has its own live tests).

mod common;

use common::{
    config, install_private_key, start_daemon, stop_daemon, trace_line, Api, Fifo, BIN,
    SERVER_PRIVATE_KEY,
};
use gtp5g_operator::api::STRATEGIES_PATH;
use gtp5g_operator::local_api::Schema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::watch;
use tokio::time::Instant;

const LEVEL: u8 = 3;
/// The scheduler's `api.interval` (5 s by default), shortened for the test.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Generous: the property checked is "the first poll after the post", not a
/// time; this bound only stops a broken run from hanging.
const PATIENCE: Duration = Duration::from_secs(30);

/// One entry as the current scheduler decodes it: `priority` an integer (a
/// JSON `true` fails, as in its Go decoder).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Entry {
    priority: i64,
    execution_time: u64,
    pid: i64,
}

#[derive(Deserialize)]
struct Answer {
    success: bool,
    scheduling: Option<Vec<Entry>>,
}

/// The scheduler's strategy map after one poll, and when that GET was sent.
#[derive(Debug, Clone)]
struct Snapshot {
    sent_at: Instant,
    map: BTreeMap<i64, Entry>,
}

/// A poller to the current scheduler's contract ("The current Gthulhu" in
/// gthulhu-api.md): the token from `data.token`; GET once at start and then
/// every interval; the map replaced only when `success` is true and
/// `scheduling` is not null (null keeps the old map, [] clears it).
async fn spawn_scheduler(api: &Api) -> watch::Receiver<Snapshot> {
    let answer = api.request_token().await;
    let token = answer["data"]["token"].as_str().expect("token in data.token").to_owned();
    let (tx, rx) = watch::channel(Snapshot { sent_at: Instant::now(), map: BTreeMap::new() });
    let base = api.url();
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut map = BTreeMap::new();
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        loop {
            tick.tick().await;
            let sent_at = Instant::now();
            let get = client.get(format!("{base}{STRATEGIES_PATH}")).bearer_auth(&token);
            let answer = match get.send().await {
                Ok(response) => response.json::<Answer>().await.ok(),
                Err(_) => None,
            };
            if let Some(Answer { success: true, scheduling: Some(list) }) = answer {
                map = list.into_iter().map(|e| (e.pid, e)).collect();
            }
            if tx.send(Snapshot { sent_at, map: map.clone() }).is_err() {
                return;
            }
        }
    });
    rx
}

/// The first snapshot from a GET sent after `after`.
async fn first_poll_after(rx: &mut watch::Receiver<Snapshot>, after: Instant) -> Snapshot {
    let wait = async {
        loop {
            rx.changed().await.expect("the scheduler poller stopped");
            let snapshot = rx.borrow_and_update().clone();
            if snapshot.sent_at > after {
                return snapshot;
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait).await.expect("no poll within the patience bound")
}

/// Waits until the API holds exactly `pids` (in any priority), returning
/// when the test saw it: no later than that, the daemon had posted them.
async fn api_holds(api: &Api, pids: &[i64]) -> Instant {
    api.until(&format!("API holds {pids:?}"), PATIENCE, |held| held == pids).await;
    Instant::now()
}

/// A real multi-threaded process named nr-gnb: the operator's own binary
/// started through a link of that name (the kernel takes the comm from the
/// name exec'd), running its local API, whose runtime has worker threads.
struct Target {
    child: Child,
    _dir: TempDir,
}

impl Target {
    fn spawn() -> Target {
        let dir = TempDir::new().unwrap();
        let exe = dir.path().join("nr-gnb");
        std::os::unix::fs::symlink(BIN, &exe).unwrap();
        install_private_key(dir.path(), SERVER_PRIVATE_KEY);
        let child = Command::new(&exe)
            .args(["local-api", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Target { child, _dir: dir }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its thread ids, the tgid among them, from /proc, sorted.
    fn ids(&self) -> Vec<i64> {
        let task = Path::new("/proc").join(self.pid().to_string()).join("task");
        let mut ids: Vec<i64> = std::fs::read_dir(task)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Until the runtime is up: main, the signal thread and two workers.
    async fn wait_for_threads(&self) {
        let ok = common::eventually(PATIENCE, || self.ids().len() >= 4).await;
        assert!(ok, "target has threads {:?}", self.ids());
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", self.pid())).unwrap();
        assert_eq!(comm.trim_end(), "nr-gnb");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_current_scheduler_sees_the_exact_thread_ids_then_an_empty_map() {
    let api = Api::start_schema(Schema::Current { priority_level: LEVEL }).await;
    let dir = TempDir::new().unwrap();
    let mut fifo = Fifo::create(&dir.path().join("trace_pipe"));
    let (daemon, task) = start_daemon(config(&api, &fifo.path, true));
    let mut scheduler = spawn_scheduler(&api).await;

    let mut target = Target::spawn();
    target.wait_for_threads().await;
    let written = Instant::now();
    fifo.write(&trace_line("nr-gnb", target.pid(), target.pid()));
    let ids = target.ids();
    assert!(ids.contains(&i64::from(target.pid())), "{ids:?}");
    let posted = api_holds(&api, &ids).await;

    let seen = first_poll_after(&mut scheduler, posted).await;
    let want: BTreeMap<i64, Entry> = ids
        .iter()
        .map(|&pid| (pid, Entry { priority: LEVEL.into(), execution_time: 20_000_000, pid }))
        .collect();
    assert_eq!(seen.map, want, "first poll after the daemon's post");
    eprintln!(
        "target (tgid {} + {} threads) in the scheduler's map {} ms after its trace line \
         (poll interval {} ms, daemon interval 1 s, debounce 20 ms)",
        target.pid(),
        ids.len() - 1,
        seen.sent_at.duration_since(written).as_millis(),
        POLL_INTERVAL.as_millis()
    );

    target.kill();
    let emptied = api_holds(&api, &[]).await;
    let seen = first_poll_after(&mut scheduler, emptied).await;
    assert_eq!(seen.map, BTreeMap::new(), "first poll after the exit was posted");
    stop_daemon(daemon, task).await;
}
