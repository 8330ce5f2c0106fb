//! `GET /api/audit`: the caller's audit entries, newest first (`limit`, `cursor`); an admin may
//! pass `userId` to read another user's.

use http::{Response, StatusCode};

use super::error::ApiError;
use super::{input, json, with_cursor, ApiRequest, Body, Caller};
use crate::domain::UserId;
use crate::error::ValidationError;
use crate::store::{Activity, MAX_PAGE};

/// The audit list: an array of entries, newest first; the next page's cursor in `x-next-cursor`
/// (like the other listings).
pub async fn list(store: &dyn Activity, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let user = match req.query_param("userId") {
        None => caller.user.clone(),
        Some(raw) => {
            let user = UserId::parse(raw)
                .map_err(|_| ValidationError::field("userId", "must be 1 to 64 of letters, digits, '_' or '-'"))?;
            if user != caller.user && !caller.admin {
                return Err(ApiError::Forbidden(
                    "only administrators may read another user's audit log".to_owned(),
                ));
            }
            user
        }
    };
    let limit = input::limit(req)?.unwrap_or(MAX_PAGE);
    let cursor = input::cursor(req)?;
    let page = store.list_audit(&user, Some(limit), cursor.as_deref()).await?;
    Ok(with_cursor(json(StatusCode::OK, &page.items)?, page.next_cursor))
}
