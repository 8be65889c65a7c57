//! Bearer tokens signed with a test's own secret.

use surge::api::auth::{AuthKeys, Claims, Role};

/// A token for `sub` with `role`, scoped to `accounts` (all when `None`), that
/// expires `ttl_s` seconds from now (in the past when negative).
pub fn mint(
    keys: &AuthKeys,
    sub: &str,
    role: Role,
    accounts: Option<Vec<&str>>,
    ttl_s: i64,
) -> String {
    let now = surge_actors::engine::system_clock_ms() as i64 / 1000;
    keys.mint(&Claims {
        sub: sub.into(),
        exp: (now + ttl_s).max(0) as u64,
        role,
        accounts: accounts.map(|a| a.into_iter().map(str::to_owned).collect()),
    })
    .expect("token mints")
}

/// An operator token for `sub`, signed with `secret`, valid for an hour.
pub fn operator_token(secret: &str, sub: &str) -> String {
    mint(
        &AuthKeys::from_secret(secret.as_bytes()),
        sub,
        Role::Operator,
        None,
        3600,
    )
}
