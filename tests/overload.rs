//! Overload sheds instead of sinking: past the queueing deadline requests get
//! 503 `overloaded` with `Retry-After` at once, a shed payment did not happen,
//! and a refused request does not cost its connection.

mod common;

use common::app::spawn_app_with;
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashSet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Payments sent per round, 512 at a time: far more than a 1 ms deadline lets
/// in once the admission limit has adapted.
const PAYMENTS_PER_ROUND: usize = 1_000;
const IN_FLIGHT: usize = 512;
/// Rounds sent at most before the test gives up on seeing a payment shed.
const ROUNDS_MAX: usize = 30;

#[actix_web::test]
async fn past_the_deadline_payments_are_shed_with_retry_after_and_nothing_is_lost() {
    let app = spawn_app_with(|settings| {
        settings.engine.shards = 1;
        settings.engine.queue_deadline_ms = 1;
        settings.rate_limit.requests_per_s = 1_000_000;
        settings.rate_limit.burst = 1_000_000;
    })
    .await;
    // The setup is shed too when the machine stalls for a millisecond: each
    // request is sent until it is taken.
    for (path, body) in [
        ("/v1/accounts", json!({"id": "payer", "currency": "USD"})),
        ("/v1/accounts", json!({"id": "payee", "currency": "USD"})),
        (
            "/v1/accounts/payer/deposits",
            json!({"id": "d-1", "amount": "100000.00"}),
        ),
    ] {
        let answer = until_taken(|| app.post(path, body.clone())).await;
        assert_eq!(answer.status().as_u16(), 201, "{path} {body}");
    }

    // The admission limit starts high and shrinks window by window while
    // answers come late, so the load is kept up, round after round, until the
    // limit is below what is in flight and payments are shed.
    let mut answers = Vec::new();
    for round in 0..ROUNDS_MAX {
        let start = round * PAYMENTS_PER_ROUND;
        let round_answers = send_payments(&app, start..start + PAYMENTS_PER_ROUND).await;
        let shed_now = round_answers.iter().any(|(_, status, _, _)| *status == 503);
        answers.extend(round_answers);
        if shed_now {
            break;
        }
    }
    let sent = answers.len();

    let mut settled = HashSet::new();
    let mut shed = 0;
    for (i, status, retry_after, body) in &answers {
        match status {
            201 => assert!(settled.insert(*i)),
            503 => {
                assert_eq!(body["code"], "overloaded", "{body}");
                assert!(retry_after.is_some(), "503 overloaded without Retry-After");
                shed += 1;
            }
            other => panic!("payment {i}: {other} {body}"),
        }
    }
    assert!(
        shed > 0,
        "no payment of {sent} was shed with a 1 ms deadline"
    );
    assert!(!settled.is_empty(), "every payment was shed");

    // Reads are shed too while the server catches up; once it has, the books
    // show exactly the settled payments, and a shed payment never happened.
    let expected = format!("{:.2}", 100_000.0 - settled.len() as f64);
    let answer = until_taken(|| app.get("/v1/accounts/payer")).await;
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["balance"], expected.as_str(), "{body}");
    for i in (0..sent).step_by(97) {
        let path = format!("/v1/payments/p-{i}");
        let answer = until_taken(|| app.get(&path)).await;
        let want = if settled.contains(&i) { 200 } else { 404 };
        assert_eq!(answer.status().as_u16(), want, "payment p-{i}");
    }
}

/// The payments numbered `ids`, `IN_FLIGHT` at a time: for each, its number,
/// status, `Retry-After` and body.
async fn send_payments(
    app: &common::app::TestApp,
    ids: std::ops::Range<usize>,
) -> Vec<(usize, u16, Option<String>, Value)> {
    futures::stream::iter(ids)
        .map(|i| async move {
            let body = json!({"id": format!("p-{i}"), "from": "payer", "to": "payee",
                              "amount": "1.00", "currency": "USD"});
            let response = app.post("/v1/payments", body).await;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|value| value.to_str().unwrap().to_owned());
            (
                i,
                status,
                retry_after,
                response.json().await.unwrap_or(Value::Null),
            )
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await
}

/// Sends a request until it is not shed (a shed request was not carried out,
/// so sending it again is safe).
async fn until_taken<F, Fut>(send: F) -> reqwest::Response
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    for _ in 0..600 {
        let answer = send().await;
        if answer.status() != 503 {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("still shed after 30 s");
}

/// Reads one HTTP/1.1 answer with a `Content-Length` body from `stream`.
async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.expect("read");
        assert!(
            read > 0,
            "the server closed the connection: {:?}",
            String::from_utf8_lossy(&buffer)
        );
        buffer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&buffer).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|n| n.trim().parse().unwrap())
                })
                .expect("a content-length");
            if buffer.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

#[actix_web::test]
async fn a_request_refused_before_its_body_was_read_keeps_the_connection() {
    let app = spawn_app_with(|_| {}).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let body = r#"{"id":"p-1","from":"a","to":"b","amount":"1.00"}"#;
    let request = format!(
        "POST /v1/payments HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // No token: 401 from the token check, which runs before the body is read.
    for attempt in 0..3 {
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = read_answer(&mut stream).await;
        assert!(
            answer.starts_with("HTTP/1.1 401"),
            "attempt {attempt}: {answer}"
        );
        assert!(
            !answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
}
