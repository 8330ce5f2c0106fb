//! Verifying bearer JWTs inside the function (`ATHENA_AUTH=jwt`), for function URLs and the
//! local gateway, where no API Gateway authorizer stands in front. Uses `jsonwebtoken`.
//!
//! - RS256/ES256 (and RS384/RS512/ES384/PS256) with the issuer's JWKS (`ATHENA_JWKS_URL`:
//!   Cognito, WorkOS, any OIDC issuer). Keys are cached for 10 minutes; a token signed with an
//!   unknown `kid` triggers one refetch (at most every 30 s), so key rotation needs no restart.
//! - HS256 with a shared secret (`ATHENA_JWT_SECRET`, at least 32 bytes).
//!
//! Always checked: signature, `alg` from the allowed set for the key type (`none` never parses),
//! `iss` = `ATHENA_JWT_ISSUER`, `aud` contains `ATHENA_JWT_AUDIENCE`, `exp`, `nbf` and `iat` when
//! present (30 s leeway each; `jsonwebtoken` does not look at `iat`, so it is checked here: a token
//! issued in the future is refused), and a `sub`. Tokens are never logged.

use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::sync::RwLock;

/// How long fetched keys are trusted before a refetch.
const JWKS_TTL: Duration = Duration::from_secs(600);
/// Least time between two refetches caused by unknown key ids.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 30;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("a bearer token is required")]
    Missing,
    /// Not a JWT, or a header/claim that does not parse.
    #[error("the token is malformed")]
    Malformed,
    /// `alg` not allowed for this deployment (including `none`).
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// No key verifies it.
    #[error("the token's signature is invalid")]
    Signature,
    /// `exp` passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` in the future (beyond the leeway).
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// Wrong `iss`.
    #[error("the token was issued by another issuer")]
    Issuer,
    /// Wrong `aud`.
    #[error("the token is meant for another audience")]
    Audience,
    /// No usable `sub`.
    #[error("the token has no usable subject")]
    Subject,
    /// The JWKS could not be fetched (a server-side problem, not the caller's).
    #[error("the issuer's keys could not be fetched: {0}")]
    KeysUnavailable(String),
}

enum Keys {
    Secret(DecodingKey),
    Jwks {
        url: String,
        http: reqwest::Client,
        cache: RwLock<JwksCache>,
        min_refresh: Duration,
    },
}

#[derive(Default)]
struct JwksCache {
    set: Option<JwkSet>,
    fetched: Option<Instant>,
}

/// Verifies bearer tokens for one issuer and audience.
pub struct JwtVerifier {
    issuer: String,
    audience: String,
    keys: Keys,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = match &self.keys {
            Keys::Secret(_) => "HS256 secret".to_owned(),
            Keys::Jwks { url, .. } => format!("JWKS {url}"),
        };
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("keys", &keys)
            .finish()
    }
}

impl JwtVerifier {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8], issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            keys: Keys::Secret(DecodingKey::from_secret(secret)),
        }
    }

    /// Asymmetric keys from a JWKS URL.
    pub fn jwks(url: impl Into<String>, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self::jwks_with_refresh(url, issuer, audience, JWKS_MIN_REFRESH)
    }

    /// Like [`JwtVerifier::jwks`], with another least interval between refetches for unknown key ids.
    pub fn jwks_with_refresh(
        url: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        min_refresh: Duration,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            keys: Keys::Jwks {
                url: url.into(),
                http: crate::http::client(Some(Duration::from_secs(5))),
                cache: RwLock::new(JwksCache::default()),
                min_refresh,
            },
        }
    }

    /// Verifies a token; returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Map<String, Value>, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        let key = match &self.keys {
            Keys::Secret(key) => {
                if header.alg != Algorithm::HS256 {
                    return Err(AuthError::Algorithm);
                }
                key.clone()
            }
            Keys::Jwks {
                url,
                http,
                cache,
                min_refresh,
            } => {
                if !matches!(
                    header.alg,
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::ES256
                        | Algorithm::ES384
                        | Algorithm::PS256
                ) {
                    return Err(AuthError::Algorithm);
                }
                let kid = header.kid.clone().ok_or(AuthError::Malformed)?;
                jwks_key(url, http, cache, *min_refresh, &kid, header.alg).await?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_audience(&[self.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::Issuer,
            ErrorKind::InvalidAudience => AuthError::Audience,
            ErrorKind::InvalidSignature => AuthError::Signature,
            ErrorKind::InvalidAlgorithm => AuthError::Algorithm,
            ErrorKind::MissingRequiredClaim(claim) if claim == "sub" => AuthError::Subject,
            _ => AuthError::Malformed,
        })?;
        check_issued_at(&data.claims, unix_now())?;
        Ok(data.claims)
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it, which only makes checks stricter).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `iat`, when present, must be a number of seconds no later than `now` plus the leeway.
fn check_issued_at(claims: &Map<String, Value>, now: u64) -> Result<(), AuthError> {
    let Some(iat) = claims.get("iat") else {
        return Ok(());
    };
    let iat = iat.as_f64().filter(|t| t.is_finite()).ok_or(AuthError::Malformed)?;
    if iat > now.saturating_add(LEEWAY_SECS) as f64 {
        return Err(AuthError::IssuedInFuture);
    }
    Ok(())
}

