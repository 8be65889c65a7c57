//! `Idempotency-Key`: validated, scoped to the caller, and turned into the
//! operation's id, so that the dedup record lives on the operation's shard.

use super::problem::Problem;
use actix_web::HttpRequest;
use surge_actors::domain::IdError;

/// docs/API.md: 1–255 printable ASCII characters.
pub const IDEMPOTENCY_KEY_LENGTH_MAX: usize = 255;

/// The id derived from the request's `Idempotency-Key`, if it has one, as the id
/// type `parse` makes. `scope` names the kind of operation, so the same key on two
/// endpoints means two operations rather than a conflict between unrelated
/// requests.
pub fn key_id<T>(
    request: &HttpRequest,
    sub: &str,
    scope: &str,
    parse: fn(&str) -> Result<T, IdError>,
) -> Result<Option<T>, Problem> {
    let Some(value) = request.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = value.as_bytes();
    let printable = key.iter().all(|b| (0x20..=0x7e).contains(b));
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_LENGTH_MAX || !printable {
        return Err(Problem::invalid_request(
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
        )
        .with_param("Idempotency-Key"));
    }
    let mut material = Vec::with_capacity(sub.len() + scope.len() + key.len() + 2);
    material.extend_from_slice(sub.as_bytes());
    material.push(0);
    material.extend_from_slice(scope.as_bytes());
    material.push(0);
    material.extend_from_slice(key);
    // 128 bits: accidental collisions are out of reach, and a caller can only
    // collide with their own keys since `sub` is part of the input.
    let digest = xxhash_rust::xxh3::xxh3_128(&material);
    // "k" and 32 hex digits always match the id alphabet; parse checks anyway.
    parse(&format!("k{digest:032x}"))
        .map(Some)
        .map_err(|e| Problem::invalid_request(e.to_string()))
}
