//! Kill -9 under load: start the real `surge` binary, drive concurrent payments,
//! reservations and orders (sagas across shards), record every 2xx, kill it at a random moment, restart it,
//! and check that every acknowledged write is there and the invariants hold.
//! Runs several rounds on the SQLite file and on PostgreSQL.

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::http::Api;
use common::process::{Serve, SurgeProcess};

const SECRET: &str = "surge-crash-test-secret-0123456789";
const ACCOUNTS: usize = 16;
const DEPOSIT: i64 = 1_000;
const STOCK: u64 = 40;
/// Stock of the item orders buy; enough to sell out during the run.
const ORDER_STOCK: u64 = 60;
const ROUNDS: usize = 3;
/// Workers that send batches of payments instead of single requests.
const BATCH_WORKERS: usize = 2;
const BATCH_PAYMENTS: usize = 200;

/// A tiny deterministic generator; the seed is printed so a failure can be rerun.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn start(storage_url: &str) -> SurgeProcess {
    Serve::new(SECRET)
        .storage(storage_url)
        .env("SURGE__ENGINE__SHARDS", "4")
        .env("SURGE__ENGINE__SNAPSHOT_EVERY_EVENTS", "300")
        // Low, so that the batches below are written the moment the journal is
        // idle (the path large client batches take) while the process is killed.
        .env("SURGE__ENGINE__FLUSH_AT_ONCE_EVENTS_MIN", "32")
        // Finished payments, orders and reservations (and their records) go to
        // the archive as soon as they are durable: the kill lands between archive
        // writes and evictions, and the checks read them back from either place.
        .env("SURGE__ENGINE__FINISHED_IN_MEMORY_MS", "0")
        .env("SURGE__RATE_LIMIT__REQUESTS_PER_S", "1000000")
        .spawn()
}

fn token() -> String {
    common::tokens::operator_token(SECRET, "crash-test")
}

#[derive(Default, Clone)]
struct Acknowledged {
    /// Payment id → status the client was told.
    payments: Vec<(String, String)>,
    /// Reservation ids that were answered 201.
    reservations: Vec<String>,
    /// Order id → final status the client was told (None: 202, still running).
    orders: Vec<(String, Option<String>)>,
    /// Every order id sent, answered or not: each must end up final or absent.
    orders_sent: Vec<String>,
}

/// How long a request may take before the load gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

async fn post(api: &Api, path: &str, body: Value) -> Option<(u16, Value)> {
    api.try_send(path, body, REQUEST_TIMEOUT).await
}

async fn setup(api: &Api) {
    for i in 0..ACCOUNTS {
        let (status, _) = post(
            api,
            "/v1/accounts",
            json!({"id": format!("acc{i}"), "currency": "USD"}),
        )
        .await
        .unwrap();
        assert!(status == 201 || status == 200);
        let (status, _) = post(
            api,
            &format!("/v1/accounts/acc{i}/deposits"),
            json!({"id": "funding", "amount": DEPOSIT.to_string()}),
        )
        .await
        .unwrap();
        assert_eq!(status, 201);
    }
    let (status, _) = post(
        api,
        "/v1/items",
        json!({"sku": "hot", "price": "1", "currency": "USD", "stock": STOCK}),
    )
    .await
    .unwrap();
    assert!(status == 201 || status == 200);
    let (status, _) = post(
        api,
        "/v1/items",
        json!({"sku": "gadget", "price": "3.25", "currency": "USD", "stock": ORDER_STOCK}),
    )
    .await
    .unwrap();
    assert!(status == 201 || status == 200);
}

