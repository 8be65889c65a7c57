//! `Idempotency-Key`: validated, scoped to the caller, and turned into the
//! operation's id, so that the dedup record lives on the operation's shard.

use super::problem::Problem;
use actix_web::HttpRequest;

/// API.md: 1–255 printable ASCII characters.
pub const IDEMPOTENCY_KEY_LENGTH_MAX: usize = 255;

/// The id derived from the request's `Idempotency-Key`, if it has one. `scope`
/// names the kind of operation, so the same key on two endpoints means two
/// operations rather than a conflict between unrelated requests.
pub fn key_id(request: &HttpRequest, sub: &str, scope: &str) -> Result<Option<String>, Problem> {
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
    Ok(Some(format!("k{digest:032x}")))
}
