//! Key formats and table definitions: the one place that knows how items are keyed.
//!
//! Table `athena` (env `ATHENA_TABLE`), keyed by owner and conversation (a conversation id is
//! the client's choice, unique only among its owner's conversations):
//!
//! | item | pk | sk | other keys |
//! |---|---|---|---|
//! | conversation | `CONV#<owner>#<id>` | `META` | `gsi1pk = USER#<owner><shelf>`, `gsi2pk = USER#<owner>#SOL#<bucket><shelf>`, `gsi3pk? = USER#<owner>#FOLDER#<folder><shelf>`, `gsi4pk? = USER#<owner>#PROJ#<project><shelf>`, `gsi1sk = … = gsi4sk = rank`; `<shelf>` is empty, `#ARCHIVED` or `#TRASH` |
//! | tag membership | `TAGS#<owner>` | `<tag length>:<tag>#<conversation id>` | `conversationId` (conversations not in the trash) |
//! | folder | `FOLD#<owner>` | `<folder id>` | `id`, `owner`, `name`, `parentId?`, `createdAt`, `updatedAt` |
//! | message | `CONV#<owner>#<id>` | `MSG#<ulid>` | |
//! | content chunk | `CONV#<owner>#<id>` | `MSG#<ulid>#C<nnnn>` | |
//! | client id marker | `CONV#<owner>#<id>` | `CID#<client id>` | |
//! | turn receipt | `CONV#<owner>#<id>` | `TURN#<turn id>` | `expiresAt` (TTL) |
//! | reaction | `CONV#<owner>#<id>` | `REACT#<reacting user>#<message id>` | `conversationId`, `messageId`, `user`, `value`, `comment?`, `solution`, `model`, `createdAt`, `updatedAt` |
//! | bookmark | `MARK#<bookmarker>` | `T#<bookmark ulid>` | `id`, `user`, `owner`, `conversationId`, `messageId`, `note?`, `title`, `excerpt`, `createdAt` |
//! | bookmark marker (one per message) | `MARK#<bookmarker>` | `K#<owner>#<conversation id>#<message id>` | `bookmarkId` |
//! | live-turn marker (the newest turn) | `CONV#<owner>#<id>` | `LIVE` | `ownerId`, `turnId`, `replyId`, `parentId`, `startedAt`, `deadline`, `stop?`, `expiresAt` (TTL) |
//! | turn checkpoint | `CONV#<owner>#<id>` | `STREAM#<turn id>#<nnnnnn>` | `ownerId`, `events`, `last`, `at`, `expiresAt` (TTL) |
//! | project | `PROJ#<owner>` | `<project id>` | `id`, `owner`, `name`, `description`, `instructions`, `defaultModel?`, `defaultSolution?`, `createdAt`, `updatedAt` |
//! | attached file | `FILE#<owner>` | `<file id>` | `id`, `owner`, `filename`, `format`, `size`, `status`, `conversationId?`, `tokens`, `createdAt`, `uploadExpiresAt`, `expiresAt?` (TTL, pending files) |
//! | import job | `IMPJ#<owner prefix: a hash of the owner>` | `<job id>` | `id`, `owner`, `source`, `bytes`, `filename?`, `status`, `createdAt`, `updatedAt`, `uploadExpiresAt`, `attempts`, `totals`, `failures`, `failuresOmitted`, `error?` |
//! | cap revision | `CAPS#<owner>` | `projects`, `prompts` or `folders` | `rev` (bumped with each create of that kind: the per-user caps hold under concurrent creates) |
//! | saved prompt | `PRMT#<owner>` | `<prompt id>` | `id`, `owner`, `title`, `text`, `tags`, `createdAt`, `updatedAt` |
//! | idempotency record | `IDEM#<owner>` | `<Idempotency-Key>` | `fingerprint`, `state`, `token?`, `status?`, `body?`, `location?`, `expiresAt` (TTL) |
//! | search posting of a message | `SRCH#<owner>#<term>` | `M#<message id>#<conversation id>` | `tf`, `len`, `role`, `at` |
//! | search posting of a title | `SRCH#<owner>#<term>` | `T#<conversation id>` | `tf`, `len` |
//! | share link (the lookup item) | `SHARE#<sha-256 of the token>` | `LINK` | `linkId`, `ownerId`, `conversationId`, `createdAt`, `updatedAt`, `linkExpiresAt?`, `views`, `snapshotAt`, `messageCount`, `version`, `chunks`, `snapshot` (the snapshot's first piece) |
//! | share link snapshot piece | `SHARE#<sha-256 of the token>` | `C#<version>#<nnnn>` | `data` (pieces 1.. of a snapshot over [`SHARE_CHUNK_BYTES`], 100 KB) |
//! | share link of an owner | `LINKS#<owner>` | `<conversation id>#<link id>` | `tokenHash` |
//!
//! Search postings are written only by the stream consumer (`shared::reactions`, the `streams`
//! function), from the table's stream (`NEW_AND_OLD_IMAGES`): never in a request's write.
//!
//! Table `athena-events` (env `ATHENA_EVENTS_TABLE`): events at `pk = DAY#<yyyy-mm-dd>#<shard>`,
//! `sk = <ulid>`; counters (rate limits) at `pk = CTR#<key>#<window start>`, `sk = -`; token
//! budgets at `pk = BUD#<user>#D#<yyyy-mm-dd>` / `BUD#<user>#M#<yyyy-mm>`, `sk = -`; stream slots
//! at `pk = SLOT#<user>`, `sk = <n>`; audit entries at `pk = AUDIT#<user>`, `sk = <ulid>`; all
//! expire through the TTL attribute `expiresAt`. Conversation id claims of `athena-migrate` at
//! `pk = CLAIM#<conversation id>`, `sk = -` (`owner`; no TTL); records of counters imported from
//! history at `pk = STATIMP#<key>`, `sk = -` (expiring with their last day's counters).

