//! Error answers: problem documents, codes and statuses for bad input, through a spawned app.

use crate::common::app::{spawn_app, spawn_app_with};
use crate::common::http::assert_problem;
use serde_json::json;

#[actix_web::test]
async fn requests_without_a_valid_token_are_401() {
    let app = spawn_app().await;
    let none = app
        .http
        .get(app.url("/v1/accounts/a"))
        .send()
        .await
        .unwrap();
    assert_problem(none, 401, "unauthorized").await;
    let garbage = app.get_as("not-a-jwt", "/v1/accounts/a").await;
    assert_problem(garbage, 401, "unauthorized").await;
    let expired = app.get_as(&app.expired_token(), "/v1/accounts/a").await;
    assert_problem(expired, 401, "unauthorized").await;
    let other_keys = surge::api::auth::AuthKeys::from_secret(b"another-secret-entirely-123");
    let forged = crate::common::tokens::mint(
        &other_keys,
        "ops",
        surge::api::auth::Role::Operator,
        None,
        60,
    );
    assert_problem(
        app.get_as(&forged, "/v1/accounts/a").await,
        401,
        "unauthorized",
    )
    .await;
}

#[actix_web::test]
async fn bad_bodies_are_400_with_the_field_named() {
    let app = spawn_app().await;
    app.create_account("a", "USD").await;
    let cases = [
        (
            json!({"from": "a", "to": "b", "amount": 12.5, "currency": "USD"}),
            Some("amount"),
        ),
        (
            json!({"from": "a", "to": "b", "amount": "1.001", "currency": "USD"}),
            Some("amount"),
        ),
        (
            json!({"from": "a", "to": "b", "amount": "-1", "currency": "USD"}),
            Some("amount"),
        ),
        (
            json!({"from": "a", "to": "b", "amount": "0", "currency": "USD"}),
            Some("amount"),
        ),
        (
            json!({"from": "a", "to": "b", "amount": "99999999999", "currency": "USD"}),
            Some("amount"),
        ),
        (
            json!({"from": "a", "to": "b", "amount": "1", "currency": "usd"}),
            Some("currency"),
        ),
        (
            json!({"from": "a", "to": "b", "amount": "1", "currency": "ABC"}),
            Some("currency"),
        ),
        (
            json!({"from": "a b", "to": "b", "amount": "1", "currency": "USD"}),
            Some("from"),
        ),
        (
            json!({"from": "a", "to": "b", "amount": "1", "currency": "USD", "surprise": true}),
            Some("surprise"),
        ),
        (json!({"from": "a", "to": "b", "currency": "USD"}), None),
        (json!([1, 2, 3]), None),
    ];
    for (body, param) in cases {
        let response = app.post("/v1/payments", body.clone()).await;
        let problem = assert_problem(response, 400, "invalid_request").await;
        if let Some(param) = param {
            assert_eq!(problem["param"], param, "{body}");
        }
    }
    let raw = app
        .http
        .post(app.url("/v1/payments"))
        .bearer_auth(&app.operator)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(raw, 400, "invalid_request").await;
    // A whole, valid payment followed by more is malformed too, and moves nothing.
    let trailing = app
        .http
        .post(app.url("/v1/payments"))
        .bearer_auth(&app.operator)
        .header("content-type", "application/json")
        .body(r#"{"id": "t1", "from": "a", "to": "a2", "amount": "1", "currency": "USD"} {}"#)
        .send()
        .await
        .unwrap();
    assert_problem(trailing, 400, "invalid_request").await;
    let missing = app.get("/v1/payments/t1").await;
    assert_eq!(missing.status(), 404);
}

#[actix_web::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_app_with(|settings| settings.http.body_limit_bytes = 1024).await;
    let big = "x".repeat(4096);
    let response = app
        .post("/v1/accounts", json!({"currency": "USD", "id": big}))
        .await;
    assert_problem(response, 413, "payload_too_large").await;
}

