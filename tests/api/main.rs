//! Black-box tests of the HTTP API through a spawned server.

mod accounts;
mod contract;
mod errors;
mod feed;
mod helpers;
mod items;
mod operations;
mod orders;
mod payments;
