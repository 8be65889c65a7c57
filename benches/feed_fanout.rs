//! Feed fan-out benchmark: how many events per second the WebSocket feed delivers
//! to N subscribers of one busy topic, and how long an event takes from its
//! change on the shard to a subscriber's socket.
//!
//! `cargo bench --bench feed_fanout` (SQLite journal in a temp dir). Set
//! `FEED_BENCH_SUBSCRIBERS=10,100,1000` and `FEED_BENCH_CHANGES=N` to change the
//! runs. Each run: N clients subscribe to `account:busy`; one request moves
//! money out of `busy` `changes` times through the batch endpoint (one change
//! per payment); every subscriber must receive every change, in order.

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use surge::api::auth::{AuthKeys, Claims, Role};
use surge::api::limits::PAYMENTS_PER_BATCH_MAX;
use surge::configuration;
use surge::startup::Application;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "surge-feed-bench-secret-0123456789";

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[expect(
    clippy::too_many_lines,
    reason = "a benchmark scenario read top to bottom"
)]
async fn run(subscribers: usize, changes: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = configuration::load().unwrap();
    settings.http.addr = "127.0.0.1:0".into();
    settings.auth.jwt_secret = SECRET.to_owned().into();
    settings.storage.url = format!("sqlite://{}/surge.db", dir.path().display());
    settings.feed.connections_max = subscribers + 10;
    // Every subscriber must be able to hold a whole burst: this measures
    // throughput, not the lagged limit.
    settings.feed.buffer_messages_max = changes + 16;
    settings.log.level = "warn".into();
    let application = Application::build(settings).await.unwrap();
    let base = format!("127.0.0.1:{}", application.port());
    actix_web::rt::spawn(application.run_until_stopped());
    let token = AuthKeys::from_secret(SECRET.as_bytes())
        .mint(&Claims {
            sub: "bench".into(),
            exp: surge_actors::engine::system_clock_ms() / 1000 + 3600,
            role: Role::Operator,
            accounts: None,
        })
        .unwrap();
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("http://{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in ["busy", "sink"] {
        post("/v1/accounts", json!({"id": id, "currency": "USD"}))
            .await
            .unwrap();
    }
    post("/v1/accounts/busy/deposits", json!({"amount": "100000000"}))
        .await
        .unwrap();

    let mut sockets = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let url = format!("ws://{base}/v1/feed?access_token={token}");
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        socket
            .send(Message::Text(
                json!({"op": "subscribe", "topic": "account:busy"})
                    .to_string()
                    .into(),
            ))
            .await
            .unwrap();
        let answer: Value = loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => break serde_json::from_str(&text).unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("no subscribed answer: {other:?}"),
            }
        };
        assert_eq!(answer["type"], "subscribed");
        sockets.push(socket);
    }
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(async move {
                let mut delays_ms = Vec::with_capacity(changes);
                let mut last_seq = 0;
                while delays_ms.len() < changes {
                    let Some(Ok(frame)) = socket.next().await else {
                        panic!("feed closed early");
                    };
                    let Message::Text(text) = frame else { continue };
                    let event: Value = serde_json::from_str(&text).unwrap();
                    let seq = event["seq"].as_u64().unwrap();
                    assert!(
                        last_seq == 0 || seq == last_seq + 1,
                        "gap: {last_seq} -> {seq}"
                    );
                    last_seq = seq;
                    let at = chrono::DateTime::parse_from_rfc3339(event["at"].as_str().unwrap())
                        .unwrap()
                        .timestamp_millis() as u64;
                    let now = surge_actors::engine::system_clock_ms();
                    delays_ms.push(now.saturating_sub(at) as f64);
                }
                delays_ms
            })
        })
        .collect();
    let started = Instant::now();
    for chunk in (0..changes)
        .collect::<Vec<_>>()
        .chunks(PAYMENTS_PER_BATCH_MAX)
    {
        let payments: Vec<Value> = chunk
            .iter()
            .map(|_| json!({"from": "busy", "to": "sink", "amount": "0.01", "currency": "USD"}))
            .collect();
        let response = post("/v1/payments/batch", json!({"payments": payments}))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let mut delays = Vec::with_capacity(subscribers * changes);
    for reader in readers {
        delays.extend(reader.await.unwrap());
    }
    let elapsed = started.elapsed();
    delays.sort_by(|a, b| a.total_cmp(b));
    let delivered = delays.len();
    println!(
        "RESULT subscribers={subscribers} changes={changes} delivered={delivered} \
         elapsed_ms={} events_per_s={:.0} delay_ms_p50={} delay_ms_p99={} delay_ms_max={}",
        elapsed.as_millis(),
        delivered as f64 / elapsed.as_secs_f64(),
        percentile(&delays, 0.50),
        percentile(&delays, 0.99),
        percentile(&delays, 1.0),
    );
}

fn main() {
    let system = actix_web::rt::System::new();
    system.block_on(async {
        // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
        // file too, without it, as a quick smoke of the same code.
        let smoke = !std::env::args().any(|arg| arg == "--bench");
        let (changes, subscribers) = if smoke {
            (200, vec![1, 10])
        } else {
            (2_000, vec![1, 10, 100, 1_000])
        };
        let changes = env_list("FEED_BENCH_CHANGES", &[changes])[0];
        for subscribers in env_list("FEED_BENCH_SUBSCRIBERS", &subscribers) {
            run(subscribers, changes).await;
        }
    });
}
