//! Exporting one conversation (`GET /api/conversations/{id}/export`): the rendering only, with no
//! store. Two formats:
//! - [`Format::Json`]: Athena's own versioned document (`athena.conversation`, version 1, see
//!   `docs/export.md`): the conversation's metadata and EVERY message of every branch, each with
//!   its resolved parent, its parts as stored, its usage; and the active leaf, so an import can
//!   restore the branch that was shown.
//! - [`Format::Markdown`]: a readable page of the active branch only (what the user sees), tool
//!   calls as short quoted lines and attachments as `📎` lines, with a footnote when other versions
//!   exist.

use serde::Serialize;

use crate::domain::{
    ts, Conversation, FinishReason, ImportSource, Message, MessagePart, ProjectId, Role, Solution, Timestamp, Tree,
    Usage,
};
use crate::error::ValidationError;

pub use crate::import::athena::{FORMAT_NAME, FORMAT_VERSION};
/// Longest tool input or output shown on a Markdown tool line, in characters.
const TOOL_LINE_CHARS: usize = 200;
/// Longest title kept in an export's file name, in characters.
const FILENAME_TITLE_CHARS: usize = 60;

/// What an export is rendered as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Athena's JSON document (the default).
    Json,
    /// A Markdown page of the active branch.
    Markdown,
}

impl Format {
    /// The `format` query parameter: absent means JSON.
    pub fn parse(raw: Option<&str>) -> Result<Self, ValidationError> {
        match raw {
            None | Some("json") => Ok(Format::Json),
            Some("markdown") => Ok(Format::Markdown),
            Some(_) => Err(ValidationError::field("format", "must be json or markdown")),
        }
    }

    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Markdown => "text/markdown; charset=utf-8",
        }
    }

    /// The file name's extension.
    fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Markdown => "md",
        }
    }
}

/// The `Content-Disposition` of an export: an attachment named [`file_name`]. The id is
/// already `[A-Za-z0-9_-]`, so the name needs no quoting rules beyond the quotes.
pub fn content_disposition(c: &Conversation, format: Format) -> String {
    format!("attachment; filename=\"{}\"", file_name(c, format))
}

/// An export's file name, `<safe title>-<id>.<ext>`, where the safe title keeps ASCII letters
/// and digits, turns every other run of characters into one `-`, is lowercased and cut to 60
/// characters (`conversation` when nothing is left). Unique per owner (the id is), and safe as
/// a path in a zip (no `/`, `\`, `..` or leading `.`).
pub fn file_name(c: &Conversation, format: Format) -> String {
    let mut safe = String::new();
    for ch in c.title.chars() {
        if ch.is_ascii_alphanumeric() {
            safe.push(ch.to_ascii_lowercase());
        } else if !safe.is_empty() && !safe.ends_with('-') {
            safe.push('-');
        }
        if safe.len() >= FILENAME_TITLE_CHARS {
            break;
        }
    }
    let safe = safe.trim_end_matches('-');
    let safe = if safe.is_empty() { "conversation" } else { safe };
    format!("{safe}-{}.{}", c.id.as_str(), format.extension())
}

/// The JSON export (`athena.conversation`, version 1).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationExport<'a> {
    format: &'static str,
    version: u32,
    #[serde(with = "ts")]
    exported_at: Timestamp,
    conversation: ConversationMeta<'a>,
    messages: Vec<ExportedMessage<'a>>,
}

/// The conversation's metadata in a JSON export.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConversationMeta<'a> {
    id: &'a str,
    title: &'a str,
    model: &'a str,
    solution_type: Option<Solution>,
    project_id: Option<&'a str>,
    is_pinned: bool,
    is_shared: bool,
    #[serde(with = "ts")]
    created_at: Timestamp,
    #[serde(with = "ts")]
    updated_at: Timestamp,
    message_count: usize,
    /// Where it was imported from (`null` when it was made here).
    imported_from: Option<ImportSource>,
    /// The last message of the branch shown (`null` without messages).
    active_leaf_id: Option<&'a str>,
}

/// One message in a JSON export: every field always present (`null` or `[]` when unset).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportedMessage<'a> {
    id: &'a str,
    /// Resolved: a message stored without a parent id follows the one before it.
    parent_id: Option<&'a str>,
    role: Role,
    content: &'a str,
    /// As stored: `text`, `tool-call`, `tool-result` and `file` parts.
    parts: &'a [MessagePart],
    model: Option<&'a str>,
    usage: Option<Usage>,
    latency_ms: Option<u64>,
    finish_reason: Option<FinishReason>,
    error: Option<&'a str>,
    #[serde(with = "ts")]
    created_at: Timestamp,
    client_id: Option<&'a str>,
}

