//! Bearer JWT authentication (HS256) and the caller's roles and account scope.

use super::problem::Problem;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use dashmap::DashMap;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::future::{ready, Ready};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Client,
    Operator,
}

/// The token's claims (docs/API.md: `sub`, `exp`, `role`, optional `accounts`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<String>>,
}

/// Most verified tokens remembered; past it the memory starts over (a limit on
/// everything: a flood of distinct valid tokens cannot grow it without bound).
pub const VERIFIED_TOKENS_MAX: usize = 16_384;

/// Keys for signing and checking tokens.
#[derive(Clone)]
pub struct AuthKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Tokens whose signature and claims were checked, with their claims: a client
    /// sends the same token with every request, and redoing the HMAC and the JSON
    /// decoding each time was ~2% of the machine at 30k requests/s. The signing key
    /// never changes while the process runs, so a token that verified once always
    /// will; only its expiry is checked again on every use.
    verified: Arc<DashMap<Box<str>, Claims>>,
}

impl AuthKeys {
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            verified: Arc::default(),
        }
    }

    pub fn mint(&self, claims: &Claims) -> anyhow::Result<String> {
        Ok(encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.encoding,
        )?)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, Problem> {
        if let Some(claims) = self.verified.get(token) {
            if claims.exp >= now_s() {
                return Ok(claims.clone());
            }
        }
        // Unknown, or expired since (the full check below says which error).
        self.verified.remove(token);
        let claims = self.verify_uncached(token)?;
        if self.verified.len() >= VERIFIED_TOKENS_MAX {
            self.verified.clear();
        }
        self.verified.insert(token.into(), claims.clone());
        Ok(claims)
    }

    fn verify_uncached(&self, token: &str) -> Result<Claims, Problem> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|error| Problem::unauthorized(format!("invalid token: {error}")))
    }
}

/// Seconds since the Unix epoch, as `exp` counts them.
fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub sub: String,
    pub role: Role,
    pub accounts: Option<Vec<String>>,
}

impl Caller {
    pub fn require_operator(&self) -> Result<(), Problem> {
        match self.role {
            Role::Operator => Ok(()),
            Role::Client => Err(Problem::forbidden("this endpoint is for operators")),
        }
    }

    /// Whether the caller may act on and read this account.
    pub fn may_use_account(&self, account: &str) -> bool {
        self.role == Role::Operator
            || self
                .accounts
                .as_ref()
                .is_none_or(|accounts| accounts.iter().any(|a| a == account))
    }

    pub fn require_account(&self, account: &str) -> Result<(), Problem> {
        if self.may_use_account(account) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "this token may not act on account {account}"
            )))
        }
    }
}

/// The bearer token of a request: the `Authorization` header or, for WebSocket
/// clients that cannot set headers, the `access_token` query parameter.
fn bearer(request: &HttpRequest) -> Result<String, Problem> {
    if let Some(value) = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
    {
        let value = value
            .to_str()
            .map_err(|_| Problem::unauthorized("malformed Authorization header"))?;
        let token = value
            .strip_prefix("Bearer ")
            .ok_or_else(|| Problem::unauthorized("expected 'Authorization: Bearer <token>'"))?;
        return Ok(token.trim().to_owned());
    }
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(request.query_string())
            .ok();
    query
        .and_then(|q| q.get("access_token").cloned())
        .ok_or_else(|| Problem::unauthorized("missing bearer token"))
}

impl FromRequest for Caller {
    type Error = Problem;
    type Future = Ready<Result<Caller, Problem>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = (|| {
            let keys = request
                .app_data::<web::Data<AuthKeys>>()
                .ok_or_else(|| Problem::unauthorized("authentication is not configured"))?;
            let claims = keys.verify(&bearer(request)?)?;
            if let Some(limiter) = request.app_data::<web::Data<crate::rate_limit::RateLimiter>>() {
                if let Err(retry_after_s) = limiter.check(&claims.sub) {
                    let mut problem = Problem::new(
                        429,
                        "rate_limited",
                        "Too many requests",
                        format!("the rate limit of {} is exhausted", claims.sub),
                    );
                    problem.retry_after_s = Some(retry_after_s);
                    return Err(problem);
                }
            }
            Ok(Caller {
                sub: claims.sub,
                role: claims.role,
                accounts: claims.accounts,
            })
        })();
        ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "alice".into(),
            exp,
            role: Role::Client,
            accounts: Some(vec!["acct-1".into()]),
        }
    }

    #[test]
    fn a_remembered_token_gives_the_same_claims_as_its_first_check() {
        let keys = AuthKeys::from_secret(b"a-secret-long-enough-for-hs256");
        let token = keys.mint(&claims(now_s() + 600)).expect("token");
        let first = keys.verify(&token).expect("valid token");
        let again = keys.verify(&token).expect("still valid");
        assert_eq!(keys.verified.len(), 1);
        assert_eq!(again.sub, first.sub);
        assert_eq!(again.accounts, first.accounts);
    }

    #[test]
    fn a_remembered_token_is_refused_once_it_has_expired() {
        let keys = AuthKeys::from_secret(b"a-secret-long-enough-for-hs256");
        let token = keys.mint(&claims(now_s() - 5)).expect("token");
        // As if it had been checked while still valid.
        keys.verified
            .insert(token.as_str().into(), claims(now_s() - 5));
        let error = keys.verify(&token).expect_err("expired");
        assert_eq!(error.status, 401);
        assert!(keys.verified.is_empty());
    }

    #[test]
    fn a_token_signed_with_another_key_is_never_remembered() {
        let keys = AuthKeys::from_secret(b"a-secret-long-enough-for-hs256");
        let other = AuthKeys::from_secret(b"another-secret-entirely-123456");
        let token = other.mint(&claims(now_s() + 600)).expect("token");
        assert!(keys.verify(&token).is_err());
        assert!(keys.verified.is_empty());
    }
}
