//! Database outage: a TCP proxy the test controls sits between Surge and
//! PostgreSQL. While it is cut, writes answer 503 quickly, reads of in-memory
//! state keep working, and nothing acknowledged is lost; when it comes back the
//! engine resumes by itself.

use serde_json::{json, Value};
use std::time::{Duration, Instant};

mod common;

use common::http::Api;
use common::proxy::Proxy;

const SECRET: &str = "surge-outage-test-secret-0123456789";

#[actix_web::test]
async fn a_database_outage_gives_fast_503s_keeps_reads_and_loses_nothing() {
    let database = common::postgres::Database::create("surge_outage").await;
    let host = common::postgres::admin_url()
        .split('@')
        .nth(1)
        .and_then(|h| h.split('/').next())
        .unwrap()
        .to_owned();
    let proxy = Proxy::start(host).await;

    let mut settings = common::app::base_settings(SECRET);
    settings.storage.url = format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        proxy.port, database.name
    );
    settings.storage.timeout_ms = 1_000;
    settings.engine.journal_timeout_ms = 1_000;
    settings.engine.shards = 2;
    let api = Api::new(
        &common::app::run(settings).await,
        &common::tokens::operator_token(SECRET, "ops"),
    );

    for id in ["a", "b"] {
        assert_eq!(
            api.send("/v1/accounts", json!({"id": id, "currency": "USD"}))
                .await
                .0,
            201
        );
        assert_eq!(
            api.send(
                &format!("/v1/accounts/{id}/deposits"),
                json!({"amount": "100"})
            )
            .await
            .0,
            201
        );
    }
    let (status, _) = api
        .send(
            "/v1/payments",
            json!({"id": "before", "from": "a", "to": "b", "amount": "10", "currency": "USD"}),
        )
        .await;
    assert_eq!(status, 201);

    proxy.cut();
    let mut acknowledged_during_outage = Vec::new();
    for i in 0..5 {
        let started = Instant::now();
        let id = format!("during-{i}");
        let (status, body) = api
            .send(
                "/v1/payments",
                json!({"id": id, "from": "a", "to": "b", "amount": "1", "currency": "USD"}),
            )
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "a write hung for {:?}",
            started.elapsed()
        );
        match status {
            503 => assert!(
                body["code"] == "retry" || body["code"] == "overloaded",
                "{body}"
            ),
            201 => acknowledged_during_outage.push(id),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(
        acknowledged_during_outage.len() < 5,
        "writes cannot all succeed with the database cut off"
    );
    let (status, body) = api.fetch("/v1/accounts/a").await;
    assert_eq!(status, 200, "reads of in-memory state keep working: {body}");
    let ready = api
        .http
        .get(api.url("/ready"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(ready, 503, "not ready while storage is unreachable");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = api
            .send(
                "/v1/payments",
                json!({"id": "after", "from": "a", "to": "b", "amount": "5", "currency": "USD"}),
            )
            .await;
        if status == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the engine did not resume after the outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Retrying the failed writes with the same ids is safe: each takes effect once.
    for i in 0..5 {
        let (status, _) = api.send("/v1/payments", json!({"id": format!("during-{i}"), "from": "a", "to": "b", "amount": "1", "currency": "USD"})).await;
        assert_eq!(status, 201);
    }
    let (_, a) = api.fetch("/v1/accounts/a").await;
    let (_, b) = api.fetch("/v1/accounts/b").await;
    assert_eq!(
        a["balance"], "80.00",
        "10 before, 5 during (retried), 5 after"
    );
    assert_eq!(b["balance"], "120.00");
    for id in ["before", "after"] {
        let payment: Value = api.get_json(&format!("/v1/payments/{id}")).await;
        assert_eq!(payment["status"], "settled");
    }
    // The database is ours: drop it (the engine's connections with it).
    database.destroy().await;
}
