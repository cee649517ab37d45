//! Wire types of the Gthulhu API contract (see README "API contract").
//!
//! Shared by the publisher (client) and the local API server so that both
//! sides agree on one definition of the JSON. Two generations of the
//! contract meet here: the v0.1 API (boolean `priority`, top-level `token`)
//! and the current scheduler (integer `priority`, token inside `data`).

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

pub const TOKEN_PATH: &str = "/api/v1/auth/token";
pub const STRATEGIES_PATH: &str = "/api/v1/scheduling/strategies";
pub const HEALTH_PATH: &str = "/health";

/// A pod-label selector, expanded to pids by the server itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Selector {
    pub key: String,
    pub value: String,
}

/// Highest priority level the current scheduler accepts (kernel mode: 0-9
/// preempt, 10-20 a virtual-time reduction, lower is stronger).
pub const MAX_PRIORITY_LEVEL: i64 = 20;

/// A strategy's `priority`: the v0.1 API's boolean (true: minimum virtual
/// time), or the current scheduler's integer. On the wire it is a plain JSON
/// boolean or integer; a string or a fraction is refused, as Go's decoder
/// refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Priority {
    Flag(bool),
    Level(i64),
}

impl Default for Priority {
    /// Go's zero value of the v0.1 field.
    fn default() -> Self {
        Priority::Flag(false)
    }
}

impl From<bool> for Priority {
    fn from(flag: bool) -> Self {
        Priority::Flag(flag)
    }
}

impl Priority {
    /// Why this priority is not one the current scheduler accepts, if so.
    pub fn level_error(self) -> Option<String> {
        match self {
            Priority::Level(n) if !(0..=MAX_PRIORITY_LEVEL).contains(&n) => {
                Some(format!("level {n} is outside 0-{MAX_PRIORITY_LEVEL}"))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Priority::Flag(b) => write!(f, "{b}"),
            Priority::Level(n) => write!(f, "{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PriorityVisitor)
    }
}

struct PriorityVisitor;

impl serde::de::Visitor<'_> for PriorityVisitor {
    type Value = Priority;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean or an integer priority level")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Priority, E> {
        Ok(Priority::Flag(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Priority, E> {
        Ok(Priority::Level(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Priority, E> {
        i64::try_from(v)
            .map(Priority::Level)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
    }
}

/// One scheduling strategy. `pid` 0, empty `selectors` and empty
/// `command_regex` are omitted on the wire, as the real server does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Strategy {
    // Missing fields decode to zero values, as Go's encoding/json does.
    #[serde(default)]
    pub priority: Priority,
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

/// Answer of `POST /api/v1/auth/token`: `token` (v0.1) or `data` (current)
/// on success, `error` otherwise.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenResponse {
    #[serde(flatten)]
    pub status: StatusResponse,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<TokenData>,
}

/// The current API's `data` member of a token answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenData {
    pub token: String,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<u64>,
}

impl TokenResponse {
    /// The token and the expiry the server states beside it (the current
    /// API's `expired_at`), from either form of answer.
    pub fn into_token(self) -> Option<(String, Option<u64>)> {
        match (self.token, self.data) {
            (Some(token), _) if !token.is_empty() => Some((token, None)),
            (_, Some(data)) if !data.token.is_empty() => Some((data.token, data.expired_at)),
            _ => None,
        }
    }
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
            priority: Priority::Flag(true),
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
    fn priority_is_a_boolean_or_an_integer_and_nothing_else() {
        let decode = |p: &str| {
            serde_json::from_str::<Strategy>(&format!(r#"{{"priority":{p},"execution_time":1}}"#))
                .map(|s| s.priority)
        };
        assert_eq!(decode("true").unwrap(), Priority::Flag(true));
        assert_eq!(decode("0").unwrap(), Priority::Level(0));
        assert_eq!(decode("-3").unwrap(), Priority::Level(-3));
        for bad in [r#""1""#, "1.5", "null", "18446744073709551615"] {
            let err = decode(bad).unwrap_err().to_string();
            assert!(err.contains("a boolean or an integer priority level"), "{bad}: {err}");
        }
        assert_eq!(serde_json::to_string(&Priority::Level(7)).unwrap(), "7");
        assert_eq!(serde_json::to_string(&Priority::Flag(true)).unwrap(), "true");
        assert_eq!(Priority::Level(21).level_error().unwrap(), "level 21 is outside 0-20");
        assert_eq!(Priority::Level(-1).level_error().unwrap(), "level -1 is outside 0-20");
        assert_eq!(Priority::Level(20).level_error(), None);
    }

    #[test]
    fn token_from_either_answer() {
        let read = |body: &str| serde_json::from_str::<TokenResponse>(body).unwrap().into_token();
        assert_eq!(read(r#"{"success":true,"token":"a.b.c"}"#), Some(("a.b.c".into(), None)));
        assert_eq!(
            read(r#"{"success":true,"data":{"token":"d.e.f","expired_at":99},"timestamp":"x"}"#),
            Some(("d.e.f".into(), Some(99)))
        );
        assert_eq!(read(r#"{"success":true,"data":{"token":""}}"#), None);
        assert_eq!(read(r#"{"success":true}"#), None);
    }

    #[test]
    fn decoding_is_strict_by_type() {
        assert!(serde_json::from_str::<Strategy>(
            r#"{"priority":true,"execution_time":1,"pid":"123"}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<Strategy>(r#"{"priority":true,"execution_time":-1}"#).is_err()
        );
        let s: Strategy =
            serde_json::from_str(r#"{"priority":true,"execution_time":5,"pid":7,"extra":1}"#)
                .unwrap();
        assert_eq!(s.pid, 7);
    }
}

/// Where today's scheduler POSTs its statistics, every second.
pub const METRICS_PATH: &str = "/api/v1/metrics";

/// The scheduler's report (its BPF side's counters), the POST body of
/// `/api/v1/metrics` as the scheduler's plugin sends it and both API
/// generations decode it: every field an unsigned integer, a missing one
/// zero, unknown ones ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerMetrics {
    pub usersched_last_run_at: u64,
    pub nr_queued: u64,
    pub nr_scheduled: u64,
    pub nr_running: u64,
    pub nr_online_cpus: u64,
    pub nr_user_dispatches: u64,
    pub nr_kernel_dispatches: u64,
    pub nr_cancel_dispatches: u64,
    pub nr_bounce_dispatches: u64,
    pub nr_failed_dispatches: u64,
    pub nr_sched_congested: u64,
}

/// GET `/api/v1/metrics`: the last report and when it came (v0.1 server's
/// answer; absent members before any report).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MetricsResponse {
    #[serde(flatten)]
    pub status: StatusResponse,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<SchedulerMetrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_timestamp: Option<String>,
}
