//! # Athena's shared library
//!
//! Everything every Lambda function (and the local gateway) uses. Data flows one way:
//!
//! ## Layout
//! - [`domain`]: conversations, messages, analytics events, and the newtypes that parse raw input.
//! - [`error`]: typed errors of the inner layers (validation, storage).
//! - [`store`]: the `Store` port and its adapters: DynamoDB (production) and SQLite (embedded,
//!   the local default), held to the same semantics by one conformance suite.
//! - [`analytics`]: usage events, daily counters (cost, tokens, latency histograms), EMF metrics.
//! - [`http`]: the outbound HTTP client (one TLS stack, shared with the AWS SDK).
//! - [`auth`]: bearer-JWT verification (HS256 secret or the issuer's JWKS) for `ATHENA_AUTH=jwt`.
//! - [`catalog`]: the Claude models on Bedrock, prices, the deployment's allowlist.
//! - [`config`]: configuration from the environment, checked at cold start.
//! - [`api`]: the HTTP layer: route table, handlers, strict input parsing, the one error mapping.
//! - [`chat`]: the chat turn (history, persistence, fallback, tool loop, timeouts) and prompts.
//! - [`llm`]: model providers behind one trait: Bedrock, OpenAI-compatible, scripted.
//! - [`stream`]: the AI SDK UI message stream and plain-text encoders.
//! - [`lambda`]: the Lambda adapter (API Gateway v1/v2, function URLs) every function's `main` calls.
//! - [`local`]: the local gateway serving every route in one process.
//! - [`telemetry`]: JSON logs with the request id on every line.
#![warn(missing_docs)]

pub mod analytics;
pub mod api;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod chat;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod lambda;
pub mod llm;
pub mod local;
pub mod state;
pub mod store;
pub mod stream;
pub mod telemetry;
