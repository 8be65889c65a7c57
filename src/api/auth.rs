//! Bearer JWT authentication and the caller's roles and account scope. Tokens
//! are verified with public keys (RS256, ES256, EdDSA: see `jwt_keys`) once
//! they are configured, and with the shared HS256 secret otherwise (or also,
//! when `auth.allow_hs256` says so).

use super::jwt_keys::{PublicKeys, PUBLIC_KEY_ALGORITHMS};
use super::problem::Problem;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use dashmap::DashMap;
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};
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

/// What a token must say beyond its signature (`auth.*`).
#[derive(Debug, Clone, Default)]
pub struct TokenPolicy {
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud` (one of the token's), when set.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_s: u64,
    /// Whether HS256 tokens are still taken once public keys are configured.
    pub allow_hs256: bool,
}

/// The one answer to every token that does not verify: which check failed is
/// logged (at debug), never told, so that a forger learns nothing.
const TOKEN_REFUSED: &str =
    "the bearer token is malformed, expired, not yet valid, or not signed by a trusted key";

/// Keys for signing and checking tokens.
#[derive(Clone)]
pub struct AuthKeys {
    /// The shared secret: what `surge token` signs with when no private key
    /// is given, and what HS256 tokens are checked with.
    encoding: EncodingKey,
    secret: DecodingKey,
    public: Option<Arc<PublicKeys>>,
    policy: TokenPolicy,
    /// Tokens whose signature and claims were checked, with their claims and the
    /// key files' generation then: a client sends the same token with every
    /// request, and redoing the signature check and the JSON decoding each time
    /// was ~2% of the machine at 30k requests/s. A token that verified once
    /// verifies again as long as the keys are the same; its expiry is checked
    /// on every use, and a reload of the key files checks it again in full (its
    /// key may be gone).
    verified: Arc<DashMap<Box<str>, (Claims, u64)>>,
}

impl AuthKeys {
    /// The shared secret alone, as in development and tests.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self::new(secret, None, TokenPolicy::default())
    }

    pub fn new(secret: &[u8], public: Option<PublicKeys>, policy: TokenPolicy) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            secret: DecodingKey::from_secret(secret),
            public: public.map(Arc::new),
            policy,
            verified: Arc::default(),
        }
    }

    /// A token signed with the shared secret (HS256).
    pub fn mint(&self, claims: &Claims) -> anyhow::Result<String> {
        Ok(encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.encoding,
        )?)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, Problem> {
        let generation = self.public.as_ref().map_or(0, |public| {
            public.current();
            public.generation()
        });
        if let Some(entry) = self.verified.get(token) {
            let (claims, verified_in) = entry.value();
            if *verified_in == generation
                && claims.exp.saturating_add(self.policy.leeway_s) >= now_s()
            {
                return Ok(claims.clone());
            }
        }
        // Unknown, expired since, or verified with keys since re-read.
        self.verified.remove(token);
        let claims = self.verify_uncached(token).map_err(|reason| {
            tracing::debug!(%reason, "bearer token refused");
            Problem::unauthorized(TOKEN_REFUSED)
        })?;
        if self.verified.len() >= VERIFIED_TOKENS_MAX {
            self.verified.clear();
        }
        self.verified
            .insert(token.into(), (claims.clone(), generation));
        Ok(claims)
    }

    /// The claims of a token that verifies, or why it does not (for the log).
    fn verify_uncached(&self, token: &str) -> Result<Claims, String> {
        let header = decode_header(token).map_err(|error| format!("header: {error}"))?;
        let validation = self.validation(header.alg);
        let decoded = match header.alg {
            Algorithm::HS256 if self.public.is_none() || self.policy.allow_hs256 => {
                decode::<Claims>(token, &self.secret, &validation)
            }
            Algorithm::HS256 => {
                return Err("HS256 is refused once public keys are configured".into())
            }
            alg if PUBLIC_KEY_ALGORITHMS.contains(&alg) => {
                let public = self
                    .public
                    .as_ref()
                    .ok_or_else(|| format!("{alg:?} needs a public key; none is configured"))?;
                let keys = public.current();
                // A token with a `kid` is checked with that key alone; one without,
                // with every key of its algorithm.
                let mut candidates = keys.iter().filter(|key| {
                    key.algorithm == alg
                        && (header.kid.is_none() || key.kid.as_deref() == header.kid.as_deref())
                });
                let first = candidates
                    .next()
                    .ok_or_else(|| format!("no {alg:?} key with kid {:?}", header.kid))?;
                let mut decoded = decode::<Claims>(token, &first.key, &validation);
                for key in candidates {
                    if decoded.is_ok() {
                        break;
                    }
                    decoded = decode::<Claims>(token, &key.key, &validation);
                }
                decoded
            }
            alg => return Err(format!("{alg:?} is not accepted")),
        };
        decoded
            .map(|data| data.claims)
            .map_err(|error| error.to_string())
    }

    /// The checks every token passes: `exp` and `sub` always, `nbf` when
    /// present, `iss` and `aud` when configured, within the leeway.
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = self.policy.leeway_s;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.policy.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.policy.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

/// What `surge token` signs with: the shared secret (HS256), or a private key,
/// a PKCS#8 PEM file of an RSA (RS256), P-256 (ES256) or Ed25519 (EdDSA) key.
pub struct SigningKey {
    pub algorithm: Algorithm,
    key: EncodingKey,
}

impl SigningKey {
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            algorithm: Algorithm::HS256,
            key: EncodingKey::from_secret(secret),
        }
    }

    pub fn from_pem(pem: &[u8]) -> anyhow::Result<Self> {
        let (algorithm, key) = if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
            (Algorithm::RS256, key)
        } else if let Ok(key) = EncodingKey::from_ec_pem(pem) {
            (Algorithm::ES256, key)
        } else if let Ok(key) = EncodingKey::from_ed_pem(pem) {
            (Algorithm::EdDSA, key)
        } else {
            anyhow::bail!("not an RSA, P-256 or Ed25519 private key in PKCS#8 PEM")
        };
        Ok(Self { algorithm, key })
    }

    /// A token for `claims`, naming `kid` and carrying `iss` and `aud` when given.
    pub fn mint(
        &self,
        claims: &Claims,
        kid: Option<&str>,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> anyhow::Result<String> {
        #[derive(Serialize)]
        struct Minted<'a> {
            #[serde(flatten)]
            claims: &'a Claims,
            #[serde(skip_serializing_if = "Option::is_none")]
            iss: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            aud: Option<&'a str>,
        }
        let mut header = Header::new(self.algorithm);
        header.kid = kid.map(str::to_owned);
        let minted = Minted {
            claims,
            iss: issuer,
            aud: audience,
        };
        Ok(encode(&header, &minted, &self.key)?)
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

/// Counts a refused authentication in the audit trail, under the subject the
/// token claims (unverified: a label, never trusted) or `-`.
fn note_refused(request: &HttpRequest, token: Option<&str>) {
    let Some(state) = request.app_data::<web::Data<super::ApiState>>() else {
        return;
    };
    let claimed = token.and_then(claimed_subject);
    state.audit.note_refused(claimed.as_deref().unwrap_or("-"));
}

/// The `sub` a token's payload claims, read without any check.
fn claimed_subject(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64url_decode(payload)?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("sub")?.as_str().map(str::to_owned)
}

/// Unpadded base64url, as JWT parts are; `None` for anything else.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        bits = bits << 6 | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
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
    /// Ready at once unless the rate limit is shared through Redis: no
    /// allocation per request for the common case.
    type Future = futures::future::Either<
        std::future::Ready<Result<Caller, Problem>>,
        futures::future::LocalBoxFuture<'static, Result<Caller, Problem>>,
    >;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verified = (|| {
            let keys = request
                .app_data::<web::Data<AuthKeys>>()
                .ok_or_else(|| Problem::unauthorized("authentication is not configured"))?;
            let token = bearer(request).inspect_err(|_| note_refused(request, None))?;
            keys.verify(&token)
                .inspect_err(|_| note_refused(request, Some(&token)))
        })();
        let limiter = request
            .app_data::<web::Data<crate::rate_limit::RateLimiter>>()
            .cloned();
        use futures::future::Either;
        let claims = match verified {
            Ok(claims) => claims,
            Err(problem) => return Either::Left(std::future::ready(Err(problem))),
        };
        match limiter {
            Some(limiter) if limiter.is_shared() => Either::Right(Box::pin(async move {
                let verdict = limiter.check(&claims.sub).await;
                admit(claims, verdict)
            })),
            Some(limiter) => {
                let verdict = limiter.check_local(&claims.sub);
                Either::Left(std::future::ready(admit(claims, verdict)))
            }
            None => Either::Left(std::future::ready(admit(claims, Ok(())))),
        }
    }
}

/// The caller, or 429 when the rate limit says so.
fn admit(
    claims: Claims,
    verdict: Result<(), crate::rate_limit::Limited>,
) -> Result<Caller, Problem> {
    if let Err(limited) = verdict {
        let mut problem = Problem::new(
            429,
            "rate_limited",
            "Too many requests",
            format!("the rate limit of {} is exhausted", claims.sub),
        );
        problem.retry_after_s = Some(limited.retry_after_s);
        problem.rate_limit_burst = Some(limited.burst);
        return Err(problem);
    }
    Ok(Caller {
        sub: claims.sub,
        role: claims.role,
        accounts: claims.accounts,
    })
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
            .insert(token.as_str().into(), (claims(now_s() - 5), 0));
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
