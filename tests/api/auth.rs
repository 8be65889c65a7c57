//! Public-key JWTs through the server: a JWKS-configured server takes RS256,
//! ES256 and EdDSA tokens, refuses HS256, and says nothing of why.

use crate::common::app::{spawn_app_with, TestApp};
use surge::api::auth::{Claims, Role, SigningKey};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn token(key: &str, kid: &str) -> String {
    let key = SigningKey::from_pem(&std::fs::read(fixture(key)).expect("fixture")).expect("key");
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = Claims {
        sub: "ops".into(),
        exp: now_s + 600,
        role: Role::Operator,
        accounts: None,
    };
    key.mint(
        &claims,
        Some(kid),
        Some("https://id.example"),
        Some("surge"),
    )
    .expect("token")
}

async fn jwks_app() -> TestApp {
    spawn_app_with(|settings| {
        settings.auth.jwks_path = fixture("jwks-1.json");
        settings.auth.issuer = "https://id.example".into();
        settings.auth.audience = "surge".into();
    })
    .await
}

#[actix_web::test]
async fn a_jwks_server_takes_public_key_tokens_and_refuses_hs256_alike_for_every_reason() {
    let app = jwks_app().await;
    for (key, kid) in [
        ("rsa-1.key", "rsa-1"),
        ("ec-1.key", "ec-1"),
        ("ed-1.key", "ed-1"),
    ] {
        let response = app.get_as(&token(key, kid), "/admin/shards").await;
        assert_eq!(response.status(), 200, "{kid}");
    }
    // The harness's operator token is HS256 with the shared secret; a token of
    // an unknown key; an expired one: the same 401, the same detail.
    let mut details = Vec::new();
    for refused in [
        app.operator.clone(),
        token("rsa-2.key", "rsa-1"),
        app.expired_token(),
    ] {
        let response = app.get_as(&refused, "/admin/shards").await;
        assert_eq!(response.status(), 401);
        let body: serde_json::Value = response.json().await.expect("problem+json");
        assert_eq!(body["code"], "unauthorized");
        details.push(body["detail"].as_str().expect("detail").to_owned());
    }
    details.dedup();
    assert_eq!(
        details.len(),
        1,
        "one detail for every refusal: {details:?}"
    );
}
