//! A second `surge serve` started by mistake on the same address and journal must
//! fail without disturbing the running one: it may not take the shards' leases
//! (which would fence the running instance's journal writes) before it knows it
//! can serve.

use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, wait_ready};

const SECRET: &str = "surge-second-instance-secret-0123456789";

fn start(storage_url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_surge"))
        .arg("serve")
        .env("SURGE__HTTP__ADDR", format!("127.0.0.1:{port}"))
        .env("SURGE__STORAGE__URL", storage_url)
        .env("SURGE__AUTH__JWT_SECRET", SECRET)
        .env("SURGE__ENGINE__SHARDS", "2")
        .env("SURGE__LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("surge binary starts")
}

async fn create_account(http: &reqwest::Client, base: &str, id: &str) -> u16 {
    http.post(format!("{base}/v1/accounts"))
        .bearer_auth(common::operator_token(SECRET, "second-instance-test"))
        .json(&json!({"id": id, "currency": "USD"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_second_instance_on_a_taken_port_fails_and_the_first_keeps_writing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}/surge.db", dir.path().display());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut first = start(&storage, port);
    wait_ready(&http, &base).await;
    assert_eq!(create_account(&http, &base, "before").await, 201);

    let mut second = start(&storage, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
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
        assert_eq!(create_account(&http, &base, id).await, 201, "account {id}");
    }
    first.kill().unwrap();
    first.wait().unwrap();
}
