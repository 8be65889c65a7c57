//! The load generator's client: typed calls of docs/API.md over one pooled HTTP
//! client, each answering with an [`Outcome`] that the recorder counts.

use super::http1::Http1;
use crate::api::dto::PaymentsBatchResponse;
use actix_web::web::Bytes;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// How long one request may take before it counts as an error. Generous: a
/// request slower than this is a failure, not a latency sample.
const REQUEST_TIMEOUT_S: u64 = 60;

const JSON: &str = "application/json";
const MSGPACK: &str = "application/msgpack";

#[derive(Debug, Clone)]
pub struct Tokens {
    pub operator: String,
    pub client: String,
}

/// How one request (of one or many operations) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The operation did what was asked.
    Ok,
    /// A business refusal (`insufficient_funds`, `out_of_stock`, ...): a correct
    /// answer, counted by code.
    Rejected(String),
    /// A failure: transport error, 5xx, or an answer the contract does not allow.
    Error(String),
}

/// An order as read back (docs/API.md "Orders"); only what the bench checks.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderJson {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub lines: Vec<OrderLineJson>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrderLineJson {
    pub sku: String,
    pub quantity: u64,
}

// The order the load generator sends borrows its ids from the fixture: building
// it is on the measured path, and the generator shares the cores with what it
// measures.
#[derive(Debug, Clone, Serialize)]
pub struct OrderLine<'a> {
    pub sku: &'a str,
    pub quantity: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreateOrder<'a> {
    pub id: String,
    pub account: &'a str,
    pub merchant: &'a str,
    pub lines: Vec<OrderLine<'a>>,
    pub wait_ms: u64,
}

/// What the load generator reads of a placed order's answer. Borrowed, and blind
/// to the fields it does not need, for the same reason as `CreateOrder`.
#[derive(Debug, Deserialize)]
struct OrderAnswer<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
}

/// An item's stock as read back.
#[derive(Debug, Clone, Deserialize)]
pub struct ItemJson {
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
}

pub fn is_terminal(status: &str) -> bool {
    matches!(status, "confirmed" | "rejected" | "cancelled" | "expired")
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    tokens: Tokens,
    hot: Arc<HotPaths>,
    /// The lean transport for measured requests, for plain `http://` targets.
    fast: Option<Arc<Http1>>,
}

/// What every measured request would otherwise rebuild: parsing the URL and
/// formatting the `Authorization` header were ~15% of the load generator's CPU,
/// which shares the cores with the system under test.
struct HotPaths {
    payments: Url,
    payments_batch: Url,
    orders: Url,
    client_auth: HeaderValue,
}

/// A payment as the load generator sends it (docs/API.md `POST /v1/payments`, one-phase):
/// its accounts are borrowed from the fixture, like an order's ids, and a batch
/// of 8,190 of them is built for every batch request.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentBody<'a> {
    pub id: String,
    pub from: &'a str,
    pub to: &'a str,
    pub amount: String,
    pub currency: &'static str,
}

/// A two-phase payment's authorization: a payment's fields and `capture: false`.
#[derive(Debug, Clone, Serialize)]
pub struct HoldBody<'a> {
    #[serde(flatten)]
    pub payment: PaymentBody<'a>,
    pub capture: bool,
    pub hold_timeout_ms: u64,
}

/// `POST /v1/payments/batch`'s body.
#[derive(Serialize)]
struct PaymentsBatch<'a> {
    payments: Vec<PaymentBody<'a>>,
}

/// Just the fields of a payment's answer the bench looks at, borrowed (copied
/// only if the server escaped them).
#[derive(Deserialize)]
struct PaymentAnswer<'a> {
    #[serde(default, borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
}