async fn jwks_key(
    url: &str,
    http: &reqwest::Client,
    cache: &RwLock<JwksCache>,
    min_refresh: Duration,
    kid: &str,
    alg: Algorithm,
) -> Result<DecodingKey, AuthError> {
    let lookup = |set: &JwkSet| -> Option<Result<DecodingKey, AuthError>> {
        let jwk = set.find(kid)?;
        if let Some(key_alg) = jwk.common.key_algorithm {
            if format!("{key_alg:?}") != format!("{alg:?}") {
                return Some(Err(AuthError::Algorithm));
            }
        }
        Some(DecodingKey::from_jwk(jwk).map_err(|_| AuthError::Signature))
    };
    {
        let cached = cache.read().await;
        let fresh = cached.fetched.is_some_and(|t| t.elapsed() < JWKS_TTL);
        if let (true, Some(set)) = (fresh, &cached.set) {
            if let Some(found) = lookup(set) {
                return found;
            }
            // Unknown kid on a fresh set: refetch only if the last fetch is old enough.
            if cached.fetched.is_some_and(|t| t.elapsed() < min_refresh) {
                return Err(AuthError::Signature);
            }
        }
    }
    let mut cached = cache.write().await;
    // Another request may have refreshed while we waited.
    let recent = cached.fetched.is_some_and(|t| t.elapsed() < min_refresh)
        && cached.set.as_ref().is_some_and(|set| set.find(kid).is_some());
    if !recent {
        let set: JwkSet = http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| AuthError::KeysUnavailable(e.to_string()))?
            .json()
            .await
            .map_err(|e| AuthError::KeysUnavailable(format!("unreadable JWKS: {e}")))?;
        cached.set = Some(set);
        cached.fetched = Some(Instant::now());
    }
    cached
        .set
        .as_ref()
        .and_then(lookup)
        .unwrap_or(Err(AuthError::Signature))
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn token(claims: Value, secret: &[u8]) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap_or_default()
    }

    #[tokio::test]
    async fn hs256_tokens_are_checked_for_signature_issuer_audience_and_time() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let v = JwtVerifier::hs256(secret, "iss", "aud");
        let good = json!({"sub": "alice", "iss": "iss", "aud": "aud", "exp": now() + 60});
        assert_eq!(
            v.verify(&token(good.clone(), secret)).await.map(|c| c["sub"].clone()),
            Ok(json!("alice"))
        );
        let mut bad = good.clone();
        bad["exp"] = json!(now() - 3600);
        assert_eq!(v.verify(&token(bad, secret)).await, Err(AuthError::Expired));
        let mut bad = good.clone();
        bad["nbf"] = json!(now() + 3600);
        assert_eq!(v.verify(&token(bad, secret)).await, Err(AuthError::NotYetValid));
        let mut bad = good.clone();
        bad["iss"] = json!("evil");
        assert_eq!(v.verify(&token(bad, secret)).await, Err(AuthError::Issuer));
        let mut bad = good.clone();
        bad["aud"] = json!("other");
        assert_eq!(v.verify(&token(bad, secret)).await, Err(AuthError::Audience));
        assert_eq!(
            v.verify(&token(good.clone(), b"another secret of thirty-two b!")).await,
            Err(AuthError::Signature)
        );
        let mut bad = good;
        bad.as_object_mut().map(|o| o.remove("sub"));
        assert_eq!(v.verify(&token(bad, secret)).await, Err(AuthError::Subject));
    }

    #[tokio::test]
    async fn a_token_issued_in_the_future_is_refused_beyond_the_leeway() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let v = JwtVerifier::hs256(secret, "iss", "aud");
        let claims = |iat: Value| json!({"sub": "alice", "iss": "iss", "aud": "aud", "exp": now() + 7200, "iat": iat});
        assert_eq!(
            v.verify(&token(claims(json!(now() + 3600)), secret)).await,
            Err(AuthError::IssuedInFuture)
        );
        // Within the leeway (clock skew), now, and in the past are accepted.
        for iat in [now() + LEEWAY_SECS / 2, now(), now() - 3600] {
            assert!(v.verify(&token(claims(json!(iat)), secret)).await.is_ok(), "iat {iat}");
        }
        assert_eq!(
            v.verify(&token(claims(json!("tomorrow")), secret)).await,
            Err(AuthError::Malformed)
        );
        // The boundary itself, on a fixed clock.
        let at = |iat: u64| {
            let mut m = Map::new();
            m.insert("iat".to_owned(), json!(iat));
            check_issued_at(&m, 1_000)
        };
        assert_eq!(at(1_000 + LEEWAY_SECS), Ok(()));
        assert_eq!(at(1_001 + LEEWAY_SECS), Err(AuthError::IssuedInFuture));
        assert_eq!(check_issued_at(&Map::new(), 1_000), Ok(()));
    }

    #[tokio::test]
    async fn unsigned_and_garbage_tokens_are_refused() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let v = JwtVerifier::hs256(b"0123456789abcdef0123456789abcdef", "iss", "aud");
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"a","iss":"iss","aud":"aud","exp":{}}}"#, now() + 60));
        assert!(v.verify(&format!("{header}.{claims}.")).await.is_err());
        assert_eq!(v.verify("not.a.jwt").await, Err(AuthError::Malformed));
        assert_eq!(bearer(Some("Basic abc")), Err(AuthError::Missing));
        assert_eq!(bearer(Some("Bearer  tok ")), Ok("tok"));
        assert_eq!(bearer(None), Err(AuthError::Missing));
    }
}
