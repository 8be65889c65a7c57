//! Surge server.

pub mod api;
pub mod storage;
