//! JWT verification with public keys: each algorithm, rotation through the key
//! files, and every refusal, all with the one detail that tells a forger
//! nothing. Keys are the test-only pairs of `tests/fixtures/jwt/`.

use std::path::{Path, PathBuf};
use surge::api::auth::{AuthKeys, Claims, Role, SigningKey, TokenPolicy};
use surge::api::jwt_keys::{PublicKeys, KEY_FILES_CHECK_EVERY_MS};

const SECRET: &[u8] = b"a-shared-secret-for-hs256-tests";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn signer(name: &str) -> SigningKey {
    SigningKey::from_pem(&std::fs::read(fixture(name)).expect("fixture")).expect("a private key")
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn claims(exp_in_s: i64) -> Claims {
    Claims {
        sub: "alice".into(),
        exp: (now_s() as i64 + exp_in_s) as u64,
        role: Role::Client,
        accounts: None,
    }
}

fn keys(pem: Option<&Path>, jwks: Option<&Path>, policy: TokenPolicy) -> AuthKeys {
    let public = PublicKeys::open(pem, jwks).expect("the key files read");
    AuthKeys::new(SECRET, public, policy)
}

fn jwks(name: &str) -> AuthKeys {
    keys(None, Some(&fixture(name)), TokenPolicy::default())
}

/// A token refused, with the one detail every refusal gets.
fn assert_refused(keys: &AuthKeys, token: &str) {
    let problem = keys.verify(token).expect_err("the token is refused");
    assert_eq!(problem.status, 401);
    assert_eq!(problem.code, "unauthorized");
    assert_eq!(
        problem.detail,
        "the bearer token is malformed, expired, not yet valid, or not signed by a trusted key"
    );
}

#[test]
fn rs256_es256_and_eddsa_tokens_verify_with_their_jwks_keys() {
    let keys = jwks("jwks-1.json");
    for (key, kid) in [
        ("rsa-1.key", "rsa-1"),
        ("ec-1.key", "ec-1"),
        ("ed-1.key", "ed-1"),
    ] {
        let token = signer(key)
            .mint(&claims(600), Some(kid), None, None)
            .expect("token");
        let verified = keys.verify(&token).expect("verifies");
        assert_eq!(verified.sub, "alice");
    }
}

#[test]
fn tokens_without_a_kid_verify_with_the_keys_of_a_pem_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pem = dir.path().join("keys.pem");
    let mut text = String::new();
    for name in ["rsa-1.pub", "ec-1.pub", "ed-1.pub"] {
        text.push_str(&std::fs::read_to_string(fixture(name)).expect("fixture"));
    }
    std::fs::write(&pem, text).expect("write");
    let keys = keys(Some(&pem), None, TokenPolicy::default());
    for key in ["rsa-1.key", "ec-1.key", "ed-1.key"] {
        let token = signer(key)
            .mint(&claims(600), None, None, None)
            .expect("token");
        keys.verify(&token).expect("verifies");
    }
}

#[test]
fn a_token_signed_by_an_unknown_key_or_naming_another_kid_is_refused() {
    let keys = jwks("jwks-1.json");
    let stranger = signer("rsa-2.key");
    assert_refused(
        &keys,
        &stranger
            .mint(&claims(600), Some("rsa-1"), None, None)
            .unwrap(),
    );
    assert_refused(
        &keys,
        &stranger.mint(&claims(600), None, None, None).unwrap(),
    );
    // The right key under another key's kid is refused too.
    let rsa = signer("rsa-1.key");
    assert_refused(
        &keys,
        &rsa.mint(&claims(600), Some("ec-1"), None, None).unwrap(),
    );
    assert_refused(
        &keys,
        &rsa.mint(&claims(600), Some("nobody"), None, None).unwrap(),
    );
}

#[test]
fn hs256_is_refused_once_public_keys_are_configured_unless_allowed() {
    let hs256 = SigningKey::from_secret(SECRET)
        .mint(&claims(600), None, None, None)
        .unwrap();
    assert!(AuthKeys::from_secret(SECRET).verify(&hs256).is_ok());
    assert_refused(&jwks("jwks-1.json"), &hs256);
    let allowing = keys(
        None,
        Some(&fixture("jwks-1.json")),
        TokenPolicy {
            allow_hs256: true,
            ..TokenPolicy::default()
        },
    );
    assert!(allowing.verify(&hs256).is_ok());
}

#[test]
fn algorithm_confusion_and_alg_none_are_refused() {
    // An HS256 token whose "secret" is the RSA public key's PEM: what a forger
    // can make from what is public.
    let public_pem = std::fs::read(fixture("rsa-1.pub")).expect("fixture");
    let confused = SigningKey::from_secret(&public_pem)
        .mint(&claims(600), Some("rsa-1"), None, None)
        .unwrap();
    let keys = keys(
        None,
        Some(&fixture("jwks-1.json")),
        TokenPolicy {
            allow_hs256: true,
            ..TokenPolicy::default()
        },
    );
    assert_refused(&keys, &confused);
    // alg "none": a header and claims with no signature.
    let b64 = |json: &str| base64url(json.as_bytes());
    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&format!(
            r#"{{"sub":"alice","exp":{},"role":"operator"}}"#,
            now_s() + 600
        ))
    );
    assert_refused(&keys, &none);
    assert_refused(&keys, "not.a.token");
}

