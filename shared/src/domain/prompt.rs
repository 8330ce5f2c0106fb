//! Saved prompts (issue 17): a user's reusable prompt texts with `{{variables}}`, and the
//! deployment's shared ones (read-only, from `ATHENA_SHARED_PROMPTS`).

use serde::{Deserialize, Serialize};

use super::{PromptId, Timestamp, UserId};
use crate::error::{FieldError, ValidationError};

/// Longest prompt title (characters).
pub const MAX_PROMPT_TITLE_CHARS: usize = 200;
/// Longest prompt text (characters).
pub const MAX_PROMPT_TEXT_CHARS: usize = 20_000;
/// Most tags on one prompt.
pub const MAX_PROMPT_TAGS: usize = 10;
/// Longest tag (characters).
pub const MAX_TAG_CHARS: usize = 32;
/// Most saved prompts one user may have.
pub const MAX_PROMPTS_PER_USER: usize = 500;

/// A saved prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedPrompt {
    /// Its id.
    pub id: PromptId,
    /// Who owns it.
    pub owner: UserId,
    /// Its title.
    pub title: String,
    /// The text, with `{{variable}}` placeholders.
    pub text: String,
    /// Tags (lower case, distinct).
    pub tags: Vec<String>,
    /// When it was created.
    #[serde(with = "super::ts")]
    pub created_at: Timestamp,
    /// When it last changed.
    #[serde(with = "super::ts")]
    pub updated_at: Timestamp,
}

impl SavedPrompt {
    /// Checks a title: trimmed, 1..=200 characters, no control characters.
    pub fn parse_title(raw: &str) -> Result<String, ValidationError> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err(ValidationError::field("title", "must not be empty"));
        }
        if chars > MAX_PROMPT_TITLE_CHARS {
            return Err(ValidationError::field("title", "must be at most 200 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ValidationError::field("title", "must not contain control characters"));
        }
        Ok(trimmed.to_owned())
    }

    /// Checks a text: not blank, at most 20000 characters.
    pub fn parse_text(raw: &str) -> Result<String, ValidationError> {
        if raw.trim().is_empty() {
            return Err(ValidationError::field("text", "must not be blank"));
        }
        if raw.chars().count() > MAX_PROMPT_TEXT_CHARS {
            return Err(ValidationError::field("text", "must be at most 20000 characters"));
        }
        Ok(raw.to_owned())
    }

    /// Checks tags: at most 10, each 1..=32 characters of lower-case letters, digits, `-` or `_`
    /// (upper case is folded); duplicates are dropped.
    pub fn parse_tags(raw: &[String]) -> Result<Vec<String>, ValidationError> {
        if raw.len() > MAX_PROMPT_TAGS {
            return Err(ValidationError::field("tags", "must be at most 10 tags"));
        }
        let mut tags: Vec<String> = Vec::new();
        for tag in raw {
            // Checked as sent, then lowercased: lowercasing can add combining marks ('İ' becomes
            // 'i' and U+0307), which are not alphanumeric themselves.
            let trimmed = tag.trim();
            let ok = !trimmed.is_empty()
                && trimmed.chars().count() <= MAX_TAG_CHARS
                && trimmed.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_');
            let tag = trimmed.to_lowercase();
            if !ok {
                return Err(ValidationError::field(
                    "tags",
                    "each tag must be 1 to 32 letters, digits, '-' or '_'",
                ));
            }
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        Ok(tags)
    }
}

/// The names of the `{{variables}}` of a text, in order of first appearance (a name is letters,
/// digits, `_`, `-` or `.`, spaces around it allowed: `{{ machine }}`).
pub fn variables(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        if is_name(name) && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
        rest = &after[end + 2..];
    }
    names
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// `text` with every `{{name}}` replaced by `values[name]`. A variable without a value is a
/// validation error naming it (field `variables.<name>`); values for names the text does not
/// have are refused the same way, so a typo is not silently ignored.
pub fn fill(text: &str, values: &std::collections::BTreeMap<String, String>) -> Result<String, ValidationError> {
    let names = variables(text);
    let mut problems: Vec<FieldError> = names
        .iter()
        .filter(|n| !values.contains_key(*n))
        .map(|n| FieldError {
            field: format!("variables.{n}"),
            message: "is required by the prompt".to_owned(),
        })
        .collect();
    problems.extend(values.keys().filter(|k| !names.contains(k)).map(|k| FieldError {
        field: format!("variables.{k}"),
        message: "is not a variable of the prompt".to_owned(),
    }));
    if !problems.is_empty() {
        return Err(ValidationError::fields(problems));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        out.push_str(&rest[..start]);
        match values.get(name).filter(|_| is_name(name)) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_found_once_in_order_and_filled() {
        let text = "Why is {{ machine }} down since {{since}}? {{machine}} again. {{not a name}}";
        assert_eq!(variables(text), vec!["machine", "since"]);
        let values = [("machine", "PRESS-02"), ("since", "Monday")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(
            fill(text, &values).ok().as_deref(),
            Some("Why is PRESS-02 down since Monday? PRESS-02 again. {{not a name}}")
        );
        let missing = fill(text, &std::collections::BTreeMap::new()).expect_err("missing");
        assert_eq!(missing.fields.len(), 2);
        let mut extra = values_of(&[("machine", "a"), ("since", "b"), ("typo", "c")]);
        let err = fill(text, &extra).expect_err("extra");
        assert_eq!(err.fields[0].field, "variables.typo");
        extra.remove("typo");
        assert!(fill(text, &extra).is_ok());
    }

    fn values_of(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn tags_are_folded_deduplicated_and_bounded() {
        let tags = SavedPrompt::parse_tags(&["Maint".to_owned(), "maint".to_owned(), "mtbf".to_owned()]);
        assert_eq!(tags.ok(), Some(vec!["maint".to_owned(), "mtbf".to_owned()]));
        assert!(SavedPrompt::parse_tags(&["a b".to_owned()]).is_err());
        // A letter whose lowercase carries a combining mark is still a letter (schemathesis).
        assert!(SavedPrompt::parse_tags(&["ǗÈzƁİ".to_owned()]).is_ok());
        assert!(SavedPrompt::parse_tags(&vec!["t".to_owned(); 11]).is_err());
    }
}
