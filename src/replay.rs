//! Replay: a recorded trace through the daemon's reader and pipeline, and
//! the report of what the daemon would have posted.

use crate::api::{StrategiesRequest, Strategy, STRATEGIES_PATH};
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::publish;
use crate::source::{self, AtEnd, Event, Reader};
use crate::stats::Counts;
use crate::track::procfs::NoProc;
use crate::track::{TrackedProcess, Tracker};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// What a replay found, and the exact list that would be posted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplayReport {
    pub counts: Counts,
    pub dropped: u64,
    pub processes: Vec<TrackedProcess>,
    pub strategies: Vec<Strategy>,
}

/// Runs a recorded trace through the daemon's reader and pipeline. /proc is
/// not consulted: its processes are not the recorded ones.
pub fn replay(path: &Path, cfg: &Config) -> Result<ReplayReport, source::SourceError> {
    let mut tracker = Tracker::from_config(&cfg.targets, NoProc);
    let mut pipeline = Pipeline::new(cfg.trace.max_line_bytes);
    let (tx, rx) = std::sync::mpsc::channel();
    let (threads, strategy) = (cfg.targets.threads, cfg.strategy.clone());
    let path: PathBuf = path.to_path_buf();
    let reader = Reader::spawn(
        move || Ok(path.clone()),
        AtEnd::Finish,
        move |event| match event {
            Event::Data(chunk) => {
                pipeline.push(chunk, &mut tracker);
            }
            Event::Down { error, .. } => {
                let _ = tx.send(Err(error));
            }
            Event::End => {
                pipeline.finish(&mut tracker);
                let _ = tx.send(Ok(ReplayReport {
                    counts: pipeline.take_counts(),
                    dropped: tracker.stats().dropped,
                    processes: tracker.processes(),
                    strategies: publish::strategies(&tracker.pids(threads), &strategy),
                }));
            }
            Event::Opened(_) => {}
        },
    )
    .map_err(reader_error)?;
    reader.join();
    // The first word is the one that counts: a failed open is followed by End.
    rx.recv().map_err(|_| reader_error(std::io::Error::other("ended without a report")))?
}

fn reader_error(source: std::io::Error) -> source::SourceError {
    source::SourceError::Read { path: PathBuf::from("<reader thread>"), source }
}

impl ReplayReport {
    /// The human-readable report: counters, the processes found and the
    /// exact POST body. `file` and `names` only label it.
    pub fn text(&self, file: &Path, names: &[String]) -> Result<String, serde_json::Error> {
        let mut out = String::new();
        let counts: Vec<String> =
            self.counts.rows().iter().map(|r| format!("{} {}", r.value, r.label)).collect();
        // Writing to a String cannot fail.
        let _ =
            writeln!(out, "{}: {}, {} dropped", file.display(), counts.join(", "), self.dropped);
        if self.processes.is_empty() {
            let _ = writeln!(out, "no target processes found ({})", names.join(", "));
        }
        for p in &self.processes {
            let pid = p.pid.map_or("unknown".to_string(), |p| p.to_string());
            let threads: Vec<String> = p.threads.iter().map(u32::to_string).collect();
            let _ = writeln!(out, "{:<8} process {:<8} threads {}", p.name, pid, threads.join(" "));
        }
        let body = StrategiesRequest { strategies: self.strategies.clone() };
        let _ = writeln!(out, "would POST {STRATEGIES_PATH}:\n{}", serde_json::to_string(&body)?);
        Ok(out)
    }
}
