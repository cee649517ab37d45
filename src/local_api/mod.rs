//! A local stand-in for the Gthulhu API server, speaking the contract in the
//! project's `gthulhu-api.md` reference: token exchange, Bearer JWT auth, and
//! the in-memory strategy list. It is the daemon's default target when no
//! cluster is reachable and the fixture for its integration tests.
//!
//! Differences from the real server are deliberate and limited to what a
//! server without pods cannot do: there are no configured default strategies,
//! and selector strategies never match anything (see `in_force`).
//!
//! It speaks one of two schemas (see `Schema`): the v0.1 API the daemon was
//! written against, or the answers today's Gthulhu scheduler polls for, so
//! that a current scheduler on a bare-metal testbed can take its exact
//! thread ids from here.

mod keys;
mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::api::{Priority, SchedulerMetrics, Strategy, MAX_PRIORITY_LEVEL};
use crate::server::Limits;

/// Issuer the real server puts in its tokens.
const ISSUER: &str = "bss-api-server";
/// Identity put in `client_id`/`sub`: the contract does not say what the real
/// server uses, and no client reads it.
const CLIENT_ID: &str = "gthulhu-client";

#[derive(Debug, thiserror::Error)]
pub enum LocalApiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot read RSA private key: {detail}")]
    KeyParse { path: PathBuf, detail: String },
    #[error(
        "{}: private key is open to other users (mode {mode:04o}): whoever read it can mint \
         tokens; replace the key pair, or `chmod 600` it if no one else could have read it",
        path.display()
    )]
    KeyExposed { path: PathBuf, mode: u32 },
    #[error(
        "{}: key directory is open to other users (mode {mode:04o}) and not ours to tighten; \
         use a directory of our own (--state-dir)",
        path.display()
    )]
    KeyDirShared { path: PathBuf, mode: u32 },
    #[error("cannot encode RSA key: {0}")]
    KeyEncode(String),
    #[error("cannot generate RSA key: {0}")]
    KeyGeneration(#[source] rsa::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("local API server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("--priority-level {0}: the current scheduler takes levels 0-{MAX_PRIORITY_LEVEL}")]
    PriorityLevel(u8),
}

/// Which generation of the Gthulhu API the server speaks. The key pair, the
/// auth rules, the error bodies and what POST accepts from the daemon are
/// the same in both; the token answer and the GET answer differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schema {
    /// The v0.1 API (Step 11 era): top-level `token`, boolean priorities,
    /// `null` for an empty list.
    #[default]
    V0,
    /// What the current scheduler (>= v0.6) polls: the token inside `data`
    /// with `expired_at`, integer priorities and `[]` for an empty list. A
    /// posted `true` is served as `priority_level`; `false` is not served.
    Current { priority_level: u8 },
}

impl Schema {
    /// The `scheduling` member of a GET answer for the strategies in force.
    /// The current scheduler keeps its old map on `null`, so an empty list
    /// has to be `[]` for it to let go of exited threads.
    fn scheduling(self, in_force: Option<Vec<Strategy>>) -> Option<Vec<Strategy>> {
        let Schema::Current { priority_level } = self else { return in_force };
        let as_level = |s: Strategy| match s.priority {
            Priority::Flag(false) => None,
            Priority::Flag(true) => {
                Some(Strategy { priority: Priority::Level(priority_level.into()), ..s })
            }
            Priority::Level(_) => Some(s),
        };
        Some(in_force.unwrap_or_default().into_iter().filter_map(as_level).collect())
    }

    /// Why a posted priority cannot be served in this schema, if so.
    fn priority_error(self, priority: Priority) -> Option<String> {
        match (self, priority) {
            (Schema::V0, Priority::Level(n)) => Some(format!(
                "{n} is an integer; the v0.1 API takes a boolean \
                 (integer levels need `local-api --schema current`)"
            )),
            _ => priority.level_error(),
        }
    }
}

