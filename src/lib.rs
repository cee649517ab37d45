pub mod api;
pub mod local_api;
