//! Smoke tests of `surge bench`: every scenario runs for a couple of seconds
//! through the built binary, with its invariants checked (the command exits
//! non-zero when one is violated) and its report read back. No speed is asserted.
//!
//! The PostgreSQL baseline runs use the server every PostgreSQL test uses
//! (`common::postgres::admin_url`); the bench creates and drops its own database
//! there. They are never skipped: without PostgreSQL they fail, saying so.

use serde_json::Value;
use std::process::Command;

mod common;

/// Runs `surge bench <args>` and returns its report, failing on a non-zero exit.
fn bench(args: &[&str]) -> Value {
    let out = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_surge"))
        .arg("bench")
        .args(args)
        .args(["--duration-s", "2", "--settle-timeout-s", "20"])
        .arg("--out")
        .arg(out.path())
        // A fresh temporary SQLite journal, whatever the caller's environment.
        .env_remove("SURGE__STORAGE__URL")
        .env("SURGE_ENVIRONMENT", "development")
        // Shedding (tests/overload.rs) is off: on the shared two-core machines that
        // run the suite, a stall that is not overload must not refuse a request.
        .env("SURGE__ENGINE__QUEUE_DEADLINE_MS", "0")
        .output()
        .expect("surge runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "surge bench {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let html = std::fs::read_to_string(out.path().join("report.html")).expect("report.html");
    assert!(html.contains("<svg"), "the HTML report has inline charts");
    assert!(
        !html.contains("<script src"),
        "the HTML report loads nothing"
    );
    let report: Value = serde_json::from_slice(
        &std::fs::read(out.path().join("report.json")).expect("report.json"),
    )
    .expect("report.json is JSON");
    check_run(&report, &stdout);
    if let Some(baseline) = report.get("baseline") {
        check_run(baseline, &stdout);
        assert!(report["ratio"]["throughput"].as_f64().is_some());
    }
    report
}

fn check_run(run: &Value, stdout: &str) {
    assert!(
        run["requests"].as_u64().unwrap_or(0) > 0,
        "no request was made:\n{stdout}"
    );
    assert!(
        run["ok"].as_u64().unwrap_or(0) > 0,
        "nothing succeeded:\n{stdout}"
    );
    assert_eq!(run["errors"], 0, "errors:\n{stdout}");
    let invariants = &run["invariants"];
    assert_eq!(invariants["oversold_units"], 0, "{stdout}");
    assert_eq!(invariants["money_conserved"], true, "{stdout}");
    assert_eq!(invariants["non_terminal_orders"], 0, "{stdout}");
    assert_eq!(invariants["feed_gaps"], 0, "{stdout}");
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            run["latency_ms"][key].as_f64().is_some(),
            "latency_ms.{key}"
        );
    }
    assert!(run["throughput_per_s"].as_f64().unwrap_or(0.0) > 0.0);
}

#[test]
fn payments_run_conserves_money() {
    let report = bench(&["payments", "--concurrency", "8", "--accounts", "200"]);
    assert_eq!(report["scenario"], "payments");
    assert_eq!(report["target"], "surge");
}

#[test]
fn skewed_payments_run_conserves_money() {
    bench(&[
        "payments",
        "--concurrency",
        "8",
        "--accounts",
        "200",
        "--hot-accounts-percent",
        "50",
        "--rate",
        "300",
    ]);
}

#[test]
fn payments_batch_counts_every_payment_of_a_batch() {
    let report = bench(&[
        "payments-batch",
        "--concurrency",
        "2",
        "--accounts",
        "200",
        "--batch-size",
        "500",
    ]);
    let requests = report["requests"].as_u64().expect("requests");
    assert_eq!(report["operations"].as_u64(), Some(requests * 500));
}

#[test]
fn msgpack_payments_batch_conserves_money() {
    bench(&[
        "payments-batch",
        "--msgpack",
        "--concurrency",
        "2",
        "--accounts",
        "200",
        "--batch-size",
        "500",
    ]);
}

