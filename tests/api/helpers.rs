//! Spawns a real Surge application on a random port with its own SQLite journal,
//! and talks to it over HTTP like any client would.

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use surge::api::auth::{AuthKeys, Claims, Role};
use surge::configuration::{self, Settings};
use surge::startup::Application;

pub const TEST_SECRET: &str = "surge-test-secret-0123456789abcdef";

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub operator: String,
    keys: AuthKeys,
    _data: tempfile::TempDir,
}

/// Settings for a test: fresh SQLite file, port 0, test secret, 4 shards.
pub fn test_settings(dir: &tempfile::TempDir) -> Settings {
    let mut settings = configuration::load().expect("default settings load");
    settings.environment = "test".into();
    settings.http.addr = "127.0.0.1:0".into();
    settings.http.workers = 2;
    settings.engine.shards = 4;
    settings.engine.tick_interval_ms = 10;
    settings.auth.jwt_secret = TEST_SECRET.to_owned().into();
    settings.storage.url = format!("sqlite://{}/surge.db", dir.path().display());
    // Tests share two cores with each other and with builds: opening storage
    // may be slow, and that must not fail a test about something else.
    settings.storage.timeout_ms = 30_000;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    let data = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(&data);
    customize(&mut settings);
    let application = Application::build(settings)
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    actix_web::rt::spawn(application.run_until_stopped());
    let keys = AuthKeys::from_secret(TEST_SECRET.as_bytes());
    let operator = mint(&keys, "ops", Role::Operator, None, 3600);
    let app = TestApp {
        address,
        http: reqwest::Client::new(),
        operator,
        keys,
        _data: data,
    };
    app.wait_ready().await;
    app
}

pub fn mint(
    keys: &AuthKeys,
    sub: &str,
    role: Role,
    accounts: Option<Vec<&str>>,
    ttl_s: i64,
) -> String {
    let now = surge_actors::engine::system_clock_ms() as i64 / 1000;
    keys.mint(&Claims {
        sub: sub.into(),
        exp: (now + ttl_s).max(0) as u64,
        role,
        accounts: accounts.map(|a| a.into_iter().map(str::to_owned).collect()),
    })
    .expect("token mints")
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

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(response) = self.http.get(self.url("/ready")).send().await {
                if response.status() == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the application never became ready");
    }

    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request is sent")
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.post_as(&self.operator, path, body).await
    }

    pub async fn post_with_key(&self, path: &str, key: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.operator)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .expect("request is sent")
    }

    pub async fn get_as(&self, token: &str, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request is sent")
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
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
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

/// Asserts a problem+json error with the given status and code; returns the body.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], format!("/errors/{code}"));
    assert_eq!(body["status"], status);
    body
}

/// Polls until `check` holds (for engine-driven changes such as expiry).
pub async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("condition never held");
}
