//! The original's analytics events (seed 001's `analytics_events`) into Athena's events, and the
//! daily counters (what the dashboard reads) rebuilt from them, at most once.
//!
//! Two passes over the events table, each streamed (memory grows with the number of days ×
//! solutions × models, never with the events):
//!
//! 1. every event is mapped (or refused) and added to its day's counters; each day gets a key
//!    from its events' ids (order-independent), and the store says which keys were imported
//!    before (`Stats::stats_imported`);
//! 2. the events of the days not imported yet are recorded (`Activity::record_events`, 25 at a
//!    time; idempotent by id), skipping those already past the event retention, then each such
//!    day's counters are added with its key (`Stats::import_stats`: once per key, atomically).
//!
//! A rerun finds every day's key and writes nothing; a run stopped after a day's events and
//! before its counters records the events again (the same items) and adds the counters once.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use sha2::{Digest, Sha256};
use shared::domain::{user_hash, AnalyticsEvent, Solution, StatsDelta, Timestamp, UserId, BUCKETS_MS};
use shared::store::ports::MAX_IMPORTED_STATS_ROWS;
use shared::store::{StatsUpdate, Store};

use crate::source::SourceEvent;
use crate::{From, MigrateError, Options, Report, Source};

/// One day's rebuilt counters and the fingerprint of its events.
#[derive(Default)]
struct Day {
    /// XOR of the SHA-256 of each event id: the same set of events, the same key.
    digest: [u8; 32],
    events: u64,
    /// Of which within the event retention (the others go into the counters only).
    recent: u64,
    rows: BTreeMap<(String, String), StatsDelta>,
}

impl Day {
    fn key(&self, day: &str) -> String {
        let hex: String = self.digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("prisma#{day}#{}#{hex}", self.events)
    }
}

/// An original event as Athena's, with its counters' row, or why not.
pub fn map_event(event: SourceEvent, owner: &UserId) -> Result<(AnalyticsEvent, StatsUpdate), String> {
    let ms = event.timestamp.map_err(|e| format!("timestamp: {e}"))?;
    let timestamp: Timestamp =
        chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("timestamp: {ms} is out of range"))?;
    if event.id.is_empty() || event.event_type.is_empty() {
        return Err("no id or no eventType".to_owned());
    }
    let solution = match event.solution_type.as_deref().map(str::trim) {
        None | Some("") | Some("general") => None,
        Some(raw) => Some(
            raw.parse::<Solution>()
                .map_err(|_| format!("solutionType {raw:?} is not a solution"))?,
        ),
    };
    // Metadata is a JSON string in the original; text that is not JSON is kept as a string.
    let metadata = match event.metadata.as_deref() {
        None | Some("") => serde_json::json!({}),
        Some(raw) => serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.to_owned())),
    };
    let number = |name: &str| metadata.get(name).and_then(serde_json::Value::as_u64);
    let user = user_hash(owner);
    let mut delta = StatsDelta {
        users: BTreeSet::from([user.clone()]),
        ..StatsDelta::default()
    };
    match event.event_type.as_str() {
        "conversation_created" => delta.conversations = 1,
        "message_sent" => delta.messages = 1,
        "error" => delta.errors = 1,
        "api_call" => {
            delta.requests = 1;
            delta.input_tokens = number("inputTokens").unwrap_or(0);
            delta.output_tokens = number("outputTokens").unwrap_or(0);
            delta.cache_read_tokens = number("cacheReadTokens").unwrap_or(0);
            delta.cache_write_tokens = number("cacheWriteTokens").unwrap_or(0);
            delta.cost_nano_usd = number("costNanoUsd").unwrap_or(0);
            if let Some(ms) = number("latencyMs") {
                let mut latency = vec![0; BUCKETS_MS.len() + 1];
                latency[shared::analytics::bucket(ms)] = 1;
                delta.latency = latency;
            }
        }
        _ => {}
    }
    let model = event
        .model
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let update = StatsUpdate {
        day: timestamp.format("%Y-%m-%d").to_string(),
        solution: shared::analytics::solution_key(solution).to_owned(),
        model: model.clone(),
        delta,
    };
    let athena = AnalyticsEvent {
        id: event.id,
        event_type: event.event_type,
        solution_type: solution,
        user_id: Some(user),
        conversation_id: event.conversation_id,
        model: event.model,
        metadata,
        timestamp,
    };
    Ok((athena, update))
}

