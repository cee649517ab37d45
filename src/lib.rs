pub mod api;
pub mod parse;
pub mod track;
