//! Finished payments, orders and reservations leave memory for the archive, on
//! SQLite and on PostgreSQL, and answer exactly as they did before: reads by
//! id byte for byte, retries with the same body replayed, other bodies 409.

use crate::common::app::{spawn_app_with, TestApp};
use crate::common::eventually;
use crate::common::http::assert_problem;
use crate::common::postgres::Database;
use reqwest::Response;
use serde_json::{json, Value};

/// Long enough that the first read surely finds the entity in memory, short
/// enough that the test does not wait long for it to leave.
const FINISHED_IN_MEMORY_MS: u64 = 1_500;

async fn archiving_app(postgres: Option<&Database>) -> TestApp {
    spawn_app_with(|settings| {
        settings.engine.finished_in_memory_ms = FINISHED_IN_MEMORY_MS;
        if let Some(database) = postgres {
            settings.storage.url = database.url.clone();
        }
    })
    .await
}

/// Payments, orders and reservations the shards hold in memory, all shards.
async fn in_memory(app: &TestApp) -> (u64, u64) {
    let shards: Value = app.get("/admin/shards").await.json().await.unwrap();
    let sum = |field: &str| {
        shards
            .as_array()
            .unwrap()
            .iter()
            .map(|shard| shard[field].as_u64().unwrap())
            .sum::<u64>()
    };
    (sum("payments"), sum("orders"))
}

async fn body_of(response: Response) -> (u16, Option<String>, Vec<u8>) {
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("Idempotent-Replayed")
        .map(|value| value.to_str().unwrap().to_owned());
    (status, replayed, response.bytes().await.unwrap().to_vec())
}

