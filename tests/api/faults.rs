//! Fault tests of the chat turn, on both stores: the store failing or stalling at each write of a
//! turn (the [`Faults`] wrapper over the store ports), the provider breaking mid-stream and the
//! client going away at several points. Each test asserts what is stored (messages, finish
//! reasons), what is charged (the day budget item, probed), which stream slot is held (the next
//! chat under a cap of one is admitted or refused 429) and what the client received (the SSE
//! chunks: `finish`, or an `error` chunk such as `STORE_UNAVAILABLE`).
//!
//! The gateway runs on the scripted model with a day budget of 1,000,000 tokens, one stream at
//! most and replies capped at 200 tokens; probes and reads go to the wrapped store directly, past
//! the faults.

use std::sync::Arc;
use std::time::Duration;

use athena_tests::faults::{Failure, Fault, Faults, Op, ALWAYS};
use athena_tests::{chunk_types, local_user, parse_sse, post_chat, spawn_chat_app, text_of, unique, TestApp};
use futures::StreamExt;
use serde_json::{json, Value};
use shared::chat::{estimate, ChatConfig, STORE_UNAVAILABLE};
use shared::config::Config;
use shared::domain::{Conversation, ConversationId, FinishReason, Message, Role};
use shared::error::StoreError;
use shared::store::Store;

/// The output cap of every turn here: a turn reserves its input estimate plus this.
const OUTPUT_CAP: u32 = 200;

/// A gateway on a store with faults, and a conversation of the local user's for the probes.
struct Rig {
    faults: Arc<Faults>,
    app: TestApp,
    probe: ConversationId,
}

/// The rig, with the finishing write's attempts bounded at `attempt` each.
async fn rig_with(store: Arc<dyn Store>, attempt: Duration) -> Rig {
    rig_configured(store, attempt, true).await
}

/// The rig with resumable streams off: a client that goes away stops its turn.
async fn rig_disconnect_stops(store: Arc<dyn Store>) -> Rig {
    rig_configured(store, ChatConfig::default().store_attempt_timeout, false).await
}

/// The rig; checkpoints every 50 ms.
async fn rig_configured(store: Arc<dyn Store>, attempt: Duration, resumable: bool) -> Rig {
    let faults = Faults::new(Arc::clone(&store));
    let mut config = Config::local();
    config.token_budget_day = 1_000_000;
    config.max_concurrent_streams = 1;
    let chat = ChatConfig {
        max_output_tokens: OUTPUT_CAP,
        store_attempt_timeout: attempt,
        resumable_streams: resumable,
        checkpoint_interval: Duration::from_millis(50),
        ..ChatConfig::default()
    };
    let app = spawn_chat_app(faults.store(), config, chat).await;
    let probe = ConversationId::parse(&unique("probe")).expect("id");
    let conversation = Conversation::new(
        probe.clone(),
        local_user(),
        "Probe",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        None,
        shared::domain::now(),
    );
    store
        .create_conversation(&conversation, &[])
        .await
        .expect("the probes' conversation");
    Rig { faults, app, probe }
}

/// The rig with the default attempt bound (2 s): no test here stalls a write under it.
async fn rig(store: Arc<dyn Store>) -> Rig {
    rig_with(store, ChatConfig::default().store_attempt_timeout).await
}

/// What one chat turn showed the client.
struct Seen {
    status: u16,
    body: String,
    chunks: Vec<Value>,
}

impl Seen {
    fn types(&self) -> Vec<String> {
        chunk_types(&self.chunks)
    }

    /// The turn ended with `finish` then `[DONE]`, and no error.
    fn assert_finished(&self) {
        assert_eq!(self.status, 200, "{}", self.body);
        let types = self.types();
        assert!(!types.iter().any(|t| t == "error"), "{}", self.body);
        assert_eq!(types[types.len() - 2..], ["finish", "[DONE]"], "{}", self.body);
    }

    /// The turn ended with an `error` chunk whose text starts with `code` (never `finish`).
    fn assert_error(&self, starts: &str) {
        assert_eq!(self.status, 200, "{}", self.body);
        let types = self.types();
        assert!(!types.iter().any(|t| t == "finish"), "never finish: {}", self.body);
        assert_eq!(types[types.len() - 2..], ["error", "[DONE]"], "{}", self.body);
        let error = &self.chunks[self.chunks.len() - 2];
        let text = error["errorText"].as_str().expect("errorText");
        assert!(text.starts_with(starts), "{text}");
    }