#[test]
fn flash_sale_sells_out_without_overselling() {
    let report = bench(&[
        "flash-sale",
        "--concurrency",
        "16",
        "--accounts",
        "300",
        "--hot-stock",
        "50",
        "--tail-skus",
        "20",
    ]);
    assert!(report["units_sold"].as_u64().is_some());
    assert!(report["orders_confirmed"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn mixed_day_keeps_every_invariant() {
    let report = bench(&[
        "mixed",
        "--concurrency",
        "16",
        "--accounts",
        "300",
        "--tail-skus",
        "20",
    ]);
    assert!(
        report["invariants"]["feed_subscribers"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
}

#[test]
fn payments_against_the_postgres_baseline_report_a_ratio() {
    let url = common::postgres::admin_url();
    let report = bench(&[
        "payments",
        "--concurrency",
        "8",
        "--accounts",
        "200",
        "--baseline",
        "postgres",
        "--database-url",
        &url,
    ]);
    assert_eq!(report["baseline"]["target"], "postgres");
}

#[test]
fn payments_batch_against_the_postgres_baseline_report_a_ratio() {
    let url = common::postgres::admin_url();
    bench(&[
        "payments-batch",
        "--concurrency",
        "2",
        "--accounts",
        "200",
        "--batch-size",
        "1000",
        "--baseline",
        "postgres",
        "--database-url",
        &url,
    ]);
}

#[test]
fn flash_sale_against_the_postgres_baseline_sells_out_on_both() {
    let url = common::postgres::admin_url();
    bench(&[
        "flash-sale",
        "--concurrency",
        "16",
        "--accounts",
        "300",
        "--hot-stock",
        "50",
        "--tail-skus",
        "20",
        "--baseline",
        "postgres",
        "--database-url",
        &url,
    ]);
}

const SOAK_SECRET: &str = "surge-soak-smoke-secret-0123456789";

/// `surge bench soak` against `base` for 30 s at 400 jobs/s; its report.
async fn soak_report(base: &str) -> Value {
    let out = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_surge"));
    command
        .args(["bench", "soak", "--url", base])
        .args([
            "--duration-s",
            "30",
            "--rate",
            "400",
            "--concurrency",
            "256",
        ])
        .args([
            "--accounts",
            "500",
            "--tail-skus",
            "50",
            "--settle-timeout-s",
            "30",
        ])
        .arg("--out")
        .arg(out.path())
        .env("SURGE__AUTH__JWT_SECRET", SOAK_SECRET)
        .env("SURGE_ENVIRONMENT", "development")
        // Shedding (tests/overload.rs) is off: on the shared two-core machines that
        // run the suite, a stall that is not overload must not refuse a request.
        .env("SURGE__ENGINE__QUEUE_DEADLINE_MS", "0");
    let output = tokio::task::spawn_blocking(move || command.output().expect("surge runs"))
        .await
        .expect("the bench thread");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "surge bench soak failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(
        &std::fs::read(out.path().join("report.json")).expect("report.json"),
    )
    .expect("report.json is JSON");
    check_run(&report, &stdout);
    assert_eq!(report["scenario"], "soak");
    report
}

/// `surge serve` for the soak, on a free port: chosen again if another test
/// took it between its choice and the bind (the process then exits at once).
async fn start_soak_server(storage: &str) -> common::process::SurgeProcess {
    for _ in 0..5 {
        let mut server = common::process::Serve::new(SOAK_SECRET)
            .storage(storage)
            .env("SURGE__ENGINE__SHARDS", "2")
            .env("SURGE__ENGINE__FINISHED_IN_MEMORY_MS", "0")
            .env("SURGE__ENGINE__OPEN_ENTITIES_MAX", "5000")
            .env("SURGE__ENGINE__SNAPSHOT_EVERY_EVENTS", "5000")
            // A small filter (it fills, and then most new ids pay a lookup), so
            // that snapshots keep their 5,000-event cadence.
            .env("SURGE__ENGINE__ARCHIVED_FILTER_BYTES", "65536")
            .env("SURGE__RATE_LIMIT__REQUESTS_PER_S", "1000000")
            .spawn();
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + common::process::READY_TIMEOUT;
        while std::time::Instant::now() < deadline {
            if server.try_wait().is_some() {
                break;
            }
            let ready = http.get(format!("{}/ready", server.base)).send().await;
            if ready.is_ok_and(|response| response.status() == 200) {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    panic!("surge serve did not start on any of 5 ports");
}

/// Rows in every table of the archive.
async fn archived_rows(storage: &str) -> i64 {
    let pool = sqlx::SqlitePool::connect(storage)
        .await
        .expect("the journal");
    let mut archived = 0i64;
    for table in [
        "archived_payments",
        "archived_orders",
        "archived_reservations",
        "archived_ops",
        "archived_steps",
    ] {
        let (rows,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&pool)
            .await
            .expect("an archive table");
        archived += rows;
    }
    archived
}

/// The soak against a real `surge serve` whose finished entities and records
/// leave memory the moment they are durable, under a small open-entity ceiling:
/// thousands of archive rounds in half a minute, every invariant kept, what
/// stays in memory the open work, and the server's resident memory levelling
/// off rather than growing with what it has done. (The bound is loose: this
/// checks the shape; the 30-minute figure is BENCHMARKS.md's.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_against_a_real_server_archives_all_along_and_its_memory_levels_off() {
    let (dir, storage) = common::temp_sqlite();
    let server = start_soak_server(&storage).await;
    let report = soak_report(&server.base).await;
    let archived = archived_rows(&storage).await;
    assert!(archived > 5_000, "only {archived} rows archived");
    let shards: Value = server
        .api(&common::tokens::operator_token(SOAK_SECRET, "soak-smoke"))
        .get("/admin/shards")
        .await
        .json()
        .await
        .expect("shards");
    for shard in shards.as_array().expect("shards") {
        for table in ["payments", "orders", "operation_records", "step_records"] {
            assert!(
                shard[table].as_u64().expect("a count") < 2_000,
                "shard {} holds {} {table} after {archived} were archived",
                shard["id"],
                shard[table]
            );
        }
    }
    let memory = &report["memory"];
    let samples = memory["samples"].as_array().expect("memory samples");
    assert!(samples.len() >= 20, "{} memory samples", samples.len());
    let growth = memory["growth_last_two_thirds_percent"]
        .as_f64()
        .expect("growth");
    eprintln!(
        "soak smoke: {archived} rows archived, resident memory {:.1} MB at the end, {growth:+.1}% over the last two thirds",
        memory["rss_at_end_bytes"].as_f64().unwrap_or(0.0) / 1_048_576.0
    );
    assert!(
        growth < 30.0,
        "resident memory grew {growth:.1}% over the last two thirds: {samples:?}"
    );
    drop(dir);
}
