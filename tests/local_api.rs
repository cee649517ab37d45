//! The local Gthulhu API server against the contract in
//! `gthulhu-api.md`, over real HTTP. Every contract test runs once per
//! schema (`NAME::v0`, `NAME::current`): the two share the key pair, auth
//! rules and error bodies, and differ where the test asks the server.

mod common;

use common::local_api::LocalApiProcess as Cli;
use common::{BIN, SERVER_PRIVATE_KEY};
use gtp5g_operator::clock::unix_secs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use gtp5g_operator::api::{Strategy, HEALTH_PATH, METRICS_PATH, STRATEGIES_PATH, TOKEN_PATH};
use gtp5g_operator::local_api::{run, LocalApi, LocalApiError, LocalApiOptions, Schema};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const OTHER_PUBLIC_KEY: &str = include_str!("fixtures/other_public_key.pem");
const EC_PUBLIC_KEY: &str = include_str!("fixtures/ec_public_key.pem");
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Not the default level, so that a test sees the setting at work.
const CURRENT: Schema = Schema::Current { priority_level: 7 };

/// `NAME::v0` and `NAME::current` for each `async fn NAME(schema)`.
macro_rules! for_both_schemas {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test]
            async fn v0() {
                super::$test(super::Schema::V0).await
            }
            #[tokio::test]
            async fn current() {
                super::$test(super::CURRENT).await
            }
        }
    )+};
}

struct Server {
    schema: Schema,
    api: LocalApi,
    base: String,
    client: reqwest::Client,
    dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

/// A server on an ephemeral port whose state dir holds the fixture key, so
/// tests do not pay for RSA key generation.
async fn start(schema: Schema) -> Server {
    let dir = TempDir::new().unwrap();
    common::install_private_key(dir.path(), SERVER_PRIVATE_KEY);
    start_in(dir, schema).await
}

async fn start_in(dir: TempDir, schema: Schema) -> Server {
    let api = LocalApi::open_schema(dir.path(), DAY, schema).unwrap();
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
    Server { schema, api, base, client: reqwest::Client::new(), dir, shutdown: Some(tx), task }
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
        self.token_in(&body).to_owned()
    }

