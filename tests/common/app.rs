//! A real Surge application spawned inside the test process on a random port,
//! with its own SQLite journal, and talked to over HTTP like any client would.

use super::feed::{self, Socket};
use super::http::{self, Api};
use super::tokens::mint;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use surge::api::auth::{AuthKeys, Role};
use surge::configuration::{self, Settings};
use surge::startup::Application;

pub const TEST_SECRET: &str = "surge-test-secret-0123456789abcdef";

/// How long a spawned application may take to answer `/ready` with 200. Generous:
/// it usually takes milliseconds, but the shared two-core machines that run the
/// suite (four tests at a time, builds beside them) can stall it for seconds, and
/// a readiness wait is not a timing assertion.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The default settings, listening on port 0 and signing with `secret`.
pub fn base_settings(secret: &str) -> Settings {
    let mut settings = configuration::load().expect("default settings load");
    settings.http.addr = "127.0.0.1:0".into();
    settings.auth.jwt_secret = secret.to_owned().into();
    settings
}

/// Settings for a test: fresh SQLite file, port 0, test secret, 4 shards.
pub fn test_settings(dir: &tempfile::TempDir) -> Settings {
    let mut settings = base_settings(TEST_SECRET);
    settings.environment = "test".into();
    settings.http.workers = 2;
    settings.engine.shards = 4;
    settings.engine.tick_interval_ms = 10;
    // Shedding (tests/overload.rs) is off: on the shared two-core machines that
    // run the suite, a stall that is not overload must not refuse a request.
    settings.engine.queue_deadline_ms = 0;
    settings.storage.url = super::sqlite_url(dir);
    // Tests share two cores with each other and with builds: opening storage
    // may be slow, and that must not fail a test about something else.
    settings.storage.timeout_ms = 30_000;
    settings
}

/// Builds an application from `settings` and runs it on the current actix
/// runtime; returns its address (`http://127.0.0.1:port`). Does not wait for it
/// to be ready.
pub async fn run(settings: Settings) -> String {
    let application = Application::build(settings)
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    actix_web::rt::spawn(application.run_until_stopped());
    address
}

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub operator: String,
    keys: AuthKeys,
    _data: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    let data = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(&data);
    customize(&mut settings);
    let address = run(settings).await;
    let keys = AuthKeys::from_secret(TEST_SECRET.as_bytes());
    let operator = mint(&keys, "ops", Role::Operator, None, 3600);
    let app = TestApp {
        address,
        http: reqwest::Client::new(),
        operator,
        keys,
        _data: data,
    };
    http::wait_ready(&app.http, &app.address, READY_TIMEOUT).await;
    app
}

impl TestApp {
    pub fn client_token(&self, sub: &str, accounts: Option<Vec<&str>>) -> String {
        mint(&self.keys, sub, Role::Client, accounts, 3600)
    }

    pub fn expired_token(&self) -> String {
        mint(&self.keys, "late", Role::Operator, None, -120)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A client of the application sending `token`.
    pub fn api(&self, token: &str) -> Api {
        Api::with_client(self.http.clone(), &self.address, token)
    }

    /// A feed connection with `token`.
    pub async fn feed(&self, token: &str) -> Socket {
        feed::connect(&self.address, token).await
    }

    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> Response {
        self.api(token).post(path, body).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.post_as(&self.operator, path, body).await
    }

    pub async fn post_with_key(&self, path: &str, key: &str, body: Value) -> Response {
        self.api(&self.operator)
            .post_request(path)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .expect("request is sent")
    }

    pub async fn get_as(&self, token: &str, path: &str) -> Response {
        self.api(token).get(path).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.get_as(&self.operator, path).await
    }

    pub async fn create_account(&self, id: &str, currency: &str) {
        let response = self
            .post("/v1/accounts", json!({"id": id, "currency": currency}))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "create account {id}"
        );
    }

    pub async fn deposit(&self, id: &str, amount: &str) {
        let response = self
            .post(
                &format!("/v1/accounts/{id}/deposits"),
                json!({"amount": amount}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "deposit into {id}");
    }

    /// Places an order and returns it once final: a 202 (still running after
    /// `wait_ms`, which a loaded machine can cause) is followed up by polling.
    /// Returns the status of the first answer too.
    pub async fn place_order(&self, body: Value) -> (u16, Value) {
        self.place_order_as(&self.operator.clone(), body).await
    }

    pub async fn place_order_as(&self, token: &str, mut body: Value) -> (u16, Value) {
        if body.get("wait_ms").is_none() {
            body["wait_ms"] = json!(5_000);
        }
        let response = self.post_as(token, "/v1/orders", body).await;
        let status = response.status().as_u16();
        let mut order: Value = response.json().await.expect("an order");
        if status == 202 {
            let path = format!("/v1/orders/{}", order["id"].as_str().unwrap());
            for _ in 0..1_500 {
                order = self.get_as(token, &path).await.json().await.unwrap();
                let final_states = ["confirmed", "rejected", "cancelled", "expired"];
                if final_states.contains(&order["status"].as_str().unwrap()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert!(status == 201 || status == 202, "{status}: {order}");
        (status, order)
    }

    pub async fn balance(&self, id: &str) -> (String, String, String) {
        let body: Value = self
            .get(&format!("/v1/accounts/{id}"))
            .await
            .json()
            .await
            .unwrap();
        (
            body["balance"].as_str().unwrap().to_owned(),
            body["held"].as_str().unwrap().to_owned(),
            body["available"].as_str().unwrap().to_owned(),
        )
    }
}
