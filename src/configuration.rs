//! Layered settings: built-in defaults (`config/default.toml`, compiled in), then
//! `config/<environment>.toml`, then `SURGE__SECTION__KEY` environment variables.

use anyhow::Context as _;
use config::{Config, Environment, File, FileFormat};
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::path::PathBuf;

/// The defaults, compiled in so that the binary runs from any directory.
const DEFAULTS: &str = include_str!("../config/default.toml");

/// The JWT secret of `config/default.toml`: accepted only in development.
pub const DEVELOPMENT_JWT_SECRET: &str = "surge-development-secret-do-not-use-in-production";

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `development`, `test`, `production`, ... (from `SURGE_ENVIRONMENT`).
    #[serde(skip)]
    pub environment: String,
    pub http: HttpSettings,
    pub tls: crate::tls::TlsSettings,
    pub engine: EngineSettings,
    pub limits: LimitSettings,
    pub auth: AuthSettings,
    pub rate_limit: RateLimitSettings,
    pub storage: StorageSettings,
    pub redis: RedisSettings,
    pub cdc: CdcSettings,
    pub orders: OrderSettings,
    pub feed: FeedSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub addr: String,
    pub workers: usize,
    pub body_limit_bytes: usize,
    pub batch_body_limit_bytes: usize,
    pub connections_max: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EngineSettings {
    pub shards: u32,
    pub shard_threads: usize,
    pub mailbox_capacity: usize,
    pub tick_interval_ms: u64,
    pub journal_timeout_ms: u64,
    pub reply_timeout_ms: u64,
    pub queue_deadline_ms: u64,
    pub step_resend_ms: u64,
    pub snapshot_every_events: u64,
    pub snapshot_interval_s: u64,
    pub flush_at_once_events_min: usize,
    pub idempotency_retention_ms: u64,
    pub finished_in_memory_ms: u64,
    pub open_entities_max: usize,
    pub archived_filter_bytes: u64,
    pub hash_seed: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    pub amount_max: Decimal,
    pub quantity_max: u32,
    pub stock_max: u64,
    pub hold_timeout_ms_default: u64,
    pub hold_timeout_ms_max: u64,
    pub reservation_ttl_ms_default: u64,
    pub reservation_ttl_ms_max: u64,
    pub payments_batch_max: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub jwt_secret: SecretString,
    pub token_ttl_s_default: u64,
    /// PEM file of public keys (empty: none).
    pub public_key_path: String,
    /// JWKS file of public keys, chosen by `kid` (empty: none).
    pub jwks_path: String,
    /// Required `iss` and `aud` (empty: not checked).
    pub issuer: String,
    pub audience: String,
    pub leeway_s: u64,
    pub allow_hs256: bool,
}

/// Longest clock-skew leeway: past a few minutes it is no longer skew.
const AUTH_LEEWAY_S_MAX: u64 = 300;

impl AuthSettings {
    fn path(value: &str) -> Option<&std::path::Path> {
        (!value.is_empty()).then(|| std::path::Path::new(value))
    }

    pub fn public_key_path(&self) -> Option<&std::path::Path> {
        Self::path(&self.public_key_path)
    }

    pub fn jwks_path(&self) -> Option<&std::path::Path> {
        Self::path(&self.jwks_path)
    }

    pub fn issuer(&self) -> Option<&str> {
        (!self.issuer.is_empty()).then_some(self.issuer.as_str())
    }

    pub fn audience(&self) -> Option<&str> {
        (!self.audience.is_empty()).then_some(self.audience.as_str())
    }

