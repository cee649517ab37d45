pub mod api;
pub mod parse;
pub mod track;
pub mod pipeline;
pub mod source;
pub mod stats;
pub mod config;
pub mod log;
