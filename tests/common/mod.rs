//! Helpers shared by the black-box tests that run `surge` as a process: a free
//! port, an operator token for a test's own secret, and waiting for readiness.
//! Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};
use surge::api::auth::{AuthKeys, Claims, Role};

/// How long a freshly started process may take to answer `/ready` with 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A port nothing listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free local port")
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// An operator token for `sub`, signed with `secret`, valid for an hour.
pub fn operator_token(secret: &str, sub: &str) -> String {
    AuthKeys::from_secret(secret.as_bytes())
        .mint(&Claims {
            sub: sub.into(),
            exp: surge_actors::engine::system_clock_ms() / 1000 + 3600,
            role: Role::Operator,
            accounts: None,
        })
        .expect("a token for a test secret")
}

/// Waits for `GET {base}/ready` to answer 200; panics after `READY_TIMEOUT`.
pub async fn wait_ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(response) = http.get(format!("{base}/ready")).send().await {
            if response.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("surge at {base} did not become ready");
}
