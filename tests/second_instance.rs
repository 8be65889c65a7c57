//! A second `surge serve` started by mistake on the same address and journal must
//! fail without disturbing the running one: it may not take the shards' leases
//! (which would fence the running instance's journal writes) before it knows it
//! can serve.

use serde_json::json;
use std::time::{Duration, Instant};

mod common;

use common::process::{Serve, SurgeProcess};

const SECRET: &str = "surge-second-instance-secret-0123456789";

fn start(storage_url: &str, port: u16) -> SurgeProcess {
    Serve::new(SECRET)
        .storage(storage_url)
        .port(port)
        .env("SURGE__ENGINE__SHARDS", "2")
        .quiet()
        .spawn()
}

async fn create_account(server: &SurgeProcess, id: &str) -> u16 {
    server
        .api(&common::tokens::operator_token(
            SECRET,
            "second-instance-test",
        ))
        .post("/v1/accounts", json!({"id": id, "currency": "USD"}))
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_second_instance_on_a_taken_port_fails_and_the_first_keeps_writing() {
    let (_dir, storage) = common::temp_sqlite();
    let port = common::free_port();
    let mut first = start(&storage, port);
    first.wait_ready().await;
    assert_eq!(create_account(&first, "before").await, 201);

    let mut second = start(&storage, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the second instance kept running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success(), "the second instance must fail");

    // Still the owner of its shards: writes on every shard go through.
    for id in [
        "after-1", "after-2", "after-3", "after-4", "after-5", "after-6",
    ] {
        assert_eq!(create_account(&first, id).await, 201, "account {id}");
    }
    first.kill();
}
