//! The end of a chat turn is durable before the client hears `finish`: the finishing write is
//! idempotent per turn id (a receipt), retried by the chat, and when it still fails the client
//! gets a `STORE_UNAVAILABLE` error and the slot is released on its own. On both stores: the
//! receipt's conformance, then faults injected into the finishing write over real HTTP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use athena_tests::probes::spent_today;
use athena_tests::{local_user, parse_sse, post_chat, spawn_chat_app, unique};
use serde_json::{json, Value};
use shared::chat::{ChatConfig, STORE_UNAVAILABLE};
use shared::config::Config;
use shared::domain::{Conversation, ConversationId, IdGenerator, Message, Role, UserId};
use shared::error::StoreError;
use shared::store::prelude::*;
use shared::store::{
    Settlement, Store, StoreParts, StreamLease, TurnBegun, TurnFinish, TurnLimits, TurnStart, TurnWrite,
};

// ---------------------------------------------------------------- probes

/// Whether `owner` may open a stream under a cap of one (their slot is free); the slot the
/// probe takes is released again.
async fn slot_free(store: &dyn Store, owner: &UserId, conversation: &ConversationId) -> bool {
    let start = TurnStart {
        payer: owner.clone(),
        owner: owner.clone(),
        conversation_id: conversation.clone(),
        write: TurnWrite::Check,
        limits: TurnLimits {
            max_streams: 1,
            ..TurnLimits::none()
        },
        turn_id: unique("slot-probe"),
        now: shared::domain::now(),
        reservation: 0,
        reservation_nano_usd: 0,
        reply_id: shared::domain::IdGenerator::new().message_id(),
        reply_parent: shared::domain::MessageId::root(),
    };
    match store.begin_turn(&start).await {
        Ok(begun) => {
            let lease = begun.lease.expect("a capped turn has a lease");
            store
                .release_slot(owner, &lease)
                .await
                .expect("release the probe's slot");
            true
        }
        Err(StoreError::TooManyStreams { .. }) => false,
        Err(e) => panic!("slot probe: {e:?}"),
    }
}

/// The assistant messages stored in a conversation.
async fn replies(store: &dyn Store, owner: &UserId, conversation: &ConversationId) -> Vec<Message> {
    let (_, messages) = store
        .get_conversation_with_messages(owner, conversation)
        .await
        .expect("conversation");
    messages.into_iter().filter(|m| m.role == Role::Assistant).collect()
}

// ---------------------------------------------------------------- receipt conformance

async fn created(store: &dyn Store, ids: &IdGenerator, owner: &UserId) -> Conversation {
    let c = Conversation::new(
        ids.conversation_id(),
        owner.clone(),
        "New conversation",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        None,
        shared::domain::now(),
    );
    store.create_conversation(&c, &[]).await.expect("create");
    c
}

/// Admits a turn of `c` reserving 400 tokens of a 10,000-token day budget, `streams` at most.
async fn admitted(store: &dyn Store, ids: &IdGenerator, c: &Conversation, streams: u32) -> (String, TurnBegun) {
    let turn_id = ids.next_ulid();
    let begun = store
        .begin_turn(&TurnStart {
            payer: c.owner.clone(),
            owner: c.owner.clone(),
            conversation_id: c.id.clone(),
            write: TurnWrite::Check,
            limits: TurnLimits {
                tokens_per_day: 10_000,
                max_streams: streams,
                ..TurnLimits::none()
            },
            turn_id: turn_id.clone(),
            now: shared::domain::now(),
            reservation: 400,
            reservation_nano_usd: 0,
            reply_id: shared::domain::IdGenerator::new().message_id(),
            reply_parent: shared::domain::MessageId::root(),
        })
        .await
        .expect("admitted");
    (turn_id, begun)
}

