//! Operations: health, readiness, metrics, the admin API and its audit, through a spawned app.

use crate::common::app::{spawn_app, spawn_app_with, test_settings};
use crate::common::eventually;
use crate::common::http::assert_problem;
use serde_json::{json, Value};

#[actix_web::test]
async fn health_ready_metrics_and_openapi_answer_without_a_token() {
    let app = spawn_app().await;
    let health: Value = app
        .http
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));
    assert_eq!(
        app.http
            .get(app.url("/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.create_account("m", "USD").await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("surge_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/v1/accounts\""));
    assert!(metrics.contains("surge_journal_flush_seconds"));
    assert!(metrics.contains("surge_shard_mailbox_len"));
    let openapi: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/accounts",
        "/v1/payments/batch",
        "/v1/items/{sku}/reservations",
        "/admin/shards",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "openapi lacks {path}");
    }
}

#[actix_web::test]
async fn operators_list_snapshot_and_restart_shards_and_every_action_is_audited() {
    let app = spawn_app().await;
    app.create_account("s", "USD").await;
    app.deposit("s", "5").await;
    let shards: Value = app.get("/admin/shards").await.json().await.unwrap();
    assert_eq!(shards.as_array().unwrap().len(), 4);
    let accounts: u64 = shards
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["accounts"].as_u64().unwrap())
        .sum();
    assert_eq!(accounts, 1);
    for shard in 0..4 {
        let snapshot = app
            .post(&format!("/admin/shards/{shard}/snapshot"), json!({}))
            .await;
        assert_eq!(snapshot.status(), 200);
        let restart = app
            .post(&format!("/admin/shards/{shard}/restart"), json!({}))
            .await;
        assert_eq!(restart.status(), 200);
        let body: Value = restart.json().await.unwrap();
        assert_eq!(body["status"], "running");
    }
    assert_eq!(app.balance("s").await.0, "5.00", "state survives restarts");
    assert_problem(
        app.post("/admin/shards/99/restart", json!({})).await,
        404,
        "shard_not_found",
    )
    .await;
    let client = app.client_token("c", None);
    assert_problem(app.get_as(&client, "/admin/shards").await, 403, "forbidden").await;
    let audit: Value = app.get("/admin/audit").await.json().await.unwrap();
    let shard_actions: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"].as_str().unwrap().starts_with("shard."))
        .collect();
    assert_eq!(shard_actions.len(), 8);
    assert_eq!(shard_actions[0]["action"], "shard.restart");
    assert_eq!(shard_actions[0]["sub"], "ops");
    // Fault injection is off by default.
    let fault = app
        .post("/admin/shards/0/fault", json!({"kind": "panic"}))
        .await;
    assert_problem(fault, 404, "not_found").await;
}

#[actix_web::test]
async fn a_panicking_shard_recovers_from_its_journal_and_keeps_its_state() {
    let app = spawn_app_with(|settings| settings.admin.fault_injection = true).await;
    for i in 0..8 {
        let id = format!("f{i}");
        app.create_account(&id, "USD").await;
        app.deposit(&id, "7").await;
    }
    for shard in 0..4 {
        let fault = app
            .post(
                &format!("/admin/shards/{shard}/fault"),
                json!({"kind": "panic"}),
            )
            .await;
        assert_eq!(fault.status(), 200);
    }
    eventually(|| async {
        app.http
            .get(app.url("/ready"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    for i in 0..8 {
        assert_eq!(app.balance(&format!("f{i}")).await.0, "7.00");
    }
    let shards: Value = app.get("/admin/shards").await.json().await.unwrap();
    let restarts: u64 = shards
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["restarts"].as_u64().unwrap())
        .sum();
    assert_eq!(restarts, 4);
}

#[test]
fn the_development_secret_is_refused_outside_development() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(&dir);
    settings.auth.jwt_secret = surge::configuration::DEVELOPMENT_JWT_SECRET
        .to_owned()
        .into();
    settings.environment = "production".into();
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("development JWT secret"), "{error}");
    settings.environment = "development".into();
    assert!(settings.validate().is_ok());
}

#[test]
fn a_zero_hash_seed_is_refused_outside_development_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(&dir);
    settings.environment = "production".into();
    settings.engine.hash_seed = 0;
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("SURGE__ENGINE__HASH_SEED"), "{error}");
    settings.engine.hash_seed = 0x9e37_79b9_7f4a_7c15;
    assert!(settings.validate().is_ok());
    settings.engine.hash_seed = 0;
    settings.environment = "development".into();
    assert!(settings.validate().is_ok());
}

#[test]
fn a_public_key_file_that_does_not_read_stops_the_server_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(&dir);
    settings.auth.jwks_path = dir.path().join("missing-jwks.json").display().to_string();
    let error = surge::startup::Application::build(settings);
    let error = actix_web::rt::System::new()
        .block_on(error)
        .err()
        .expect("refused");
    assert!(
        format!("{error:#}").contains("missing-jwks.json"),
        "{error:#}"
    );
}
