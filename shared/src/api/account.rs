//! `/api/account`: a user's data as a whole. `DELETE /api/account?confirm=true` erases every item
//! of the caller in every table (and the objects of their files).

use std::sync::Arc;

use http::{Response, StatusCode};
use serde::Serialize;

use super::error::ApiError;
use super::{input, json, ApiRequest, AppState, Body, Caller};
use crate::domain::UserId;
use crate::error::ValidationError;

/// What `DELETE /api/account` answers.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErasedView {
    success: bool,
    conversations: u64,
    files: u64,
    items: u64,
    /// The pseudonymous id the erasure is audited under.
    audit_id: String,
}

/// The id an erasure is audited under: a hash of the user id in its own domain (not the
/// analytics hash), so the record proves to someone who knows the id that it was erased, and
/// names no one to anyone else.
pub fn erasure_id(user: &UserId) -> Result<UserId, ApiError> {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("athena-erasure\0{user}").as_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    UserId::parse(&format!("erased-{hex}")).map_err(|e| ApiError::Internal(Some(Box::new(e))))
}

/// `DELETE /api/account?confirm=true`: the objects of the caller's files first, then every item of
/// the caller in every table (`Accounts::erase_user`). Audited once, under [`erasure_id`], after
/// the erasure (so the entry is the one thing left, and it does not name the user). Repeating it
/// erases nothing more and answers the same way with zero counts.
pub async fn erase(state: &Arc<AppState>, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    if input::flag(req, "confirm")? != Some(true) {
        return Err(ValidationError::field(
            "confirm",
            "erasing every conversation, file and record of the account cannot be undone: send confirm=true",
        )
        .into());
    }
    let files = crate::files::delete_all_objects(state, &caller.user).await?;
    crate::import::jobs::delete_all_objects(state, &caller.user).await?;
    // Their reactions in conversations others shared with them live in those owners' data: found
    // through their grants, before the grants go.
    let grantees = caller.grantees();
    let mut reactions = 0u64;
    for grant in state.store.shared_with(&grantees).await? {
        let (owner, id) = (&grant.owner, &grant.conversation_id);
        for r in state.store.reactions(owner, id, &caller.user).await? {
            state
                .store
                .delete_reaction(owner, id, &r.message_id, &caller.user)
                .await?;
            reactions += 1;
        }
    }
    let mut erased = state.store.erase_user(&caller.user, state.now()).await?;
    // What others shared with them (what they shared went with their conversations).
    erased.items += reactions + state.store.erase_grants(&grantees).await?;
    let audit_id = erasure_id(&caller.user)?;
    let entry = crate::audit::entry_at(
        &state.ids,
        &audit_id,
        crate::audit::action::ACCOUNT_ERASE,
        None,
        "ok",
        Some(&req.request_id),
        state.config.audit_retention_days,
        state.now(),
    );
    crate::audit::record(state.store.as_ref(), &[entry]).await;
    tracing::info!(conversations = erased.conversations, files, items = erased.items, audit_id = %audit_id, "account data erased");
    json(
        StatusCode::OK,
        &ErasedView {
            success: true,
            conversations: erased.conversations,
            files: files as u64,
            items: erased.items,
            audit_id: audit_id.to_string(),
        },
    )
}