use crate::domain::Shelf;

/// Partition key attribute of both tables.
pub const PK: &str = "pk";
/// Sort key attribute of both tables.
pub const SK: &str = "sk";
/// Owner index: every conversation of an owner.
pub const GSI_OWNER: &str = "byOwner";
/// Owner + solution index: one owner's conversations of one solution (or of the general chat).
pub const GSI_OWNER_SOLUTION: &str = "byOwnerSolution";
/// Folder index: one owner's conversations in one folder, per shelf (sparse: only conversations
/// in a folder carry `gsi3pk`).
pub const GSI_FOLDER: &str = "byFolder";
/// Project index: one owner's conversations in one project, per shelf (sparse, `gsi4pk`).
pub const GSI_PROJECT: &str = "byProject";
/// Day index of the conversations table (keys only, `dayKey`): every conversation under the day
/// it was last touched (`T#<yyyy-mm-dd>#<shard>`), or, in the trash, the day it is purged
/// (`P#<yyyy-mm-dd>#<shard>`): housekeeping finds what retention moves to the trash and what the
/// trash purges without a Scan.
pub const GSI_DAY: &str = "byDay";
/// Partitions each day of the day index is spread over (by conversation id).
pub const DAY_SHARDS: u32 = 8;

/// Events table index of a user's analytics events (sparse, keys only: `userKey = U#<hashed
/// user>` on event items), so erasing a user's data finds their events without a Scan.
pub const GSI_EVENTS_BY_USER: &str = "byUser";
/// TTL attribute of both tables (on the conversations table only idempotency records and turn
/// receipts carry it).
pub const TTL_ATTRIBUTE: &str = "expiresAt";
/// Sort key of a conversation's own item.
pub const META: &str = "META";
/// Prefix of message items' sort keys.
pub const MSG_PREFIX: &str = "MSG#";
/// Prefix of conversation partitions' keys (`CONV#<owner>#<id>`).
pub const CONVERSATION_PREFIX: &str = "CONV#";
/// What a content chunk's sort key holds after its message's (`MSG#<ulid>#C<nnnn>`).
pub const CHUNK_MARK: &str = "#C";
/// Just past the last message sort key of a partition (`$` follows `#`): `META`..`MSG$` is a
/// conversation's item and its messages (with their chunks).
pub const MESSAGES_END: &str = "MSG$";
/// Prefix of client-id marker items' sort keys.
pub const CID_PREFIX: &str = "CID#";
/// Number of partitions each day's events are spread over.
pub const EVENT_SHARDS: u32 = 4;

