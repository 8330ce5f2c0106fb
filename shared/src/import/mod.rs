//! Importing conversations from an export file (`POST /api/import`, `docs/export.md`): Athena's
//! own JSON (one conversation or the whole export), ChatGPT's `conversations.json` and Claude's
//! `conversations.json`. No store here: the file is read as a stream of items ([`read_items`]),
//! each item turned into a conversation with all its messages ([`prepare`]), which the API layer
//! stores one at a time.
//!
//! - **Flat memory**: the top-level array (or the `conversations` array of an `athena.export`)
//!   is read with a sequence visitor, one item at a time; only one item's JSON is held at once.
//! - **Per-item errors**: an item that is not a conversation of the expected shape fails on its
//!   own, with a code and a message; the others are imported.
//! - **Idempotent**: the ids are derived from the source's ids ([`derived_id`]; Athena's own are
//!   kept), so importing the same file again finds every conversation already there (`skipped`)
//!   and writes nothing twice.
//! - **Timestamps** are kept to the millisecond.

pub mod athena;
pub mod chatgpt;
pub mod claude;
pub mod jobs;
pub mod run;

use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::domain::{
    Conversation, ConversationId, ImportSource, Message, MessageId, Role, Timestamp, Title, UserId, MAX_TITLE_CHARS,
};
use crate::error::ValidationError;

/// Which format the file is in (`source` query parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Recognised per item: `mapping` (ChatGPT), `chat_messages` (Claude), `format` (Athena).
    Auto,
    /// Every item must be of this format.
    Only(ImportSource),
}

impl Source {
    /// The `source` query parameter: absent means `auto`.
    pub fn parse(raw: Option<&str>) -> Result<Self, ValidationError> {
        match raw {
            None | Some("auto") => Ok(Source::Auto),
            Some(name) => ImportSource::from_name(name)
                .filter(|s| *s != ImportSource::Share)
                .map(Source::Only)
                .ok_or_else(|| ValidationError::field("source", "must be auto, athena, chatgpt or claude")),
        }
    }
}

/// What an import needs besides the item: the caller, the catalog (models) and the time.
pub struct Context<'a> {
    /// The caller: every conversation is theirs.
    pub owner: &'a UserId,
    /// The deployment's models: an imported conversation keeps its model only when it is one.
    pub catalog: &'a Catalog,
    /// Now (a conversation or message without a time gets it).
    pub now: Timestamp,
}

impl Context<'_> {
    /// The model new turns of an imported conversation use: `model` when the catalog has it,
    /// the default otherwise.
    fn model(&self, model: Option<&str>) -> String {
        model
            .and_then(|m| self.catalog.get(m))
            .unwrap_or_else(|| self.catalog.default_model())
            .id
            .to_owned()
    }
}

/// A conversation ready to store, with all its messages (id order: a parent before its replies).
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The conversation (owner: the caller; `imported_from` set).
    pub conversation: Conversation,
    /// Its messages, every branch.
    pub messages: Vec<Message>,
}

/// Why one item could not be imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemError {
    /// Machine-readable: `INVALID_ITEM` (not the expected shape), `UNSUPPORTED` (a format or
    /// version this importer does not read), `TOO_LARGE`, or a store error's code.
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// The item's title when it could be read.
    pub title: Option<String>,
}

impl ItemError {
    fn invalid(message: impl Into<String>, title: Option<&str>) -> Self {
        Self {
            code: "INVALID_ITEM",
            message: message.into(),
            title: title.map(str::to_owned),
        }
    }
}

/// Turns one item of the file into a conversation of `ctx.owner`.
pub fn prepare(source: Source, item: serde_json::Value, ctx: &Context<'_>) -> Result<Prepared, ItemError> {
    let detected = match source {
        Source::Only(s) => s,
        Source::Auto => detect(&item).ok_or_else(|| ItemError {
            code: "UNSUPPORTED",
            message: "not a conversation of a known export: expected Athena's (format), ChatGPT's (mapping) or \
                      Claude's (chat_messages)"
                .to_owned(),
            title: None,
        })?,
    };
    match detected {
        ImportSource::Athena => athena::prepare(item, ctx),
        ImportSource::Chatgpt => chatgpt::prepare(item, ctx),
        ImportSource::Claude => claude::prepare(item, ctx),
        // Not a file format (`Source::parse` refuses it): a share link's copy is made apart.
        ImportSource::Share => Err(ItemError::invalid("not an export format", None)),
    }
}

