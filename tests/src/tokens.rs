//! Bearer tokens for a gateway that verifies JWTs itself: HS256 tokens signed with the shared test
//! secret for [`ISSUER`] and [`AUDIENCE`], the verifier that accepts them, and requests sent with
//! them.

use std::sync::Arc;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use shared::auth::JwtVerifier;
use shared::config::{AuthMode, Config};

use crate::{Reply, TestApp};

/// The HS256 secret the test tokens are signed with.
pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
/// The issuer the test tokens name.
pub const ISSUER: &str = "https://issuer.test";
/// The audience the test tokens name.
pub const AUDIENCE: &str = "athena-web";

/// Now, in seconds since the epoch (the clock token times are read against).
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Valid claims for `sub`: from [`ISSUER`] to [`AUDIENCE`], issued now, expiring in ten minutes.
pub fn claims(sub: &str) -> Value {
    let now = unix_now();
    json!({"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "iat": now})
}

/// `claims` signed with HS256 and `secret`.
pub fn hs256(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

/// A valid token for `sub` (its [`claims`] signed with [`SECRET`]).
pub fn token(sub: &str) -> String {
    hs256(&claims(sub), SECRET)
}

/// The verifier that accepts the test tokens.
pub fn verifier() -> JwtVerifier {
    JwtVerifier::hs256(SECRET, ISSUER, AUDIENCE)
}

/// The local configuration, authenticating bearer tokens with `verifier`.
pub fn jwt_config(verifier: JwtVerifier) -> Config {
    let mut config = Config::local();
    config.auth = AuthMode::Jwt(Arc::new(verifier));
    config
}

/// Sends a request (JSON body optional) with `token` as its bearer token; checks the response
/// against `docs/openapi.yaml`.
pub async fn with_bearer(app: &TestApp, token: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
    let mut req = app
        .client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            format!("{}{path}", app.base),
        )
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    app.send(req).await
}

/// Sends a request as user `sub`, with a fresh valid [`token`].
pub async fn as_user(app: &TestApp, sub: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
    with_bearer(app, &token(sub), method, path, body).await
}
