//! Checkpoints: a turn's events written to the store while it streams, off the hot path. The
//! relay hands every event to a [`Recorder`] without waiting (an unbounded channel; the events
//! are the reply's own text, bounded by the output cap); the recorder's task writes them in
//! batches, at most one write per [`ChatConfig::checkpoint_interval`] or per [`FLUSH_BYTES`],
//! whichever comes first, one write at a time. A write that fails is retried with the same batch
//! under the same position (the store puts a checkpoint only if absent, so a retry after an
//! ambiguous timeout neither duplicates nor loses events). The turn's last events and its
//! `finish` go into the final checkpoint, written with the reply in the finishing write.
//!
//! Each write also tells whether someone asked the turn to stop (`POST .../stop`, from any
//! instance); a turn with nothing to write asks on each tick instead.
//!
//! [`ChatConfig::checkpoint_interval`]: crate::config::ChatConfig::checkpoint_interval

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::events::TurnEvent;
use crate::domain::{ConversationId, UserId};
use crate::error::StoreError;
use crate::state::AppState;
use crate::store::{Checkpoint, CheckpointAck, MAX_CHECKPOINT_BYTES};

/// A batch is written as soon as it holds this many bytes of events, even within the interval.
pub const FLUSH_BYTES: usize = 16 * 1024;

/// Longest one checkpoint write may take before it counts as failed (and is retried).
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a checkpoint write is about: the turn.
#[derive(Clone, Debug)]
pub(super) struct TurnKey {
    pub(super) owner: UserId,
    pub(super) conversation_id: ConversationId,
    pub(super) turn_id: String,
}

/// The events not yet checkpointed when the turn ends, and the position of the final checkpoint.
#[derive(Debug, Default)]
pub(super) struct Tail {
    pub(super) seq: u32,
    pub(super) events: Vec<TurnEvent>,
}

/// The turn's handle on its checkpoint writer.
pub(super) struct Recorder {
    tx: mpsc::UnboundedSender<TurnEvent>,
    task: JoinHandle<Tail>,
    next_seq: Arc<AtomicU32>,
}

impl Recorder {
    /// Starts the writer. `stop` is set when the store says a stop was requested.
    pub(super) fn spawn(state: Arc<AppState>, key: TurnKey, stop: Arc<watch::Sender<bool>>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let next_seq = Arc::new(AtomicU32::new(0));
        let writer = Writer {
            interval: state.config.chat.checkpoint_interval,
            state,
            key,
            stop,
            next_seq: Arc::clone(&next_seq),
            pending: Vec::new(),
            pending_bytes: 0,
            failed: None,
        };
        let task = tokio::spawn(tracing::Instrument::instrument(
            writer.run(rx),
            tracing::Span::current(),
        ));
        Self { tx, task, next_seq }
    }

    /// Hands an event to the writer; never waits.
    pub(super) fn record(&self, event: &TurnEvent) {
        // The writer ends only when the turn closes it.
        let _ = self.tx.send(event.clone());
    }

    /// Ends the writer: waits for a write in flight, and returns what is left.
    pub(super) async fn close(self) -> Tail {
        let Self { tx, task, next_seq } = self;
        drop(tx);
        match task.await {
            Ok(tail) => tail,
            Err(e) => {
                tracing::warn!(error = %e, "the checkpoint writer died; its unwritten events are lost");
                Tail {
                    seq: next_seq.load(Ordering::SeqCst),
                    events: Vec::new(),
                }
            }
        }
    }
}