/// Partition key of a conversation's items: the owner and the conversation id. Conversation ids
/// are chosen by clients (the AI SDK picks them), so they are unique only per owner: two users'
/// conversations with the same id are two partitions, and creating an id another user holds is
/// no conflict (nothing tells a caller that someone else's id exists). Neither part can contain
/// `#` (both are `[A-Za-z0-9_-]`), so the key is unambiguous.
pub fn conversation_pk(owner: &str, id: &str) -> String {
    format!("{CONVERSATION_PREFIX}{owner}#{id}")
}

/// Sort key of a message.
pub fn message_sk(message_id: &str) -> String {
    format!("{MSG_PREFIX}{message_id}")
}

/// Sort key of the `n`th (1-based) continuation chunk of a message's content.
pub fn chunk_sk(message_id: &str, n: usize) -> String {
    format!("{MSG_PREFIX}{message_id}{CHUNK_MARK}{n:04}")
}

/// Sort key of a client-id marker.
pub fn client_id_sk(client_id: &str) -> String {
    format!("{CID_PREFIX}{client_id}")
}

/// Sort key of a conversation's live-turn marker (sorts just before [`META`], so one Query from
/// `LIVE` to the messages reads the marker, the conversation and its messages, and nothing else).
pub const LIVE: &str = "LIVE";

/// Sort key of a turn's `seq`th checkpoint (sorts after every message and marker).
pub fn checkpoint_sk(turn_id: &str, seq: u32) -> String {
    format!("STREAM#{turn_id}#{seq:06}")
}

/// Sort key of a finished turn's receipt (conversations table, under the conversation's `pk`).
pub fn receipt_sk(turn_id: &str) -> String {
    format!("TURN#{turn_id}")
}

/// Sort key of `user`'s reaction to `message` (conversations table, under the conversation's
/// `pk`: it goes with the conversation and with its cleared messages). Sorts after every message
/// and before checkpoints, outside the `LIVE`..`MSG$` range a conversation read Queries.
pub fn reaction_sk(user: &str, message: &str) -> String {
    format!("{}{message}", reaction_prefix(user))
}

/// Sort-key prefix of `user`'s reactions in one conversation (`user` holds no `#`).
pub fn reaction_prefix(user: &str) -> String {
    format!("REACT#{user}#")
}

/// Partition key of a user's bookmarks (conversations table): `T#<ulid>` items (the list, newest
/// first when read backwards) and `K#<owner>#<conversation>#<message>` markers (one per message).
pub fn bookmarks_pk(user: &str) -> String {
    format!("MARK#{user}")
}

/// Sort-key prefix of the bookmark items of a [`bookmarks_pk`] partition.
pub const BOOKMARK_PREFIX: &str = "T#";

/// Sort key of a bookmark item.
pub fn bookmark_sk(id: &str) -> String {
    format!("{BOOKMARK_PREFIX}{id}")
}

/// Sort-key prefix of the markers of the bookmarks on one conversation (`owner` and the
/// conversation id hold no `#`).
pub fn bookmark_marker_prefix(owner: &str, conversation: &str) -> String {
    format!("K#{owner}#{conversation}#")
}