/// Migrates the events of `from` (nothing when it has no events table) and rebuilds the daily
/// counters; events older than `retention` at `now` go into the counters only.
pub async fn migrate_events(
    from: &From,
    store: &dyn Store,
    owner: &UserId,
    options: Options,
    retention: std::time::Duration,
    now: Timestamp,
    report: &mut Report,
) -> Result<(), MigrateError> {
    let source = Source::open(from).await?;
    if !source.has_events() {
        return Ok(());
    }
    let oldest = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    // Pass 1: every day's counters and key.
    let mut days: BTreeMap<String, Day> = BTreeMap::new();
    let mut rx = source.stream_events();
    while let Some(row) = rx.recv().await {
        let event = row?;
        report.events.read += 1;
        let id = event.id.clone();
        match map_event(event, owner) {
            Err(reason) => report.refuse_event(&id, reason),
            Ok((event, update)) => {
                let day = days.entry(update.day.clone()).or_default();
                let digest = Sha256::digest(event.id.as_bytes());
                day.digest.iter_mut().zip(digest.iter()).for_each(|(a, b)| *a ^= b);
                day.events += 1;
                day.recent += u64::from(event.timestamp >= oldest);
                day.rows
                    .entry((update.solution, update.model))
                    .or_default()
                    .merge(&update.delta);
            }
        }
    }
    let store_failed = |error| MigrateError::Store {
        conversation: "(analytics events)".to_owned(),
        error,
    };
    let mut pending: HashSet<String> = HashSet::new();
    for (name, day) in &days {
        if store.stats_imported(&day.key(name)).await.map_err(store_failed)? {
            report.events.skipped += day.events;
        } else {
            pending.insert(name.clone());
        }
    }
    if options.dry_run {
        for (_, day) in days.iter().filter(|(d, _)| pending.contains(*d)) {
            report.events.written += day.recent;
            report.events.skipped += day.events - day.recent;
        }
        return Ok(());
    }
    if pending.is_empty() {
        return Ok(());
    }
    // Pass 2: the events of the pending days, then their counters.
    let mut expired = 0u64;
    let mut batch: Vec<AnalyticsEvent> = Vec::with_capacity(25);
    let mut rx = Source::open(from).await?.stream_events();
    while let Some(row) = rx.recv().await {
        let Ok((event, update)) = map_event(row?, owner) else {
            continue;
        };
        if !pending.contains(&update.day) {
            continue;
        }
        if event.timestamp < oldest {
            expired += 1;
            continue;
        }
        batch.push(event);
        if batch.len() == 25 {
            store.record_events(&batch).await.map_err(store_failed)?;
            report.events.written += batch.len() as u64;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        store.record_events(&batch).await.map_err(store_failed)?;
        report.events.written += batch.len() as u64;
    }
    report.events.skipped += expired;
    if expired > 0 {
        report.flag(
            "(analytics events)",
            format!(
                "{expired} event(s) older than the event retention ({} days) are in the daily counters only",
                retention.as_secs() / 86_400
            ),
        );
    }
    for (name, day) in days.iter().filter(|(d, _)| pending.contains(*d)) {
        let rows: Vec<StatsUpdate> = day
            .rows
            .iter()
            .map(|((solution, model), delta)| StatsUpdate {
                day: name.clone(),
                solution: solution.clone(),
                model: model.clone(),
                delta: delta.clone(),
            })
            .collect();
        // More rows than one import holds: the later chunks first, the day's own key last, so
        // that an interruption leaves the day pending (the chunks already added are not added
        // again: each has its key).
        let key = day.key(name);
        let chunks: Vec<&[StatsUpdate]> = rows.chunks(MAX_IMPORTED_STATS_ROWS).collect();
        for (i, chunk) in chunks.iter().enumerate().rev() {
            let chunk_key = if i == 0 { key.clone() } else { format!("{key}#{i}") };
            store.import_stats(&chunk_key, chunk).await.map_err(store_failed)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, metadata: Option<&str>) -> SourceEvent {
        SourceEvent {
            id: "ev1".to_owned(),
            event_type: kind.to_owned(),
            solution_type: Some("maintenance".to_owned()),
            conversation_id: Some("c1".to_owned()),
            model: None,
            metadata: metadata.map(str::to_owned),
            timestamp: Ok(1_760_000_000_000),
        }
    }

    #[test]
    fn events_map_to_athenas_and_to_their_counters() {
        let owner = UserId::parse("alice").expect("user");
        let (e, u) = map_event(
            event(
                "api_call",
                Some(r#"{"inputTokens":12,"outputTokens":30,"latencyMs":900}"#),
            ),
            &owner,
        )
        .expect("mapped");
        assert_eq!(e.id, "ev1");
        assert_eq!(e.user_id.as_deref(), Some(user_hash(&owner).as_str()));
        assert_eq!(
            (u.day.as_str(), u.solution.as_str(), u.model.as_str()),
            ("2025-10-09", "maintenance", "unknown")
        );
        assert_eq!(
            (u.delta.requests, u.delta.input_tokens, u.delta.output_tokens),
            (1, 12, 30)
        );
        assert_eq!(u.delta.latency.iter().sum::<u64>(), 1);
        let (e, u) = map_event(event("conversation_created", Some("not json")), &owner).expect("mapped");
        assert_eq!(e.metadata, serde_json::json!("not json"));
        assert_eq!((u.delta.conversations, u.delta.requests), (1, 0));
        let mut bad = event("message_sent", None);
        bad.timestamp = Err("\"soon\" is not a timestamp".to_owned());
        assert!(map_event(bad, &owner).is_err());
    }
}