struct Writer {
    state: Arc<AppState>,
    key: TurnKey,
    stop: Arc<watch::Sender<bool>>,
    interval: Duration,
    /// The position of the next checkpoint.
    next_seq: Arc<AtomicU32>,
    pending: Vec<TurnEvent>,
    pending_bytes: usize,
    /// A batch whose write failed: retried as is, under the same position, before anything newer.
    failed: Option<Vec<TurnEvent>>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<TurnEvent>) -> Tail {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => {
                        self.push(event);
                        if self.pending_bytes >= FLUSH_BYTES && self.failed.is_none() {
                            self.flush().await;
                            ticker.reset();
                        }
                    }
                    None => break,
                },
                _ = ticker.tick() => {
                    if self.failed.is_some() || !self.pending.is_empty() {
                        self.flush().await;
                    } else {
                        self.poll_stop().await;
                    }
                }
            }
        }
        let mut events = self.failed.take().unwrap_or_default();
        events.append(&mut self.pending);
        Tail {
            seq: self.next_seq.load(Ordering::SeqCst),
            events,
        }
    }

    /// Adds an event to the pending batch; a text delta extends the text before it (a resumed
    /// stream gets the same text in fewer, longer deltas, and a checkpoint carries no per-delta
    /// framing).
    fn push(&mut self, event: TurnEvent) {
        if let (TurnEvent::Text(more), Some(TurnEvent::Text(text))) = (&event, self.pending.last_mut()) {
            text.push_str(more);
            self.pending_bytes += more.len();
            return;
        }
        self.pending_bytes += approximate_size(&event);
        self.pending.push(event);
    }

    /// Writes the failed batch again, or else the pending events.
    async fn flush(&mut self) {
        let batch = match self.failed.take() {
            Some(batch) => batch,
            None => {
                // At most half a checkpoint's limit (sizes are estimates): a backlog built up
                // while the store was failing goes out over several writes.
                let (mut size, mut count) = (0, 0);
                for event in &self.pending {
                    let more = approximate_size(event);
                    if count > 0 && size + more > MAX_CHECKPOINT_BYTES / 2 {
                        break;
                    }
                    size += more;
                    count += 1;
                }
                let batch: Vec<TurnEvent> = self.pending.drain(..count).collect();
                // What is left (usually nothing): sizes of coalesced events, not of the deltas
                // that made them.
                self.pending_bytes = self.pending.iter().map(approximate_size).sum();
                batch
            }
        };
        let encoded = match encode(&batch) {
            Ok(encoded) => encoded,
            Err(e) => {
                tracing::warn!(error = %e, "a checkpoint could not be encoded; its events are not kept");
                return;
            }
        };
        let seq = self.next_seq.load(Ordering::SeqCst);
        let checkpoint = Checkpoint {
            owner: self.key.owner.clone(),
            conversation_id: self.key.conversation_id.clone(),
            turn_id: self.key.turn_id.clone(),
            seq,
            events: encoded,
            last: false,
            at: self.state.now(),
        };
        let write = tokio::time::timeout(WRITE_TIMEOUT, self.state.store.checkpoint(&checkpoint))
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the checkpoint write timed out".into())));
        match write {
            Ok(ack) => {
                self.next_seq.store(seq + 1, Ordering::SeqCst);
                if ack == CheckpointAck::Stop {
                    self.stop.send_replace(true);
                }
            }
            Err(StoreError::TooLarge(reason)) => {
                // Only one enormous event can do this (batches close at FLUSH_BYTES): it is
                // streamed and stored with the reply, but a resumed stream will miss it.
                tracing::warn!(%reason, "a checkpoint is too large to keep; its events are skipped");
            }
            Err(e) => {
                tracing::warn!(error = %e, seq, "a checkpoint write failed; retrying at the next tick");
                self.failed = Some(batch);
            }
        }
    }

    async fn poll_stop(&mut self) {
        let key = &self.key;
        let asked = self
            .state
            .store
            .stop_requested(&key.owner, &key.conversation_id, &key.turn_id);
        match tokio::time::timeout(WRITE_TIMEOUT, asked).await {
            Ok(Ok(true)) => {
                self.stop.send_replace(true);
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "asking whether the turn should stop failed"),
            Err(_) => tracing::debug!("asking whether the turn should stop timed out"),
        }
    }
}