/// Sort key of the marker of the bookmark on one message.
pub fn bookmark_marker_sk(owner: &str, conversation: &str, message: &str) -> String {
    format!("{}{message}", bookmark_marker_prefix(owner, conversation))
}

/// Partition key of a user's idempotency records (conversations table; `sk` = the client's key).
pub fn idempotency_pk(owner: &str) -> String {
    format!("IDEM#{owner}")
}

/// Partition key of a user's attached files (conversations table; `sk` = the file id).
pub fn files_pk(owner: &str) -> String {
    format!("FILE#{owner}")
}

/// Partition key of the import jobs of the owners whose object-key prefix is `owner_prefix`
/// ([`crate::domain::file::owner_prefix`]: the worker knows a job by its upload's key, which
/// names the owner by that hash; conversations table, `sk` = the job id).
pub fn import_jobs_pk(owner_prefix: &str) -> String {
    format!("IMPJ#{owner_prefix}")
}

/// Partition key of a user's projects (conversations table; `sk` = the project id).
pub fn projects_pk(owner: &str) -> String {
    format!("PROJ#{owner}")
}

/// Partition key of a user's cap revisions (conversations table; `sk` = the capped kind:
/// `projects`, `prompts`, `folders`; attribute `rev`), bumped by every create of that kind.
pub fn caps_pk(owner: &str) -> String {
    format!("CAPS#{owner}")
}

/// Partition key of a user's saved prompts (conversations table; `sk` = the prompt id).
pub fn prompts_pk(owner: &str) -> String {
    format!("PRMT#{owner}")
}

/// The shard of a conversation in the day index.
pub fn day_shard(conversation: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(conversation.as_bytes());
    u32::from(digest[0]) % DAY_SHARDS
}

/// Day-index key of a conversation last touched at `at`.
pub fn touched_day_key(at: &chrono::DateTime<chrono::Utc>, conversation: &str) -> String {
    day_key("T", &at.format("%Y-%m-%d").to_string(), day_shard(conversation))
}

/// Day-index key of a conversation in the trash, purged at `at`.
pub fn purge_day_key(at: &chrono::DateTime<chrono::Utc>, conversation: &str) -> String {
    day_key("P", &at.format("%Y-%m-%d").to_string(), day_shard(conversation))
}

/// Day-index key of `kind` (`T` touched, `P` purged), `day` (`YYYY-MM-DD`) and `shard`.
pub fn day_key(kind: &str, day: &str, shard: u32) -> String {
    format!("{kind}#{day}#{shard}")
}

/// The owner and conversation id of a conversation partition key (`CONV#<owner>#<id>`).
pub fn parse_conversation_pk(pk: &str) -> Option<(&str, &str)> {
    pk.strip_prefix(CONVERSATION_PREFIX)?.split_once('#')
}

/// Partition key of a user's folders (conversations table; `sk` = the folder id).
pub fn folders_pk(owner: &str) -> String {
    format!("FOLD#{owner}")
}

/// Partition key of a user's tag memberships (conversations table).
pub fn tags_pk(owner: &str) -> String {
    format!("TAGS#{owner}")
}

/// The sort-key prefix of a tag's memberships: the tag's length in bytes before it, so no tag's
/// prefix is another's (`3:a#b#…` cannot be read as tag `a`).
pub fn tag_prefix(tag: &str) -> String {
    format!("{}:{tag}#", tag.len())
}

/// Sort key of one conversation's membership of a tag.
pub fn tag_sk(tag: &str, conversation: &str) -> String {
    format!("{}{conversation}", tag_prefix(tag))
}

/// Owner index partition key (the default list; `#ARCHIVED` / `#TRASH` appended for the others).
/// Partition key of a user's search postings of one term (conversations table): a user's index is
/// a set of partitions, one per term; a search Queries one per query word. A term is letters and
/// digits only ([`crate::domain::text::words`]), so the key is unambiguous.
pub fn search_pk(owner: &str, term: &str) -> String {
    format!("SRCH#{owner}#{term}")
}