    /// Input + output tokens the `finish` chunk reports.
    fn reported(&self) -> u64 {
        let finish = self
            .chunks
            .iter()
            .find(|c| c["type"] == "finish")
            .expect("finish chunk");
        let usage = &finish["messageMetadata"]["usage"];
        usage["inputTokens"].as_u64().expect("input") + usage["outputTokens"].as_u64().expect("output")
    }
}

impl Rig {
    /// Posts `text` as the first message of conversation `id` and reads the whole stream.
    async fn chat(&self, id: &str, text: &str) -> Seen {
        let (status, _, body) = post_chat(
            &self.app,
            "/api/chat",
            json!({"id": id, "messages": [{"role": "user", "content": text}]}),
        )
        .await;
        Seen {
            status,
            chunks: parse_sse(&body),
            body,
        }
    }

    fn store(&self) -> &dyn Store {
        self.faults.inner().as_ref()
    }

    /// The messages stored in the local user's conversation `id`; `None` when it does not exist.
    async fn stored(&self, id: &str) -> Option<Vec<Message>> {
        let id = ConversationId::parse(id).expect("id");
        match self.store().get_conversation_with_messages(&local_user(), &id).await {
            Ok((_, messages)) => Some(messages),
            Err(StoreError::NotFound) => None,
            Err(e) => panic!("reading {id}: {e:?}"),
        }
    }

    /// The assistant messages of conversation `id`.
    async fn replies(&self, id: &str) -> Vec<Message> {
        let messages = self.stored(id).await.expect("the conversation exists");
        messages.into_iter().filter(|m| m.role == Role::Assistant).collect()
    }

