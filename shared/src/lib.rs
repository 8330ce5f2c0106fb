//! # Athena's shared library
//!
//! Everything every Lambda function (and the local gateway) uses. Dependencies point one way,
//! from the bottom of this list up (checked by the `layering` tests: no top-level module uses one
//! listed below it, no import cycle, no source file over 800 lines):
//!
//! - [`error`], [`domain`]: typed errors; conversations, messages, analytics events, audit
//!   entries, stats rows, ids (with the ULID generator) and the [`domain::Clock`].
//! - [`catalog`], [`http`], [`stream`]: the Claude models and prices; the outbound HTTP client;
//!   the AI SDK UI message stream and plain-text encoders.
//! - [`auth`], [`config`]: bearer-JWT verification; the one typed configuration, read once.
//! - [`store`], [`llm`], [`telemetry`]: the store ports by capability and their adapters
//!   (DynamoDB, embedded SQLite); model providers behind one trait; JSON logs.
//! - [`state`]: the application state every request reads (config, store, ids, model, clock).
//! - [`analytics`], [`audit`], [`ratelimit`], [`search`], [`chat`]: the services: usage events and
//!   counters, the audit log, the per-minute request limit, full-text search over a user's own
//!   conversations, the chat turn (plan, admission, context,
//!   generation, finishing).
//! - [`api`]: the HTTP layer: route table, handlers, strict input, the chat's HTTP half, the one
//!   error mapping.
//! - [`lambda`], [`local`]: the Lambda adapter every function's `main` calls; the local gateway.
#![warn(missing_docs)]

pub mod analytics;
pub mod api;
pub mod audit;
pub mod auth;
pub mod blobs;
pub mod catalog;
pub mod chat;
pub mod config;
pub mod domain;
pub mod error;
pub mod files;
pub mod http;
pub mod import;
pub mod lambda;
pub mod llm;
pub mod local;
pub mod mcp;
pub mod metrics;
pub mod ratelimit;
pub mod reactions;
pub mod search;
pub mod state;
pub mod store;
pub mod stream;
pub mod telemetry;

#[cfg(test)]
mod layering;
