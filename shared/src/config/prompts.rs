//! The deployment's shared prompts (`ATHENA_SHARED_PROMPTS`): read-only saved prompts every user
//! sees beside their own. A JSON array; each prompt:
//!
//! ```json
//! [{"id": "shared-mtbf", "title": "MTBF of a machine", "text": "Compute the MTBF of {{machine}}.", "tags": ["maintenance"]}]
//! ```
//!
//! `id` (1 to 64 of `[A-Za-z0-9_-]`, unique), `title` and `text` are required, `tags` optional;
//! the same bounds as a user's prompts apply. A shared prompt's id wins over a user's prompt of
//! the same id (users' prompt ids are server-made ULIDs, so a readable id never collides).

use serde::Deserialize;

use super::{ConfigError, Env};
use crate::domain::{PromptId, SavedPrompt};

/// One shared prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedPrompt {
    /// Its id.
    pub id: PromptId,
    /// Its title.
    pub title: String,
    /// Its text, with `{{variables}}`.
    pub text: String,
    /// Its tags.
    pub tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    id: String,
    title: String,
    text: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// Reads `ATHENA_SHARED_PROMPTS` (unset or blank: none).
pub fn read(env: &Env<'_>) -> Result<Vec<SharedPrompt>, ConfigError> {
    match env.text("ATHENA_SHARED_PROMPTS") {
        None => Ok(Vec::new()),
        Some(raw) => parse(&raw),
    }
}

/// Parses the JSON of `ATHENA_SHARED_PROMPTS`.
pub fn parse(raw: &str) -> Result<Vec<SharedPrompt>, ConfigError> {
    let bad = |what: String| ConfigError(format!("ATHENA_SHARED_PROMPTS: {what}"));
    let raws: Vec<Raw> = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
    let mut out: Vec<SharedPrompt> = Vec::with_capacity(raws.len());
    for (i, r) in raws.into_iter().enumerate() {
        let at = |e: crate::error::ValidationError| bad(format!("prompt {i}: {e}"));
        let id = PromptId::parse(&r.id).map_err(at)?;
        if out.iter().any(|p| p.id == id) {
            return Err(bad(format!("prompt {i}: the id {id} is repeated")));
        }
        out.push(SharedPrompt {
            id,
            title: SavedPrompt::parse_title(&r.title).map_err(at)?,
            text: SavedPrompt::parse_text(&r.text).map_err(at)?,
            tags: SavedPrompt::parse_tags(&r.tags).map_err(at)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_prompts_parse_with_the_user_prompts_bounds() {
        let ok = parse(r#"[{"id": "shared-mtbf", "title": " MTBF ", "text": "Of {{m}}", "tags": ["Maint"]}]"#);
        let ok = ok.ok().unwrap_or_default();
        assert_eq!(
            (ok[0].title.as_str(), ok[0].tags.clone()),
            ("MTBF", vec!["maint".to_owned()])
        );
        assert!(parse(r#"[{"id": "a b", "title": "t", "text": "x"}]"#).is_err());
        assert!(parse(r#"[{"id": "a", "title": "t", "text": "x"}, {"id": "a", "title": "u", "text": "y"}]"#).is_err());
        assert!(parse(r#"[{"id": "a", "title": "t", "text": "x", "extra": 1}]"#).is_err());
        assert!(parse("{").is_err());
    }
}