/// Its clients are a daemon or two and a scheduler polling every few
/// seconds: 256 connections is far more than they use, and far fewer than
/// the unit's descriptor limit. A poll every 5 s (the scheduler's default)
/// keeps its connection inside the 30 s head deadline; SIGTERM is done in 2 s.
pub const LIMITS: Limits = Limits {
    max_connections: 256,
    head: Duration::from_secs(30),
    request: Duration::from_secs(10),
    drain: Duration::from_secs(2),
};

/// `--priority-level` when not given: the strongest boost in user mode is
/// any level above 0, and 1 is a strong preempting level in kernel mode.
pub const DEFAULT_PRIORITY_LEVEL: u8 = 1;

/// The longest `--token-hours`: a year. Longer is no expiry at all, and an
/// hour count near u64::MAX overflows when made seconds.
pub const MAX_TOKEN_HOURS: u64 = 24 * 365;

#[derive(Debug, Clone)]
pub struct LocalApiOptions {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub token_duration: Duration,
    pub schema: Schema,
}

impl Default for LocalApiOptions {
    fn default() -> Self {
        Self {
            // Loopback only: anyone who can reach the port and read the public
            // key file can rewrite the scheduler's strategy list.
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            state_dir: PathBuf::from("/var/lib/gtp5g-operator"),
            token_duration: Duration::from_secs(24 * 3600),
            schema: Schema::V0,
        }
    }
}

/// JWT claims as the real server issues them; all times in whole seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub(crate) client_id: String,
    pub(crate) exp: u64,
    pub(crate) iat: u64,
    pub(crate) nbf: u64,
    pub(crate) iss: String,
    pub(crate) sub: String,
}

/// Why a Bearer token was refused; the text follows "Invalid or expired
/// token: " and mimics golang-jwt v5's wording, which clients may log or match.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TokenError {
    #[error("token has invalid claims: token is expired")]
    Expired,
    #[error("token has invalid claims: token is not valid yet")]
    NotYetValid,
    #[error("token signature is invalid: crypto/rsa: verification error")]
    BadSignature,
    #[error(
        "token is unverifiable: error while executing keyfunc: unexpected signing method: {0}"
    )]
    WrongAlgorithm(String),
    #[error("token is malformed: {0}")]
    Malformed(String),
}

#[derive(Debug, Default)]
struct StrategyStore {
    /// The last POSTed list, exactly as received; `None` before any POST.
    posted: Option<Vec<Strategy>>,
    /// The real server recomputes its answer after a POST and then serves a
    /// cache; only the response message shows which happened. It starts
    /// `true` because the first GET ever has no cache either.
    recalculate: bool,
}

struct Inner {
    schema: Schema,
    keys: keys::KeyPair,
    public_key_path: PathBuf,
    token_duration: Duration,
    store: Mutex<StrategyStore>,
    posts: watch::Sender<u64>,
    /// The scheduler's last report and when it came (unix seconds).
    scheduler: Mutex<Option<(SchedulerMetrics, u64)>>,
}

#[derive(Clone)]
pub struct LocalApi {
    inner: Arc<Inner>,
}

impl LocalApi {
    /// Load DIR/jwt_private_key.pem + DIR/jwt_public_key.pem, or generate an
    /// RSA-2048 pair on first start (both mode 0600 in a 0700 DIR, public key
    /// as SubjectPublicKeyInfo PEM); a private key open to others is refused.
    pub fn open(state_dir: &Path, token_duration: Duration) -> Result<Self, LocalApiError> {
        Self::open_schema(state_dir, token_duration, Schema::V0)
    }

    /// `open`, speaking `schema`.
    pub fn open_schema(
        state_dir: &Path,
        token_duration: Duration,
        schema: Schema,
    ) -> Result<Self, LocalApiError> {
        if let Schema::Current { priority_level } = schema {
            if i64::from(priority_level) > MAX_PRIORITY_LEVEL {
                return Err(LocalApiError::PriorityLevel(priority_level));
            }
        }
        let keys = keys::load_or_generate(state_dir)?;
        Ok(Self {
            inner: Arc::new(Inner {
                schema,
                keys,
                public_key_path: state_dir.join(keys::PUBLIC_KEY_FILE),
                token_duration,
                store: Mutex::new(StrategyStore { posted: None, recalculate: true }),
                posts: watch::channel(0).0,
                scheduler: Mutex::new(None),
            }),
        })
    }

