//! Token budgets, the concurrent-stream cap and the audit log over real HTTP (scripted model),
//! and the chat turn's store round trips counted by an instrumented store, on both stores.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use athena_tests::{as_user, dynamo_store, local_user, parse_sse, post_chat, spawn_chat_app, tokens};
use futures::StreamExt;
use serde_json::{json, Value};
use shared::chat::ChatConfig;
use shared::config::Config;
use shared::domain::{ConversationId, UserId};
use shared::error::StoreError;
use shared::store::counting::CountingStore;
use shared::store::Store;

fn user_message(id: &str, text: &str) -> Value {
    json!({"id": id, "messages": [{"role": "user", "content": text}]})
}

// ---------------------------------------------------------------- budgets

/// What the local user's day budget item holds (probing `conversation`).
async fn spent_today(store: &dyn Store, conversation: &str) -> u64 {
    let id = ConversationId::parse(conversation).expect("id");
    athena_tests::probes::spent_today(store, &local_user(), &id).await
}

async fn a_spent_budget_is_a_json_429_before_any_stream_byte_and_charges_reported_usage(store: Arc<dyn Store>) {
    let app = spawn_chat_app(Arc::clone(&store), Config::local(), ChatConfig::default()).await;
    let (status, _, body) = post_chat(&app, "/api/chat", user_message("budget-1", "#deltas:4")).await;
    assert_eq!(status, 200, "{body}");
    let chunks = parse_sse(&body);
    let finish = chunks.iter().find(|c| c["type"] == "finish").expect("finish chunk");
    let usage = &finish["messageMetadata"]["usage"];
    let spent = usage["inputTokens"].as_u64().expect("input") + usage["outputTokens"].as_u64().expect("output");
    assert!(spent > 4, "{usage}");
    // The turn reserved its estimated cost and settled to exactly the reported usage.
    assert_eq!(spent_today(store.as_ref(), "budget-1").await, spent);
    // A budget with room for the next turn's reservation (its input estimate plus the 4,096
    // output tokens it may produce) admits it...
    let mut config = Config::local();
    config.token_budget_day = spent + 10_000;
    let roomy = spawn_chat_app(Arc::clone(&store), config, ChatConfig::default()).await;
    let (status, _, _) = post_chat(&roomy, "/api/chat", user_message("budget-2", "#deltas:1")).await;
    assert_eq!(status, 200);
    let spent = spent_today(store.as_ref(), "budget-1").await;
    // ...and one without room for it refuses it before anything streams or is stored, although
    // less than the budget is spent (before reservations, a budget one above what was spent
    // admitted a turn).
    let mut config = Config::local();
    config.token_budget_day = spent + 1_000;
    let tight = spawn_chat_app(Arc::clone(&store), config, ChatConfig::default()).await;
    let refused = tight
        .send(
            tight
                .client
                .post(format!("{}/api/chat", tight.base))
                .json(&user_message("budget-3", "one more")),
        )
        .await;
    assert_eq!((refused.status, refused.code()), (429, "BUDGET"), "{}", refused.text);
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert!(!refused.text.contains("data:"), "never a half-started stream");
    let retry: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!((1..=86_400).contains(&retry), "{retry}");
    let user = local_user();
    let missing = store
        .get_conversation(&user, &ConversationId::parse("budget-3").expect("id"))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound)),
        "nothing stored: {missing:?}"
    );
    // The refusal is in the audit log.
    let audit = tight.call("GET", "/api/audit?limit=1", None).await;
    assert_eq!(audit.status, 200);
    assert_eq!(audit.json[0]["action"], "chat.turn");
    assert_eq!(audit.json[0]["status"], "BUDGET");
    assert_eq!(audit.json[0]["resource"], "budget-3");
    // A month budget spent answers the same way.
    let mut config = Config::local();
    config.token_budget_day = 0;
    config.token_budget_month = spent;
    let monthly = spawn_chat_app(Arc::clone(&store), config, ChatConfig::default()).await;
    let (status, headers, body) = post_chat(&monthly, "/api/chat", user_message("budget-4", "hi")).await;
    assert_eq!(status, 429);
    assert!(body.contains("month"), "{body}");
    assert!(headers.contains_key("retry-after"));
}

/// The local user's day budget of 3,000 tokens, the stream cap off, replies of at most 200
/// tokens: each turn reserves its input estimate plus 200. Resumable streams are off, so a
/// client that goes away stops its turn (on, the turn would run on and be charged in full).
async fn a_3000_token_budget_app(store: &Arc<dyn Store>) -> athena_tests::TestApp {
    let mut config = Config::local();
    config.token_budget_day = 3_000;
    config.max_concurrent_streams = 0;
    let chat = ChatConfig {
        max_output_tokens: 200,
        resumable_streams: false,
        ..ChatConfig::default()
    };
    spawn_chat_app(Arc::clone(store), config, chat).await
}

