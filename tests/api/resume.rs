//! Checkpoints, resumable streams and the stop route, on both stores: the store's checkpoint
//! conformance, then over real HTTP: a dropped stream resumed whole (also from a second gateway
//! on the same store, as another Lambda instance would), the partial reply shown while it
//! streams, a stop from another request, the reply of a turn that died rebuilt from its
//! checkpoints, and a disconnect that still stops the turn when resumable streams are off.

use std::sync::Arc;
use std::time::Duration;

use athena_tests::{local_user, on_both_stores, parse_sse, spawn_state, unique, TestApp};
use serde_json::{json, Value};
use shared::chat::ChatConfig;
use shared::config::Config;
use shared::domain::{Conversation, ConversationId, FinishReason, IdGenerator, ManualClock, MessageId, Role, UserId};
use shared::error::StoreError;
use shared::state::AppState;
use shared::store::{Checkpoint, CheckpointAck, Store, TurnFinish, TurnLimits, TurnStart, TurnWrite};

// ---------------------------------------------------------------- store conformance

fn model() -> &'static str {
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
}

async fn created(store: &dyn Store, owner: &UserId) -> Conversation {
    let ids = IdGenerator::new();
    let c = Conversation::new(
        ids.conversation_id(),
        owner.clone(),
        "New conversation",
        model(),
        None,
        shared::domain::now(),
    );
    store.create_conversation(&c, &[]).await.expect("create");
    c
}

/// Admits a turn of `c` (nothing else written but the live-turn marker); returns its id and reply id.
async fn begun(store: &dyn Store, c: &Conversation, started: shared::domain::Timestamp) -> (String, MessageId) {
    let ids = IdGenerator::new();
    let (turn_id, reply_id) = (ids.next_ulid(), ids.message_id());
    store
        .begin_turn(&TurnStart {
            payer: c.owner.clone(),
            owner: c.owner.clone(),
            conversation_id: c.id.clone(),
            write: TurnWrite::Check,
            limits: TurnLimits::none(),
            turn_id: turn_id.clone(),
            now: started,
            reservation: 0,
            reservation_nano_usd: 0,
            reply_id: reply_id.clone(),
            reply_parent: MessageId::root(),
        })
        .await
        .expect("admit");
    (turn_id, reply_id)
}

fn checkpoint(c: &Conversation, turn_id: &str, seq: u32, events: &str, last: bool) -> Checkpoint {
    Checkpoint {
        owner: c.owner.clone(),
        conversation_id: c.id.clone(),
        turn_id: turn_id.to_owned(),
        seq,
        events: events.to_owned(),
        last,
        at: shared::domain::now(),
    }
}

