//! Orders: placing, waiting, cancelling and their feed, through a spawned app.

use crate::common::app::{spawn_app, spawn_app_with, TestApp};
use crate::common::eventually;
use crate::common::http::assert_problem;
use serde_json::{json, Value};

/// A buyer with `funds`, a merchant, and items with the given (sku, price, stock).
async fn shop(app: &TestApp, funds: &str, items: &[(&str, &str, u64)]) {
    app.create_account("buyer", "USD").await;
    app.deposit("buyer", funds).await;
    app.create_account("merchant", "USD").await;
    for (sku, price, stock) in items {
        let response = app
            .post(
                "/v1/items",
                json!({"sku": sku, "price": price, "currency": "USD", "stock": stock}),
            )
            .await;
        assert_eq!(response.status(), 201, "create item {sku}");
    }
}

async fn item(app: &TestApp, sku: &str) -> Value {
    app.get(&format!("/v1/items/{sku}"))
        .await
        .json()
        .await
        .unwrap()
}

fn statuses(order: &Value) -> Vec<String> {
    order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn an_order_reserves_holds_commits_and_pays_the_merchant() {
    let app = spawn_app().await;
    shop(&app, "100", &[("tv", "30.00", 5), ("cable", "2.50", 10)]).await;
    let (status, order) = app
        .place_order(
            json!({"id": "o1", "account": "buyer", "merchant": "merchant",
                   "lines": [{"sku": "tv", "quantity": 2}, {"sku": "cable", "quantity": 4}]}),
        )
        .await;
    assert_eq!(
        status, 201,
        "a final order, a rejected one included, is a 201"
    );
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(order["total"], "70.00");
    assert_eq!(order["currency"], "USD");
    assert_eq!(order["lines"][0]["unit_price"], "30.00");
    assert_eq!(
        statuses(&order),
        ["pending", "reserved", "authorized", "confirmed"]
    );
    assert_eq!(
        app.balance("buyer").await,
        ("30.00".into(), "0.00".into(), "30.00".into())
    );
    assert_eq!(app.balance("merchant").await.0, "70.00");
    let tv = item(&app, "tv").await;
    assert_eq!(
        (tv["on_hand"].as_u64(), tv["reserved"].as_u64()),
        (Some(3), Some(0))
    );
    let cable = item(&app, "cable").await;
    assert_eq!(cable["on_hand"], 6);
    let read: Value = app.get("/v1/orders/o1").await.json().await.unwrap();
    assert_eq!(read, order);
}

#[actix_web::test]
async fn a_line_out_of_stock_rejects_the_order_and_gives_every_unit_back() {
    let app = spawn_app().await;
    shop(&app, "100", &[("tv", "30.00", 5), ("rare", "1.00", 1)]).await;
    let (status, order) = app
        .place_order(
            json!({"id": "o2", "account": "buyer", "merchant": "merchant",
                   "lines": [{"sku": "tv", "quantity": 2}, {"sku": "rare", "quantity": 2}]}),
        )
        .await;
    assert_eq!(
        status, 201,
        "a final order, a rejected one included, is a 201"
    );
    assert_eq!(order["status"], "rejected");
    assert_eq!(order["reason"], "out_of_stock");
    assert_eq!(statuses(&order), ["pending", "rejected"]);
    for sku in ["tv", "rare"] {
        let item = item(&app, sku).await;
        assert_eq!(item["reserved"], 0, "{sku} holds nothing");
        assert_eq!(item["available"], item["on_hand"]);
    }
    assert_eq!(app.balance("buyer").await.1, "0.00");
}

#[actix_web::test]
async fn an_order_the_buyer_cannot_pay_releases_its_stock() {
    let app = spawn_app().await;
    shop(&app, "10", &[("tv", "30.00", 5)]).await;
    let (_, order) = app
        .place_order(
            json!({"id": "o3", "account": "buyer", "merchant": "merchant",
                   "lines": [{"sku": "tv", "quantity": 1}]}),
        )
        .await;
    assert_eq!(order["status"], "rejected");
    assert_eq!(order["reason"], "insufficient_funds");
    assert_eq!(statuses(&order), ["pending", "reserved", "rejected"]);
    assert_eq!(item(&app, "tv").await["available"], 5);
    assert_eq!(
        app.balance("buyer").await,
        ("10.00".into(), "0.00".into(), "10.00".into())
    );
}

#[actix_web::test]
async fn every_rejection_reason_of_the_contract_is_reported() {
    let app = spawn_app().await;
    shop(&app, "100", &[("tv", "30.00", 5)]).await;
    app.create_account("euro-shop", "EUR").await;
    let response = app
        .post(
            "/v1/items",
            json!({"sku": "croissant", "price": "1.00", "currency": "EUR", "stock": 5}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let cases = [
        ("nobody", "merchant", "tv", "account_not_found"),
        ("buyer", "nobody", "tv", "account_not_found"),
        ("buyer", "merchant", "ghost", "item_not_found"),
        ("buyer", "merchant", "croissant", "currency_mismatch"),
        ("buyer", "euro-shop", "tv", "currency_mismatch"),
    ];
    for (index, (account, merchant, sku, reason)) in cases.into_iter().enumerate() {
        let (_, order) = app
            .place_order(
                json!({"id": format!("r{index}"), "account": account, "merchant": merchant,
                       "lines": [{"sku": sku, "quantity": 1}]}),
            )
            .await;
        assert_eq!(order["status"], "rejected", "{order}");
        assert_eq!(order["reason"], reason, "{order}");
    }
    assert_eq!(item(&app, "tv").await["reserved"], 0);
    assert_eq!(item(&app, "croissant").await["reserved"], 0);
    assert_eq!(app.balance("buyer").await.1, "0.00");
}

#[actix_web::test]
async fn the_same_id_and_body_replays_and_a_different_body_conflicts() {
    let app = spawn_app().await;
    shop(&app, "100", &[("tv", "30.00", 5)]).await;
    let body = json!({"id": "o4", "account": "buyer", "merchant": "merchant",
                      "lines": [{"sku": "tv", "quantity": 1}]});
    let (_, first) = app.place_order(body.clone()).await;
    let again = app.post("/v1/orders", body).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["Idempotent-Replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let different = app
        .post(
            "/v1/orders",
            json!({"id": "o4", "account": "buyer", "merchant": "merchant",
                   "lines": [{"sku": "tv", "quantity": 2}]}),
        )
        .await;
    assert_problem(different, 409, "idempotency_conflict").await;
    assert_eq!(item(&app, "tv").await["on_hand"], 4, "sold once");

    let keyed = json!({"account": "buyer", "merchant": "merchant",
                       "lines": [{"sku": "tv", "quantity": 1}]});
    let one: Value = app
        .post_with_key("/v1/orders", "cart-9", keyed.clone())
        .await
        .json()
        .await
        .unwrap();
    let two: Value = app
        .post_with_key("/v1/orders", "cart-9", keyed)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], two["id"]);
    assert_eq!(
        item(&app, "tv").await["on_hand"],
        3,
        "the keyed order sold once"
    );
}

#[actix_web::test]
async fn an_order_still_running_after_wait_ms_is_a_202_and_can_be_cancelled() {
    // A step resend far in the future and a shard that never answers would be
    // hard to arrange from outside; an order towards a slow path is simulated by
    // asking for no wait at all.
    let app = spawn_app().await;
    shop(&app, "100", &[("tv", "30.00", 5)]).await;
    let response = app
        .post(
            "/v1/orders",
            json!({"id": "o5", "account": "buyer", "merchant": "merchant",
                   "lines": [{"sku": "tv", "quantity": 1}], "wait_ms": 0}),
        )
        .await;
    let status = response.status().as_u16();
    let order: Value = response.json().await.unwrap();
    // With no wait the answer is whatever the order was when it was accepted.
    assert!(status == 202 || status == 201, "{status}");
    let running = ["pending", "reserved", "authorized"];
    if status == 202 {
        assert!(
            running.contains(&order["status"].as_str().unwrap()),
            "{order}"
        );
    } else {
        assert!(
            !running.contains(&order["status"].as_str().unwrap()),
            "{order}"
        );
    }
    eventually(|| async {
        let order: Value = app.get("/v1/orders/o5").await.json().await.unwrap();
        order["status"] == "confirmed"
    })
    .await;
    let late = app.post("/v1/orders/o5/cancel", json!({})).await;
    assert_problem(late, 409, "order_already_final").await;
    assert_problem(
        app.post("/v1/orders/none/cancel", json!({})).await,
        404,
        "order_not_found",
    )
    .await;
}

#[actix_web::test]
async fn an_order_that_cannot_finish_expires_and_gives_everything_back() {
    // The merchant's shard is the one the order needs last; with a resend delay
    // longer than the order timeout and one item shard unreachable this would be
    // slow to arrange, so the order timeout is made shorter than one tick.
    let app = spawn_app_with(|settings| {
        settings.orders.timeout_ms = 0;
    })
    .await;
    shop(&app, "100", &[("tv", "30.00", 5)]).await;
    let (_, order) = app
        .place_order(
            json!({"id": "o6", "account": "buyer", "merchant": "merchant",
                   "lines": [{"sku": "tv", "quantity": 1}], "wait_ms": 3000}),
        )
        .await;
    // The deadline passes while the first steps are in flight: whether it is
    // noticed before or after the reservation, the order ends expired with
    // nothing held, or (if every step beat the first tick) confirmed.
    let status = order["status"].as_str().unwrap();
    assert!(["expired", "confirmed"].contains(&status), "{order}");
    if status == "expired" {
        assert_eq!(item(&app, "tv").await["reserved"], 0);
        assert_eq!(item(&app, "tv").await["on_hand"], 5);
        assert_eq!(
            app.balance("buyer").await,
            ("100.00".into(), "0.00".into(), "100.00".into())
        );
    }
}

#[actix_web::test]
async fn orders_are_checked_at_the_edge() {
    let app = spawn_app().await;
    let lines = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"sku": format!("s{i}"), "quantity": 1}))
            .collect()
    };
    let cases = [
        json!({"account": "a", "merchant": "b", "lines": []}),
        json!({"account": "a", "merchant": "b", "lines": lines(51)}),
        json!({"account": "a", "merchant": "b", "lines": [{"sku": "x", "quantity": 0}]}),
        json!({"account": "a", "merchant": "b", "lines": [{"sku": "bad sku", "quantity": 1}]}),
        json!({"account": "a", "merchant": "b", "lines": lines(1), "wait_ms": 999_999}),
        json!({"account": "a", "merchant": "b", "lines": lines(1), "extra": true}),
        json!({"account": "a", "merchant": "b", "lines": [{"sku": "x", "quantity": "1"}]}),
    ];
    for body in cases {
        assert_problem(app.post("/v1/orders", body).await, 400, "invalid_request").await;
    }
    // Well formed, refused as a payment to itself is.
    let to_itself = json!({"account": "a", "merchant": "a", "lines": lines(1)});
    assert_problem(app.post("/v1/orders", to_itself).await, 422, "same_account").await;
    assert_problem(app.get("/v1/orders/nothing").await, 404, "order_not_found").await;
}