async fn turns_aborted_by_the_client_reserve_their_cost_and_are_charged_an_estimate(store: Arc<dyn Store>) {
    use shared::chat::estimate;
    let app = a_3000_token_budget_app(&store).await;
    let text = "#deltas:1000 #delay:20";
    let message = shared::llm::ModelMessage {
        role: shared::llm::ModelRole::User,
        content: vec![shared::llm::ModelContent::Text(text.to_owned())],
    };
    let input = estimate::input_tokens(shared::chat::system_prompt(None), &[message], &[]);
    let reservation = estimate::reservation(input, 200);
    // Ten long turns at once; every response's status is known before any client goes away, so
    // no turn has settled yet: exactly the reservations that fit in 3,000 are admitted.
    let ids: Vec<String> = (0..10).map(|i| format!("aborted-{i}")).collect();
    let responses = futures::future::join_all(ids.iter().map(|id| {
        app.client
            .post(format!("{}/api/chat", app.base))
            .json(&user_message(id, text))
            .send()
    }))
    .await;
    let mut admitted = Vec::new();
    for (id, res) in ids.iter().zip(responses) {
        let res = res.expect("send");
        match res.status().as_u16() {
            200 => admitted.push((id.clone(), res)),
            429 => {
                let body: Value = res.json().await.expect("json");
                assert_eq!(body["error"]["code"], "BUDGET", "{body}");
            }
            other => panic!("{other}"),
        }
    }
    let fit = usize::try_from(3_000 / reservation).expect("count");
    assert!(
        fit < 10,
        "the reservation ({reservation}) makes the budget too small for ten"
    );
    assert_eq!(admitted.len(), fit, "{reservation} tokens reserved each");
    // Each client reads for ~300 ms, then goes away: the model's usage never arrives.
    let reading = admitted.into_iter().map(|(id, res)| async move {
        let mut body = res.bytes_stream();
        let _ = tokio::time::timeout(Duration::from_millis(300), async {
            while let Some(piece) = body.next().await {
                piece.expect("chunk");
            }
        })
        .await;
        id
    });
    let aborted = futures::future::join_all(reading).await;
    // Each aborted turn stores its partial reply in the write that settles its reservation.
    let user = local_user();
    let mut expected = 0;
    for id in &aborted {
        let mut streamed = None;
        for _ in 0..200 {
            let (_, messages) = store
                .get_conversation_with_messages(&user, &ConversationId::parse(id).expect("id"))
                .await
                .expect("stored");
            if let Some(reply) = messages.iter().find(|m| m.role == shared::domain::Role::Assistant) {
                assert_eq!(reply.finish_reason, Some(shared::domain::FinishReason::Aborted));
                streamed = Some(reply.content.chars().count() as u64);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let streamed = streamed.expect("the aborted turn ended and stored its partial reply");
        assert!(streamed > 0, "{id} streamed something in 300 ms");
        let charge = estimate::unreported_call(input, streamed);
        assert!(charge > input && charge < reservation, "{charge}");
        expected += charge;
    }
    // Charged exactly the estimates: input + characters streamed / 3, rounded up, each.
    assert_eq!(spent_today(store.as_ref(), &aborted[0]).await, expected);
    // A message whose input estimate alone is over what is left is refused the same way.
    let long = format!("{} #deltas:1", "x".repeat(9_000));
    let (status, headers, body) = post_chat(&app, "/api/chat", user_message("too-long", &long)).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("BUDGET") && !body.contains("data:"), "{body}");
    assert!(headers.contains_key("retry-after"));
}

// ---------------------------------------------------------------- stream cap

async fn the_stream_cap_answers_429_and_an_aborted_stream_frees_its_slot(store: Arc<dyn Store>) {
    let mut config = Config::local();
    config.max_concurrent_streams = 1;
    // A disconnect frees the slot only when it stops the turn (resumable streams off).
    let chat = ChatConfig {
        resumable_streams: false,
        ..ChatConfig::default()
    };
    let app = spawn_chat_app(store, config, chat).await;
    let res = app
        .client
        .post(format!("{}/api/chat", app.base))
        .json(&user_message("long-one", "#deltas:400 #delay:20"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 200);
    let mut body = res.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("w1 ") {
        let piece = body.next().await.expect("more").expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&piece));
    }
    let capped = app
        .send(
            app.client
                .post(format!("{}/api/chat", app.base))
                .json(&user_message("second", "#deltas:1")),
        )
        .await;
    assert_eq!((capped.status, capped.code()), (429, "RATE_LIMIT"), "{}", capped.text);
    assert_eq!(capped.header("retry-after"), Some("5"));
    assert!(!capped.text.contains("data:"));
    // The client goes away: the turn ends, stores its partial reply and releases the slot.
    drop(body);
    let mut admitted = false;
    for _ in 0..100 {
        let (status, _, _) = post_chat(&app, "/api/chat", user_message("third", "#deltas:1")).await;
        if status == 200 {
            admitted = true;
            break;
        }
        assert_eq!(status, 429);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "the aborted stream's slot was released");
}

