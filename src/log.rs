//! Log set-up: human-readable by default, JSON on request, to stderr (the
//! journal under systemd).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

pub fn filter(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(level).map_err(|e| format!("{level:?}: {e}"))
}

/// Installs the global subscriber; `RUST_LOG` wins over the configured level.
pub fn init(format: LogFormat, level: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|l| filter(&l).ok())
        .unwrap_or_else(|| filter(level).unwrap_or_else(|_| EnvFilter::new("info")));
    // Colour codes only for a terminal: not for the journal or a log file.
    // A failed write is dropped quietly: tracing-subscriber would report it
    // with eprintln!, which panics when stderr itself is what failed (a
    // closed pipe), taking down whichever task was logging.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
