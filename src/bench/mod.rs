//! `surge bench`: end-to-end load scenarios against Surge (in-process or at a URL)
//! and against a plain-PostgreSQL baseline, with invariant checks and reports.
//!
//! # Layout
//!
//! * [`args`]: the command line of `surge bench`.
//! * [`target`]: what is measured: an in-process Surge, a remote one, or the
//!   PostgreSQL baseline, each behind the same HTTP API.
//! * [`baseline`]: the same operations as plain PostgreSQL transactions with row
//!   locks, served by a minimal actix-web server.
//! * [`client`]: the HTTP (and WebSocket) client the load generator speaks.
//! * [`http1`]: the lean keep-alive HTTP/1.1 transport of its measured requests.
//! * [`load`]: open- and closed-loop drivers, HDR latency recording, progress bar.
//! * [`scenario`]: setup, request mix and verification of each scenario.
//! * [`zipf`]: a Zipf sampler for skewed SKU and account choice.
//! * [`memory`]: the server's resident memory, CPU time and open entities, read
//!   from its `/metrics` every second.
//! * [`report`]: the summary table, `report.json` and a self-contained `report.html`.

pub mod args;
pub mod baseline;
pub mod client;
pub mod http1;
pub mod load;
pub mod memory;
pub mod report;
pub mod scenario;
pub mod target;
pub mod zipf;

pub use args::{BaselineArg, BenchArgs, ScenarioArg};

use crate::configuration::{LogSettings, Settings};
use report::{Comparison, RunReport};

/// Runs the benchmark the arguments describe (and its baseline, when asked),
/// prints the summary, writes the reports, and returns whether every invariant
/// held. Must run inside the actix System (the in-process targets need it).
pub async fn run(settings: Settings, args: BenchArgs) -> anyhow::Result<bool> {
    args.validate()?;
    if let Some(path) = &args.ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("reading --ca-cert {}: {e}", path.display()))?;
        let certificate = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| anyhow::anyhow!("--ca-cert {}: {e}", path.display()))?;
        // Set once per process, before any client is built.
        let _ = TRUSTED_CERTIFICATE.set(certificate);
    }
    let surge = run_one(&settings, &args, target::TargetKind::Surge).await?;
    let baseline = match args.baseline {
        Some(BaselineArg::Postgres) => {
            Some(run_one(&settings, &args, target::TargetKind::Postgres).await?)
        }
        None => None,
    };
    let comparison = Comparison::new(surge, baseline);
    report::print_summary(&comparison);
    if let Some(dir) = &args.out {
        report::write(dir, &comparison)?;
        eprintln!(
            "reports written to {}/report.json and report.html",
            dir.display()
        );
    }
    Ok(comparison.invariants_hold())
}

/// One scenario against one target: start it, set up, load, verify, stop it.
async fn run_one(
    settings: &Settings,
    args: &BenchArgs,
    kind: target::TargetKind,
) -> anyhow::Result<RunReport> {
    let running = target::start(settings, args, kind).await?;
    let url = running.url.clone();
    let tokens = running.tokens.clone();
    let description = running.description.clone();
    let run_args = args.clone();
    // The load generator gets its own multi-threaded runtime, on its own threads,
    // so it never queues behind the in-process server's actix workers (and the
    // actix System keeps serving while we wait for it here).
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-client".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(run_args.client_threads)
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| {
                    runtime.block_on(scenario::run(run_args, kind, url, tokens, description))
                });
            // The receiver only goes away if the bench itself was dropped.
            let _ = done_tx.send(result);
        })?;
    let result = done_rx
        .await
        .map_err(|_| anyhow::anyhow!("the load generator thread died"))?;
    running.stop().await;
    result
}

/// The bench's log settings: warnings only unless `RUST_LOG` says otherwise, so
/// the in-process engine's per-request logs neither drown the progress bar nor
/// cost the measurement its CPU.
pub fn quiet_log(log: &LogSettings) -> LogSettings {
    let mut quiet = log.clone();
    if std::env::var_os("RUST_LOG").is_none() {
        quiet.level = "warn".into();
    }
    quiet
}

/// The certificate `--ca-cert` names, trusted by every HTTP client of the bench.
static TRUSTED_CERTIFICATE: std::sync::OnceLock<reqwest::Certificate> = std::sync::OnceLock::new();

/// A reqwest client builder that trusts `--ca-cert`, when given.
pub(crate) fn http_client() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    match TRUSTED_CERTIFICATE.get() {
        Some(certificate) => builder.add_root_certificate(certificate.clone()),
        None => builder,
    }
}