#[actix_web::test]
async fn clients_only_order_for_and_see_their_own_accounts() {
    let app = spawn_app().await;
    shop(&app, "100", &[("tv", "30.00", 5)]).await;
    let alice = app.client_token("alice-app", Some(vec!["alice"]));
    let body = json!({"id": "o7", "account": "buyer", "merchant": "merchant",
                      "lines": [{"sku": "tv", "quantity": 1}]});
    assert_problem(
        app.post_as(&alice, "/v1/orders", body.clone()).await,
        403,
        "forbidden",
    )
    .await;
    app.place_order(body).await;
    assert_problem(app.get_as(&alice, "/v1/orders/o7").await, 403, "forbidden").await;
    let buyer = app.client_token("buyer-app", Some(vec!["buyer"]));
    assert_eq!(app.get_as(&buyer, "/v1/orders/o7").await.status(), 200);
}

#[actix_web::test]
async fn many_buyers_racing_for_the_last_units_never_oversell() {
    let app = spawn_app().await;
    let units = 7u64;
    let buyers = 40;
    app.create_account("merchant", "USD").await;
    let response = app
        .post(
            "/v1/items",
            json!({"sku": "hot", "price": "10.00", "currency": "USD", "stock": units}),
        )
        .await;
    assert_eq!(response.status(), 201);
    for i in 0..buyers {
        app.create_account(&format!("b{i}"), "USD").await;
        app.deposit(&format!("b{i}"), "10").await;
    }
    let orders = (0..buyers).map(|i| {
        let app = &app;
        async move {
            let body = json!({"id": format!("race{i}"), "account": format!("b{i}"),
                              "merchant": "merchant", "lines": [{"sku": "hot", "quantity": 1}]});
            app.place_order(body).await.1
        }
    });
    let results = futures::future::join_all(orders).await;
    let confirmed = results
        .iter()
        .filter(|o| o["status"] == "confirmed")
        .count();
    let sold_out = results
        .iter()
        .filter(|o| o["status"] == "rejected" && o["reason"] == "out_of_stock")
        .count();
    assert_eq!(confirmed as u64, units, "exactly the stock is sold");
    assert_eq!(
        confirmed + sold_out,
        buyers,
        "everyone else is told out_of_stock"
    );
    let hot = item(&app, "hot").await;
    assert_eq!(
        (hot["on_hand"].as_u64(), hot["reserved"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(app.balance("merchant").await.0, "70.00");
    let mut total = rust_decimal::Decimal::ZERO;
    for i in 0..buyers {
        let (balance, held, _) = app.balance(&format!("b{i}")).await;
        assert_eq!(held, "0.00");
        total += balance.parse::<rust_decimal::Decimal>().unwrap();
    }
    assert_eq!(
        total,
        rust_decimal::Decimal::from(400 - 70),
        "money is conserved"
    );
}