/// The events as a checkpoint stores them, refused above [`MAX_CHECKPOINT_BYTES`].
pub(super) fn encode(events: &[TurnEvent]) -> Result<String, StoreError> {
    let encoded = serde_json::to_string(events).map_err(|e| StoreError::internal("encoding a checkpoint", e))?;
    if encoded.len() > MAX_CHECKPOINT_BYTES {
        return Err(StoreError::TooLarge(format!("a checkpoint of {} bytes", encoded.len())));
    }
    Ok(encoded)
}

/// A checkpoint's events; `None` when they cannot be read (a newer version wrote them).
pub(super) fn decode(events: &str) -> Option<Vec<TurnEvent>> {
    serde_json::from_str(events).ok()
}

/// The final events split into checkpoints that each fit (almost always one).
pub(super) fn split_final(events: Vec<TurnEvent>) -> Vec<Vec<TurnEvent>> {
    let mut out: Vec<Vec<TurnEvent>> = vec![Vec::new()];
    let mut size = 0;
    for event in events {
        let more = approximate_size(&event);
        if size + more > MAX_CHECKPOINT_BYTES / 2 && out.last().is_some_and(|b| !b.is_empty()) {
            out.push(Vec::new());
            size = 0;
        }
        size += more;
        if let Some(batch) = out.last_mut() {
            batch.push(event);
        }
    }
    out
}

/// Roughly how many bytes an event adds to a checkpoint (to close batches at [`FLUSH_BYTES`]).
fn approximate_size(event: &TurnEvent) -> usize {
    match event {
        TurnEvent::Text(t) => t.len() + 16,
        TurnEvent::ToolCall { input, .. } => input.to_string().len() + 64,
        TurnEvent::ToolResult { output, .. } => output.to_string().len() + 64,
        _ => 64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_a_checkpoint() {
        let events = vec![
            TurnEvent::StartStep,
            TurnEvent::Text("héllo".to_owned()),
            TurnEvent::ToolCall {
                id: "c1".to_owned(),
                name: "web_search".to_owned(),
                input: serde_json::json!({"query": "x"}),
            },
            TurnEvent::Finish {
                metadata: serde_json::json!({"model": "m"}),
            },
        ];
        let encoded = encode(&events).unwrap_or_default();
        assert_eq!(decode(&encoded), Some(events));
        assert_eq!(decode("not json"), None);
    }

    #[tokio::test]
    async fn deltas_are_written_in_batches_of_16_kb_coalesced_and_nothing_is_lost() {
        use crate::store::counting::CountingStore;
        let counting = Arc::new(CountingStore::new(Arc::new(
            crate::store::embedded::EmbeddedStore::in_memory().expect("store"),
        )));
        let mut config = crate::config::Config::local();
        // Only the size closes a batch here.
        config.chat.checkpoint_interval = Duration::from_secs(3600);
        let state = Arc::new(AppState::new(config, counting.clone()));
        let key = TurnKey {
            owner: UserId::parse("u").expect("user"),
            conversation_id: ConversationId::parse("c").expect("id"),
            turn_id: "t".to_owned(),
        };
        let recorder = Recorder::spawn(state, key, Arc::new(watch::channel(false).0));
        let deltas = 20_000;
        for i in 0..deltas {
            recorder.record(&TurnEvent::Text(format!("w{i:05} ")));
            if i % 1000 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let tail = recorder.close().await;
        let writes = counting.take().iter().filter(|c| **c == "checkpoint").count();
        // 140,000 bytes of text: about 140,000 / 16 KB batches, not one per delta.
        assert!((1..=12).contains(&writes), "{writes} checkpoint writes");
        assert_eq!(tail.seq as usize, writes, "positions follow the writes");
        assert!(
            tail.events.len() <= 1,
            "the tail is coalesced too: {}",
            tail.events.len()
        );
    }

    #[test]
    fn an_oversized_checkpoint_is_refused_before_the_store() {
        let events = vec![TurnEvent::Text("x".repeat(MAX_CHECKPOINT_BYTES))];
        assert!(matches!(encode(&events), Err(StoreError::TooLarge(_))));
    }
}