    /// Where each schema puts the token: top level (v0.1) or in `data`.
    fn token_in<'a>(&self, body: &'a Value) -> &'a str {
        let token = match self.schema {
            Schema::V0 => &body["token"],
            Schema::Current { .. } => &body["data"]["token"],
        };
        token.as_str().unwrap_or_else(|| panic!("no token where {:?} puts it: {body}", self.schema))
    }

    /// How a GET shows a posted `strategy(pid)`.
    fn served(&self, pid: i64) -> Value {
        match self.schema {
            Schema::V0 => strategy(pid),
            Schema::Current { priority_level } => {
                json!({"priority": priority_level, "execution_time": 20_000_000, "pid": pid})
            }
        }
    }

    fn served_list(&self, pids: &[i64]) -> Value {
        pids.iter().map(|&p| self.served(p)).collect()
    }

    /// How a GET shows "nothing in force": `null` (v0.1) or `[]` (current,
    /// whose scheduler keeps its old map on `null`).
    fn served_empty(&self) -> Value {
        match self.schema {
            Schema::V0 => Value::Null,
            Schema::Current { .. } => json!([]),
        }
    }

    async fn post_raw(
        &self,
        auth: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        self.post_raw_to(STRATEGIES_PATH, auth, body).await
    }

    async fn post_raw_to(
        &self,
        path: &str,
        auth: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.post(self.url(path)).body(body);
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

async fn token_is_an_rs256_jwt_with_the_contract_claims(schema: Schema) {
    let server = start(schema).await;
    let before = unix_secs();
    let (status, body) = json_reply(server.request_token(server.api.public_key_pem()).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    assert_timestamp(&body["timestamp"]);
    assert!(body.get("error").is_none());
    let members: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    match schema {
        Schema::V0 => {
            assert_eq!(body["message"], "Token generated successfully");
            assert_eq!(members, ["message", "success", "timestamp", "token"], "{body}");
        }
        Schema::Current { .. } => {
            assert_eq!(members, ["data", "success", "timestamp"], "{body}");
            assert_eq!(body["data"].as_object().unwrap().len(), 2, "{body}");
        }
    }

    let token = server.token_in(&body);
    assert_eq!(jsonwebtoken::decode_header(token).unwrap().alg, Algorithm::RS256);
    let key = DecodingKey::from_rsa_pem(server.api.public_key_pem().as_bytes()).unwrap();
    let claims = jsonwebtoken::decode::<Value>(token, &key, &Validation::new(Algorithm::RS256))
        .unwrap()
        .claims;
    assert_eq!(claims["iss"], "bss-api-server");
    let iat = claims["iat"].as_u64().unwrap();
    assert!((before..=unix_secs()).contains(&iat), "iat {iat}");
    assert_eq!(claims["nbf"].as_u64(), Some(iat));
    assert_eq!(claims["exp"].as_u64(), Some(iat + DAY.as_secs()));
    if let Schema::Current { .. } = schema {
        assert_eq!(body["data"]["expired_at"], claims["exp"], "{body}");
    }
    assert!(claims["client_id"].is_string() && claims["sub"].is_string(), "{claims}");
}

async fn tokens_issued_in_the_same_second_are_identical(schema: Schema) {
    let server = start(schema).await;
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

async fn token_request_that_is_not_json_is_400(schema: Schema) {
    let server = start(schema).await;
    for body in ["not json", "", "{\"public_key\": 5}"] {
        let response = server.client.post(server.url(TOKEN_PATH)).body(body).send().await.unwrap();
        let (status, reply) = json_reply(response).await;
        assert_failure(status, &reply, StatusCode::BAD_REQUEST, "Invalid JSON format: ");
    }
}

async fn token_refused_for_foreign_garbage_or_non_rsa_keys(schema: Schema) {
    let server = start(schema).await;
    for key in [OTHER_PUBLIC_KEY, "garbage", EC_PUBLIC_KEY, ""] {
        let (status, body) = json_reply(server.request_token(key).await).await;
        assert_failure(status, &body, StatusCode::UNAUTHORIZED, "Public key verification failed: ");
    }
}

async fn token_refusals_say_why(schema: Schema) {
    let server = start(schema).await;
    for (key, reason) in [
        (OTHER_PUBLIC_KEY, "public key does not match the server's key"),
        (EC_PUBLIC_KEY, "key is not an RSA public key"),
        ("garbage", "failed to decode PEM block containing public key"),
    ] {
        let (_, body) = json_reply(server.request_token(key).await).await;
        assert_eq!(body["error"], format!("Public key verification failed: {reason}"));
    }
}

async fn token_key_compared_by_value_not_text(schema: Schema) {
    let server = start(schema).await;
    let crlf = format!("\n  {}\n\n", server.api.public_key_pem().replace('\n', "\r\n"));
    let (status, body) = json_reply(server.request_token(&crlf).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---- auth ----

async fn missing_authorization_is_401_required(schema: Schema) {
    let server = start(schema).await;
    let (status, body) = server.get_with(None).await;
    assert_failure(status, &body, StatusCode::UNAUTHORIZED, "");
    assert_eq!(body["error"], "Authorization header is required");
    let (status, body) = server.post_raw(None, "{}").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "Authorization header is required");
}

async fn authorization_without_exact_bearer_prefix_is_401(schema: Schema) {
    let server = start(schema).await;
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

async fn expired_token_is_401_with_golang_jwt_wording(schema: Schema) {
    let server = start(schema).await;
    let now = unix_secs();
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

async fn signed_token_without_exp_is_accepted(schema: Schema) {
    let server = start(schema).await;
    let token = server.sign(&json!({"iss": "bss-api-server", "client_id": "x"}));
    let (status, body) = server.get_with(Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn malformed_foreign_or_wrong_algorithm_tokens_are_401(schema: Schema) {
    let server = start(schema).await;
    let now = unix_secs();
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

async fn get_before_any_post_is_empty(schema: Schema) {
    let server = start(schema).await;
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
    let empty = format!("\"scheduling\":{}", server.served_empty());
    assert!(text.contains(&empty), "{text} lacks {empty}");
    assert_eq!(server.api.strategies(), None);
}

async fn post_replaces_the_whole_list(schema: Schema) {
    let server = start(schema).await;
    let (status, body) = server.post(json!([strategy(1), strategy(2)])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Scheduling strategies saved successfully");
    assert_timestamp(&body["timestamp"]);

    server.post(json!([strategy(3)])).await;
    let body = server.get().await;
    assert_eq!(body["scheduling"], server.served_list(&[3]));
    assert_eq!(body["success"], true);
    assert_timestamp(&body["timestamp"]);
}

async fn get_preserves_order_and_drops_pid_zero_and_selector_entries(schema: Schema) {
    let server = start(schema).await;
    let selector = json!({"priority": true, "execution_time": 5,
        "selectors": [{"key": "app", "value": "ueransim"}], "command_regex": "nr-gnb"});
    let zero = json!({"priority": true, "execution_time": 5, "pid": 0});
    server.post(json!([strategy(30), zero, strategy(10), selector, strategy(20)])).await;
    let body = server.get().await;
    assert_eq!(body["scheduling"], server.served_list(&[30, 10, 20]));
    let pids: Vec<i64> = server.api.strategies().unwrap().iter().map(|s| s.pid).collect();
    assert_eq!(pids, [30, 10, 20]);
}

async fn list_of_only_dropped_entries_reads_as_empty(schema: Schema) {
    let server = start(schema).await;
    server.post(json!([{"priority": false, "execution_time": 1}])).await;
    assert_eq!(server.get().await["scheduling"], server.served_empty());
    server.post(json!([])).await;
    assert_eq!(server.get().await["scheduling"], server.served_empty());
}

async fn false_and_integer_priorities(schema: Schema) {
    let server = start(schema).await;
    let off = json!({"priority": false, "execution_time": 5, "pid": 3});
    let level = json!({"priority": 15, "execution_time": 5, "pid": 4});
    let (status, body) = server.post(json!([strategy(2), off, level])).await;
    match schema {
        Schema::V0 => {
            // The v0.1 server's decoder takes only a boolean.
            assert_failure(status, &body, StatusCode::BAD_REQUEST, "Invalid request payload: ");
            let error = body["error"].as_str().unwrap();
            assert!(
                error.contains("strategies[2].priority") && error.contains("current"),
                "{error}"
            );
            server.post(json!([strategy(2), off])).await;
            assert_eq!(server.get().await["scheduling"], json!([strategy(2), off]));
        }
        Schema::Current { .. } => {
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(server.get().await["scheduling"], json!([server.served(2), level]));
        }
    }
}

async fn strategies_are_decoded_strictly_by_type(schema: Schema) {
    let server = start(schema).await;
    server.post(json!([strategy(1)])).await;
    let auth = format!("Bearer {}", server.token().await);
    for bad in [
        r#"{"strategies":[{"priority":true,"execution_time":1,"pid":"123"}]}"#,
        r#"{"strategies":[{"priority":"1","execution_time":1,"pid":1}]}"#,
        r#"{"strategies":[{"priority":21,"execution_time":1,"pid":1}]}"#,
        r#"{"strategies":[{"priority":-1,"execution_time":1,"pid":1}]}"#,
        r#"{"strategies":[{"priority":true,"execution_time":-1,"pid":1}]}"#,
        r#"{"strategies":"#,
        "",
    ] {
        let (status, body) = server.post_raw(Some(&auth), bad).await;
        assert_failure(status, &body, StatusCode::BAD_REQUEST, "Invalid request payload: ");
    }
    assert_eq!(*server.api.posts().borrow(), 1, "a refused POST counted");
    assert_eq!(server.get().await["scheduling"], server.served_list(&[1]));
}

async fn trailing_data_and_unknown_fields_are_ignored(schema: Schema) {
    let server = start(schema).await;
    let auth = format!("Bearer {}", server.token().await);
    let body = r#"{"strategies":[{"priority":true,"execution_time":20000000,"pid":4,"weight":9}],
        "extra":{"a":1}} trailing {garbage"#;
    let (status, reply) = server.post_raw(Some(&auth), body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(server.get().await["scheduling"], server.served_list(&[4]));
}

async fn first_get_after_post_recalculates_later_ones_use_cache(schema: Schema) {
    let server = start(schema).await;
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

async fn posts_counter_moves_on_each_successful_post(schema: Schema) {
    let server = start(schema).await;
    let mut posts = server.api.posts();
    assert_eq!(*posts.borrow_and_update(), 0);
    server.post(json!([strategy(8)])).await;
    tokio::time::timeout(Duration::from_secs(5), posts.changed()).await.unwrap().unwrap();
    assert_eq!(*posts.borrow_and_update(), 1);
    let expected = Strategy {
        priority: true.into(),
        execution_time: 20_000_000,
        pid: 8,
        selectors: vec![],
        command_regex: String::new(),
    };
    assert_eq!(server.api.strategies(), Some(vec![expected]));
}

async fn oversized_body_is_413(schema: Schema) {
    let server = start(schema).await;
    let auth = format!("Bearer {}", server.token().await);
    let huge = format!(r#"{{"strategies":[],"pad":"{}"}}"#, "x".repeat(5 * 1024 * 1024));
    // Every route that reads a body answers in the API's shape.
    for path in [TOKEN_PATH, STRATEGIES_PATH, METRICS_PATH] {
        let (status, body) = server.post_raw_to(path, Some(&auth), huge.clone()).await;
        assert_failure(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "Invalid request body: ");
    }
}

// ---- other paths and methods ----

async fn health_reports_healthy(schema: Schema) {
    let server = start(schema).await;
    let response = server.client.get(server.url(HEALTH_PATH)).send().await.unwrap();
    let (status, body) = json_reply(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["service"], "BSS Metrics API Server");
    assert_timestamp(&body["timestamp"]);
}

async fn options_is_200_with_cors_on_any_path_without_auth(schema: Schema) {
    let server = start(schema).await;
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

async fn wrong_method_on_known_path_is_405_with_empty_body(schema: Schema) {
    let server = start(schema).await;
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

async fn unknown_path_is_plain_text_404(schema: Schema) {
    let server = start(schema).await;
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

    // Whoever reads the public key gets a token: root only.
    assert_eq!(mode(&first.public_key_path()), 0o600);
    assert_eq!(mode(&state), 0o700);

    let second = LocalApi::open(&state, DAY).unwrap();
    assert_eq!(second.public_key_pem(), first.public_key_pem());
    assert_eq!(std::fs::read_to_string(&private).unwrap(), private_text);
}

#[test]
fn missing_or_stale_public_key_file_is_rewritten_from_the_private_key() {
    let dir = TempDir::new().unwrap();
    common::install_private_key(dir.path(), SERVER_PRIVATE_KEY);
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
    common::install_private_key(dir.path(), "not a key");
    let err = LocalApi::open(dir.path(), DAY).err().unwrap();
    assert!(matches!(err, LocalApiError::KeyParse { .. }), "{err}");
}

#[test]
fn a_private_key_open_to_others_is_refused_and_a_loose_directory_tightened() {
    let dir = TempDir::new().unwrap();
    common::install_private_key(dir.path(), SERVER_PRIVATE_KEY);
    let private = dir.path().join("jwt_private_key.pem");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = LocalApi::open(dir.path(), DAY).err().unwrap();
    assert!(matches!(err, LocalApiError::KeyExposed { mode: 0o640, .. }), "{err}");
    assert!(err.to_string().contains(&private.display().to_string()), "{err}");

    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let public = dir.path().join("jwt_public_key.pem");
    std::fs::write(&public, "stale").unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
    let api = LocalApi::open(dir.path(), DAY).unwrap();
    assert_eq!(mode(dir.path()), 0o700);
    assert_eq!(mode(&api.public_key_path()), 0o600);
}

#[test]
fn a_shared_sticky_directory_is_refused_for_keys() {
    let dir = TempDir::new().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let err = LocalApi::open(dir.path(), DAY).err().unwrap();
    assert!(matches!(err, LocalApiError::KeyDirShared { mode: 0o1777, .. }), "{err}");
    assert!(!dir.path().join("jwt_private_key.pem").exists());
}

async fn token_from_a_generated_key_works_end_to_end(schema: Schema) {
    let server = start_in(TempDir::new().unwrap(), schema).await;
    server.post(json!([strategy(5)])).await;
    assert_eq!(server.get().await["scheduling"], server.served_list(&[5]));
}

async fn serve_stops_on_shutdown(schema: Schema) {
    let server = start(schema).await;
    server.post(json!([strategy(1)])).await;
    tokio::time::timeout(Duration::from_secs(5), server.stop()).await.unwrap();
}

#[tokio::test]
async fn run_reports_a_busy_port_and_stops_on_shutdown() {
    let dir = TempDir::new().unwrap();
    common::install_private_key(dir.path(), SERVER_PRIVATE_KEY);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let opts = LocalApiOptions {
        listen: busy.local_addr().unwrap(),
        state_dir: dir.path().to_owned(),
        ..LocalApiOptions::default()
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
    assert_eq!(opts.schema, Schema::V0);
}

for_both_schemas!(
    token_is_an_rs256_jwt_with_the_contract_claims,
    tokens_issued_in_the_same_second_are_identical,
    token_request_that_is_not_json_is_400,
    token_refused_for_foreign_garbage_or_non_rsa_keys,
    token_refusals_say_why,
    token_key_compared_by_value_not_text,
    missing_authorization_is_401_required,
    authorization_without_exact_bearer_prefix_is_401,
    expired_token_is_401_with_golang_jwt_wording,
    signed_token_without_exp_is_accepted,
    malformed_foreign_or_wrong_algorithm_tokens_are_401,
    get_before_any_post_is_empty,
    post_replaces_the_whole_list,
    get_preserves_order_and_drops_pid_zero_and_selector_entries,
    list_of_only_dropped_entries_reads_as_empty,
    false_and_integer_priorities,
    strategies_are_decoded_strictly_by_type,
    trailing_data_and_unknown_fields_are_ignored,
    first_get_after_post_recalculates_later_ones_use_cache,
    posts_counter_moves_on_each_successful_post,
    oversized_body_is_413,
    health_reports_healthy,
    options_is_200_with_cors_on_any_path_without_auth,
    wrong_method_on_known_path_is_405_with_empty_body,
    unknown_path_is_plain_text_404,
    serve_stops_on_shutdown,
    token_from_a_generated_key_works_end_to_end,
);

// ---- the command line ----

#[test]
fn schema_flags_are_checked_before_start() {
    let dir = TempDir::new().unwrap();
    for (args, want) in [
        (&["--priority-level", "3"][..], "--priority-level needs --schema current"),
        (&["--schema", "current", "--priority-level", "21"][..], "0..=20"),
        (&["--schema", "v1"][..], "possible values: v0, current"),
    ] {
        let out = std::process::Command::new(BIN)
            .args(["local-api", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    assert!(!dir.path().join("jwt_private_key.pem").exists(), "a refused start made keys");
}

async fn token_answer(cli: &Cli, client: &reqwest::Client) -> Value {
    let request = client.post(format!("{}{TOKEN_PATH}", cli.base));
    let response = request.json(&json!({ "public_key": cli.pem })).send().await.unwrap();
    response.json().await.unwrap()
}

async fn post(cli: &Cli, client: &reqwest::Client, token: &str) -> reqwest::Result<StatusCode> {
    let request = client.post(format!("{}{STRATEGIES_PATH}", cli.base)).bearer_auth(token);
    let request = request.json(&json!({"strategies": [strategy(42)]}));
    Ok(request.timeout(Duration::from_secs(10)).send().await?.status())
}

/// The binary with `--schema current --priority-level 12`: the flags reach
/// the server (token in `data`, a posted `true` served as 12).
#[tokio::test]
async fn local_api_command_serves_the_current_schema() {
    let cli = Cli::spawn_quiet(&["--schema", "current", "--priority-level", "12"]);
    let client = reqwest::Client::new();
    let answer = token_answer(&cli, &client).await;
    let token = answer["data"]["token"].as_str().unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(post(&cli, &client, token).await.unwrap(), StatusCode::OK);
    let get = client.get(format!("{}{STRATEGIES_PATH}", cli.base)).bearer_auth(token);
    let body: Value = get.send().await.unwrap().json().await.unwrap();
    assert_eq!(
        body["scheduling"],
        json!([{"priority": 12, "execution_time": 20_000_000, "pid": 42}])
    );
}

/// A closed stderr (a log reader that went away) costs the log lines, not
/// the requests that log.
#[tokio::test]
async fn a_closed_stderr_does_not_break_requests() {
    let mut cli = Cli::spawn(&[]);
    drop(cli.stderr.take());
    let client = reqwest::Client::new();
    let answer = token_answer(&cli, &client).await;
    let token = answer["token"].as_str().unwrap_or_else(|| panic!("{answer}"));
    // A POST logs a line, which now goes nowhere.
    let status = post(&cli, &client, token).await.expect("the POST was answered");
    assert_eq!(status, StatusCode::OK);
}