async fn checkpoints_are_kept_in_order_once_each_for_their_owner(store: Arc<dyn Store>) {
    let owner = UserId::parse(&unique("cp-owner")).expect("user");
    let other = UserId::parse(&unique("cp-other")).expect("user");
    let c = created(store.as_ref(), &owner).await;
    assert_eq!(store.live_turn(&owner, &c.id).await.expect("live"), None, "no turn yet");
    let (turn, reply) = begun(store.as_ref(), &c, shared::domain::now()).await;
    let live = store
        .live_turn(&owner, &c.id)
        .await
        .expect("live")
        .expect("a live turn");
    assert_eq!(
        (live.turn_id.as_str(), &live.reply_id, live.stop_requested),
        (turn.as_str(), &reply, false)
    );
    let (_, with_messages) = (store.get_conversation_with_messages(&owner, &c.id).await)
        .map(|(c, m)| (m, c))
        .expect("read");
    assert_eq!(
        with_messages.live.map(|l| l.turn_id),
        Some(turn.clone()),
        "the conversation read carries it"
    );

    for (seq, events) in [(0, "[\"a\"]"), (1, "[\"b\"]")] {
        let ack = store
            .checkpoint(&checkpoint(&c, &turn, seq, events, false))
            .await
            .expect("checkpoint");
        assert_eq!(ack, CheckpointAck::Continue);
    }
    // A retry of position 0 (an ambiguous timeout) changes nothing.
    let again = store
        .checkpoint(&checkpoint(&c, &turn, 0, "[\"changed\"]", false))
        .await
        .expect("retry");
    assert_eq!(again, CheckpointAck::Continue);
    let all = store.checkpoints(&owner, &c.id, &turn, None).await.expect("read");
    let got: Vec<(u32, &str)> = all.iter().map(|c| (c.seq, c.events.as_str())).collect();
    assert_eq!(got, vec![(0, "[\"a\"]"), (1, "[\"b\"]")]);
    let after = store
        .checkpoints(&owner, &c.id, &turn, Some(0))
        .await
        .expect("read after");
    assert_eq!(after.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![1]);

    // Another user sees nothing and cannot stop it.
    assert!(matches!(
        store.live_turn(&other, &c.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store
        .checkpoints(&other, &c.id, &turn, None)
        .await
        .expect("read")
        .is_empty());
    assert!(matches!(
        store.request_stop(&other, &c.id, &turn).await,
        Err(StoreError::NotFound)
    ));
    assert!(!store.stop_requested(&owner, &c.id, &turn).await.expect("asked"));

    // The owner stops it: the next checkpoint says so, and so does the question.
    store.request_stop(&owner, &c.id, &turn).await.expect("stop");
    assert!(store.stop_requested(&owner, &c.id, &turn).await.expect("asked"));
    let stopped = store
        .checkpoint(&checkpoint(&c, &turn, 2, "[\"c\"]", false))
        .await
        .expect("checkpoint");
    assert_eq!(stopped, CheckpointAck::Stop);
    assert!(matches!(
        store.request_stop(&owner, &c.id, "another-turn").await,
        Err(StoreError::NotFound)
    ));

    // A newer turn replaces the marker; the stopped one's question no longer concerns it.
    let (newer, _) = begun(store.as_ref(), &c, shared::domain::now()).await;
    assert_eq!(
        store.live_turn(&owner, &c.id).await.expect("live").map(|l| l.turn_id),
        Some(newer.clone())
    );
    assert!(!store.stop_requested(&owner, &c.id, &newer).await.expect("asked"));

    // Too large: refused, nothing written.
    let huge = "x".repeat(shared::store::MAX_CHECKPOINT_BYTES + 1);
    assert!(matches!(
        store.checkpoint(&checkpoint(&c, &newer, 0, &huge, false)).await,
        Err(StoreError::TooLarge(_))
    ));
    assert!(store
        .checkpoints(&owner, &c.id, &newer, None)
        .await
        .expect("read")
        .is_empty());
}

async fn the_final_checkpoint_is_written_with_the_finish_and_deleted_with_the_conversation(store: Arc<dyn Store>) {
    let owner = UserId::parse(&unique("cp-final")).expect("user");
    let c = created(store.as_ref(), &owner).await;
    let (turn, _) = begun(store.as_ref(), &c, shared::domain::now()).await;
    store
        .checkpoint(&checkpoint(&c, &turn, 0, "[1]", false))
        .await
        .expect("checkpoint");
    let finish = TurnFinish {
        payer: owner.clone(),
        owner: owner.clone(),
        conversation_id: c.id.clone(),
        turn_id: turn.clone(),
        reply: None,
        lease: None,
        settlement: Default::default(),
        started: shared::domain::now(),
        stats: None,
        title: None,
        checkpoint: Some(checkpoint(&c, &turn, 1, "[2]", true)),
    };
    store.finish_turn(&finish).await.expect("finish");
    store
        .finish_turn(&finish)
        .await
        .expect("finish again: the receipt answers");
    let all = store.checkpoints(&owner, &c.id, &turn, None).await.expect("read");
    assert_eq!(
        all.iter().map(|c| (c.seq, c.last)).collect::<Vec<_>>(),
        vec![(0, false), (1, true)]
    );

    store.delete_conversation(&owner, &c.id).await.expect("delete");
    assert!(matches!(
        store.live_turn(&owner, &c.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store
        .checkpoints(&owner, &c.id, &turn, None)
        .await
        .expect("read")
        .is_empty());
    let late = store
        .checkpoint(&checkpoint(&c, &turn, 2, "[3]", false))
        .await
        .expect("late checkpoint");
    assert_eq!(
        late,
        CheckpointAck::Stop,
        "a turn of a deleted conversation is told to stop"
    );
    assert!(store.stop_requested(&owner, &c.id, &turn).await.expect("asked"));
}

// ---------------------------------------------------------------- over HTTP

/// Checkpoints every 50 ms, so the tests follow turns quickly.
fn chat(resumable: bool) -> ChatConfig {
    ChatConfig {
        resumable_streams: resumable,
        checkpoint_interval: Duration::from_millis(50),
        ..ChatConfig::default()
    }
}

fn state(store: &Arc<dyn Store>, resumable: bool) -> AppState {
    AppState::new(Config::local(), Arc::clone(store))
        .with_chat(Arc::new(shared::llm::scripted::ScriptedModel), chat(resumable))
}

async fn app(store: &Arc<dyn Store>, resumable: bool) -> TestApp {
    spawn_state(state(store, resumable), Arc::clone(store)).await
}

fn body(id: &str, text: &str) -> Value {
    json!({"id": id, "messages": [{"id": unique("m"), "role": "user", "parts": [{"type": "text", "text": text}]}]})
}

/// Posts a turn and reads its stream until `text-delta`s have arrived, then drops the connection.
async fn post_then_drop(app: &TestApp, path: &str, body: Value) {
    let mut res = app
        .client
        .post(format!("{}{path}", app.base))
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status().as_u16(), 200);
    let mut seen = String::new();
    while seen.matches("text-delta").count() < 3 {
        match res.chunk().await.expect("chunk") {
            Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            None => panic!("the stream ended before it was dropped: {seen}"),
        }
    }
    drop(res);
}

/// `GET {path}` as the AI SDK's `reconnectToStream` sends it; status and body.
async fn reconnect(app: &TestApp, path: &str) -> (u16, String) {
    let reply = app.send(app.client.get(format!("{}{path}", app.base))).await;
    (reply.status, reply.text)
}

/// Polls until the conversation's reply is stored (the turn ran on without its client).
async fn stored_reply(app: &TestApp, id: &str) -> shared::domain::Message {
    for _ in 0..400 {
        let conversation = ConversationId::parse(id).expect("id");
        if let Ok((_, messages)) = app
            .store
            .get_conversation_with_messages(&local_user(), &conversation)
            .await
        {
            if let Some(reply) = messages.into_iter().find(|m| m.role == Role::Assistant) {
                return reply;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no reply was stored");
}

fn text_deltas(chunks: &[Value]) -> String {
    athena_tests::sse::text_of(chunks)
}

async fn a_dropped_stream_resumes_whole_and_the_turn_runs_to_its_end(store: Arc<dyn Store>) {
    let app = app(&store, true).await;
    let id = unique("resume");
    post_then_drop(&app, "/api/chat/maintenance", body(&id, "#deltas:30 #delay:20 go")).await;
    let (status, text) = reconnect(&app, &format!("/api/chat/maintenance/{id}/stream")).await;
    assert_eq!(status, 200, "{text}");
    let chunks = parse_sse(&text);
    let types = athena_tests::sse::chunk_types(&chunks);
    assert_eq!(
        types.first().map(String::as_str),
        Some("start"),
        "replayed from its start: {types:?}"
    );
    assert_eq!(types.last().map(String::as_str), Some("[DONE]"));
    assert!(types.contains(&"finish".to_owned()));
    let reply = stored_reply(&app, &id).await;
    assert_eq!(
        reply.finish_reason,
        Some(FinishReason::Stop),
        "not aborted: it ran to its end"
    );
    assert_eq!(
        text_deltas(&chunks),
        reply.content,
        "the resumed stream assembles the stored reply"
    );
    assert_eq!(reply.content.matches('w').count(), 30);
    let start = chunks.iter().find(|c| c["type"] == "start").expect("start");
    assert_eq!(start["messageId"], reply.id.as_str());

    // Finished a moment ago: still resumable (a late reconnect gets the whole reply).
    let (again, text) = reconnect(&app, &format!("/api/chat/maintenance/{id}/stream")).await;
    assert_eq!(again, 200);
    assert_eq!(text_deltas(&parse_sse(&text)), reply.content);
}

async fn nothing_to_resume_is_204(store: Arc<dyn Store>) {
    let app = app(&store, true).await;
    let (status, text) = reconnect(&app, &format!("/api/chat/{}/stream", unique("never"))).await;
    assert_eq!(
        (status, text.as_str()),
        (204, ""),
        "an unknown chat id: nothing to resume"
    );
    // A conversation without turns.
    let created = app
        .call("POST", "/api/conversations", Some(json!({"title": "quiet"})))
        .await;
    let id = created.json["id"].as_str().expect("id").to_owned();
    assert_eq!(reconnect(&app, &format!("/api/chat/{id}/stream")).await.0, 204);
    // Invalid ids are refused like everywhere else.
    let (bad, _) = reconnect(&app, "/api/chat/not%20an%20id/stream").await;
    assert_eq!(bad, 400);
}

async fn a_finished_turn_stops_being_resumable_after_the_window(store: Arc<dyn Store>) {
    let clock = Arc::new(ManualClock::new(shared::domain::now()));
    let state = state(&store, true).with_clock(clock.clone() as Arc<dyn shared::domain::Clock>);
    let app = spawn_state(state, Arc::clone(&store)).await;
    let id = unique("window");
    let (status, _, _) = athena_tests::post_chat(&app, "/api/chat", body(&id, "#deltas:3 hi")).await;
    assert_eq!(status, 200);
    assert_eq!(reconnect(&app, &format!("/api/chat/{id}/stream")).await.0, 200);
    clock.advance(chrono::Duration::seconds(shared::chat::RESUME_WINDOW_SECS + 1));
    assert_eq!(reconnect(&app, &format!("/api/chat/{id}/stream")).await.0, 204);
}

async fn a_second_gateway_on_the_same_store_resumes_the_stream(store: Arc<dyn Store>) {
    // Two "instances": the turn runs on the first, the client reconnects to the second.
    let first = app(&store, true).await;
    let second = app(&store, true).await;
    let id = unique("instances");
    post_then_drop(&first, "/api/chat", body(&id, "#deltas:40 #delay:15 go")).await;
    let (status, text) = reconnect(&second, &format!("/api/chat/{id}/stream")).await;
    assert_eq!(status, 200);
    let chunks = parse_sse(&text);
    let reply = stored_reply(&second, &id).await;
    assert_eq!(text_deltas(&chunks), reply.content);
    assert_eq!(reply.content.matches('w').count(), 40);
}

async fn the_partial_reply_shows_as_streaming_until_it_is_stored(store: Arc<dyn Store>) {
    let app = app(&store, true).await;
    let id = unique("partial");
    let post = {
        let (client, url, body) = (
            app.client.clone(),
            format!("{}/api/chat", app.base),
            body(&id, "#deltas:40 #delay:25 go"),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("post")
                .text()
                .await
                .expect("body")
        })
    };
    let mut streaming = None;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let reply = app.call("GET", &format!("/api/conversations/{id}"), None).await;
        if reply.status != 200 {
            continue;
        }
        let last = reply.json["messages"]
            .as_array()
            .and_then(|m| m.last())
            .cloned()
            .unwrap_or(Value::Null);
        if last["status"] == "streaming" && !last["content"].as_str().unwrap_or("").is_empty() {
            streaming = Some(last);
            break;
        }
    }
    let streaming = streaming.expect("the partial reply showed while streaming");
    assert_eq!(streaming["role"], "assistant");
    let body = post.await.expect("post task");
    let full = text_deltas(&parse_sse(&body));
    let partial = streaming["content"].as_str().expect("content");
    assert!(
        full.starts_with(partial) && partial.len() < full.len(),
        "{partial:?} is a prefix of the reply"
    );
    let done = app.call("GET", &format!("/api/conversations/{id}"), None).await;
    let last = done.json["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .expect("messages");
    assert_eq!(last["content"], full.as_str());
    assert!(last.get("status").is_none(), "stored: no longer streaming");
    assert_eq!(last["id"], streaming["id"], "the same message id throughout");
}

async fn stop_ends_a_running_turn_from_another_request(store: Arc<dyn Store>) {
    let app = app(&store, true).await;
    let id = unique("stop");
    let mut res = app
        .client
        .post(format!("{}/api/chat/support", app.base))
        .json(&body(&id, "#deltas:400 #delay:10 go"))
        .send()
        .await
        .expect("post");
    let mut seen = String::new();
    while !seen.contains("text-delta") {
        let bytes = res.chunk().await.expect("chunk").expect("more");
        seen.push_str(&String::from_utf8_lossy(&bytes));
    }
    let stopped = app.call("POST", &format!("/api/chat/support/{id}/stop"), None).await;
    assert_eq!(stopped.status, 202, "{}", stopped.text);
    assert_eq!(stopped.json["stopping"], true);
    // The client's stream ends (the turn noticed at its next checkpoint) with a finish.
    while let Some(bytes) = res.chunk().await.expect("chunk") {
        seen.push_str(&String::from_utf8_lossy(&bytes));
    }
    let chunks = parse_sse(&seen);
    let types = athena_tests::sse::chunk_types(&chunks);
    assert_eq!(types.last().map(String::as_str), Some("[DONE]"), "{types:?}");
    let reply = stored_reply(&app, &id).await;
    assert_eq!(reply.finish_reason, Some(FinishReason::Aborted));
    assert_eq!(stopped.json["messageId"], reply.id.as_str());
    let words = reply.content.matches('w').count();
    assert!(
        words > 0 && words < 400,
        "a partial reply is kept: {words} of 400 deltas"
    );
    assert_eq!(text_deltas(&chunks), reply.content);

    // Nothing running: 204. Not the caller's (or no such) conversation: 404.
    assert_eq!(
        app.call("POST", &format!("/api/chat/support/{id}/stop"), None)
            .await
            .status,
        204
    );
    let missing = app
        .call("POST", &format!("/api/chat/support/{}/stop", unique("nope")), None)
        .await;
    assert_eq!((missing.status, missing.code()), (404, "NOT_FOUND"));
}

async fn the_reply_of_a_turn_that_died_is_rebuilt_from_its_checkpoints(store: Arc<dyn Store>) {
    let app = app(&store, true).await;
    let owner = local_user();
    let c = created(app.store.as_ref(), &owner).await;
    // Admitted 10 minutes ago (its lease long over), two checkpoints, never finished: its
    // instance died.
    let started = shared::domain::now() - chrono::Duration::minutes(10);
    let (turn, reply_id) = begun(app.store.as_ref(), &c, started).await;
    let events = |v: Value| v.to_string();
    let first = events(
        json!([{"t": "start", "v": {"message_id": reply_id.as_str(), "metadata": {}}}, {"t": "start-step"}, {"t": "text", "v": "Half of "}]),
    );
    let second = events(json!([{"t": "text", "v": "an answer"}]));
    for (seq, e) in [(0, first), (1, second)] {
        app.store
            .checkpoint(&checkpoint(&c, &turn, seq, &e, false))
            .await
            .expect("checkpoint");
    }
    assert_eq!(
        reconnect(&app, &format!("/api/chat/{}/stream", c.id)).await.0,
        204,
        "dead: nothing to follow"
    );
    let read = app.call("GET", &format!("/api/conversations/{}", c.id), None).await;
    assert_eq!(read.status, 200);
    let last = read.json["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .expect("a message");
    assert_eq!(
        (last["id"].as_str(), last["content"].as_str()),
        (Some(reply_id.as_str()), Some("Half of an answer"))
    );
    assert_eq!(last["error"], shared::chat::INTERRUPTED);
    assert!(last.get("status").is_none());
    let stored = app.stored(c.id.as_str()).await;
    assert_eq!(stored.iter().filter(|m| m.id == reply_id).count(), 1, "stored once");
    // Reading again changes nothing.
    let again = app.call("GET", &format!("/api/conversations/{}", c.id), None).await;
    assert_eq!(again.json["messages"], read.json["messages"]);
}

async fn a_disconnect_stops_the_turn_when_streams_are_not_resumable(store: Arc<dyn Store>) {
    let app = app(&store, false).await;
    let id = unique("not-resumable");
    post_then_drop(&app, "/api/chat", body(&id, "#deltas:200 #delay:10 go")).await;
    let reply = stored_reply(&app, &id).await;
    assert_eq!(reply.finish_reason, Some(FinishReason::Aborted));
    assert!(reply.content.matches('w').count() < 200);
    assert_eq!(
        reconnect(&app, &format!("/api/chat/{id}/stream")).await.0,
        204,
        "off: nothing to resume"
    );
}

on_both_stores!([
    checkpoints_are_kept_in_order_once_each_for_their_owner,
    the_final_checkpoint_is_written_with_the_finish_and_deleted_with_the_conversation,
    a_dropped_stream_resumes_whole_and_the_turn_runs_to_its_end,
    nothing_to_resume_is_204,
    a_finished_turn_stops_being_resumable_after_the_window,
    a_second_gateway_on_the_same_store_resumes_the_stream,
    the_partial_reply_shows_as_streaming_until_it_is_stored,
    stop_ends_a_running_turn_from_another_request,
    the_reply_of_a_turn_that_died_is_rebuilt_from_its_checkpoints,
    a_disconnect_stops_the_turn_when_streams_are_not_resumable
]);