/// The format of one item.
fn detect(item: &serde_json::Value) -> Option<ImportSource> {
    let object = item.as_object()?;
    if object.contains_key("format") && object.contains_key("messages") {
        Some(ImportSource::Athena)
    } else if object.contains_key("mapping") {
        Some(ImportSource::Chatgpt)
    } else if object.contains_key("chat_messages") {
        Some(ImportSource::Claude)
    } else {
        None
    }
}

/// A title for an imported conversation: whitespace folded, control characters dropped, cut to
/// 100 characters at a word; the default title when nothing is left.
fn title_of(raw: Option<&str>) -> String {
    Title::from_first_message(raw.unwrap_or_default(), MAX_TITLE_CHARS)
        .as_str()
        .to_owned()
}

/// A ULID-shaped id derived from `key`: its time part is `at` (ms), its random part the first
/// 80 bits of SHA-256(`key`). The same key and time give the same id, so a re-import finds it.
pub fn derived_id(key: &str, at: Timestamp) -> String {
    derived_id_seq(key, at, None)
}

/// As [`derived_id`], with `seq` (a message's position in its conversation) in the top 32 bits
/// of the random part: ids of equal time sort by position (`athena-migrate` derives its message
/// ids with it too).
pub fn derived_id_seq(key: &str, at: Timestamp, seq: Option<u32>) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut random = digest.iter().take(10).fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    if let Some(seq) = seq {
        random = (u128::from(seq) << 48) | (random & ((1u128 << 48) - 1));
    }
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0).min((1u64 << 48) - 1);
    ulid::Ulid::from_parts(ms, random).to_string()
}

/// One message of a source conversation, before it gets its Athena id.
struct Draft {
    /// The source's id of the message (ids are derived from it).
    source_id: String,
    /// Its parent: an earlier draft.
    parent: Option<usize>,
    role: Role,
    content: String,
    model: Option<String>,
    created_at: Timestamp,
}

/// Builds the conversation and messages of a ChatGPT or Claude item: `drafts` in an order where
/// a parent comes before its replies, `leaf` the draft shown. Message ids are derived from the
/// conversation's key and each source id, with times made non-decreasing so that id order is
/// the drafts' order.
fn assemble(
    source: ImportSource,
    key: &str,
    mut conversation: Conversation,
    drafts: Vec<Draft>,
    leaf: Option<usize>,
) -> Prepared {
    let mut messages: Vec<Message> = Vec::with_capacity(drafts.len());
    let mut floor: Option<Timestamp> = None;
    for (i, d) in drafts.into_iter().enumerate() {
        let at = floor.map_or(d.created_at, |f| f.max(d.created_at));
        floor = Some(at);
        let raw = derived_id_seq(
            &format!("{key}/{}", d.source_id),
            at,
            Some(u32::try_from(i).unwrap_or(u32::MAX)),
        );
        let Ok(id) = MessageId::parse(&raw) else {
            continue;
        };
        let mut m = Message::text(id, conversation.id.clone(), d.role, d.content, d.created_at);
        m.parent_id = d.parent.and_then(|p| messages.get(p)).map(|p| p.id.clone());
        m.model = d.model;
        messages.push(m);
    }
    conversation.active_leaf = leaf.and_then(|l| messages.get(l)).map(|m| m.id.clone());
    conversation.imported_from = Some(source);
    if let Some(newest) = messages.iter().map(|m| m.created_at).max() {
        conversation.updated_at = conversation.updated_at.max(newest);
    }
    Prepared { conversation, messages }
}

/// A new conversation of `ctx.owner` with an id derived from `key` and its source's creation
/// time (the Unix epoch when it has none, so that the id is the same at every import); created
/// `created` (now when the source has no time), updated at least then.
fn new_conversation(
    ctx: &Context<'_>,
    key: &str,
    title: Option<&str>,
    model: Option<&str>,
    created: Option<Timestamp>,
    updated: Option<Timestamp>,
) -> Result<Conversation, ItemError> {
    let id_time = created.unwrap_or(chrono::DateTime::UNIX_EPOCH);
    let id = ConversationId::parse(&derived_id(key, id_time))
        .map_err(|e| ItemError::invalid(format!("no id could be derived: {e}"), title))?;
    let created = created.unwrap_or(ctx.now);
    let mut c = Conversation::new(id, ctx.owner.clone(), title_of(title), ctx.model(model), None, created);
    c.updated_at = updated.unwrap_or(created).max(created);
    Ok(c)
}

pub use crate::domain::import_job::{ItemResult, Status, Totals};

