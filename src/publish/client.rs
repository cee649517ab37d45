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
    #[error("client set-up: {0}")]
    Setup(String),
}

impl PublishError {
    pub fn kind(&self) -> FailureKind {
        match self {
            PublishError::Transport { .. } | PublishError::Setup(_) => FailureKind::Transport,
            PublishError::Http { status: 401, .. } | PublishError::KeyRejected { .. } => {
                FailureKind::Auth
            }
            PublishError::Http { .. } => FailureKind::Http,
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
            .user_agent(concat!("gtp5g-operator/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cfg.ca_file {
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
        let public_key = public_key::read_pem_file(&self.key_path).map_err(PublishError::Setup)?;
        let url = format!("{}{TOKEN_PATH}", self.base);
        let resp = self
            .http
            .post(&url)
            .json(&TokenRequest { public_key })
            .send()
            .await
            .map_err(|e| transport(WHAT, &url, e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| transport(WHAT, &url, e))?;
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
        let refresh_at = refresh_at(&value, expired_at, self.refresh_ahead);
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
        let status = resp.status().as_u16();
        let body = Vec::from(resp.bytes().await.map_err(|e| transport(what, url, e))?);
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

/// The server's `error` text, else the start of the body.
fn error_text(error: Option<String>, body: &[u8]) -> String {
    error.unwrap_or_else(|| snippet(body))
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let text = text.trim();
    if text.is_empty() {
        "<empty body>".into()
    } else {
        text.to_string()
    }
}

/// The `exp` claim (seconds since the epoch), or None when the token has
/// none (the contract allows that) or does not decode.
///
/// Read WITHOUT verifying the signature, on purpose. The client does hold
/// the server's public key (it is what it trades for the token), so it
/// could verify; but it only uses `exp` to schedule its own refresh, and
/// the token goes back only to the server that issued it, which verifies
/// it on every request. Verifying here would guard nothing and would add a
/// way to fail: any server that signs with another algorithm or key than
/// the v0.1 server's RS256 pair would leave the daemon without a token.
fn expiry(jwt: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: Option<u64>,
    }
    let mut unverified = jsonwebtoken::Validation::default();
    unverified.insecure_disable_signature_validation();
    unverified.required_spec_claims.clear();
    unverified.validate_exp = false;
    unverified.validate_aud = false;
    let no_key = jsonwebtoken::DecodingKey::from_secret(&[]);
    jsonwebtoken::decode::<Claims>(jwt, &no_key, &unverified).ok()?.claims.exp
}

/// When to fetch the next token: `ahead` before the JWT's own `exp` (what
/// the server enforces), else before the `expired_at` the current API
/// states beside the token; never, when neither says.
fn refresh_at(jwt: &str, expired_at: Option<u64>, ahead: Duration) -> Option<Instant> {
    expiry(jwt).or(expired_at).map(|exp| refresh_instant(exp, ahead))
}

fn refresh_instant(exp: u64, ahead: Duration) -> Instant {
    let left = Duration::from_secs(exp.saturating_sub(unix_secs()));
    Instant::now() + left.saturating_sub(ahead)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        use base64::Engine;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.sig", e.encode(r#"{"alg":"RS256"}"#), e.encode(claims))
    }

    #[test]
    fn reads_exp_and_tolerates_its_absence() {
        assert_eq!(expiry(&jwt(r#"{"exp":1700000000,"iss":"x"}"#)), Some(1_700_000_000));
        assert_eq!(expiry(&jwt(r#"{"iss":"x"}"#)), None);
        assert_eq!(expiry("garbage"), None);
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
        let with_exp = jwt(&format!(r#"{{"exp":{}}}"#, now + 3600));
        let left = secs_left(refresh_at(&with_exp, Some(now + 7200), ahead));
        assert!((3290..=3300).contains(&left), "{left}");
        let left = secs_left(refresh_at(&jwt(r#"{"iss":"x"}"#), Some(now + 7200), ahead));
        assert!((6890..=6900).contains(&left), "{left}");
        assert_eq!(refresh_at(&jwt(r#"{"iss":"x"}"#), None, ahead), None);
    }

    #[test]
    fn token_is_redacted_in_debug() {
        let t = Token { value: "secret.jwt.value".into(), refresh_at: None };
        assert!(!format!("{t:?}").contains("secret"));
    }
}
