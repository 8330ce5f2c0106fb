//! The `Idempotency-Key` request header on the create routes (`POST /api/conversations`,
//! `POST /api/conversations/{id}/messages`, `POST /api/projects`, `POST /api/prompts`,
//! `POST /api/prompts/{id}/conversations`, `POST /api/files`), as Stripe and the IETF draft "The Idempotency-Key
//! HTTP Header Field" define it. [`once`] wraps a handler:
//!
//! - no header: the handler runs, and the store is not called for idempotency at all;
//! - a key (1 to 255 printable ASCII characters, else `400 VALIDATION`) is reserved for the
//!   caller before the handler runs (one conditional write). The request's fingerprint is a
//!   SHA-256 of its method, path and body bytes, so the same key on another route or with another
//!   body is `422 IDEMPOTENCY_KEY_REUSED`; a key whose first request is still running is
//!   `409 IDEMPOTENCY_KEY_IN_PROGRESS` (with `Retry-After`), so two concurrent retries never do
//!   the work twice;
//! - a 2xx response is saved (status, body, `location`) and replayed for 24 hours to the same
//!   request with the same key, marked `idempotent-replayed: true`, without running the handler;
//! - any other outcome (a 4xx or 5xx, an error) releases the key: errors are not saved, and the
//!   client may retry with the same key. So is a response too large to save
//!   ([`MAX_SAVED_RESPONSE_BYTES`]). A request that never finishes (the process died) holds its
//!   key for [`IDEMPOTENCY_LEASE_SECS`].
//!
//! Keys are scoped per user: another user's identical key is a different record.

use std::future::Future;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::{full, ApiRequest, AppState, Body, Caller};
use crate::error::{StoreError, ValidationError};
#[cfg(doc)]
use crate::store::rules::{IDEMPOTENCY_LEASE_SECS, MAX_SAVED_RESPONSE_BYTES};
use crate::store::{HeldKey, Idempotency, Reservation, SavedResponse};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The response header marking a replayed response.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest key accepted, in characters.
pub const MAX_KEY_CHARS: usize = 255;

/// Runs `work` (a create handler's future, not yet polled) at most once per caller and
/// `Idempotency-Key`; see the module documentation.
pub async fn once<F>(state: &AppState, caller: &Caller, req: &ApiRequest, work: F) -> Result<Response<Body>, ApiError>
where
    F: Future<Output = Result<Response<Body>, ApiError>>,
{
    let Some(key) = key(req)? else {
        return work.await;
    };
    let store: &dyn Idempotency = state.store.as_ref();
    let held = match store
        .reserve_key(&caller.user, key, &fingerprint(req), state.now())
        .await?
    {
        Reservation::Reserved(held) => held,
        Reservation::Replay(saved) => return replay(saved),
        Reservation::Mismatch => return Err(ApiError::IdempotencyKeyReused),
        Reservation::InProgress => return Err(ApiError::IdempotencyKeyInProgress),
    };
    match work.await {
        Ok(response) if response.status().is_success() => Ok(save(state, store, &held, response).await),
        other => {
            release(store, &held).await;
            other
        }
    }
}

/// The request's key, if it sent one: one header of 1 to 255 printable ASCII characters.
fn key(req: &ApiRequest) -> Result<Option<&str>, ApiError> {
    let mut values = req.headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = |message: &str| ApiError::from(ValidationError::field("Idempotency-Key", message));
    if values.next().is_some() {
        return Err(invalid("send one Idempotency-Key header, not several"));
    }
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=MAX_KEY_CHARS).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
    key.map(Some)
        .ok_or_else(|| invalid("must be 1 to 255 printable ASCII characters"))
}

/// SHA-256 of the method, the path and the body bytes, hex: what "the same request" means.
fn fingerprint(req: &ApiRequest) -> String {
    let mut hash = Sha256::new();
    hash.update(req.method.as_str().as_bytes());
    hash.update(b"\n");
    hash.update(req.path.as_bytes());
    hash.update(b"\n");
    hash.update(&req.body);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Saves a successful response under the held key and returns it. The work is done, so a failed
/// save is logged and the response still sent (the key then frees itself when its lease ends);
/// a response too large to save, or not UTF-8, releases the key.
async fn save(state: &AppState, store: &dyn Idempotency, held: &HeldKey, response: Response<Body>) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let bytes: Bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let saved = String::from_utf8(bytes.to_vec()).ok().map(|body| SavedResponse {
        status: parts.status.as_u16(),
        body,
        location: parts
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    match saved {
        Some(saved) => match store.complete_key(held, &saved, state.now()).await {
            Ok(()) => {}
            Err(StoreError::TooLarge(_)) => release(store, held).await,
            Err(e) => tracing::warn!(error = %super::error::error_chain(&e), "saving an idempotent response failed"),
        },
        None => release(store, held).await,
    }
    Response::from_parts(parts, full(bytes))
}

/// Releases a held key; a failure is logged (the key frees itself when its lease ends).
async fn release(store: &dyn Idempotency, held: &HeldKey) {
    if let Err(e) = store.release_key(held).await {
        tracing::warn!(error = %super::error::error_chain(&e), "releasing an idempotency key failed");
    }
}

/// The saved response again, marked `idempotent-replayed: true`.
fn replay(saved: SavedResponse) -> Result<Response<Body>, ApiError> {
    let status = StatusCode::from_u16(saved.status).map_err(|e| ApiError::Internal(Some(Box::new(e))))?;
    let mut response = Response::new(full(saved.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    if let Some(location) = saved.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &[u8])], body: &str) -> ApiRequest {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (
                http::header::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                map.append(name, value);
            }
        }
        ApiRequest {
            method: http::Method::POST,
            path: "/api/conversations".to_owned(),
            query: Vec::new(),
            headers: map,
            body: Bytes::from(body.to_owned()),
            request_id: "r".to_owned(),
            claims: None,
            any_content_type: false,
        }
    }

    #[test]
    fn keys_are_one_header_of_printable_ascii_up_to_255_characters() {
        assert_eq!(key(&request(&[], "")).ok().flatten(), None);
        let ok = request(&[(HEADER, b"a key/with:punctuation~1")], "");
        assert_eq!(key(&ok).ok().flatten(), Some("a key/with:punctuation~1"));
        let longest = "k".repeat(255);
        assert!(key(&request(&[(HEADER, longest.as_bytes())], "")).is_ok());
        let too_long = "k".repeat(256);
        for bad in [too_long.as_bytes(), b"", b"tab\there", "é".as_bytes()] {
            let err = key(&request(&[(HEADER, bad)], "")).err();
            assert!(
                matches!(&err, Some(ApiError::Validation(v)) if v.fields[0].field == "Idempotency-Key"),
                "{bad:?}: {err:?}"
            );
        }
        assert!(key(&request(&[(HEADER, b"a"), (HEADER, b"b")], "")).is_err());
    }

    #[test]
    fn the_fingerprint_covers_the_path_and_the_body_bytes() {
        let a = fingerprint(&request(&[], "{\"title\":\"a\"}"));
        assert_eq!(a.len(), 64);
        assert_eq!(a, fingerprint(&request(&[(HEADER, b"k")], "{\"title\":\"a\"}")));
        assert_ne!(a, fingerprint(&request(&[], "{\"title\":\"b\"}")));
        let mut elsewhere = request(&[], "{\"title\":\"a\"}");
        elsewhere.path = "/api/conversations/c/messages".to_owned();
        assert_ne!(a, fingerprint(&elsewhere));
    }
}
