//! Database outage: a TCP proxy the test controls sits between Surge and
//! PostgreSQL. While it is cut, writes answer 503 quickly, reads of in-memory
//! state keep working, and nothing acknowledged is lost; when it comes back the
//! engine resumes by itself.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use surge::api::auth::{AuthKeys, Claims, Role};
use surge::startup::Application;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const SECRET: &str = "surge-outage-test-secret-0123456789";

/// Forwards connections to `target` until cut; cutting drops every open
/// connection and refuses new ones until restored.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let (cut_flag, generation_tx) = (cut.clone(), generation.clone());
        actix_web::rt::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if cut_flag.load(Ordering::SeqCst) {
                    let _ = client.shutdown().await;
                    continue;
                }
                let target = target.clone();
                let mut cuts = generation_tx.subscribe();
                actix_web::rt::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            cut,
            generation,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

async fn send(
    http: &reqwest::Client,
    token: &str,
    base: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let response = http
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn balance(http: &reqwest::Client, token: &str, base: &str, id: &str) -> (u16, Value) {
    let response = http
        .get(format!("{base}/v1/accounts/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[actix_web::test]
async fn a_database_outage_gives_fast_503s_keeps_reads_and_loses_nothing() {
    let admin_url = std::env::var("SURGE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("surge_outage_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&admin_url)
        .await
        .expect("PostgreSQL is running");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let host = admin_url
        .split('@')
        .nth(1)
        .and_then(|h| h.split('/').next())
        .unwrap()
        .to_owned();
    let proxy = Proxy::start(host).await;

    let mut settings = surge::configuration::load().unwrap();
    settings.http.addr = "127.0.0.1:0".into();
    settings.auth.jwt_secret = SECRET.to_owned().into();
    settings.storage.url = format!("postgres://postgres@127.0.0.1:{}/{name}", proxy.port);
    settings.storage.timeout_ms = 1_000;
    settings.engine.journal_timeout_ms = 1_000;
    settings.engine.shards = 2;
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let token = AuthKeys::from_secret(SECRET.as_bytes())
        .mint(&Claims {
            sub: "ops".into(),
            exp: surge_actors::engine::system_clock_ms() / 1000 + 600,
            role: Role::Operator,
            accounts: None,
        })
        .unwrap();

    for id in ["a", "b"] {
        assert_eq!(
            send(
                &http,
                &token,
                &base,
                "/v1/accounts",
                json!({"id": id, "currency": "USD"})
            )
            .await
            .0,
            201
        );
        assert_eq!(
            send(
                &http,
                &token,
                &base,
                &format!("/v1/accounts/{id}/deposits"),
                json!({"amount": "100"})
            )
            .await
            .0,
            201
        );
    }
    let (status, _) = send(
        &http,
        &token,
        &base,
        "/v1/payments",
        json!({"id": "before", "from": "a", "to": "b", "amount": "10", "currency": "USD"}),
    )
    .await;
    assert_eq!(status, 201);

    proxy.cut();
    let mut acknowledged_during_outage = Vec::new();
    for i in 0..5 {
        let started = Instant::now();
        let id = format!("during-{i}");
        let (status, body) = send(
            &http,
            &token,
            &base,
            "/v1/payments",
            json!({"id": id, "from": "a", "to": "b", "amount": "1", "currency": "USD"}),
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "a write hung for {:?}",
            started.elapsed()
        );
        match status {
            503 => assert!(
                body["code"] == "retry" || body["code"] == "overloaded",
                "{body}"
            ),
            201 => acknowledged_during_outage.push(id),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(
        acknowledged_during_outage.len() < 5,
        "writes cannot all succeed with the database cut off"
    );
    let (status, body) = balance(&http, &token, &base, "a").await;
    assert_eq!(status, 200, "reads of in-memory state keep working: {body}");
    let ready = http
        .get(format!("{base}/ready"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(ready, 503, "not ready while storage is unreachable");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = send(
            &http,
            &token,
            &base,
            "/v1/payments",
            json!({"id": "after", "from": "a", "to": "b", "amount": "5", "currency": "USD"}),
        )
        .await;
        if status == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the engine did not resume after the outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Retrying the failed writes with the same ids is safe: each takes effect once.
    for i in 0..5 {
        let (status, _) = send(&http, &token, &base, "/v1/payments", json!({"id": format!("during-{i}"), "from": "a", "to": "b", "amount": "1", "currency": "USD"})).await;
        assert_eq!(status, 201);
    }
    let (_, a) = balance(&http, &token, &base, "a").await;
    let (_, b) = balance(&http, &token, &base, "b").await;
    assert_eq!(
        a["balance"], "80.00",
        "10 before, 5 during (retried), 5 after"
    );
    assert_eq!(b["balance"], "120.00");
    for id in ["before", "after"] {
        let payment: Value = http
            .get(format!("{base}/v1/payments/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(payment["status"], "settled");
    }
    // The database is ours: drop it (the engine's connections with it).
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
}
