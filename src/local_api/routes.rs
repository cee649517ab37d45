//! HTTP surface: routing, auth, and the exact response shapes of the real
//! server (JSON followed by a newline, bare 405, Go-style text 404, CORS).

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{LocalApi, Schema, TokenError};
use crate::api::{
    MetricsResponse, SchedulerMetrics, StatusResponse, StrategiesRequest, StrategiesResponse,
    TokenData, TokenRequest, TokenResponse, HEALTH_PATH, METRICS_PATH, STRATEGIES_PATH, TOKEN_PATH,
};
use crate::clock::{rfc3339_utc, unix_secs};

/// Far above any real strategy list (22 entries in the field) yet small
/// enough that a confused client cannot make the server buffer much. Only
/// a client holding a token gets this far.
const BODY_LIMIT: usize = 4 * 1024 * 1024;
/// What anyone may make the server read: a token request carries one PEM
/// public key (under 2 KiB for RSA-4096).
const TOKEN_BODY_LIMIT: usize = 64 * 1024;

pub(super) fn router(api: LocalApi) -> Router {
    // A route layer runs before the handler's extractors, so a request
    // without a valid token is answered before a byte of its body is read.
    let strategies = get(get_strategies)
        .post(post_strategies)
        .route_layer(middleware::from_fn_with_state(api.clone(), require_token));
    let metrics = get(get_metrics)
        .post(post_metrics)
        .route_layer(middleware::from_fn_with_state(api.clone(), require_token));
    Router::new()
        .route(TOKEN_PATH, post(token).layer(DefaultBodyLimit::max(TOKEN_BODY_LIMIT)))
        .route(STRATEGIES_PATH, strategies)
        .route(HEALTH_PATH, get(health))
        .route(METRICS_PATH, metrics)
        // Must follow the routes: it is applied to the ones already added.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(middleware::from_fn(cors))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(api)
}

/// Answers preflights for every path without auth, and marks every response
/// as readable cross-origin, as the real server's outermost middleware does.
async fn cors(req: Request, next: Next) -> Response {
    let mut response = if req.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(req).await
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Authorization"),
    );
    response
}

async fn method_not_allowed() -> StatusCode {
    StatusCode::METHOD_NOT_ALLOWED
}

/// Byte-for-byte Go's `http.NotFound`.
async fn not_found() -> Response {
    let mut response = (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// JSON plus the trailing newline Go's `json.Encoder` writes.
fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn failure(status: StatusCode, error: String) -> Response {
    json(
        status,
        &StatusResponse { success: false, error: Some(error), ..StatusResponse::default() },
    )
}

fn now_stamp() -> String {
    rfc3339_utc(unix_secs())
}

/// Decodes the first JSON value of a body and ignores whatever follows, as
/// Go's `json.NewDecoder(r.Body).Decode` does; an empty body reads as "EOF".
fn decode_first<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    match serde_json::Deserializer::from_slice(body).into_iter::<T>().next() {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("EOF".to_owned()),
    }
}

/// A request's body, or the API's own answer when it cannot be read (too
/// long, cut off): axum's rejection text would not be in the API's shape.
struct RequestBody(Bytes);

impl<S: Send + Sync> FromRequest<S> for RequestBody {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state).await.map(Self).map_err(|rejection: BytesRejection| {
            failure(rejection.status(), format!("Invalid request body: {rejection}"))
        })
    }
}

async fn token(State(api): State<LocalApi>, RequestBody(body): RequestBody) -> Response {
    let request: TokenRequest = match decode_first(&body) {
        Ok(request) => request,
        Err(detail) => {
            return failure(StatusCode::BAD_REQUEST, format!("Invalid JSON format: {detail}"))
        }
    };
    if let Err(e) = api.public_key_matches(&request.public_key) {
        tracing::info!(reason = %e, "token refused");
        return failure(StatusCode::UNAUTHORIZED, format!("Public key verification failed: {e}"));
    }
    let now = unix_secs();
    match api.issue_token(now) {
        Ok((token, exp)) => json(StatusCode::OK, &token_answer(api.schema(), token, exp, now)),
        Err(e) => {
            failure(StatusCode::INTERNAL_SERVER_ERROR, format!("Failed to generate token: {e}"))
        }
    }
}

/// v0.1: `token` beside a message; current: `data{token, expired_at}` and
/// no message, as each generation's server answers.
fn token_answer(schema: Schema, token: String, exp: u64, now: u64) -> TokenResponse {
    let timestamp = Some(rfc3339_utc(now));
    match schema {
        Schema::V0 => TokenResponse {
            status: StatusResponse {
                success: true,
                message: Some("Token generated successfully".to_owned()),
                timestamp,
                error: None,
            },
            token: Some(token),
            data: None,
        },
        Schema::Current { .. } => TokenResponse {
            status: StatusResponse { success: true, timestamp, ..StatusResponse::default() },
            token: None,
            data: Some(TokenData { token, expired_at: Some(exp) }),
        },
    }
}

