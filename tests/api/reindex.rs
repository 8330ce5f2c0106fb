//! `athena-migrate reindex` (the search index's backfill, docs/search.md "Backfill"), driven
//! through its entry function with command-line arguments, on conversations written through the
//! routes while no stream consumer ran (so never indexed), and searched through the routes:
//! nothing is found before, everything after, ranked as usual; a rerun changes nothing; a
//! checkpoint resumes a stopped run; conversations in the trash stay hidden and deleted ones are
//! not resurrected; another user's words are indexed under their owner only. Postings written
//! after their message or conversation was deleted (the backfill's race) are dropped by the
//! search's visibility checks (the conversation, the message, and its words). An embedded file's index is rebuilt from its tables.

use std::path::PathBuf;
use std::sync::Arc;

use athena_migrate::reindex::{self, parse_args, Summary};
use athena_tests::indexed::raw_postings;
use athena_tests::tokens::{self, as_user};
use athena_tests::{dynamo_store, spawn_app, unique, Reply, TestApp};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use shared::store::dynamo::DynamoStore;
use shared::store::embedded::EmbeddedStore;

const ALICE: &str = "alice-0001";
const BOB: &str = "bob-0002";

/// The routes on a DynamoDB store whose stream nobody reads.
struct Unindexed {
    app: TestApp,
    store: Arc<DynamoStore>,
}

async fn unindexed() -> Unindexed {
    let store = Arc::new(dynamo_store().await);
    let mut config = tokens::jwt_config(tokens::verifier());
    config.rate_limit_per_minute = 0;
    Unindexed {
        app: spawn_app(store.clone(), config).await,
        store,
    }
}