impl Api {
    pub fn new(base: &str, tokens: Tokens, connections_max: usize) -> anyhow::Result<Self> {
        let http = super::http_client()
            .pool_max_idle_per_host(connections_max)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(REQUEST_TIMEOUT_S))
            .build()?;
        let base = base.trim_end_matches('/').to_owned();
        let url = |path: &str| Url::parse(&format!("{base}{path}"));
        let mut client_auth = HeaderValue::from_str(&format!("Bearer {}", tokens.client))?;
        client_auth.set_sensitive(true);
        let hot = Arc::new(HotPaths {
            payments: url("/v1/payments")?,
            payments_batch: url("/v1/payments/batch")?,
            orders: url("/v1/orders")?,
            client_auth,
        });
        let fast = Http1::for_base(&base, Duration::from_secs(REQUEST_TIMEOUT_S)).map(Arc::new);
        Ok(Self {
            http,
            base,
            tokens,
            hot,
            fast,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn client_token(&self) -> &str {
        &self.tokens.client
    }

    /// Waits until `/health` answers, for at most `timeout`.
    pub async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ok = self
                .http
                .get(format!("{}/health", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{} did not become healthy within {timeout:?}",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An unmeasured request of the setup, retried while the server sheds it.
    async fn post_json(&self, path: &str, token: &str, body: &impl Serialize) -> (u16, Value) {
        shed_retried(|| async {
            let sent = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(token)
                .json(body)
                .send()
                .await;
            read(sent).await
        })
        .await
    }

    /// A measured JSON request: prepared URL and header, the answer's raw bytes.
    async fn post_hot(&self, path: &'static str, url: &Url, body: &impl Serialize) -> (u16, Bytes) {
        if let Some(fast) = &self.fast {
            let body = match serde_json::to_vec(body) {
                Ok(body) => Bytes::from(body),
                Err(error) => return (0, Bytes::from(error.to_string())),
            };
            return fast
                .post(path, &self.hot.client_auth, (JSON, JSON), None, body)
                .await
                .unwrap_or_else(|failure| (0, Bytes::from_static(failure.label().as_bytes())));
        }
        let request = self
            .http
            .post(url.clone())
            .header(AUTHORIZATION, self.hot.client_auth.clone())
            .json(body);
        exchange(request).await
    }

    /// An unmeasured read (setup, verification), retried while the server sheds it.
    async fn get_json(&self, path: &str) -> (u16, Value) {
        shed_retried(|| async {
            let sent = self
                .http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.tokens.operator)
                .send()
                .await;
            read(sent).await
        })
        .await
    }

    /// Creates (or finds, with the same fields) an account.
    pub async fn create_account(&self, id: &str) -> anyhow::Result<()> {
        let body = json!({"id": id, "currency": "USD"});
        let (status, value) = self
            .post_json("/v1/accounts", &self.tokens.operator, &body)
            .await;
        anyhow::ensure!(
            status == 200 || status == 201,
            "creating account {id}: {status} {value}"
        );
        Ok(())
    }

    pub async fn deposit(
        &self,
        account: &str,
        deposit_id: &str,
        amount: &str,
    ) -> anyhow::Result<()> {
        let body = json!({"id": deposit_id, "amount": amount});
        let (status, value) = self
            .post_json(
                &format!("/v1/accounts/{account}/deposits"),
                &self.tokens.operator,
                &body,
            )
            .await;
        anyhow::ensure!(status == 201, "deposit into {account}: {status} {value}");
        Ok(())
    }

    pub async fn create_item(&self, sku: &str, price: &str, stock: u64) -> anyhow::Result<()> {
        let body = json!({"sku": sku, "price": price, "currency": "USD", "stock": stock});
        let (status, value) = self
            .post_json("/v1/items", &self.tokens.operator, &body)
            .await;
        anyhow::ensure!(
            status == 200 || status == 201,
            "creating item {sku}: {status} {value}"
        );
        Ok(())
    }

    /// The account's balance, as the decimal string the API returns.
    pub async fn balance(&self, account: &str) -> anyhow::Result<String> {
        let (status, value) = self.get_json(&format!("/v1/accounts/{account}")).await;
        anyhow::ensure!(status == 200, "reading account {account}: {status} {value}");
        value["balance"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("account {account} has no balance: {value}"))
    }

    pub async fn item(&self, sku: &str) -> anyhow::Result<ItemJson> {
        let (status, value) = self.get_json(&format!("/v1/items/{sku}")).await;
        anyhow::ensure!(status == 200, "reading item {sku}: {status} {value}");
        Ok(serde_json::from_value(value)?)
    }

    /// An order as stored, or `None` when the engine never heard of it.
    pub async fn order(&self, id: &str) -> anyhow::Result<Option<OrderJson>> {
        let (status, value) = self.get_json(&format!("/v1/orders/{id}")).await;
        match status {
            200 => Ok(Some(serde_json::from_value(value)?)),
            404 => Ok(None),
            _ => anyhow::bail!("reading order {id}: {status} {value}"),
        }
    }

    /// A read of the kind a storefront makes, counted like any request.
    pub async fn read(&self, path: &str) -> Outcome {
        let (status, value) = self.get_json(path).await;
        match status {
            200 => Outcome::Ok,
            404 => Outcome::Rejected(code_of(&value, "not_found")),
            _ => Outcome::Error(format!("GET {path}: {status}")),
        }
    }

    /// `POST /v1/payments`: 201 settled, 422 with a business code.
    pub async fn payment(&self, payment: &PaymentBody<'_>) -> Outcome {
        let (status, bytes) = self
            .post_hot("/v1/payments", &self.hot.payments, payment)
            .await;
        status_outcome(status, &bytes, 201, "settled")
    }

    /// `POST /v1/payments` with `capture: false`: 201 authorized.
    pub async fn authorize(&self, hold: &HoldBody<'_>) -> Outcome {
        let (status, bytes) = self
            .post_hot("/v1/payments", &self.hot.payments, hold)
            .await;
        status_outcome(status, &bytes, 201, "authorized")
    }

    /// `POST /v1/payments/{id}/capture` of all of it, under an `Idempotency-Key`.
    pub async fn capture(&self, id: &str, key: &str) -> Outcome {
        let path = format!("/v1/payments/{id}/capture");
        let (status, bytes) = self.post_path(&path, Some(key), Bytes::new()).await;
        status_outcome(status, &bytes, 200, "captured")
    }

    /// `POST /v1/payments/{id}/void`.
    pub async fn void(&self, id: &str) -> Outcome {
        let path = format!("/v1/payments/{id}/void");
        let (status, bytes) = self.post_path(&path, None, Bytes::new()).await;
        status_outcome(status, &bytes, 200, "voided")
    }

    /// `POST /v1/items/{sku}/reservations`: 201 held, 409 `out_of_stock`.
    pub async fn reserve(&self, sku: &str, id: &str, quantity: u64, ttl_ms: u64) -> Outcome {
        let path = format!("/v1/items/{sku}/reservations");
        let body = json!({"id": id, "quantity": quantity, "ttl_ms": ttl_ms}).to_string();
        let (status, bytes) = self.post_path(&path, None, Bytes::from(body)).await;
        status_outcome(status, &bytes, 201, "held")
    }

    /// `POST /v1/items/{sku}/reservations/{id}/commit`, under an `Idempotency-Key`.
    pub async fn commit(&self, sku: &str, id: &str, key: &str) -> Outcome {
        let path = format!("/v1/items/{sku}/reservations/{id}/commit");
        let (status, bytes) = self.post_path(&path, Some(key), Bytes::new()).await;
        status_outcome(status, &bytes, 200, "committed")
    }

    /// `POST /v1/items/{sku}/reservations/{id}/release`.
    pub async fn release(&self, sku: &str, id: &str) -> Outcome {
        let path = format!("/v1/items/{sku}/reservations/{id}/release");
        let (status, bytes) = self.post_path(&path, None, Bytes::new()).await;
        status_outcome(status, &bytes, 200, "released")
    }

    /// A reservation's status as stored, or `None` when the engine never heard
    /// of it.
    pub async fn reservation(&self, sku: &str, id: &str) -> anyhow::Result<Option<String>> {
        let path = format!("/v1/items/{sku}/reservations/{id}");
        let (status, value) = self.get_json(&path).await;
        match status {
            200 => Ok(value["status"].as_str().map(str::to_owned)),
            404 => Ok(None),
            _ => anyhow::bail!("reading reservation {sku}/{id}: {status} {value}"),
        }
    }

    /// A measured `POST` to a path made per request: the lean transport when
    /// there is one.
    async fn post_path(&self, path: &str, key: Option<&str>, body: Bytes) -> (u16, Bytes) {
        if let Some(fast) = &self.fast {
            return fast
                .post(path, &self.hot.client_auth, (JSON, JSON), key, body)
                .await
                .unwrap_or_else(|failure| (0, Bytes::from_static(failure.label().as_bytes())));
        }
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(AUTHORIZATION, self.hot.client_auth.clone())
            .header(CONTENT_TYPE, JSON)
            .body(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        exchange(request).await
    }

    /// `POST /v1/payments/batch`: one outcome per payment, in request order; a
    /// failed request fails every payment in it.
    pub async fn payments_batch(
        &self,
        payments: Vec<PaymentBody<'_>>,
        msgpack: bool,
    ) -> Vec<Outcome> {
        let count = payments.len();
        let body = PaymentsBatch { payments };
        // Named fields for MessagePack: the server's decoder expects a map, like
        // JSON's object.
        let (encoded, content_type) = if msgpack {
            (
                rmp_serde::to_vec_named(&body).map_err(|e| e.to_string()),
                MSGPACK,
            )
        } else {
            (serde_json::to_vec(&body).map_err(|e| e.to_string()), JSON)
        };
        let encoded = match encoded {
            Ok(encoded) => Bytes::from(encoded),
            Err(error) => return vec![Outcome::Error(error); count],
        };
        let answer = match &self.fast {
            Some(fast) => fast
                .post(
                    "/v1/payments/batch",
                    &self.hot.client_auth,
                    (content_type, content_type),
                    None,
                    encoded,
                )
                .await
                .map_err(|failure| failure.label().to_owned()),
            None => self.post_batch_reqwest(encoded, content_type).await,
        };
        let (status, bytes) = match answer {
            Ok(answer) => answer,
            Err(label) => return vec![Outcome::Error(label); count],
        };
        if status != 200 {
            let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return vec![Outcome::Error(error_label(status, &value)); count];
        }
        let decoded: Result<PaymentsBatchResponse, String> = if msgpack {
            rmp_serde::from_slice(&bytes).map_err(|e| e.to_string())
        } else {
            serde_json::from_slice(&bytes).map_err(|e| e.to_string())
        };
        match decoded {
            Ok(response) if response.results.len() == count => response
                .results
                .into_iter()
                .map(|result| match (result.status.as_str(), result.code) {
                    ("settled", _) => Outcome::Ok,
                    ("rejected", code) => {
                        Outcome::Rejected(code.unwrap_or_else(|| "rejected".into()))
                    }
                    (_, code) => Outcome::Error(code.unwrap_or(result.status)),
                })
                .collect(),
            Ok(response) => vec![
                Outcome::Error(format!(
                    "batch of {count} answered with {} results",
                    response.results.len()
                ));
                count
            ],
            Err(error) => vec![Outcome::Error(format!("undecodable batch answer: {error}")); count],
        }
    }

    async fn post_batch_reqwest(
        &self,
        body: Bytes,
        content_type: &'static str,
    ) -> Result<(u16, Bytes), String> {
        let response = self
            .http
            .post(self.hot.payments_batch.clone())
            .header(AUTHORIZATION, self.hot.client_auth.clone())
            .header(CONTENT_TYPE, content_type)
            .header(ACCEPT, content_type)
            .body(body)
            .send()
            .await
            .map_err(|error| transport_label(&error))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| transport_label(&error))?;
        Ok((status, bytes))
    }

    /// `POST /v1/orders`: 201 terminal or 202 in progress. Returns the outcome and
    /// where the answer left the order.
    pub async fn create_order(&self, order: &CreateOrder<'_>) -> (Outcome, OrderEnd) {
        let (status, bytes) = self.post_hot("/v1/orders", &self.hot.orders, order).await;
        order_outcome(status, &bytes)
    }

    /// The feed's WebSocket URL, with the token in the query (docs/API.md allows it).
    pub fn feed_url(&self) -> String {
        let ws = self
            .base
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1);
        format!("{ws}/v1/feed?access_token={}", self.tokens.operator)
    }
}

/// Sends a request through reqwest: the answer's status and raw body.
/// Attempts of an unmeasured request the server sheds (503 `overloaded`: it
/// was not carried out, so sending it again is always safe), a second apart at
/// most: a run that overloaded the server is verified once it has caught up.
const SHED_ATTEMPTS_MAX: u32 = 60;

async fn shed_retried<F, Fut>(send: F) -> (u16, Value)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (u16, Value)>,
{
    let mut pause = Duration::from_millis(50);
    for _ in 1..SHED_ATTEMPTS_MAX {
        let (status, value) = send().await;
        if !(status == 503 && value["code"] == "overloaded") {
            return (status, value);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
    send().await
}

async fn exchange(request: reqwest::RequestBuilder) -> (u16, Bytes) {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(bytes) => (status, bytes),
                Err(error) => (0, Bytes::from(transport_label(&error))),
            }
        }
        // Status 0 is "no HTTP answer at all"; the body says why.
        Err(error) => (0, Bytes::from(transport_label(&error))),
    }
}

async fn read(sent: Result<reqwest::Response, reqwest::Error>) -> (u16, Value) {
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let value = response.json::<Value>().await.unwrap_or(Value::Null);
            (status, value)
        }
        // Status 0 is "no HTTP answer at all".
        Err(error) => (0, Value::String(transport_label(&error))),
    }
}

