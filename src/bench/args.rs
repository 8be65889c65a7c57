//! The command line of `surge bench` and the limits on it.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

pub use crate::api::limits::PAYMENTS_PER_BATCH_MAX;
/// Most concurrent requests (closed loop) or requests in flight (open loop).
pub const CONCURRENCY_MAX: usize = 10_000;
/// Longest run, so a typo cannot book the machine for a day.
pub const DURATION_S_MAX: u64 = 3_600;
/// Most accounts (or buyers) a run creates.
pub const ACCOUNTS_MAX: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioArg {
    /// One hot SKU with limited stock plus a Zipfian long tail, many buyers.
    FlashSale,
    /// Single `POST /v1/payments` between funded accounts.
    Payments,
    /// `POST /v1/payments/batch` (JSON, or MessagePack with --msgpack).
    PaymentsBatch,
    /// Orders, payments, reads and feed subscribers, as on a checkout day.
    Mixed,
    /// A day's mix for as long as --duration-s (best with --rate): payments,
    /// two-phase payments with captures and expiries, reservations with TTLs,
    /// orders, reads and retries of long-finished payments; the report charts
    /// the server's resident memory.
    Soak,
}

impl ScenarioArg {
    pub fn name(self) -> &'static str {
        match self {
            ScenarioArg::FlashSale => "flash-sale",
            ScenarioArg::Payments => "payments",
            ScenarioArg::PaymentsBatch => "payments-batch",
            ScenarioArg::Mixed => "mixed",
            ScenarioArg::Soak => "soak",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BaselineArg {
    /// Plain PostgreSQL transactions with row locks (needs --database-url).
    Postgres,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub scenario: ScenarioArg,
    /// A running Surge (e.g. http://127.0.0.1:8080); absent: start one in-process
    /// on a free port, with a temporary SQLite journal unless SURGE__STORAGE__URL
    /// names one.
    #[arg(long)]
    pub url: Option<String>,
    /// For an `https://` --url: the PEM certificate (or CA) to trust, e.g. the
    /// server's self-signed one. HTTPS requests go through reqwest (the lean
    /// client speaks plain HTTP), and the feed is not used over TLS.
    #[arg(long, env = "SURGE_BENCH_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// How long the measured phase lasts, in seconds.
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Concurrent requests (closed loop), or most requests in flight (open loop).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Open loop: requests per second, latency measured from the intended send
    /// time (no coordinated omission). Absent: closed loop.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Write report.json and report.html into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also run the same scenario against a baseline.
    #[arg(long, value_enum, requires = "database_url")]
    pub baseline: Option<BaselineArg>,
    /// PostgreSQL server for the baseline; the bench creates a fresh database
    /// there and drops it afterwards.
    #[arg(long, env = "SURGE_BENCH_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Funded accounts (payments) or buyers (flash-sale, mixed).
    #[arg(long, default_value_t = 10_000)]
    pub accounts: usize,
    /// Share of payments whose both ends come from the hottest 1% of accounts.
    #[arg(long, default_value_t = 0)]
    pub hot_accounts_percent: u8,
    /// Payments per batch request (payments-batch).
    #[arg(long, default_value_t = PAYMENTS_PER_BATCH_MAX)]
    pub batch_size: usize,
    /// Send batches as MessagePack instead of JSON.
    #[arg(long)]
    pub msgpack: bool,
    /// Units of the hot SKU (flash-sale, mixed).
    #[arg(long, default_value_t = 2_000)]
    pub hot_stock: u64,
    /// SKUs of the long tail (flash-sale, mixed).
    #[arg(long, default_value_t = 200)]
    pub tail_skus: usize,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    pub client_threads: usize,
    /// Shards of the in-process engine (default: the configured number).
    #[arg(long)]
    pub shards: Option<u32>,
    /// How long verification polls for orders to become terminal and money to
    /// settle, in seconds.
    #[arg(long, default_value_t = 30)]
    pub settle_timeout_s: u64,
}

impl BenchArgs {
    /// Refuses arguments outside the limits, with the flag at fault named.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=DURATION_S_MAX).contains(&self.duration_s),
            "--duration-s must be between 1 and {DURATION_S_MAX}"
        );
        anyhow::ensure!(
            (1..=CONCURRENCY_MAX).contains(&self.concurrency),
            "--concurrency must be between 1 and {CONCURRENCY_MAX}"
        );
        anyhow::ensure!(
            (2..=ACCOUNTS_MAX).contains(&self.accounts),
            "--accounts must be between 2 and {ACCOUNTS_MAX}"
        );
        anyhow::ensure!(
            (1..=PAYMENTS_PER_BATCH_MAX).contains(&self.batch_size),
            "--batch-size must be between 1 and {PAYMENTS_PER_BATCH_MAX}"
        );
        anyhow::ensure!(
            self.hot_accounts_percent <= 100,
            "--hot-accounts-percent must be at most 100"
        );
        anyhow::ensure!(self.rate != Some(0), "--rate must be positive");
        anyhow::ensure!(
            self.client_threads >= 1,
            "--client-threads must be positive"
        );
        anyhow::ensure!(self.hot_stock >= 1, "--hot-stock must be positive");
        Ok(())
    }
}
