//! Black-box tests of the HTTP API through a spawned server.

mod accounts;
mod errors;
mod helpers;
mod items;
mod operations;
mod payments;