    /// The assistant reply of conversation `id`, once the turn (running on after its client
    /// went away) has stored it.
    async fn reply_when_stored(&self, id: &str) -> Message {
        for _ in 0..400 {
            if let Some(reply) = self.replies(id).await.into_iter().next() {
                return reply;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the turn of {id} never stored its reply");
    }

    /// What the local user's day budget item holds (probing the rig's own conversation).
    async fn spent(&self) -> u64 {
        athena_tests::probes::spent_today(self.store(), &local_user(), &self.probe).await
    }

    /// Whether the user's next chat is admitted under the cap of one stream (200 and a whole
    /// turn, which frees its slot again) or refused 429 because the slot is held.
    async fn next_chat_admitted(&self) -> bool {
        let seen = self.chat(&unique("next"), "#deltas:1").await;
        match seen.status {
            200 => {
                seen.assert_finished();
                true
            }
            429 => {
                assert!(seen.body.contains("RATE_LIMIT"), "{}", seen.body);
                false
            }
            other => panic!("{other}: {}", seen.body),
        }
    }

    /// The `chat.turn` audit entries' statuses, newest first.
    async fn audited_turns(&self) -> Vec<String> {
        let audit = self.app.call("GET", "/api/audit", None).await;
        assert_eq!(audit.status, 200, "{}", audit.text);
        audit
            .json
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["action"] == "chat.turn")
            .map(|e| e["status"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

/// The input estimate of a first message `text` in the general chat (no tools).
fn input_estimate(text: &str) -> u64 {
    let message = shared::llm::ModelMessage {
        role: shared::llm::ModelRole::User,
        content: vec![shared::llm::ModelContent::Text(text.to_owned())],
    };
    estimate::input_tokens(shared::chat::system_prompt(None), &[message], &[])
}

/// What a turn whose first message is `text` reserves at admission.
fn reservation(text: &str) -> u64 {
    estimate::reservation(input_estimate(text), OUTPUT_CAP)
}

// ---------------------------------------------------------------- the admitting write

async fn an_admitting_write_that_fails_is_a_clean_error_and_leaves_nothing(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    // A new conversation, the store unavailable: 503 before any stream byte.
    rig.faults.inject(Op::BeginTurn, Fault::Fail(Failure::Unavailable), 1);
    let id = unique("admit");
    let seen = rig.chat(&id, "#deltas:3").await;
    assert_eq!(seen.status, 503, "{}", seen.body);
    assert!(seen.body.contains("\"UNAVAILABLE\""), "{}", seen.body);
    assert!(!seen.body.contains("data:"), "never a half-started stream");
    assert_eq!(rig.stored(&id).await, None, "the conversation was not created");
    // An existing conversation, the store failing internally: 500, nothing appended.
    rig.faults.inject(Op::BeginTurn, Fault::Fail(Failure::Internal), 1);
    let seen = rig.chat(rig.probe.as_str(), "#deltas:3").await;
    assert_eq!(seen.status, 500, "{}", seen.body);
    assert!(seen.body.contains("\"INTERNAL\""), "{}", seen.body);
    assert!(!seen.body.contains("data:"));
    assert_eq!(
        rig.stored(rig.probe.as_str()).await,
        Some(Vec::new()),
        "nothing appended"
    );
    assert_eq!(rig.faults.calls(Op::BeginTurn), 2);
    assert_eq!(rig.faults.calls(Op::FinishTurn), 0, "no turn ran");
    assert_eq!(rig.spent().await, 0, "nothing charged");
    assert!(rig.next_chat_admitted().await, "no slot held");
}

async fn an_admitting_write_that_applies_but_times_out_does_not_hold_the_slot(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    // The admission lands (user's message, reservation, slot), its answer is a timeout.
    rig.faults
        .inject(Op::BeginTurn, Fault::ApplyThenFail(Failure::Timeout), 1);
    let id = unique("admit-ambiguous");
    let text = "#deltas:3";
    let seen = rig.chat(&id, text).await;
    assert_eq!(seen.status, 503, "{}", seen.body);
    assert!(!seen.body.contains("data:"), "never a half-started stream");
    let stored = rig.stored(&id).await.expect("the write applied");
    assert_eq!(stored.len(), 1, "the user's message, no reply: {stored:?}");
    assert_eq!(rig.faults.calls(Op::FinishTurn), 0, "no turn ran");
    // The reservation cannot be settled safely (the turn cannot know it was made): it stays
    // charged, an overcharge rather than free tokens.
    assert_eq!(rig.spent().await, reservation(text));
    // The slot the turn may hold is released by its turn id: the user's next chat is admitted,
    // not refused until the lease ends.
    assert_eq!(rig.faults.calls(Op::ReleaseSlot), 1, "one slot under a cap of one");
    assert!(rig.next_chat_admitted().await, "no slot held");
}

// ---------------------------------------------------------------- the finishing write

/// A whole turn of `#deltas:3` whose end is stored once, charged once at the reported usage,
/// with its slot free; `finishes` attempts of the finishing write at least.
async fn assert_stored_once(rig: &Rig, id: &str, seen: &Seen, finishes: usize) {
    seen.assert_finished();
    assert_eq!(text_of(&seen.chunks), "w0 w1 w2 ");
    let replies = rig.replies(id).await;
    assert_eq!(replies.len(), 1, "the reply stored exactly once");
    assert_eq!(replies[0].content, "w0 w1 w2 ");
    assert_eq!(replies[0].finish_reason, Some(FinishReason::Stop));
    let conversation = rig
        .store()
        .get_conversation(&local_user(), &ConversationId::parse(id).expect("id"))
        .await
        .expect("conversation");
    assert_eq!(conversation.message_count, 2, "the user's message and one reply");
    let cost = seen.reported();
    assert!(cost > 0);
    assert_eq!(rig.spent().await, cost, "charged once, settled to the reported usage");
    assert!(rig.faults.calls(Op::FinishTurn) >= finishes);
    assert_eq!(rig.faults.calls(Op::ReleaseSlot), 0, "the finish released the slot");
    assert_eq!(rig.audited_turns().await, ["ok"]);
    assert!(rig.next_chat_admitted().await, "the slot is free");
}

async fn a_finishing_write_that_fails_once_is_retried_and_stored_once(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    rig.faults.inject(Op::FinishTurn, Fault::Fail(Failure::Unavailable), 1);
    let id = unique("retry");
    let seen = rig.chat(&id, "#deltas:3").await;
    assert_eq!(rig.faults.calls(Op::FinishTurn), 2, "one retry");
    assert_stored_once(&rig, &id, &seen, 2).await;
}

async fn a_finishing_write_that_applies_but_times_out_is_not_duplicated_or_charged_twice(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    rig.faults
        .inject(Op::FinishTurn, Fault::ApplyThenFail(Failure::Timeout), 1);
    let id = unique("ambiguous");
    let seen = rig.chat(&id, "#deltas:3").await;
    assert_eq!(
        rig.faults.calls(Op::FinishTurn),
        2,
        "retried once; the receipt answered"
    );
    assert_stored_once(&rig, &id, &seen, 2).await;
}

async fn a_finishing_write_that_always_fails_is_a_store_unavailable_error_and_frees_the_slot(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    rig.faults
        .inject(Op::FinishTurn, Fault::Fail(Failure::Unavailable), ALWAYS);
    let id = unique("lost");
    let text = "#deltas:3";
    let seen = rig.chat(&id, text).await;
    assert_eq!(rig.faults.calls(Op::FinishTurn), 3, "three attempts");
    seen.assert_error(&format!("{STORE_UNAVAILABLE}: "));
    assert_eq!(
        text_of(&seen.chunks),
        "w0 w1 w2 ",
        "the client saw the text before the error"
    );
    let stored = rig.stored(&id).await.expect("admitted: the conversation exists");
    assert_eq!(stored.len(), 1, "only the user's message: {stored:?}");
    assert_eq!(stored[0].role, Role::User);
    // The reservation was never settled: it stays charged, once.
    assert_eq!(rig.spent().await, reservation(text));
    assert_eq!(rig.faults.calls(Op::ReleaseSlot), 1, "the slot released on its own");
    assert_eq!(rig.audited_turns().await, [STORE_UNAVAILABLE]);
    rig.faults.heal(Op::FinishTurn);
    assert!(rig.next_chat_admitted().await, "the slot is free");
}

async fn a_failed_finish_whose_slot_release_fails_too_holds_the_slot_until_its_lease_ends(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    rig.faults
        .inject(Op::FinishTurn, Fault::Fail(Failure::Unavailable), ALWAYS);
    rig.faults
        .inject(Op::ReleaseSlot, Fault::Fail(Failure::Unavailable), ALWAYS);
    let id = unique("held");
    let seen = rig.chat(&id, "#deltas:3").await;
    seen.assert_error(&format!("{STORE_UNAVAILABLE}: "));
    assert_eq!(rig.faults.calls(Op::ReleaseSlot), 1);
    assert!(rig.replies(&id).await.is_empty());
    rig.faults.heal(Op::FinishTurn);
    // The slot is the dead turn's until its lease (the longest reply and a margin) expires.
    assert!(!rig.next_chat_admitted().await, "the slot is still held");
}

async fn a_finishing_write_that_stalls_past_its_attempt_timeout_is_retried_and_stored_once(store: Arc<dyn Store>) {
    // Attempts bounded at 1 s: the stalled attempt is given up, its write never applies.
    let rig = rig_with(store, Duration::from_secs(1)).await;
    rig.faults
        .inject(Op::FinishTurn, Fault::Stall(Duration::from_secs(60)), 1);
    let id = unique("stalled");
    let seen = rig.chat(&id, "#deltas:3").await;
    assert_stored_once(&rig, &id, &seen, 2).await;
}

async fn a_finishing_write_that_applies_then_stalls_is_retried_without_a_second_charge(store: Arc<dyn Store>) {
    // The write lands, its answer does not come back within the attempt's 1 s.
    let rig = rig_with(store, Duration::from_secs(1)).await;
    rig.faults
        .inject(Op::FinishTurn, Fault::ApplyThenStall(Duration::from_secs(60)), 1);
    let id = unique("slow-answer");
    let seen = rig.chat(&id, "#deltas:3").await;
    assert_stored_once(&rig, &id, &seen, 2).await;
}

async fn a_finishing_write_that_stalls_on_every_attempt_is_a_store_unavailable_error(store: Arc<dyn Store>) {
    let rig = rig_with(store, Duration::from_secs(1)).await;
    rig.faults
        .inject(Op::FinishTurn, Fault::Stall(Duration::from_secs(60)), ALWAYS);
    let id = unique("hung");
    let text = "#deltas:3";
    let seen = rig.chat(&id, text).await;
    seen.assert_error(&format!("{STORE_UNAVAILABLE}: "));
    assert_eq!(rig.faults.calls(Op::FinishTurn), 3, "three attempts, each given up");
    assert!(rig.replies(&id).await.is_empty(), "no stalled attempt applied");
    assert_eq!(rig.spent().await, reservation(text), "the reservation stays charged");
    assert_eq!(rig.faults.calls(Op::ReleaseSlot), 1);
    rig.faults.heal(Op::FinishTurn);
    assert!(rig.next_chat_admitted().await, "the slot was released on its own");
}

// ---------------------------------------------------------------- the activity batch

async fn an_activity_batch_that_fails_loses_only_the_activity(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    rig.faults
        .inject(Op::RecordActivity, Fault::Fail(Failure::Unavailable), 1);
    let id = unique("no-activity");
    let seen = rig.chat(&id, "#deltas:3").await;
    seen.assert_finished();
    assert_eq!(rig.faults.calls(Op::RecordActivity), 1, "not retried");
    assert_eq!(rig.replies(&id).await.len(), 1);
    assert_eq!(rig.spent().await, seen.reported());
    assert!(
        rig.audited_turns().await.is_empty(),
        "the audit entry went with the batch"
    );
    assert!(rig.next_chat_admitted().await);
}

async fn an_activity_batch_that_stalls_does_not_hold_the_turn(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    // Far past the turn's bound on the batch (1.5 s): the body closes when the turn gives up.
    rig.faults
        .inject(Op::RecordActivity, Fault::Stall(Duration::from_secs(60)), 1);
    let id = unique("slow-activity");
    let seen = rig.chat(&id, "#deltas:3").await;
    seen.assert_finished();
    assert_eq!(rig.replies(&id).await.len(), 1);
    assert_eq!(rig.spent().await, seen.reported());
    assert!(rig.audited_turns().await.is_empty(), "the stalled batch was given up");
    assert!(rig.next_chat_admitted().await);
}

// ---------------------------------------------------------------- the provider

async fn a_provider_that_breaks_mid_stream_leaves_a_partial_reply_charged_an_estimate(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    let id = unique("broken");
    let text = "#deltas:10 #fail-after:4";
    let seen = rig.chat(&id, text).await;
    seen.assert_error("The reply was interrupted");
    assert_eq!(text_of(&seen.chunks), "w0 w1 w2 w3 ");
    let replies = rig.replies(&id).await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].content, "w0 w1 w2 w3 ");
    assert_eq!(replies[0].finish_reason, Some(FinishReason::Error));
    assert_eq!(replies[0].error.as_deref(), Some("PROVIDER_STREAM"));
    // No usage was reported: charged the estimate of what was sent and streamed.
    let charged = estimate::unreported_call(input_estimate(text), 12);
    assert!(charged > input_estimate(text), "{charged}");
    assert_eq!(rig.spent().await, charged);
    assert_eq!(rig.audited_turns().await, ["PROVIDER_STREAM"]);
    assert!(rig.next_chat_admitted().await);
}

async fn a_provider_that_breaks_while_the_store_stumbles_still_stores_the_partial_reply(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    rig.faults
        .inject(Op::FinishTurn, Fault::ApplyThenFail(Failure::Timeout), 1);
    let id = unique("broken-twice");
    let text = "#deltas:10 #fail-after:2";
    let seen = rig.chat(&id, text).await;
    seen.assert_error("The reply was interrupted");
    assert_eq!(rig.faults.calls(Op::FinishTurn), 2);
    let replies = rig.replies(&id).await;
    assert_eq!(replies.len(), 1, "stored once");
    assert_eq!(replies[0].content, "w0 w1 ");
    assert_eq!(replies[0].finish_reason, Some(FinishReason::Error));
    assert_eq!(
        rig.spent().await,
        estimate::unreported_call(input_estimate(text), 6),
        "settled once"
    );
    assert!(rig.next_chat_admitted().await);
}

// ---------------------------------------------------------------- the client going away
//
// These assume today's behaviour: a client that goes away stops the turn (no resumable streams),
// which stores its partial reply as `aborted` in the write that settles its reservation.

/// A long turn whose client reads until `enough` says the chunks seen so far are enough, then
/// goes away; returns the text deltas it received.
async fn read_then_drop(rig: &Rig, id: &str, text: &str, enough: impl Fn(&[Value]) -> bool) -> String {
    let res = rig
        .app
        .client
        .post(format!("{}/api/chat", rig.app.base))
        .json(&json!({"id": id, "messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 200);
    let mut body = res.bytes_stream();
    let mut raw = String::new();
    loop {
        // Whole events only: an event may arrive split across pieces.
        let complete = raw.rfind("\n\n").map_or("", |end| &raw[..end + 2]);
        let chunks = parse_sse(complete);
        if enough(&chunks) {
            assert!(
                !chunks.iter().any(|c| c["type"] == "finish"),
                "the client left before the finish"
            );
            return text_of(&chunks);
        }
        let piece = body.next().await.expect("more of the stream").expect("chunk");
        raw.push_str(&String::from_utf8_lossy(&piece));
    }
}

/// The turn `id`, abandoned by its client after `received`, stored its partial reply as
/// aborted, was charged the estimate of what it sent and streamed, and freed its slot.
async fn assert_aborted(rig: &Rig, id: &str, text: &str, received: &str, full: &str) {
    let reply = rig.reply_when_stored(id).await;
    assert_eq!(reply.finish_reason, Some(FinishReason::Aborted));
    assert!(
        reply.content.starts_with(received),
        "the stored reply holds what the client saw"
    );
    assert!(!reply.content.is_empty());
    assert!(reply.content.len() < full.len(), "the turn stopped early");
    assert!(full.starts_with(&reply.content));
    let streamed = reply.content.chars().count() as u64;
    let charged = estimate::unreported_call(input_estimate(text), streamed);
    assert!(charged > input_estimate(text), "the text streamed is charged");
    assert_eq!(rig.spent().await, charged);
    assert_eq!(rig.faults.calls(Op::FinishTurn), 1);
    // The activity batch follows the finishing write.
    let mut audited = Vec::new();
    for _ in 0..400 {
        audited = rig.audited_turns().await;
        if !audited.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(audited, ["aborted"]);
    assert!(rig.next_chat_admitted().await, "the slot was released");
}

/// The reply of `#deltas:N`.
fn full_reply(deltas: usize) -> String {
    (0..deltas).map(|i| format!("w{i} ")).collect()
}

async fn a_client_that_leaves_after_the_start_aborts_the_turn(store: Arc<dyn Store>) {
    let rig = rig_disconnect_stops(store).await;
    let id = unique("left-at-start");
    let text = "#first-delay:300 #deltas:1000 #delay:20";
    let received = read_then_drop(&rig, &id, text, |chunks| chunks.iter().any(|c| c["type"] == "start")).await;
    assert_aborted(&rig, &id, text, &received, &full_reply(1000)).await;
}

async fn a_client_that_leaves_after_some_deltas_aborts_the_turn(store: Arc<dyn Store>) {
    let rig = rig_disconnect_stops(store).await;
    let id = unique("left-midway");
    let text = "#deltas:1000 #delay:20";
    let received = read_then_drop(&rig, &id, text, |chunks| text_of(chunks).contains("w5 ")).await;
    assert!(received.starts_with("w0 w1 w2 w3 w4 w5 "), "{received}");
    assert_aborted(&rig, &id, text, &received, &full_reply(1000)).await;
}

async fn a_client_that_leaves_just_before_the_finish_still_gets_its_whole_reply_stored(store: Arc<dyn Store>) {
    let rig = rig_disconnect_stops(store).await;
    let id = unique("left-at-end");
    let text = "#deltas:3";
    // `finish-step` is the last chunk before the finishing write: the model is done and has
    // reported its usage, so the turn is stored whole (not aborted) and charged that usage.
    let received = read_then_drop(&rig, &id, text, |chunks| {
        chunks.iter().any(|c| c["type"] == "finish-step")
    })
    .await;
    assert_eq!(received, "w0 w1 w2 ");
    let reply = rig.reply_when_stored(&id).await;
    assert_eq!(reply.content, "w0 w1 w2 ");
    assert_eq!(reply.finish_reason, Some(FinishReason::Stop));
    let usage = reply.usage.expect("the reported usage");
    let cost = usage.input_tokens + usage.output_tokens;
    assert_eq!(usage.output_tokens, 3);
    assert_eq!(rig.spent().await, cost, "charged the reported usage");
    assert_eq!(rig.faults.calls(Op::FinishTurn), 1);
    assert!(rig.next_chat_admitted().await, "the slot was released");
}

async fn a_client_that_leaves_while_the_finishing_write_fails_still_frees_the_slot(store: Arc<dyn Store>) {
    let rig = rig_disconnect_stops(store).await;
    rig.faults
        .inject(Op::FinishTurn, Fault::Fail(Failure::Unavailable), ALWAYS);
    let id = unique("left-and-lost");
    let text = "#deltas:1000 #delay:20";
    read_then_drop(&rig, &id, text, |chunks| text_of(chunks).contains("w2 ")).await;
    // The turn gives up its finishing write after three attempts, then releases the slot.
    for _ in 0..400 {
        if rig.faults.calls(Op::ReleaseSlot) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(rig.faults.calls(Op::ReleaseSlot), 1, "the slot released on its own");
    assert_eq!(rig.faults.calls(Op::FinishTurn), 3);
    assert!(rig.replies(&id).await.is_empty());
    assert_eq!(rig.spent().await, reservation(text), "the reservation stays charged");
    rig.faults.heal(Op::FinishTurn);
    assert!(rig.next_chat_admitted().await);
}

// ---------------------------------------------------------------- checkpoints (resumable streams on)

/// The text of the turn's stream as a reconnecting client gets it (`GET /api/chat/{id}/stream`).
async fn resumed_text(rig: &Rig, id: &str) -> (u16, String) {
    let reply = rig
        .app
        .send(rig.app.client.get(format!("{}/api/chat/{id}/stream", rig.app.base)))
        .await;
    (reply.status, text_of(&parse_sse(&reply.text)))
}

async fn a_client_that_leaves_midway_with_resumable_streams_gets_the_whole_reply_stored(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    let id = unique("left-resumable");
    let text = "#deltas:40 #delay:10";
    let received = read_then_drop(&rig, &id, text, |chunks| text_of(chunks).contains("w5 ")).await;
    assert!(received.len() < full_reply(40).len());
    let reply = rig.reply_when_stored(&id).await;
    assert_eq!(reply.content, full_reply(40), "the turn ran on to its end");
    assert_eq!(reply.finish_reason, Some(FinishReason::Stop));
    let usage = reply.usage.expect("usage");
    assert_eq!(
        rig.spent().await,
        usage.input_tokens + usage.output_tokens,
        "charged the reported usage"
    );
    assert!(rig.next_chat_admitted().await, "the slot was released");
    assert_eq!(resumed_text(&rig, &id).await, (200, full_reply(40)));
}

async fn checkpoint_writes_that_fail_lose_nothing(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    rig.faults
        .inject(Op::Checkpoint, Fault::Fail(Failure::Unavailable), ALWAYS);
    let id = unique("checkpoints-fail");
    let seen = rig.chat(&id, "#deltas:30 #delay:10").await;
    assert_eq!(
        text_of(&seen.chunks),
        full_reply(30),
        "the relay never waits for a checkpoint"
    );
    assert!(seen.chunks.iter().any(|c| c["type"] == "finish"));
    assert!(
        rig.faults.calls(Op::Checkpoint) >= 1,
        "checkpoints were attempted while streaming"
    );
    assert_eq!(rig.reply_when_stored(&id).await.content, full_reply(30));
    // The backlog went into the final checkpoint, written with the reply: a late reconnect
    // still replays everything.
    assert_eq!(resumed_text(&rig, &id).await, (200, full_reply(30)));
}

async fn a_checkpoint_that_applies_but_times_out_is_not_replayed_twice(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    rig.faults
        .inject(Op::Checkpoint, Fault::ApplyThenFail(Failure::Timeout), 2);
    let id = unique("checkpoint-ambiguous");
    let seen = rig.chat(&id, "#deltas:30 #delay:10").await;
    assert_eq!(text_of(&seen.chunks), full_reply(30));
    assert_eq!(resumed_text(&rig, &id).await, (200, full_reply(30)), "each event once");
}

async fn a_store_that_stalls_on_checkpoints_does_not_hold_the_stream(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    rig.faults
        .inject(Op::Checkpoint, Fault::Stall(Duration::from_secs(3)), ALWAYS);
    let id = unique("checkpoint-stall");
    let seen = rig.chat(&id, "#deltas:30 #delay:5").await;
    assert_eq!(text_of(&seen.chunks), full_reply(30));
    assert!(seen.chunks.iter().any(|c| c["type"] == "finish"));
    assert_eq!(rig.reply_when_stored(&id).await.content, full_reply(30));
}

async fn a_reply_whose_finishing_write_fails_is_rebuilt_from_its_checkpoints(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    rig.faults
        .inject(Op::FinishTurn, Fault::Fail(Failure::Unavailable), ALWAYS);
    let id = unique("finish-lost");
    let seen = rig.chat(&id, "#deltas:20 #delay:10").await;
    let error = seen
        .chunks
        .iter()
        .find(|c| c["type"] == "error")
        .expect("an error chunk");
    assert!(
        error["errorText"].as_str().unwrap_or("").starts_with(STORE_UNAVAILABLE),
        "{error}"
    );
    rig.faults.heal(Op::FinishTurn);
    assert!(rig.replies(&id).await.is_empty(), "the finishing write stored nothing");
    // Reading the conversation stores the reply from the turn's checkpoints, once.
    let read = rig.app.call("GET", &format!("/api/conversations/{id}"), None).await;
    let last = read.json["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .expect("messages");
    assert_eq!(last["content"], full_reply(20).as_str());
    assert_eq!(last["error"], shared::chat::INTERRUPTED);
    assert_eq!(rig.replies(&id).await.len(), 1);
    let again = rig.app.call("GET", &format!("/api/conversations/{id}"), None).await;
    assert_eq!(again.json["messages"], read.json["messages"]);
}

async fn a_resumed_stream_whose_store_fails_is_a_clean_error(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    let id = unique("resume-store-down");
    rig.chat(&id, "#deltas:3").await;
    rig.faults
        .inject(Op::ReadCheckpoints, Fault::Fail(Failure::Unavailable), ALWAYS);
    let reply = rig
        .app
        .send(rig.app.client.get(format!("{}/api/chat/{id}/stream", rig.app.base)))
        .await;
    assert_eq!((reply.status, reply.code()), (503, "UNAVAILABLE"), "{}", reply.text);
    rig.faults.heal(Op::ReadCheckpoints);
    assert_eq!(resumed_text(&rig, &id).await, (200, full_reply(3)));
}

async fn a_resubmit_after_a_lost_finish_is_answered_at_once(store: Arc<dyn Store>) {
    let rig = rig(store).await;
    rig.faults
        .inject(Op::FinishTurn, Fault::Fail(Failure::Unavailable), ALWAYS);
    let id = unique("resubmit-after-loss");
    let body = json!({"id": id, "messages": [{"id": "q-1", "role": "user", "content": "#deltas:5"}]});
    let (_, _, first) = post_chat(&rig.app, "/api/chat", body.clone()).await;
    assert!(first.contains(STORE_UNAVAILABLE), "{first}");
    rig.faults.heal(Op::FinishTurn);
    // "Please send your message again": the retry runs now, not after the turn's lease.
    let (status, _, again) = post_chat(&rig.app, "/api/chat", body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(text_of(&parse_sse(&again)), full_reply(5));
    assert_eq!(rig.replies(&id).await.len(), 1);
}

athena_tests::on_both_stores!([
    a_resubmit_after_a_lost_finish_is_answered_at_once,
    a_client_that_leaves_midway_with_resumable_streams_gets_the_whole_reply_stored,
    checkpoint_writes_that_fail_lose_nothing,
    a_checkpoint_that_applies_but_times_out_is_not_replayed_twice,
    a_store_that_stalls_on_checkpoints_does_not_hold_the_stream,
    a_reply_whose_finishing_write_fails_is_rebuilt_from_its_checkpoints,
    a_resumed_stream_whose_store_fails_is_a_clean_error,
    an_admitting_write_that_fails_is_a_clean_error_and_leaves_nothing,
    an_admitting_write_that_applies_but_times_out_does_not_hold_the_slot,
    a_finishing_write_that_fails_once_is_retried_and_stored_once,
    a_finishing_write_that_applies_but_times_out_is_not_duplicated_or_charged_twice,
    a_finishing_write_that_always_fails_is_a_store_unavailable_error_and_frees_the_slot,
    a_failed_finish_whose_slot_release_fails_too_holds_the_slot_until_its_lease_ends,
    a_finishing_write_that_stalls_past_its_attempt_timeout_is_retried_and_stored_once,
    a_finishing_write_that_applies_then_stalls_is_retried_without_a_second_charge,
    a_finishing_write_that_stalls_on_every_attempt_is_a_store_unavailable_error,
    an_activity_batch_that_fails_loses_only_the_activity,
    an_activity_batch_that_stalls_does_not_hold_the_turn,
    a_provider_that_breaks_mid_stream_leaves_a_partial_reply_charged_an_estimate,
    a_provider_that_breaks_while_the_store_stumbles_still_stores_the_partial_reply,
    a_client_that_leaves_after_the_start_aborts_the_turn,
    a_client_that_leaves_after_some_deltas_aborts_the_turn,
    a_client_that_leaves_just_before_the_finish_still_gets_its_whole_reply_stored,
    a_client_that_leaves_while_the_finishing_write_fails_still_frees_the_slot,
]);
