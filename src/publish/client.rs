//! The Gthulhu API client: trades the public key for a JWT, keeps it fresh,
//! and posts strategy lists. The token is never logged or formatted.

use crate::api::{
    MetricsResponse, StatusResponse, StrategiesRequest, StrategiesResponse, Strategy, TokenRequest,
    TokenResponse, METRICS_PATH, STRATEGIES_PATH, TOKEN_PATH,
};
use crate::clock::unix_secs;
use crate::config::ApiConfig;
use crate::public_key;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Connect, TLS, timeout.
    Transport,
    /// A non-success HTTP status.
    Http,
    /// The key or the token was refused.
    Auth,
    /// 200 with a body that is not the expected JSON.
    Body,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{what} {url}: {detail}")]
    Transport { what: &'static str, url: String, detail: String },
    #[error("{what}: HTTP {status}: {message}")]
    Http { what: &'static str, status: u16, message: String },
    #[error("the API rejected the public key {}: HTTP {status}: {message}", path.display())]
    KeyRejected { path: PathBuf, status: u16, message: String },
    #[error("{what}: unexpected answer (HTTP {status}): {detail}")]
    Body { what: &'static str, status: u16, detail: String },
    #[error("{what} {url}: HTTP {status} redirect to {location}: not followed (point api.endpoint at the API itself)")]
    Redirect { what: &'static str, url: String, status: u16, location: String },
    #[error(
        "the API at {url} cannot sign: its token does not verify against the public key {} \
         ({detail}); no strategies are sent to it (an impostor on the API's address, or a \
         public key that is not this API's)",
        path.display()
    )]
    Untrusted { url: String, path: PathBuf, detail: String },
    #[error("client set-up: {0}")]
    Setup(String),
}

impl PublishError {
    pub fn kind(&self) -> FailureKind {
        match self {
            PublishError::Transport { .. } | PublishError::Setup(_) => FailureKind::Transport,
            PublishError::Http { status: 401, .. }
            | PublishError::KeyRejected { .. }
            | PublishError::Untrusted { .. } => FailureKind::Auth,
            PublishError::Http { .. } | PublishError::Redirect { .. } => FailureKind::Http,
            PublishError::Body { .. } => FailureKind::Body,
        }
    }
}

/// A JWT; Debug and Display never show it.
#[derive(Clone)]
struct Token {
    value: String,
    refresh_at: Option<Instant>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    key_path: PathBuf,
    refresh_ahead: Duration,
    token: Option<Token>,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient").field("base", &self.base).field("token", &self.token).finish()
    }
}

/// What a successful token request changed, for the caller's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    pub authenticated: bool,
}