impl Unindexed {
    async fn call(&self, user: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let r = as_user(&self.app, user, method, path, body).await;
        assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.text);
        r
    }

    async fn conversation(&self, user: &str, id: &str, title: &str, messages: &[&str]) {
        self.call(
            user,
            "POST",
            "/api/conversations",
            Some(json!({"id": id, "title": title})),
        )
        .await;
        for content in messages {
            self.call(
                user,
                "POST",
                &format!("/api/conversations/{id}/messages"),
                Some(json!({"role": "user", "content": content})),
            )
            .await;
        }
    }

    /// The hits' `(conversationId, matchedIn)`, in order.
    async fn search(&self, user: &str, q: &str) -> Vec<(String, String)> {
        let r = self.call(user, "GET", &format!("/api/search?q={q}"), None).await;
        r.json
            .as_array()
            .expect("hits")
            .iter()
            .map(|h| {
                (
                    h["conversationId"].as_str().unwrap_or_default().to_owned(),
                    h["matchedIn"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    fn table(&self) -> String {
        self.store.tables().conversations.clone()
    }

    /// A conversation's items as stored now (what a backfill's Scan page would hold).
    async fn images(&self, owner: &str, id: &str) -> Vec<std::collections::HashMap<String, AttributeValue>> {
        self.store
            .client()
            .query()
            .table_name(self.table())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("CONV#{owner}#{id}")))
            .consistent_read(true)
            .send()
            .await
            .expect("raw query")
            .items
            .unwrap_or_default()
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| (*a).to_owned()).collect()
}

async fn run(store: &DynamoStore, list: &[&str]) -> Summary {
    let parsed = parse_args(&args(list)).expect("arguments");
    reindex::run(&parsed, Some(store.client().clone()))
        .await
        .expect("a reindex")
}

fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique("athena-reindex"));
    std::fs::create_dir_all(&dir).expect("dir");
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reindex_command_makes_what_the_stream_never_saw_searchable() {
    let s = unindexed().await;
    s.conversation(
        ALICE,
        "plan",
        "Cobalt glaze schedule",
        &["the cobalt batch is late", "cobalt cobalt firing"],
    )
    .await;
    s.conversation(ALICE, "old", "Cobalt archive", &["cobalt leftovers"])
        .await;
    s.call(ALICE, "DELETE", "/api/conversations/old", None).await;
    s.conversation(ALICE, "gone", "Cobalt gone", &["cobalt gone forever"])
        .await;
    s.call(ALICE, "DELETE", "/api/conversations/gone", None).await;
    s.call(ALICE, "DELETE", "/api/trash/gone", None).await;
    s.conversation(BOB, "bobs", "Zirconium", &["cobalt and zirconium"])
        .await;
    assert!(s.search(ALICE, "cobalt").await.is_empty(), "never indexed");

    let checkpoint = temp_file("reindex.checkpoint");
    let table = s.table();
    let line = [
        "--table",
        table.as_str(),
        "--segments",
        "3",
        "--checkpoint",
        checkpoint.to_str().expect("path"),
    ];
    assert_eq!(reindex::command(&args(&line), Some(s.store.client().clone())).await, 0);

    // Alice's title first, then her messages by relevance; the trashed conversation hidden, the
    // deleted one absent; Bob's words under Bob only.
    let plan = |m: &str| ("plan".to_owned(), m.to_owned());
    assert_eq!(
        s.search(ALICE, "cobalt").await,
        vec![plan("title"), plan("message"), plan("message")]
    );
    assert!(s.search(ALICE, "zirconium").await.is_empty());
    assert_eq!(
        s.search(BOB, "cobalt").await,
        vec![("bobs".to_owned(), "message".to_owned())]
    );
    let postings = raw_postings(&s.store).await;
    assert!(postings.iter().all(|p| !p["sk"].contains("gone")), "{postings:?}");
    let bob = format!("S(\"SRCH#{BOB}#");
    assert!(postings
        .iter()
        .filter(|p| p["pk"].contains("zirconium"))
        .all(|p| p["pk"].starts_with(&bob)));
    s.call(ALICE, "POST", "/api/trash/old/restore", None).await;
    assert_eq!(
        s.search(ALICE, "leftovers").await,
        vec![("old".to_owned(), "message".to_owned())],
        "a restored conversation's backfilled postings serve again"
    );

    // The checkpoint has every segment done: running it again reads nothing.
    let text = std::fs::read_to_string(&checkpoint).expect("checkpoint");
    for segment in 0..3 {
        assert!(text.lines().any(|l| l == format!("{segment} done")), "{text}");
    }
    let again = run(&s.store, &line).await;
    assert_eq!((again.done.items_read, again.segments_already_done), (0, 3));

    // Without it, a rerun writes the same postings: nothing changes.
    let rerun = run(&s.store, &["--table", table.as_str(), "--segments", "2"]).await;
    assert_eq!(rerun.done.postings, postings.len() as u64);
    assert_eq!(rerun.write_units, rerun.done.postings);
    assert_eq!(raw_postings(&s.store).await, postings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_resumes_from_its_checkpoint() {
    let s = unindexed().await;
    for i in 0..4 {
        s.conversation(ALICE, &format!("c{i}"), &format!("Basalt {i}"), &["basalt core sample"])
            .await;
    }
    let table = s.table();
    let full_file = temp_file("full.checkpoint");
    let full_path = full_file.to_str().expect("path");
    let line = |file: &str| {
        args(&[
            "--table",
            table.as_str(),
            "--segments",
            "1",
            "--page-size",
            "3",
            "--checkpoint",
            file,
        ])
    };
    let client = Some(s.store.client().clone());
    let full = reindex::run(&parse_args(&line(full_path)).expect("args"), client.clone())
        .await
        .expect("a full run");
    let text = std::fs::read_to_string(&full_file).expect("checkpoint");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 4, "one line per page: {text}");
    // As if it stopped after its first page.
    let stopped_file = temp_file("stopped.checkpoint");
    std::fs::write(&stopped_file, format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2])).expect("write");
    let stopped_path = stopped_file.to_str().expect("path");
    let resumed = reindex::run(&parse_args(&line(stopped_path)).expect("args"), client.clone())
        .await
        .expect("a resumed run");
    assert_eq!(
        resumed.done.items_read,
        full.done.items_read - 3,
        "it skips the first page"
    );
    assert!(resumed.done.postings < full.done.postings);
    assert!(std::fs::read_to_string(&stopped_file)
        .expect("checkpoint")
        .ends_with("0 done\n"));
    assert_eq!(s.search(ALICE, "basalt").await.len(), 8);
    // A checkpoint of another segmentation or table is refused before anything is read.
    let other = args(&[
        "--table",
        table.as_str(),
        "--segments",
        "2",
        "--checkpoint",
        stopped_path,
    ]);
    assert_eq!(reindex::command(&other, client.clone()).await, 2);
    let other_table = args(&["--table", "another", "--segments", "1", "--checkpoint", stopped_path]);
    assert_eq!(reindex::command(&other_table, client).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postings_written_after_a_delete_are_dropped_by_the_search() {
    let s = unindexed().await;
    s.conversation(ALICE, "cleared", "Tungsten rods", &["tungsten rod stock"])
        .await;
    s.conversation(ALICE, "deleted", "Tungsten bars", &["tungsten bar stock"])
        .await;
    s.conversation(ALICE, "kept", "Kept", &["tungsten kept"]).await;
    // A backfill page read these images, then the messages and the conversation were deleted,
    // then the page's postings were written.
    let mut stale = s.images(ALICE, "cleared").await;
    stale.extend(s.images(ALICE, "deleted").await);
    stale.extend(s.images(ALICE, "kept").await);
    s.call(ALICE, "DELETE", "/api/conversations/cleared/messages", None)
        .await;
    s.call(ALICE, "DELETE", "/api/conversations/deleted", None).await;
    s.call(ALICE, "DELETE", "/api/trash/deleted", None).await;
    // And an image of the kept message from before an in-place replacement of its text.
    let mut edited = s
        .images(ALICE, "kept")
        .await
        .into_iter()
        .find(|item| matches!(item.get("sk"), Some(AttributeValue::S(sk)) if sk.starts_with("MSG#")))
        .expect("the kept message");
    edited.insert(
        "content".to_owned(),
        AttributeValue::S("tungsten kept molybdenum".to_owned()),
    );
    stale.push(edited);
    let written = s.store.backfill_items(stale).await.expect("backfill");
    assert_eq!(written.documents, 7, "three titles, three messages, one older version");
    let tungsten = raw_postings(&s.store)
        .await
        .into_iter()
        .filter(|p| p["pk"].ends_with("#tungsten\")"))
        .count();
    assert_eq!(
        tungsten, 5,
        "the leftover postings are there (two titles, three messages)"
    );
    // The cleared conversation's title still matches; its message and the deleted
    // conversation do not come back.
    assert_eq!(
        s.search(ALICE, "tungsten").await,
        vec![
            ("cleared".to_owned(), "title".to_owned()),
            ("kept".to_owned(), "message".to_owned())
        ]
    );
    assert!(s.search(ALICE, "bars").await.is_empty());
    assert!(
        s.search(ALICE, "molybdenum").await.is_empty(),
        "a word the message no longer holds"
    );
    assert!(s.search(ALICE, "stock").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_refused() {
    for bad in [
        &["--segments", "0"][..],
        &["--segments", "65"],
        &["--segments", "four"],
        &["--page-size", "0"],
        &["--table", "a", "--db", "b"],
        &["--table", ""],
        &["--user", "not a user id!"],
        &["--user", "alice-0001", "--checkpoint", "f"],
        &["--table"],
        &["--bogus"],
    ] {
        assert_eq!(reindex::command(&args(bad), None).await, 2, "{bad:?}");
    }
    assert_eq!(reindex::command(&args(&["--help"]), None).await, 0);
    let db = temp_file("unused.db");
    let db = db.to_str().expect("path");
    assert_eq!(
        reindex::command(&args(&["--db", db, "--user", "alice-0001"]), None).await,
        2,
        "--user is for DynamoDB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_files_index_is_rebuilt_from_its_tables() {
    use shared::domain::text::query_terms;
    use shared::domain::{Conversation, IdGenerator, Message, Role, UserId};
    use shared::store::prelude::*;
    use shared::store::IndexQuery;
    let path = temp_file("athena.db");
    let alice = UserId::parse(ALICE).expect("user");
    let ids = IdGenerator::new();
    let now = shared::domain::now();
    let mut c = Conversation::new(ids.conversation_id(), alice.clone(), "Kiln log", "model", None, now);
    c.title = "Kiln log".to_owned();
    let m = Message::text(
        ids.message_id(),
        c.id.clone(),
        Role::User,
        "the kiln overheats".to_owned(),
        now,
    );
    let query = IndexQuery {
        terms: query_terms("kiln").expect("terms"),
        solution: None,
        offset: 0,
        limit: 20,
    };
    {
        let store = EmbeddedStore::open(&path).expect("open");
        store.create_conversation(&c, &[m]).await.expect("create");
        assert_eq!(store.search_index(&alice, &query).await.expect("search").len(), 2);
    }
    {
        // A damaged index: its documents lost behind the triggers' back.
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch("DROP TRIGGER search_docs_ad; DELETE FROM search_docs;")
            .expect("damage");
    }
    let store = EmbeddedStore::open(&path).expect("open");
    assert!(store.search_index(&alice, &query).await.expect("search").is_empty());
    drop(store);
    let db = path.to_str().expect("path");
    assert_eq!(reindex::command(&args(&["--db", db]), None).await, 0);
    let store = EmbeddedStore::open(&path).expect("open");
    assert_eq!(store.search_index(&alice, &query).await.expect("search").len(), 2);
    drop(store);
    let again = reindex::run(&parse_args(&args(&["--db", db])).expect("args"), None)
        .await
        .expect("again");
    assert_eq!((again.store, again.done.documents), ("embedded", 2));
    let store = EmbeddedStore::open(&path).expect("open");
    assert_eq!(store.search_index(&alice, &query).await.expect("search").len(), 2);
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
}
