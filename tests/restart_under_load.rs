//! Shard panics and operator restarts while clients keep paying: no request
//! hangs, every acknowledged payment survives, money is conserved, and retrying
//! a 503 with the same id gives the right answer.

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use common::http::Api;

const SECRET: &str = "surge-restart-test-secret-0123456789";
const ACCOUNTS: usize = 12;

fn token() -> String {
    common::tokens::operator_token(SECRET, "ops")
}

/// Sends until the answer is not 503: the same id makes retries safe.
async fn pay_until_answered(api: &Api, body: Value) -> (u16, Value) {
    for _ in 0..200 {
        let response = api
            .post_request("/v1/payments")
            .json(&body)
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .expect("no request may hang or fail at the transport level");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        if status != 503 {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a payment was refused with 503 for too long");
}

#[actix_web::test]
async fn panics_and_operator_restarts_under_load_lose_nothing_and_hang_nothing() {
    let (_dir, storage_url) = common::temp_sqlite();
    let mut settings = common::app::base_settings(SECRET);
    settings.storage.url = storage_url;
    settings.admin.fault_injection = true;
    settings.engine.shards = 4;
    settings.engine.snapshot_every_events = 200;
    settings.rate_limit.requests_per_s = 1_000_000;
    let api = Api::new(&common::app::run(settings).await, &token());
    for i in 0..ACCOUNTS {
        let r = api
            .post(
                "/v1/accounts",
                json!({"id": format!("a{i}"), "currency": "USD"}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let r = api
            .post(
                &format!("/v1/accounts/a{i}/deposits"),
                json!({"amount": "500"}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let (api, acknowledged) = (api.clone(), acknowledged.clone());
            actix_web::rt::spawn(async move {
                for n in 0..60 {
                    let from = (worker * 7 + n) % ACCOUNTS;
                    let to = (from + 1 + n % (ACCOUNTS - 1)) % ACCOUNTS;
                    let id = format!("w{worker}-{n}");
                    let body = json!({"id": id, "from": format!("a{from}"), "to": format!("a{to}"), "amount": "1.10", "currency": "USD", "capture": n % 3 != 0});
                    let (status, body) = pay_until_answered(&api, body).await;
                    assert!(status == 201 || status == 422, "{status} {body}");
                    acknowledged.lock().unwrap().push((id, body["status"].as_str().unwrap_or("rejected").to_owned()));
                }
            })
        })
        .collect();

    // Meanwhile, crash and restart shards.
    for round in 0..12 {
        let shard = round % 4;
        let path = if round % 2 == 0 {
            format!("/admin/shards/{shard}/fault")
        } else {
            format!("/admin/shards/{shard}/restart")
        };
        let body = if round % 2 == 0 {
            json!({"kind": "panic"})
        } else {
            json!({})
        };
        let response = api
            .post_request(&path)
            .json(&body)
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for worker in workers {
        worker.await.unwrap();
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len(), 8 * 60);
    for (id, status) in &acknowledged {
        let payment: Value = api.get_json(&format!("/v1/payments/{id}")).await;
        assert_eq!(payment["status"].as_str().unwrap(), status, "payment {id}");
    }
    let mut total = rust_decimal::Decimal::ZERO;
    let mut held = rust_decimal::Decimal::ZERO;
    for i in 0..ACCOUNTS {
        let account: Value = api.get_json(&format!("/v1/accounts/a{i}")).await;
        total += account["balance"]
            .as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap();
        held += account["held"]
            .as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap();
    }
    assert_eq!(
        total,
        rust_decimal::Decimal::from(500 * ACCOUNTS as i64),
        "money is conserved"
    );
    let authorized = acknowledged
        .iter()
        .filter(|(_, s)| s == "authorized")
        .count();
    assert_eq!(
        held,
        rust_decimal::Decimal::new(110, 2) * rust_decimal::Decimal::from(authorized),
        "exactly the authorized payments hold money"
    );
    let shards: Value = api.get_json("/admin/shards").await;
    let restarts: u64 = shards
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["restarts"].as_u64().unwrap())
        .sum();
    assert_eq!(restarts, 12);
}