/// How a request answered with a payment or reservation ended: `expected`
/// (under status `success`) is done, `rejected` with a code is a refusal, 409 and
/// 422 are refusals, anything else is an error.
fn status_outcome(status: u16, bytes: &[u8], success: u16, expected: &str) -> Outcome {
    if status == success {
        return match serde_json::from_slice::<PaymentAnswer>(bytes) {
            Ok(answer) => match answer.status.as_deref() {
                Some(got) if got == expected => Outcome::Ok,
                Some("rejected") => Outcome::Rejected(
                    answer
                        .code
                        .map_or_else(|| "rejected".into(), Cow::into_owned),
                ),
                other => Outcome::Error(format!("answered status {other:?}, not {expected}")),
            },
            Err(error) => Outcome::Error(format!("undecodable answer: {error}")),
        };
    }
    match status {
        422 | 409 => Outcome::Rejected(code_of(&answer_value(status, bytes), "rejected")),
        _ => Outcome::Error(error_label(status, &answer_value(status, bytes))),
    }
}

/// Where a `POST /v1/orders` answer left the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEnd {
    Confirmed,
    /// Rejected, cancelled or expired: nothing sold.
    Refused,
    /// Not final when answered (202), or no answer: read it back to know.
    Open,
}

/// How a `POST /v1/orders` ended, from its answer.
fn order_outcome(status: u16, bytes: &[u8]) -> (Outcome, OrderEnd) {
    match status {
        201 | 202 => match serde_json::from_slice::<OrderAnswer>(bytes) {
            Ok(answer) => match &*answer.status {
                "rejected" => (
                    Outcome::Rejected(
                        answer
                            .reason
                            .map_or_else(|| "rejected".into(), Cow::into_owned),
                    ),
                    OrderEnd::Refused,
                ),
                "cancelled" | "expired" => (
                    Outcome::Rejected(answer.status.into_owned()),
                    OrderEnd::Refused,
                ),
                "confirmed" => (Outcome::Ok, OrderEnd::Confirmed),
                _ => (Outcome::Ok, OrderEnd::Open),
            },
            Err(error) => (
                Outcome::Error(format!("undecodable order: {error}")),
                OrderEnd::Open,
            ),
        },
        _ => (
            Outcome::Error(error_label(status, &answer_value(status, bytes))),
            OrderEnd::Open,
        ),
    }
}