/// A settled payment, a confirmed order and a committed reservation, just
/// finished; returns the payment's and the order's bodies and first answers.
async fn finish_one_of_each(app: &TestApp) -> [(Value, Vec<u8>); 2] {
    for id in ["payer", "merchant"] {
        app.create_account(id, "USD").await;
    }
    app.deposit("payer", "100").await;
    let created = app
        .post(
            "/v1/items",
            json!({"sku": "lamp", "price": "2.50", "currency": "USD", "stock": 10}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let payment = json!({"id": "arch-p1", "from": "payer", "to": "merchant", "amount": "1.25", "currency": "USD"});
    let order = json!({"id": "arch-o1", "account": "payer", "merchant": "merchant",
                       "lines": [{"sku": "lamp", "quantity": 2}], "wait_ms": 5000});
    let reservation = json!({"id": "arch-r1", "quantity": 1, "ttl_ms": 60000});
    let (status, _, first_payment) = body_of(app.post("/v1/payments", payment.clone()).await).await;
    assert_eq!(status, 201);
    let (status, _, first_order) = body_of(app.post("/v1/orders", order.clone()).await).await;
    assert_eq!(status, 201);
    let reserved = app.post("/v1/items/lamp/reservations", reservation).await;
    assert_eq!(reserved.status(), 201);
    let committed = app
        .post("/v1/items/lamp/reservations/arch-r1/commit", json!({}))
        .await;
    assert_eq!(committed.status(), 200);
    [(payment, first_payment), (order, first_order)]
}

async fn finished_entities_answer_the_same_after_leaving_memory(app: TestApp) {
    let [(payment, first_payment), (order, first_order)] = finish_one_of_each(&app).await;
    let paths = [
        "/v1/payments/arch-p1",
        "/v1/orders/arch-o1",
        "/v1/items/lamp/reservations/arch-r1",
    ];
    // Read while in memory (they finished just now)...
    let mut from_memory = Vec::new();
    for path in paths {
        from_memory.push(body_of(app.get(path).await).await);
    }
    assert!(
        in_memory(&app).await.0 >= 1,
        "the payment is still in memory"
    );
    // ...and once they have left it.
    eventually(|| async { in_memory(&app).await == (0, 0) }).await;
    for (path, before) in paths.iter().zip(&from_memory) {
        let after = body_of(app.get(path).await).await;
        assert_eq!(
            &after,
            before,
            "{path}: {} then {}",
            String::from_utf8_lossy(&before.2),
            String::from_utf8_lossy(&after.2)
        );
    }
    // Retries replay the first answer, from the archive.
    let (status, replayed, again) = body_of(app.post("/v1/payments", payment.clone()).await).await;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")));
    assert_eq!(again, first_payment);
    let (status, replayed, again) = body_of(app.post("/v1/orders", order.clone()).await).await;
    assert_eq!(replayed.as_deref(), Some("true"), "{status}");
    assert_eq!(again, first_order);
    // Another body under the same id is a conflict; money and stock moved once.
    let mut other = payment.clone();
    other["amount"] = json!("1.26");
    assert_problem(
        app.post("/v1/payments", other).await,
        409,
        "idempotency_conflict",
    )
    .await;
    let mut other = order.clone();
    other["lines"] = json!([{"sku": "lamp", "quantity": 3}]);
    assert_problem(
        app.post("/v1/orders", other).await,
        409,
        "idempotency_conflict",
    )
    .await;
    assert_eq!(app.balance("payer").await.0, "93.75");
    let item: Value = app.get("/v1/items/lamp").await.json().await.unwrap();
    assert_eq!(item["on_hand"], 7);
}

#[actix_web::test]
async fn on_sqlite_finished_entities_answer_the_same_after_leaving_memory() {
    finished_entities_answer_the_same_after_leaving_memory(archiving_app(None).await).await;
}

#[actix_web::test]
async fn on_postgres_finished_entities_answer_the_same_after_leaving_memory() {
    let database = Database::create("surge_archive").await;
    finished_entities_answer_the_same_after_leaving_memory(archiving_app(Some(&database)).await)
        .await;
}

/// Operation records (a capture and a commit under an `Idempotency-Key`, a
/// deposit with an id) leave memory with what they acted on, and a retry after
/// that replays the first answer byte for byte; another key is a new operation.
async fn operation_records_answer_the_same_after_leaving_memory(app: TestApp) {
    for id in ["payer", "merchant"] {
        app.create_account(id, "USD").await;
    }
    let deposit = json!({"id": "arch-d1", "amount": "50"});
    let deposit_path = "/v1/accounts/payer/deposits";
    let (status, _, first_deposit) = body_of(app.post(deposit_path, deposit.clone()).await).await;
    assert_eq!(status, 201);
    let hold = json!({"id": "arch-h1", "from": "payer", "to": "merchant", "amount": "5",
                      "currency": "USD", "capture": false});
    assert_eq!(app.post("/v1/payments", hold).await.status(), 201);
    let capture = "/v1/payments/arch-h1/capture";
    let (status, _, first_capture) =
        body_of(app.post_with_key(capture, "cap-1", json!({})).await).await;
    assert_eq!(status, 200);
    let created = app
        .post(
            "/v1/items",
            json!({"sku": "desk", "price": "9", "currency": "USD", "stock": 3}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let reserve = json!({"id": "arch-r2", "quantity": 1, "ttl_ms": 60000});
    assert_eq!(
        app.post("/v1/items/desk/reservations", reserve)
            .await
            .status(),
        201
    );
    let commit = "/v1/items/desk/reservations/arch-r2/commit";
    let (status, _, first_commit) =
        body_of(app.post_with_key(commit, "com-1", json!({})).await).await;
    assert_eq!(status, 200);

    eventually(|| async { in_memory(&app).await == (0, 0) }).await;
    // The records went in the same rounds as what they acted on.
    let (status, replayed, again) =
        body_of(app.post_with_key(capture, "cap-1", json!({})).await).await;
    assert_eq!((status, replayed.as_deref()), (200, Some("true")));
    assert_eq!(again, first_capture);
    let (status, replayed, again) =
        body_of(app.post_with_key(commit, "com-1", json!({})).await).await;
    assert_eq!((status, replayed.as_deref()), (200, Some("true")));
    assert_eq!(again, first_commit);
    let (status, replayed, again) = body_of(app.post(deposit_path, deposit).await).await;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")));
    assert_eq!(again, first_deposit);
    let other = json!({"id": "arch-d1", "amount": "51"});
    assert_problem(
        app.post(deposit_path, other).await,
        409,
        "idempotency_conflict",
    )
    .await;
    // A capture under another key is a new operation, refused as in memory.
    assert_problem(
        app.post_with_key(capture, "cap-2", json!({})).await,
        409,
        "payment_not_authorized",
    )
    .await;
    assert_eq!(app.balance("payer").await.0, "45.00");
}

#[actix_web::test]
async fn on_sqlite_operation_records_answer_the_same_after_leaving_memory() {
    operation_records_answer_the_same_after_leaving_memory(archiving_app(None).await).await;
}

#[actix_web::test]
async fn on_postgres_operation_records_answer_the_same_after_leaving_memory() {
    let database = Database::create("surge_archive_ops").await;
    operation_records_answer_the_same_after_leaving_memory(archiving_app(Some(&database)).await)
        .await;
}
