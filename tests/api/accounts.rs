//! Accounts: creating, reading, deposits and withdrawals, through a spawned app.

use crate::common::app::spawn_app;
use crate::common::http::assert_problem;
use serde_json::{json, Value};

#[actix_web::test]
async fn creating_an_account_twice_with_the_same_fields_answers_200_and_different_fields_409() {
    let app = spawn_app().await;
    let first = app
        .post("/v1/accounts", json!({"id": "a1", "currency": "USD"}))
        .await;
    assert_eq!(first.status(), 201);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["balance"], "0.00");
    assert_eq!(body["available"], "0.00");
    assert_eq!(body["overdraft_limit"], "0.00");
    assert_eq!(body["version"], 0);

    let again = app
        .post("/v1/accounts", json!({"id": "a1", "currency": "USD"}))
        .await;
    assert_eq!(again.status(), 200);
    let other = app
        .post("/v1/accounts", json!({"id": "a1", "currency": "EUR"}))
        .await;
    assert_problem(other, 409, "account_exists").await;
}

#[actix_web::test]
async fn an_account_without_an_id_gets_one_from_the_server() {
    let app = spawn_app().await;
    let response = app.post("/v1/accounts", json!({"currency": "JPY"})).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert!(!id.is_empty() && id.len() <= 64);
    assert_eq!(app.get(&format!("/v1/accounts/{id}")).await.status(), 200);
}

#[actix_web::test]
async fn deposits_and_withdrawals_move_the_balance_and_refuse_overdrafts() {
    let app = spawn_app().await;
    app.create_account("a", "USD").await;
    let deposit = app
        .post(
            "/v1/accounts/a/deposits",
            json!({"id": "d1", "amount": "100.50"}),
        )
        .await;
    assert_eq!(deposit.status(), 201);
    let body: Value = deposit.json().await.unwrap();
    assert_eq!(
        body,
        json!({"id": "d1", "account": "a", "amount": "100.50", "balance": "100.50"})
    );

    let withdrawal = app
        .post("/v1/accounts/a/withdrawals", json!({"amount": "0.50"}))
        .await;
    assert_eq!(withdrawal.status(), 201);
    let too_much = app
        .post("/v1/accounts/a/withdrawals", json!({"amount": "100.01"}))
        .await;
    assert_problem(too_much, 422, "insufficient_funds").await;
    assert_eq!(app.balance("a").await.0, "100.00");
}

#[actix_web::test]
async fn an_overdraft_limit_extends_what_can_be_withdrawn() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/v1/accounts",
            json!({"id": "o", "currency": "USD", "overdraft_limit": "50"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let withdrawal = app
        .post("/v1/accounts/o/withdrawals", json!({"amount": "50.00"}))
        .await;
    assert_eq!(withdrawal.status(), 201);
    let (balance, _, available) = app.balance("o").await;
    assert_eq!((balance.as_str(), available.as_str()), ("-50.00", "0.00"));
    let more = app
        .post("/v1/accounts/o/withdrawals", json!({"amount": "0.01"}))
        .await;
    assert_problem(more, 422, "insufficient_funds").await;
}

#[actix_web::test]
async fn a_deposit_in_another_currency_is_a_currency_mismatch() {
    let app = spawn_app().await;
    app.create_account("eur", "EUR").await;
    let response = app
        .post(
            "/v1/accounts/eur/deposits",
            json!({"amount": "1.00", "currency": "USD"}),
        )
        .await;
    assert_problem(response, 422, "currency_mismatch").await;
    let jpy = spawn_app().await;
    jpy.create_account("y", "JPY").await;
    let fractional = jpy
        .post("/v1/accounts/y/deposits", json!({"amount": "1.5"}))
        .await;
    assert_problem(fractional, 422, "invalid_amount").await;
}

#[actix_web::test]
async fn unknown_accounts_are_404_everywhere() {
    let app = spawn_app().await;
    assert_problem(
        app.get("/v1/accounts/ghost").await,
        404,
        "account_not_found",
    )
    .await;
    let deposit = app
        .post("/v1/accounts/ghost/deposits", json!({"amount": "1"}))
        .await;
    assert_problem(deposit, 404, "account_not_found").await;
}

#[actix_web::test]
async fn a_deposit_retried_with_its_idempotency_key_replays_and_a_changed_body_conflicts() {
    let app = spawn_app().await;
    app.create_account("k", "USD").await;
    let first = app
        .post_with_key("/v1/accounts/k/deposits", "key-1", json!({"amount": "10"}))
        .await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("Idempotent-Replayed").is_none());
    let first: Value = first.json().await.unwrap();

    let again = app
        .post_with_key("/v1/accounts/k/deposits", "key-1", json!({"amount": "10"}))
        .await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["Idempotent-Replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(
        app.balance("k").await.0,
        "10.00",
        "the retry moved no money"
    );

    let changed = app
        .post_with_key("/v1/accounts/k/deposits", "key-1", json!({"amount": "11"}))
        .await;
    assert_problem(changed, 409, "idempotency_conflict").await;
}

#[actix_web::test]
async fn a_rejected_withdrawal_is_replayed_as_rejected_even_after_the_money_arrives() {
    let app = spawn_app().await;
    app.create_account("r", "USD").await;
    let first = app
        .post(
            "/v1/accounts/r/withdrawals",
            json!({"id": "w1", "amount": "5"}),
        )
        .await;
    assert_problem(first, 422, "insufficient_funds").await;
    app.deposit("r", "100").await;
    let retry = app
        .post(
            "/v1/accounts/r/withdrawals",
            json!({"id": "w1", "amount": "5"}),
        )
        .await;
    assert_eq!(retry.headers()["Idempotent-Replayed"], "true");
    assert_problem(retry, 422, "insufficient_funds").await;
    assert_eq!(app.balance("r").await.0, "100.00");
}

#[actix_web::test]
async fn clients_may_only_read_the_accounts_their_token_names() {
    let app = spawn_app().await;
    app.create_account("mine", "USD").await;
    app.create_account("theirs", "USD").await;
    let token = app.client_token("c1", Some(vec!["mine"]));
    assert_eq!(app.get_as(&token, "/v1/accounts/mine").await.status(), 200);
    assert_problem(
        app.get_as(&token, "/v1/accounts/theirs").await,
        403,
        "forbidden",
    )
    .await;
    let create = app
        .post_as(&token, "/v1/accounts", json!({"currency": "USD"}))
        .await;
    assert_problem(create, 403, "forbidden").await;
}