/// An answer's body as JSON; for status 0 (no answer), the transport's label.
fn answer_value(status: u16, bytes: &[u8]) -> Value {
    if status == 0 {
        return Value::String(String::from_utf8_lossy(bytes).into_owned());
    }
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

fn code_of(value: &Value, fallback: &str) -> String {
    value["code"]
        .as_str()
        .or_else(|| value["reason"].as_str())
        .unwrap_or(fallback)
        .to_owned()
}

fn error_label(status: u16, value: &Value) -> String {
    match (status, value["code"].as_str()) {
        (0, _) => value.as_str().unwrap_or("transport").to_owned(),
        (_, Some(code)) => format!("{status} {code}"),
        (_, None) => format!("{status}"),
    }
}

fn transport_label(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout".into()
    } else if error.is_connect() {
        "connect".into()
    } else {
        "transport".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_answer_is_counted_by_its_status_and_reason() {
        let confirmed = br#"{"id":"o1","status":"confirmed","lines":[],"history":[]}"#;
        assert_eq!(
            order_outcome(201, confirmed),
            (Outcome::Ok, OrderEnd::Confirmed)
        );
        assert_eq!(
            order_outcome(202, br#"{"status":"reserved"}"#),
            (Outcome::Ok, OrderEnd::Open)
        );
        let sold_out = br#"{"status":"rejected","reason":"out_of_stock","total":null}"#;
        assert_eq!(
            order_outcome(201, sold_out).0,
            Outcome::Rejected("out_of_stock".into())
        );
        assert_eq!(
            order_outcome(201, br#"{"status":"rejected"}"#).0,
            Outcome::Rejected("rejected".into())
        );
        assert_eq!(
            order_outcome(201, br#"{"status":"expired"}"#),
            (Outcome::Rejected("expired".into()), OrderEnd::Refused)
        );
    }

    #[test]
    fn an_order_answer_with_escaped_text_is_still_read() {
        // Borrowing fails on escapes; the answer must then be copied, not refused.
        let escaped = br#"{"status":"rejected","reason":"out_of\u005fstock"}"#;
        assert_eq!(
            order_outcome(201, escaped).0,
            Outcome::Rejected("out_of_stock".into())
        );
    }

    #[test]
    fn an_order_answer_that_is_not_an_order_is_an_error() {
        assert!(matches!(order_outcome(201, b"{}").0, Outcome::Error(_)));
        assert!(matches!(
            order_outcome(201, b"not json").0,
            Outcome::Error(_)
        ));
        assert!(matches!(
            order_outcome(500, br#"{"code":"internal"}"#),
            (Outcome::Error(_), OrderEnd::Open)
        ));
    }
}
