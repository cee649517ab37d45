//! The local Gthulhu API server against the contract in
//! `gthulhu-api.md`, over real HTTP.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gtp5g_operator::api::{Strategy, HEALTH_PATH, STRATEGIES_PATH, TOKEN_PATH};
use gtp5g_operator::local_api::{run, LocalApi, LocalApiError, LocalApiOptions};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const FIXTURE_PRIVATE_KEY: &str = include_str!("fixtures/server_private_key.pem");
const OTHER_PUBLIC_KEY: &str = include_str!("fixtures/other_public_key.pem");
const EC_PUBLIC_KEY: &str = include_str!("fixtures/ec_public_key.pem");
const DAY: Duration = Duration::from_secs(24 * 3600);

struct Server {
    api: LocalApi,
    base: String,
    client: reqwest::Client,
    dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

/// A server on an ephemeral port whose state dir holds the fixture key, so
/// tests do not pay for RSA key generation.
async fn start() -> Server {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("jwt_private_key.pem"), FIXTURE_PRIVATE_KEY).unwrap();
    start_in(dir).await
}

async fn start_in(dir: TempDir) -> Server {
    let api = LocalApi::open(dir.path(), DAY).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn({
        let api = api.clone();
        async move {
            api.serve(listener, async {
                let _ = rx.await;
            })
            .await
        }
    });
    Server { api, base, client: reqwest::Client::new(), dir, shutdown: Some(tx), task }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn strategy(pid: i64) -> Value {
    json!({"priority": true, "execution_time": 20_000_000, "pid": pid})
}

/// Status and parsed body, after checking the framing every JSON answer of
/// the real server has.
async fn json_reply(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    assert_eq!(response.headers()["content-type"], "application/json", "status {status}");
    let text = response.text().await.unwrap();
    assert!(text.ends_with("}\n"), "body not JSON + newline: {text:?}");
    (status, serde_json::from_str(&text).unwrap())
}

fn assert_timestamp(value: &Value) {
    let stamp = value.as_str().unwrap();
    let bytes = stamp.as_bytes();
    assert_eq!(bytes.len(), 20, "{stamp}");
    assert!(stamp.starts_with("20") && stamp.ends_with('Z'), "{stamp}");
    assert_eq!((bytes[4], bytes[7], bytes[10]), (b'-', b'-', b'T'), "{stamp}");
    assert_eq!((bytes[13], bytes[16]), (b':', b':'), "{stamp}");
}

fn assert_failure(status: StatusCode, body: &Value, want_status: StatusCode, prefix: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with(prefix), "{error:?} lacks {prefix:?}");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn request_token(&self, public_key: &str) -> reqwest::Response {
        self.client
            .post(self.url(TOKEN_PATH))
            .json(&json!({ "public_key": public_key }))
            .send()
            .await
            .unwrap()
    }

    async fn token(&self) -> String {
        let (status, body) = json_reply(self.request_token(self.api.public_key_pem()).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    async fn post_raw(
        &self,
        auth: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.post(self.url(STRATEGIES_PATH)).body(body);
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        json_reply(request.send().await.unwrap()).await
    }

    async fn post(&self, strategies: Value) -> (StatusCode, Value) {
        let auth = format!("Bearer {}", self.token().await);
        self.post_raw(Some(&auth), json!({ "strategies": strategies }).to_string()).await
    }

    async fn get_with(&self, auth: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.client.get(self.url(STRATEGIES_PATH));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        json_reply(request.send().await.unwrap()).await
    }

    async fn get(&self) -> Value {
        let auth = format!("Bearer {}", self.token().await);
        let (status, body) = self.get_with(Some(&auth)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    fn sign(&self, claims: &Value) -> String {
        let key = std::fs::read(self.dir.path().join("jwt_private_key.pem")).unwrap();
        let key = EncodingKey::from_rsa_pem(&key).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).unwrap()
    }

    async fn stop(mut self) {
        self.shutdown.take().unwrap().send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

// ---- token ----

#[tokio::test]
async fn token_is_an_rs256_jwt_with_the_contract_claims() {
    let server = start().await;
    let before = unix_now();
    let (status, body) = json_reply(server.request_token(server.api.public_key_pem()).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Token generated successfully");
    assert_timestamp(&body["timestamp"]);
    assert!(body.get("error").is_none());

    let token = body["token"].as_str().unwrap();
    assert_eq!(jsonwebtoken::decode_header(token).unwrap().alg, Algorithm::RS256);
    let key = DecodingKey::from_rsa_pem(server.api.public_key_pem().as_bytes()).unwrap();
    let claims = jsonwebtoken::decode::<Value>(token, &key, &Validation::new(Algorithm::RS256))
        .unwrap()
        .claims;
    assert_eq!(claims["iss"], "bss-api-server");
    let iat = claims["iat"].as_u64().unwrap();
    assert!((before..=unix_now()).contains(&iat), "iat {iat}");
    assert_eq!(claims["nbf"].as_u64(), Some(iat));
    assert_eq!(claims["exp"].as_u64(), Some(iat + DAY.as_secs()));
    assert!(claims["client_id"].is_string() && claims["sub"].is_string(), "{claims}");
}

#[tokio::test]
async fn tokens_issued_in_the_same_second_are_identical() {
    let server = start().await;
    let key = DecodingKey::from_rsa_pem(server.api.public_key_pem().as_bytes()).unwrap();
    let iat = |token: &str| {
        jsonwebtoken::decode::<Value>(token, &key, &Validation::new(Algorithm::RS256))
            .unwrap()
            .claims["iat"]
            .as_u64()
            .unwrap()
    };
    // A pair can straddle a second boundary; a few tries make one land inside.
    for _ in 0..5 {
        let (a, b) = (server.token().await, server.token().await);
        if iat(&a) == iat(&b) {
            assert_eq!(a, b);
            return;
        }
    }
    panic!("never got two tokens within one second");
}

#[tokio::test]
async fn token_request_that_is_not_json_is_400() {
    let server = start().await;
    for body in ["not json", "", "{\"public_key\": 5}"] {
        let response = server.client.post(server.url(TOKEN_PATH)).body(body).send().await.unwrap();
        let (status, reply) = json_reply(response).await;
        assert_failure(status, &reply, StatusCode::BAD_REQUEST, "Invalid JSON format: ");
    }
}

#[tokio::test]
async fn token_refused_for_foreign_garbage_or_non_rsa_keys() {
    let server = start().await;
    for key in [OTHER_PUBLIC_KEY, "garbage", EC_PUBLIC_KEY, ""] {
        let (status, body) = json_reply(server.request_token(key).await).await;
        assert_failure(status, &body, StatusCode::UNAUTHORIZED, "Public key verification failed: ");
    }
}

#[tokio::test]
async fn token_refusals_say_why() {
    let server = start().await;
    for (key, reason) in [
        (OTHER_PUBLIC_KEY, "public key does not match the server's key"),
        (EC_PUBLIC_KEY, "key is not an RSA public key"),
        ("garbage", "failed to decode PEM block containing public key"),
    ] {
        let (_, body) = json_reply(server.request_token(key).await).await;
        assert_eq!(body["error"], format!("Public key verification failed: {reason}"));
    }
}

#[tokio::test]
async fn token_key_compared_by_value_not_text() {
    let server = start().await;
    let crlf = format!("\n  {}\n\n", server.api.public_key_pem().replace('\n', "\r\n"));
    let (status, body) = json_reply(server.request_token(&crlf).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---- auth ----

#[tokio::test]
async fn missing_authorization_is_401_required() {
    let server = start().await;
    let (status, body) = server.get_with(None).await;
    assert_failure(status, &body, StatusCode::UNAUTHORIZED, "");
    assert_eq!(body["error"], "Authorization header is required");
    let (status, body) = server.post_raw(None, "{}").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "Authorization header is required");
}

#[tokio::test]
async fn authorization_without_exact_bearer_prefix_is_401() {
    let server = start().await;
    let token = server.token().await;
    for auth in [
        format!("bearer {token}"),
        format!("Token {token}"),
        "Bearer ".to_owned(),
        "Bearer".to_owned(),
    ] {
        let (status, body) = server.get_with(Some(&auth)).await;
        assert_failure(status, &body, StatusCode::UNAUTHORIZED, "");
        assert_eq!(body["error"], "Authorization header must start with 'Bearer '", "for {auth:?}");
    }
}

#[tokio::test]
async fn expired_token_is_401_with_golang_jwt_wording() {
    let server = start().await;
    let now = unix_now();
    let token = server.sign(&json!({
        "iss": "bss-api-server", "iat": now - 100, "nbf": now - 100, "exp": now - 10,
    }));
    let (status, body) = server.get_with(Some(&format!("Bearer {token}"))).await;
    assert_failure(status, &body, StatusCode::UNAUTHORIZED, "");
    assert_eq!(
        body["error"],
        "Invalid or expired token: token has invalid claims: token is expired"
    );
}

#[tokio::test]
async fn signed_token_without_exp_is_accepted() {
    let server = start().await;
    let token = server.sign(&json!({"iss": "bss-api-server", "client_id": "x"}));
    let (status, body) = server.get_with(Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn malformed_foreign_or_wrong_algorithm_tokens_are_401() {
    let server = start().await;
    let now = unix_now();
    let claims = json!({"exp": now + 600});
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(server.api.public_key_pem().as_bytes()),
    )
    .unwrap();
    let real = server.token().await;
    let mut parts: Vec<&str> = real.split('.').collect();
    let other = server.sign(&json!({"exp": now + 1}));
    parts[2] = other.split('.').nth(2).unwrap();
    let spliced = parts.join(".");
    for token in ["garbage", hs256.as_str(), spliced.as_str()] {
        let (status, body) = server.get_with(Some(&format!("Bearer {token}"))).await;
        assert_failure(status, &body, StatusCode::UNAUTHORIZED, "Invalid or expired token: ");
    }
}

// ---- strategies ----

#[tokio::test]
async fn get_before_any_post_is_null() {
    let server = start().await;
    let auth = format!("Bearer {}", server.token().await);
    let response = server
        .client
        .get(server.url(STRATEGIES_PATH))
        .header("Authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(text.contains("\"scheduling\":null"), "{text}");
    assert_eq!(server.api.strategies(), None);
}

#[tokio::test]
async fn post_replaces_the_whole_list() {
    let server = start().await;
    let (status, body) = server.post(json!([strategy(1), strategy(2)])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Scheduling strategies saved successfully");
    assert_timestamp(&body["timestamp"]);

    server.post(json!([strategy(3)])).await;
    let body = server.get().await;
    assert_eq!(body["scheduling"], json!([strategy(3)]));
    assert_eq!(body["success"], true);
    assert_timestamp(&body["timestamp"]);
}

#[tokio::test]
async fn get_preserves_order_and_drops_pid_zero_and_selector_entries() {
    let server = start().await;
    let selector = json!({"priority": true, "execution_time": 5,
        "selectors": [{"key": "app", "value": "ueransim"}], "command_regex": "nr-gnb"});
    let zero = json!({"priority": true, "execution_time": 5, "pid": 0});
    server.post(json!([strategy(30), zero, strategy(10), selector, strategy(20)])).await;
    let body = server.get().await;
    assert_eq!(body["scheduling"], json!([strategy(30), strategy(10), strategy(20)]));
    let pids: Vec<i64> = server.api.strategies().unwrap().iter().map(|s| s.pid).collect();
    assert_eq!(pids, [30, 10, 20]);
}

#[tokio::test]
async fn list_of_only_dropped_entries_reads_as_null() {
    let server = start().await;
    server.post(json!([{"priority": false, "execution_time": 1}])).await;
    assert_eq!(server.get().await["scheduling"], Value::Null);
    server.post(json!([])).await;
    assert_eq!(server.get().await["scheduling"], Value::Null);
}

#[tokio::test]
async fn strategies_are_decoded_strictly_by_type() {
    let server = start().await;
    server.post(json!([strategy(1)])).await;
    let auth = format!("Bearer {}", server.token().await);
    for bad in [
        r#"{"strategies":[{"priority":true,"execution_time":1,"pid":"123"}]}"#,
        r#"{"strategies":[{"priority":1,"execution_time":1,"pid":1}]}"#,
        r#"{"strategies":[{"priority":true,"execution_time":-1,"pid":1}]}"#,
        r#"{"strategies":"#,
        "",
    ] {
        let (status, body) = server.post_raw(Some(&auth), bad).await;
        assert_failure(status, &body, StatusCode::BAD_REQUEST, "Invalid request payload: ");
    }
    assert_eq!(*server.api.posts().borrow(), 1, "a refused POST counted");
    assert_eq!(server.get().await["scheduling"], json!([strategy(1)]));
}

#[tokio::test]
async fn trailing_data_and_unknown_fields_are_ignored() {
    let server = start().await;
    let auth = format!("Bearer {}", server.token().await);
    let body = r#"{"strategies":[{"priority":true,"execution_time":20000000,"pid":4,"weight":9}],
        "extra":{"a":1}} trailing {garbage"#;
    let (status, reply) = server.post_raw(Some(&auth), body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(server.get().await["scheduling"], json!([strategy(4)]));
}

#[tokio::test]
async fn first_get_after_post_recalculates_later_ones_use_cache() {
    let server = start().await;
    server.post(json!([strategy(1)])).await;
    let recalculated = "Scheduling strategies recalculated due to pod changes";
    let cached = "Scheduling strategies retrieved from cache";
    assert_eq!(server.get().await["message"], recalculated);
    assert_eq!(server.get().await["message"], cached);
    assert_eq!(server.get().await["message"], cached);
    server.post(json!([strategy(2)])).await;
    assert_eq!(server.get().await["message"], recalculated);
    assert_eq!(server.get().await["message"], cached);
}

#[tokio::test]
async fn posts_counter_moves_on_each_successful_post() {
    let server = start().await;
    let mut posts = server.api.posts();
    assert_eq!(*posts.borrow_and_update(), 0);
    server.post(json!([strategy(8)])).await;
    tokio::time::timeout(Duration::from_secs(5), posts.changed()).await.unwrap().unwrap();
    assert_eq!(*posts.borrow_and_update(), 1);
    let expected = Strategy {
        priority: true,
        execution_time: 20_000_000,
        pid: 8,
        selectors: vec![],
        command_regex: String::new(),
    };
    assert_eq!(server.api.strategies(), Some(vec![expected]));
}

#[tokio::test]
async fn oversized_body_is_413() {
    let server = start().await;
    let auth = format!("Bearer {}", server.token().await);
    let huge = format!(r#"{{"strategies":[],"pad":"{}"}}"#, "x".repeat(5 * 1024 * 1024));
    let (status, body) = server.post_raw(Some(&auth), huge).await;
    assert_failure(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "");
}

// ---- other paths and methods ----

#[tokio::test]
async fn health_reports_healthy() {
    let server = start().await;
    let response = server.client.get(server.url(HEALTH_PATH)).send().await.unwrap();
    let (status, body) = json_reply(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["service"], "BSS Metrics API Server");
    assert_timestamp(&body["timestamp"]);
}

#[tokio::test]
async fn options_is_200_with_cors_on_any_path_without_auth() {
    let server = start().await;
    for path in [STRATEGIES_PATH, TOKEN_PATH, HEALTH_PATH, "/no/such/path"] {
        let response =
            server.client.request(Method::OPTIONS, server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], "*", "{path}");
        for name in ["access-control-allow-methods", "access-control-allow-headers"] {
            assert!(headers.contains_key(name), "{path} lacks {name}");
        }
        let allowed = headers["access-control-allow-headers"].to_str().unwrap();
        assert!(allowed.contains("Authorization"), "{allowed}");
    }
}

#[tokio::test]
async fn wrong_method_on_known_path_is_405_with_empty_body() {
    let server = start().await;
    for (method, path) in [
        (Method::GET, TOKEN_PATH),
        (Method::DELETE, STRATEGIES_PATH),
        (Method::PUT, STRATEGIES_PATH),
        (Method::POST, HEALTH_PATH),
    ] {
        let response =
            server.client.request(method.clone(), server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(response.text().await.unwrap(), "", "{method} {path}");
    }
}

#[tokio::test]
async fn unknown_path_is_plain_text_404() {
    let server = start().await;
    for path in ["/", "/api/v1/nothing", "/api/v1/scheduling/strategies/extra"] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert_eq!(response.text().await.unwrap().trim_end(), "404 page not found");
    }
}

// ---- key files and lifecycle ----

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn key_pair_is_generated_once_and_reused() {
    let dir = TempDir::new().unwrap();
    let state = dir.path().join("nested/state");
    let first = LocalApi::open(&state, DAY).unwrap();
    let private = state.join("jwt_private_key.pem");
    assert_eq!(mode(&private), 0o600);
    let private_text = std::fs::read_to_string(&private).unwrap();
    assert!(private_text.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(first.public_key_path(), state.join("jwt_public_key.pem"));
    let public_text = std::fs::read_to_string(first.public_key_path()).unwrap();
    assert!(public_text.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(public_text, first.public_key_pem());

    let second = LocalApi::open(&state, DAY).unwrap();
    assert_eq!(second.public_key_pem(), first.public_key_pem());
    assert_eq!(std::fs::read_to_string(&private).unwrap(), private_text);
}

#[test]
fn missing_or_stale_public_key_file_is_rewritten_from_the_private_key() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("jwt_private_key.pem"), FIXTURE_PRIVATE_KEY).unwrap();
    let api = LocalApi::open(dir.path(), DAY).unwrap();
    let expected = api.public_key_pem().to_owned();

    std::fs::write(api.public_key_path(), OTHER_PUBLIC_KEY).unwrap();
    let api = LocalApi::open(dir.path(), DAY).unwrap();
    assert_eq!(std::fs::read_to_string(api.public_key_path()).unwrap(), expected);

    std::fs::remove_file(api.public_key_path()).unwrap();
    let api = LocalApi::open(dir.path(), DAY).unwrap();
    assert_eq!(std::fs::read_to_string(api.public_key_path()).unwrap(), expected);
}

#[test]
fn unreadable_private_key_is_an_error() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("jwt_private_key.pem"), "not a key").unwrap();
    let err = LocalApi::open(dir.path(), DAY).err().unwrap();
    assert!(matches!(err, LocalApiError::KeyParse { .. }), "{err}");
}

#[tokio::test]
async fn token_from_a_generated_key_works_end_to_end() {
    let server = start_in(TempDir::new().unwrap()).await;
    server.post(json!([strategy(5)])).await;
    assert_eq!(server.get().await["scheduling"], json!([strategy(5)]));
}

#[tokio::test]
async fn serve_stops_on_shutdown() {
    let server = start().await;
    server.post(json!([strategy(1)])).await;
    tokio::time::timeout(Duration::from_secs(5), server.stop()).await.unwrap();
}

#[tokio::test]
async fn run_reports_a_busy_port_and_stops_on_shutdown() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("jwt_private_key.pem"), FIXTURE_PRIVATE_KEY).unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let opts = LocalApiOptions {
        listen: busy.local_addr().unwrap(),
        state_dir: dir.path().to_owned(),
        token_duration: DAY,
    };
    let err = run(opts.clone(), async {}).await.unwrap_err();
    assert!(matches!(err, LocalApiError::Bind { .. }), "{err}");

    drop(busy);
    let opts = LocalApiOptions { listen: "127.0.0.1:0".parse().unwrap(), ..opts };
    tokio::time::timeout(Duration::from_secs(5), run(opts, async {})).await.unwrap().unwrap();
}

#[test]
fn default_options_are_loopback_8081_and_a_day() {
    let opts = LocalApiOptions::default();
    assert_eq!(opts.listen, "127.0.0.1:8081".parse().unwrap());
    assert_eq!(opts.state_dir, Path::new("/var/lib/gtp5g-operator"));
    assert_eq!(opts.token_duration, DAY);
}
