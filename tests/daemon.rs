//! The daemon end to end, in process: a recorded trace in, the project's
//! local Gthulhu API (a real HTTP server on 127.0.0.1) out. The recorded
//! processes do not live on this machine, so /proc checks are off here.

mod common;

use common::*;
use gtp5g_operator::api::Strategy;
use std::time::Duration;

fn golden_strategies(name: &str) -> Vec<Strategy> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture(name)).unwrap()).unwrap();
    serde_json::from_value(v["strategies"].clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_fixture_overwrites_what_the_api_held() {
    let mut api = Api::start().await;
    // Someone else's stale list: the daemon's POST replaces it whole.
    api.post_as_other_client(424242).await;
    let (tx, task) = start_daemon(config(&api, &fixture("netdev-gtpu.trace"), false));
    let want = golden_strategies("netdev-gtpu.expected.json");
    assert_eq!(want.len(), 7);
    api.expect(&want, Duration::from_secs(5)).await;
    stop_daemon(tx, task).await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_api_with_a_rotated_key_gets_the_list_back() {
    let mut api = Api::start().await;
    let (tx, task) = start_daemon(config(&api, &fixture("live-netdev.trace"), false));
    let want = golden_strategies("live-netdev.expected.json");
    api.expect(&want, Duration::from_secs(5)).await;

    // A new server key (as after a redeploy): the cached token now gets a
    // 401, and the daemon re-authenticates with the key file, which the
    // restarted server rewrote.
    api.stop().await;
    std::fs::remove_file(api.state_dir().join("jwt_private_key.pem")).unwrap();
    api.restart().await;
    assert_eq!(api.api.strategies(), None, "a restart loses the list");
    api.expect(&want, Duration::from_secs(5)).await;
    stop_daemon(tx, task).await;
    api.stop().await;
}