/// The answer of `POST /api/import`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Every item, in file order.
    pub results: Vec<ItemResult>,
    /// The counts.
    pub totals: Totals,
}

impl Report {
    /// Adds one item's result.
    pub fn push(&mut self, result: ItemResult) {
        self.totals.count(result.status);
        self.results.push(result);
    }
}

/// Why the file could not be read past some point.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FileError(pub String);

/// Reads the file's items one at a time and gives each to `sink` with its index: the elements of
/// a top-level array (ChatGPT, Claude, several Athena conversations), of the `conversations`
/// array of an `athena.export` object, or a single `athena.conversation` object. Only one item
/// is held at a time. `sink` returning `false` stops the reading. Returns how many items were
/// read, or the error that stopped it (invalid JSON, another top level) with how many came
/// before.
pub fn read_items(
    body: &[u8],
    sink: &mut dyn FnMut(usize, serde_json::Value) -> bool,
) -> Result<usize, (usize, FileError)> {
    read_with(serde_json::Deserializer::from_slice(body), sink)
}

/// As [`read_items`], from a byte stream (an uploaded object read on a blocking thread): only
/// the reader's buffer and one item are held at a time, whatever the file's size.
pub fn read_items_from<R: std::io::Read>(
    reader: R,
    sink: &mut dyn FnMut(usize, serde_json::Value) -> bool,
) -> Result<usize, (usize, FileError)> {
    read_with(
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(64 * 1024, reader)),
        sink,
    )
}

fn read_with<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    sink: &mut dyn FnMut(usize, serde_json::Value) -> bool,
) -> Result<usize, (usize, FileError)> {
    let mut count = 0usize;
    let outcome = TopLevel {
        sink,
        count: &mut count,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    outcome.map(|()| count).map_err(|e| (count, FileError(e.to_string())))
}

/// The top level: an array of items, or an object (an export envelope or one conversation).
struct TopLevel<'s> {
    sink: &'s mut dyn FnMut(usize, serde_json::Value) -> bool,
    count: &'s mut usize,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of conversations, an athena.export object or an athena.conversation object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Items {
            sink: self.sink,
            count: self.count,
        }
        .visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // An envelope streams its `conversations`; any other object is one conversation (held
        // whole: it is one item).
        let mut single = serde_json::Map::new();
        let mut envelope = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "conversations" {
                envelope = true;
                map.next_value_seed(Items {
                    sink: &mut *self.sink,
                    count: &mut *self.count,
                })?;
            } else if envelope {
                map.next_value::<IgnoredAny>()?;
            } else {
                let value: serde_json::Value = map.next_value()?;
                single.insert(key, value);
            }
        }
        if !envelope {
            *self.count += 1;
            (self.sink)(0, serde_json::Value::Object(single));
        }
        Ok(())
    }
}

/// An array of items, each given to the sink as soon as it is read.
struct Items<'s> {
    sink: &'s mut dyn FnMut(usize, serde_json::Value) -> bool,
    count: &'s mut usize,
}

impl<'de> DeserializeSeed<'de> for Items<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Items<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of conversations")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<serde_json::Value>()? {
            let index = *self.count;
            *self.count += 1;
            if !(self.sink)(index, item) {
                // The consumer is gone: skip the rest without holding it.
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                break;
            }
        }
        Ok(())
    }
}

/// A timestamp from Unix seconds with a fraction (ChatGPT's `create_time`), to the millisecond.
fn from_unix_seconds(secs: f64) -> Option<Timestamp> {
    if !secs.is_finite() {
        return None;
    }
    let ms = (secs * 1000.0).round();
    if !(0.0..=253_402_300_799_000.0).contains(&ms) {
        return None;
    }
    chrono::DateTime::from_timestamp_millis(ms as i64)
}

