//! The harness every server test binary shares: an in-process application
//! (`app`), a `surge` process killed on drop (`process`), tokens (`tokens`), raw
//! HTTP requests (`http`), feed sockets (`feed`) and throwaway PostgreSQL
//! databases (`postgres`).
//!
//! Each binary compiles this module (`mod common;`, or
//! `#[path = "../common/mod.rs"] mod common;` from `tests/api/`) and uses only
//! part of it, hence `dead_code` is allowed here.
#![allow(dead_code)]

pub mod app;
pub mod feed;
pub mod http;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod tokens;

use std::time::Duration;

/// A port nothing listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free local port")
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// The storage URL of a SQLite journal file inside `dir`.
pub fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/surge.db", dir.path().display())
}

/// A fresh temporary directory and the URL of a SQLite journal inside it; the
/// file goes when the directory is dropped.
pub fn temp_sqlite() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_url(&dir);
    (dir, url)
}

/// Polls until `check` holds (for engine-driven changes such as expiry); panics
/// after 300 tries 20 ms apart.
pub async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition never held");
}
