//! Change data capture against the real RabbitMQ and Redis of this machine:
//! under load, with the broker cut (a TCP proxy this test owns between Surge and
//! it) and with `surge` killed with SIGKILL mid-stream, every change the API
//! acknowledged arrives, each entity's `seq` consecutive once duplicates are
//! dropped by message id. Each test declares its own exchange and queue (or
//! stream key) and deletes them at the end.

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

mod common;

use common::http::Api;
use common::process::{Serve, SurgeProcess};
use common::proxy::Proxy;

const SECRET: &str = "surge-cdc-test-secret-0123456789abcdef";
const ACCOUNTS: usize = 12;
const AMQP: &str = "127.0.0.1:5672";
const REDIS: &str = "127.0.0.1:6379";
/// How long the changes may take to arrive once the load is over.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(90);

fn start(storage: &str, settings: &[(&str, String)]) -> SurgeProcess {
    let mut serve = Serve::new(SECRET)
        .storage(storage)
        .env("SURGE__ENGINE__SHARDS", "2")
        .env("SURGE__ENGINE__SNAPSHOT_EVERY_EVENTS", "500")
        .env("SURGE__RATE_LIMIT__REQUESTS_PER_S", "1000000");
    for (key, value) in settings {
        serve = serve.env(key, value);
    }
    serve.spawn()
}

fn api(node: &SurgeProcess) -> Api {
    node.api(&common::tokens::operator_token(SECRET, "cdc-test"))
}

async fn setup(api: &Api) {
    for i in 0..ACCOUNTS {
        let (status, _) = api
            .send(
                "/v1/accounts",
                json!({"id": format!("c{i}"), "currency": "USD"}),
            )
            .await;
        assert_eq!(status, 201);
        let (status, _) = api
            .send(
                &format!("/v1/accounts/c{i}/deposits"),
                json!({"id": "funding", "amount": "1000"}),
            )
            .await;
        assert_eq!(status, 201);
    }
}

/// `count` payments from `workers` clients; the ids answered 201, with status.
async fn pay(api: &Api, prefix: &str, count: usize, workers: usize) -> Vec<(String, String)> {
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let api = api.clone();
            let prefix = prefix.to_owned();
            actix_web::rt::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in (worker..count).step_by(workers) {
                    let from = n % ACCOUNTS;
                    let to = (from + 1 + n / ACCOUNTS % (ACCOUNTS - 1)) % ACCOUNTS;
                    let id = format!("{prefix}-{n}");
                    let body = json!({"id": id, "from": format!("c{from}"), "to": format!("c{to}"),
                                      "amount": format!("0.{:02}", 1 + n % 99), "currency": "USD"});
                    if let Some((201, answer)) = api
                        .try_send("/v1/payments", body, Duration::from_secs(5))
                        .await
                    {
                        acknowledged.push((id, answer["status"].as_str().unwrap().to_owned()));
                    }
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    acknowledged
}

/// What the consumer saw: the first copy of each message, in arrival order.
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    duplicates: usize,
    /// topic → seqs in arrival order
    seqs: HashMap<String, Vec<u64>>,
    /// payment id → status
    payments: HashMap<String, String>,
    /// account id → last balance heard
    balances: HashMap<String, String>,
}

impl Seen {
    fn take(&mut self, id: String, body: &Value) {
        if !self.ids.insert(id) {
            self.duplicates += 1;
            return;
        }
        let topic = body["topic"].as_str().unwrap().to_owned();
        let seq = body["seq"].as_u64().unwrap();
        self.seqs.entry(topic).or_default().push(seq);
        match body["type"].as_str().unwrap() {
            "payment.status" => {
                let id = body["payment_id"].as_str().unwrap().to_owned();
                self.payments
                    .insert(id, body["status"].as_str().unwrap().to_owned());
            }
            "account.balance" => {
                let id = body["account_id"].as_str().unwrap().to_owned();
                self.balances
                    .insert(id, body["balance"].as_str().unwrap().to_owned());
            }
            _ => {}
        }
    }

    fn has_everything(&self, acknowledged: &[(String, String)], balances: &[String]) -> bool {
        acknowledged
            .iter()
            .all(|(id, status)| self.payments.get(id) == Some(status))
            && (0..ACCOUNTS).all(|i| self.balances.get(&format!("c{i}")) == Some(&balances[i]))
    }

    /// Each entity's seqs, after deduplication, follow one another.
    fn check_consecutive(&self) {
        for (topic, seqs) in &self.seqs {
            for pair in seqs.windows(2) {
                assert_eq!(
                    pair[1],
                    pair[0] + 1,
                    "{topic}: seqs {seqs:?} have a gap or go back"
                );
            }
        }
    }
}

