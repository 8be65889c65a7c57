//! `surge`: parse the command line, load settings, run.

use clap::Parser;
use secrecy::ExposeSecret;
use surge::api::auth::{AuthKeys, Claims, Role};
use surge::cli::{Cli, Command, RoleArg};
use surge::{bench, configuration, startup, storage, telemetry};

/// glibc's allocator took about a tenth of the CPU under load (perf: `_int_malloc`,
/// `malloc_consolidate`, `cfree` across the HTTP workers and shard threads, which
/// allocate on one thread and free on another); mimalloc's per-thread heaps do not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = configuration::load()?;
    match cli.command {
        Command::Serve => {
            telemetry::init(&settings.log);
            let application = startup::Application::build(settings).await?;
            application.run_until_stopped().await
        }
        Command::Migrate => {
            telemetry::init(&settings.log);
            storage::migrate(&startup::storage_options(&settings)).await?;
            println!("migrations applied to {}", settings.storage.url);
            Ok(())
        }
        Command::Bench(args) => {
            telemetry::init(&bench::quiet_log(&settings.log));
            if bench::run(settings, args).await? {
                Ok(())
            } else {
                anyhow::bail!("an invariant was violated (see the summary above)")
            }
        }
        Command::Token {
            sub,
            role,
            accounts,
            ttl_s,
        } => {
            let keys = AuthKeys::from_secret(settings.auth.jwt_secret.expose_secret().as_bytes());
            let ttl_s = ttl_s.unwrap_or(settings.auth.token_ttl_s_default);
            let now_s = surge_actors::engine::system_clock_ms() / 1000;
            let claims = Claims {
                sub,
                exp: now_s + ttl_s,
                role: match role {
                    RoleArg::Client => Role::Client,
                    RoleArg::Operator => Role::Operator,
                },
                accounts,
            };
            println!("{}", keys.mint(&claims)?);
            Ok(())
        }
    }
}