async fn a_second_finish_of_the_same_turn_changes_nothing(store: Arc<dyn Store>) {
    let ids = IdGenerator::new();
    let owner = UserId::parse(&unique("receipt")).expect("user");
    let c = created(store.as_ref(), &ids, &owner).await;
    let (turn_id, begun) = admitted(store.as_ref(), &ids, &c, 1).await;
    assert_eq!(spent_today(store.as_ref(), &owner, &c.id).await, 400);
    let reply = Message::text(
        ids.message_id(),
        c.id.clone(),
        Role::Assistant,
        "the answer".to_owned(),
        shared::domain::now(),
    );
    let finish = TurnFinish {
        payer: owner.clone(),
        owner: owner.clone(),
        conversation_id: c.id.clone(),
        turn_id,
        reply: Some(reply),
        lease: begun.lease,
        settlement: Settlement {
            reserved: 400,
            actual: 130,
            ..Settlement::default()
        },
        started: shared::domain::now(),
        stats: None,
        title: None,
        checkpoint: None,
    };
    store.finish_turn(&finish).await.expect("first finish");
    let after_first = store.get_conversation(&owner, &c.id).await.expect("conversation");
    // A retry of the same turn (its first attempt's answer was lost): Ok, and nothing changes.
    store.finish_turn(&finish).await.expect("second finish");
    store.finish_turn(&finish).await.expect("third finish");
    assert_eq!(replies(store.as_ref(), &owner, &c.id).await.len(), 1, "the reply once");
    let after = store.get_conversation(&owner, &c.id).await.expect("conversation");
    assert_eq!(after.message_count, after_first.message_count);
    assert_eq!(after.message_count, 1);
    assert_eq!(
        spent_today(store.as_ref(), &owner, &c.id).await,
        130,
        "settled exactly once"
    );
    assert!(slot_free(store.as_ref(), &owner, &c.id).await, "the slot was released");
    // Another turn's finish is not mistaken for this one: its settlement applies.
    let (other, _) = admitted(store.as_ref(), &ids, &c, 0).await;
    assert_eq!(spent_today(store.as_ref(), &owner, &c.id).await, 530);
    store
        .finish_turn(&TurnFinish {
            turn_id: other,
            reply: None,
            lease: None,
            settlement: Settlement {
                reserved: 400,
                actual: 0,
                ..Settlement::default()
            },
            ..finish
        })
        .await
        .expect("other turn");
    assert_eq!(spent_today(store.as_ref(), &owner, &c.id).await, 130);
}

async fn a_slot_is_released_only_for_its_own_turn_and_releasing_is_idempotent(store: Arc<dyn Store>) {
    let ids = IdGenerator::new();
    let owner = UserId::parse(&unique("release")).expect("user");
    let c = created(store.as_ref(), &ids, &owner).await;
    let (_, begun) = admitted(store.as_ref(), &ids, &c, 1).await;
    let lease = begun.lease.expect("a lease");
    let stranger = StreamLease {
        turn_id: ids.next_ulid(),
        ..lease.clone()
    };
    store.release_slot(&owner, &stranger).await.expect("not ours: Ok");
    assert!(!slot_free(store.as_ref(), &owner, &c.id).await, "still held");
    store.release_slot(&owner, &lease).await.expect("release");
    store.release_slot(&owner, &lease).await.expect("again: Ok");
    // Releasing the slot settles nothing: the reservation stays charged.
    assert_eq!(spent_today(store.as_ref(), &owner, &c.id).await, 400);
    assert!(slot_free(store.as_ref(), &owner, &c.id).await, "freed");
}

// ---------------------------------------------------------------- faults in the chat

/// How the injected `finish_turn` misbehaves.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Fails (unavailable) this many times, then works.
    FailTimes(usize),
    /// Always fails (unavailable).
    Always,
    /// The first call applies, then reports a timeout (the ambiguous case); later calls work.
    ApplyThenTimeout,
}

/// A `Turns` whose `finish_turn` fails as told; counts its calls.
struct FaultyTurns {
    inner: Arc<dyn Store>,
    fault: Fault,
    finishes: AtomicUsize,
    releases: AtomicUsize,
}

fn injected(what: &str) -> StoreError {
    StoreError::Unavailable(format!("injected: {what}").into())
}

#[async_trait]
impl Turns for FaultyTurns {
    async fn begin_turn(&self, start: &TurnStart) -> Result<TurnBegun, StoreError> {
        self.inner.begin_turn(start).await
    }

    async fn finish_turn(&self, finish: &TurnFinish) -> Result<(), StoreError> {
        let n = self.finishes.fetch_add(1, Ordering::SeqCst);
        match self.fault {
            Fault::FailTimes(k) if n < k => Err(injected("unavailable")),
            Fault::Always => Err(injected("unavailable")),
            Fault::ApplyThenTimeout if n == 0 => {
                self.inner.finish_turn(finish).await?;
                Err(injected("timed out after the write applied"))
            }
            _ => self.inner.finish_turn(finish).await,
        }
    }

    async fn release_slot(&self, owner: &UserId, lease: &StreamLease) -> Result<(), StoreError> {
        self.releases.fetch_add(1, Ordering::SeqCst);
        self.inner.release_slot(owner, lease).await
    }
}

/// What one chat turn over a store with `fault` left behind.
struct Observed {
    chunks: Vec<Value>,
    body: String,
    replies: usize,
    spent: u64,
    slot_free: bool,
    finishes: usize,
    releases: usize,
}

