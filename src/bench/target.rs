//! What a run measures, started and stopped: Surge in-process (the default), a
//! Surge already running at `--url`, or the PostgreSQL baseline. All three are
//! reached through the same HTTP API, so the load generator does not know which
//! one it talks to.

use super::args::BenchArgs;
use super::baseline;
use super::client::Tokens;
use crate::api::auth::{AuthKeys, Claims, Role};
use crate::configuration::Settings;
use crate::startup::Application;
use secrecy::ExposeSecret;

/// How long the bench's tokens live: longer than any run may last.
const TOKEN_TTL_S: u64 = 6 * 3_600;
/// Requests per second per subject allowed to the in-process engine: high
/// enough that the rate limiter never shapes the measurement (the bench sends
/// everything under two subjects, which real traffic never would).
const IN_PROCESS_RATE_LIMIT_PER_S: u32 = 100_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Surge,
    Postgres,
}

impl TargetKind {
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Surge => "surge",
            TargetKind::Postgres => "postgres",
        }
    }
}

/// A target that is up and answering.
pub struct Running {
    pub url: String,
    pub tokens: Tokens,
    /// What the target is, for the report (storage URL without credentials, ...).
    pub description: String,
    stop: Stop,
}

enum Stop {
    Nothing,
    Surge {
        engine: surge_actors::Engine,
        // Dropped (deleted) once the engine is stopped.
        _data: Option<tempfile::TempDir>,
    },
    Postgres(Box<baseline::Baseline>),
}

impl Running {
    /// Stops what this run started. In-process Surge: the shards shut down
    /// (final snapshots, then every request is refused); the HTTP listener
    /// stays bound until the process exits, since `Application` has no stop
    /// handle yet.
    pub async fn stop(self) {
        match self.stop {
            Stop::Nothing => {}
            Stop::Surge { engine, _data } => {
                let failed = engine.shutdown().await;
                if !failed.is_empty() {
                    tracing::warn!(?failed, "some shards did not write a final snapshot");
                }
            }
            Stop::Postgres(baseline) => baseline.stop().await,
        }
    }
}

pub fn mint_tokens(settings: &Settings) -> anyhow::Result<Tokens> {
    let keys = AuthKeys::from_secret(settings.auth.jwt_secret.expose_secret().as_bytes());
    let exp = surge_actors::engine::system_clock_ms() / 1000 + TOKEN_TTL_S;
    let mint = |sub: &str, role| {
        keys.mint(&Claims {
            sub: sub.to_owned(),
            exp,
            role,
            accounts: None,
        })
    };
    Ok(Tokens {
        operator: mint("bench-operator", Role::Operator)?,
        client: mint("bench-client", Role::Client)?,
    })
}

/// Starts (or finds) the target. Must run inside the actix System.
pub async fn start(
    settings: &Settings,
    args: &BenchArgs,
    kind: TargetKind,
) -> anyhow::Result<Running> {
    let tokens = mint_tokens(settings)?;
    match kind {
        TargetKind::Surge => match &args.url {
            Some(url) => Ok(Running {
                url: url.trim_end_matches('/').to_owned(),
                tokens,
                description: format!("surge at {url}"),
                stop: Stop::Nothing,
            }),
            None => start_in_process(settings, args, tokens).await,
        },
        TargetKind::Postgres => {
            let database_url = args
                .database_url
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("--baseline postgres needs --database-url"))?;
            let baseline = baseline::Baseline::start(database_url, settings).await?;
            Ok(Running {
                url: baseline.url(),
                tokens,
                description: format!("postgres baseline, database {}", baseline.database()),
                stop: Stop::Postgres(Box::new(baseline)),
            })
        }
    }
}

async fn start_in_process(
    settings: &Settings,
    args: &BenchArgs,
    tokens: Tokens,
) -> anyhow::Result<Running> {
    let mut settings = settings.clone();
    settings.http.addr = "127.0.0.1:0".into();
    settings.rate_limit.requests_per_s = IN_PROCESS_RATE_LIMIT_PER_S;
    settings.rate_limit.burst = IN_PROCESS_RATE_LIMIT_PER_S;
    if let Some(shards) = args.shards {
        settings.engine.shards = shards;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    if settings.engine.shards > cores.div_ceil(2) {
        // Not an error: a run may mean to measure exactly this.
        eprintln!(
            "note: {} shards on {cores} cores shared with the load generator; every \
             cross-shard saga step is one more journal write in sequence, so fewer shards \
             (--shards {}) fit this machine better (BENCHMARKS.md)",
            settings.engine.shards,
            cores.div_ceil(2)
        );
    }
    // A run must not pollute (or depend on) data/: unless the environment names
    // a journal, it gets a fresh SQLite file that is deleted afterwards.
    let data = if std::env::var_os("SURGE__STORAGE__URL").is_some() {
        None
    } else {
        let dir = tempfile::Builder::new().prefix("surge-bench-").tempdir()?;
        settings.storage.url = format!("sqlite://{}/surge.db", dir.path().display());
        Some(dir)
    };
    let storage = match settings.storage.url.split_once('@') {
        Some((scheme, host)) => format!("{}…@{host}", &scheme[..scheme.find(':').unwrap_or(0)]),
        None => settings.storage.url.clone(),
    };
    let application = Application::build(settings.clone()).await?;
    let url = format!("http://127.0.0.1:{}", application.port());
    let engine = application.engine().clone();
    actix_web::rt::spawn(async move {
        if let Err(error) = application.run_until_stopped().await {
            tracing::error!(error = %error, "in-process surge stopped with an error");
        }
    });
    Ok(Running {
        url,
        tokens,
        description: format!(
            "surge in-process, {} shards, storage {storage}",
            settings.engine.shards
        ),
        stop: Stop::Surge {
            engine,
            _data: data,
        },
    })
}
