//! Payments: one- and two-phase, capture, void, batches and idempotency, through a spawned app.

use crate::common::app::spawn_app;
use crate::common::eventually;
use crate::common::http::assert_problem;
use serde_json::{json, Value};
use surge::api::limits::PAYMENTS_PER_BATCH_MAX;

async fn funded(app: &crate::common::app::TestApp, accounts: &[&str]) {
    for id in accounts {
        app.create_account(id, "USD").await;
        app.deposit(id, "100").await;
    }
}

#[actix_web::test]
async fn payments_between_accounts_on_any_shards_settle_and_conserve_money() {
    let app = spawn_app().await;
    let ids: Vec<String> = (0..8).map(|i| format!("acc{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    funded(&app, &refs).await;
    for i in 0..8 {
        for j in 0..8 {
            if i == j {
                continue;
            }
            let response = app
                .post(
                    "/v1/payments",
                    json!({"id": format!("p{i}-{j}"), "from": ids[i], "to": ids[j], "amount": "1.25", "currency": "USD"}),
                )
                .await;
            assert_eq!(response.status(), 201);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["status"], "settled");
            assert_eq!(body["captured_amount"], "1.25");
        }
    }
    for id in &ids {
        assert_eq!(
            app.balance(id).await.0,
            "100.00",
            "everyone paid and got paid 7 times"
        );
    }
    let payment: Value = app.get("/v1/payments/p0-1").await.json().await.unwrap();
    assert_eq!(payment["from"], "acc0");
    assert_eq!(payment["status"], "settled");
}

#[actix_web::test]
async fn refused_payments_answer_their_code_and_stay_recorded_as_rejected() {
    let app = spawn_app().await;
    funded(&app, &["a", "b"]).await;
    app.create_account("e", "EUR").await;
    let cases = [
        (
            json!({"id": "x1", "from": "a", "to": "b", "amount": "1000", "currency": "USD"}),
            422,
            "insufficient_funds",
        ),
        (
            json!({"id": "x2", "from": "a", "to": "nobody", "amount": "1", "currency": "USD"}),
            422,
            "account_not_found",
        ),
        (
            json!({"id": "x3", "from": "a", "to": "a", "amount": "1", "currency": "USD"}),
            422,
            "same_account",
        ),
        (
            json!({"id": "x4", "from": "a", "to": "e", "amount": "1", "currency": "USD"}),
            422,
            "currency_mismatch",
        ),
    ];
    for (body, status, code) in cases {
        let id = body["id"].as_str().unwrap().to_owned();
        assert_problem(app.post("/v1/payments", body.clone()).await, status, code).await;
        let recorded: Value = app
            .get(&format!("/v1/payments/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(recorded["status"], "rejected");
        assert_eq!(recorded["code"], code);
        // The same request again gives the same answer.
        let again = app.post("/v1/payments", body).await;
        assert_eq!(again.headers()["Idempotent-Replayed"], "true");
        assert_problem(again, status, code).await;
    }
    assert_eq!(
        app.balance("a").await,
        ("100.00".into(), "0.00".into(), "100.00".into())
    );
}

#[actix_web::test]
async fn a_two_phase_payment_holds_then_captures_part_and_releases_the_rest() {
    let app = spawn_app().await;
    funded(&app, &["payer", "shop"]).await;
    let auth = app
        .post("/v1/payments", json!({"id": "t1", "from": "payer", "to": "shop", "amount": "30", "currency": "USD", "capture": false}))
        .await;
    assert_eq!(auth.status(), 201);
    assert_eq!(auth.json::<Value>().await.unwrap()["status"], "authorized");
    assert_eq!(
        app.balance("payer").await,
        ("100.00".into(), "30.00".into(), "70.00".into())
    );

    let too_much = app
        .post("/v1/payments/t1/capture", json!({"amount": "30.01"}))
        .await;
    assert_problem(too_much, 422, "amount_exceeds_authorization").await;
    let capture = app
        .post("/v1/payments/t1/capture", json!({"amount": "20"}))
        .await;
    assert_eq!(capture.status(), 200);
    let body: Value = capture.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["captured_amount"].as_str()),
        (Some("captured"), Some("20.00"))
    );
    assert_eq!(
        app.balance("payer").await,
        ("80.00".into(), "0.00".into(), "80.00".into())
    );
    assert_eq!(app.balance("shop").await.0, "120.00");

    let twice = app.post("/v1/payments/t1/capture", json!({})).await;
    assert_problem(twice, 409, "payment_not_authorized").await;
    let void = app.post("/v1/payments/t1/void", json!({})).await;
    assert_problem(void, 409, "payment_not_authorized").await;
}

#[actix_web::test]
async fn a_voided_authorization_releases_the_hold() {
    let app = spawn_app().await;
    funded(&app, &["v1", "v2"]).await;
    let auth = app
        .post("/v1/payments", json!({"id": "v", "from": "v1", "to": "v2", "amount": "40", "currency": "USD", "capture": false}))
        .await;
    assert_eq!(auth.status(), 201);
    let void = app.post("/v1/payments/v/void", json!({})).await;
    assert_eq!(void.status(), 200);
    assert_eq!(void.json::<Value>().await.unwrap()["status"], "voided");
    assert_eq!(
        app.balance("v1").await,
        ("100.00".into(), "0.00".into(), "100.00".into())
    );
    let capture = app.post("/v1/payments/v/capture", json!({})).await;
    assert_problem(capture, 409, "payment_not_authorized").await;
}

#[actix_web::test]
async fn an_authorization_expires_after_its_hold_timeout_and_releases_the_money() {
    let app = spawn_app().await;
    funded(&app, &["h1", "h2"]).await;
    let auth = app
        .post("/v1/payments", json!({"id": "exp", "from": "h1", "to": "h2", "amount": "10", "currency": "USD", "capture": false, "hold_timeout_ms": 100}))
        .await;
    assert_eq!(auth.status(), 201);
    eventually(|| async {
        let payment: Value = app.get("/v1/payments/exp").await.json().await.unwrap();
        payment["status"] == "expired"
    })
    .await;
    assert_eq!(
        app.balance("h1").await,
        ("100.00".into(), "0.00".into(), "100.00".into())
    );
    // A retry of the creation still answers what the client was first told.
    let retry = app
        .post("/v1/payments", json!({"id": "exp", "from": "h1", "to": "h2", "amount": "10", "currency": "USD", "capture": false, "hold_timeout_ms": 100}))
        .await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.json::<Value>().await.unwrap()["status"], "authorized");
}