/// Sort key of a message's posting: the message id first, so a term's postings read newest first
/// (message ids are ULIDs) when read backwards.
pub fn message_posting_sk(message_id: &str, conversation_id: &str) -> String {
    format!("M#{message_id}#{conversation_id}")
}

/// Sort key of a conversation title's posting.
pub fn title_posting_sk(conversation_id: &str) -> String {
    format!("T#{conversation_id}")
}

/// The stream the conversations table carries (`StreamSpecification.StreamViewType`): the search
/// index's consumer needs the old image of a removed or changed message to remove its postings.
pub const STREAM_VIEW: &str = "NEW_AND_OLD_IMAGES";

/// Owner index partition key.
pub fn owner_pk(owner: &str) -> String {
    format!("USER#{owner}")
}

/// Owner index partition key of a shelf.
pub fn owner_shelf_pk(owner: &str, shelf: Shelf) -> String {
    format!("USER#{owner}{}", shelf.key_suffix())
}

/// Owner index partition key of a user's conversations hidden while a large import writes them.
pub fn importing_pk(owner: &str) -> String {
    format!("USER#{owner}#IMPORTING")
}

/// Owner + solution index partition key.
pub fn owner_solution_pk(owner: &str, bucket: &str) -> String {
    format!("USER#{owner}#SOL#{bucket}")
}

/// Owner + solution index partition key of a shelf.
pub fn owner_solution_shelf_pk(owner: &str, bucket: &str, shelf: Shelf) -> String {
    format!("USER#{owner}#SOL#{bucket}{}", shelf.key_suffix())
}

/// Folder index partition key of a shelf.
pub fn folder_pk(owner: &str, folder: &str, shelf: Shelf) -> String {
    format!("USER#{owner}#FOLDER#{folder}{}", shelf.key_suffix())
}

/// Project index partition key of a shelf.
pub fn project_pk(owner: &str, project: &str, shelf: Shelf) -> String {
    format!("USER#{owner}#PROJ#{project}{}", shelf.key_suffix())
}

/// Partition key of a conversation id's claim (events table, no TTL; sort key `-`, attribute
/// `owner`): `athena-migrate` claims each original id for one owner
/// (`Conversations::claim_conversation_id`).
pub fn claim_pk(conversation_id: &str) -> String {
    format!("CLAIM#{conversation_id}")
}

/// Counter partition key (events table, expires by TTL): a key and its window.
pub fn counter_pk(key: &str, window_start: i64) -> String {
    format!("CTR#{key}#{window_start}")
}

/// The prefix of every window's counter of `key` ([`counter_pk`] without the window).
pub fn counter_prefix(key: &str) -> String {
    format!("CTR#{key}#")
}

/// The prefix of every budget partition key of a user ([`budget_pks`] without the period).
pub fn budget_prefix(user: &str) -> String {
    format!("BUD#{user}#")
}

/// The rate-limit counter key of a user (shared by every route and the chat turn).
pub fn rate_key(user: &str) -> String {
    format!("rpm#{user}")
}

/// Day and month token-budget partition keys of a user at a time.
pub fn budget_pks(user: &str, at: &chrono::DateTime<chrono::Utc>) -> (String, String) {
    (
        format!("BUD#{user}#D#{}", at.format("%Y-%m-%d")),
        format!("BUD#{user}#M#{}", at.format("%Y-%m")),
    )
}

/// The month's dollar-budget partition key of a user at a time (nano-dollars in `tokens`).
pub fn budget_usd_pk(user: &str, at: &chrono::DateTime<chrono::Utc>) -> String {
    format!("BUD#{user}#U#{}", at.format("%Y-%m"))
}

/// A user's usage rows partition (events table): `sk` = [`usage_sk`].
pub fn usage_pk(user: &str) -> String {
    format!("USAGE#{user}")
}

