//! gtp5g-operator: trace_pipe lines in, Gthulhu scheduling strategies out.
//!
//! # Layout
//!
//! Data flows one way, source -> parse -> track -> publish; each stage
//! imports only the ones before it.
//!
//! - [`source`]: the reader thread. Opens and tails `trace_pipe` (or a file
//!   or FIFO) and hands on raw chunks, as read. By default the trace_pipe of
//!   a tracing instance of the operator's own ([`source::instance`]); a busy
//!   one's holders are named ([`source::holders`]).
//! - [`parse`]: bytes to lines ([`parse::framing`]), lines to trace records
//!   ([`parse::line`]), `bpf_printk` text to events ([`parse::message`]).
//! - [`track`]: which nr-gnb / nr-ue processes and threads to boost, checked
//!   against `/proc` ([`track::procfs`]), kept across restarts
//!   ([`track::state`]); its output is a [`track::Tracked`] id set.
//! - [`pipeline`]: frame -> parse -> track for a stream of chunks;
//!   [`pipeline::thread`] is the tracker thread that runs it, owns the
//!   tracker, watches pidfds and hands each new `Tracked` set on.
//! - [`publish`]: keeps the API's strategy list equal to the `Tracked` set
//!   (debounce, interval, backoff), through its HTTP client
//!   ([`publish::client`]) speaking the wire types of [`api`].
//!
//! Assembling the stages:
//!
//! - [`daemon`]: `run`: reader thread -> tracker thread -> publisher task,
//!   with reload and shutdown. [`replay`]: a recorded trace through the same
//!   reader, pipeline and tracker, reporting what would be posted.
//! - [`config`] (the settings every stage is built from), [`stats`] (the
//!   shared counters), [`metrics`] (`/metrics`, `/healthz`), [`status`]
//!   (`/status` and the `status` command's table), [`log`],
//!   [`signal`], [`systemd`] and [`ready`] (readiness told to systemd and
//!   to scripts).
//!
//! Shared helpers: [`backoff`], [`clock`], [`wake`] (the self-pipe of the
//! two poll(2) threads), [`public_key`], [`server`] (the hardened accept
//! loop both HTTP listeners run). And [`local_api`], a local Gthulhu
//! API server for tests and for labs without a cluster.

// 1. Source: trace_pipe -> chunks, on the reader thread.
pub mod source;

// 2. Parse: chunks -> lines -> events.
pub mod parse;

// 3. Track: events -> the `Tracked` id set.
pub mod track;

// 2+3 run together: the pipeline, on the tracker thread.
pub mod pipeline;

// 4. Publish: `Tracked` -> the API's strategy list (its wire types in `api`).
pub mod api;
pub mod publish;

// Assembly and operation.
pub mod config;
pub mod daemon;
pub mod log;
pub mod metrics;
pub mod ready;
pub mod replay;
pub mod signal;
pub mod stats;
pub mod status;
pub mod systemd;

// Shared helpers.
pub mod backoff;
pub mod clock;
pub mod public_key;
pub mod server;
pub mod wake;

// A local Gthulhu API server (tests, labs without a cluster).
pub mod local_api;