#[actix_web::test]
async fn a_client_may_not_pay_from_an_account_outside_its_token() {
    let app = spawn_app().await;
    funded(&app, &["own", "other"]).await;
    let token = app.client_token("buyer", Some(vec!["own"]));
    let response = app
        .post_as(
            &token,
            "/v1/payments",
            json!({"from": "other", "to": "own", "amount": "1", "currency": "USD"}),
        )
        .await;
    assert_problem(response, 403, "forbidden").await;
    let allowed = app
        .post_as(
            &token,
            "/v1/payments",
            json!({"from": "own", "to": "other", "amount": "1", "currency": "USD"}),
        )
        .await;
    assert_eq!(allowed.status(), 201);
}

#[actix_web::test]
async fn an_idempotency_key_makes_a_payment_once() {
    let app = spawn_app().await;
    funded(&app, &["i1", "i2"]).await;
    let body = json!({"from": "i1", "to": "i2", "amount": "5", "currency": "USD"});
    let first = app
        .post_with_key("/v1/payments", "order-77", body.clone())
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = app.post_with_key("/v1/payments", "order-77", body).await;
    assert_eq!(again.headers()["Idempotent-Replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    assert_eq!(app.balance("i1").await.0, "95.00");
    let changed = app
        .post_with_key(
            "/v1/payments",
            "order-77",
            json!({"from": "i1", "to": "i2", "amount": "6", "currency": "USD"}),
        )
        .await;
    assert_problem(changed, 409, "idempotency_conflict").await;
}

#[actix_web::test]
async fn a_payment_batch_answers_in_request_order_in_json_and_msgpack() {
    let app = spawn_app().await;
    funded(&app, &["b1", "b2", "b3"]).await;
    let payments = json!([
        {"id": "bp1", "from": "b1", "to": "b2", "amount": "1", "currency": "USD"},
        {"id": "bp2", "from": "b2", "to": "nobody", "amount": "1", "currency": "USD"},
        {"id": "bp3", "from": "b3", "to": "b1", "amount": "1000", "currency": "USD"},
        {"id": "bp4", "from": "b3", "to": "b1", "amount": "1", "currency": "XXX"},
        {"id": "bp5", "from": "b3", "to": "b2", "amount": "2", "currency": "USD", "capture": false},
    ]);
    let response = app
        .post("/v1/payments/batch", json!({"payments": payments}))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let statuses: Vec<(String, String)> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_owned(),
                r["code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("settled".into(), "".into()),
            ("rejected".into(), "account_not_found".into()),
            ("rejected".into(), "insufficient_funds".into()),
            ("rejected".into(), "invalid_request".into()),
            ("authorized".into(), "".into()),
        ]
    );

    let request = json!({"payments": [{"id": "mp1", "from": "b1", "to": "b3", "amount": "3", "currency": "USD"}]});
    let bytes = rmp_serde::to_vec_named(&request).unwrap();
    let response = app
        .http
        .post(app.url("/v1/payments/batch"))
        .bearer_auth(&app.operator)
        .header("content-type", "application/msgpack")
        .header("accept", "application/msgpack")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let decoded: Value = rmp_serde::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(decoded["results"][0]["status"], "settled");
    // b1: 100, paid 1 (bp1), paid 3 (mp1).
    assert_eq!(app.balance("b1").await.0, "96.00");

    // A whole batch followed by more bytes is malformed, and moves nothing.
    let request = json!({"payments": [{"id": "mp2", "from": "b1", "to": "b3", "amount": "3", "currency": "USD"}]});
    let mut bytes = rmp_serde::to_vec_named(&request).unwrap();
    bytes.push(0xc0);
    let response = app
        .http
        .post(app.url("/v1/payments/batch"))
        .bearer_auth(&app.operator)
        .header("content-type", "application/msgpack")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "invalid_request").await;
    assert_eq!(app.balance("b1").await.0, "96.00");
}

#[actix_web::test]
async fn a_malformed_or_oversized_batch_is_refused_as_a_whole() {
    let app = spawn_app().await;
    assert_problem(
        app.post("/v1/payments/batch", json!({"payments": []}))
            .await,
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        app.post("/v1/payments/batch", json!({"payment": []})).await,
        400,
        "invalid_request",
    )
    .await;
    let one = json!({"from": "a", "to": "b", "amount": "1", "currency": "USD"});
    let too_many: Vec<Value> = (0..=PAYMENTS_PER_BATCH_MAX).map(|_| one.clone()).collect();
    let response = app
        .post("/v1/payments/batch", json!({"payments": too_many}))
        .await;
    assert_problem(response, 400, "invalid_request").await;
}
