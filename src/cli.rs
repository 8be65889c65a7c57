//! The command line: `surge serve`, `surge token`, `surge migrate`, `surge bench`.

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "surge",
    version,
    about = "Real-time transaction engine for payments and inventory"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine and its HTTP API.
    Serve,
    /// Print a JWT signed with the configured secret, or with a private key.
    Token {
        /// The token's subject (rate limits and idempotency keys are per subject).
        #[arg(long)]
        sub: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Accounts a client may act on, comma-separated (absent: any).
        #[arg(long, value_delimiter = ',')]
        accounts: Option<Vec<String>>,
        /// Lifetime in seconds (default: auth.token_ttl_s_default).
        #[arg(long)]
        ttl_s: Option<u64>,
        /// Sign with this private key (PKCS#8 PEM: RSA for RS256, P-256 for
        /// ES256, Ed25519 for EdDSA) instead of the shared HS256 secret.
        #[arg(long)]
        private_key: Option<std::path::PathBuf>,
        /// The key's id, for a JWKS that holds several.
        #[arg(long, requires = "private_key")]
        kid: Option<String>,
        /// The token's iss and aud (default: auth.issuer and auth.audience).
        #[arg(long)]
        issuer: Option<String>,
        #[arg(long)]
        audience: Option<String>,
    },
    /// Apply the storage migrations and exit.
    Migrate,
    /// The audit trail: `surge audit verify` checks its hash chain.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Load-test a scenario end to end, check the invariants, and report
    /// (exits non-zero when an invariant is violated).
    #[cfg(feature = "bench")]
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Reads every row of the journal database's audit trail and checks the
    /// chain: exits non-zero naming the first row deleted or changed.
    Verify,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Client,
    Operator,
}
