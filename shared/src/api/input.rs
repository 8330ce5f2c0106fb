//! Parsing request input strictly: JSON bodies (content type, UTF-8, unknown fields, types, with
//! the failing field's path), ids, page sizes and message contents.

use http::header;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::ApiRequest;
use crate::domain::ConversationId;
use crate::error::ValidationError;
use crate::store::MAX_PAGE;

/// Parses the path's `{id}`.
pub fn conversation_id(raw: Option<&str>) -> Result<ConversationId, ApiError> {
    let raw = raw.unwrap_or_default();
    let decoded = percent_decode(raw);
    ConversationId::parse(&decoded).map_err(ApiError::from)
}

/// Parses a message id path segment (`{messageId}`).
pub fn message_id(raw: Option<&str>) -> Result<crate::domain::MessageId, ApiError> {
    let decoded = percent_decode(raw.unwrap_or_default());
    crate::domain::MessageId::parse(&decoded).map_err(|_| {
        crate::error::ValidationError::field("messageId", "must be 1 to 64 characters of letters, digits, '_' or '-'")
            .into()
    })
}

fn percent_decode(raw: &str) -> String {
    if !raw.contains('%') {
        return raw.to_owned();
    }
    // Reuse the form decoder for percent-escapes; '+' is not special in paths.
    let escaped = raw.replace('+', "%2B");
    form_urlencoded::parse(format!("x={escaped}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Whether a content type is JSON (`application/json`, `application/*+json`, with parameters).
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Refuses a body that does not say it is JSON (415), unless the request is a bearer-token (or
/// local) one, whose body is JSON whatever its content type says.
pub fn json_content_type(req: &ApiRequest) -> Result<(), ApiError> {
    match req.headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?")) {
        Some(ct) if is_json(ct) => Ok(()),
        _ if req.any_content_type => Ok(()),
        Some(ct) => Err(ApiError::UnsupportedMediaType(format!(
            "content-type must be application/json, not {ct}"
        ))),
        None => Err(ApiError::UnsupportedMediaType(
            "content-type must be application/json".to_owned(),
        )),
    }
}

/// Parses a JSON body into `T`. An empty body with no content type parses as `{}` when
/// `empty_ok`. Refuses: non-JSON content types (415), invalid UTF-8 or JSON, unknown fields,
/// wrong types, duplicate keys (400, naming the field).
pub fn json_body<T: DeserializeOwned>(req: &ApiRequest, empty_ok: bool) -> Result<T, ApiError> {
    let content_type = req.headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?"));
    let bytes: &[u8] = if req.body.iter().all(u8::is_ascii_whitespace) {
        if empty_ok && content_type.is_none_or(is_json) {
            b"{}"
        } else {
            return Err(ValidationError::body("a JSON body is required").into());
        }
    } else {
        json_content_type(req)?;
        &req.body
    };
    let text = std::str::from_utf8(bytes).map_err(|_| ValidationError::body("the body is not valid UTF-8"))?;
    // serde reads a struct from an array positionally; a body is an object or nothing.
    if !text.trim_start().starts_with('{') {
        return Err(ValidationError::body("the body must be a JSON object").into());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = clean_serde_message(&inner);
        // serde names a missing field only in its message, at the path of the enclosing object.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            let full = if path == "." {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            };
            return ValidationError::field(full, "is required");
        }
        if inner.is_syntax() || inner.is_eof() || path == "." {
            ValidationError::body(format!("the body is not a valid JSON object: {message}"))
        } else {
            ValidationError::field(path, message)
        }
    })?;
    de.end()
        .map_err(|_| ValidationError::body("the body has trailing characters after the JSON value"))?;
    Ok(value)
}

/// serde's message without its " at line L column C" suffix.
fn clean_serde_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(i) => full[..i].to_owned(),
        None => full,
    }
}

/// Parses `limit`: 1..=100.
pub fn limit(req: &ApiRequest) -> Result<Option<u32>, ApiError> {
    match req.query_param("limit") {
        None => Ok(None),
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .map(Some)
            .ok_or_else(|| ValidationError::field("limit", format!("must be an integer from 1 to {MAX_PAGE}")).into()),
    }
}

/// Parses a boolean query parameter `name`: `true` or `false`.
pub fn flag(req: &ApiRequest, name: &str) -> Result<Option<bool>, ApiError> {
    match req.query_param(name) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ValidationError::field(name, "must be true or false").into()),
    }
}

/// Parses `solutionType` (a listing's or a search's filter): `general` or a solution.
pub fn solution_filter(req: &ApiRequest) -> Result<Option<crate::domain::SolutionFilter>, ApiError> {
    req.query_param("solutionType")
        .map(crate::domain::SolutionFilter::parse)
        .transpose()
        .map_err(|_| {
            ValidationError::field(
                "solutionType",
                "must be general or one of manufacturing, maintenance, support, change-management, impact-analysis, requirements",
            )
            .into()
        })
}

/// Parses `cursor`: opaque, bounded.
pub fn cursor(req: &ApiRequest) -> Result<Option<String>, ApiError> {
    match req.query_param("cursor") {
        None => Ok(None),
        Some(raw) if !raw.is_empty() && raw.len() <= 512 => Ok(Some(raw.to_owned())),
        Some(_) => Err(ValidationError::field("cursor", "is not a cursor this listing issued").into()),
    }
}

/// Checks a message text: not blank, at most `max_chars` characters, no control characters
/// other than tab, line feed and carriage return. The text is stored verbatim.
pub fn message_content(field: &str, text: &str, max_chars: usize) -> Result<(), ValidationError> {
    if text.trim().is_empty() {
        return Err(ValidationError::field(field, "must not be empty"));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(ValidationError::field(
            field,
            format!("must be at most {max_chars} characters (it has {chars})"),
        ));
    }
    if text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        return Err(ValidationError::field(
            field,
            "must not contain control characters other than tab and newline",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_are_checked_for_blankness_length_and_control_characters() {
        assert!(message_content("content", "hello\n\tworld\r\n", 100).is_ok());
        assert!(message_content("content", "  \n", 100).is_err());
        assert!(message_content("content", "a\u{0}b", 100).is_err());
        assert!(message_content("content", "a\u{1b}[31m", 100).is_err());
        assert!(message_content("content", &"é".repeat(10), 10).is_ok());
        assert!(message_content("content", &"é".repeat(11), 10).is_err());
    }

    #[test]
    fn percent_encoded_ids_are_decoded_before_validation() {
        assert!(conversation_id(Some("abc%2Fdef")).is_err());
        assert_eq!(
            conversation_id(Some("ab%2Dc")).map(|i| i.to_string()).ok(),
            Some("ab-c".to_owned())
        );
    }
}