/// A usage row's sort key: the day first, so a month is one key range.
pub fn usage_sk(day: &str, solution: &str, model: &str) -> String {
    format!("{day}#{solution}#{model}")
}

/// A user's plan override (events table, `sk` = `-`).
pub fn plan_pk(user: &str) -> String {
    format!("PLAN#{user}")
}

/// The deployment's spend of a UTC month (events table, `sk` = `-`; nano-dollars in `tokens`).
pub fn spend_pk(month: &str) -> String {
    format!("SPEND#{month}")
}

/// Stream-slot partition key of a user (`sk` = the slot number).
pub fn slot_pk(user: &str) -> String {
    format!("SLOT#{user}")
}

/// Audit partition key of a user (`sk` = the entry's ULID).
pub fn audit_pk(user: &str) -> String {
    format!("AUDIT#{user}")
}

/// Analytics counters partition key (events table): one partition per day, `sk = <solution>#<model>`.
pub fn stats_pk(day: &str) -> String {
    format!("STAT#{day}")
}

/// Partition key of the record of counters imported under `key` (`Stats::import_stats`; events
/// table, sort key `-`, expiring with the counters of its last day).
pub fn stats_import_pk(key: &str) -> String {
    format!("STATIMP#{key}")
}

/// The `userKey` of an analytics event of the (hashed) user `user_hash`.
pub fn event_user_key(user_hash: &str) -> String {
    format!("U#{user_hash}")
}

/// Events partition key for a day and shard.
pub fn events_pk(day: &str, shard: u32) -> String {
    format!("DAY#{day}#{shard}")
}

/// Attribute type of a key attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// `S`
    String,
    /// `N`
    Number,
}

impl KeyType {
    /// The CloudFormation / DynamoDB name of the type.
    pub fn code(self) -> &'static str {
        match self {
            KeyType::String => "S",
            KeyType::Number => "N",
        }
    }
}

/// A key: partition attribute and optional sort attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDef {
    /// Partition (HASH) attribute and type.
    pub hash: (&'static str, KeyType),
    /// Sort (RANGE) attribute and type.
    pub range: Option<(&'static str, KeyType)>,
}

/// A global secondary index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexDef {
    /// Index name.
    pub name: &'static str,
    /// Its key.
    pub key: KeyDef,
    /// Projection `KEYS_ONLY` (`true`) or `ALL`.
    pub keys_only: bool,
}

/// A table as the code uses it; `template.yaml` must declare exactly this (checked by a test).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDef {
    /// The template's logical id of the table.
    pub logical_id: &'static str,
    /// The environment variable carrying its name.
    pub env: &'static str,
    /// Its name when the variable is unset (local tests).
    pub default_name: &'static str,
    /// Primary key.
    pub key: KeyDef,
    /// Global secondary indexes.
    pub indexes: Vec<IndexDef>,
    /// TTL attribute, if any.
    pub ttl: Option<&'static str>,
    /// Stream view type, if the table has a stream.
    pub stream: Option<&'static str>,
}

/// The conversations table (conversations, messages, chunks, markers, idempotency records).
pub fn conversations_table() -> TableDef {
    TableDef {
        logical_id: "ConversationsTable",
        env: "ATHENA_TABLE",
        default_name: "athena",
        key: KeyDef {
            hash: (PK, KeyType::String),
            range: Some((SK, KeyType::String)),
        },
        indexes: vec![
            IndexDef {
                name: GSI_OWNER,
                key: KeyDef {
                    hash: ("gsi1pk", KeyType::String),
                    range: Some(("gsi1sk", KeyType::Number)),
                },
                keys_only: false,
            },
            IndexDef {
                name: GSI_OWNER_SOLUTION,
                key: KeyDef {
                    hash: ("gsi2pk", KeyType::String),
                    range: Some(("gsi2sk", KeyType::Number)),
                },
                keys_only: false,
            },
            IndexDef {
                name: GSI_FOLDER,
                key: KeyDef {
                    hash: ("gsi3pk", KeyType::String),
                    range: Some(("gsi3sk", KeyType::Number)),
                },
                keys_only: false,
            },
            IndexDef {
                name: GSI_PROJECT,
                key: KeyDef {
                    hash: ("gsi4pk", KeyType::String),
                    range: Some(("gsi4sk", KeyType::Number)),
                },
                keys_only: false,
            },
            IndexDef {
                name: GSI_DAY,
                key: KeyDef {
                    hash: ("dayKey", KeyType::String),
                    range: None,
                },
                keys_only: true,
            },
        ],
        ttl: Some(TTL_ATTRIBUTE),
        stream: Some(STREAM_VIEW),
    }
}