    /// The verification keys and policy these settings describe; a key file
    /// that does not read is an error naming it.
    pub fn keys(&self) -> anyhow::Result<crate::api::auth::AuthKeys> {
        let public =
            crate::api::jwt_keys::PublicKeys::open(self.public_key_path(), self.jwks_path())?;
        let policy = crate::api::auth::TokenPolicy {
            issuer: self.issuer().map(str::to_owned),
            audience: self.audience().map(str::to_owned),
            leeway_s: self.leeway_s,
            allow_hs256: self.allow_hs256,
        };
        Ok(crate::api::auth::AuthKeys::new(
            self.jwt_secret.expose_secret().as_bytes(),
            public,
            policy,
        ))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    pub requests_per_s: u32,
    pub burst: u32,
    pub subjects_max: usize,
    pub redis_key_prefix: String,
    pub redis_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StorageSettings {
    pub url: String,
    pub pool_connections_max: u32,
    pub timeout_ms: u64,
    pub records_per_write_max: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub url: String,
    pub stream_key: String,
    pub stream_length_max: usize,
    pub channel: String,
    pub queue_events_max: usize,
    pub node_id: String,
}

/// Change data capture (`src/cdc/`): every durable change, in order, to
/// RabbitMQ and to the Redis stream.
#[derive(Debug, Clone, Deserialize)]
pub struct CdcSettings {
    /// Most change messages a sink is handed at once (one confirmed batch).
    pub batch_changes_max: usize,
    /// Journal rows read per query.
    pub rows_per_read_max: usize,
    /// How long a caught-up tailer waits before it reads again.
    pub poll_ms: u64,
    /// How far (in events) a sink may fall behind before journal pruning stops
    /// waiting for it; past it the lag is reported loudly and pruned changes are
    /// skipped, counted and logged.
    pub lag_limit_events: u64,
    pub amqp: AmqpSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AmqpSettings {
    /// AMQP 0-9-1 URL (`amqp://user:pass@host:5672/vhost`); empty: no RabbitMQ sink.
    pub url: String,
    /// The durable topic exchange change messages go to.
    pub exchange: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrderSettings {
    pub timeout_ms: u64,
    pub wait_ms_default: u64,
    pub wait_ms_max: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FeedSettings {
    pub connections_max: usize,
    pub subscriptions_per_connection_max: usize,
    pub buffer_messages_max: usize,
    pub heartbeat_interval_ms: u64,
    pub idle_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AdminSettings {
    pub fault_injection: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// The environment name: `SURGE_ENVIRONMENT`, else `APP_ENVIRONMENT`, else
/// `development`.
pub fn environment() -> String {
    std::env::var("SURGE_ENVIRONMENT")
        .or_else(|_| std::env::var("APP_ENVIRONMENT"))
        .unwrap_or_else(|_| "development".to_owned())
}

/// Where per-environment files live: `SURGE_CONFIG_DIR`, else `./config`.
fn config_dir() -> PathBuf {
    std::env::var_os("SURGE_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("config"))
}

/// Loads and checks the settings.
pub fn load() -> anyhow::Result<Settings> {
    let environment = environment();
    let overrides = config_dir().join(format!("{environment}.toml"));
    let config = Config::builder()
        .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
        .add_source(File::from(overrides).required(false))
        .add_source(
            Environment::with_prefix("SURGE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        )
        .build()
        .context("cannot read the configuration")?;
    let mut settings: Settings = config.try_deserialize().context("invalid configuration")?;
    settings.environment = environment;
    settings.validate()?;
    Ok(settings)
}

/// Bounds of `engine.archived_filter_bytes`: one page, and 16 GiB per shard
/// (about 10 billion keys), past which a typo would take the machine's memory.
const ARCHIVED_FILTER_BYTES_MIN: u64 = surge_actors::filter::FILTER_LAYER_BYTES_MIN;
const ARCHIVED_FILTER_BYTES_MAX: u64 = 16 << 30;

impl Settings {
    /// Refuses settings that cannot be right.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.environment != "development"
            && self.auth.jwt_secret.expose_secret() == DEVELOPMENT_JWT_SECRET
        {
            anyhow::bail!(
                "refusing to start in the {:?} environment with the built-in development JWT secret: \
                 set SURGE__AUTH__JWT_SECRET",
                self.environment
            );
        }
        if self.auth.jwt_secret.expose_secret().len() < 16 {
            anyhow::bail!("auth.jwt_secret must be at least 16 bytes");
        }
        if self.environment != "development" && self.engine.hash_seed == 0 {
            anyhow::bail!(
                "refusing to start in the {:?} environment with engine.hash_seed = 0: client-chosen \
                 ids could be crafted to collide in the shards' maps; set SURGE__ENGINE__HASH_SEED \
                 to a random 64-bit number (the same on every restart of this journal)",
                self.environment
            );
        }
        anyhow::ensure!(
            self.auth.leeway_s <= AUTH_LEEWAY_S_MAX,
            "auth.leeway_s must be at most {AUTH_LEEWAY_S_MAX}"
        );
        anyhow::ensure!(
            (1..=surge_actors::router::SHARDS_MAX).contains(&self.engine.shards),
            "engine.shards must be between 1 and {}",
            surge_actors::router::SHARDS_MAX
        );
        anyhow::ensure!(
            self.engine.mailbox_capacity > 0,
            "engine.mailbox_capacity must be positive"
        );
        anyhow::ensure!(
            self.engine.queue_deadline_ms < self.engine.reply_timeout_ms,
            "engine.queue_deadline_ms must be below engine.reply_timeout_ms"
        );
        anyhow::ensure!(
            self.limits.amount_max >= Decimal::ONE
                && self.limits.amount_max.fract().is_zero()
                && self.limits.amount_max <= Decimal::from(u64::MAX),
            "limits.amount_max must be a whole number of at least 1 (the OpenAPI document's \
             money patterns are written from it)"
        );
        anyhow::ensure!(
            self.limits.payments_batch_max > 0,
            "limits.payments_batch_max must be positive"
        );
        anyhow::ensure!(
            self.orders.wait_ms_max < self.engine.reply_timeout_ms,
            "orders.wait_ms_max must be below engine.reply_timeout_ms"
        );
        anyhow::ensure!(
            self.orders.wait_ms_default <= self.orders.wait_ms_max,
            "orders.wait_ms_default must be at most orders.wait_ms_max"
        );
        anyhow::ensure!(
            (ARCHIVED_FILTER_BYTES_MIN..=ARCHIVED_FILTER_BYTES_MAX)
                .contains(&self.engine.archived_filter_bytes),
            "engine.archived_filter_bytes must be between {ARCHIVED_FILTER_BYTES_MIN} and \
             {ARCHIVED_FILTER_BYTES_MAX} (it is taken per shard, up front)"
        );
        anyhow::ensure!(
            self.feed.buffer_messages_max > 0 && self.feed.connections_max > 0,
            "feed.buffer_messages_max and feed.connections_max must be positive"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compiled-in defaults alone, without the environment file or variables.
    fn defaults() -> Settings {
        Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()
            .and_then(Config::try_deserialize)
            .expect("config/default.toml is valid")
    }

    /// TOML cannot name a Rust constant, so the defaults that must equal one are
    /// checked here.
    #[test]
    fn defaults_that_are_shared_limits_equal_their_constants() {
        let settings = defaults();
        assert_eq!(
            settings.limits.payments_batch_max,
            crate::api::limits::PAYMENTS_PER_BATCH_MAX,
            "config/default.toml's limits.payments_batch_max"
        );
    }
}