/// Why a protected request was refused; the text is the real server's.
#[derive(Debug, thiserror::Error)]
enum AuthError {
    #[error("Authorization header is required")]
    Missing,
    #[error("Authorization header must start with 'Bearer '")]
    NotBearer,
    #[error("Invalid or expired token: {0}")]
    Invalid(#[from] TokenError),
}

/// Checks `Authorization: Bearer <JWT>`. An empty header counts as missing,
/// as Go's `Header.Get` makes it look.
fn authorize(api: &LocalApi, headers: &HeaderMap) -> Result<(), AuthError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .filter(|v| !v.is_empty())
        .ok_or(AuthError::Missing)?;
    let token = value
        .strip_prefix(b"Bearer ")
        .filter(|t| !t.iter().all(u8::is_ascii_whitespace))
        .ok_or(AuthError::NotBearer)?;
    Ok(api.verify_token(&String::from_utf8_lossy(token))?)
}

async fn require_token(State(api): State<LocalApi>, req: Request, next: Next) -> Response {
    match authorize(&api, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => failure(StatusCode::UNAUTHORIZED, e.to_string()),
    }
}

async fn post_strategies(State(api): State<LocalApi>, RequestBody(body): RequestBody) -> Response {
    let request: StrategiesRequest = match decode_first(&body)
        .and_then(|r: StrategiesRequest| api.check_priorities(&r.strategies).map(|()| r))
    {
        Ok(request) => request,
        Err(detail) => {
            return failure(StatusCode::BAD_REQUEST, format!("Invalid request payload: {detail}"))
        }
    };
    let pids: Vec<i64> = request.strategies.iter().map(|s| s.pid).collect();
    tracing::info!(count = pids.len(), ?pids, "strategies received");
    api.replace_strategies(request.strategies);
    json(
        StatusCode::OK,
        &StatusResponse {
            success: true,
            message: Some("Scheduling strategies saved successfully".to_owned()),
            timestamp: Some(now_stamp()),
            error: None,
        },
    )
}

async fn get_strategies(State(api): State<LocalApi>) -> Response {
    let (scheduling, recalculated) = api.read_strategies();
    let message = if recalculated {
        "Scheduling strategies recalculated due to pod changes"
    } else {
        "Scheduling strategies retrieved from cache"
    };
    json(
        StatusCode::OK,
        &StrategiesResponse {
            status: StatusResponse {
                success: true,
                message: Some(message.to_owned()),
                timestamp: Some(now_stamp()),
                error: None,
            },
            scheduling,
        },
    )
}

/// The scheduler's report, kept until the next: each generation's answers
/// (v0.1: "Invalid JSON format", "Metrics saved successfully"; current:
/// "Invalid request payload", a bare success).
async fn post_metrics(State(api): State<LocalApi>, RequestBody(body): RequestBody) -> Response {
    let (bad, saved) = match api.schema() {
        Schema::V0 => ("Invalid JSON format", Some("Metrics saved successfully")),
        Schema::Current { .. } => ("Invalid request payload", None),
    };
    let report: SchedulerMetrics = match decode_first(&body) {
        Ok(report) => report,
        Err(detail) => return failure(StatusCode::BAD_REQUEST, format!("{bad}: {detail}")),
    };
    tracing::debug!(?report, "scheduler metrics received");
    api.save_scheduler_metrics(report, unix_secs());
    json(
        StatusCode::OK,
        &StatusResponse {
            success: true,
            message: saved.map(str::to_owned),
            timestamp: Some(now_stamp()),
            error: None,
        },
    )
}

/// The last report, as the v0.1 server answers (both schemas: the daemon
/// reads it for /status).
async fn get_metrics(State(api): State<LocalApi>) -> Response {
    let held = api.scheduler_metrics();
    let message = if held.is_some() {
        "Metrics retrieved successfully"
    } else {
        "No metrics data available yet"
    };
    json(
        StatusCode::OK,
        &MetricsResponse {
            status: StatusResponse {
                success: held.is_some(),
                message: Some(message.to_owned()),
                timestamp: Some(now_stamp()),
                error: None,
            },
            data: held.map(|(report, _)| report),
            metrics_timestamp: held.map(|(_, at)| rfc3339_utc(at)),
        },
    )
}

#[derive(Serialize)]
struct HealthResponse {
    status: &'static str,
    timestamp: String,
    service: &'static str,
}

async fn health() -> Response {
    json(
        StatusCode::OK,
        &HealthResponse {
            status: "healthy",
            timestamp: now_stamp(),
            service: "BSS Metrics API Server",
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_first_ignores_trailing_data_and_reports_eof() {
        let r: StrategiesRequest = decode_first(br#"{"strategies":[]} garbage {"#).unwrap();
        assert!(r.strategies.is_empty());
        assert_eq!(decode_first::<StrategiesRequest>(b"  \n").unwrap_err(), "EOF");
        assert!(decode_first::<StrategiesRequest>(b"{").is_err());
    }
}
