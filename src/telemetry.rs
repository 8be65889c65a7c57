//! Structured logs with `tracing`: human-readable by default, JSON by setting.
//! Logs go to standard output, in colour only when that is a terminal.

use crate::configuration::{LogFormat, LogSettings};
use std::io::IsTerminal as _;
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.level.clone()));
    // `fmt()` writes to stdout; a file or a pipe gets no terminal colour codes.
    let ansi = std::io::stdout().is_terminal();
    let result = match settings.format {
        LogFormat::Json => fmt()
            .json()
            .with_ansi(ansi)
            .with_env_filter(filter)
            .with_current_span(false)
            .try_init(),
        LogFormat::Human => fmt().with_ansi(ansi).with_env_filter(filter).try_init(),
    };
    // Already installed (several apps in one test process): keep the first.
    let _ = result;
}

/// The span every HTTP request runs in. Unlike tracing-actix-web's default it
/// records the path without the query string: WebSocket clients may send their
/// bearer token as `?access_token=`, and a token must never reach the logs.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        tracing::info_span!(
            "http",
            method = %request.method(),
            path = %request.path(),
            status = tracing::field::Empty,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        let (status, error, code) = match outcome {
            Ok(response) => (
                response.response().status(),
                response.response().error(),
                response
                    .response()
                    .extensions()
                    .get::<crate::api::problem::ProblemCode>()
                    .map(|code| code.0),
            ),
            Err(error) => (error.as_response_error().status_code(), Some(error), None),
        };
        span.record("status", status.as_u16());
        // A client's mistake is not the server's: debug, with its code. A
        // server error is an error, with what caused it.
        let code = code.or_else(|| {
            error
                .and_then(|e| e.as_error::<crate::api::problem::Problem>())
                .map(|problem| problem.code)
        });
        if status.is_server_error() {
            let cause = error.map(|e| e.to_string()).unwrap_or_default();
            tracing::error!(parent: &span, status = status.as_u16(), code, %cause, "request failed");
        } else if status.is_client_error() {
            tracing::debug!(parent: &span, status = status.as_u16(), code, "client error");
        }
    }
}
