//! Raw HTTP requests to a running Surge, sent as any client would send them.

use reqwest::{RequestBuilder, Response};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A client of one Surge at `base` (`http://127.0.0.1:port`), sending `token`
/// as its bearer token.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Self {
        Self::with_client(reqwest::Client::new(), base, token)
    }

    pub fn with_client(http: reqwest::Client, base: &str, token: &str) -> Self {
        Self {
            http,
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A POST to `path` with the bearer token, for a request the helpers below
    /// do not cover (headers, timeouts, raw bodies).
    pub fn post_request(&self, path: &str) -> RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(&self.token)
    }

    /// A GET of `path` with the bearer token.
    pub fn get_request(&self, path: &str) -> RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.token)
    }

    /// POSTs `body` as JSON; panics if the request cannot be sent.
    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.post_request(path)
            .json(&body)
            .send()
            .await
            .expect("request is sent")
    }

    /// GETs `path`; panics if the request cannot be sent.
    pub async fn get(&self, path: &str) -> Response {
        self.get_request(path)
            .send()
            .await
            .expect("request is sent")
    }

    /// GETs `path` and returns its JSON body; panics if there is none.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.expect("a JSON body")
    }

    /// POSTs `body` as JSON: the status, and the JSON body (`Null` if none).
    pub async fn send(&self, path: &str, body: Value) -> (u16, Value) {
        status_and_body(self.post(path, body).await).await
    }

    /// GETs `path`: the status, and the JSON body (`Null` if none).
    pub async fn fetch(&self, path: &str) -> (u16, Value) {
        status_and_body(self.get(path).await).await
    }

    /// POSTs `body` as JSON within `timeout`: the status and the JSON body, or
    /// `None` when no JSON answer came (the server went away, or is killed).
    pub async fn try_send(
        &self,
        path: &str,
        body: Value,
        timeout: Duration,
    ) -> Option<(u16, Value)> {
        let response = self
            .post_request(path)
            .json(&body)
            .timeout(timeout)
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        let body = response.json().await.ok()?;
        Some((status, body))
    }
}

async fn status_and_body(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits for `GET {base}/ready` to answer 200, polling every 20 ms; panics after
/// `timeout`.
pub async fn wait_ready(http: &reqwest::Client, base: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(response) = http.get(format!("{base}/ready")).send().await {
            if response.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("surge at {base} did not become ready");
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