// ---------------------------------------------------------------- audit

async fn the_audit_log_lists_a_users_own_actions_newest_first(store: Arc<dyn Store>) {
    let mut config = tokens::jwt_config(tokens::verifier());
    config.admins = vec![UserId::parse("admin-1").expect("admin")];
    let app = spawn_chat_app(store, config, ChatConfig::default()).await;
    let (alice, bob) = (athena_tests::unique("alice"), athena_tests::unique("bob"));
    let created = as_user(&app, &alice, "POST", "/api/conversations", Some(json!({"title": "a"}))).await;
    assert_eq!(created.status, 201);
    let id = created.json["id"].as_str().expect("id").to_owned();
    let patched = as_user(
        &app,
        &alice,
        "PATCH",
        &format!("/api/conversations/{id}"),
        Some(json!({"title": "b"})),
    )
    .await;
    assert_eq!(patched.status, 200);
    let turn = app
        .client
        .post(format!("{}/api/chat", app.base))
        .bearer_auth(tokens::token(&alice))
        .json(&user_message(&id, "#deltas:2"))
        .send()
        .await
        .expect("send");
    assert_eq!(turn.status().as_u16(), 200);
    turn.text().await.expect("stream");
    let added = as_user(
        &app,
        &alice,
        "POST",
        &format!("/api/conversations/{id}/messages"),
        Some(json!({"role": "user", "content": "a note"})),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.text);
    let regenerated = app
        .client
        .post(format!("{}/api/chat", app.base))
        .bearer_auth(tokens::token(&alice))
        .json(&json!({"id": id, "messages": [], "trigger": "regenerate-message"}))
        .send()
        .await
        .expect("send");
    let status = regenerated.status().as_u16();
    let text = regenerated.text().await.expect("stream");
    assert_eq!(status, 200, "{text}");
    let cleared = as_user(
        &app,
        &alice,
        "DELETE",
        &format!("/api/conversations/{id}/messages"),
        None,
    )
    .await;
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    // Ids are scoped to their owner: Bob's client choosing Alice's id gets a conversation of his
    // own; only his own id, asked for again, conflicts (and is audited as refused).
    let his = json!({"id": id, "title": "mine"});
    let own = as_user(&app, &bob, "POST", "/api/conversations", Some(his.clone())).await;
    assert_eq!(own.status, 201, "{}", own.text);
    let taken = as_user(&app, &bob, "POST", "/api/conversations", Some(his)).await;
    assert_eq!((taken.status, taken.code()), (409, "CONFLICT"));
    let missing = as_user(&app, &alice, "DELETE", "/api/conversations/nope", None).await;
    assert_eq!(missing.status, 404);
    let deleted = as_user(&app, &alice, "DELETE", &format!("/api/conversations/{id}"), None).await;
    assert_eq!(deleted.status, 200);
    let theirs = as_user(&app, &bob, "POST", "/api/conversations", Some(json!({"title": "b"}))).await;
    assert_eq!(theirs.status, 201);

    let log = as_user(&app, &alice, "GET", "/api/audit", None).await;
    assert_eq!(log.status, 200, "{}", log.text);
    let entries = log.json.as_array().expect("array");
    let actions: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["resource"].as_str().unwrap_or(""),
                e["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("conversation.delete", id.as_str(), "ok"),
            ("conversation.delete", "nope", "NOT_FOUND"),
            ("messages.clear", id.as_str(), "ok"),
            ("chat.regenerate", id.as_str(), "ok"),
            ("messages.add", id.as_str(), "ok"),
            ("chat.turn", id.as_str(), "ok"),
            ("conversation.update", id.as_str(), "ok"),
            ("conversation.create", id.as_str(), "ok"),
        ]
    );
    assert!(entries.iter().all(|e| e["userId"] == alice.as_str()));
    assert!(entries
        .iter()
        .all(|e| e["requestId"].is_string() && e["at"].is_string()));
    // Paged with the opaque cursor like the other listings.
    let first = as_user(&app, &alice, "GET", "/api/audit?limit=5", None).await;
    assert_eq!(first.json.as_array().map(Vec::len), Some(5));
    let cursor = first.header("x-next-cursor").expect("cursor").to_owned();
    let second = as_user(
        &app,
        &alice,
        "GET",
        &format!("/api/audit?limit=5&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(second.json.as_array().map(Vec::len), Some(3));
    assert!(second.header("x-next-cursor").is_none());
    // Never another user's entries; only an admin may ask for someone else's.
    let bobs = as_user(&app, &bob, "GET", "/api/audit", None).await;
    let bobs_actions: Vec<(&str, &str)> = bobs
        .json
        .as_array()
        .expect("array")
        .iter()
        .map(|e| (e["action"].as_str().unwrap_or(""), e["status"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        bobs_actions,
        [
            ("conversation.create", "ok"),
            ("conversation.create", "CONFLICT"),
            ("conversation.create", "ok")
        ]
    );
    assert_eq!(
        (&bobs.json[1]["resource"], &bobs.json[2]["resource"]),
        (&json!(id), &json!(id)),
        "the refused create names the id it tried"
    );
    assert!(bobs
        .json
        .as_array()
        .expect("array")
        .iter()
        .all(|e| e["userId"] == bob.as_str()));
    let snooping = as_user(&app, &bob, "GET", &format!("/api/audit?userId={alice}"), None).await;
    assert_eq!((snooping.status, snooping.code()), (403, "FORBIDDEN"));
    let foreign_cursor = as_user(&app, &bob, "GET", &format!("/api/audit?cursor={cursor}"), None).await;
    assert_eq!(foreign_cursor.status, 400);
    let admin = as_user(&app, "admin-1", "GET", &format!("/api/audit?userId={alice}"), None).await;
    assert_eq!(admin.status, 200);
    assert_eq!(admin.json.as_array().map(Vec::len), Some(8));
}

// ---------------------------------------------------------------- round trips

async fn a_chat_turn_makes_two_store_calls_before_the_first_byte_and_four_in_all(store: Arc<dyn Store>) {
    let counting = Arc::new(CountingStore::new(store));
    // Budgets, the stream cap and the rate limit all on (the defaults), audit and analytics too.
    let app = spawn_chat_app(
        Arc::clone(&counting) as Arc<dyn Store>,
        Config::local(),
        ChatConfig::default(),
    )
    .await;
    let id = athena_tests::unique("rt");
    let regenerate = json!({"id": id, "messages": [], "trigger": "regenerate-message"});
    for (case, body) in [
        ("new conversation", user_message(&id, "#first-delay:300 #deltas:3")),
        ("follow-up turn", user_message(&id, "#first-delay:300 #deltas:3 again")),
        ("regenerate", regenerate),
    ] {
        counting.take();
        let res = app
            .client
            .post(format!("{}/api/chat", app.base))
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(res.status().as_u16(), 200, "{case}");
        let mut body = res.bytes_stream();
        let first = body.next().await.expect("a first byte").expect("chunk");
        assert!(!first.is_empty());
        // The model waits 300 ms before its first token: nothing else can have run yet.
        let before = counting.snapshot();
        while let Some(piece) = body.next().await {
            piece.expect("chunk");
        }
        let mut all = counting.take();
        // The budget levels (the soft limit: the default plan has budgets) and the caller's grant
        // (in case the conversation is someone else's shared with them) are read in parallel with
        // the conversation, in any order: still one round trip.
        let mut before = before;
        before[..3].sort();
        all[..3].sort();
        assert_eq!(
            before,
            [
                "budget_levels",
                "get_conversation_with_messages",
                "grant_for",
                "begin_turn"
            ],
            "{case}: before the first byte"
        );
        assert_eq!(
            all,
            [
                "budget_levels",
                "get_conversation_with_messages",
                "grant_for",
                "begin_turn",
                "finish_turn",
                "record_activity"
            ],
            "{case}: the whole turn"
        );
    }
    let user = local_user();
    let (_, messages) = counting
        .inner()
        .get_conversation_with_messages(&user, &ConversationId::parse(&id).expect("id"))
        .await
        .expect("stored");
    assert_eq!(
        messages.len(),
        5,
        "both turns stored both sides; the regenerate added a version of the last reply"
    );
    // A turn stopped before any output stores no reply (its first delta is 5 s away: the stop,
    // seen at the turn's next checkpoint poll within a second, ends it first even on a loaded
    // machine; the next turn's reply waits as long, the two user messages being one to the
    // scripted model); the next turn still makes two store calls before its first byte (a missing reply is looked into only when the same message is
    // sent again).
    let res = app
        .client
        .post(format!("{}/api/chat", app.base))
        .json(&user_message(&id, "#first-delay:5000 #deltas:3 slow"))
        .send()
        .await
        .expect("send");
    let stop = app.call("POST", &format!("/api/chat/{id}/stop"), None).await;
    assert_eq!(stop.status, 202, "{}", stop.text);
    let stopped = res.text().await.expect("body");
    assert!(!stopped.contains("text-delta"), "stopped before any output: {stopped}");
    counting.take();
    let res = app
        .client
        .post(format!("{}/api/chat", app.base))
        .json(&user_message(&id, "#first-delay:300 #deltas:3 after the stop"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 200);
    let mut body = res.bytes_stream();
    body.next().await.expect("a first byte").expect("chunk");
    let mut before = counting.snapshot();
    before[..3].sort();
    assert_eq!(
        before,
        [
            "budget_levels",
            "get_conversation_with_messages",
            "grant_for",
            "begin_turn"
        ],
        "after a turn without a reply: before the first byte (the levels read beside the conversation)"
    );
    while let Some(piece) = body.next().await {
        piece.expect("chunk");
    }
}

athena_tests::on_both_stores!([
    a_spent_budget_is_a_json_429_before_any_stream_byte_and_charges_reported_usage,
    turns_aborted_by_the_client_reserve_their_cost_and_are_charged_an_estimate,
    the_stream_cap_answers_429_and_an_aborted_stream_frees_its_slot,
    the_audit_log_lists_a_users_own_actions_newest_first,
    a_chat_turn_makes_two_store_calls_before_the_first_byte_and_four_in_all,
]);

/// Counts the DynamoDB requests themselves (every attempt, by `X-Amz-Target`).
#[derive(Debug)]
struct CountRequests(Arc<Mutex<Vec<String>>>);

impl aws_sdk_dynamodb::config::Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("?")
            .trim_start_matches("DynamoDB_20120810.")
            .to_owned();
        match self.0.lock() {
            Ok(mut seen) => seen.push(target),
            Err(poisoned) => poisoned.into_inner().push(target),
        }
        Ok(())
    }
}

/// The same turn on DynamoDB, counting HTTP requests to DynamoDB rather than store calls:
/// 2 before the first byte (Query, TransactWriteItems), 4 in all (+ TransactWriteItems,
/// BatchWriteItem), rate limit, budgets, stream cap, analytics and audit included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_turn_makes_two_dynamodb_requests_before_the_first_byte_and_four_in_all() {
    let tables = dynamo_store().await.tables().clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let client = athena_tests::dynamo_client(athena_tests::moto_endpoint()).await;
    let config = client
        .config()
        .to_builder()
        .interceptor(CountRequests(Arc::clone(&seen)))
        .build();
    let store = shared::store::dynamo::DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), tables);
    let app = spawn_chat_app(Arc::new(store), Config::local(), ChatConfig::default()).await;
    let take = || match seen.lock() {
        Ok(mut s) => std::mem::take(&mut *s),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    };
    let id = athena_tests::unique("rt");
    let regenerate = json!({"id": id, "messages": [], "trigger": "regenerate-message"});
    for (case, body) in [
        ("new conversation", user_message(&id, "#first-delay:300 #deltas:3")),
        ("follow-up turn", user_message(&id, "#first-delay:300 #deltas:3")),
        ("regenerate", regenerate),
    ] {
        take();
        let res = app
            .client
            .post(format!("{}/api/chat", app.base))
            .json(&body)
            .send()
            .await
            .expect("send");
        let mut body = res.bytes_stream();
        body.next().await.expect("a first byte").expect("chunk");
        let before = match seen.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        };
        while let Some(piece) = body.next().await {
            piece.expect("chunk");
        }
        let mut all = take();
        // The budget levels and the caller's grant (two BatchGetItems) are read beside the
        // conversation's Query (in any order).
        let mut before = before;
        before[..3].sort();
        all[..3].sort();
        assert_eq!(
            before,
            ["BatchGetItem", "BatchGetItem", "Query", "TransactWriteItems"],
            "{case}"
        );
        assert_eq!(
            all,
            [
                "BatchGetItem",
                "BatchGetItem",
                "Query",
                "TransactWriteItems",
                "TransactWriteItems",
                "BatchWriteItem"
            ],
            "{case}"
        );
    }
}