/// One chat turn (a 3-delta scripted reply) under a 1,000,000-token day budget and one stream
/// at most, its finishing write failing as `fault` says.
async fn turn_with(inner: Arc<dyn Store>, fault: Fault) -> Observed {
    let faulty = Arc::new(FaultyTurns {
        inner: Arc::clone(&inner),
        fault,
        finishes: AtomicUsize::new(0),
        releases: AtomicUsize::new(0),
    });
    let store: Arc<dyn Store> = Arc::new(StoreParts::of(Arc::clone(&inner)).with_turns(faulty.clone()));
    let mut config = Config::local();
    config.token_budget_day = 1_000_000;
    config.max_concurrent_streams = 1;
    let chat = ChatConfig {
        max_output_tokens: 200,
        ..ChatConfig::default()
    };
    let app = spawn_chat_app(Arc::clone(&store), config, chat).await;
    let id = unique("durable");
    let (status, _, body) = post_chat(
        &app,
        "/api/chat",
        json!({"id": id, "messages": [{"role": "user", "content": "#deltas:3"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let owner = local_user();
    let conversation = ConversationId::parse(&id).expect("id");
    Observed {
        chunks: parse_sse(&body),
        replies: replies(inner.as_ref(), &owner, &conversation).await.len(),
        spent: spent_today(inner.as_ref(), &owner, &conversation).await,
        slot_free: slot_free(inner.as_ref(), &owner, &conversation).await,
        finishes: faulty.finishes.load(Ordering::SeqCst),
        releases: faulty.releases.load(Ordering::SeqCst),
        body,
    }
}

/// Tokens the turn reported in its `finish` chunk.
fn reported(chunks: &[Value]) -> u64 {
    let finish = chunks.iter().find(|c| c["type"] == "finish").expect("finish chunk");
    let usage = &finish["messageMetadata"]["usage"];
    usage["inputTokens"].as_u64().expect("input") + usage["outputTokens"].as_u64().expect("output")
}

fn assert_finished(seen: &Observed) {
    assert!(seen.body.ends_with("data: [DONE]\n\n"), "{}", seen.body);
    assert!(
        seen.chunks.iter().all(|c| c["type"] != "error"),
        "no error: {}",
        seen.body
    );
    assert_eq!(seen.replies, 1, "the reply stored exactly once");
    let cost = reported(&seen.chunks);
    assert!(cost > 0, "{cost}");
    assert_eq!(seen.spent, cost, "charged exactly once, settled to the reported usage");
    assert!(seen.slot_free, "the slot is free after the turn");
    assert_eq!(seen.releases, 0, "no separate release when the finish was stored");
}

async fn a_finish_that_fails_twice_is_retried_and_stored_once(store: Arc<dyn Store>) {
    let seen = turn_with(store, Fault::FailTimes(2)).await;
    assert_eq!(seen.finishes, 3);
    assert_finished(&seen);
}

async fn a_finish_that_applied_but_timed_out_is_not_written_twice(store: Arc<dyn Store>) {
    let seen = turn_with(store, Fault::ApplyThenTimeout).await;
    assert_eq!(seen.finishes, 2, "retried once; the receipt answered");
    assert_finished(&seen);
}

async fn a_finish_that_keeps_failing_is_an_error_and_frees_the_slot(store: Arc<dyn Store>) {
    let seen = turn_with(Arc::clone(&store), Fault::Always).await;
    assert_eq!(seen.finishes, 3, "three attempts");
    assert!(
        seen.chunks.iter().all(|c| c["type"] != "finish"),
        "never `finish` for an unsaved reply: {}",
        seen.body
    );
    let error = seen
        .chunks
        .iter()
        .find(|c| c["type"] == "error")
        .expect("an error chunk");
    let text = error["errorText"].as_str().expect("errorText");
    assert!(text.starts_with(&format!("{STORE_UNAVAILABLE}: ")), "{text}");
    assert!(text.contains("could not be saved"), "{text}");
    assert!(seen.body.ends_with("data: [DONE]\n\n"), "{}", seen.body);
    assert_eq!(seen.replies, 0, "no reply stored");
    // The reservation (input estimate + the 200-token output cap) stays charged, once: it was
    // never settled.
    assert!(seen.spent >= 200, "{}", seen.spent);
    assert!(seen.slot_free, "the slot was released on its own");
    assert_eq!(seen.releases, 1);
    // The same turn again (the same reservation): exactly one more reservation, nothing else.
    let again = turn_with(store, Fault::Always).await;
    assert_eq!(
        again.spent,
        2 * seen.spent,
        "each failed turn is charged its reservation once"
    );
    assert!(again.slot_free);
}

athena_tests::on_both_stores!([
    a_second_finish_of_the_same_turn_changes_nothing,
    a_slot_is_released_only_for_its_own_turn_and_releasing_is_idempotent,
    a_finish_that_fails_twice_is_retried_and_stored_once,
    a_finish_that_applied_but_timed_out_is_not_written_twice,
    a_finish_that_keeps_failing_is_an_error_and_frees_the_slot,
]);
