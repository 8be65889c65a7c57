//! Errors as `application/problem+json` (RFC 9457) with the codes of docs/API.md.

use super::dto::FieldError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use surge_actors::{EngineError, Rejection};
use utoipa::ToSchema;

/// Seconds a client should wait before retrying an overloaded or uncertain write.
pub const RETRY_AFTER_S: u64 = 1;

/// The body of every error response, as documented in the OpenAPI schema.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProblemDocument {
    /// `/errors/<code>`
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

/// An error answer: status, binding code, human detail, the field at fault.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: u16,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub param: Option<String>,
    pub retry_after_s: Option<u64>,
    pub replayed: bool,
    /// For a 429: the burst allowed, for the `RateLimit-*` headers.
    pub rate_limit_burst: Option<u32>,
}

impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ProblemDocument {
            kind: format!("/errors/{}", self.code),
            title: self.title.to_owned(),
            status: self.status,
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            param: self.param.clone(),
        }
        .serialize(serializer)
    }
}

impl Problem {
    pub fn new(
        status: u16,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            param: None,
            retry_after_s: None,
            rate_limit_burst: None,
            replayed: false,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", "The request is not valid", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", "Authentication required", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(403, "forbidden", "Not allowed", detail)
    }

    /// 503 `overloaded` with `Retry-After`, for limits outside the shards (feed
    /// connections).
    pub fn overloaded(detail: impl Into<String>) -> Self {
        let mut problem = Problem::new(503, "overloaded", "The server is overloaded", detail);
        problem.retry_after_s = Some(RETRY_AFTER_S);
        problem
    }

    pub fn rejection(rejection: Rejection, detail: impl Into<String>) -> Self {
        Self::new(
            rejection.http_status(),
            rejection.code(),
            rejection.title(),
            detail,
        )
    }

    pub fn replayed(mut self, replayed: bool) -> Self {
        self.replayed = replayed;
        self
    }

    pub fn response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut builder = HttpResponse::build(status);
        builder.extensions_mut().insert(ProblemCode(self.code));
        builder.content_type("application/problem+json");
        if let Some(seconds) = self.retry_after_s {
            builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if self.replayed {
            builder.insert_header(("Idempotent-Replayed", "true"));
        }
        if let (Some(burst), Some(reset)) = (self.rate_limit_burst, self.retry_after_s) {
            builder.insert_header(("RateLimit-Limit", burst.to_string()));
            builder.insert_header(("RateLimit-Remaining", "0"));
            builder.insert_header(("RateLimit-Reset", reset.to_string()));
        }
        builder.json(self)
    }
}

/// The `code` of a problem answer, kept on the response for the request log
/// (`crate::telemetry`).
#[derive(Debug, Clone, Copy)]
pub struct ProblemCode(pub &'static str);

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        self.response()
    }
}

impl From<FieldError> for Problem {
    fn from(error: FieldError) -> Self {
        Problem::invalid_request(error.detail).with_param(error.param)
    }
}

impl From<EngineError> for Problem {
    fn from(error: EngineError) -> Self {
        let mut problem = match error {
            EngineError::Overloaded => Problem::new(
                503,
                "overloaded",
                "The engine is overloaded",
                "the shard's queue is full or its requests wait past the queueing deadline; retry after the given delay",
            ),
            EngineError::Retry => Problem::new(
                503,
                "retry",
                "The outcome is unknown",
                "the write may or may not have happened; retrying with the same id or key is safe",
            ),
            EngineError::ShuttingDown => Problem::new(
                503,
                "shutting_down",
                "The engine is shutting down",
                "retry against another node or after the restart",
            ),
        };
        problem.retry_after_s = Some(RETRY_AFTER_S);
        problem
    }
}
