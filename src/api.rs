//! Wire types of the Gthulhu API contract (see README "API contract").
//!
//! Shared by the publisher (client) and the local API server so that both
//! sides agree on one definition of the JSON.

use serde::{Deserialize, Serialize};

pub const TOKEN_PATH: &str = "/api/v1/auth/token";
pub const STRATEGIES_PATH: &str = "/api/v1/scheduling/strategies";
pub const HEALTH_PATH: &str = "/health";

/// A pod-label selector, expanded to pids by the server itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Selector {
    pub key: String,
    pub value: String,
}

/// One scheduling strategy. `pid` 0, empty `selectors` and empty
/// `command_regex` are omitted on the wire, as the real server does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Strategy {
    // Missing fields decode to zero values, as Go's encoding/json does.
    #[serde(default)]
    pub priority: bool,
    /// Time slice in nanoseconds.
    #[serde(default)]
    pub execution_time: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pid: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<Selector>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command_regex: String,
}

fn is_zero(pid: &i64) -> bool {
    *pid == 0
}

/// Body of `POST /api/v1/scheduling/strategies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategiesRequest {
    pub strategies: Vec<Strategy>,
}

/// Body of `POST /api/v1/auth/token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRequest {
    pub public_key: String,
}

/// Generic answer: `{"success":..,"message":..,"timestamp":..}` or
/// `{"success":false,"error":..}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatusResponse {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Answer of `POST /api/v1/auth/token`: `token` on success, `error` otherwise.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenResponse {
    #[serde(flatten)]
    pub status: StatusResponse,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Answer of `GET /api/v1/scheduling/strategies`; `scheduling` is `null`
/// when nothing is in force.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StrategiesResponse {
    #[serde(flatten)]
    pub status: StatusResponse,
    pub scheduling: Option<Vec<Strategy>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_pid_and_empty_fields_are_omitted() {
        let s = Strategy {
            priority: true,
            execution_time: 20_000_000,
            pid: 0,
            selectors: vec![],
            command_regex: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"priority":true,"execution_time":20000000}"#
        );
    }

    #[test]
    fn decoding_is_strict_by_type() {
        assert!(serde_json::from_str::<Strategy>(
            r#"{"priority":true,"execution_time":1,"pid":"123"}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Strategy>(r#"{"priority":1,"execution_time":1}"#).is_err());
        assert!(
            serde_json::from_str::<Strategy>(r#"{"priority":true,"execution_time":-1}"#).is_err()
        );
        let s: Strategy =
            serde_json::from_str(r#"{"priority":true,"execution_time":5,"pid":7,"extra":1}"#)
                .unwrap();
        assert_eq!(s.pid, 7);
    }
}
