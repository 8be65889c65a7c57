//! The durable audit trail on the real binary, on SQLite and on PostgreSQL:
//! operator actions and refused tokens are rows before their answers leave,
//! survive kill -9, page by cursor and filter, and `surge audit verify` finds
//! the row that was edited or deleted behind its back.

mod common;

use common::process::{Serve, SurgeProcess};
use serde_json::{json, Value};

const SECRET: &str = "surge-audit-test-secret-0123456789";

async fn start(storage: &str) -> SurgeProcess {
    Serve::new(SECRET)
        .storage(storage)
        .env("SURGE__ENGINE__SHARDS", "2")
        .start()
        .await
}

/// `surge audit verify` on `storage`: its success and what it printed.
fn verify(storage: &str) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_surge"))
        .args(["audit", "verify"])
        .env("SURGE__STORAGE__URL", storage)
        .env("SURGE__AUTH__JWT_SECRET", SECRET)
        .env("SURGE__LOG__LEVEL", "warn")
        .output()
        .expect("surge audit verify runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Operator actions, a refused token, then kill -9 and a restart: every row is
/// there, in order, and the chain verifies.
async fn act_kill_and_read_back(storage: &str) -> Vec<Value> {
    let mut server = start(storage).await;
    let operator = common::tokens::operator_token(SECRET, "ops-alice");
    let api = server.api(&operator);
    let created = api
        .post("/v1/accounts", json!({"id": "audited", "currency": "USD"}))
        .await;
    assert_eq!(created.status(), 201);
    let deposit = api
        .post("/v1/accounts/audited/deposits", json!({"amount": "10.00"}))
        .await;
    assert_eq!(deposit.status(), 201);
    assert_eq!(
        api.post("/admin/shards/0/snapshot", json!({}))
            .await
            .status(),
        200
    );
    let forged = common::tokens::operator_token("not-the-secret-at-all-0123456789", "mallory");
    assert_eq!(server.api(&forged).get("/admin/shards").await.status(), 401);
    // A refusal's row is written beside its answer, not before it: wait for it.
    common::eventually(|| async {
        let page = api.get_json("/admin/audit?action=auth.refused").await;
        page["entries"][0]["sub"] == "mallory"
    })
    .await;
    // The answers above left after their rows were durable: kill -9 now.
    server.kill();
    let server = start(storage).await;
    let api = server.api(&operator);
    let page = api.get_json("/admin/audit?limit=100").await;
    let entries = page["entries"].as_array().expect("entries").clone();
    let actions: Vec<&str> = entries
        .iter()
        .rev()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        [
            "account.create",
            "account.deposit",
            "shard.snapshot",
            "auth.refused"
        ],
        "{entries:?}"
    );
    assert!(entries[1..]
        .iter()
        .all(|e| e["sub"] == "ops-alice" && e["outcome"] == "ok"));
    assert_eq!(entries[0]["sub"], "mallory");
    assert_eq!(entries[0]["outcome"], "refused");
    let (ok, text) = verify(storage);
    assert!(ok, "{text}");
    assert!(text.contains("4 rows"), "{text}");
    entries
}

#[tokio::test]
async fn the_trail_survives_kill_9_pages_filters_and_names_a_tampered_row_on_sqlite() {
    let (_dir, storage) = common::temp_sqlite();
    act_kill_and_read_back(&storage).await;
    let server = start(&storage).await;
    let api = server.api(&common::tokens::operator_token(SECRET, "ops-bob"));
    // A page of one, then the next by its cursor; a filter by action.
    let first = api.get_json("/admin/audit?limit=1").await;
    assert_eq!(first["entries"][0]["action"], "auth.refused");
    let cursor = first["next_cursor"].as_str().expect("a cursor").to_owned();
    let next = api
        .get_json(&format!("/admin/audit?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(next["entries"][0]["action"], "shard.snapshot");
    let deposits = api.get_json("/admin/audit?action=account.deposit").await;
    assert_eq!(deposits["entries"].as_array().expect("entries").len(), 1);
    let nobody = api.get_json("/admin/audit?sub=nobody").await;
    assert!(nobody["entries"].as_array().expect("entries").is_empty());
    let bad = api.get("/admin/audit?since=yesterday").await;
    assert_eq!(bad.status(), 400);
    drop(server);
    // Tampering behind Surge's back: an edited row, then a deleted one.
    let pool = sqlx::SqlitePool::connect(&storage)
        .await
        .expect("the journal");
    sqlx::query("UPDATE audit SET sub = 'someone-else' WHERE seq = 2")
        .execute(&pool)
        .await
        .expect("edit");
    let (ok, text) = verify(&storage);
    assert!(!ok && text.contains("row 2 was changed"), "{text}");
    sqlx::query("DELETE FROM audit WHERE seq = 2")
        .execute(&pool)
        .await
        .expect("delete");
    let (ok, text) = verify(&storage);
    assert!(!ok && text.contains("row 2 is missing"), "{text}");
}

#[tokio::test]
async fn the_trail_survives_kill_9_and_names_a_tampered_row_on_postgres() {
    let database = common::postgres::Database::create("surge_audit").await;
    act_kill_and_read_back(&database.url).await;
    let pool = sqlx::PgPool::connect(&database.url)
        .await
        .expect("the journal");
    sqlx::query("UPDATE audit SET outcome = 'failed' WHERE seq = 3")
        .execute(&pool)
        .await
        .expect("edit");
    let (ok, text) = verify(&database.url);
    assert!(!ok && text.contains("row 3 was changed"), "{text}");
    pool.close().await;
    database.destroy().await;
}