/// `surge_cdc_failures_total` of `sink`, from `/metrics`.
async fn cdc_failures(node: &SurgeProcess, sink: &str) -> f64 {
    let metrics = reqwest::get(format!("{}/metrics", node.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("surge_cdc_failures_total{{sink=\"{sink}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// Waits until the sink has reported a failed delivery (it cannot reach its
/// broker: the proxy is cut).
async fn failure_reported(node: &SurgeProcess, sink: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while cdc_failures(node, sink).await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "{sink}: no failure reported while cut"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn balances(api: &Api) -> Vec<String> {
    let mut balances = Vec::new();
    for i in 0..ACCOUNTS {
        let account = api.get_json(&format!("/v1/accounts/c{i}")).await;
        balances.push(account["balance"].as_str().unwrap().to_owned());
    }
    balances
}

/// The whole story with the broker: load, the broker cut under load, a SIGKILL
/// while changes wait for the broker, a restart, the broker back.
#[actix_web::test]
async fn every_acknowledged_change_reaches_rabbitmq_through_outages_and_kill_9() {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let exchange = format!("surge-test-{unique}");
    let queue = format!("surge-test-{unique}");
    let connection = Connection::connect(
        &format!("amqp://guest:guest@{AMQP}/%2f"),
        ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ runs on 127.0.0.1:5672 (rabbitmq-server -detached)");
    let channel = connection.create_channel().await.unwrap();
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let proxy = Proxy::start(AMQP.to_owned()).await;
    let (_dir, storage) = common::temp_sqlite();
    let settings = [
        (
            "SURGE__CDC__AMQP__URL",
            format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port),
        ),
        ("SURGE__CDC__AMQP__EXCHANGE", exchange.clone()),
    ];
    let node = start(&storage, &settings);
    node.wait_ready().await;
    setup(&api(&node)).await;
    let mut acknowledged = pay(&api(&node), "p1", 600, 8).await;

    // The broker goes away under load; the engine goes on.
    proxy.cut();
    let during_cut = pay(&api(&node), "p2", 600, 8).await;
    assert!(
        during_cut.len() >= 590,
        "the engine kept serving: {} of 600",
        during_cut.len()
    );
    acknowledged.extend(during_cut);
    // Killed while those changes wait for the broker: they are in the journal.
    let mut node = node;
    node.kill();
    let node = start(&storage, &settings);
    node.wait_ready().await;
    acknowledged.extend(pay(&api(&node), "p3", 300, 8).await);
    // The restarted tailer cannot reach the broker yet, and says so.
    failure_reported(&node, "amqp").await;
    proxy.restore();
    acknowledged.extend(pay(&api(&node), "p4", 300, 8).await);
    let balances = balances(&api(&node)).await;

    let mut seen = Seen::default();
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    while !seen.has_everything(&acknowledged, &balances) {
        assert!(
            Instant::now() < deadline,
            "changes missing after {DELIVERY_TIMEOUT:?}: {} of {} payments heard",
            acknowledged
                .iter()
                .filter(|(id, _)| seen.payments.contains_key(id))
                .count(),
            acknowledged.len()
        );
        match channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            Some(message) => {
                let id = message
                    .delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .expect("every message has a message-id")
                    .to_string();
                let body: Value = serde_json::from_slice(&message.delivery.data).unwrap();
                seen.take(id, &body);
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    seen.check_consecutive();
    eprintln!(
        "{} payments acknowledged, {} messages, {} duplicates",
        acknowledged.len(),
        seen.ids.len(),
        seen.duplicates
    );

    let shards = api(&node).get_json("/admin/shards").await;
    for shard in shards.as_array().unwrap() {
        assert_eq!(shard["cdc"][0]["sink"], "amqp", "{shard}");
    }
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

/// The Redis stream is written from the journal too: a Redis outage delays it.
#[actix_web::test]
async fn the_redis_stream_loses_nothing_while_redis_is_cut() {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let stream = format!("surge:test:cdc:{unique}");
    let proxy = Proxy::start(REDIS.to_owned()).await;
    let (_dir, storage) = common::temp_sqlite();
    let settings = [
        (
            "SURGE__REDIS__URL",
            format!("redis://127.0.0.1:{}", proxy.port),
        ),
        ("SURGE__REDIS__STREAM_KEY", stream.clone()),
        (
            "SURGE__REDIS__CHANNEL",
            format!("surge:test:cdc:feed:{unique}"),
        ),
    ];
    let node = start(&storage, &settings);
    node.wait_ready().await;
    setup(&api(&node)).await;
    let mut acknowledged = pay(&api(&node), "r1", 300, 8).await;
    proxy.cut();
    acknowledged.extend(pay(&api(&node), "r2", 600, 8).await);
    failure_reported(&node, "redis-stream").await;
    proxy.restore();
    acknowledged.extend(pay(&api(&node), "r3", 300, 8).await);
    let balances = balances(&api(&node)).await;

    let client = redis::Client::open(format!("redis://{REDIS}")).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    let mut seen = Seen::default();
    let mut last = "-".to_owned();
    while !seen.has_everything(&acknowledged, &balances) {
        assert!(
            Instant::now() < deadline,
            "stream entries missing after {DELIVERY_TIMEOUT:?}: {} of {} payments heard",
            acknowledged
                .iter()
                .filter(|(id, _)| seen.payments.contains_key(id))
                .count(),
            acknowledged.len()
        );
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&stream)
            .arg(if last == "-" {
                last.clone()
            } else {
                format!("({last}")
            })
            .arg("+")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut redis)
            .await
            .unwrap();
        if entries.ids.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for entry in entries.ids {
            let field = |name: &str| -> String {
                redis::from_redis_value(entry.map.get(name).unwrap()).unwrap()
            };
            let body: Value = serde_json::from_str(&field("data")).unwrap();
            assert_eq!(body["topic"].as_str().unwrap(), field("topic"));
            seen.take(field("id"), &body);
            last = entry.id;
        }
    }
    seen.check_consecutive();
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .query_async(&mut redis)
        .await
        .unwrap();
}
