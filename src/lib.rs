pub mod api;
pub mod parse;
