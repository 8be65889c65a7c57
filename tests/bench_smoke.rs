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