impl ApiClient {
    pub fn new(cfg: &ApiConfig) -> Result<Self, PublishError> {
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would carry the key and the token to whoever the
            // answer names.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gtp5g-operator/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cfg.ca_file {
            // The operator named the one CA that signs the API's certificate:
            // any public CA's certificate for that name is not the API's.
            builder = builder.tls_built_in_root_certs(false);
            let pem = std::fs::read(ca)
                .map_err(|e| PublishError::Setup(format!("api.ca_file {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| PublishError::Setup(format!("api.ca_file {}: {e}", ca.display())))?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder.build().map_err(|e| PublishError::Setup(e.to_string()))?;
        Ok(ApiClient {
            http,
            base: cfg.endpoint.trim_end_matches('/').to_string(),
            key_path: cfg.public_key_path.clone(),
            refresh_ahead: Duration::from_secs(cfg.token_refresh_ahead_s),
            token: None,
        })
    }

    /// Replaces the API's strategy list.
    pub async fn post_strategies(&mut self, list: &[Strategy]) -> Result<Posted, PublishError> {
        let url = format!("{}{STRATEGIES_PATH}", self.base);
        let body = StrategiesRequest { strategies: list.to_vec() };
        let request = |http: &reqwest::Client| http.post(&url).json(&body);
        let answer = self.with_token("posting strategies", &url, request).await?;
        Ok(Posted { authenticated: answer.authenticated })
    }

    /// What the API holds now (`GET` strategies).
    pub async fn strategies_in_force(&mut self) -> Result<InForce, PublishError> {
        const WHAT: &str = "reading strategies";
        let url = format!("{}{STRATEGIES_PATH}", self.base);
        let Answer { status, body, .. } =
            self.with_token(WHAT, &url, |http| http.get(&url)).await?;
        let bad = |e: serde_json::Error| PublishError::Body {
            what: WHAT,
            status,
            detail: format!("{e}: {}", snippet(&body)),
        };
        let answer: serde_json::Value = serde_json::from_slice(&body).map_err(bad)?;
        let typed: StrategiesResponse = serde_json::from_value(answer.clone()).map_err(bad)?;
        Ok(InForce { answer, strategies: typed.scheduling.unwrap_or_default() })
    }

    /// The scheduler's last report as the API holds it (`GET` metrics),
    /// with the time it came as `metrics_timestamp`.
    pub async fn scheduler_metrics(&mut self) -> Result<serde_json::Value, PublishError> {
        const WHAT: &str = "reading the scheduler's metrics";
        let url = format!("{}{METRICS_PATH}", self.base);
        let Answer { status, body, .. } =
            self.with_token(WHAT, &url, |http| http.get(&url)).await?;
        let bad = |detail: String| PublishError::Body { what: WHAT, status, detail };
        let answer: MetricsResponse =
            serde_json::from_slice(&body).map_err(|e| bad(format!("{e}: {}", snippet(&body))))?;
        let data = answer.data.ok_or_else(|| bad("no data".into()))?;
        let mut report = serde_json::to_value(data).map_err(|e| bad(e.to_string()))?;
        report["metrics_timestamp"] = answer.metrics_timestamp.into();
        Ok(report)
    }

    /// Sends `request` with a token; a 401 is answered by one
    /// re-authentication and one retry.
    async fn with_token(
        &mut self,
        what: &'static str,
        url: &str,
        request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Answer, PublishError> {
        let mut authenticated = self.ensure_token().await?;
        let mut answer = match self.exchange(what, request(&self.http), url).await {
            Err(PublishError::Http { status: 401, message, .. }) => {
                tracing::warn!(%message, "token refused by the API; re-authenticating once");
                self.token = None;
                authenticated |= self.ensure_token().await?;
                self.exchange(what, request(&self.http), url).await?
            }
            other => other?,
        };
        answer.authenticated = authenticated;
        Ok(answer)
    }

    /// Fetches a token unless the cached one is still fresh; true if it did.
    async fn ensure_token(&mut self) -> Result<bool, PublishError> {
        if let Some(t) = &self.token {
            if t.refresh_at.is_none_or(|at| Instant::now() < at) {
                return Ok(false);
            }
        }
        self.token = Some(self.authenticate().await?);
        Ok(true)
    }

    async fn authenticate(&self) -> Result<Token, PublishError> {
        const WHAT: &str = "token request";
        let (public_key, key) =
            public_key::read_pem_file(&self.key_path).map_err(PublishError::Setup)?;
        let url = format!("{}{TOKEN_PATH}", self.base);
        let resp = self
            .http
            .post(&url)
            .json(&TokenRequest { public_key })
            .send()
            .await
            .map_err(|e| transport(WHAT, &url, e))?;
        let (status, body) = read_answer(WHAT, &url, resp).await?;
        let parsed: Option<TokenResponse> = serde_json::from_slice(&body).ok();
        if status == 401 {
            let message = error_text(parsed.as_ref().and_then(|r| r.status.error.clone()), &body);
            return Err(PublishError::KeyRejected { path: self.key_path.clone(), status, message });
        }
        if status != 200 {
            let message = error_text(parsed.and_then(|r| r.status.error), &body);
            return Err(PublishError::Http { what: WHAT, status, message });
        }
        let (value, expired_at) = parsed
            .filter(|r| r.status.success)
            .and_then(TokenResponse::into_token)
            .ok_or_else(|| PublishError::Body {
                what: WHAT,
                status,
                detail: "no token in a successful answer (neither `token` nor `data.token`)".into(),
            })?;
        let exp = verified_expiry(&value, &key).map_err(|detail| PublishError::Untrusted {
            url: self.base.clone(),
            path: self.key_path.clone(),
            detail,
        })?;
        let refresh_at = refresh_at(exp, expired_at, self.refresh_ahead);
        tracing::info!(
            refresh_in_s =
                refresh_at.map(|t| t.saturating_duration_since(Instant::now()).as_secs()),
            "obtained API token"
        );
        Ok(Token { value, refresh_at })
    }

    /// Sends `request` with the token held; Ok is a 200 whose `success`
    /// is true.
    async fn exchange(
        &self,
        what: &'static str,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<Answer, PublishError> {
        let token = self.token.as_ref().map(|t| t.value.as_str()).unwrap_or_default();
        let resp = request.bearer_auth(token).send().await.map_err(|e| transport(what, url, e))?;
        let (status, body) = read_answer(what, url, resp).await?;
        let parsed: Result<StatusResponse, _> = serde_json::from_slice(&body);
        match (status, parsed) {
            (200, Ok(r)) if r.success => Ok(Answer { status, body, authenticated: false }),
            (200, Ok(r)) => {
                Err(PublishError::Body { what, status, detail: error_text(r.error, &body) })
            }
            (200, Err(e)) => {
                Err(PublishError::Body { what, status, detail: format!("{e}: {}", snippet(&body)) })
            }
            (_, parsed) => Err(PublishError::Http {
                what,
                status,
                message: error_text(parsed.ok().and_then(|r| r.error), &body),
            }),
        }
    }
}

/// A successful answer, and whether a token was fetched for it.
struct Answer {
    status: u16,
    body: Vec<u8>,
    authenticated: bool,
}

/// The API's answer to a `GET` of the strategies, whole and as a list.
#[derive(Debug, Clone)]
pub struct InForce {
    pub answer: serde_json::Value,
    /// Empty when the API answered `null` (nothing in force).
    pub strategies: Vec<Strategy>,
}

impl InForce {
    /// The pids of the pid strategies, sorted, each once.
    pub fn pids(&self) -> Vec<i64> {
        let mut pids: Vec<i64> =
            self.strategies.iter().map(|s| s.pid).filter(|&p| p != 0).collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

/// Far above any answer of the API (a status line of JSON); what a server
/// may make the daemon buffer.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The status and the body, refusing a redirect and a body past
/// `MAX_ANSWER_BYTES` (announced or sent).
async fn read_answer(
    what: &'static str,
    url: &str,
    mut resp: reqwest::Response,
) -> Result<(u16, Vec<u8>), PublishError> {
    let status = resp.status().as_u16();
    if resp.status().is_redirection() {
        let location = resp.headers().get(reqwest::header::LOCATION);
        let location = location.map_or("<no Location>".into(), |l| shown(l.as_bytes()));
        return Err(PublishError::Redirect { what, url: url.to_string(), status, location });
    }
    let too_big = || PublishError::Body {
        what,
        status,
        detail: format!("answer larger than {} KiB: not read", MAX_ANSWER_BYTES / 1024),
    };
    if resp.content_length().is_some_and(|n| n > MAX_ANSWER_BYTES as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport(what, url, e))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

fn transport(what: &'static str, url: &str, e: reqwest::Error) -> PublishError {
    // reqwest's Display hides the cause (TLS, refused, timeout): show the chain.
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() {
        detail.push_str(" (timed out)");
    }
    PublishError::Transport { what, url: url.to_string(), detail }
}

/// The server's `error` text, else the start of the body; either as
/// `shown`.
fn error_text(error: Option<String>, body: &[u8]) -> String {
    error.map_or_else(|| snippet(body), |e| shown(e.as_bytes()))
}

fn snippet(body: &[u8]) -> String {
    let text = shown(String::from_utf8_lossy(body).trim().as_bytes());
    if text.is_empty() {
        "<empty body>".into()
    } else {
        text
    }
}

/// What a log line may carry of a server's text: at most `SHOWN_CHARS`
/// characters, control characters escaped, so that no server can forge
/// log lines or flood the log.
fn shown(text: &[u8]) -> String {
    const SHOWN_CHARS: usize = 200;
    let text = String::from_utf8_lossy(text);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == SHOWN_CHARS {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks that `jwt` is an RS256 token signed by the key the daemon holds
/// (the API's own public key, which it traded for the token) and returns
/// its `exp`, None when it has none (the contract allows that). A server
/// that cannot sign so does not hold the API's private key: it is not the
/// API, and gets no strategies. Claims are not judged here (an expired
/// token is the API's to refuse).
fn verified_expiry(jwt: &str, key: &rsa::RsaPublicKey) -> Result<Option<u64>, String> {
    use rsa::pkcs1::EncodeRsaPublicKey;
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: Option<u64>,
    }
    let der = key.to_pkcs1_der().map_err(|e| format!("cannot encode the key: {e}"))?;
    let key = jsonwebtoken::DecodingKey::from_rsa_der(der.as_bytes());
    let mut signature_only = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    signature_only.required_spec_claims.clear();
    signature_only.validate_exp = false;
    signature_only.validate_nbf = false;
    signature_only.validate_aud = false;
    match jsonwebtoken::decode::<Claims>(jwt, &key, &signature_only) {
        Ok(data) => Ok(data.claims.exp),
        Err(e) => Err(match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => "bad RS256 signature".into(),
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                "not RS256-signed (the API signs RS256)".into()
            }
            _ => format!("not a JWT the API issues: {e}"),
        }),
    }
}

/// When to fetch the next token: `ahead` before the JWT's own `exp` (what
/// the server enforces), else before the `expired_at` the current API
/// states beside the token; never, when neither says.
fn refresh_at(exp: Option<u64>, expired_at: Option<u64>, ahead: Duration) -> Option<Instant> {
    exp.or(expired_at).map(|exp| refresh_instant(exp, ahead))
}

fn refresh_instant(exp: u64, ahead: Duration) -> Instant {
    let left = Duration::from_secs(exp.saturating_sub(unix_secs()));
    Instant::now() + left.saturating_sub(ahead)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn server_key() -> rsa::RsaPublicKey {
        use rsa::pkcs8::DecodePrivateKey;
        let pem = include_str!("../../tests/fixtures/server_private_key.pem");
        rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap().to_public_key()
    }

    fn signed(claims: &str) -> String {
        let pem = include_str!("../../tests/fixtures/server_private_key.pem");
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        let claims: serde_json::Value = serde_json::from_str(claims).unwrap();
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    #[test]
    fn a_token_signed_by_the_api_gives_its_exp_or_none() {
        let key = server_key();
        assert_eq!(
            verified_expiry(&signed(r#"{"exp":1700000000}"#), &key),
            Ok(Some(1_700_000_000))
        );
        assert_eq!(verified_expiry(&signed(r#"{"iss":"x"}"#), &key), Ok(None));
    }

    #[test]
    fn a_token_the_api_did_not_sign_is_refused_saying_why() {
        let key = server_key();
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forged = format!(
            "{}.{}.{}",
            e.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            e.encode(r#"{"exp":1700000000}"#),
            e.encode([7u8; 256])
        );
        assert_eq!(verified_expiry(&forged, &key), Err("bad RS256 signature".into()));
        let hs256 = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"exp": 1}),
            &jsonwebtoken::EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert!(verified_expiry(&hs256, &key).unwrap_err().contains("not RS256"));
        assert!(verified_expiry("faulty-token-1", &key).unwrap_err().contains("not a JWT"));
    }

    #[test]
    fn refresh_is_scheduled_ahead_of_expiry() {
        let now = unix_secs();
        let at = refresh_instant(now + 3600, Duration::from_secs(300));
        let d = at.duration_since(Instant::now()).as_secs();
        assert!((3290..=3300).contains(&d), "{d}");
        assert!(refresh_instant(now - 10, Duration::from_secs(300)) <= Instant::now());
    }

    #[test]
    fn expired_at_counts_only_when_the_jwt_has_no_exp() {
        let now = unix_secs();
        let ahead = Duration::from_secs(300);
        let secs_left = |at: Option<Instant>| at.unwrap().duration_since(Instant::now()).as_secs();
        let left = secs_left(refresh_at(Some(now + 3600), Some(now + 7200), ahead));
        assert!((3290..=3300).contains(&left), "{left}");
        let left = secs_left(refresh_at(None, Some(now + 7200), ahead));
        assert!((6890..=6900).contains(&left), "{left}");
        assert_eq!(refresh_at(None, None, ahead), None);
    }

    #[test]
    fn server_text_is_cut_and_cannot_forge_log_lines() {
        let long = "x".repeat(10_000);
        assert_eq!(shown(long.as_bytes()).len(), 203);
        assert_eq!(shown(b"ok\n2026-01-01 INFO forged"), "ok\\n2026-01-01 INFO forged");
        assert_eq!(error_text(Some("a\u{1b}[31mred".into()), b""), "a\\u{1b}[31mred");
        assert_eq!(snippet(b"  "), "<empty body>");
    }

    #[test]
    fn token_is_redacted_in_debug() {
        let t = Token { value: "secret.jwt.value".into(), refresh_at: None };
        assert!(!format!("{t:?}").contains("secret"));
    }
}
