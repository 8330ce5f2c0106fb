//! `GET /api/search?q=&limit=&cursor=&solutionType=`: full-text search over the caller's own
//! conversation titles and messages ([`crate::search`]). An array of hits, best first; the next
//! page's cursor in `x-next-cursor` (like the other listings).
//!
//! A hit's `snippet` is plain text, never markup: a client renders it as text and marks
//! `highlights`, `[start, end)` ranges in UTF-16 code units (JavaScript string indices), e.g.
//! `snippet.slice(start, end)` inside a `<mark>` element built with `textContent`.

use http::{Response, StatusCode};
use serde::Serialize;

use super::error::ApiError;
use super::{json, with_cursor, ApiRequest, Body, Caller};
use crate::domain::{text, ts, Timestamp};
use crate::error::ValidationError;
use crate::search::{Matched, SearchHit, SearchRequest, MAX_HITS};

/// One hit as sent.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HitView<'a> {
    conversation_id: &'a str,
    conversation_title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(with = "ts")]
    created_at: Timestamp,
    matched_in: &'static str,
    snippet: &'a str,
    highlights: Vec<[usize; 2]>,
}

impl<'a> From<&'a SearchHit> for HitView<'a> {
    fn from(h: &'a SearchHit) -> Self {
        Self {
            conversation_id: h.conversation.id.as_str(),
            conversation_title: &h.conversation.title,
            message_id: h.message_id.as_ref().map(|m| m.as_str()),
            role: h.role.map(|r| r.as_str()),
            created_at: h.created_at,
            matched_in: match h.matched {
                Matched::Title => "title",
                Matched::Message => "message",
            },
            snippet: &h.snippet.text,
            highlights: h.snippet.highlights.iter().map(|&(a, b)| [a, b]).collect(),
        }
    }
}

/// The search: 200 with the hits; 400 (`VALIDATION`, field `q`) for a missing, empty, too long or
/// invalid query, a bad `limit` (1-20), `solutionType` or `cursor`.
pub async fn search(state: &super::AppState, caller: &Caller, req: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let q = req.query_param("q").unwrap_or_default();
    let terms = text::query_terms(q).map_err(|e| ValidationError::field("q", e.to_string()))?;
    let solution = super::input::solution_filter(req)?;
    let limit = match req.query_param("limit") {
        None => None,
        Some(raw) => Some(
            raw.parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_HITS).contains(n))
                .ok_or_else(|| ValidationError::field("limit", format!("must be an integer from 1 to {MAX_HITS}")))?,
        ),
    };
    let request = SearchRequest {
        terms,
        solution,
        limit,
        cursor: super::input::cursor(req)?,
    };
    let page = crate::search::search(state.store.as_ref(), &caller.user, &request).await?;
    let views: Vec<HitView<'_>> = page.items.iter().map(HitView::from).collect();
    Ok(with_cursor(json(StatusCode::OK, &views)?, page.next_cursor))
}
