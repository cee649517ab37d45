//! gtp5g-operator: trace_pipe (source) -> parse -> track -> publish.

pub mod api;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod local_api;
pub mod log;
pub mod metrics;
pub mod parse;
pub mod pipeline;
pub mod public_key;
pub mod publish;
pub mod replay;
pub mod signal;
pub mod source;
pub mod stats;
pub mod systemd;
pub mod track;
pub mod wake;