impl<'a> ConversationExport<'a> {
    /// The export of `c` with `all` its messages (id order, as every store returns them).
    pub fn new(c: &'a Conversation, all: &'a [Message], exported_at: Timestamp) -> Self {
        let tree = Tree::new(all);
        let messages = all
            .iter()
            .enumerate()
            .map(|(i, m)| ExportedMessage {
                id: m.id.as_str(),
                parent_id: tree.parent(i).map(|p| all[p].id.as_str()),
                role: m.role,
                content: &m.content,
                parts: &m.parts,
                model: m.model.as_deref(),
                usage: m.usage,
                latency_ms: m.latency_ms,
                finish_reason: m.finish_reason,
                error: m.error.as_deref(),
                created_at: m.created_at,
                client_id: m.client_id.as_ref().map(|c| c.as_str()),
            })
            .collect();
        Self {
            format: FORMAT_NAME,
            version: FORMAT_VERSION,
            exported_at,
            conversation: ConversationMeta {
                id: c.id.as_str(),
                title: &c.title,
                model: &c.model,
                solution_type: c.solution_type,
                project_id: c.project_id.as_ref().map(ProjectId::as_str),
                is_pinned: c.is_pinned,
                is_shared: c.is_shared,
                created_at: c.created_at,
                updated_at: c.updated_at,
                message_count: all.len(),
                imported_from: c.imported_from,
                active_leaf_id: tree.leaf(c.active_leaf.as_ref()).map(|i| all[i].id.as_str()),
            },
            messages,
        }
    }
}

/// The Markdown export: the title, a metadata line, then the active branch's messages in order.
pub fn markdown(c: &Conversation, all: &[Message]) -> String {
    let tree = Tree::new(all);
    let path = tree.active_path(c.active_leaf.as_ref());
    let mut out = format!("# {}\n\n", one_line(&c.title));
    out.push_str(&format!(
        "Solution: {} · Model: {} · Created: {}\n",
        c.solution_type.map_or("general", Solution::as_str),
        c.model,
        c.created_at.format("%Y-%m-%d %H:%M UTC"),
    ));
    for &i in &path {
        let m = &all[i];
        out.push_str(&format!("\n## {}\n\n", heading(m.role)));
        let body = message_body(m);
        out.push_str(body.trim_end());
        out.push('\n');
    }
    if path.len() < all.len() {
        out.push_str(
            "\n---\n\n_This conversation has other versions of some messages; only the versions shown \
             here are in this file. The JSON export has every version._\n",
        );
    }
    out
}

/// A message's section heading.
fn heading(role: Role) -> &'static str {
    match role {
        Role::User => "You",
        Role::Assistant => "Athena",
        Role::System => "System",
        Role::Tool => "Tool",
    }
}

/// A message's text, tool lines and attachment lines, in the order of its parts.
fn message_body(m: &Message) -> String {
    let mut blocks: Vec<String> = Vec::new();
    let has_text_parts = m.parts.iter().any(|p| matches!(p, MessagePart::Text { .. }));
    if !has_text_parts && !m.content.trim().is_empty() {
        blocks.push(m.content.trim_end().to_owned());
    }
    for part in &m.parts {
        match part {
            MessagePart::Text { text } if !text.trim().is_empty() => blocks.push(text.trim_end().to_owned()),
            MessagePart::Text { .. } | MessagePart::ToolResult { .. } => {}
            MessagePart::ToolCall {
                tool_call_id,
                tool_name,
                input,
                approval,
            } => {
                let outcome = match (approval, m.tool_result(tool_call_id)) {
                    (Some(a), _) if a.approved == Some(false) => "denied".to_owned(),
                    (_, Some((output, true))) => format!("error: {}", shown(output)),
                    (_, Some((output, false))) => shown(output),
                    (Some(a), None) if a.approved.is_none() => "awaiting approval".to_owned(),
                    (_, None) => "no result".to_owned(),
                };
                blocks.push(format!("> Tool {tool_name}({}) -> {outcome}", shown(input)));
            }
            MessagePart::File {
                filename, media_type, ..
            } => blocks.push(format!("📎 {} ({media_type})", one_line(filename))),
        }
    }
    if blocks.is_empty() {
        return "_(no text)_".to_owned();
    }
    // Every text, tool line and attachment its own paragraph (consecutive `>` lines would
    // join into one).
    blocks.join("\n\n")
}

/// A JSON value on one line: a string as itself, anything else compact; cut to
/// [`TOOL_LINE_CHARS`] characters with `…`.
fn shown(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = one_line(&text);
    if text.chars().count() <= TOOL_LINE_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(TOOL_LINE_CHARS).collect();
    cut.push('…');
    cut
}

