//! Feeds across nodes through real Redis: two `surge` processes, one watching an
//! order the other processes; the event stream downstream services read; and a
//! Redis outage that must not touch payments, orders or local feeds.
//!
//! The shared Redis (`SURGE_TEST_REDIS_URL`, default 127.0.0.1:6379) carries the
//! two-node test on a channel and stream of its own; the outage test starts and
//! kills a throwaway `redis-server` it owns.

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

mod common;

use common::free_port;

const SECRET: &str = "surge-redis-test-secret-0123456789";

fn token() -> String {
    common::operator_token(SECRET, "redis-test")
}

struct Node {
    child: Child,
    base: String,
    _data: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_node(redis_url: &str, channel: &str, stream: &str) -> Node {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_surge"))
        .arg("serve")
        .env("SURGE__HTTP__ADDR", format!("127.0.0.1:{port}"))
        .env(
            "SURGE__STORAGE__URL",
            format!("sqlite://{}/surge.db", data.path().display()),
        )
        .env("SURGE__AUTH__JWT_SECRET", SECRET)
        .env("SURGE__REDIS__URL", redis_url)
        .env("SURGE__REDIS__CHANNEL", channel)
        .env("SURGE__REDIS__STREAM_KEY", stream)
        .env("SURGE__LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("surge binary starts");
    let node = Node {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _data: data,
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = http.get(format!("{}/ready", node.base)).send().await {
            if response.status() == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "surge did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node
}

async fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token())
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn shop(base: &str) {
    for account in ["buyer", "merchant"] {
        let (status, _) = post(
            base,
            "/v1/accounts",
            json!({"id": account, "currency": "USD"}),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, _) = post(
        base,
        "/v1/accounts/buyer/deposits",
        json!({"amount": "100"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = post(
        base,
        "/v1/items",
        json!({"sku": "tv", "price": "10.00", "currency": "USD", "stock": 100}),
    )
    .await;
    assert_eq!(status, 201);
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn feed(base: &str) -> Socket {
    let mut request = format!("{}/v1/feed", base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", token()).parse().unwrap(),
    );
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

async fn next(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

async fn subscribe(socket: &mut Socket, topic: &str) -> Value {
    socket
        .send(Message::Text(
            json!({"op": "subscribe", "topic": topic})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let answer = next(socket).await;
    assert_eq!(answer["type"], "subscribed", "{answer}");
    answer
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
    shop(&processing.base).await;

    let mut socket = feed(&watching.base).await;
    let subscribed = subscribe(&mut socket, "order:o-remote").await;
    assert_eq!(
        subscribed["snapshot"],
        Value::Null,
        "the watching node has no such order"
    );
    // Both nodes' bridges must be subscribed before the order runs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, order) = post(
        &processing.base,
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
    child: Child,
    port: u16,
}

impl ThrowawayRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    let port = free_port();
    let redis_server = ThrowawayRedis::start(port);
    let node = start_node(&redis_server.url(), "surge:feed", "surge:events").await;
    shop(&node.base).await;
    let order = |id: String| {
        let base = node.base.clone();
        async move {
            let started = Instant::now();
            let (status, order) = post(
                &base,
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
    let mut socket = feed(&node.base).await;
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
