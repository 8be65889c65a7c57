//! The WebSocket feed: subscriptions, snapshots, ordered notices, lag and limits, through a spawned app.

use crate::common::app::{spawn_app, spawn_app_with, TestApp};
use crate::common::feed::{next, send, subscribe};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

async fn shop(app: &TestApp) {
    app.create_account("buyer", "USD").await;
    app.deposit("buyer", "100").await;
    app.create_account("merchant", "USD").await;
    let response = app
        .post(
            "/v1/items",
            json!({"sku": "tv", "price": "30.00", "currency": "USD", "stock": 1}),
        )
        .await;
    assert_eq!(response.status(), 201);
}

#[actix_web::test]
async fn an_order_feed_shows_every_status_in_order_with_consecutive_seq() {
    let app = spawn_app().await;
    shop(&app).await;
    let mut socket = app.feed(&app.operator).await;
    let subscribed = subscribe(&mut socket, "order:o1").await;
    assert_eq!(subscribed["snapshot"], Value::Null, "not created yet");
    let mut all = app.feed(&app.operator).await;
    subscribe(&mut all, "orders").await;
    let (_, order) = app
        .place_order(
            json!({"id": "o1", "account": "buyer", "merchant": "merchant",
                   "lines": [{"sku": "tv", "quantity": 1}]}),
        )
        .await;
    assert_eq!(order["status"], "confirmed");
    let expected = ["pending", "reserved", "authorized", "confirmed"];
    for (index, status) in expected.iter().enumerate() {
        for socket in [&mut socket, &mut all] {
            let event = next(socket).await;
            assert_eq!(event["type"], "order.status", "{event}");
            assert_eq!(event["order_id"], "o1");
            assert_eq!(event["status"], *status);
            assert_eq!(event["seq"], index as u64 + 1, "consecutive seq: {event}");
            let previous = if index == 0 {
                Value::Null
            } else {
                json!(expected[index - 1])
            };
            assert_eq!(event["previous"], previous);
        }
    }
    // A late subscriber gets the whole order as its snapshot.
    let mut late = app.feed(&app.operator).await;
    let snapshot = subscribe(&mut late, "order:o1").await;
    assert_eq!(snapshot["snapshot"]["status"], "confirmed");
    assert_eq!(snapshot["snapshot"]["history"].as_array().unwrap().len(), 4);

    // The next order finds no stock: pending, then rejected out_of_stock.
    subscribe(&mut socket, "order:o2").await;
    let (_, order) = app
        .place_order(
            json!({"id": "o2", "account": "buyer", "merchant": "merchant",
                   "lines": [{"sku": "tv", "quantity": 1}]}),
        )
        .await;
    assert_eq!(order["reason"], "out_of_stock");
    let pending = next(&mut socket).await;
    assert_eq!(
        (pending["status"].as_str(), pending["seq"].as_u64()),
        (Some("pending"), Some(1))
    );
    let rejected = next(&mut socket).await;
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["reason"], "out_of_stock");
    assert_eq!(rejected["seq"], 2);
}

