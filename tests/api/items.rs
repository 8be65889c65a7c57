//! Items and reservations: stock, reserve, commit, release and expiry, through a spawned app.

use crate::common::app::spawn_app;
use crate::common::eventually;
use crate::common::http::assert_problem;
use serde_json::{json, Value};

#[actix_web::test]
async fn items_are_created_once_and_restocked() {
    let app = spawn_app().await;
    let item = json!({"sku": "tv-55", "price": "499.99", "currency": "USD", "stock": 3});
    let created = app.post("/v1/items", item.clone()).await;
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.unwrap();
    assert_eq!(
        body,
        json!({"sku": "tv-55", "price": "499.99", "currency": "USD", "on_hand": 3, "reserved": 0, "available": 3, "version": 0})
    );
    assert_eq!(app.post("/v1/items", item).await.status(), 200);
    let different = app
        .post(
            "/v1/items",
            json!({"sku": "tv-55", "price": "1.00", "currency": "USD", "stock": 3}),
        )
        .await;
    assert_problem(different, 409, "item_exists").await;
    let restock = app
        .post("/v1/items/tv-55/restock", json!({"quantity": 2}))
        .await;
    assert_eq!(restock.status(), 200);
    assert_eq!(restock.json::<Value>().await.unwrap()["on_hand"], 5);
    assert_problem(
        app.post("/v1/items/nope/restock", json!({"quantity": 2}))
            .await,
        404,
        "item_not_found",
    )
    .await;
    assert_problem(app.get("/v1/items/nope").await, 404, "item_not_found").await;
}

#[actix_web::test]
async fn reservations_never_oversell_and_commit_or_release_exactly_once() {
    let app = spawn_app().await;
    app.post(
        "/v1/items",
        json!({"sku": "hot", "price": "10", "currency": "USD", "stock": 5}),
    )
    .await;
    let token = app.client_token("buyer", None);
    let mut held = 0;
    for i in 0..8 {
        let response = app
            .post_as(
                &token,
                "/v1/items/hot/reservations",
                json!({"id": format!("r{i}"), "quantity": 1}),
            )
            .await;
        match response.status().as_u16() {
            201 => held += 1,
            409 => {
                assert_problem(response, 409, "out_of_stock").await;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(held, 5);
    let item: Value = app.get("/v1/items/hot").await.json().await.unwrap();
    assert_eq!(
        (item["reserved"].as_u64(), item["available"].as_u64()),
        (Some(5), Some(0))
    );

    let commit = app
        .post("/v1/items/hot/reservations/r0/commit", json!({}))
        .await;
    assert_eq!(commit.status(), 200);
    assert_eq!(commit.json::<Value>().await.unwrap()["status"], "committed");
    assert_eq!(
        app.post("/v1/items/hot/reservations/r0/commit", json!({}))
            .await
            .status(),
        200
    );
    assert_problem(
        app.post("/v1/items/hot/reservations/r0/release", json!({}))
            .await,
        409,
        "reservation_committed",
    )
    .await;

    assert_eq!(
        app.post("/v1/items/hot/reservations/r1/release", json!({}))
            .await
            .status(),
        200
    );
    assert_problem(
        app.post("/v1/items/hot/reservations/r1/commit", json!({}))
            .await,
        409,
        "reservation_released",
    )
    .await;

    let item: Value = app.get("/v1/items/hot").await.json().await.unwrap();
    assert_eq!(
        (
            item["on_hand"].as_u64(),
            item["reserved"].as_u64(),
            item["available"].as_u64()
        ),
        (Some(4), Some(3), Some(1))
    );
    let reservation: Value = app
        .get("/v1/items/hot/reservations/r0")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reservation["status"], "committed");
    assert_problem(
        app.get("/v1/items/hot/reservations/zzz").await,
        404,
        "reservation_not_found",
    )
    .await;
}

#[actix_web::test]
async fn a_held_reservation_expires_by_itself_and_frees_its_stock() {
    let app = spawn_app().await;
    app.post(
        "/v1/items",
        json!({"sku": "flash", "price": "1", "currency": "USD", "stock": 1}),
    )
    .await;
    let response = app
        .post(
            "/v1/items/flash/reservations",
            json!({"id": "short", "quantity": 1, "ttl_ms": 100}),
        )
        .await;
    assert_eq!(response.status(), 201);
    eventually(|| async {
        let reservation: Value = app
            .get("/v1/items/flash/reservations/short")
            .await
            .json()
            .await
            .unwrap();
        reservation["status"] == "expired"
    })
    .await;
    let item: Value = app.get("/v1/items/flash").await.json().await.unwrap();
    assert_eq!(item["available"], 1);
    assert_problem(
        app.post("/v1/items/flash/reservations/short/commit", json!({}))
            .await,
        409,
        "reservation_expired",
    )
    .await;
}

#[actix_web::test]
async fn a_reservation_retried_with_the_same_id_is_replayed_and_a_different_body_conflicts() {
    let app = spawn_app().await;
    app.post(
        "/v1/items",
        json!({"sku": "s", "price": "1", "currency": "USD", "stock": 10}),
    )
    .await;
    let first = app
        .post(
            "/v1/items/s/reservations",
            json!({"id": "same", "quantity": 2, "ttl_ms": 60000}),
        )
        .await;
    assert_eq!(first.status(), 201);
    let again = app
        .post(
            "/v1/items/s/reservations",
            json!({"id": "same", "quantity": 2, "ttl_ms": 60000}),
        )
        .await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["Idempotent-Replayed"], "true");
    let item: Value = app.get("/v1/items/s").await.json().await.unwrap();
    assert_eq!(item["reserved"], 2, "the retry reserved nothing more");
    let changed = app
        .post(
            "/v1/items/s/reservations",
            json!({"id": "same", "quantity": 3, "ttl_ms": 60000}),
        )
        .await;
    assert_problem(changed, 409, "idempotency_conflict").await;
    let bad = app
        .post("/v1/items/s/reservations", json!({"quantity": 0}))
        .await;
    assert_problem(bad, 400, "invalid_request").await;
}