    pub fn schema(&self) -> Schema {
        self.inner.schema
    }

    pub fn public_key_path(&self) -> PathBuf {
        self.inner.public_key_path.clone()
    }

    pub fn public_key_pem(&self) -> &str {
        &self.inner.keys.public_pem
    }

    /// The posted strategies in force, as the daemon posted them (None when
    /// nothing is); the GET answer is this in the server's schema.
    pub fn strategies(&self) -> Option<Vec<Strategy>> {
        in_force(self.store().posted.as_deref())
    }

    /// Count of successful strategy POSTs; tests await changes.
    pub fn posts(&self) -> watch::Receiver<u64> {
        self.inner.posts.subscribe()
    }

    /// The scheduler's last `/api/v1/metrics` report and when it came.
    pub fn scheduler_metrics(&self) -> Option<(SchedulerMetrics, u64)> {
        *self.inner.scheduler.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn save_scheduler_metrics(&self, report: SchedulerMetrics, at: u64) {
        *self.inner.scheduler.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((report, at));
    }

    /// Serve until `shutdown` resolves, then give in-flight requests
    /// `LIMITS.drain` to finish.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        crate::server::serve(listener, routes::router(self.clone()), LIMITS, shutdown).await
    }

    fn store(&self) -> MutexGuard<'_, StrategyStore> {
        // The store holds plain data that every writer replaces whole, so a
        // panic elsewhere cannot leave it half-updated.
        self.inner.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn replace_strategies(&self, strategies: Vec<Strategy>) {
        let mut store = self.store();
        store.posted = Some(strategies);
        store.recalculate = true;
        drop(store);
        self.inner.posts.send_modify(|n| *n += 1);
    }

    /// The GET answer and whether it was "recalculated" (first read since a
    /// change) rather than served from cache.
    fn read_strategies(&self) -> (Option<Vec<Strategy>>, bool) {
        let mut store = self.store();
        let recalculated = std::mem::replace(&mut store.recalculate, false);
        (self.inner.schema.scheduling(in_force(store.posted.as_deref())), recalculated)
    }

    /// Why a posted list cannot be stored, naming the entry, if so.
    fn check_priorities(&self, strategies: &[Strategy]) -> Result<(), String> {
        let bad = strategies
            .iter()
            .enumerate()
            .find_map(|(i, s)| self.inner.schema.priority_error(s.priority).map(|why| (i, why)));
        bad.map_or(Ok(()), |(i, why)| Err(format!("strategies[{i}].priority: {why}")))
    }

    /// Claims depend only on the current second, and RS256 (PKCS#1 v1.5) is
    /// deterministic, so two requests in one second get the same token, as
    /// with the real server.
    /// The token and its `exp`.
    fn issue_token(&self, now: u64) -> Result<(String, u64), jsonwebtoken::errors::Error> {
        let exp = now.saturating_add(self.inner.token_duration.as_secs());
        let claims = Claims {
            client_id: CLIENT_ID.to_owned(),
            exp,
            iat: now,
            nbf: now,
            iss: ISSUER.to_owned(),
            sub: CLIENT_ID.to_owned(),
        };
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &self.inner.keys.encoding,
        )?;
        Ok((token, exp))
    }

    fn verify_token(&self, token: &str) -> Result<(), TokenError> {
        jsonwebtoken::decode::<serde_json::Value>(token, &self.inner.keys.decoding, &validation())
            .map(drop)
            .map_err(|e| token_error(token, e))
    }

    fn public_key_matches(&self, pem: &str) -> Result<(), keys::KeyCheckError> {
        let submitted = crate::public_key::parse_pem(pem)?;
        if submitted == self.inner.keys.public {
            Ok(())
        } else {
            Err(keys::KeyCheckError::Mismatch)
        }
    }
}

/// Validation as golang-jwt v5 does it: `exp` optional but enforced when
/// present, `nbf` enforced when present, no leeway, no issuer/audience check.
fn validation() -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.required_spec_claims.clear();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.leeway = 0;
    v.validate_aud = false;
    v
}