#[actix_web::test]
async fn account_and_item_feeds_start_from_the_snapshot_without_gaps() {
    let app = spawn_app().await;
    shop(&app).await;
    let mut socket = app.feed(&app.operator).await;
    let account = subscribe(&mut socket, "account:buyer").await;
    assert_eq!(account["snapshot"]["balance"], "100.00");
    let version = account["snapshot"]["version"].as_u64().unwrap();
    let item = subscribe(&mut socket, "item:tv").await;
    assert_eq!(item["snapshot"]["available"], 1);
    let item_version = item["snapshot"]["version"].as_u64().unwrap();
    app.deposit("buyer", "5").await;
    let event = next(&mut socket).await;
    assert_eq!(event["type"], "account.balance");
    assert_eq!(event["topic"], "account:buyer");
    assert_eq!(event["balance"], "105.00");
    assert_eq!(event["seq"], version + 1);
    let response = app
        .post(
            "/v1/items/tv/reservations",
            json!({"id": "r1", "quantity": 1}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let event = next(&mut socket).await;
    assert_eq!(event["type"], "item.stock");
    assert_eq!(
        (event["reserved"].as_u64(), event["available"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(event["seq"], item_version + 1);

    send(
        &mut socket,
        json!({"op": "unsubscribe", "topic": "account:buyer"}),
    )
    .await;
    assert_eq!(next(&mut socket).await["type"], "unsubscribed");
    app.deposit("buyer", "1").await;
    send(&mut socket, json!({"op": "ping"})).await;
    assert_eq!(
        next(&mut socket).await,
        json!({"type": "pong"}),
        "no event after unsubscribe"
    );
}

#[actix_web::test]
async fn bad_messages_get_an_error_and_the_connection_stays_open() {
    let app = spawn_app().await;
    let mut socket = app.feed(&app.operator).await;
    for bad in [
        json!({"op": "dance"}),
        json!({"op": "subscribe"}),
        json!({"op": "subscribe", "topic": "weather:today"}),
        json!({"op": "subscribe", "topic": "order:not valid"}),
        json!({"op": "subscribe", "topic": "orders", "extra": 1}),
    ] {
        send(&mut socket, bad.clone()).await;
        let answer = next(&mut socket).await;
        assert_eq!(answer["type"], "error", "{bad} -> {answer}");
        assert!(answer["code"].is_string());
    }
    socket.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(next(&mut socket).await["code"], "invalid_request");
    send(&mut socket, json!({"op": "ping"})).await;
    assert_eq!(next(&mut socket).await["type"], "pong");
}

#[actix_web::test]
async fn the_feed_needs_a_token_and_scoped_clients_only_watch_their_own() {
    let app = spawn_app().await;
    shop(&app).await;
    let url = app.url("/v1/feed").replace("http://", "ws://");
    let refused = tokio_tungstenite::connect_async(url.clone()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    // The token may also come as ?access_token= for browsers.
    let alice = app.client_token("alice-app", Some(vec!["alice"]));
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{url}?access_token={alice}"))
        .await
        .expect("query token accepted");
    for topic in ["orders", "account:buyer"] {
        send(&mut socket, json!({"op": "subscribe", "topic": topic})).await;
        let answer = next(&mut socket).await;
        assert_eq!(answer["code"], "forbidden", "{topic}: {answer}");
    }
    app.post(
        "/v1/orders",
        json!({"id": "mine-not", "account": "buyer", "merchant": "merchant",
               "lines": [{"sku": "tv", "quantity": 1}]}),
    )
    .await;
    send(
        &mut socket,
        json!({"op": "subscribe", "topic": "order:mine-not"}),
    )
    .await;
    assert_eq!(next(&mut socket).await["code"], "forbidden");
    // Subscribing to an order id before it exists shows nothing of someone
    // else's order either.
    subscribe(&mut socket, "order:later").await;
    app.post(
        "/v1/orders",
        json!({"id": "later", "account": "buyer", "merchant": "merchant",
               "lines": [{"sku": "tv", "quantity": 1}]}),
    )
    .await;
    send(&mut socket, json!({"op": "ping"})).await;
    assert_eq!(next(&mut socket).await["type"], "pong");
    subscribe(&mut socket, "item:tv").await;
}

#[actix_web::test]
async fn a_reader_that_falls_behind_is_told_it_lagged_and_closed_with_1008() {
    let app = spawn_app_with(|settings| {
        settings.feed.buffer_messages_max = 4;
    })
    .await;
    app.create_account("busy", "USD").await;
    app.deposit("busy", "1000").await;
    app.create_account("sink", "USD").await;
    let mut slow = app.feed(&app.operator).await;
    subscribe(&mut slow, "account:busy").await;
    // Hundreds of changes to one account in a single request: they reach the hub
    // in a burst, far faster than any connection drains four messages. The slow
    // reader does not read at all meanwhile.
    let payments: Vec<Value> = (0..500)
        .map(|i| json!({"id": format!("p{i}"), "from": "busy", "to": "sink", "amount": "1.00", "currency": "USD"}))
        .collect();
    let response = app
        .post("/v1/payments/batch", json!({"payments": payments}))
        .await;
    assert_eq!(
        response.status(),
        200,
        "the engine never waits for a slow reader"
    );
    let mut saw_lagged = false;
    loop {
        let message = next(&mut slow).await;
        if message["type"] == "lagged" {
            assert_eq!(message["topic"], "account:busy");
            saw_lagged = true;
        } else if message.get("closed").is_some() {
            assert_eq!(message["closed"], 1008);
            break;
        }
    }
    assert!(saw_lagged, "the lagged message comes before the close");
    // The engine kept going; the account has everything.
    assert_eq!(app.balance("busy").await.0, "500.00");
    assert_eq!(app.balance("sink").await.0, "500.00");
}

#[actix_web::test]
async fn a_connection_that_stops_answering_pings_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(|settings| {
        settings.feed.heartbeat_interval_ms = 50;
        settings.feed.idle_timeout_ms = 300;
    })
    .await;
    let mut socket = app.feed(&app.operator).await;
    // Not reading means not answering the server's pings.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut closed = None;
    while let Some(Ok(frame)) = socket.next().await {
        if let Message::Close(frame) = frame {
            closed = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            break;
        }
    }
    assert_eq!(closed, Some((1000, "idle timeout".to_owned())));

    // A client that keeps reading answers the pings and stays connected.
    let mut alive = app.feed(&app.operator).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
    while tokio::time::Instant::now() < deadline {
        if let Ok(frame) = tokio::time::timeout(Duration::from_millis(20), alive.next()).await {
            assert!(
                !matches!(frame, Some(Ok(Message::Close(_))) | None),
                "{frame:?}"
            );
        }
    }
    send(&mut alive, json!({"op": "ping"})).await;
    assert_eq!(next(&mut alive).await["type"], "pong");
}

#[actix_web::test]
async fn connections_beyond_the_limit_are_refused_with_503_overloaded() {
    let app = spawn_app_with(|settings| settings.feed.connections_max = 2).await;
    let mut first = app.feed(&app.operator).await;
    let _second = app.feed(&app.operator).await;
    let url = format!(
        "{}?access_token={}",
        app.url("/v1/feed").replace("http://", "ws://"),
        app.operator
    );
    match tokio_tungstenite::connect_async(url.clone()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            assert!(response.headers().contains_key("retry-after"));
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    // Closing one makes room again.
    first.close(None).await.unwrap();
    while let Some(Ok(_)) = first.next().await {}
    let mut admitted = false;
    for _ in 0..50 {
        if tokio_tungstenite::connect_async(url.clone()).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "a freed slot is usable");
}

#[actix_web::test]
async fn a_connection_may_hold_only_so_many_subscriptions() {
    let app = spawn_app_with(|settings| settings.feed.subscriptions_per_connection_max = 2).await;
    let mut socket = app.feed(&app.operator).await;
    subscribe(&mut socket, "item:a").await;
    subscribe(&mut socket, "item:b").await;
    // Subscribing again to a topic already held does not count twice.
    subscribe(&mut socket, "item:a").await;
    send(&mut socket, json!({"op": "subscribe", "topic": "item:c"})).await;
    assert_eq!(next(&mut socket).await["code"], "too_many_subscriptions");
    send(&mut socket, json!({"op": "unsubscribe", "topic": "item:b"})).await;
    assert_eq!(next(&mut socket).await["type"], "unsubscribed");
    subscribe(&mut socket, "item:c").await;
}