/// Line breaks as spaces.
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::domain::{Approval, ConversationId, FileId, IdGenerator, UserId};

    fn at(minute: u32) -> Timestamp {
        chrono::Utc
            .with_ymd_and_hms(2026, 3, 2, 9, minute, 0)
            .single()
            .unwrap_or_else(|| unreachable!())
    }

    fn conversation(title: &str) -> Conversation {
        let id = ConversationId::parse("conv-1").unwrap_or_else(|_| unreachable!());
        let owner = UserId::parse("alice").unwrap_or_else(|_| unreachable!());
        Conversation::new(id, owner, title, "model-x", Some(Solution::Maintenance), at(0))
    }

    fn message(ids: &IdGenerator, role: Role, text: &str, parent: Option<&Message>, minute: u32) -> Message {
        let conversation = ConversationId::parse("conv-1").unwrap_or_else(|_| unreachable!());
        let mut m = Message::text(ids.message_id(), conversation, role, text.to_owned(), at(minute));
        m.parent_id = parent.map(|p| p.id.clone());
        m
    }

    /// q1 (with a file) -> a1 (a tool call and its result, then text) -> q2, edited as q2b -> a2b.
    fn edited_with_a_tool() -> Vec<Message> {
        let ids = IdGenerator::new();
        let mut q1 = message(&ids, Role::User, "Is M1 up?", None, 1);
        q1.parts.push(MessagePart::File {
            file_id: FileId::parse("file-1").unwrap_or_else(|_| unreachable!()),
            media_type: "application/pdf".to_owned(),
            filename: "manual.pdf".to_owned(),
            size: 10,
            tokens: 3,
        });
        let mut a1 = message(&ids, Role::Assistant, "M1 is running.", Some(&q1), 2);
        a1.parts = vec![
            MessagePart::ToolCall {
                tool_call_id: "call-1".to_owned(),
                tool_name: "mes_machine_status".to_owned(),
                input: json!({"machine": "M1"}),
                approval: None,
            },
            MessagePart::ToolResult {
                tool_call_id: "call-1".to_owned(),
                tool_name: "mes_machine_status".to_owned(),
                output: json!({"status": "running"}),
                is_error: false,
            },
            MessagePart::Text {
                text: "M1 is running.".to_owned(),
            },
        ];
        a1.model = Some("model-x".to_owned());
        a1.usage = Some(Usage {
            input_tokens: 12,
            output_tokens: 5,
            ..Usage::default()
        });
        a1.latency_ms = Some(800);
        a1.finish_reason = Some(FinishReason::Stop);
        let q2 = message(&ids, Role::User, "And M2?", Some(&a1), 3);
        let q2b = message(&ids, Role::User, "And M3?", Some(&a1), 4);
        let a2b = message(&ids, Role::Assistant, "M3 is down.", Some(&q2b), 5);
        vec![q1, a1, q2, q2b, a2b]
    }

    #[test]
    fn the_format_defaults_to_json_and_refuses_anything_else() {
        assert_eq!(Format::parse(None).ok(), Some(Format::Json));
        assert_eq!(Format::parse(Some("json")).ok(), Some(Format::Json));
        assert_eq!(Format::parse(Some("markdown")).ok(), Some(Format::Markdown));
        for bad in ["md", "JSON", "", "pdf"] {
            let e = Format::parse(Some(bad)).expect_err(bad);
            assert_eq!(e.fields[0].field, "format");
        }
    }

    #[test]
    fn the_json_export_has_every_message_with_its_resolved_parent_and_the_active_leaf() {
        let all = edited_with_a_tool();
        let mut c = conversation("Line 3");
        // Show the first version of the edited question.
        c.active_leaf = Some(all[2].id.clone());
        let mut unparented = all.clone();
        unparented[1].parent_id = None;
        let value = serde_json::to_value(ConversationExport::new(&c, &unparented, at(9))).unwrap_or_default();
        assert_eq!(value["format"], "athena.conversation");
        assert_eq!(value["version"], 1);
        assert_eq!(value["exportedAt"], "2026-03-02T09:09:00.000Z");
        assert_eq!(value["conversation"]["activeLeafId"], all[2].id.as_str());
        assert_eq!(value["conversation"]["solutionType"], "maintenance");
        assert_eq!(value["conversation"]["messageCount"], 5);
        let messages = value["messages"].as_array().cloned().unwrap_or_default();
        let ids: Vec<&str> = messages.iter().filter_map(|m| m["id"].as_str()).collect();
        let expected: Vec<&str> = all.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, expected, "every message of every branch, in id order");
        let parents: Vec<serde_json::Value> = messages.iter().map(|m| m["parentId"].clone()).collect();
        assert_eq!(
            parents,
            [
                serde_json::Value::Null,
                json!(all[0].id.as_str()),
                json!(all[1].id.as_str()),
                json!(all[1].id.as_str()),
                json!(all[3].id.as_str()),
            ],
            "a message stored without a parent id follows the one before it"
        );
        assert_eq!(messages[1]["parts"][0]["type"], "tool-call");
        assert_eq!(messages[1]["parts"][1]["output"], json!({"status": "running"}));
        assert_eq!(messages[0]["parts"][0]["fileId"], "file-1");
        assert_eq!(messages[1]["usage"], json!({"inputTokens": 12, "outputTokens": 5}));
        assert_eq!(messages[1]["finishReason"], "stop");
        assert_eq!(messages[4]["parts"], json!([]), "always present");
        assert_eq!(messages[4]["usage"], serde_json::Value::Null, "always present");
    }

    #[test]
    fn the_markdown_export_shows_the_active_branch_with_tools_and_files() {
        let all = edited_with_a_tool();
        let c = conversation("Line 3\nyield");
        let page = markdown(&c, &all);
        assert!(
            page.starts_with(
                "# Line 3 yield\n\nSolution: maintenance · Model: model-x · Created: 2026-03-02 09:00 UTC\n"
            ),
            "{page}"
        );
        assert!(
            page.contains("## You\n\nIs M1 up?\n\n📎 manual.pdf (application/pdf)\n"),
            "{page}"
        );
        assert!(
            page.contains("## Athena\n\n> Tool mes_machine_status({\"machine\":\"M1\"}) -> {\"status\":\"running\"}\n\nM1 is running.\n"),
            "{page}"
        );
        assert!(page.contains("And M3?") && page.contains("M3 is down."), "{page}");
        assert!(!page.contains("And M2?"), "another branch: {page}");
        assert!(page.contains("other versions"), "{page}");
        let order: Vec<usize> = ["Is M1 up?", "M1 is running.", "And M3?", "M3 is down."]
            .iter()
            .filter_map(|t| page.find(t))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]) && order.len() == 4, "{page}");
    }

    #[test]
    fn the_markdown_export_of_one_branch_has_no_footnote_and_tool_outcomes_are_named() {
        let ids = IdGenerator::new();
        let q = message(&ids, Role::User, "Restart M2", None, 1);
        let mut a = message(&ids, Role::Assistant, "", Some(&q), 2);
        a.parts = vec![
            MessagePart::ToolCall {
                tool_call_id: "c1".to_owned(),
                tool_name: "restart".to_owned(),
                input: json!({"machine": "M2"}),
                approval: Some(Approval {
                    id: "ap1".to_owned(),
                    approved: Some(false),
                    reason: None,
                }),
            },
            MessagePart::ToolCall {
                tool_call_id: "c2".to_owned(),
                tool_name: "lookup".to_owned(),
                input: json!("x".repeat(300)),
                approval: None,
            },
            MessagePart::ToolResult {
                tool_call_id: "c2".to_owned(),
                tool_name: "lookup".to_owned(),
                output: json!("timeout"),
                is_error: true,
            },
        ];
        let all = vec![q, a];
        let page = markdown(&conversation("Restart"), &all);
        assert!(
            page.contains("> Tool restart({\"machine\":\"M2\"}) -> denied\n"),
            "{page}"
        );
        assert!(
            page.contains(&format!("> Tool lookup({}…) -> error: timeout", "x".repeat(200))),
            "{page}"
        );
        assert!(!page.contains("other versions"), "{page}");
        let mut general = conversation("Restart");
        general.solution_type = None;
        assert!(markdown(&general, &[]).contains("Solution: general"));
    }

    #[test]
    fn the_file_name_is_a_safe_title_and_the_id() {
        let c = conversation("Line 3: yield / “oven” — Jan 18!");
        assert_eq!(
            content_disposition(&c, Format::Json),
            "attachment; filename=\"line-3-yield-oven-jan-18-conv-1.json\""
        );
        assert_eq!(
            content_disposition(&conversation("Ünïcödé ✓"), Format::Markdown),
            "attachment; filename=\"n-c-d-conv-1.md\""
        );
        assert_eq!(
            content_disposition(&conversation("✓✓"), Format::Markdown),
            "attachment; filename=\"conversation-conv-1.md\""
        );
        let long = content_disposition(&conversation(&"a".repeat(100)), Format::Json);
        assert_eq!(long, format!("attachment; filename=\"{}-conv-1.json\"", "a".repeat(60)));
    }
}
