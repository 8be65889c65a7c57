//! Black-box tests of the HTTP API through a spawned server.

mod accounts;
mod archive;
mod auth;
#[path = "../common/mod.rs"]
mod common;
mod contract;
mod errors;
mod feed;
mod items;
mod operations;
mod orders;
mod payments;
