//! Importing conversations (issue 18, deliverable 3) over HTTP, on both stores: ChatGPT's and
//! Claude's `conversations.json` (the fixtures in `tests/fixtures/`, in their documented shapes:
//! a branch, a hidden system node and a tool node) and Athena's own export are imported, exported
//! again and compared (texts, timestamps to the millisecond, branches); a bad item among good ones
//! fails alone; importing the same file again writes nothing; a conversation of more than 100
//! messages imports (on DynamoDB: more than one transaction holds); another user's import never
//! shows up in the caller's conversations.

use std::sync::Arc;

use athena_tests::tokens::{self, as_user};
use athena_tests::{on_both_stores, spawn_app, workspace_root, TestApp};
use serde_json::{json, Value};
use shared::domain::{ConversationId, UserId};

const ALICE: &str = "alice-0001";
const BOB: &str = "bob-0002";

fn fixture(name: &str) -> Value {
    let path = workspace_root().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("a JSON fixture")
}

async fn import(app: &TestApp, user: &str, source: &str, body: Value) -> Value {
    let r = as_user(app, user, "POST", &format!("/api/import?source={source}"), Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

async fn export(app: &TestApp, user: &str, id: &str) -> Value {
    let r = as_user(app, user, "GET", &format!("/api/conversations/{id}/export"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

fn statuses(report: &Value) -> Vec<String> {
    report["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|i| i["status"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn ids(report: &Value) -> Vec<String> {
    report["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|i| i["conversationId"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `(role, content, createdAt)` of every exported message, in order.
fn rows(doc: &Value) -> Vec<(String, String, String)> {
    doc["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
                    (s("role"), s("content"), s("createdAt"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The index of each message's parent in the export (`None` for a first message).
fn parents(doc: &Value) -> Vec<Option<usize>> {
    let messages = doc["messages"].as_array().cloned().unwrap_or_default();
    messages
        .iter()
        .map(|m| {
            m["parentId"]
                .as_str()
                .and_then(|p| messages.iter().position(|o| o["id"].as_str() == Some(p)))
        })
        .collect()
}

fn row(role: &str, content: &str, at: &str) -> (String, String, String) {
    (role.to_owned(), content.to_owned(), at.to_owned())
}

/// Imports the fixture as Alice, exports it, imports that export as Bob and exports it again:
/// both exports carry the same texts, timestamps and tree.
async fn reimported_by_bob(app: &TestApp, alice_doc: &Value) {
    let report = import(app, BOB, "athena", alice_doc.clone()).await;
    assert_eq!(statuses(&report), ["imported"], "{report}");
    let id = alice_doc["conversation"]["id"].as_str().unwrap_or_default();
    let bobs = export(app, BOB, id).await;
    assert_eq!(rows(&bobs), rows(alice_doc));
    assert_eq!(parents(&bobs), parents(alice_doc));
    assert_eq!(
        bobs["conversation"]["activeLeafId"],
        alice_doc["conversation"]["activeLeafId"]
    );
    assert_eq!(
        bobs["conversation"]["createdAt"],
        alice_doc["conversation"]["createdAt"]
    );
    assert_eq!(bobs["conversation"]["importedFrom"], "athena");
}

async fn a_chatgpt_export_round_trips_its_texts_timestamps_and_branches(app: TestApp) {
    let file = fixture("chatgpt-conversations.json");
    let report = import(&app, ALICE, "chatgpt", file.clone()).await;
    assert_eq!(statuses(&report), ["imported", "imported"], "{report}");
    assert_eq!(report["totals"], json!({"imported": 2, "skipped": 0, "failed": 0}));
    let [plan, oven] = &ids(&report)[..] else {
        panic!("two ids: {report}")
    };

    let doc = export(&app, ALICE, plan).await;
    let c = &doc["conversation"];
    assert_eq!(c["title"], "Press 2 maintenance plan");
    assert_eq!(c["createdAt"], "2024-03-01T08:00:00.123Z");
    assert_eq!(c["updatedAt"], "2024-03-01T09:00:00.654Z");
    assert_eq!(c["importedFrom"], "chatgpt");
    assert_eq!(
        rows(&doc),
        [
            row(
                "user",
                "When is press 2 due for maintenance?",
                "2024-03-01T08:00:01.500Z"
            ),
            row(
                "assistant",
                "```\nsearch(\"press 2 maintenance schedule\")\n```",
                "2024-03-01T08:00:03.250Z"
            ),
            row(
                "tool",
                "Press 2: last service 2024-01-15, interval 60 days.",
                "2024-03-01T08:00:04.000Z"
            ),
            row(
                "assistant",
                "Press 2 was serviced on 15 January with a 60-day interval, so it is due on **15 March**.",
                "2024-03-01T08:00:06.789Z"
            ),
            row("user", "Can we push it to April?", "2024-03-01T08:16:40.001Z"),
            row(
                "assistant",
                "Pushing it to April would exceed the interval by about two weeks.",
                "2024-03-01T08:16:42.002Z"
            ),
            row(
                "user",
                "[image]\nCan we push it to the first week of April? Here is the shift plan.",
                "2024-03-01T08:58:20.500Z"
            ),
            row(
                "assistant",
                "The first week of April is 17 days late; I would keep 15 March.",
                "2024-03-01T09:00:00.654Z"
            ),
        ],
        "the hidden empty system node is left out; every other node is kept in tree order"
    );
    // The edited question: two versions answering the same reply, each with its own answer.
    assert_eq!(
        parents(&doc),
        [None, Some(0), Some(1), Some(2), Some(3), Some(4), Some(3), Some(6)]
    );
    let messages = doc["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(c["activeLeafId"], messages[7]["id"], "current_node is the leaf shown");
    assert_eq!(messages[1]["model"], "gpt-4");
    assert_eq!(messages[7]["model"], "gpt-4o");

    // The conversation shows the current branch, its preview and every message counted.
    let shown = as_user(&app, ALICE, "GET", &format!("/api/conversations/{plan}"), None).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.json["importedFrom"], "chatgpt");
    assert_eq!(shown.json["messageCount"], 8);
    assert_eq!(
        shown.json["lastMessage"],
        "The first week of April is 17 days late; I would keep 15 March."
    );
    let branch: Vec<&str> = shown.json["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    let expected: Vec<&str> = [0, 1, 2, 3, 6, 7]
        .iter()
        .filter_map(|&i| messages[i]["id"].as_str())
        .collect();
    assert_eq!(branch, expected);

    let second = export(&app, ALICE, oven).await;
    assert_eq!(second["conversation"]["title"], "Oven temperature ✓ quick question");
    assert_eq!(
        rows(&second),
        [
            row(
                "user",
                "What is the reflow oven's peak temperature for lead-free solder?",
                "2024-03-02T08:00:01.250Z"
            ),
            row(
                "assistant",
                "Typically 235–250 °C for SAC305, held above liquidus for 60–90 s.",
                "2024-03-02T08:01:00.500Z"
            ),
        ]
    );

    // Again: nothing is written twice.
    let again = import(&app, ALICE, "auto", file).await;
    assert_eq!(statuses(&again), ["skipped", "skipped"], "{again}");
    assert_eq!(ids(&again), ids(&report));
    assert_eq!(again["results"][0]["code"], "ALREADY_IMPORTED");
    let listed = as_user(&app, ALICE, "GET", "/api/conversations", None).await;
    assert_eq!(listed.json.as_array().map(Vec::len), Some(2), "{}", listed.text);
    assert_eq!(rows(&export(&app, ALICE, plan).await), rows(&doc));

    reimported_by_bob(&app, &doc).await;
}

async fn a_claude_export_round_trips_its_texts_and_timestamps(app: TestApp) {
    let file = fixture("claude-conversations.json");
    let report = import(&app, ALICE, "claude", file.clone()).await;
    assert_eq!(statuses(&report), ["imported", "imported"], "{report}");
    let [yield_drop, eco] = &ids(&report)[..] else {
        panic!("two ids: {report}")
    };
    let doc = export(&app, ALICE, yield_drop).await;
    assert_eq!(doc["conversation"]["title"], "Line 3 yield drop");
    assert_eq!(doc["conversation"]["createdAt"], "2024-03-04T08:15:00.123Z");
    assert_eq!(doc["conversation"]["updatedAt"], "2024-03-04T08:20:30.987Z");
    assert_eq!(doc["conversation"]["importedFrom"], "claude");
    assert_eq!(
        rows(&doc),
        [
            row(
                "user",
                "Why did yield drop on line 3 last week?\n\n📎 yield-week-9.csv",
                "2024-03-04T08:15:01.250Z"
            ),
            row(
                "assistant",
                "Yield dropped on Thursday, right after the reflow profile change.\n\n\
                 > Tool mes_machine_status({\"machine\":\"reflow-oven-3\"})\n\n\
                 {\"status\":\"running\",\"profile\":\"B\"}\n\nThe oven now runs profile B.",
                "2024-03-04T08:15:09.500Z"
            ),
            row(
                "user",
                "Should we switch back to profile A?",
                "2024-03-04T08:20:00.001Z"
            ),
            row(
                "assistant",
                "Yes: profile A kept yield above 97% for six weeks.",
                "2024-03-04T08:20:30.987Z"
            ),
        ]
    );
    assert_eq!(parents(&doc), [None, Some(0), Some(1), Some(2)]);
    let untitled = export(&app, ALICE, eco).await;
    assert_eq!(untitled["conversation"]["title"], "New conversation");
    assert_eq!(rows(&untitled).len(), 2);

    let again = import(&app, ALICE, "auto", file).await;
    assert_eq!(statuses(&again), ["skipped", "skipped"], "{again}");
    reimported_by_bob(&app, &doc).await;
}

/// An Athena conversation made here (a branch: an edited question) exported and imported into
/// another account is the same conversation; into its own account it is already there.
async fn an_athena_export_round_trips_between_accounts(app: TestApp) {
    let created = as_user(
        &app,
        ALICE,
        "POST",
        "/api/conversations",
        Some(json!({"id": "athena-1", "title": "Shift handover", "solutionType": "support"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    for (role, content) in [("user", "Open tickets?"), ("assistant", "Two: T-1 and T-2.")] {
        let r = as_user(
            &app,
            ALICE,
            "POST",
            "/api/conversations/athena-1/messages",
            Some(json!({"role": role, "content": content})),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let doc = export(&app, ALICE, "athena-1").await;
    assert_eq!(doc["conversation"]["importedFrom"], Value::Null);
    let mine = import(&app, ALICE, "athena", doc.clone()).await;
    assert_eq!(statuses(&mine), ["skipped"], "{mine}");
    // The whole-account envelope holds the same documents.
    let envelope = json!({"format": "athena.export", "version": 1, "exportedAt": "2026-03-02T09:00:00.000Z",
        "conversations": [doc.clone()]});
    let bobs = import(&app, BOB, "auto", envelope).await;
    assert_eq!(statuses(&bobs), ["imported"], "{bobs}");
    let copy = export(&app, BOB, "athena-1").await;
    assert_eq!(rows(&copy), rows(&doc));
    let strip = |d: &Value| {
        let mut m = d["messages"].clone();
        for x in m.as_array_mut().into_iter().flatten() {
            x.as_object_mut().map(|o| o.remove("clientId"));
        }
        m
    };
    assert_eq!(strip(&copy), strip(&doc), "ids, parents, parts, usage: the same");
    assert_eq!(copy["conversation"]["solutionType"], "support");
    assert_eq!(copy["conversation"]["importedFrom"], "athena");
    // Alice's conversation is untouched by Bob's import.
    assert_eq!(
        export(&app, ALICE, "athena-1").await["conversation"]["importedFrom"],
        Value::Null
    );
}

async fn a_bad_item_fails_alone_and_the_others_are_imported(app: TestApp) {
    let chatgpt = fixture("chatgpt-conversations.json");
    let claude = fixture("claude-conversations.json");
    let body = json!([
        chatgpt[1].clone(),
        {"title": "broken", "mapping": 5},
        42,
        {"format": "athena.conversation", "version": 7, "conversation": {}, "messages": []},
        {"uuid": "x", "name": "Odd sender", "chat_messages": [{"sender": "robot", "text": "beep"}]},
        claude[1].clone(),
    ]);
    let report = import(&app, ALICE, "auto", body).await;
    assert_eq!(
        statuses(&report),
        ["imported", "failed", "failed", "failed", "failed", "imported"],
        "{report}"
    );
    assert_eq!(report["totals"], json!({"imported": 2, "skipped": 0, "failed": 4}));
    let results = report["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results[1]["code"], "INVALID_ITEM");
    assert_eq!(results[1]["title"], "broken");
    assert_eq!(results[2]["code"], "UNSUPPORTED");
    assert_eq!(results[3]["code"], "UNSUPPORTED");
    assert!(
        results[4]["message"].as_str().unwrap_or_default().contains("robot"),
        "{report}"
    );
    let indexes: Vec<u64> = results.iter().filter_map(|r| r["index"].as_u64()).collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4, 5]);
    let listed = as_user(&app, ALICE, "GET", "/api/conversations", None).await;
    assert_eq!(listed.json.as_array().map(Vec::len), Some(2));

    // A file that breaks part-way: what came before is imported, the break is reported.
    let text = format!("[{}, {{\"mapping\": ", chatgpt[0]);
    let req = app
        .client
        .post(format!("{}/api/import", app.base))
        .bearer_auth(tokens::token(BOB))
        .header("content-type", "application/json")
        .body(text);
    let broken = app.send(req).await;
    assert_eq!(broken.status, 200, "{}", broken.text);
    assert_eq!(statuses(&broken.json), ["imported", "failed"]);
    assert_eq!(broken.json["results"][1]["code"], "INVALID_JSON");

    // Not an export at all, a bad source, no body: 400; not JSON: 415.
    for (path, body) in [
        ("/api/import", Some(json!("hello"))),
        ("/api/import?source=bard", Some(json!([]))),
        ("/api/import", None),
    ] {
        let r = as_user(&app, ALICE, "POST", path, body).await;
        assert_eq!((r.status, r.code()), (400, "VALIDATION"), "{path}: {}", r.text);
    }
    let empty = import(&app, ALICE, "auto", json!([])).await;
    assert_eq!(empty["totals"], json!({"imported": 0, "skipped": 0, "failed": 0}));
}

/// 150 messages in one conversation: more than one DynamoDB transaction holds (100 items).
async fn a_conversation_of_more_than_100_messages_imports(app: TestApp) {
    let mut mapping = serde_json::Map::new();
    let n = 150usize;
    for i in 0..n {
        let id = format!("node-{i:03}");
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        mapping.insert(
            id.clone(),
            json!({"id": id, "parent": (i > 0).then(|| format!("node-{:03}", i - 1)),
                "children": if i + 1 < n { vec![format!("node-{:03}", i + 1)] } else { vec![] },
                "message": {"author": {"role": role}, "create_time": 1_709_000_000.0 + i as f64,
                    "content": {"content_type": "text", "parts": [format!("message {i}")]}}}),
        );
    }
    let file = json!([{"title": "Long", "create_time": 1_709_000_000.0, "update_time": 1_709_000_149.0,
        "mapping": mapping, "current_node": "node-149", "conversation_id": "long-1"}]);
    let report = import(&app, ALICE, "chatgpt", file.clone()).await;
    assert_eq!(statuses(&report), ["imported"], "{report}");
    let id = ids(&report).remove(0);
    let shown = as_user(&app, ALICE, "GET", &format!("/api/conversations/{id}"), None).await;
    assert_eq!(shown.json["messageCount"], 150);
    assert_eq!(shown.json["lastMessage"], "message 149");
    assert_eq!(shown.json["updatedAt"], "2024-02-27T02:15:49.000Z");
    let texts: Vec<String> = shown.json["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["content"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let expected: Vec<String> = (0..n).map(|i| format!("message {i}")).collect();
    assert_eq!(texts, expected, "every message, in order, on the active branch");
    let listed = as_user(&app, ALICE, "GET", "/api/conversations", None).await;
    assert_eq!(listed.json[0]["id"], id.as_str());
    // Again: skipped, nothing doubled.
    let again = import(&app, ALICE, "chatgpt", file).await;
    assert_eq!(statuses(&again), ["skipped"]);
    let stored = app
        .store
        .get_conversation_with_messages(
            &UserId::parse(ALICE).expect("user"),
            &ConversationId::parse(&id).expect("id"),
        )
        .await
        .expect("stored");
    assert_eq!(stored.1.len(), 150);
    assert_eq!(stored.0.message_count, 150);
}

/// Isolation: an import writes only the caller's conversations; another user's import of the
/// same file is theirs alone, and never shows in the caller's list or export.
async fn an_import_writes_only_the_callers_conversations(app: TestApp) {
    let file = fixture("claude-conversations.json");
    let alices = import(&app, ALICE, "auto", file.clone()).await;
    assert_eq!(statuses(&alices), ["imported", "imported"]);
    let listed = as_user(&app, BOB, "GET", "/api/conversations", None).await;
    assert_eq!(listed.json, json!([]), "{}", listed.text);
    for id in ids(&alices) {
        let theirs = as_user(&app, BOB, "GET", &format!("/api/conversations/{id}/export"), None).await;
        assert_eq!(theirs.status, 404);
    }
    // Bob's import of the same file makes Bob's own copies (the ids are per owner).
    let bobs = import(&app, BOB, "auto", file).await;
    assert_eq!(statuses(&bobs), ["imported", "imported"]);
    let unauthenticated = app.call("POST", "/api/import", Some(json!([]))).await;
    assert_eq!(unauthenticated.status, 401);
    let get = as_user(&app, ALICE, "GET", "/api/import", None).await;
    assert_eq!(get.status, 405);
    // The import is audited.
    let audit = as_user(&app, ALICE, "GET", "/api/audit", None).await;
    assert!(audit.text.contains("conversations.import"), "{}", audit.text);
}

on_both_stores!(
    |store| spawn_app(Arc::new(store), tokens::jwt_config(tokens::verifier())).await,
    [
        a_chatgpt_export_round_trips_its_texts_timestamps_and_branches,
        a_claude_export_round_trips_its_texts_and_timestamps,
        an_athena_export_round_trips_between_accounts,
        a_bad_item_fails_alone_and_the_others_are_imported,
        a_conversation_of_more_than_100_messages_imports,
        an_import_writes_only_the_callers_conversations,
    ]
);