#[test]
fn expiry_and_nbf_are_checked_within_the_leeway() {
    let policy = TokenPolicy {
        leeway_s: 30,
        ..TokenPolicy::default()
    };
    let keys = keys(None, Some(&fixture("jwks-1.json")), policy);
    let rsa = signer("rsa-1.key");
    assert!(keys
        .verify(&rsa.mint(&claims(-10), Some("rsa-1"), None, None).unwrap())
        .is_ok());
    assert_refused(
        &keys,
        &rsa.mint(&claims(-120), Some("rsa-1"), None, None).unwrap(),
    );
    // nbf: an RS256 token not valid for another two minutes.
    let not_yet = rsa_with_extra(&format!(r#""nbf":{}"#, now_s() + 120));
    assert_refused(&keys, &not_yet);
    let soon = rsa_with_extra(&format!(r#""nbf":{}"#, now_s() + 10));
    assert!(keys.verify(&soon).is_ok(), "within the leeway");
}

/// An RS256 token (kid rsa-1) with extra claims, signed with jsonwebtoken
/// directly.
fn rsa_with_extra(extra: &str) -> String {
    let json = format!(
        r#"{{"sub":"alice","exp":{},"role":"client",{extra}}}"#,
        now_s() + 600
    );
    let claims: serde_json::Value = serde_json::from_str(&json).expect("json");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa-1.key")).unwrap())
            .expect("key");
    jsonwebtoken::encode(&header, &claims, &key).expect("token")
}

#[test]
fn issuer_and_audience_are_required_when_configured() {
    let policy = TokenPolicy {
        issuer: Some("https://id.example".into()),
        audience: Some("surge".into()),
        ..TokenPolicy::default()
    };
    let keys = keys(None, Some(&fixture("jwks-1.json")), policy);
    let ed = signer("ed-1.key");
    let mint = |iss: Option<&str>, aud: Option<&str>| {
        ed.mint(&claims(600), Some("ed-1"), iss, aud).unwrap()
    };
    assert!(keys
        .verify(&mint(Some("https://id.example"), Some("surge")))
        .is_ok());
    assert_refused(&keys, &mint(None, Some("surge")));
    assert_refused(&keys, &mint(Some("https://id.example"), None));
    assert_refused(&keys, &mint(Some("https://evil.example"), Some("surge")));
    assert_refused(&keys, &mint(Some("https://id.example"), Some("other")));
}

#[test]
fn keys_rotate_through_the_jwks_file_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("jwks.json");
    let install = |name: &str| {
        // Written beside and renamed, as a deployment would, so that a reader
        // never sees half a file.
        let staged = dir.path().join("jwks.json.new");
        std::fs::copy(fixture(name), &staged).expect("copy");
        std::fs::rename(&staged, &path).expect("rename");
    };
    install("jwks-1.json");
    let keys = keys(None, Some(&path), TokenPolicy::default());
    let old = signer("rsa-1.key")
        .mint(&claims(600), Some("rsa-1"), None, None)
        .unwrap();
    let new = signer("rsa-2.key")
        .mint(&claims(600), Some("rsa-2"), None, None)
        .unwrap();
    assert!(keys.verify(&old).is_ok());
    assert_refused(&keys, &new);
    let reread = || {
        std::thread::sleep(std::time::Duration::from_millis(
            KEY_FILES_CHECK_EVERY_MS + 50,
        ))
    };
    // The overlap: both keys published, both tokens valid.
    install("jwks-rotating.json");
    reread();
    assert!(
        keys.verify(&old).is_ok(),
        "the old key still verifies during the overlap"
    );
    assert!(
        keys.verify(&new).is_ok(),
        "the new key verifies once published"
    );
    // The old key withdrawn: its tokens go at once, even one verified before.
    install("jwks-2.json");
    reread();
    assert_refused(&keys, &old);
    assert!(keys.verify(&new).is_ok());
    // A broken file keeps the keys read before.
    std::fs::write(&path, "{ not json").expect("write");
    reread();
    assert!(keys.verify(&new).is_ok());
}

#[test]
fn a_key_file_that_does_not_read_is_a_startup_error_naming_it() {
    let missing = fixture("no-such-file.json");
    let error = PublicKeys::open(None, Some(&missing))
        .err()
        .expect("refused");
    assert!(
        format!("{error:#}").contains("no-such-file.json"),
        "{error:#}"
    );
    let private = fixture("rsa-1.key");
    let error = PublicKeys::open(Some(&private), None)
        .err()
        .expect("refused");
    assert!(format!("{error:#}").contains("rsa-1.key"), "{error:#}");
}

/// Unpadded base64url, as JWTs encode their parts.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

#[test]
fn the_test_encoder_is_base64url() {
    assert_eq!(base64url(b"hello"), "aGVsbG8");
    assert_eq!(base64url(b"{\"alg\":\"none\"}"), "eyJhbGciOiJub25lIn0");
}

#[test]
fn surge_token_signs_with_a_private_key_file() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_surge"))
        .args([
            "token", "--sub", "ops", "--role", "operator", "--kid", "ec-1",
        ])
        .arg("--private-key")
        .arg(fixture("ec-1.key"))
        .args(["--issuer", "https://id.example", "--audience", "surge"])
        .env("SURGE_ENVIRONMENT", "development")
        .output()
        .expect("surge token runs");
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).expect("utf-8");
    let keys = keys(
        None,
        Some(&fixture("jwks-1.json")),
        TokenPolicy {
            issuer: Some("https://id.example".into()),
            audience: Some("surge".into()),
            ..TokenPolicy::default()
        },
    );
    let claims = keys.verify(token.trim()).expect("verifies");
    assert_eq!((claims.sub.as_str(), claims.role), ("ops", Role::Operator));
}