#[actix_web::test]
async fn garbage_input_never_produces_a_server_error() {
    let app = spawn_app().await;
    let paths = [
        "/v1/accounts",
        "/v1/accounts/a/deposits",
        "/v1/accounts/a/withdrawals",
        "/v1/payments",
        "/v1/payments/batch",
        "/v1/payments/p/capture",
        "/v1/payments/p/void",
        "/v1/items",
        "/v1/items/s/restock",
        "/v1/items/s/reservations",
        "/v1/items/s/reservations/r/commit",
    ];
    let bodies: [&[u8]; 6] = [
        b"",
        b"null",
        b"\xff\xfe\x00",
        b"{\"id\":{}}",
        b"[[[[[[[[[[",
        b"{\"amount\":\"1e9999\"}",
    ];
    for path in paths {
        for body in bodies {
            for content_type in ["application/json", "application/msgpack", "text/plain"] {
                let response = app
                    .http
                    .post(app.url(path))
                    .bearer_auth(&app.operator)
                    .header("content-type", content_type)
                    .body(body.to_vec())
                    .send()
                    .await
                    .unwrap();
                assert!(
                    response.status().as_u16() < 500,
                    "{path} {content_type} {body:?}: {}",
                    response.status()
                );
            }
        }
    }
    let weird = app.get(&format!("/v1/accounts/{}", "x".repeat(100))).await;
    assert!(weird.status().as_u16() < 500);
}

#[actix_web::test]
async fn a_subject_over_its_rate_limit_gets_429_with_retry_after() {
    let app = spawn_app_with(|settings| {
        settings.rate_limit.requests_per_s = 1;
        settings.rate_limit.burst = 3;
    })
    .await;
    let token = app.client_token("greedy", None);
    let mut limited = None;
    for _ in 0..10 {
        let response = app.get_as(&token, "/v1/items/x").await;
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("the limit is reached within 10 requests");
    assert!(response.headers().get("retry-after").is_some());
    assert_problem(response, 429, "rate_limited").await;
    // Another subject is not affected.
    assert_eq!(
        app.get_as(&app.client_token("calm", None), "/v1/items/x")
            .await
            .status(),
        404
    );
}

#[actix_web::test]
async fn a_known_path_with_a_method_it_does_not_serve_is_405_with_allow() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        ("TRACE", "/v1/payments", "POST"),
        ("DELETE", "/v1/accounts/a", "GET"),
        ("PUT", "/v1/orders/o-1", "GET"),
        ("GET", "/v1/payments/p-1/capture", "POST"),
        ("PATCH", "/health", "GET"),
        // The concrete path, not a payment called "batch".
        ("GET", "/v1/payments/batch", "POST"),
        ("DELETE", "/v1/payments/batch", "POST"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let response = app
            .http
            .request(method.clone(), app.url(path))
            .bearer_auth(&app.operator)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        let body: serde_json::Value = response.json().await.expect("problem+json");
        assert_eq!(body["code"], "method_not_allowed");
    }
    let unknown = app.get("/v1/nothing-here").await;
    assert_eq!(unknown.status(), 404);
}

#[actix_web::test]
async fn batch_is_not_a_payment_id() {
    let app = spawn_app().await;
    app.create_account("a", "USD").await;
    app.create_account("b", "USD").await;
    app.deposit("a", "10.00").await;
    let body = json!({"id": "batch", "from": "a", "to": "b", "amount": "1.00", "currency": "USD"});
    let refused = app.post("/v1/payments", body).await;
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_request", "{problem}");
    assert_eq!(problem["param"], "id", "{problem}");
    assert_eq!(app.balance("a").await.0, "10.00", "nothing moved");
}

#[actix_web::test]
async fn integers_may_be_written_with_a_zero_fraction_and_no_other() {
    let app = spawn_app().await;
    let item = json!({"sku": "s", "price": "1.00", "currency": "USD", "stock": 10.0});
    assert_eq!(app.post("/v1/items", item).await.status(), 201);
    let reserved = app
        .post(
            "/v1/items/s/reservations",
            json!({"id": "r", "quantity": 2.0, "ttl_ms": 6e4}),
        )
        .await;
    assert_eq!(reserved.status(), 201);
    let half = app
        .post(
            "/v1/items/s/reservations",
            json!({"id": "r2", "quantity": 2.5}),
        )
        .await;
    assert_problem(half, 400, "invalid_request").await;
    let item: serde_json::Value = app.get("/v1/items/s").await.json().await.unwrap();
    assert_eq!(
        (item["on_hand"].as_u64(), item["reserved"].as_u64()),
        (Some(10), Some(2))
    );
}

#[actix_web::test]
async fn a_malformed_idempotency_key_is_refused_even_beside_an_id() {
    let app = spawn_app().await;
    let too_long = "k".repeat(256);
    let refused = app
        .post_with_key(
            "/v1/accounts",
            &too_long,
            json!({"id": "a", "currency": "USD"}),
        )
        .await;
    assert_problem(refused, 400, "invalid_request").await;
    assert_eq!(app.get("/v1/accounts/a").await.status(), 404, "not created");
}