/// A timestamp from RFC 3339 text (Claude's `created_at`), cut to the millisecond.
fn from_rfc3339(raw: &str) -> Option<Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(raw)
        .ok()?
        .with_timezone(&chrono::Utc);
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(body: &str) -> Result<Vec<serde_json::Value>, (usize, FileError)> {
        let mut items = Vec::new();
        read_items(body.as_bytes(), &mut |_, v| {
            items.push(v);
            true
        })
        .map(|_| items)
    }

    #[test]
    fn items_come_from_an_array_an_envelope_or_one_object() {
        assert_eq!(collect(r#"[{"a":1},{"b":2}]"#).map(|v| v.len()).ok(), Some(2));
        let env = r#"{"format":"athena.export","version":1,"conversations":[{"a":1},{"a":2},{"a":3}],"x":1}"#;
        assert_eq!(collect(env).map(|v| v.len()).ok(), Some(3));
        let one = collect(r#"{"format":"athena.conversation","messages":[]}"#).unwrap_or_default();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0]["format"], "athena.conversation");
    }

    #[test]
    fn a_broken_file_reports_how_many_items_came_before() {
        let (count, e) = collect(r#"[{"a":1},{"b":2},{"c":"#)
            .err()
            .unwrap_or_else(|| (99, FileError(String::new())));
        assert_eq!(count, 2);
        assert!(!e.0.is_empty());
        assert!(collect("42").is_err());
        assert!(collect("[1] trailing").is_err());
    }

    fn prepared(item: serde_json::Value, now_ms: i64) -> Result<Prepared, ItemError> {
        let config = crate::config::Config::local();
        let owner = UserId::parse("alice").unwrap_or_else(|_| unreachable!());
        let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_else(|| unreachable!());
        let ctx = Context {
            owner: &owner,
            catalog: &config.catalog,
            now,
        };
        prepare(Source::Auto, item, &ctx)
    }

    #[test]
    fn a_conversation_without_id_or_time_gets_the_same_id_at_every_import() {
        let item = serde_json::json!({"title": "No id", "mapping": {
            "r": {"message": null, "parent": null, "children": ["a"]},
            "a": {"parent": "r", "children": [], "message": {"author": {"role": "critic"},
                  "content": {"content_type": "text", "parts": ["hm"]}}}}});
        let first = prepared(item.clone(), 1_000).map_err(|e| e.message);
        let later = prepared(item, 9_000_000).map_err(|e| e.message);
        let (Ok(first), Ok(later)) = (first, later) else {
            panic!("both import")
        };
        assert_eq!(first.conversation.id, later.conversation.id);
        assert_ne!(
            first.conversation.created_at, later.conversation.created_at,
            "created now"
        );
        assert_eq!(first.messages.len(), 1);
        assert_eq!(first.messages[0].role, Role::Tool);
        assert_eq!(first.messages[0].content, "[critic] hm", "an unknown role is named");
    }

    #[test]
    fn a_claude_branch_named_by_its_parents_is_kept_with_the_leaf_shown() {
        let m = |uuid: &str, parent: &str, sender: &str, text: &str| {
            serde_json::json!({"uuid": uuid, "parent_message_uuid": parent, "sender": sender, "text": text,
                "created_at": "2024-03-01T10:00:00.000Z"})
        };
        let root = "00000000-0000-4000-8000-000000000000";
        let item = serde_json::json!({"uuid": "c1", "name": "Branches", "created_at": "2024-03-01T10:00:00Z",
            "current_leaf_message_uuid": "a1",
            "chat_messages": [m("q", root, "human", "Q"), m("a1", "q", "assistant", "A1"),
                              m("a2", "q", "assistant", "A2")]});
        let Ok(p) = prepared(item, 0) else { panic!("imports") };
        let ids: Vec<&MessageId> = p.messages.iter().map(|m| &m.id).collect();
        assert_eq!(p.messages[0].parent_id, None);
        assert_eq!(p.messages[1].parent_id.as_ref(), Some(ids[0]));
        assert_eq!(
            p.messages[2].parent_id.as_ref(),
            Some(ids[0]),
            "a regenerated reply: a sibling"
        );
        assert_eq!(p.conversation.active_leaf.as_ref(), Some(ids[1]));
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids sort in order");
        assert_eq!(p.conversation.imported_from, Some(ImportSource::Claude));
    }

    #[test]
    fn derived_ids_are_stable_ulids_that_sort_by_time_then_position() {
        let t = from_unix_seconds(1_700_000_000.123_4).unwrap_or_else(|| unreachable!());
        assert_eq!(t.timestamp_millis(), 1_700_000_000_123);
        let a = derived_id("chatgpt:abc", t);
        assert_eq!(a, derived_id("chatgpt:abc", t));
        assert_ne!(a, derived_id("chatgpt:abd", t));
        assert!(ConversationId::parse(&a).is_ok() && a.len() == 26);
        let first = derived_id_seq("k/z", t, Some(1));
        let second = derived_id_seq("k/a", t, Some(2));
        assert!(first < second, "{first} {second}");
        let c = from_rfc3339("2024-03-01T12:00:00.123456Z").unwrap_or_else(|| unreachable!());
        assert_eq!(crate::domain::ts::format(&c), "2024-03-01T12:00:00.123Z");
    }
}