/// The analytics events table.
pub fn events_table() -> TableDef {
    TableDef {
        logical_id: "EventsTable",
        env: "ATHENA_EVENTS_TABLE",
        default_name: "athena-events",
        key: KeyDef {
            hash: (PK, KeyType::String),
            range: Some((SK, KeyType::String)),
        },
        indexes: vec![IndexDef {
            name: GSI_EVENTS_BY_USER,
            key: KeyDef {
                hash: ("userKey", KeyType::String),
                range: Some((SK, KeyType::String)),
            },
            keys_only: true,
        }],
        ttl: Some(TTL_ATTRIBUTE),
        stream: None,
    }
}

/// Every table of Athena.
pub fn all_tables() -> Vec<TableDef> {
    vec![conversations_table(), events_table()]
}

/// Sort-key prefix of a conversation's grants (in the conversation's own partition, so deleting
/// the conversation's partition deletes them; sorts before [`LIVE`], outside the turn's Query).
pub const GRANT_PREFIX: &str = "GRANT#";

/// Sort key of a conversation's grant to `grantee_key` (`u:<user>` or `e:<address>`).
pub fn grant_sk(grantee_key: &str) -> String {
    format!("{GRANT_PREFIX}{grantee_key}")
}

/// Partition key of what is shared with a grantee (conversations table; `sk` = the conversation
/// id): the policy's one lookup for a caller who is not the owner, and "shared with me".
pub fn shared_pk(grantee_key: &str) -> String {
    format!("SHARED#{grantee_key}")
}

/// Partition key of a share link's lookup item and snapshot pieces: the SHA-256 (hex) of its
/// token, so reading a link is one GetItem and the table holds no live token.
pub fn share_pk(token_hash: &str) -> String {
    format!("SHARE#{token_hash}")
}

/// Sort key of a share link's lookup item.
pub const SHARE_LINK_SK: &str = "LINK";

/// Bytes of a link's snapshot per item (its lookup item holds the first piece): a quarter of
/// DynamoDB's 400 KB item limit, so the lookup item's other attributes and a refresh's
/// UpdateItem stay well within it (moto, the tests' DynamoDB, sizes non-ASCII text above its
/// UTF-8 length).
pub const SHARE_CHUNK_BYTES: usize = 100 * 1024;

/// Sort-key prefix of the pieces of one version of a link's snapshot.
pub fn share_chunk_prefix(version: &str) -> String {
    format!("C#{version}#")
}

/// Sort key of the `n`th (1-based) further piece of a link's snapshot.
pub fn share_chunk_sk(version: &str, n: usize) -> String {
    format!("C#{version}#{n:04}")
}

/// Partition key of a user's share links (conversations table; `sk` =
/// [`share_link_sk`]): listing a conversation's links is one Query on the prefix
/// `<conversation id>#`.
pub fn links_pk(owner: &str) -> String {
    format!("LINKS#{owner}")
}

/// Sort key of a link among its owner's ([`links_pk`]).
pub fn share_link_sk(conversation: &str, link: &str) -> String {
    format!("{conversation}#{link}")
}
