//! Feeds across nodes through real Redis: two `surge` processes, one watching an
//! order the other processes; the event stream downstream services read; and a
//! Redis outage that must not touch payments, orders or local feeds.
//!
//! The shared Redis (`SURGE_TEST_REDIS_URL`, default 127.0.0.1:6379) carries the
//! two-node test on a channel and stream of its own; the outage test starts and
//! kills a throwaway `redis-server` it owns.

use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::feed::{next, subscribe};
use common::http::Api;
use common::process::{KillOnDrop, Serve, SurgeProcess};

const SECRET: &str = "surge-redis-test-secret-0123456789";

fn token() -> String {
    common::tokens::operator_token(SECRET, "redis-test")
}

async fn start_node(redis_url: &str, channel: &str, stream: &str) -> SurgeProcess {
    Serve::new(SECRET)
        .env("SURGE__REDIS__URL", redis_url)
        .env("SURGE__REDIS__CHANNEL", channel)
        .env("SURGE__REDIS__STREAM_KEY", stream)
        .start()
        .await
}

fn api(node: &SurgeProcess) -> Api {
    node.api(&token())
}

async fn shop(api: &Api) {
    for account in ["buyer", "merchant"] {
        let (status, _) = api
            .send("/v1/accounts", json!({"id": account, "currency": "USD"}))
            .await;
        assert_eq!(status, 201);
    }
    let (status, _) = api
        .send("/v1/accounts/buyer/deposits", json!({"amount": "100"}))
        .await;
    assert_eq!(status, 201);
    let (status, _) = api
        .send(
            "/v1/items",
            json!({"sku": "tv", "price": "10.00", "currency": "USD", "stock": 100}),
        )
        .await;
    assert_eq!(status, 201);
}

async fn feed(node: &SurgeProcess) -> common::feed::Socket {
    common::feed::connect(&node.base, &token()).await
}

fn redis_url() -> String {
    std::env::var("SURGE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "a two-node scenario read top to bottom"
)]
async fn a_feed_client_on_one_node_sees_an_order_processed_by_another() {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let channel = format!("surge:test:feed:{unique}");
    let stream = format!("surge:test:events:{unique}");
    let processing = start_node(&redis_url(), &channel, &stream).await;
    let watching = start_node(&redis_url(), &channel, &stream).await;
    shop(&api(&processing)).await;

    let mut socket = feed(&watching).await;
    let subscribed = subscribe(&mut socket, "order:o-remote").await;
    assert_eq!(
        subscribed["snapshot"],
        Value::Null,
        "the watching node has no such order"
    );
    // Both nodes' bridges must be subscribed before the order runs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, order) = api(&processing)
        .send(
            "/v1/orders",
            json!({"id": "o-remote", "account": "buyer", "merchant": "merchant",
                   "lines": [{"sku": "tv", "quantity": 2}]}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(order["status"], "confirmed");
    for (index, status) in ["pending", "reserved", "authorized", "confirmed"]
        .iter()
        .enumerate()
    {
        let event = next(&mut socket).await;
        assert_eq!(event["type"], "order.status", "{event}");
        assert_eq!(event["order_id"], "o-remote");
        assert_eq!(event["status"], *status);
        assert_eq!(event["seq"], index as u64 + 1);
    }

    // Downstream services read the same events from the stream.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&stream)
            .arg("-")
            .arg("+")
            .query_async(&mut connection)
            .await
            .unwrap();
        let orders = entries
            .ids
            .iter()
            .filter(|entry| entry.get::<String>("topic").as_deref() == Some("order:o-remote"))
            .count();
        if orders == 4 {
            break entries;
        }
        assert!(
            Instant::now() < deadline,
            "stream has {orders} order events"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let first = entries
        .ids
        .iter()
        .find(|e| e.get::<String>("topic").as_deref() == Some("order:o-remote"))
        .unwrap();
    assert_eq!(first.get::<String>("type").as_deref(), Some("order.status"));
    assert_eq!(first.get::<u64>("seq"), Some(1));
    let data: Value = serde_json::from_str(&first.get::<String>("data").unwrap()).unwrap();
    assert_eq!(data["status"], "pending");
    assert!(entries
        .ids
        .iter()
        .any(|e| e.get::<String>("type").as_deref() == Some("account.balance")));
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .query_async(&mut connection)
        .await
        .unwrap();
}

/// A `redis-server` this test owns, on a port of its own.
struct ThrowawayRedis {
    _process: KillOnDrop,
    port: u16,
}

impl ThrowawayRedis {
    fn start(port: u16) -> Self {
        let process = KillOnDrop::spawn(
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null()),
            "redis-server is installed",
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            _process: process,
            port,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("surge_{name} ")))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0.0)
}

async fn stream_length(url: &str, stream: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(&mut connection)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_redis_outage_drops_stream_events_but_never_touches_orders_or_local_feeds() {
    let port = common::free_port();
    let redis_server = ThrowawayRedis::start(port);
    let node = start_node(&redis_server.url(), "surge:feed", "surge:events").await;
    shop(&api(&node)).await;
    let order = |id: String| {
        let api = api(&node);
        async move {
            let started = Instant::now();
            let (status, order) = api
                .send(
                    "/v1/orders",
                    json!({"id": id, "account": "buyer", "merchant": "merchant",
                           "lines": [{"sku": "tv", "quantity": 1}]}),
                )
                .await;
            assert_eq!(status, 201, "{order}");
            assert_eq!(order["status"], "confirmed");
            started.elapsed()
        }
    };
    order("before".into()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while stream_length(&redis_server.url(), "surge:events").await == 0 {
        assert!(Instant::now() < deadline, "events reach the stream");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    drop(redis_server);
    let mut socket = feed(&node).await;
    subscribe(&mut socket, "order:during").await;
    let elapsed = order("during".into()).await;
    assert!(
        elapsed < Duration::from_secs(2),
        "an order must not wait for Redis: {elapsed:?}"
    );
    let statuses: Vec<Value> = {
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(next(&mut socket).await["status"].clone());
        }
        seen
    };
    assert_eq!(
        statuses,
        [
            json!("pending"),
            json!("reserved"),
            json!("authorized"),
            json!("confirmed")
        ],
        "local feeds keep flowing"
    );
    for i in 0..5 {
        order(format!("more{i}")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&node.base, "redis_events_dropped_total").await == 0.0 {
        assert!(Instant::now() < deadline, "dropped events are counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Redis comes back on the same address: the bridge reconnects by itself.
    let redis_server = ThrowawayRedis::start(port);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    while stream_length(&redis_server.url(), "surge:events").await == 0 {
        assert!(Instant::now() < deadline, "the bridge reconnects");
        order(format!("after{n}")).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
