//! Full-text search over HTTP (issue 18, deliverable 2), on both stores: `GET /api/search`
//! finds the caller's titles and messages, ranked (title first, then relevance, then newest),
//! with plain-text snippets and UTF-16 highlight ranges, 20 hits a page with a cursor scoped to
//! the query; another user's content is never found; hits of a deleted conversation vanish at
//! once (resolved against the conversation); bad queries are `400 VALIDATION`. On DynamoDB the
//! index is written by the stream consumer from moto's real stream records (`settle`).

use athena_tests::indexed::{Indexed, IntoIndexed};
use athena_tests::tokens::{self, as_user};
use athena_tests::{on_both_stores, spawn_app, Reply, TestApp};
use serde_json::{json, Value};

const ALICE: &str = "alice-0001";
const BOB: &str = "bob-0002";

struct SearchApp {
    app: TestApp,
    ix: Indexed,
}

async fn search_app(ix: Indexed) -> SearchApp {
    let mut config = tokens::jwt_config(tokens::verifier());
    config.rate_limit_per_minute = 0;
    SearchApp {
        app: spawn_app(ix.store.clone(), config).await,
        ix,
    }
}

impl SearchApp {
    async fn call(&self, user: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        as_user(&self.app, user, method, path, body).await
    }

    async fn conversation(&self, user: &str, id: &str, title: &str, extra: Value) -> Reply {
        let mut body = json!({"id": id, "title": title});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let r = self.call(user, "POST", "/api/conversations", Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r
    }

    async fn message(&self, user: &str, id: &str, role: &str, content: &str) -> String {
        let r = self
            .call(
                user,
                "POST",
                &format!("/api/conversations/{id}/messages"),
                Some(json!({"role": role, "content": content})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json["id"].as_str().expect("message id").to_owned()
    }

    async fn search(&self, user: &str, query: &str) -> Reply {
        let r = self.call(user, "GET", &format!("/api/search?{query}"), None).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        r
    }
}

fn hits(r: &Reply) -> &Vec<Value> {
    r.json.as_array().expect("an array of hits")
}

/// The text a highlight range marks, read as JavaScript would (UTF-16 indices).
fn marked(hit: &Value) -> Vec<String> {
    let utf16: Vec<u16> = hit["snippet"].as_str().expect("snippet").encode_utf16().collect();
    hit["highlights"]
        .as_array()
        .expect("highlights")
        .iter()
        .map(|r| {
            let (a, b) = (
                r[0].as_u64().expect("start") as usize,
                r[1].as_u64().expect("end") as usize,
            );
            String::from_utf16_lossy(&utf16[a..b])
        })
        .collect()
}

async fn search_finds_ranks_snippets_and_pages(s: SearchApp) {
    s.conversation(
        ALICE,
        "press",
        "Press 2 valve 🚀",
        json!({"solutionType": "maintenance"}),
    )
    .await;
    let once = s
        .message(ALICE, "press", "user", "Is the valve on press 2 leaking?")
        .await;
    let twice = s
        .message(
            ALICE,
            "press",
            "assistant",
            "<b>Ünïcode</b> 🚀 Valve, valve: replace it",
        )
        .await;
    s.conversation(ALICE, "other", "Oven", json!({})).await;
    let mut common = Vec::new();
    for i in 0..23 {
        common.push(
            s.message(ALICE, "other", "user", &format!("oven reading {i} is fine"))
                .await,
        );
    }
    s.ix.settle().await;

    let r = s.search(ALICE, "q=VALVE").await;
    let found = hits(&r);
    assert_eq!(found.len(), 3, "{}", r.text);
    assert_eq!(found[0]["matchedIn"], "title");
    assert_eq!(found[0]["conversationTitle"], "Press 2 valve 🚀");
    assert!(found[0].get("messageId").is_none());
    assert_eq!(marked(&found[0]), ["valve"]);
    assert_eq!(
        (found[1]["messageId"].as_str(), found[1]["role"].as_str()),
        (Some(twice.as_str()), Some("assistant")),
        "two occurrences rank first"
    );
    assert_eq!(
        found[1]["snippet"], "<b>Ünïcode</b> 🚀 Valve, valve: replace it",
        "plain text, verbatim: the client renders it as text"
    );
    assert_eq!(marked(&found[1]), ["Valve", "valve"]);
    assert_eq!(found[2]["messageId"].as_str(), Some(once.as_str()));
    assert_eq!(found[2]["conversationId"], "press");
    assert!(r.header("x-next-cursor").is_none());

    // Every word must match; the filter by solution.
    assert_eq!(hits(&s.search(ALICE, "q=valve%20leaking").await).len(), 1);
    assert_eq!(
        hits(&s.search(ALICE, "q=valve&solutionType=maintenance").await).len(),
        3
    );
    assert!(hits(&s.search(ALICE, "q=valve&solutionType=general").await).is_empty());

    // 23 hits: 20, then 3 with the cursor; newest first at equal relevance.
    let first = s.search(ALICE, "q=oven%20reading").await;
    assert_eq!(hits(&first).len(), 20);
    let cursor = first.header("x-next-cursor").expect("a next page").to_owned();
    let next = s.search(ALICE, &format!("q=oven%20reading&cursor={cursor}")).await;
    let ids: Vec<&str> = hits(&first)
        .iter()
        .chain(hits(&next))
        .map(|h| h["messageId"].as_str().expect("message hit"))
        .collect();
    let newest_first: Vec<&str> = common.iter().rev().map(String::as_str).collect();
    assert_eq!(ids, newest_first);
    assert!(next.header("x-next-cursor").is_none());
    let small = s.search(ALICE, "q=oven%20reading&limit=5").await;
    assert_eq!(hits(&small).len(), 5);
    // The cursor belongs to its query.
    let other = s
        .call(ALICE, "GET", &format!("/api/search?q=oven&cursor={cursor}"), None)
        .await;
    assert_eq!((other.status, other.code()), (400, "VALIDATION"), "{}", other.text);
}

async fn another_users_content_is_never_found(s: SearchApp) {
    s.conversation(ALICE, "plan", "Secret merger", json!({})).await;
    s.message(ALICE, "plan", "user", "the secret merger closes friday")
        .await;
    // Bob holds a conversation of the same id.
    s.conversation(BOB, "plan", "Lunch", json!({})).await;
    s.ix.settle().await;
    assert_eq!(hits(&s.search(ALICE, "q=merger").await).len(), 2);
    for q in ["merger", "secret", "friday", "closes%20friday"] {
        let r = s.search(BOB, &format!("q={q}")).await;
        assert!(hits(&r).is_empty(), "{q}: {}", r.text);
    }
    // Alice's cursor is not Bob's.
    for i in 0..21 {
        s.message(ALICE, "plan", "user", &format!("merger note {i}")).await;
    }
    s.ix.settle().await;
    let page = s.search(ALICE, "q=merger").await;
    let cursor = page.header("x-next-cursor").expect("a next page").to_owned();
    let theirs = s
        .call(BOB, "GET", &format!("/api/search?q=merger&cursor={cursor}"), None)
        .await;
    assert_eq!(theirs.status, 400, "{}", theirs.text);
    let unauthenticated = s.app.call("GET", "/api/search?q=merger", None).await;
    assert_eq!(unauthenticated.status, 401);
}

async fn hits_of_deleted_or_cleared_conversations_vanish(s: SearchApp) {
    s.conversation(ALICE, "gone", "Turbine", json!({})).await;
    s.message(ALICE, "gone", "user", "turbine vibration").await;
    s.conversation(ALICE, "kept", "Kept", json!({})).await;
    s.message(ALICE, "kept", "user", "turbine check").await;
    s.ix.settle().await;
    assert_eq!(hits(&s.search(ALICE, "q=turbine").await).len(), 3);
    // Before the index catches up (DynamoDB): the hits are checked against the conversation.
    let deleted = s.call(ALICE, "DELETE", "/api/conversations/gone", None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    let r = s.search(ALICE, "q=turbine").await;
    let ids: Vec<&str> = hits(&r)
        .iter()
        .map(|h| h["conversationId"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["kept"]);
    let cleared = s.call(ALICE, "DELETE", "/api/conversations/kept/messages", None).await;
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    s.ix.settle().await;
    assert!(hits(&s.search(ALICE, "q=turbine").await).is_empty());
    let renamed = s
        .call(
            ALICE,
            "PATCH",
            "/api/conversations/kept",
            Some(json!({"title": "Compressor"})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    s.ix.settle().await;
    assert_eq!(hits(&s.search(ALICE, "q=compressor").await).len(), 1);
    assert!(hits(&s.search(ALICE, "q=kept").await).is_empty());
}

/// The solution filter applies in the index, before the page is cut: a maintenance conversation
/// ranked below 30 general ones (older, and its word in a longer message) fills a page of two
/// with the archived one, and no empty pages with cursors come first.
async fn a_filtered_search_finds_hits_deep_in_the_ranking(s: SearchApp) {
    for (id, archived) in [("m-old", false), ("m-archived", true)] {
        s.conversation(ALICE, id, "Line 4", json!({"solutionType": "maintenance"}))
            .await;
        s.message(
            ALICE,
            id,
            "user",
            "the gearbox on line four hums at low speed and the oil looks darker than last week",
        )
        .await;
        if archived {
            let r = s
                .call(
                    ALICE,
                    "PATCH",
                    &format!("/api/conversations/{id}"),
                    Some(json!({"isArchived": true})),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    }
    for i in 0..30 {
        let id = format!("g-{i:02}");
        s.conversation(ALICE, &id, "General", json!({})).await;
        s.message(ALICE, &id, "user", "gearbox noise").await;
    }
    s.ix.settle().await;
    let all = s.search(ALICE, "q=gearbox&limit=20").await;
    assert_eq!(hits(&all).len(), 20);
    assert!(hits(&all)
        .iter()
        .all(|h| h["conversationId"].as_str().is_some_and(|id| id.starts_with("g-"))));
    let r = s.search(ALICE, "q=gearbox&solutionType=maintenance&limit=2").await;
    let mut ids: Vec<&str> = hits(&r)
        .iter()
        .map(|h| h["conversationId"].as_str().expect("id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["m-archived", "m-old"], "{}", r.text);
    assert!(r.header("x-next-cursor").is_none());
    let general = s.search(ALICE, "q=gearbox&solutionType=general&limit=20").await;
    assert_eq!(hits(&general).len(), 20);
    assert!(general.header("x-next-cursor").is_some());
    let r = s.search(BOB, "q=gearbox&solutionType=maintenance").await;
    assert!(hits(&r).is_empty());
}

async fn bad_queries_are_refused(s: SearchApp) {
    let long = "a".repeat(201);
    let word = "w".repeat(65);
    for query in [
        String::new(),
        "q=".to_owned(),
        "q=%20%3F%21".to_owned(),
        format!("q={long}"),
        format!("q={word}"),
        "q=a%20b%20c%20d%20e%20f%20g%20h%20i".to_owned(),
        "q=a%00b".to_owned(),
        "q=a&limit=0".to_owned(),
        "q=a&limit=21".to_owned(),
        "q=a&limit=x".to_owned(),
        "q=a&solutionType=cooking".to_owned(),
        "q=a&cursor=not-a-cursor".to_owned(),
    ] {
        let r = s.call(ALICE, "GET", &format!("/api/search?{query}"), None).await;
        assert_eq!((r.status, r.code()), (400, "VALIDATION"), "{query}: {}", r.text);
    }
    let post = s.call(ALICE, "POST", "/api/search?q=a", None).await;
    assert_eq!(post.status, 405);
}

on_both_stores!(
    |store| search_app(store.indexed().await).await,
    [
        search_finds_ranks_snippets_and_pages,
        another_users_content_is_never_found,
        hits_of_deleted_or_cleared_conversations_vanish,
        a_filtered_search_finds_hits_deep_in_the_ranking,
        bad_queries_are_refused,
    ]
);