#[expect(
    clippy::too_many_lines,
    reason = "drives the load and records every acknowledged write in one place"
)]
async fn load(
    api: Api,
    worker: usize,
    round: usize,
    seed: u64,
    acknowledged: Arc<Mutex<Acknowledged>>,
) {
    let mut rng = Rng(seed ^ (worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for n in 0.. {
        if worker < BATCH_WORKERS {
            let payments: Vec<Value> = (0..BATCH_PAYMENTS)
                .map(|k| {
                    let from = rng.below(ACCOUNTS as u64);
                    let to = (from + 1 + rng.below(ACCOUNTS as u64 - 1)) % ACCOUNTS as u64;
                    json!({"id": format!("b{round}-{worker}-{n}-{k}"), "from": format!("acc{from}"),
                           "to": format!("acc{to}"), "amount": format!("0.{:02}", 1 + rng.below(99)),
                           "currency": "USD"})
                })
                .collect();
            let body = json!({ "payments": payments });
            match post(&api, "/v1/payments/batch", body).await {
                Some((200, body)) => {
                    let mut acknowledged = acknowledged.lock().unwrap();
                    for result in body["results"].as_array().into_iter().flatten() {
                        let status = result["status"].as_str().unwrap_or("");
                        // "error" (503 retry inside the batch) promises nothing.
                        if status == "settled" || status == "rejected" {
                            let id = result["id"].as_str().unwrap_or("").to_owned();
                            acknowledged.payments.push((id, status.to_owned()));
                        }
                    }
                }
                Some(_) => {}
                None => return,
            }
            continue;
        }
        let dice = rng.below(5);
        if dice == 1 {
            let buyer = rng.below(ACCOUNTS as u64);
            let merchant = (buyer + 1) % ACCOUNTS as u64;
            let id = format!("o{round}-{worker}-{n}");
            acknowledged.lock().unwrap().orders_sent.push(id.clone());
            let body = json!({"id": id, "account": format!("acc{buyer}"), "merchant": format!("acc{merchant}"),
                              "lines": [{"sku": "gadget", "quantity": 1 + rng.below(2)}]});
            match post(&api, "/v1/orders", body).await {
                Some((201, body)) => {
                    let status = body["status"].as_str().unwrap_or("").to_owned();
                    acknowledged.lock().unwrap().orders.push((id, Some(status)));
                }
                Some((202, _)) => acknowledged.lock().unwrap().orders.push((id, None)),
                Some(_) => {}
                None => return,
            }
            continue;
        }
        if dice == 0 {
            let id = format!("r{round}-{worker}-{n}");
            let body = json!({"id": id, "quantity": 1, "ttl_ms": 3_600_000});
            match post(&api, "/v1/items/hot/reservations", body).await {
                Some((201, _)) => acknowledged.lock().unwrap().reservations.push(id),
                Some(_) => {}
                None => return,
            }
        } else {
            let from = rng.below(ACCOUNTS as u64);
            let to = (from + 1 + rng.below(ACCOUNTS as u64 - 1)) % ACCOUNTS as u64;
            let id = format!("p{round}-{worker}-{n}");
            let amount = format!("{}.{:02}", rng.below(20), rng.below(100));
            let body = json!({"id": id, "from": format!("acc{from}"), "to": format!("acc{to}"), "amount": amount, "currency": "USD"});
            match post(&api, "/v1/payments", body).await {
                Some((201, body)) => {
                    let status = body["status"].as_str().unwrap_or("").to_owned();
                    acknowledged.lock().unwrap().payments.push((id, status));
                }
                Some((422, body)) if body["code"] == "insufficient_funds" => {
                    acknowledged
                        .lock()
                        .unwrap()
                        .payments
                        .push((id, "rejected".into()));
                }
                Some(_) => {}
                None => return,
            }
        }
    }
}

#[expect(
    clippy::too_many_lines,
    reason = "reads the state back and checks each invariant in turn"
)]
async fn check_invariants(api: &Api, acknowledged: &Acknowledged) {
    // Every acknowledged payment is there with the status the client saw.
    for (id, status) in &acknowledged.payments {
        let response = api.get(&format!("/v1/payments/{id}")).await;
        assert_eq!(response.status(), 200, "acknowledged payment {id} is lost");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"].as_str().unwrap(), status, "payment {id}");
    }
    // Its id stays taken, in memory or in the archive: another body under it is
    // a conflict, never a second payment.
    for (id, _) in acknowledged.payments.iter().step_by(25) {
        let other =
            json!({"id": id, "from": "acc0", "to": "acc1", "amount": "999.99", "currency": "USD"});
        let (status, body) = post(api, "/v1/payments", other).await.expect("an answer");
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("idempotency_conflict")),
            "payment {id} again with another body: {body}"
        );
    }
    for id in &acknowledged.reservations {
        let response = api.get(&format!("/v1/items/hot/reservations/{id}")).await;
        assert_eq!(
            response.status(),
            200,
            "acknowledged reservation {id} is lost"
        );
    }
    // Every acknowledged order is there; every order that exists reaches a final
    // state (recovery re-drives it), and one the client was told is final kept
    // the status it was told.
    let told: std::collections::HashMap<&str, &Option<String>> = acknowledged
        .orders
        .iter()
        .map(|(id, status)| (id.as_str(), status))
        .collect();
    let mut sold = 0u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in &acknowledged.orders_sent {
        let order = loop {
            let response = api.get(&format!("/v1/orders/{id}")).await;
            if response.status() == 404 {
                assert!(
                    !told.contains_key(id.as_str()),
                    "acknowledged order {id} is lost"
                );
                break None;
            }
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            let status = body["status"].as_str().unwrap();
            if ["confirmed", "rejected", "cancelled", "expired"].contains(&status) {
                break Some(body);
            }
            assert!(Instant::now() < deadline, "order {id} never ends: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let Some(order) = order else { continue };
        if let Some(Some(status)) = told.get(id.as_str()) {
            assert_eq!(order["status"].as_str().unwrap(), status, "order {id}");
        }
        if order["status"] == "confirmed" {
            sold += order["lines"][0]["quantity"].as_u64().unwrap();
        }
    }
    let gadget: Value = api.get("/v1/items/gadget").await.json().await.unwrap();
    assert_eq!(gadget["reserved"], 0, "no order holds stock: {gadget}");
    assert_eq!(
        gadget["on_hand"].as_u64().unwrap() + sold,
        ORDER_STOCK,
        "every unit sold belongs to one confirmed order: {gadget}"
    );
    // No oversell.
    let item: Value = api.get("/v1/items/hot").await.json().await.unwrap();
    assert!(
        item["reserved"].as_u64().unwrap() <= item["on_hand"].as_u64().unwrap(),
        "{item}"
    );
    assert_eq!(item["on_hand"].as_u64().unwrap(), STOCK);
    // Money conserved once in-flight sagas (re-driven by recovery) settle.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut total = rust_decimal::Decimal::ZERO;
        for i in 0..ACCOUNTS {
            let account: Value = api
                .get(&format!("/v1/accounts/acc{i}"))
                .await
                .json()
                .await
                .unwrap();
            let balance: rust_decimal::Decimal =
                account["balance"].as_str().unwrap().parse().unwrap();
            assert_eq!(account["held"], "0.00", "no order holds money: {account}");
            assert!(
                account["available"]
                    .as_str()
                    .unwrap()
                    .parse::<rust_decimal::Decimal>()
                    .unwrap()
                    >= rust_decimal::Decimal::ZERO
            );
            total += balance;
        }
        if total == rust_decimal::Decimal::from(DEPOSIT * ACCOUNTS as i64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "money not conserved: total {total}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn crash_rounds(storage_url: String) {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| surge_actors::engine::system_clock_ms() | 1);
    eprintln!("crash test seed {seed} (rerun with SEED={seed})");
    let mut rng = Rng(seed);
    let token = token();
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    for round in 0..ROUNDS {
        let mut server = start(&storage_url);
        server.wait_ready().await;
        let api = server.api(&token);
        if round == 0 {
            setup(&api).await;
        } else {
            let seen = acknowledged.lock().unwrap().clone();
            check_invariants(&api, &seen).await;
        }
        let workers: Vec<_> = (0..16)
            .map(|worker| {
                tokio::spawn(load(api.clone(), worker, round, seed, acknowledged.clone()))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300 + rng.below(700))).await;
        // SIGKILL: no shutdown hook runs, nothing is flushed on the way out.
        server.kill();
        for worker in workers {
            let _ = worker.await;
        }
        let counts = {
            let a = acknowledged.lock().unwrap();
            (a.payments.len(), a.reservations.len(), a.orders.len())
        };
        eprintln!(
            "round {round}: killed; {} payments, {} reservations and {} orders acknowledged so far",
            counts.0, counts.1, counts.2
        );
    }
    let mut server = start(&storage_url);
    server.wait_ready().await;
    let seen = acknowledged.lock().unwrap().clone();
    check_invariants(&server.api(&token), &seen).await;
    assert!(
        acknowledged.lock().unwrap().payments.len() > 10,
        "the load did something"
    );
    server.kill();
}

#[tokio::test]
async fn kill_9_under_load_loses_nothing_acknowledged_on_sqlite() {
    let (_dir, url) = common::temp_sqlite();
    crash_rounds(url).await;
}

#[tokio::test]
async fn kill_9_under_load_loses_nothing_acknowledged_on_postgres() {
    let database = common::postgres::Database::create("surge_crash").await;
    crash_rounds(database.url.clone()).await;
    database.destroy().await;
}
