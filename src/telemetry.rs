//! Structured logs with `tracing`: human-readable by default, JSON by setting.

use crate::configuration::{LogFormat, LogSettings};
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.level.clone()));
    let result = match settings.format {
        LogFormat::Json => fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .try_init(),
        LogFormat::Human => fmt().with_env_filter(filter).try_init(),
    };
    // Already installed (several apps in one test process): keep the first.
    let _ = result;
}
