//! A real HTTP server on 127.0.0.1 speaking the Gthulhu API's two calls,
//! which the test switches into failure modes (500, hang, bad body, huge
//! body, 401, rejected key, forged token, redirect). It signs its tokens
//! with the fixture key, as the API does with its own (the daemon then
//! holds `SERVER_PUBLIC_KEY`). It counts requests and how many ran at once.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use gtp5g_operator::api::{StrategiesRequest, Strategy, STRATEGIES_PATH, TOKEN_PATH};
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Post {
    Accept,
    Status500,
    /// Never answers (until the client gives up).
    Hang,
    /// 200 with HTML instead of the JSON status.
    BadBody,
    /// 200 with 8 MiB of JSON-looking padding.
    HugeBody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Issue,
    /// 401 as for a public key the server does not know.
    RejectKey,
    /// What an impostor without the API's private key can do: a token with
    /// an RS256 header and a random signature.
    Forge,
    /// 307 to the same path on another server.
    Redirect(SocketAddr),
}

/// The public half of the key this server signs with.
pub const SERVER_PUBLIC_KEY: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/server_public_key.pem");

#[derive(Debug)]
pub struct Faults {
    pub post: Mutex<Post>,
    pub token: Mutex<Token>,
    /// The only token the server currently accepts.
    valid: Mutex<Option<String>>,
    pub tokens_issued: AtomicUsize,
    pub token_requests: AtomicUsize,
    pub posts: AtomicUsize,
    pub unauthorized: AtomicUsize,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub accepted: Mutex<Option<Vec<Strategy>>>,
}

pub struct Faulty {
    pub addr: SocketAddr,
    pub state: Arc<Faults>,
}

/// Counts a request in flight for as long as its handler lives; hyper drops
/// the handler when the client hangs up, which ends the count too.
struct InFlight(Arc<Faults>);

impl InFlight {
    fn enter(s: &Arc<Faults>) -> InFlight {
        let now = s.in_flight.fetch_add(1, SeqCst) + 1;
        s.max_in_flight.fetch_max(now, SeqCst);
        InFlight(s.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, SeqCst);
    }
}

impl Faulty {
    pub async fn start(post: Post, token: Token) -> Faulty {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Self::state(post, token);
        tokio::spawn(axum::serve(listener, Self::router(&state)).into_future());
        Faulty { addr, state }
    }

    /// The same server behind TLS (url() then needs https).
    pub async fn start_tls(acceptor: tokio_rustls::TlsAcceptor) -> Faulty {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let state = Self::state(Post::Accept, Token::Issue);
        tokio::spawn(
            axum::serve(super::tls::TlsListener { tcp, acceptor }, Self::router(&state))
                .into_future(),
        );
        Faulty { addr, state }
    }

    fn state(post: Post, token: Token) -> Arc<Faults> {
        Arc::new(Faults {
            post: Mutex::new(post),
            token: Mutex::new(token),
            valid: Mutex::new(None),
            tokens_issued: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
            posts: AtomicUsize::new(0),
            unauthorized: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            accepted: Mutex::new(None),
        })
    }

    fn router(state: &Arc<Faults>) -> Router {
        Router::new()
            .route(TOKEN_PATH, post(token_handler))
            .route(STRATEGIES_PATH, post(strategies_handler))
            .with_state(state.clone())
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_post(&self, p: Post) {
        *self.state.post.lock().unwrap() = p;
    }

    pub fn set_token(&self, t: Token) {
        *self.state.token.lock().unwrap() = t;
    }

    /// The server forgets the token it issued (key rotated, or it expired).
    pub fn invalidate_token(&self) {
        *self.state.valid.lock().unwrap() = None;
    }

    pub fn accepted_pids(&self) -> Vec<i64> {
        super::pids_of(self.state.accepted.lock().unwrap().clone())
    }

    pub fn n(c: &AtomicUsize) -> usize {
        c.load(SeqCst)
    }
}

fn status(code: StatusCode, body: &str) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// An RS256 token signed with the fixture key; `n` makes each one unique.
fn signed_token(n: usize) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(super::SERVER_PRIVATE_KEY.as_bytes());
    let claims = serde_json::json!({ "iss": "faulty", "jti": n.to_string() });
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    jsonwebtoken::encode(&header, &claims, &key.unwrap()).unwrap()
}

fn forged_token(n: usize) -> String {
    use base64::Engine;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signature: Vec<u8> = (0..256).map(|_| rand::random::<u8>()).collect();
    format!(
        "{}.{}.{}",
        e.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        e.encode(format!(r#"{{"iss":"bss-api-server","jti":"{n}"}}"#)),
        e.encode(signature)
    )
}

async fn token_handler(State(s): State<Arc<Faults>>) -> Response {
    let _guard = InFlight::enter(&s);
    s.token_requests.fetch_add(1, SeqCst);
    let mode = *s.token.lock().unwrap();
    let n = match mode {
        Token::RejectKey => {
            return status(
                StatusCode::UNAUTHORIZED,
                r#"{"success":false,"error":"Public key verification failed: public key does not match"}"#,
            )
        }
        Token::Redirect(to) => return redirect(to, TOKEN_PATH),
        Token::Issue | Token::Forge => s.tokens_issued.fetch_add(1, SeqCst) + 1,
    };
    let token = if mode == Token::Forge { forged_token(n) } else { signed_token(n) };
    *s.valid.lock().unwrap() = Some(token.clone());
    status(
        StatusCode::OK,
        &format!(
            r#"{{"success":true,"message":"Token generated successfully","token":"{token}"}}"#
        ),
    )
}

async fn strategies_handler(
    State(s): State<Arc<Faults>>,
    headers: HeaderMap,
    Json(body): Json<StrategiesRequest>,
) -> Response {
    let _guard = InFlight::enter(&s);
    s.posts.fetch_add(1, SeqCst);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let valid = s.valid.lock().unwrap().clone();
    if bearer.is_none() || bearer != valid.as_deref() {
        s.unauthorized.fetch_add(1, SeqCst);
        return status(
            StatusCode::UNAUTHORIZED,
            r#"{"success":false,"error":"Invalid or expired token: token has invalid claims: token is expired"}"#,
        );
    }
    let mode = *s.post.lock().unwrap();
    match mode {
        Post::Accept => {
            *s.accepted.lock().unwrap() = Some(body.strategies);
            status(StatusCode::OK, r#"{"success":true,"message":"Strategies saved"}"#)
        }
        Post::Status500 => status(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"success":false,"error":"database on fire"}"#,
        ),
        Post::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            status(StatusCode::OK, "{}")
        }
        Post::BadBody => (StatusCode::OK, "<html>maintenance</html>").into_response(),
        Post::HugeBody => status(StatusCode::OK, &" ".repeat(8 << 20)),
    }
}

fn redirect(to: SocketAddr, path: &str) -> Response {
    let location = format!("http://{to}{path}");
    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response()
}
