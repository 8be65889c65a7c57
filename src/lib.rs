//! Surge server.

pub mod storage;