fn token_error(token: &str, err: jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm(header_alg(token)),
        ErrorKind::InvalidToken => {
            TokenError::Malformed("token contains an invalid number of segments".to_owned())
        }
        _ => TokenError::Malformed(err.to_string()),
    }
}

fn header_alg(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .map_or_else(|_| "unknown".to_owned(), |h| format!("{:?}", h.alg))
}

/// The strategies a GET reports for a posted list. PID strategies pass
/// through in order; entries with neither PID nor selectors are dropped. The
/// real server expands selector strategies into one entry per PID of the
/// matching pods; this server has no pods, so a selector strategy matches
/// nothing and is dropped too. An empty result is `None` (`null` on the wire).
fn in_force(posted: Option<&[Strategy]>) -> Option<Vec<Strategy>> {
    let kept: Vec<Strategy> =
        posted?.iter().filter(|s| s.selectors.is_empty() && s.pid != 0).cloned().collect();
    (!kept.is_empty()).then_some(kept)
}

/// For the CLI: open the key pair, bind `opts.listen`, and serve until
/// `shutdown` resolves.
pub async fn run(
    opts: LocalApiOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LocalApiError> {
    let api = LocalApi::open_schema(&opts.state_dir, opts.token_duration, opts.schema)?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| LocalApiError::Bind { addr: opts.listen, source })?;
    let addr = listener.local_addr().map_err(LocalApiError::Serve)?;
    tracing::info!(
        schema = ?opts.schema,
        "local API listening on {addr}, public key at {}",
        api.public_key_path().display()
    );
    api.serve(listener, shutdown).await.map_err(LocalApiError::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Selector;

    fn pid(pid: i64) -> Strategy {
        Strategy {
            priority: true.into(),
            execution_time: 20_000_000,
            pid,
            selectors: vec![],
            command_regex: String::new(),
        }
    }

    #[test]
    fn in_force_drops_pidless_and_selector_entries_keeping_order() {
        let mut selector = pid(9);
        selector.selectors = vec![Selector { key: "app".into(), value: "x".into() }];
        let posted = [pid(3), pid(0), selector, pid(1)];
        assert_eq!(in_force(Some(&posted)), Some(vec![pid(3), pid(1)]));
    }

    #[test]
    fn nothing_in_force_is_none() {
        assert_eq!(in_force(None), None);
        assert_eq!(in_force(Some(&[])), None);
        assert_eq!(in_force(Some(&[pid(0)])), None);
    }

    #[test]
    fn current_schema_serves_levels_and_an_empty_list_as_empty() {
        let current = Schema::Current { priority_level: 4 };
        let level = |n, p| Strategy { priority: Priority::Level(n), ..pid(p) };
        let off = Strategy { priority: false.into(), ..pid(8) };
        let served = current.scheduling(Some(vec![pid(3), off.clone(), level(15, 9)]));
        assert_eq!(served, Some(vec![level(4, 3), level(15, 9)]));
        assert_eq!(current.scheduling(None), Some(vec![]));
        assert_eq!(Schema::V0.scheduling(Some(vec![off.clone()])), Some(vec![off]));
        assert_eq!(Schema::V0.scheduling(None), None);
    }

    #[test]
    fn v0_refuses_integer_priorities_current_refuses_levels_above_20() {
        let current = Schema::Current { priority_level: 1 };
        assert!(Schema::V0
            .priority_error(Priority::Level(1))
            .unwrap()
            .contains("--schema current"));
        assert_eq!(Schema::V0.priority_error(true.into()), None);
        assert_eq!(current.priority_error(Priority::Level(20)), None);
        assert!(current.priority_error(Priority::Level(21)).is_some());
        assert_eq!(current.priority_error(false.into()), None);
    }

    #[test]
    fn a_level_above_20_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let err = LocalApi::open_schema(
            dir.path(),
            Duration::from_secs(1),
            Schema::Current { priority_level: 21 },
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("--priority-level 21"), "{err}");
        assert!(!dir.path().join(keys::PRIVATE_KEY_FILE).exists(), "checked before any key work");
    }
}
