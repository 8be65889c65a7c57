//! `surge`: parse the command line, load settings, run.

use anyhow::Context as _;
use clap::Parser;
use secrecy::ExposeSecret;
use surge::api::auth::{Claims, Role, SigningKey};
#[cfg(feature = "bench")]
use surge::bench;
use surge::cli::{AuditCommand, Cli, Command, RoleArg};
use surge::{configuration, startup, storage, telemetry};

/// glibc's allocator took about a tenth of the CPU under load (perf: `_int_malloc`,
/// `malloc_consolidate`, `cfree` across the HTTP workers and shard threads, which
/// allocate on one thread and free on another); mimalloc's per-thread heaps do not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its index in mimalloc v3's `mi_option_t`;
/// libmimalloc-sys names it only for v2).
const MIMALLOC_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory in the process instead of handing it back to the OS a second
/// after its last use (mimalloc's default), unless `MIMALLOC_PURGE_DELAY` (or its
/// older name `MIMALLOC_RESET_DELAY`) says otherwise. Memory given back is faulted in again, zeroed, when the next burst
/// needs it: on this machine that cost 8-12% of the CPU of a flash sale at a fixed
/// 20k orders/s (20.3-20.6 s against 21.7-24.0 s). The price is that the process
/// keeps its peak size (a snapshot's copy and encoding included) instead of shrinking
/// after it, which for a server holding its state in memory is the smaller cost.
#[expect(unsafe_code, reason = "mimalloc's option setter is an FFI call")]
fn keep_freed_memory() {
    let configured = ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if !configured {
        // SAFETY: sets one integer option; called before any other thread exists,
        // as mimalloc asks of its option setters.
        unsafe { libmimalloc_sys::mi_option_set(MIMALLOC_OPTION_PURGE_DELAY, -1) };
    }
}

fn main() -> anyhow::Result<()> {
    keep_freed_memory();
    run()
}

#[actix_web::main]
async fn run() -> anyhow::Result<()> {
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
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let options = startup::storage_options(&settings);
            storage::migrate(&options).await?;
            let db = storage::audit::AuditDb::open(
                &options.url,
                std::time::Duration::from_millis(options.timeout_ms),
            )
            .await?;
            let rows = db.all().await?;
            match storage::audit::verify(&rows) {
                Ok(count) => {
                    println!("audit trail intact: {count} rows, the chain unbroken");
                    Ok(())
                }
                Err(broken) => anyhow::bail!("audit trail broken: {broken}"),
            }
        }
        #[cfg(feature = "bench")]
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
            private_key,
            kid,
            issuer,
            audience,
        } => {
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
            let issuer = issuer.or_else(|| settings.auth.issuer().map(str::to_owned));
            let audience = audience.or_else(|| settings.auth.audience().map(str::to_owned));
            let key = match private_key {
                Some(path) => {
                    let pem = std::fs::read(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    SigningKey::from_pem(&pem)
                        .with_context(|| format!("the private key {}", path.display()))?
                }
                None => {
                    SigningKey::from_secret(settings.auth.jwt_secret.expose_secret().as_bytes())
                }
            };
            let token = key.mint(
                &claims,
                kid.as_deref(),
                issuer.as_deref(),
                audience.as_deref(),
            )?;
            println!("{token}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option index is not named by libmimalloc-sys for mimalloc v3, so check
    /// it against what only the purge delay looks like: its default of 1000 ms,
    /// unless overridden from the environment. A libmimalloc-sys upgrade that
    /// reorders mimalloc's options fails here instead of setting another option.
    #[test]
    #[expect(unsafe_code, reason = "mimalloc's option getter is an FFI call")]
    fn the_purge_delay_option_index_names_mimallocs_purge_delay() {
        // SAFETY: reads one integer option.
        let value = unsafe { libmimalloc_sys::mi_option_get(MIMALLOC_OPTION_PURGE_DELAY) };
        match std::env::var("MIMALLOC_PURGE_DELAY") {
            Ok(set) => assert_eq!(value.to_string(), set),
            Err(_) => assert_eq!(value, 1000, "mimalloc's default purge delay"),
        }
    }
}
